//! `glance snapshot SRC OUT`: one frame from any source `glance run` takes, written as a JPEG
//! or PNG (by OUT's extension), and optionally the frame's bytes exactly as the source gave
//! them (`--raw`), so that glance's conversion can be compared with another tool's.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;

use crate::error::{Error, Result};
use crate::health::SourceHealth;
use crate::preprocess::DecodeLimits;
use crate::runtime::SourceSpec;
use crate::source::latest::Taken;
use crate::source::stream::{self, DropPolicy};
use crate::source::v4l2::{Camera, CameraConfig, PIX_MJPEG};
use crate::source::{convert, Frame, FrameData};

/// Takes one frame from `source`: from a camera, the one after `skip` frames (auto exposure
/// and white balance settle over the first ones), within `timeout`.
pub fn take_frame(
    source: &SourceSpec,
    camera: &CameraConfig,
    skip: usize,
    timeout: Duration,
) -> Result<Frame> {
    let gone = |reason: String| Error::Source {
        name: source.name(),
        reason,
    };
    match source {
        SourceSpec::Camera(path) => {
            let mut cam = Camera::open(path, camera)?;
            let until = Instant::now() + timeout;
            let mut seen = 0;
            loop {
                if Instant::now() > until {
                    return Err(Error::Camera {
                        path: path.clone(),
                        reason: format!("no frame within {} s", timeout.as_secs()),
                    });
                }
                let Some(c) = cam.capture(500)? else {
                    continue;
                };
                if seen < skip {
                    seen += 1;
                    continue;
                }
                return Ok(c.into_frame(format!("{}#{seen}", path.display())));
            }
        }
        SourceSpec::Files(spec) => {
            let first = crate::source::expand_source(spec)
                .into_iter()
                .next()
                .ok_or_else(|| gone("no image file there".into()))?;
            let path = first.map_err(|(p, e)| Error::Io { path: p, source: e })?;
            let bytes = std::fs::read(&path).map_err(|e| Error::Io {
                path: path.clone(),
                source: e,
            })?;
            let name = path.display().to_string();
            Ok(Frame::now(FrameData::Encoded(bytes), name, Some(path)))
        }
        SourceSpec::Stdin | SourceSpec::Recording(_) | SourceSpec::Exec(_) => {
            let stop = Arc::new(AtomicBool::new(false));
            let health = Arc::new(SourceHealth::default());
            let (h, s) = (Arc::clone(&health), Arc::clone(&stop));
            // Every frame in order, so the first is not replaced by a later one.
            let (mailbox, guard) = match source {
                SourceSpec::Stdin => (stream::start_stdin(DropPolicy::Never, h, s)?, None),
                SourceSpec::Recording(p) => (
                    stream::start_file(p.clone(), false, DropPolicy::Never, h, s)?,
                    None,
                ),
                SourceSpec::Exec(c) => {
                    let (m, g) = stream::start_exec(c.clone(), DropPolicy::Never, h, s)?;
                    (m, Some(g))
                }
                _ => unreachable!("matched above"),
            };
            let taken = mailbox.take(timeout);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            drop(guard);
            match taken {
                Taken::Value(frame) => Ok(frame),
                Taken::Timeout => Err(gone(format!("no frame within {} s", timeout.as_secs()))),
                Taken::Closed => Err(gone(
                    health
                        .gave_up()
                        .unwrap_or_else(|| "ended before its first frame".into()),
                )),
            }
        }
    }
}

/// What `--raw` wrote: the layout of the bytes, for another tool to read them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RawDescription {
    /// `MJPG`, or ffmpeg's name of the raw layout (`yuyv422`, `nv12`, …).
    pub format: String,
    /// Width in pixels (0 for a JPEG: its header says).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per luma (or packed) row.
    pub stride: u32,
    /// Bytes written.
    pub bytes: usize,
}

/// Writes `frame` to `out` as JPEG or PNG by its extension, and when `raw` is given the
/// frame's own bytes there; both atomically (a temporary file renamed into place).
pub fn write(frame: &Frame, out: &Path, raw: Option<&Path>) -> Result<Option<RawDescription>> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bytes = match ext.as_deref() {
        Some("jpg" | "jpeg") => match &frame.data {
            // A JPEG frame is written as it came (with the Huffman tables MJPEG leaves out).
            FrameData::Encoded(b) if b.starts_with(&[0xff, 0xd8]) => {
                convert::mjpeg_to_jpeg(b).into_owned()
            }
            _ => encode(
                &frame.rgb(DecodeLimits::default())?,
                image::ImageFormat::Jpeg,
                out,
            )?,
        },
        Some("png") => encode(
            &frame.rgb(DecodeLimits::default())?,
            image::ImageFormat::Png,
            out,
        )?,
        _ => {
            return Err(Error::InvalidSetting(format!(
                "{}: write a .jpg or .png file",
                out.display()
            )))
        }
    };
    crate::fsutil::write_atomic(out, &bytes)?;
    let Some(raw) = raw else {
        return Ok(None);
    };
    let (description, bytes) = match &frame.data {
        FrameData::Encoded(b) => (
            RawDescription {
                format: crate::source::v4l2::fourcc_text(PIX_MJPEG),
                width: 0,
                height: 0,
                stride: 0,
                bytes: b.len(),
            },
            b,
        ),
        FrameData::Raw {
            format,
            data,
            width,
            height,
            stride,
        } => (
            RawDescription {
                format: format.ffmpeg_name().into(),
                width: *width,
                height: *height,
                stride: *stride,
                bytes: data.len(),
            },
            data,
        ),
    };
    crate::fsutil::write_atomic(raw, bytes)?;
    Ok(Some(description))
}

fn encode(img: &RgbImage, format: image::ImageFormat, out: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let written = if format == image::ImageFormat::Jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 92).encode_image(img)
    } else {
        img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
    };
    written.map_err(|e| Error::Io {
        path: out.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    Ok(bytes)
}
