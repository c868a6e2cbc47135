//! The integration tests: one binary, one module per topic.

mod bad_input;
mod engine;
mod fashion;
mod golden;
mod host;
mod hostile;
mod parity;
mod quantized;
mod run;
mod small_data;
mod util;
