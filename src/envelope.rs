//! The envelope around every file glance writes for itself (bundles and stores):
//! `magic (8) ‖ format version u32 LE ‖ body length u64 LE ‖ crc32(body) u32 LE ‖ body`.
//! It lets a truncated, padded or corrupted file be refused with a precise reason before any
//! decoding.

/// Header bytes before the body.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 4;

/// Wraps `body` in the envelope.
pub fn seal(magic: &[u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&glance_proto::crc::crc32(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The body inside a `kind` file (`bundle`, `store`), or why the file is refused.
pub(crate) fn open<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: u32,
    kind: &str,
) -> Result<&'a [u8], String> {
    open_versions(bytes, magic, version..=version, kind).map(|(_, body)| body)
}

/// The format version and body inside a `kind` file whose version is one of `versions`.
pub(crate) fn open_versions<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    versions: std::ops::RangeInclusive<u32>,
    kind: &str,
) -> Result<(u32, &'a [u8]), String> {
    if bytes.len() < HEADER_LEN || bytes[..8] != magic[..] {
        return Err(format!("not a glance {kind} (bad magic or too short)"));
    }
    let found = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if !versions.contains(&found) {
        let (lo, hi) = (versions.start(), versions.end());
        let reads = if lo == hi {
            format!("version {hi}")
        } else {
            format!("versions {lo} to {hi}")
        };
        return Err(format!(
            "{kind} format version {found}; this glance reads {reads}"
        ));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[12..20]);
    let len = u64::from_le_bytes(len8);
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != len {
        return Err(format!(
            "truncated or padded: header says {len} body bytes, file has {}",
            body.len()
        ));
    }
    let crc = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if glance_proto::crc::crc32(body) != crc {
        return Err("CRC mismatch: the file is corrupted".into());
    }
    Ok((found, body))
}
