//! CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): the checksum at the end of every
//! frame, computed by `crc32fast` (table-free SIMD on x86-64 and aarch64, tables elsewhere).

/// CRC-32 of `bytes` (the same value as zlib's `crc32` and Python's `zlib.crc32`).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::crc32;

    #[test]
    fn check_values() {
        // The standard check value for CRC-32/ISO-HDLC, and values from Python's zlib.crc32.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"glance"), 0x4A2A_DFF2);
    }
}
