//! V4L2 capture (`/dev/videoN`): MJPEG or YUYV frames through memory-mapped streaming buffers.
//!
//! Kept deliberately small: open, set the format and frame rate, map four buffers, and hand out
//! each dequeued frame as bytes. Pixel conversion lives in [`super::convert`], where it is tested
//! on recorded frames. The kernel structures are declared here by hand (no bindgen, so the
//! binary cross-compiles without kernel headers); `tests/run.rs` checks their sizes and ioctl
//! numbers against `<linux/videodev2.h>` compiled by the C compiler.
//!
//! Not exercised on real hardware in CI: these machines have no camera and no v4l2loopback.

// Unsafe code here: V4L2 ioctls on #[repr(C)] kernel structs and mmap-ed capture buffers.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

mod describe;
pub(crate) use describe::fourcc_text;
pub use describe::{describe, list_devices, CameraInfo, FormatInfo, FrameSize};

/// A V4L2 four-character pixel format code.
pub(crate) const fn fourcc(code: &[u8; 4]) -> u32 {
    (code[0] as u32) | (code[1] as u32) << 8 | (code[2] as u32) << 16 | (code[3] as u32) << 24
}

/// Motion-JPEG: every frame a JPEG (maybe without Huffman tables).
pub const PIX_MJPEG: u32 = fourcc(b"MJPG");
/// Packed YUV 4:2:2.
pub const PIX_YUYV: u32 = fourcc(b"YUYV");

const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
const MEMORY_MMAP: u32 = 1;
const FIELD_ANY: u32 = 0;
const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
const CAP_STREAMING: u32 = 0x0400_0000;
const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
const BUFFERS: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct Capability {
    driver: [u8; 16],
    card: [u8; 32],
    bus_info: [u8; 32],
    version: u32,
    capabilities: u32,
    device_caps: u32,
    reserved: [u32; 3],
}

impl Capability {
    /// Whether this node captures video with streaming I/O. The node's own capabilities
    /// (`device_caps`) when the driver reports them, else the whole device's.
    fn streams_video(&self) -> bool {
        let caps = if self.capabilities & CAP_DEVICE_CAPS != 0 {
            self.device_caps
        } else {
            self.capabilities
        };
        caps & CAP_VIDEO_CAPTURE != 0 && caps & CAP_STREAMING != 0
    }
}

/// Opens a V4L2 node as glance does everywhere: read-write (buffers are queued), non-blocking
/// (capture waits in poll, so a stalled driver never blocks a read).
fn open_node(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[repr(C)]
#[derive(Clone, Copy)]
struct PixFormat {
    width: u32,
    height: u32,
    pixelformat: u32,
    field: u32,
    bytesperline: u32,
    sizeimage: u32,
    colorspace: u32,
    private: u32,
    flags: u32,
    ycbcr_enc: u32,
    quantization: u32,
    xfer_func: u32,
}

/// `v4l2_format.fmt`: 200 bytes, pointer-aligned (one member, `v4l2_window`, holds pointers).
#[repr(C)]
#[derive(Clone, Copy)]
union FormatUnion {
    pix: PixFormat,
    raw: [u8; 200],
    _align: *mut c_void,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Format {
    kind: u32,
    fmt: FormatUnion,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RequestBuffers {
    count: u32,
    kind: u32,
    memory: u32,
    capabilities: u32,
    flags: u8,
    reserved: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Timecode {
    kind: u32,
    flags: u32,
    frames: u8,
    seconds: u8,
    minutes: u8,
    hours: u8,
    userbits: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
union BufferM {
    offset: u32,
    userptr: libc::c_ulong,
    planes: *mut c_void,
    fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Buffer {
    index: u32,
    kind: u32,
    bytesused: u32,
    flags: u32,
    field: u32,
    timestamp: libc::timeval,
    timecode: Timecode,
    sequence: u32,
    memory: u32,
    m: BufferM,
    length: u32,
    reserved2: u32,
    request_fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Fract {
    numerator: u32,
    denominator: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CaptureParm {
    capability: u32,
    capturemode: u32,
    timeperframe: Fract,
    extendedmode: u32,
    readbuffers: u32,
    reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
union ParmUnion {
    capture: CaptureParm,
    raw: [u8; 200],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct StreamParm {
    kind: u32,
    parm: ParmUnion,
}

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((b'V' as u32) << 8) | nr
}
const W: u32 = 1;
const R: u32 = 2;
const VIDIOC_QUERYCAP: u32 = ioc(R, 0, size_of::<Capability>());
const VIDIOC_S_FMT: u32 = ioc(R | W, 5, size_of::<Format>());
const VIDIOC_REQBUFS: u32 = ioc(R | W, 8, size_of::<RequestBuffers>());
const VIDIOC_QUERYBUF: u32 = ioc(R | W, 9, size_of::<Buffer>());
const VIDIOC_QBUF: u32 = ioc(R | W, 15, size_of::<Buffer>());
const VIDIOC_DQBUF: u32 = ioc(R | W, 17, size_of::<Buffer>());
const VIDIOC_STREAMON: u32 = ioc(W, 18, size_of::<i32>());
const VIDIOC_STREAMOFF: u32 = ioc(W, 19, size_of::<i32>());
const VIDIOC_S_PARM: u32 = ioc(R | W, 22, size_of::<StreamParm>());
const VIDIOC_G_PARM: u32 = ioc(R | W, 21, size_of::<StreamParm>());
const VIDIOC_G_FMT: u32 = ioc(R | W, 4, size_of::<Format>());
const VIDIOC_TRY_FMT: u32 = ioc(R | W, 64, size_of::<Format>());
const VIDIOC_ENUM_FMT: u32 = ioc(R | W, 2, size_of::<FmtDesc>());
const VIDIOC_ENUM_FRAMESIZES: u32 = ioc(R | W, 74, size_of::<FrmSizeEnum>());
const VIDIOC_ENUM_FRAMEINTERVALS: u32 = ioc(R | W, 75, size_of::<FrmIvalEnum>());

/// `v4l2_fmtdesc`.
#[repr(C)]
#[derive(Clone, Copy)]
struct FmtDesc {
    index: u32,
    kind: u32,
    flags: u32,
    description: [u8; 32],
    pixelformat: u32,
    mbus_code: u32,
    reserved: [u32; 3],
}

/// `v4l2_frmsizeenum`: a discrete size, or a stepwise range in `sizes`.
#[repr(C)]
#[derive(Clone, Copy)]
struct FrmSizeEnum {
    index: u32,
    pixel_format: u32,
    kind: u32,
    /// discrete: width, height; stepwise: min_width, max_width, step_width, min_height,
    /// max_height, step_height.
    sizes: [u32; 6],
    reserved: [u32; 2],
}

/// `v4l2_frmivalenum`: a discrete interval, or a stepwise range in `fracts` (min, max, step).
#[repr(C)]
#[derive(Clone, Copy)]
struct FrmIvalEnum {
    index: u32,
    pixel_format: u32,
    width: u32,
    height: u32,
    kind: u32,
    fracts: [Fract; 3],
    reserved: [u32; 2],
}

/// Sizes and ioctl numbers of the hand-declared kernel ABI, for the test that compares them
/// with `<linux/videodev2.h>`.
pub fn abi() -> Vec<(&'static str, u64)> {
    vec![
        ("sizeof_v4l2_capability", size_of::<Capability>() as u64),
        ("sizeof_v4l2_format", size_of::<Format>() as u64),
        (
            "sizeof_v4l2_requestbuffers",
            size_of::<RequestBuffers>() as u64,
        ),
        ("sizeof_v4l2_buffer", size_of::<Buffer>() as u64),
        ("sizeof_v4l2_streamparm", size_of::<StreamParm>() as u64),
        ("VIDIOC_QUERYCAP", u64::from(VIDIOC_QUERYCAP)),
        ("VIDIOC_S_FMT", u64::from(VIDIOC_S_FMT)),
        ("VIDIOC_REQBUFS", u64::from(VIDIOC_REQBUFS)),
        ("VIDIOC_QUERYBUF", u64::from(VIDIOC_QUERYBUF)),
        ("VIDIOC_QBUF", u64::from(VIDIOC_QBUF)),
        ("VIDIOC_DQBUF", u64::from(VIDIOC_DQBUF)),
        ("VIDIOC_STREAMON", u64::from(VIDIOC_STREAMON)),
        ("VIDIOC_STREAMOFF", u64::from(VIDIOC_STREAMOFF)),
        ("VIDIOC_S_PARM", u64::from(VIDIOC_S_PARM)),
        ("VIDIOC_G_PARM", u64::from(VIDIOC_G_PARM)),
        ("VIDIOC_G_FMT", u64::from(VIDIOC_G_FMT)),
        ("VIDIOC_TRY_FMT", u64::from(VIDIOC_TRY_FMT)),
        ("VIDIOC_ENUM_FMT", u64::from(VIDIOC_ENUM_FMT)),
        ("VIDIOC_ENUM_FRAMESIZES", u64::from(VIDIOC_ENUM_FRAMESIZES)),
        (
            "VIDIOC_ENUM_FRAMEINTERVALS",
            u64::from(VIDIOC_ENUM_FRAMEINTERVALS),
        ),
        ("sizeof_v4l2_fmtdesc", size_of::<FmtDesc>() as u64),
        ("sizeof_v4l2_frmsizeenum", size_of::<FrmSizeEnum>() as u64),
        ("sizeof_v4l2_frmivalenum", size_of::<FrmIvalEnum>() as u64),
    ]
}

/// What to ask the camera for.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// Width and height requested (the driver picks the nearest it supports).
    pub size: (u32, u32),
    /// Frames per second requested.
    pub fps: u32,
    /// Pixel formats to try, in order ([`PIX_MJPEG`], [`PIX_YUYV`]).
    pub formats: Vec<u32>,
}

/// One captured frame.
#[derive(Debug)]
pub struct Captured {
    /// The bytes the driver filled.
    pub data: Vec<u8>,
    /// Its pixel format.
    pub pixelformat: u32,
    /// Width, height and bytes per row.
    pub width: u32,
    /// Height in rows.
    pub height: u32,
    /// Bytes per row (YUYV).
    pub stride: u32,
    /// How long ago the driver stamped the buffer, when it stamps on the monotonic clock (as
    /// UVC and most drivers do); `None` otherwise.
    pub age: Option<std::time::Duration>,
}

impl Captured {
    /// The frame glance decides: raw layouts it converts kept as they are, anything else
    /// (MJPEG) as encoded bytes; captured at the driver's timestamp when it gives one on the
    /// monotonic clock, else now.
    pub fn into_frame(self, name: String) -> crate::source::Frame {
        use crate::source::{convert::RawFormat, Frame, FrameData};
        let data = match RawFormat::from_fourcc(self.pixelformat) {
            Some(format) => FrameData::Raw {
                format,
                data: self.data,
                width: self.width,
                height: self.height,
                stride: self.stride,
            },
            None => FrameData::Encoded(self.data),
        };
        Frame::captured(data, name, None, self.age.unwrap_or_default())
    }
}

/// `v4l2_buffer.flags`: which clock `timestamp` is on.
const BUF_FLAG_TIMESTAMP_MASK: u32 = 0x0000_e000;
const BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x0000_2000;

/// How long ago a buffer stamped at `ts` on the monotonic clock was filled.
fn age_of(ts: libc::timeval) -> Option<std::time::Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return None;
    }
    let now_us = i128::from(now.tv_sec) * 1_000_000 + i128::from(now.tv_nsec) / 1000;
    let ts_us = i128::from(ts.tv_sec) * 1_000_000 + i128::from(ts.tv_usec);
    let age = now_us - ts_us;
    // A stamp in the future or older than a minute is not one to trust.
    (0..60_000_000)
        .contains(&age)
        .then(|| std::time::Duration::from_micros(age as u64))
}

struct Mapping {
    ptr: *mut c_void,
    len: usize,
}

/// An open, streaming camera.
pub struct Camera {
    file: File,
    path: PathBuf,
    maps: Vec<Mapping>,
    format: PixFormat,
    fps: Option<f64>,
}

// SAFETY: the raw mapping pointers are owned by the Camera and only touched through `&mut
// self`, so moving it to another thread cannot alias them.
unsafe impl Send for Camera {}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera").field("path", &self.path).finish()
    }
}

fn xioctl<T>(file: &File, request: u32, arg: &mut T) -> std::io::Result<()> {
    loop {
        // SAFETY: `arg` is a live, correctly sized #[repr(C)] struct matching `request`.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), request as _, arg as *mut T) };
        if r != -1 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn zeroed<T: Copy>() -> T {
    // SAFETY: only used for the plain-data kernel structs above, for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

impl Camera {
    /// Whether `path` is a V4L2 device that can capture video with streaming I/O: `Ok(false)`
    /// for anything else that opens (a tty, `/dev/null`), an error when it cannot be opened.
    pub fn is_capture_device(path: &Path) -> std::io::Result<bool> {
        let file = open_node(path)?;
        let mut cap: Capability = zeroed();
        if xioctl(&file, VIDIOC_QUERYCAP, &mut cap).is_err() {
            return Ok(false);
        }
        Ok(cap.streams_video())
    }

    /// Opens `path`, negotiates a format and starts streaming.
    pub fn open(path: &Path, config: &CameraConfig) -> Result<Self> {
        let err = |what: &str, e: std::io::Error| Error::Camera {
            path: path.to_path_buf(),
            reason: format!("{what}: {e}"),
        };
        let file = open_node(path).map_err(|e| err("cannot open", e))?;
        let mut cap: Capability = zeroed();
        xioctl(&file, VIDIOC_QUERYCAP, &mut cap)
            .map_err(|e| err("not a V4L2 device (VIDIOC_QUERYCAP)", e))?;
        if !cap.streams_video() {
            return Err(Error::Camera {
                path: path.to_path_buf(),
                reason: "the device cannot capture video with streaming I/O".into(),
            });
        }
        // The formats it offers, in glance's order of preference; a driver that enumerates
        // nothing is asked for each in turn.
        let offered = describe::enum_formats(&file);
        let wanted: Vec<u32> = if offered.is_empty() {
            config.formats.clone()
        } else {
            config
                .formats
                .iter()
                .copied()
                .filter(|c| offered.contains(c))
                .collect()
        };
        let mut chosen = None;
        for &want in &wanted {
            let mut f: Format = zeroed();
            f.kind = BUF_TYPE_VIDEO_CAPTURE;
            f.fmt.pix = PixFormat {
                width: config.size.0,
                height: config.size.1,
                pixelformat: want,
                field: FIELD_ANY,
                ..zeroed()
            };
            if xioctl(&file, VIDIOC_S_FMT, &mut f).is_ok() {
                // SAFETY: the driver filled the `pix` member for a capture buffer type.
                let pix = unsafe { f.fmt.pix };
                if pix.pixelformat == want {
                    chosen = Some(pix);
                    break;
                }
            }
        }
        let Some(format) = chosen else {
            let names = |codes: &[u32]| {
                codes
                    .iter()
                    .map(|&c| describe::fourcc_text(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Error::Camera {
                path: path.to_path_buf(),
                reason: format!(
                    "the camera offers {} but glance reads {} (`glance cameras` lists what it has)",
                    if offered.is_empty() {
                        "no format it names".into()
                    } else {
                        names(&offered)
                    },
                    names(&config.formats)
                ),
            });
        };
        if config.fps > 0 {
            let mut p: StreamParm = zeroed();
            p.kind = BUF_TYPE_VIDEO_CAPTURE;
            p.parm.capture = CaptureParm {
                timeperframe: Fract {
                    numerator: 1,
                    denominator: config.fps,
                },
                ..zeroed()
            };
            if let Err(e) = xioctl(&file, VIDIOC_S_PARM, &mut p) {
                log::warn!("{}: cannot set {} fps: {e}", path.display(), config.fps);
            }
        }
        // What the driver settled on, which may differ from what was asked.
        let mut p: StreamParm = zeroed();
        p.kind = BUF_TYPE_VIDEO_CAPTURE;
        let fps = xioctl(&file, VIDIOC_G_PARM, &mut p).ok().and_then(|()| {
            // SAFETY: the driver filled the `capture` member for a capture buffer type.
            let t = unsafe { p.parm.capture }.timeperframe;
            (t.numerator > 0).then(|| f64::from(t.denominator) / f64::from(t.numerator))
        });
        let mut req = RequestBuffers {
            count: BUFFERS,
            kind: BUF_TYPE_VIDEO_CAPTURE,
            memory: MEMORY_MMAP,
            ..zeroed()
        };
        xioctl(&file, VIDIOC_REQBUFS, &mut req).map_err(|e| err("VIDIOC_REQBUFS", e))?;
        if req.count == 0 {
            return Err(Error::Camera {
                path: path.to_path_buf(),
                reason: "the driver granted no buffers".into(),
            });
        }
        let mut cam = Camera {
            file,
            path: path.to_path_buf(),
            maps: Vec::new(),
            format,
            fps,
        };
        for index in 0..req.count {
            let mut b = cam.buffer(index);
            xioctl(&cam.file, VIDIOC_QUERYBUF, &mut b).map_err(|e| err("VIDIOC_QUERYBUF", e))?;
            // SAFETY: mapping the driver's buffer at the offset it gave; unmapped in Drop.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    b.length as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    cam.file.as_raw_fd(),
                    b.m.offset as libc::off_t,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(err("mmap", std::io::Error::last_os_error()));
            }
            cam.maps.push(Mapping {
                ptr,
                len: b.length as usize,
            });
            xioctl(&cam.file, VIDIOC_QBUF, &mut b).map_err(|e| err("VIDIOC_QBUF", e))?;
        }
        let mut kind = BUF_TYPE_VIDEO_CAPTURE as i32;
        xioctl(&cam.file, VIDIOC_STREAMON, &mut kind).map_err(|e| err("VIDIOC_STREAMON", e))?;
        Ok(cam)
    }

    fn buffer(&self, index: u32) -> Buffer {
        Buffer {
            index,
            kind: BUF_TYPE_VIDEO_CAPTURE,
            memory: MEMORY_MMAP,
            ..zeroed()
        }
    }

    /// The frame rate the driver settled on, when it says.
    pub fn fps(&self) -> Option<f64> {
        self.fps
    }

    /// The negotiated width, height and pixel format.
    pub fn format(&self) -> (u32, u32, u32) {
        (
            self.format.width,
            self.format.height,
            self.format.pixelformat,
        )
    }

    /// Waits up to `timeout_ms` for the next frame; `Ok(None)` on timeout.
    pub fn capture(&mut self, timeout_ms: i32) -> Result<Option<Captured>> {
        let err = |what: &str, e: std::io::Error| Error::Camera {
            path: self.path.clone(),
            reason: format!("{what}: {e}"),
        };
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(err("poll", e));
        }
        if n == 0 {
            return Ok(None);
        }
        if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Err(Error::Camera {
                path: self.path.clone(),
                reason: "the device reported an error or went away".into(),
            });
        }
        let mut b = self.buffer(0);
        match xioctl(&self.file, VIDIOC_DQBUF, &mut b) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(err("VIDIOC_DQBUF", e)),
        }
        let map = self
            .maps
            .get(b.index as usize)
            .ok_or_else(|| Error::Camera {
                path: self.path.clone(),
                reason: format!("driver returned unknown buffer {}", b.index),
            })?;
        let used = (b.bytesused as usize).min(map.len);
        // SAFETY: the mapping is `map.len` bytes long and the driver has finished with it.
        let data = unsafe { std::slice::from_raw_parts(map.ptr as *const u8, used) }.to_vec();
        xioctl(&self.file, VIDIOC_QBUF, &mut b).map_err(|e| err("VIDIOC_QBUF", e))?;
        let age = (b.flags & BUF_FLAG_TIMESTAMP_MASK == BUF_FLAG_TIMESTAMP_MONOTONIC)
            .then(|| age_of(b.timestamp))
            .flatten();
        Ok(Some(Captured {
            data,
            pixelformat: self.format.pixelformat,
            width: self.format.width,
            height: self.format.height,
            stride: self.format.bytesperline,
            age,
        }))
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let mut kind = BUF_TYPE_VIDEO_CAPTURE as i32;
        let _ = xioctl(&self.file, VIDIOC_STREAMOFF, &mut kind);
        for m in &self.maps {
            // SAFETY: unmapping exactly what `open` mapped.
            unsafe {
                libc::munmap(m.ptr, m.len);
            }
        }
    }
}
