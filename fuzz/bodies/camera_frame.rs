//! A raw YUYV frame as a V4L2 driver hands it over, with the geometry the driver reported
//! (width, height, bytes per line) taken from the input too: a short buffer or a lying
//! geometry must be refused, never read out of bounds or allocated without bound.
//!
//! The body of fuzz target `camera_frame` (fuzz/fuzz_targets), shared with the test suite's
//! corpus replay and mutation test (tests/fuzz_corpus.rs).

use glance::yuyv_to_rgb;

/// One input: returns, or panics on a broken invariant.
pub fn run(data: &[u8]) {
    if data.len() < 12 {
        return;
    }
    let word = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let (width, height, stride) = (word(0), word(4), word(8));
    let pixels = &data[12..];
    if let Ok(rgb) = yuyv_to_rgb(pixels, width, height, stride) {
        assert_eq!((rgb.width(), rgb.height()), (width, height));
        // Every output pixel came from input bytes: the frame cannot be larger than them.
        assert!(u64::from(width) * u64::from(height) * 2 <= pixels.len() as u64);
    }
}
