//! The serial link's byte stream (glance-proto framing: COBS(version ‖ postcard ‖ CRC32) ‖ 0x00),
//! as the board reads it from a peer: fed whole and byte by byte, the decoder must agree with
//! itself, never panic, and count every delimiter-ended frame as decoded or refused.
//!
//! The body of fuzz target `wire_stream` (fuzz/fuzz_targets), shared with the test suite's
//! corpus replay and mutation test (tests/fuzz_corpus.rs).

use glance_proto::frame::{self, FrameDecoder};

/// One input: returns, or panics on a broken invariant.
pub fn run(data: &[u8]) {
    let mut whole = FrameDecoder::new();
    let mut a = Vec::new();
    whole.feed(data, |r| a.push(r));
    let mut bytewise = FrameDecoder::new();
    let mut b = Vec::new();
    for &byte in data {
        if let Some(r) = bytewise.push(byte) {
            b.push(r);
        }
    }
    assert_eq!(a, b, "chunking changed the decoded frames");
    assert_eq!(whole.frames as usize + whole.errors as usize, a.len());
    // Whatever decodes re-encodes to a frame that decodes to the same message.
    for msg in a.into_iter().flatten() {
        let mut out = [0u8; frame::MAX_ENCODED + 1];
        let n = frame::encode(&msg, &mut out).expect("a decoded message re-encodes");
        let again = frame::decode(&out[..n - 1]).expect("a re-encoded message decodes");
        assert_eq!(again, msg);
    }
    // The single-frame decoder, on the raw input.
    let _ = frame::decode(data);
}
