//! Consistent Overhead Byte Stuffing: removes every 0x00 from a frame so that 0x00 can delimit
//! frames on a byte stream, at a cost of at most one byte per 254.

/// Why COBS data could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CobsError {
    /// The output buffer is too small.
    Overflow,
    /// A zero byte inside encoded data, or a code that points past the end.
    Malformed,
}

/// Largest encoded size of `len` raw bytes (without the trailing delimiter).
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Encodes `src` into `dst`, returning the encoded length. No delimiter is written.
pub fn encode(src: &[u8], dst: &mut [u8]) -> Result<usize, CobsError> {
    fn put(dst: &mut [u8], at: usize, value: u8) -> Result<(), CobsError> {
        *dst.get_mut(at).ok_or(CobsError::Overflow)? = value;
        Ok(())
    }
    let mut code_idx = 0;
    let mut out = 1;
    let mut code: u8 = 1;
    for (i, &b) in src.iter().enumerate() {
        if b == 0 {
            put(dst, code_idx, code)?;
            code_idx = out;
            out += 1;
            code = 1;
        } else {
            put(dst, out, b)?;
            out += 1;
            code += 1;
            if code == 0xFF {
                put(dst, code_idx, code)?;
                if i + 1 == src.len() {
                    // A full block that ends the data needs no further code byte.
                    return Ok(out);
                }
                code_idx = out;
                out += 1;
                code = 1;
            }
        }
    }
    put(dst, code_idx, code)?;
    Ok(out)
}

/// Decodes `src` (one frame, delimiter removed) into `dst`, returning the decoded length.
pub fn decode(src: &[u8], dst: &mut [u8]) -> Result<usize, CobsError> {
    let mut i = 0;
    let mut out = 0;
    while i < src.len() {
        let code = src[i];
        if code == 0 {
            return Err(CobsError::Malformed);
        }
        i += 1;
        let run = usize::from(code) - 1;
        if i + run > src.len() {
            return Err(CobsError::Malformed);
        }
        for &b in &src[i..i + run] {
            if b == 0 {
                return Err(CobsError::Malformed);
            }
            if out >= dst.len() {
                return Err(CobsError::Overflow);
            }
            dst[out] = b;
            out += 1;
        }
        i += run;
        if code != 0xFF && i < src.len() {
            if out >= dst.len() {
                return Err(CobsError::Overflow);
            }
            dst[out] = 0;
            out += 1;
        }
    }
    Ok(out)
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
    }
}
