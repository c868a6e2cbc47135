//! The integration tests: one binary, one module per topic.

//! With `--no-default-features --features net` (what boards build) the modules and tests that
//! need the workbench (`host`), the onnxruntime engine (`ort`) or the embedded backbone
//! (`embedded-model`) say so with `cfg`, and the rest run; so do MQTT (`mqtt`) and the web
//! console (`web`).
#![cfg_attr(not(feature = "host"), allow(dead_code, unused_imports))]

mod bad_input;
mod cameras;
#[cfg(feature = "host")]
mod capture;
mod control;
#[cfg(feature = "host")]
mod drift;
#[cfg(feature = "ort")]
mod engine;
#[cfg(feature = "host")]
mod fashion;
mod fuzz_corpus;
mod golden;
#[cfg(feature = "host")]
mod host;
mod hostile;
#[cfg(feature = "mqtt")]
mod mqtt;
mod parity;
mod quantized;
mod run;
#[cfg(feature = "host")]
mod small_data;
mod streams;
mod util;
#[cfg(feature = "web")]
mod web;
