//! libFuzzer's entry; what an input means and the invariants: fuzz/bodies/wire_stream.rs.
#![no_main]

#[path = "../bodies/wire_stream.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
