//! What a V4L2 device offers, the way `v4l2-ctl --list-formats-ext` shows it: driver, card and
//! bus, each pixel format with its sizes and frame rates, and what glance would stream from it
//! (`glance cameras`). Nothing here starts streaming: formats are tried with VIDIOC_TRY_FMT.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{
    open_node, xioctl, zeroed, Capability, FmtDesc, Format, FrmIvalEnum, FrmSizeEnum, PixFormat,
    BUF_TYPE_VIDEO_CAPTURE, FIELD_ANY, VIDIOC_ENUM_FMT, VIDIOC_ENUM_FRAMEINTERVALS,
    VIDIOC_ENUM_FRAMESIZES, VIDIOC_QUERYCAP, VIDIOC_TRY_FMT,
};
use crate::source::convert::RawFormat;

/// `v4l2_fmtdesc.flags`: a compressed format.
const FMT_FLAG_COMPRESSED: u32 = 1;
/// `v4l2_frmsizeenum.type` and `v4l2_frmivalenum.type`.
const FRMSIZE_TYPE_DISCRETE: u32 = 1;
/// Enumerations stop here even if a driver never says it has no more.
const MAX_ENTRIES: u32 = 256;

/// One device node and what it offers.
#[derive(Debug, Clone, Serialize)]
pub struct CameraInfo {
    /// The node, `/dev/videoN`.
    pub path: PathBuf,
    /// The driver (`uvcvideo`, `vivid`, `unicam`, …).
    pub driver: String,
    /// The card's name.
    pub card: String,
    /// Where it is attached (`usb-0000:01:00.0-1.2`, `platform:…`).
    pub bus: String,
    /// Whether it captures video with streaming I/O (a UVC camera's second node, for
    /// metadata, does not).
    pub captures: bool,
    /// Its capture formats.
    pub formats: Vec<FormatInfo>,
    /// What glance would stream for the size asked: format code, width, height; `None` when it
    /// offers no format glance reads.
    pub glance_would_use: Option<(String, u32, u32)>,
}

/// One pixel format of a device.
#[derive(Debug, Clone, Serialize)]
pub struct FormatInfo {
    /// The four-character code (`MJPG`, `YUYV`, …).
    pub fourcc: String,
    /// The driver's description.
    pub description: String,
    /// A compressed format.
    pub compressed: bool,
    /// Whether glance reads it (MJPEG, YUYV, UYVY, NV12, YU12).
    pub supported: bool,
    /// Its frame sizes.
    pub sizes: Vec<FrameSize>,
}

/// A frame size, discrete (with its frame rates) or a range.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum FrameSize {
    /// One size and the frame rates offered at it (frames per second).
    Discrete {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Frame rates, highest first (a continuous range gives its two ends).
        fps: Vec<f64>,
    },
    /// Any size in a range (`step` apart).
    Range {
        /// Smallest width and height.
        min: (u32, u32),
        /// Largest.
        max: (u32, u32),
        /// Step.
        step: (u32, u32),
    },
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_owned()
}

/// The four characters of a pixel format code.
pub(crate) fn fourcc_text(code: u32) -> String {
    code.to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

/// The `/dev/video*` nodes, in number order.
pub fn list_devices() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// What `path` offers, and what glance would stream from it at `size` with `preferred`
/// formats (most wanted first).
pub fn describe(path: &Path, size: (u32, u32), preferred: &[u32]) -> std::io::Result<CameraInfo> {
    let file = open_node(path)?;
    let mut cap: Capability = zeroed();
    xioctl(&file, VIDIOC_QUERYCAP, &mut cap)?;
    let captures = cap.streams_video();
    let mut info = CameraInfo {
        path: path.to_path_buf(),
        driver: text(&cap.driver),
        card: text(&cap.card),
        bus: text(&cap.bus_info),
        captures,
        formats: Vec::new(),
        glance_would_use: None,
    };
    if !captures {
        return Ok(info);
    }
    for index in 0..MAX_ENTRIES {
        let mut d: FmtDesc = zeroed();
        d.index = index;
        d.kind = BUF_TYPE_VIDEO_CAPTURE;
        if xioctl(&file, VIDIOC_ENUM_FMT, &mut d).is_err() {
            break;
        }
        let supported =
            d.pixelformat == super::PIX_MJPEG || RawFormat::from_fourcc(d.pixelformat).is_some();
        info.formats.push(FormatInfo {
            fourcc: fourcc_text(d.pixelformat),
            description: text(&d.description),
            compressed: d.flags & FMT_FLAG_COMPRESSED != 0,
            supported,
            sizes: sizes(&file, d.pixelformat),
        });
    }
    let offered: Vec<u32> = enum_formats(&file);
    info.glance_would_use = pick(preferred, &offered)
        .and_then(|code| try_format(&file, code, size).map(|(w, h)| (fourcc_text(code), w, h)));
    Ok(info)
}

/// The codes of the capture formats `file` offers, in the driver's order.
pub(super) fn enum_formats(file: &File) -> Vec<u32> {
    let mut out = Vec::new();
    for index in 0..MAX_ENTRIES {
        let mut d: FmtDesc = zeroed();
        d.index = index;
        d.kind = BUF_TYPE_VIDEO_CAPTURE;
        if xioctl(file, VIDIOC_ENUM_FMT, &mut d).is_err() {
            break;
        }
        out.push(d.pixelformat);
    }
    out
}

/// The first of `preferred` that the device `offered`.
pub(super) fn pick(preferred: &[u32], offered: &[u32]) -> Option<u32> {
    preferred.iter().copied().find(|c| offered.contains(c))
}

/// The size the driver would give for `code` at `size` (VIDIOC_TRY_FMT changes nothing).
fn try_format(file: &File, code: u32, size: (u32, u32)) -> Option<(u32, u32)> {
    let mut f: Format = zeroed();
    f.kind = BUF_TYPE_VIDEO_CAPTURE;
    f.fmt.pix = PixFormat {
        width: size.0,
        height: size.1,
        pixelformat: code,
        field: FIELD_ANY,
        ..zeroed()
    };
    xioctl(file, VIDIOC_TRY_FMT, &mut f).ok()?;
    // SAFETY: the driver filled the `pix` member for a capture buffer type.
    let pix = unsafe { f.fmt.pix };
    (pix.pixelformat == code).then_some((pix.width, pix.height))
}

fn sizes(file: &File, code: u32) -> Vec<FrameSize> {
    let mut out = Vec::new();
    for index in 0..MAX_ENTRIES {
        let mut s: FrmSizeEnum = zeroed();
        s.index = index;
        s.pixel_format = code;
        if xioctl(file, VIDIOC_ENUM_FRAMESIZES, &mut s).is_err() {
            break;
        }
        if s.kind == FRMSIZE_TYPE_DISCRETE {
            let (width, height) = (s.sizes[0], s.sizes[1]);
            out.push(FrameSize::Discrete {
                width,
                height,
                fps: rates(file, code, width, height),
            });
        } else {
            // Stepwise or continuous: one entry describes the whole range.
            out.push(FrameSize::Range {
                min: (s.sizes[0], s.sizes[3]),
                max: (s.sizes[1], s.sizes[4]),
                step: (s.sizes[2], s.sizes[5]),
            });
            break;
        }
    }
    out
}

fn rates(file: &File, code: u32, width: u32, height: u32) -> Vec<f64> {
    let fps = |f: super::Fract| {
        if f.numerator == 0 {
            0.0
        } else {
            f64::from(f.denominator) / f64::from(f.numerator)
        }
    };
    let mut out = Vec::new();
    for index in 0..MAX_ENTRIES {
        let mut i: FrmIvalEnum = zeroed();
        i.index = index;
        i.pixel_format = code;
        i.width = width;
        i.height = height;
        if xioctl(file, VIDIOC_ENUM_FRAMEINTERVALS, &mut i).is_err() {
            break;
        }
        if i.kind == FRMSIZE_TYPE_DISCRETE {
            out.push(fps(i.fracts[0]));
        } else {
            // A range of intervals: its fastest and slowest rates.
            out.push(fps(i.fracts[0]));
            out.push(fps(i.fracts[1]));
            break;
        }
    }
    out.sort_by(|a, b| b.total_cmp(a));
    out.dedup();
    out
}

impl CameraInfo {
    /// The listing for people, in `v4l2-ctl --list-formats-ext`'s shape.
    pub fn write_text(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{}: {} ({}, {})",
            self.path.display(),
            self.card,
            self.driver,
            self.bus
        )?;
        if !self.captures {
            return writeln!(out, "  not a video capture node (metadata or output)");
        }
        for f in &self.formats {
            let note = if f.supported {
                ""
            } else {
                "  (glance does not read it)"
            };
            writeln!(
                out,
                "  [{}] '{}' {}{note}",
                if f.compressed { "c" } else { " " },
                f.fourcc,
                f.description
            )?;
            for s in &f.sizes {
                match s {
                    FrameSize::Discrete { width, height, fps } => {
                        let rates: Vec<String> = fps.iter().map(|r| format!("{r:.3}")).collect();
                        writeln!(out, "      {width}x{height}  fps {}", rates.join(", "))?;
                    }
                    FrameSize::Range { min, max, step } => writeln!(
                        out,
                        "      {}x{} - {}x{} step {}x{}",
                        min.0, min.1, max.0, max.1, step.0, step.1
                    )?,
                }
            }
        }
        match &self.glance_would_use {
            Some((code, w, h)) => writeln!(out, "  glance would stream {code} {w}x{h}"),
            None => writeln!(out, "  glance reads none of these formats"),
        }
    }
}
