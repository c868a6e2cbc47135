//! libFuzzer's entry; what an input means and the invariants: fuzz/bodies/commands.rs.
#![no_main]

#[path = "../bodies/commands.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
