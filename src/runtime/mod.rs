//! `glance run`: frames from a source through the classifier and the decision to a sink, with
//! commands (enroll, forget, list, save, thresholds, status) from stdin or the serial link, a
//! periodic status message, and the on-device store saved atomically.
//!
//! One loop on the calling thread does all the inference; capture (camera, stdin MJPEG:
//! `source::live`), stdin commands ([`crate::control`]) and serial I/O
//! ([`crate::serial`]) each have a thread that only moves bytes, so a slow port or a burst of
//! frames never blocks the loop and the loop never spins (it waits on the frame mailbox with a
//! timeout). Frames are decoded ahead of inference on a thread of their own unless told not
//! to; the commands are carried out by the interpreter in [`crate::control`]; messages are
//! encoded by [`crate::encode`].

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glance_proto::Command;

use crate::capture::{Capture, CaptureConfig, Picture};
use crate::control::interpret::Enrolling;
use crate::control::{start_stdin_control, ControlEvent, ReplyTo};
use crate::decision::{Decided, Decider};
use crate::decode_ahead::{Frames, Next, ReadyFrame};
use crate::encode::{self, Format, ReplyBody};
use crate::error::{Error, Result};
use crate::health::{DropWatch, SourceHealth, STALLED};
use crate::knn::Precision;
use crate::mqtt::{MqttConfig, MqttLink};
use crate::pipeline::{Classifier, ClassifierConfig};
use crate::sink::{Sink, SinkSpec};
use crate::source::stream::DropPolicy;
use crate::source::v4l2::CameraConfig;
use crate::store::Store;
use crate::view::Views;
use crate::web::{Web, WebConfig};

pub use crate::source::live::default_camera;

mod setup;
pub(crate) use setup::decision_labels;
use setup::{check_min_score_labels, deep_backbone, open_sink, open_store, start_source};

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// An MJPEG stream on stdin.
    Stdin,
    /// A V4L2 device.
    Camera(PathBuf),
    /// Files, folders or a glob pattern.
    Files(String),
    /// A recorded MJPEG stream in a file (`.mjpeg`, `.mjpg`).
    Recording(PathBuf),
    /// The MJPEG stream a command writes to its standard output (`exec:COMMAND`), run by
    /// `sh -c` and restarted when it exits.
    Exec(String),
}

impl SourceSpec {
    /// `-`, `exec:COMMAND`, `/dev/videoN` (or any character device), a `.mjpeg`/`.mjpg`
    /// recording, or files/folders/globs.
    pub fn parse(s: &str) -> Self {
        use std::os::unix::fs::FileTypeExt;
        if s == "-" {
            return Self::Stdin;
        }
        if let Some(command) = s.strip_prefix("exec:") {
            return Self::Exec(command.to_owned());
        }
        let is_char_device = std::fs::metadata(s)
            .map(|m| m.file_type().is_char_device())
            .unwrap_or(false);
        let lower = s.to_ascii_lowercase();
        if is_char_device || s.starts_with("/dev/video") {
            Self::Camera(PathBuf::from(s))
        } else if lower.ends_with(".mjpeg") || lower.ends_with(".mjpg") {
            Self::Recording(PathBuf::from(s))
        } else {
            Self::Files(s.to_owned())
        }
    }

    /// Which frames the source hands on when the classifier is slower: every one, in order,
    /// for a recording (files, a `.mjpeg` file, a regular file redirected to stdin); the
    /// newest for a live source (a camera, a pipe, a command).
    pub fn default_drop(&self) -> DropPolicy {
        match self {
            Self::Files(_) | Self::Recording(_) => DropPolicy::Never,
            Self::Stdin if crate::source::stream::stdin_is_a_file() => DropPolicy::Never,
            Self::Stdin | Self::Camera(_) | Self::Exec(_) => DropPolicy::Newest,
        }
    }

    /// Whether frames come at the source's pace, so that a pause means trouble (the watchdog
    /// stops being fed); a recording is read at glance's pace and cannot stall.
    pub fn is_live(&self) -> bool {
        match self {
            Self::Files(_) | Self::Recording(_) => false,
            Self::Stdin => !crate::source::stream::stdin_is_a_file(),
            Self::Camera(_) | Self::Exec(_) => true,
        }
    }

    /// A name for messages.
    pub fn name(&self) -> String {
        match self {
            Self::Stdin => "-".into(),
            Self::Camera(p) | Self::Recording(p) => p.display().to_string(),
            Self::Files(s) => s.clone(),
            Self::Exec(c) => format!("exec:{c}"),
        }
    }
}

/// When decisions are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Every frame.
    Every,
    /// Only when the (smoothed) label changes.
    OnChange,
}

/// Everything `glance run` needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Frame source.
    pub source: SourceSpec,
    /// Go round file sources forever.
    pub looping: bool,
    /// Camera settings (for a V4L2 source).
    pub camera: CameraConfig,
    /// How long a camera that has not opened since start is waited for (it may still be
    /// enumerating at boot) before the run gives up; one that opened once is retried forever.
    pub camera_wait: Duration,
    /// Backbone, bundle, top-k.
    pub classifier: ClassifierConfig,
    /// The on-device store file (in memory only when absent).
    pub store: Option<PathBuf>,
    /// Capacity of a new store (an existing store keeps its own unless this is larger).
    pub store_capacity: u32,
    /// Precision of a new store.
    pub store_precision: Precision,
    /// Save the store after every enrollment and forget (else only on `save` and at exit).
    pub autosave: bool,
    /// Output.
    pub output: SinkSpec,
    /// MQTT beside the output (`--mqtt`).
    pub mqtt: Option<MqttConfig>,
    /// The web console (`--web`).
    pub web: Option<WebConfig>,
    /// Output format.
    pub format: Format,
    /// Read commands from stdin.
    pub control_stdin: bool,
    /// Take commands on this Unix socket (`--control unix:PATH`).
    pub control_socket: Option<PathBuf>,
    /// When to write decisions.
    pub emit: Emit,
    /// Majority vote over this many frames (1 = none).
    pub smooth: usize,
    /// Status message period (`None`: only on request).
    pub heartbeat: Option<Duration>,
    /// Head thresholds: `(label or all, least probability)`.
    pub min_score: Vec<(Option<String>, f32)>,
    /// Head store thresholds / enrolled match distances: `(label or all, largest distance)`.
    pub max_distance: Vec<(Option<String>, f32)>,
    /// Accepted distance of enrolled examples.
    pub enrolled_distance: f32,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Decode and preprocess the next frame on a helper thread while the current one is
    /// inferred (the decode-ahead stage); `false`: on the main thread, between inferences.
    pub decode_ahead: bool,
    /// Which frames a stream or camera hands on (`--drop`); `None`: by the source
    /// ([`SourceSpec::default_drop`]).
    pub drop: Option<DropPolicy>,
    /// Keep the frames the model was unsure of (`--capture DIR`).
    pub capture: Option<CaptureConfig>,
    /// Frames in the scene-drift window (0: no drift watch); the bundle must carry its
    /// reference (version 3 bundles).
    pub drift_window: usize,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Frames decided.
    pub frames: u64,
    /// Frames that failed.
    pub errors: u64,
    /// Frames dropped by the source.
    pub dropped: u64,
    /// From the first frame asked for to the end of the run (the model's loading excluded).
    pub elapsed: Duration,
    /// Median and 99th percentile of the capture-to-decision latency over the last decisions
    /// (4096 at most), in milliseconds; `None` with no decision.
    pub latency_ms: Option<(f64, f64)>,
}

/// The run loop's state: the classifier and the decision, the store and whether it holds
/// changes not on disk, the output, and the counters a status report gives. The frame step is
/// here; the command interpreter ([`crate::control::interpret`]) works on the same state.
pub(crate) struct Runner {
    pub(crate) classifier: Classifier,
    pub(crate) decider: Decider,
    pub(crate) store: Store,
    pub(crate) store_path: Option<PathBuf>,
    pub(crate) dirty: bool,
    pub(crate) autosave: bool,
    pub(crate) sink: Sink,
    pub(crate) format: Format,
    pub(crate) emit: Emit,
    pub(crate) started: Instant,
    pub(crate) frames: u64,
    pub(crate) errors: u64,
    pub(crate) bad_commands: u64,
    pub(crate) last_label: Option<String>,
    pub(crate) last_features: Option<(Vec<f32>, String)>,
    pub(crate) enrolling: Option<Enrolling>,
    pub(crate) pending: VecDeque<(ReplyTo, std::result::Result<Command, String>)>,
    pub(crate) backbone_sha: String,
    /// A live source (camera, stdin stream): it can stall. Files cannot.
    pub(crate) live: bool,
    pub(crate) last_frame: Instant,
    /// What the capture thread reports (only a camera thread reports anything).
    pub(crate) source_health: Arc<SourceHealth>,
    /// Why the last save failed, while the store holds changes not on disk.
    pub(crate) save_error: Option<String>,
    pub(crate) sink_drops: DropWatch,
    /// The MQTT link, beside the sink.
    pub(crate) mqtt: Option<MqttLink>,
    /// The web console.
    pub(crate) web: Option<Web>,
    /// The control socket (`--control unix:PATH`).
    pub(crate) unix: Option<crate::control::unix::UnixControl>,
    /// The latest capture-to-decision latencies.
    pub(crate) latencies: Latencies,
    /// `--capture`: the frames the model was unsure of, kept for labelling.
    pub(crate) capture: Option<Capture>,
    /// Scene drift against the bundle's held-out distributions.
    pub(crate) drift: Option<crate::drift::DriftMonitor>,
}

/// The last [`Latencies::WINDOW`] capture-to-decision latencies, for their percentiles in
/// status reports and the run's summary (a bounded window: a run may last months).
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    ring: Vec<f64>,
    next: usize,
}

impl Latencies {
    const WINDOW: usize = 4096;

    pub(crate) fn push(&mut self, ms: f64) {
        if self.ring.len() < Self::WINDOW {
            self.ring.push(ms);
        } else {
            self.ring[self.next] = ms;
        }
        self.next = (self.next + 1) % Self::WINDOW;
    }

    /// The median and 99th percentile, in milliseconds, once there is a decision.
    pub(crate) fn p50_p99(&self) -> Option<(f64, f64)> {
        if self.ring.is_empty() {
            return None;
        }
        let mut v = self.ring.clone();
        v.sort_by(f64::total_cmp);
        Some((
            crate::bench::percentile(&v, 50.0),
            crate::bench::percentile(&v, 99.0),
        ))
    }
}

impl Runner {
    fn new(
        classifier: Classifier,
        store: Store,
        sink: Sink,
        backbone_sha: String,
        config: &RunConfig,
        source_health: Arc<SourceHealth>,
    ) -> Self {
        Self {
            classifier,
            decider: Decider::new(config.enrolled_distance, config.smooth),
            store,
            store_path: config.store.clone(),
            dirty: false,
            autosave: config.autosave,
            sink,
            format: config.format,
            emit: config.emit,
            started: Instant::now(),
            frames: 0,
            errors: 0,
            bad_commands: 0,
            last_label: None,
            last_features: None,
            enrolling: None,
            pending: VecDeque::new(),
            backbone_sha,
            live: config.source.is_live(),
            last_frame: Instant::now(),
            source_health,
            save_error: None,
            sink_drops: DropWatch::default(),
            mqtt: None,
            web: None,
            unix: None,
            latencies: Latencies::default(),
            capture: None,
            drift: None,
        }
    }

    /// Applies `--min-score` and `--max-distance` by the rule commands follow; a flag the rule
    /// refuses is ignored with a warning.
    fn apply_threshold_flags(&mut self, config: &RunConfig) {
        for (distance, list) in [(false, &config.min_score), (true, &config.max_distance)] {
            for (label, v) in list {
                if let ReplyBody::Error(why) =
                    self.set_threshold(label.as_deref().unwrap_or("*"), *v, distance)
                {
                    log::warn!("threshold flag: {why}; ignored");
                }
            }
        }
    }

    fn label_id(&self, label: &str) -> u16 {
        let head = self.classifier.labels();
        if let Some(i) = head.iter().position(|l| l == label) {
            return i as u16;
        }
        match self.store.label_index(label) {
            Some(i) => (head.len() + i).min(usize::from(u16::MAX - 1)) as u16,
            None => glance_proto::UNKNOWN_LABEL_ID,
        }
    }

    fn frame(&mut self, frame: ReadyFrame, dropped_since: u64) -> std::io::Result<()> {
        let time_ms = frame.time_ms;
        let captured_at = frame.captured_at;
        let classified = frame
            .prepared
            .and_then(|prepared| self.classifier.classify_prepared(prepared));
        let mut p = match classified {
            Ok(p) => p,
            Err(e) => {
                self.errors += 1;
                log::error!("{}", e.report());
                return Ok(());
            }
        };
        let features = p.features.take().unwrap_or_default();
        if let (Some(m), Some(best)) = (self.drift.as_mut(), p.top_k.first()) {
            // The bundle's own verdict, before enrolled examples and smoothing: what its
            // reference was measured on.
            m.observe(best.score, p.knn.as_ref().map(|k| k.distance));
        }
        let mut decided: Decided = self.decider.decide(
            p,
            &features,
            &self.store,
            self.frames,
            time_ms,
            dropped_since,
        );
        decided.latency_ms = captured_at.elapsed().as_secs_f64() * 1e3;
        self.latencies.push(decided.latency_ms);
        self.frames += 1;
        if let Some(m) = self.mqtt.as_mut() {
            m.decision(&decided, self.last_label.as_deref(), frame.picture.as_ref());
        }
        if let Some(w) = self.web.as_mut() {
            w.frame(&decided, frame.picture.clone());
        }
        if let Some(c) = self.capture.as_mut() {
            let (picture, image) = (frame.picture.clone(), frame.image.clone());
            c.offer(&decided, self.last_label.as_deref(), || {
                picture
                    .map(Picture::Jpeg)
                    .or_else(|| image.map(Picture::Image))
            });
        }
        let changed = self.last_label.as_deref() != Some(decided.prediction.label.as_str());
        if self.emit == Emit::Every || changed {
            let bytes = encode::encode_prediction(&decided, self.format, |l| self.label_id(l));
            self.sink.send(bytes)?;
        }
        self.last_label = Some(decided.prediction.label.clone());
        self.enroll_frame(&features, &frame.name)?;
        self.last_features = Some((features, frame.name));
        Ok(())
    }
}

/// The drift watch, when asked for and the bundle carries a reference (a bundle fitted before
/// version 3 has none: said once).
fn drift_monitor(classifier: &Classifier, window: usize) -> Option<crate::drift::DriftMonitor> {
    if window == 0 {
        return None;
    }
    let bundle = classifier.bundle()?;
    match &bundle.drift {
        Some(reference) => Some(crate::drift::DriftMonitor::new(reference.clone(), window)),
        None => {
            log::info!(
                "the bundle carries no drift reference (fitted before glance's bundle version \
                 3): no scene-drift watch; refit to have one"
            );
            None
        }
    }
}

/// Runs until the source ends, `stop` is set (SIGINT/SIGTERM), the stdin control channel
/// closes, or `max_frames` frames were decided. The store is saved on the way out when it
/// changed.
pub fn run(mut config: RunConfig, stop: Arc<AtomicBool>) -> Result<RunSummary> {
    config.classifier.with_features = true;
    if config.source == SourceSpec::Stdin && config.control_stdin {
        return Err(Error::InvalidSetting(
            "stdin cannot carry both the MJPEG stream (--source -) and commands (--control stdin)"
                .into(),
        ));
    }
    let classifier = Classifier::new(config.classifier.clone())?;
    let backbone = deep_backbone(&classifier)?;
    check_min_score_labels(&config, &classifier)?;
    let store = open_store(&config, &backbone)?;

    let (ctl_tx, ctl_rx): (Sender<ControlEvent>, Receiver<ControlEvent>) = mpsc::channel();
    let sink = open_sink(&config, &ctl_tx)?;
    let mqtt = match &config.mqtt {
        Some(m) => Some(
            MqttLink::start(
                m.clone(),
                decision_labels(&classifier, &store),
                ctl_tx.clone(),
            )
            .map_err(|e| Error::Io {
                path: "<mqtt>".into(),
                source: e,
            })?,
        ),
        None => None,
    };
    let views = Views::default();
    views.set_wanted(config.mqtt.as_ref().is_some_and(|m| m.snapshot));
    // The capture encodes only the frames it keeps, from their decoded image.
    views.set_keep_images(config.capture.is_some());
    let live = config.source.is_live();
    let capture = config
        .capture
        .clone()
        .map(|c| Capture::start(c, live))
        .transpose()?;
    let web = match &config.web {
        Some(w) => Some(
            Web::start(w, views.clone(), ctl_tx.clone()).map_err(|e| Error::Io {
                path: w.addr.to_string().into(),
                source: e,
            })?,
        ),
        None => None,
    };
    if config.control_stdin {
        start_stdin_control(ctl_tx.clone());
    }
    let unix = match &config.control_socket {
        Some(path) => Some(
            crate::control::unix::UnixControl::start(path, ctl_tx.clone()).map_err(|e| {
                Error::Io {
                    path: path.clone(),
                    source: e,
                }
            })?,
        ),
        None => None,
    };
    drop(ctl_tx);

    let source_health = Arc::new(SourceHealth::default());
    let (source, exec_guard) = start_source(&config, &source_health, &stop)?;
    let preparer = classifier.preparer().clone();
    let mut source = Frames::start(
        source,
        preparer,
        views,
        config.decode_ahead,
        config.drop.unwrap_or_else(|| config.source.default_drop()),
        Arc::clone(&stop),
    )?;

    let mut r = Runner::new(
        classifier,
        store,
        sink,
        backbone.sha256,
        &config,
        source_health,
    );
    r.mqtt = mqtt;
    r.web = web;
    r.unix = unix;
    r.capture = capture;
    r.drift = drift_monitor(&r.classifier, config.drift_window);
    r.apply_threshold_flags(&config);
    r.labels_changed();

    let mut state = LoopState::start(&config);
    let outcome: std::io::Result<()> = (|| {
        while !stop.load(Ordering::Relaxed) {
            if state.step(&mut r, &mut source, &ctl_rx)?.is_break() {
                break;
            }
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    state.notifier.stopping();
    let ended = shut_down(r, source, &config, outcome);
    // An `exec:` child is ended (and waited for) after the last message is out.
    drop(exec_guard);
    ended
}

/// What the loop keeps between its steps besides the [`Runner`]: the watchdog, the clocks of
/// the health and status messages, and whether the command script has ended.
///
/// The watchdog is fed only while frames are being decided: a camera or stream that has given
/// no frame for STALLED is not healthy, and systemd (WatchdogSec) restarts the service instead
/// of hearing that all is well while the camera thread retries. Files cannot stall. Other
/// problems (a save that failed, an output dropping messages) are reported but keep the
/// watchdog fed: a restart would not cure them and would lose unsaved enrolments.
struct LoopState {
    notifier: crate::notify::Notifier,
    stall_reported: bool,
    told_systemd: String,
    next_health: Instant,
    stdin_closed: bool,
    heartbeat: Option<Duration>,
    next_status: Option<Instant>,
    max_frames: Option<u64>,
    reported_drops: u64,
    next_web: Instant,
}

impl LoopState {
    /// Tells systemd the service is ready and starts the clocks.
    fn start(config: &RunConfig) -> Self {
        let notifier = crate::notify::Notifier::from_env();
        notifier.ready();
        Self {
            notifier,
            stall_reported: false,
            told_systemd: String::new(),
            next_health: Instant::now(),
            stdin_closed: false,
            heartbeat: config.heartbeat,
            next_status: config.heartbeat.map(|h| Instant::now() + h),
            max_frames: config.max_frames,
            reported_drops: 0,
            next_web: Instant::now(),
        }
    }

    /// One turn of the loop: the watchdog and health, the commands, the status message, then
    /// one frame (or a wait of up to 250 ms for one). Breaks when the run is done.
    fn step(
        &mut self,
        r: &mut Runner,
        source: &mut Frames,
        commands: &Receiver<ControlEvent>,
    ) -> std::io::Result<ControlFlow<()>> {
        self.watchdog(r);
        if r.web.is_some() && Instant::now() >= self.next_web {
            let status = r.status(source.dropped());
            let mqtt_dropped = r.mqtt.as_ref().map(MqttLink::dropped);
            if let Some(w) = &r.web {
                w.tick(status, mqtt_dropped);
            }
            self.next_web = Instant::now() + Duration::from_secs(1);
        }
        // Commands: queued in order; one waits while an enrollment is collecting frames.
        self.stdin_closed |= r.take_commands(commands);
        r.run_queued(|| source.dropped())?;
        let idle = r.pending.is_empty() && r.enrolling.is_none();
        // The command script ended and everything it asked is done (and, with a frame limit,
        // that many frames were decided: whether the first frame is ready before the script
        // has been read must not decide whether a run sees any frame at all).
        if self.stdin_closed && idle && self.max_frames.is_none_or(|m| r.frames >= m) {
            return Ok(ControlFlow::Break(()));
        }
        if let Some(at) = self.next_status {
            if Instant::now() >= at {
                let status = r.status(source.dropped());
                r.sink.send(encode::encode_status(&status, r.format))?;
                if let Some(m) = r.mqtt.as_mut() {
                    m.stats(&status);
                }
                self.next_status = self.heartbeat.map(|h| Instant::now() + h);
            }
        }
        // At the frame limit, finish what was asked before stopping.
        if self.max_frames.is_some_and(|m| r.frames >= m) && idle {
            return Ok(ControlFlow::Break(()));
        }
        // A frame ends the wait at once; with none, the loop turns four times a second (for
        // commands, status and the watchdog), which costs nothing while a camera is away.
        match source.next(Duration::from_millis(250)) {
            Next::Frame(frame) => {
                let dropped = source.dropped();
                let since = dropped - self.reported_drops;
                self.reported_drops = dropped;
                r.frame(frame, since)?;
                // The stall clock runs while the loop waits for a frame, not while it decides
                // one: a frame slower to decide than STALLED (an emulated CPU, a Pi Zero on a
                // large backbone) is no stalled source.
                r.last_frame = Instant::now();
            }
            Next::Failed(why) => {
                r.errors += 1;
                log::error!("{why}");
            }
            Next::Idle => {}
            Next::End => {
                r.source_ended(|| source.dropped())?;
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Feeds the watchdog unless a live source has stalled, and updates systemd's STATUS=
    /// line (`systemctl status glance` shows the last one) once a second when it changed.
    fn watchdog(&mut self, r: &mut Runner) {
        if !r.live || r.last_frame.elapsed() < STALLED {
            self.notifier.alive();
            self.stall_reported = false;
        } else if !self.stall_reported {
            log::warn!(
                "no frame for {} s: the source is not delivering; the watchdog is no longer fed",
                STALLED.as_secs()
            );
            self.stall_reported = true;
        }
        if Instant::now() >= self.next_health {
            let text = crate::health::summary(&r.problems());
            if text != self.told_systemd {
                self.notifier.status(&text);
                self.told_systemd = text;
            }
            self.next_health = Instant::now() + Duration::from_secs(1);
        }
    }
}

/// The end of a run: the final save, the output flushed, and the first thing that went wrong
/// (a panicked `prepare` thread, a camera given up on, a final save that failed, an output
/// error other than a closed pipe), else the summary.
fn shut_down(
    mut r: Runner,
    source: Frames,
    config: &RunConfig,
    outcome: std::io::Result<()>,
) -> Result<RunSummary> {
    // A final save that fails ends the run with an error: what was enrolled since the last
    // good save is gone when the process exits.
    let final_save = if r.dirty && r.store_path.is_some() {
        r.save().err()
    } else {
        None
    };
    let summary = RunSummary {
        frames: r.frames,
        errors: r.errors,
        dropped: source.dropped(),
        elapsed: r.started.elapsed(),
        latency_ms: r.latencies.p50_p99(),
    };
    r.sink.finish(Duration::from_secs(2));
    if let Some(m) = r.mqtt.take() {
        m.finish(Duration::from_secs(2));
    }
    if let Some(w) = r.web.take() {
        w.finish();
    }
    source.into_outcome()?;
    if let Some(reason) = r.source_health.gave_up() {
        return Err(match &config.source {
            SourceSpec::Camera(path) => Error::Camera {
                path: path.clone(),
                reason,
            },
            other => Error::Source {
                name: other.name(),
                reason,
            },
        });
    }
    if let Some(reason) = final_save {
        return Err(Error::Store {
            path: r.store_path.clone().unwrap_or_default(),
            reason: format!(
                "the final save failed: {reason}; the changes since the last good save are lost"
            ),
        });
    }
    match outcome {
        Ok(()) => Ok(summary),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(summary),
        Err(e) => Err(Error::Io {
            path: "<output>".into(),
            source: e,
        }),
    }
}
