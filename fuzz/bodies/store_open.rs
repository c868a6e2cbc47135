//! Opening an on-device kNN store file, raw or as a body sealed in a valid envelope (so the
//! fuzzer gets past the CRC). A store either opens or is refused; an opened store can be
//! searched, added to, forgotten from and saved, and what it saves opens again.
//!
//! The body of fuzz target `store_open` (fuzz/fuzz_targets), shared with the test suite's
//! corpus replay and mutation test (tests/fuzz_corpus.rs).

use std::path::Path;

use glance::{Store, STORE_MAGIC, STORE_VERSION};

/// One input: returns, or panics on a broken invariant.
pub fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        body.to_vec()
    } else {
        glance::seal(&STORE_MAGIC, STORE_VERSION, body)
    };
    let Ok(mut store) = Store::from_bytes(&bytes, Path::new("fuzz.store")) else {
        return;
    };
    // `Store::read` refuses a store whose vectors are not the backbone's length, and no
    // backbone has features longer than this; an empty store may name any length.
    if store.knn.dim > 1 << 16 {
        return;
    }
    let features = vec![0.25f32; store.knn.dim];
    let _ = store.nearest_per_label(&features);
    let _ = store.counts();
    let _ = store.add("fuzzed", &features, "fuzz".into());
    if let Some((label, _)) = store.counts().first().cloned() {
        store.forget(&label);
    }
    let again = store.to_bytes().expect("an opened store serialises");
    Store::from_bytes(&again, Path::new("fuzz.store")).expect("a saved store reopens");
}
