//! Where frames come from: image files, folders and globs; an MJPEG stream on stdin, in a
//! recorded file or from a command (`exec:`); a V4L2 camera. Live sources never queue without bound: a capture thread keeps only the newest frame
//! ([`latest::Latest`]) and counts the ones it replaced.

pub(crate) mod convert;
pub(crate) mod files;
pub(crate) mod latest;
pub(crate) mod live;
pub(crate) mod mjpeg;
pub(crate) mod sniff;
pub(crate) mod stream;
pub(crate) mod v4l2;

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

pub use files::expand_paths;
#[cfg(feature = "host")]
pub(crate) use files::has_image_extension;
pub(crate) use files::{expand_source, has_unsupported_image_extension};

/// The pixels of one frame, as the source delivered them.
#[derive(Debug, Clone)]
pub enum FrameData {
    /// An encoded image (JPEG from a stream or camera, any format from a file).
    Encoded(Vec<u8>),
    /// Uncompressed pixels from a camera (YUYV, UYVY, NV12, YU12).
    Raw {
        /// Their layout.
        format: convert::RawFormat,
        /// The bytes, as the driver filled its buffer.
        data: Vec<u8>,
        /// Width in pixels.
        width: u32,
        /// Height in rows.
        height: u32,
        /// Bytes per luma (or packed) row.
        stride: u32,
    },
}

/// One frame and where it came from.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The pixels.
    pub data: FrameData,
    /// A name for messages: the file path, or `SRC#N`.
    pub name: String,
    /// When it was captured: the camera driver's timestamp of the buffer, else when it was
    /// read (a stream, a file).
    pub captured: SystemTime,
    /// The same moment on the monotonic clock, from which the capture-to-decision latency of
    /// its decision is measured.
    pub captured_at: Instant,
    /// The file it came from, for file sources.
    pub path: Option<PathBuf>,
}

impl Frame {
    /// A frame captured now.
    pub fn now(data: FrameData, name: String, path: Option<PathBuf>) -> Self {
        Self::captured(data, name, path, std::time::Duration::ZERO)
    }

    /// A frame captured `age` ago (a camera buffer's timestamp).
    pub fn captured(
        data: FrameData,
        name: String,
        path: Option<PathBuf>,
        age: std::time::Duration,
    ) -> Self {
        let (now, now_at) = (SystemTime::now(), Instant::now());
        Self {
            data,
            name,
            captured: now.checked_sub(age).unwrap_or(now),
            captured_at: now_at.checked_sub(age).unwrap_or(now_at),
            path,
        }
    }

    /// Its pixels as glance sees them: decoded (MJPEG with its Huffman tables put back) within
    /// `limits`, or converted from a raw camera layout to RGB.
    pub fn rgb(&self, limits: crate::preprocess::DecodeLimits) -> crate::Result<image::RgbImage> {
        match &self.data {
            FrameData::Encoded(bytes) => {
                let name = self
                    .path
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(&self.name));
                crate::preprocess::decode_bytes(&convert::mjpeg_to_jpeg(bytes), &name, limits)
            }
            FrameData::Raw {
                format,
                data,
                width,
                height,
                stride,
            } => convert::raw_to_rgb(*format, data, *width, *height, *stride),
        }
    }

    /// Milliseconds since the Unix epoch of the capture time.
    pub fn time_ms(&self) -> u64 {
        self.captured
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}
