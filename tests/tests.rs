//! The integration tests: one binary, one module per topic.

mod bad_input;
mod golden;
mod parity;
mod quantized;
mod util;
