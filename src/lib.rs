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
//! Data flows one way, one private module per stage: `source` → `preprocess` → `backbone` →
//! `head` and `knn` (both on `vector`) → `pipeline` → `decision` (with the on-device `store`) →
//! `encode` → `sink`; `runtime` drives it for `glance run`. The workbench ([`host`], behind the
//! cargo feature of that name) fits heads and packs bundles on the same modules.
//!
//! The public API is the facade re-exported here: [`Classifier`] for one image, [`run`] for a
//! live source, [`Bundle`] and [`Store`] for the files a board keeps, [`commands`] for the
//! command language, [`bench`] for timing, and the pieces the tests and fuzz targets exercise
//! directly (decoders, the MJPEG splitter, the V4L2 ABI, the file envelope).

#![warn(missing_docs)]
#![warn(unreachable_pub)]
// Unsafe code is allowed only in the items that say so (SIMD kernels and the AVX2 int8 dot,
// V4L2 ioctls and mappings, the onnxruntime library handle, the benchmark's stage marks), each block with a SAFETY comment.
#![deny(unsafe_code)]

// Every module is private: what other crates (the two binaries, the tests, examples and fuzz
// targets) may use is the facade below, so an item that nothing uses shows up as dead code.
mod backbone;
pub mod bench;
mod board;
mod bundle;
mod capture;
mod control;
mod decision;
mod decode_ahead;
mod drift;
mod encode;
mod envelope;
mod error;
mod fsutil;
mod head;
mod health;
#[cfg(feature = "host")]
pub mod host;
mod knn;
mod manifest;
mod mqtt;
mod notify;
mod pipeline;
mod preprocess;
mod runtime;
mod serial;
mod sink;
pub mod snapshot;
mod source;
mod store;
mod vector;
mod view;
mod web;

pub use error::{Error, Result};

// Classifying one image: a classifier (backbone + ImageNet head, or a bundle) and its answer.
pub use encode::encode_classified;
pub use pipeline::{Classifier, ClassifierConfig, Prediction, Preparer};

// The backbone and the engines that run it.
pub use backbone::{
    cpu_has_fp16, set_threads, sha256_hex, Backbone, BackboneIdentity, BackbonePrecision,
    EngineKind, EngineOptions, ModelSource,
};
pub use manifest::Manifest;
// The tract graph exactly as the engine runs it, for `examples/tract_profile.rs`.
pub use backbone::{tract_kernels, tract_model, tract_model_f16, tract_typed};

// Bytes → RGB → tensor.
pub use preprocess::{
    decode_bytes, decode_file, exr_declared_bytes, jpeg_truncation, normalize, resize,
    tensor_from_image, ChannelOrder, DecodeLimits, PreprocessSpec, ResizeMode, DEFAULT_MAX_ALLOC,
    DEFAULT_MAX_SIDE,
};

// What a bundle and the on-device store hold, and the envelope their files share.
pub use bundle::{
    printable, Bundle, FeatureKind, Thresholds, TrainingInfo, BUNDLE_MAGIC, BUNDLE_VERSION,
};
pub use envelope::{seal, HEADER_LEN};
pub use head::{FeatureNorm, LinearHead};
pub use knn::{KnnStore, Precision};
pub use store::{previous_path, Generation, Store, STORE_MAGIC, STORE_VERSION};

// `glance run`: the live loop, its sources and outputs.
pub use board::{BoardProfile, MqttProfile, WebProfile};
pub use capture::CaptureConfig;
pub use decision::DEFAULT_ENROLLED_DISTANCE;
pub use drift::{DriftReference, DEFAULT_WINDOW as DEFAULT_DRIFT_WINDOW};
pub use encode::Format;
pub use mqtt::{MqttConfig, MqttSpec, MqttTls, ENROLL_FRAMES};
pub use runtime::{default_camera, run, Emit, RunConfig, RunSummary, SourceSpec};
pub use sink::SinkSpec;
pub use source::convert::{mjpeg_to_jpeg, raw_to_rgb, yuyv_to_rgb, RawFormat};
pub use source::live::preferred_formats;
pub use source::mjpeg::MjpegSplitter;
pub use source::sniff::describe_stream;
pub use source::stream::DropPolicy;
pub use source::v4l2::{abi as v4l2_abi, Camera, PIX_MJPEG, PIX_YUYV};
pub use source::v4l2::{describe as describe_camera, list_devices as video_devices};
pub use source::v4l2::{CameraInfo, FormatInfo, FrameSize};
pub use source::{expand_paths, Frame, FrameData};
pub use web::{WebConfig, MAX_STREAMS};

/// The command language of the serial link and `--control stdin`: parsing, printing, and the
/// range rules that flags share with it.
pub mod commands {
    pub use crate::control::{
        check_distance, check_score, check_seconds, check_threads, parse_line, parse_size,
        parse_text, parse_threshold_flag, to_text, LineReader, MAX_COMMAND_LINE,
    };
}

/// The Rust target triple this binary was built for.
pub const BUILD_TARGET: &str = env!("GLANCE_TARGET");
