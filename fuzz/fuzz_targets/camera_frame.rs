//! libFuzzer's entry; what an input means and the invariants: fuzz/bodies/camera_frame.rs.
#![no_main]

#[path = "../bodies/camera_frame.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
