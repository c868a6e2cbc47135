//! The stdin MJPEG splitter (`glance run --source stdin`), fed in chunks whose sizes come from
//! the input: every frame it hands on starts with SOI and ends with EOI, none is longer than
//! the limit, the bytes held never exceed it, and chunking does not change the frames.
#![no_main]

use glance::MjpegSplitter;
use libfuzzer_sys::fuzz_target;

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

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
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
});
