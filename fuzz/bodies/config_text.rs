//! Text configuration glance reads from files a user edits or copies around: board profiles
//! (`targets/*.toml`, `--board FILE`) and the model manifest (`models/manifest.json`). Either
//! parses into values the rest of the code may rely on, or is refused with an error.
//!
//! The body of fuzz target `config_text` (fuzz/fuzz_targets), shared with the test suite's
//! corpus replay and mutation test (tests/fuzz_corpus.rs).

use glance::BoardProfile;
use glance::Manifest;

/// One input: returns, or panics on a broken invariant.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = BoardProfile::parse(text, "fuzz.toml") {
        assert!(p.threads > 0 && p.camera.fps > 0 && p.serial.baud > 0);
        assert_ne!(p.decode_budget_mb, Some(0));
    }
    if let Ok(m) = Manifest::parse(text) {
        let entry = m
            .default_entry()
            .expect("a parsed manifest has its default");
        entry
            .preprocess
            .validate()
            .expect("a parsed manifest's spec is valid");
        assert!(entry.preprocess.tensor_len() > 0);
    }
}
