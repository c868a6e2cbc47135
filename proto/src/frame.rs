//! Framing: `COBS(version ‖ postcard(Message) ‖ crc32_le(version ‖ postcard)) ‖ 0x00`.
//!
//! The version byte lets a peer refuse frames from another protocol revision; the CRC catches
//! line noise that COBS alone would let through; the 0x00 delimiter lets a reader that joins
//! mid-stream (or loses bytes) resynchronise on the next frame.

use crate::cobs::{self, CobsError};
use crate::crc::crc32;
use crate::{Message, PROTOCOL_VERSION};

/// Largest raw frame (version + postcard body + CRC), in bytes.
pub const MAX_FRAME: usize = 1536;

/// Largest frame on the wire, delimiter included.
pub const MAX_ENCODED: usize = cobs::max_encoded_len(MAX_FRAME) + 1;

/// Why a frame could not be built or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The message does not fit in [`MAX_FRAME`] or in the output buffer.
    TooLarge,
    /// The bytes between two delimiters are not valid COBS.
    Cobs,
    /// Fewer bytes than a version and a CRC.
    TooShort,
    /// A frame of another protocol version.
    Version(u8),
    /// The checksum does not match the contents.
    Crc,
    /// The body is not a valid message (or has trailing bytes).
    Body,
    /// More bytes than [`MAX_ENCODED`] arrived before a delimiter; they were discarded.
    Oversized,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "message too large for a frame"),
            Self::Cobs => write!(f, "malformed COBS encoding"),
            Self::TooShort => write!(f, "frame too short"),
            Self::Version(v) => write!(f, "protocol version {v}, expected {PROTOCOL_VERSION}"),
            Self::Crc => write!(f, "CRC mismatch"),
            Self::Body => write!(f, "undecodable message body"),
            Self::Oversized => write!(f, "frame longer than {MAX_ENCODED} bytes"),
        }
    }
}

/// Encodes `msg` as one delimited frame into `out`; returns the number of bytes written.
pub fn encode(msg: &Message, out: &mut [u8]) -> Result<usize, FrameError> {
    let mut raw = [0u8; MAX_FRAME];
    raw[0] = PROTOCOL_VERSION;
    let body_len = postcard::to_slice(msg, &mut raw[1..MAX_FRAME - 4])
        .map_err(|_| FrameError::TooLarge)?
        .len();
    let end = 1 + body_len;
    let crc = crc32(&raw[..end]);
    raw[end..end + 4].copy_from_slice(&crc.to_le_bytes());
    let n = cobs::encode(&raw[..end + 4], out).map_err(|_| FrameError::TooLarge)?;
    *out.get_mut(n).ok_or(FrameError::TooLarge)? = 0;
    Ok(n + 1)
}

/// Decodes the bytes of one frame, without its delimiter.
pub fn decode(encoded: &[u8]) -> Result<Message, FrameError> {
    let mut raw = [0u8; MAX_FRAME];
    let n = cobs::decode(encoded, &mut raw).map_err(|e| match e {
        CobsError::Overflow => FrameError::Oversized,
        CobsError::Malformed => FrameError::Cobs,
    })?;
    if n < 5 {
        return Err(FrameError::TooShort);
    }
    let (data, crc) = raw[..n].split_at(n - 4);
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32(data) != expected {
        return Err(FrameError::Crc);
    }
    if data[0] != PROTOCOL_VERSION {
        return Err(FrameError::Version(data[0]));
    }
    match postcard::take_from_bytes::<Message>(&data[1..]) {
        Ok((msg, [])) => Ok(msg),
        _ => Err(FrameError::Body),
    }
}

/// Reassembles frames from a byte stream in a fixed buffer; resynchronises on every 0x00.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: [u8; MAX_ENCODED],
    len: usize,
    overflowed: bool,
    /// Frames decoded successfully.
    pub frames: u32,
    /// Frames refused (bad COBS, CRC, version, body, oversize).
    pub errors: u32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// An empty decoder.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_ENCODED],
            len: 0,
            overflowed: false,
            frames: 0,
            errors: 0,
        }
    }

    /// Feeds one byte; returns a result when it completes a frame.
    pub fn push(&mut self, byte: u8) -> Option<Result<Message, FrameError>> {
        if byte != 0 {
            if self.len == self.buf.len() {
                self.overflowed = true;
            } else if !self.overflowed {
                self.buf[self.len] = byte;
                self.len += 1;
            }
            return None;
        }
        let result = if self.overflowed {
            Some(Err(FrameError::Oversized))
        } else if self.len == 0 {
            None // back-to-back delimiters: an idle line, not an error
        } else {
            Some(decode(&self.buf[..self.len]))
        };
        self.len = 0;
        self.overflowed = false;
        match &result {
            Some(Ok(_)) => self.frames = self.frames.wrapping_add(1),
            Some(Err(_)) => self.errors = self.errors.wrapping_add(1),
            None => {}
        }
        result
    }

    /// Feeds a chunk of bytes, calling `on_frame` for each completed frame.
    pub fn feed(&mut self, bytes: &[u8], mut on_frame: impl FnMut(Result<Message, FrameError>)) {
        for &b in bytes {
            if let Some(r) = self.push(b) {
                on_frame(r);
            }
        }
    }
}
