//! The stdin MJPEG splitter (`glance run --source stdin`), fed in chunks whose sizes come from
//! the input: every frame it hands on starts with SOI and ends with EOI, none is longer than
//! the limit, the bytes held never exceed it, and chunking does not change the frames. The
//! same bytes go through the check of what a stream is (H.264, raw, …), which must decide on
//! every prefix once it has one and agree with itself as the prefix grows.
//!
//! The body of fuzz target `mjpeg_split` (fuzz/fuzz_targets), shared with the test suite's
//! corpus replay and mutation test (tests/fuzz_corpus.rs).

use glance::{describe_stream, MjpegSplitter};

const MAX_FRAME: usize = 4096;

fn split(data: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut s = MjpegSplitter::new(MAX_FRAME);
    let mut frames = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        s.push(piece, |f| frames.push(f));
        assert!(
            s.pending() <= MAX_FRAME + piece.len(),
            "held {} bytes",
            s.pending()
        );
    }
    assert_eq!(s.frames as usize, frames.len());
    frames
}

/// One input: returns, or panics on a broken invariant.
pub fn run(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    // Once a prefix is told, every longer prefix is told the same.
    let mut told = None;
    for end in (0..=stream.len()).step_by(usize::from(chunk).max(1)) {
        let now = describe_stream(&stream[..end]);
        if told.is_some() {
            assert_eq!(now, told, "a longer prefix changed the verdict");
        }
        told = told.or(now);
    }
    let frames = split(stream, usize::from(chunk));
    for f in &frames {
        assert!(f.starts_with(&[0xFF, 0xD8]) && f.ends_with(&[0xFF, 0xD9]));
        assert!(f.len() <= MAX_FRAME);
    }
    assert_eq!(
        frames,
        split(stream, stream.len()),
        "chunking changed the frames"
    );
}
