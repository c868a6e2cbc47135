//! An encoded frame or image file through the prepare stage exactly as `glance run` and
//! `classify` take it (MJPEG Huffman fix-up, format sniffing, EXIF orientation, truncation
//! check, the whole-decode budget, crop, resize, normalise) for the default backbone. The
//! budget here is a 1 GB board's (64 MiB), and scripts/ci/fuzz.sh runs this target with a
//! malloc limit a little above it: an image that decodes past its budget is a crash.
//!
//! The body of fuzz target `image_decode` (fuzz/fuzz_targets), shared with the test suite's
//! corpus replay and mutation test (tests/fuzz_corpus.rs).

use glance::DecodeLimits;
use glance::Manifest;
use glance::Preparer;
use glance::{Frame, FrameData};

/// One input: returns, or panics on a broken invariant.
pub fn run(data: &[u8]) {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let manifest = Manifest::embedded().expect("the embedded manifest parses");
    let spec = manifest
        .default_entry()
        .expect("the manifest names its default")
        .preprocess
        .clone();
    let limits = DecodeLimits {
        max_side: 8192,
        max_alloc: 64 << 20,
        allow_truncated: flags & 1 == 1,
    };
    let preparer = Preparer::for_backbone(limits, spec);
    // The extension is the fallback for formats without a signature (TGA).
    let name = if flags & 2 == 2 {
        "fuzz.tga"
    } else {
        "fuzz.jpg"
    };
    let frame = Frame::now(FrameData::Encoded(bytes.to_vec()), name.into(), None);
    let _ = preparer.prepare_frame(&frame);
}
