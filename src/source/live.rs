//! The capture thread of a V4L2 camera (streams are in [`super::stream`]).
//!
//! The thread only moves frames into a [`Latest`] mailbox (newest frame wins, the ones it
//! replaced are counted, unless told to drop nothing) and closes the mailbox when it ends, so a
//! burst of frames never queues and the run loop never waits on capture. It reopens a camera
//! that goes away, with back-off, and reports through [`SourceHealth`] meanwhile.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::health::SourceHealth;
use crate::source::convert::RawFormat;
use crate::source::latest::Latest;
use crate::source::stream::DropPolicy;
use crate::source::v4l2::{Camera, CameraConfig, PIX_MJPEG};
use crate::source::Frame;

/// The longest wait between two attempts to open a camera that failed: opening is a few system
/// calls, so a camera back from an unplug (or a driver's disconnect) streams again within it.
const MAX_RETRY: Duration = Duration::from_secs(1);
/// A camera that streams but gives no frame for this long (nor for five of its frame
/// intervals, when those are longer) is closed and opened again: some USB cameras stall
/// without an error, and a device held open cannot be removed and added again (v4l2loopback).
/// Shorter than the run's STALLED, so the reopen comes before the watchdog gives up.
const STALL_REOPEN: Duration = Duration::from_secs(5);
/// How often a camera that keeps failing is logged again.
const RETRY_LOG_EVERY: Duration = Duration::from_secs(60);

/// The pixel formats glance asks a camera for, most wanted first: MJPEG (least bandwidth on
/// USB; decoded by the prepare thread), then the uncompressed ones it converts.
pub fn preferred_formats() -> Vec<u32> {
    let mut f = vec![PIX_MJPEG];
    f.extend(
        [
            RawFormat::Yuyv,
            RawFormat::Uyvy,
            RawFormat::Nv12,
            RawFormat::Yu12,
        ]
        .map(RawFormat::fourcc),
    );
    f
}

/// The camera settings glance asks for by default.
pub fn default_camera() -> CameraConfig {
    CameraConfig {
        size: (640, 480),
        fps: 15,
        formats: preferred_formats(),
    }
}

/// Starts the camera thread for `path`; its mailbox closes when `stop` is set or when a
/// camera that never opened is given up on (the reason is then in `health`).
pub(crate) fn start_camera(
    path: PathBuf,
    config: CameraConfig,
    wait: Duration,
    policy: DropPolicy,
    health: Arc<SourceHealth>,
    stop: Arc<AtomicBool>,
) -> Result<Arc<Latest<Frame>>> {
    // A device that is there but is not a V4L2 capture device (a tty, /dev/null) never will
    // be one: refuse it at start instead of retrying forever while the watchdog is fed. A
    // camera that is missing or busy is waited for up to `wait` (a USB camera may still be
    // enumerating at boot); one that opened once and then failed is retried with back-off
    // forever, reported through `health` meanwhile.
    if let Ok(false) = Camera::is_capture_device(&path) {
        return Err(Error::Camera {
            path: path.clone(),
            reason: "not a camera: it is not a V4L2 device that captures video with streaming \
                     I/O (`v4l2-ctl --list-devices` lists the cameras there are)"
                .into(),
        });
    }
    let mailbox = Arc::new(Latest::new());
    let out = Arc::clone(&mailbox);
    let thread_path = path.clone();
    std::thread::Builder::new()
        .name("camera".into())
        .spawn(move || {
            let path = thread_path;
            let started = Instant::now();
            let mut opened = false;
            let mut last_logged: Option<Instant> = None;
            let mut backoff = Duration::from_millis(500);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match Camera::open(&path, &config) {
                    Ok(mut cam) => {
                        opened = true;
                        last_logged = None;
                        // Fine again at the first frame, not at the open: a camera that opens
                        // and then stalls stays in trouble.
                        let mut delivering = false;
                        let (w, h, f) = cam.format();
                        let fps = cam
                            .fps()
                            .map_or_else(String::new, |r| format!(" at {r:.3} fps"));
                        log::info!(
                            "{}: streaming {w}×{h} {}{fps}",
                            path.display(),
                            String::from_utf8_lossy(&f.to_le_bytes())
                        );
                        backoff = Duration::from_millis(500);
                        let stall = cam.fps().filter(|r| *r > 0.0).map_or(STALL_REOPEN, |r| {
                            STALL_REOPEN.max(Duration::from_secs_f64((5.0 / r).min(3600.0)))
                        });
                        let mut last_frame = Instant::now();
                        while !stop.load(Ordering::Relaxed) {
                            match cam.capture(1000) {
                                Ok(Some(c)) => {
                                    if !delivering {
                                        health.fine();
                                        delivering = true;
                                    }
                                    let frame = c.into_frame(format!("{}#{n}", path.display()));
                                    n += 1;
                                    match policy {
                                        DropPolicy::Newest => out.put(frame),
                                        DropPolicy::Never => {
                                            // Waits while the classifier is busy: the
                                            // driver drops frames meanwhile, not glance.
                                            let _ = out.put_waiting(frame, || {
                                                stop.load(Ordering::Relaxed)
                                            });
                                        }
                                    }
                                    // After the put: a wait for the classifier is no stall.
                                    last_frame = Instant::now();
                                }
                                Ok(None) if last_frame.elapsed() >= stall => {
                                    let why = format!(
                                        "{}: no frame for {} s; reopening",
                                        path.display(),
                                        stall.as_secs()
                                    );
                                    log::warn!("{why}");
                                    health.trouble(why);
                                    break;
                                }
                                Ok(None) => {}
                                Err(e) => {
                                    let e = e.report();
                                    log::warn!("{e}; reopening");
                                    health.trouble(format!("{e}; reopening"));
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) if !opened && started.elapsed() >= wait => {
                        // The run's error names the device; the reason alone here.
                        let why = match e {
                            Error::Camera { reason, .. } => reason,
                            other => other.report(),
                        };
                        health.give_up(format!(
                            "{why}; it has not opened as a camera in the {} s since start \
                             (--camera-wait)",
                            wait.as_secs()
                        ));
                        break;
                    }
                    Err(e) => {
                        // Logged at the first failure and then once a minute; the status
                        // always has the latest reason.
                        let why = e.report();
                        if last_logged.is_none_or(|t: Instant| t.elapsed() >= RETRY_LOG_EVERY) {
                            log::warn!("{why}; retrying every {} s", MAX_RETRY.as_secs());
                            last_logged = Some(Instant::now());
                        }
                        health.trouble(why);
                        // A node that is missing (a USB camera unplugged) is looked for four
                        // times a second and retried at once when it appears; otherwise the
                        // thread wakes twice a second, to see `stop`: waiting costs nothing.
                        let missing = !path.exists();
                        let step = Duration::from_millis(if missing { 250 } else { 500 });
                        let until = Instant::now() + backoff;
                        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(step.min(until - Instant::now()));
                            if missing && path.exists() {
                                break;
                            }
                        }
                        backoff = (backoff * 2).min(MAX_RETRY);
                        if !opened {
                            // Give up at the deadline, not a whole back-off after it.
                            backoff = backoff.min(wait.saturating_sub(started.elapsed()));
                        }
                    }
                }
            }
            out.close();
        })
        .map_err(|e| Error::Io { path, source: e })?;
    Ok(mailbox)
}
