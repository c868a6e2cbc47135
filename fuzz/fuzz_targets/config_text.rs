//! libFuzzer's entry; what an input means and the invariants: fuzz/bodies/config_text.rs.
#![no_main]

#[path = "../bodies/config_text.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
