//! `glance cameras` and `glance snapshot`: the first commands on a new board. What the video
//! devices offer (as `v4l2-ctl --list-formats-ext` shows it) and what glance would stream, and
//! one frame from any source written to a file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;

use crate::Format;

/// Camera pixel format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PixelFormat {
    /// MJPEG if offered, else YUYV, UYVY, NV12, YU12 (the first the camera offers).
    Auto,
    /// Motion-JPEG only.
    Mjpeg,
    /// YUYV 4:2:2 only.
    Yuyv,
    /// UYVY 4:2:2 only.
    Uyvy,
    /// NV12 4:2:0 only.
    Nv12,
    /// YU12 (I420) 4:2:0 only.
    Yu12,
}

impl PixelFormat {
    /// The V4L2 codes to ask for, in order.
    pub(crate) fn codes(self) -> Vec<u32> {
        use glance::RawFormat;
        match self {
            Self::Auto => glance::preferred_formats(),
            Self::Mjpeg => vec![glance::PIX_MJPEG],
            Self::Yuyv => vec![RawFormat::Yuyv.fourcc()],
            Self::Uyvy => vec![RawFormat::Uyvy.fourcc()],
            Self::Nv12 => vec![RawFormat::Nv12.fourcc()],
            Self::Yu12 => vec![RawFormat::Yu12.fourcc()],
        }
    }
}

#[derive(clap::Args, Debug)]
pub(crate) struct CamerasArgs {
    /// Devices to describe [default: every /dev/video*].
    #[arg(value_name = "DEVICE")]
    devices: Vec<PathBuf>,
    /// The frame size glance would ask for (to say what it would stream).
    #[arg(long, default_value = "640x480", value_name = "WxH")]
    size: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub(crate) fn cameras(args: CamerasArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let size = glance::commands::parse_size(&args.size).map_err(anyhow::Error::msg)?;
    let devices = if args.devices.is_empty() {
        glance::video_devices()
    } else {
        args.devices
    };
    let mut out = std::io::stdout().lock();
    if devices.is_empty() {
        eprintln!("glance: no /dev/video* device: is a camera plugged in (and its driver loaded)?");
        return Ok(ExitCode::from(1));
    }
    let mut failed = false;
    for path in devices {
        match glance::describe_camera(&path, size, &glance::preferred_formats()) {
            Ok(info) => match args.format {
                Format::Json => writeln!(out, "{}", serde_json::to_string(&info)?)?,
                Format::Text => info.write_text(&mut out)?,
            },
            Err(e) => {
                failed = true;
                eprintln!("glance: {}: {e}", path.display());
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(clap::Args, Debug)]
pub(crate) struct SnapshotArgs {
    /// Where the frame comes from: `/dev/videoN`, `-` (MJPEG on stdin), `exec:COMMAND`, a
    /// `.mjpeg` recording, or an image file.
    #[arg(value_name = "SRC")]
    source: String,
    /// The file to write: `.jpg` (a camera's JPEG as it came, else encoded) or `.png`
    /// (glance's own pixels, lossless).
    #[arg(value_name = "OUT")]
    out: PathBuf,
    /// Also write the frame's bytes exactly as the source gave them (raw YUV, or the JPEG),
    /// and print their layout as JSON.
    #[arg(long, value_name = "FILE")]
    raw: Option<PathBuf>,
    /// Camera frame size.
    #[arg(long, default_value = "640x480", value_name = "WxH")]
    size: String,
    /// Camera frame rate.
    #[arg(long, default_value_t = 15)]
    fps: u32,
    /// Camera pixel format.
    #[arg(long, value_enum, default_value_t = PixelFormat::Auto)]
    pixel_format: PixelFormat,
    /// Camera frames to let pass first (auto exposure settles over them).
    #[arg(long, default_value_t = 5, value_name = "N")]
    skip: usize,
    /// Seconds to wait for the frame.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
}

pub(crate) fn snapshot(args: SnapshotArgs) -> anyhow::Result<ExitCode> {
    let mut camera = glance::default_camera();
    camera.size = glance::commands::parse_size(&args.size).map_err(anyhow::Error::msg)?;
    camera.fps = args.fps;
    camera.formats = args.pixel_format.codes();
    let source = glance::SourceSpec::parse(&args.source);
    let frame = glance::snapshot::take_frame(
        &source,
        &camera,
        args.skip,
        Duration::from_secs(args.timeout.max(1)),
    )?;
    let raw = glance::snapshot::write(&frame, &args.out, args.raw.as_deref())?;
    if let Some(r) = raw {
        println!("{}", serde_json::to_string(&r)?);
    }
    eprintln!("glance: {} → {}", frame.name, args.out.display());
    Ok(ExitCode::SUCCESS)
}
