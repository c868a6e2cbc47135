//! glance: edge transfer-learning image classification.
//!
//! A pretrained ImageNet backbone (EfficientNet-Lite0, int8 weights, run by tract) turns a frame
//! into 1280 deep features; a compact head and a kNN store turn features into a decision.
//! The board binary `glance` and the host workbench `glance-host` share every module here, so
//! what is measured on the host is what runs on the board, with one exception: on x86-64 hosts,
//! with the cargo feature `x86-kernels` (default), tract runs the kernels of
//! `crates/tract-x86-kernels` (depthwise convolutions, matrix products), which boards never
//! build. Results agree to float rounding (tested with the feature on and off); speed does not,
//! so board speed is measured on the board (`glance bench`), not inferred from the host's.
//!
//! Data flows one way: [`source`] → [`preprocess`] → [`backbone`] → [`head`] and [`knn`] (both on
//! [`vector`]) → [`pipeline`] → [`decision`] (with the on-device [`store`]) → [`encode`] →
//! [`sink`]; [`runtime`] drives it for `glance run`. The workbench (`host`, behind the cargo
//! feature of that name) fits heads and packs bundles on the same modules.

#![warn(missing_docs)]
// Unsafe code is allowed only in the items that say so (SIMD kernels and the AVX2 int8 dot,
// V4L2 ioctls and mappings, the onnxruntime library handle), each block with a SAFETY comment.
#![deny(unsafe_code)]

pub mod backbone;
pub mod bench;
pub mod board;
pub mod bundle;
pub mod control;
pub mod decision;
mod decode_ahead;
pub mod encode;
pub mod envelope;
pub mod error;
pub mod fsutil;
pub mod head;
pub mod health;
#[cfg(feature = "host")]
pub mod host;
pub mod knn;
pub mod manifest;
pub mod notify;
pub mod pipeline;
pub mod preprocess;
pub mod runtime;
pub mod serial;
pub mod sink;
pub mod source;
pub mod store;
pub mod vector;

pub use error::{Error, Result};

/// The Rust target triple this binary was built for.
pub const BUILD_TARGET: &str = env!("GLANCE_TARGET");
