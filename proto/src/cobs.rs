//! Consistent Overhead Byte Stuffing: removes every 0x00 from a frame so that 0x00 can delimit
//! frames on a byte stream, at a cost of at most one byte per 254. The algorithm is the `cobs`
//! crate's (the one postcard's own COBS flavour uses); this module keeps glance-proto's error
//! type and two edge rules the wire format has always had: empty data encodes as `01`, and a
//! zero byte anywhere in encoded data is malformed (the crate would stop at it and ignore the
//! rest).

/// Why COBS data could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CobsError {
    /// The output buffer is too small.
    Overflow,
    /// A zero byte inside encoded data, or a code that points past the end.
    Malformed,
}

/// Largest encoded size of `len` raw bytes (without the trailing delimiter): one code byte
/// per started run of 254, and at least one.
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Encodes `src` into `dst`, returning the encoded length. No delimiter is written.
pub fn encode(src: &[u8], dst: &mut [u8]) -> Result<usize, CobsError> {
    if src.is_empty() {
        *dst.first_mut().ok_or(CobsError::Overflow)? = 1;
        return Ok(1);
    }
    match ::cobs::try_encode(src, dst) {
        // cobs 0.3.0 returns Ok with a length one past a buffer that lacks room for a final
        // code byte after a trailing zero (the byte is not written): that is an overflow.
        Ok(n) if n <= dst.len() => Ok(n),
        _ => Err(CobsError::Overflow),
    }
}

/// Decodes `src` (one frame, delimiter removed) into `dst`, returning the decoded length.
pub fn decode(src: &[u8], dst: &mut [u8]) -> Result<usize, CobsError> {
    if src.is_empty() {
        return Ok(0);
    }
    if src.contains(&0) {
        return Err(CobsError::Malformed);
    }
    // Every code must point inside the data and the last exactly at its end. Checked first
    // because the crate writes as it reads and would report a short buffer before a broken
    // run, where the wire format has always said malformed.
    let mut at = 0usize;
    while at < src.len() {
        at += usize::from(src[at]);
    }
    if at != src.len() {
        return Err(CobsError::Malformed);
    }
    ::cobs::decode(src, dst).map_err(|e| match e {
        ::cobs::DecodeError::TargetBufTooSmall => CobsError::Overflow,
        _ => CobsError::Malformed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(raw: &[u8], encoded: &[u8]) {
        let mut buf = [0u8; 600];
        let n = encode(raw, &mut buf).unwrap();
        assert_eq!(&buf[..n], encoded, "encode {raw:02x?}");
        let mut back = [0u8; 600];
        let m = decode(encoded, &mut back).unwrap();
        assert_eq!(&back[..m], raw, "decode {encoded:02x?}");
    }

    #[test]
    fn reference_vectors() {
        // The examples in Cheshire & Baker's COBS paper, as listed on Wikipedia's COBS page.
        roundtrip(&[0x00], &[0x01, 0x01]);
        roundtrip(&[0x00, 0x00], &[0x01, 0x01, 0x01]);
        roundtrip(&[0x00, 0x11, 0x00], &[0x01, 0x02, 0x11, 0x01]);
        roundtrip(&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]);
        roundtrip(&[0x11, 0x22, 0x33, 0x44], &[0x05, 0x11, 0x22, 0x33, 0x44]);
        roundtrip(&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]);
        let run: [u8; 254] = core::array::from_fn(|i| (i + 1) as u8);
        let mut enc = [0u8; 256];
        enc[0] = 0xFF;
        enc[1..255].copy_from_slice(&run);
        roundtrip(&run, &enc[..255]);
        let run: [u8; 255] = core::array::from_fn(|i| (i + 1) as u8);
        let mut enc = [0u8; 257];
        enc[0] = 0xFF;
        enc[1..255].copy_from_slice(&run[..254]);
        enc[255] = 0x02;
        enc[256] = 0xFF;
        roundtrip(&run, &enc);
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        let mut out = [0u8; 8];
        assert_eq!(decode(&[0x05, 0x11], &mut out), Err(CobsError::Malformed));
        assert_eq!(decode(&[0x02, 0x00], &mut out), Err(CobsError::Malformed));
        assert_eq!(decode(&[0xFF; 40], &mut out), Err(CobsError::Malformed));
        assert_eq!(
            decode(&[0x0A, 1, 2, 3, 4, 5, 6, 7, 8, 9], &mut out),
            Err(CobsError::Overflow)
        );
        let mut tiny = [0u8; 2];
        assert_eq!(encode(&[1, 2, 3], &mut tiny), Err(CobsError::Overflow));
        // Needs 3 bytes (`02 11 01`); a 2-byte buffer must be refused, not half written.
        assert_eq!(encode(&[0x11, 0x00], &mut tiny), Err(CobsError::Overflow));
        assert_eq!(
            decode(&[0x03, 0x11, 0x22, 0x00, 0x05], &mut out),
            Err(CobsError::Malformed),
            "a zero inside a frame"
        );
    }

    #[test]
    fn empty_data_and_the_frame_bound() {
        let mut buf = [0u8; 4];
        assert_eq!(encode(&[], &mut buf), Ok(1));
        assert_eq!(buf[0], 0x01);
        assert_eq!(decode(&[0x01], &mut buf), Ok(0));
        assert_eq!(decode(&[], &mut buf), Ok(0));
        // The bound peers size their buffers with has not moved (1536-byte frames).
        assert_eq!(max_encoded_len(1536), 1543);
        for len in [1usize, 253, 254, 255, 508, 1536] {
            let raw: [u8; 1536] = core::array::from_fn(|i| (i % 255 + 1) as u8);
            let mut enc = [0u8; 1543];
            let n = encode(&raw[..len], &mut enc[..max_encoded_len(len)]).unwrap();
            assert!(n <= max_encoded_len(len), "{len}: {n}");
        }
    }
}
