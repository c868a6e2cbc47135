//! libFuzzer's entry; what an input means and the invariants: fuzz/bodies/mjpeg_split.rs.
#![no_main]

#[path = "../bodies/mjpeg_split.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
