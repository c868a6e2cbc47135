//! libFuzzer's entry; what an input means and the invariants: fuzz/bodies/store_open.rs.
#![no_main]

#[path = "../bodies/store_open.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
