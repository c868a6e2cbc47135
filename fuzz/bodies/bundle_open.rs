//! Opening a bundle file. A quarter of the inputs are taken as the file itself; the others as
//! a postcard body sealed in a valid envelope (right magic, CRC, and the current or an older
//! version), so that the fuzzer reaches the body decoders and `Bundle::validate` instead of
//! stopping at the CRC. A bundle
//! either opens or is refused with an error; an opened bundle's head, thresholds and store are
//! then used as the run loop uses them, which must not panic either.
//!
//! The body of fuzz target `bundle_open` (fuzz/fuzz_targets), shared with the test suite's
//! corpus replay and mutation test (tests/fuzz_corpus.rs).

use std::path::Path;

use glance::{Bundle, BUNDLE_MAGIC, BUNDLE_VERSION};

/// One input: returns, or panics on a broken invariant.
pub fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let bytes = match mode % 4 {
        0 => body.to_vec(),
        1 => glance::seal(&BUNDLE_MAGIC, BUNDLE_VERSION, body),
        2 => glance::seal(&BUNDLE_MAGIC, 2, body),
        _ => glance::seal(&BUNDLE_MAGIC, 1, body),
    };
    let Ok(bundle) = Bundle::from_bytes(&bytes, Path::new("fuzz.glb")) else {
        return;
    };
    // What the run loop does with a bundle that opened: score features through the head,
    // look the store up, apply the thresholds. The dims were validated, so these must hold.
    let features = vec![0.5f32; bundle.head.dim];
    let scores = bundle.head.predict_proba(&features);
    assert_eq!(scores.len(), bundle.labels.len());
    if let Some(store) = &bundle.store {
        let _ = store.search(&features, 3, None);
        let _ = store.nearest_per_class(&features, bundle.labels.len());
    }
    for (class, &s) in scores.iter().enumerate() {
        let _ = bundle.thresholds.verdict(class, s, Some(0.5));
    }
    // The drift watch compares frames with the reference it carries.
    if let Some(d) = &bundle.drift {
        let (c, _) = d.statistics(&scores, &[0.5, 1.0, 2.0]);
        assert!(c.is_none_or(f32::is_finite));
    }
    // It saves back to bytes that open again.
    let again = bundle.to_bytes().expect("an opened bundle serialises");
    Bundle::from_bytes(&again, Path::new("fuzz.glb")).expect("a saved bundle reopens");
}
