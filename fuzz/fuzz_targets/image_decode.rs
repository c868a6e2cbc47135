//! libFuzzer's entry; what an input means and the invariants: fuzz/bodies/image_decode.rs.
#![no_main]

#[path = "../bodies/image_decode.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
