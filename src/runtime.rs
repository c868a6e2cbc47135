//! `glance run`: frames from a source through the classifier and the decision to a sink, with
//! commands (enroll, forget, list, save, thresholds, status) from stdin or the serial link, a
//! periodic status message, and the on-device store saved atomically.
//!
//! One loop on the calling thread does all the inference; capture (camera, stdin MJPEG),
//! stdin commands and serial I/O each have a thread that only moves bytes, so a slow port or a
//! burst of frames never blocks the loop and the loop never spins (it waits on the frame
//! mailbox with a timeout).

use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glance_proto::Command;

use crate::decision::{Decided, Decider};
use crate::decode_ahead::{FrameSource, Frames, Next, ReadyFrame};
use crate::encode::{self, Format, ReplyBody, StatusInfo};
use crate::error::{Error, Result};
use crate::health::{DropWatch, Observations, SourceHealth, STALLED};
use crate::knn::Precision;
use crate::pipeline::{Classifier, ClassifierConfig};
use crate::serial::SerialLink;
use crate::sink::{ControlEvent, Sink, SinkSpec};
use crate::source::live::{start_camera, start_stdin_mjpeg};
use crate::source::v4l2::CameraConfig;
use crate::store::{Generation, Store};

pub use crate::source::live::default_camera;

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// An MJPEG stream on stdin.
    Stdin,
    /// A V4L2 device.
    Camera(PathBuf),
    /// Files, folders or a glob pattern.
    Files(String),
}

impl SourceSpec {
    /// `-`, `/dev/videoN` (or any character device), or files/folders/globs.
    pub fn parse(s: &str) -> Self {
        use std::os::unix::fs::FileTypeExt;
        if s == "-" {
            return Self::Stdin;
        }
        let is_char_device = std::fs::metadata(s)
            .map(|m| m.file_type().is_char_device())
            .unwrap_or(false);
        if is_char_device || s.starts_with("/dev/video") {
            Self::Camera(PathBuf::from(s))
        } else {
            Self::Files(s.to_owned())
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
    /// Output format.
    pub format: Format,
    /// Read commands from stdin.
    pub control_stdin: bool,
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
}

fn start_stdin_control(tx: Sender<ControlEvent>) {
    let spawned = std::thread::Builder::new()
        .name("stdin-control".into())
        .spawn(move || {
            let mut lines = crate::control::LineReader::default();
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            let mut open = true;
            let mut send = |line: std::result::Result<String, String>| {
                let event = match line.and_then(|l| crate::control::parse_line(&l)) {
                    Ok((id, c)) => ControlEvent::Command(id, c),
                    Err(e) => ControlEvent::Invalid(None, e),
                };
                open &= tx.send(event).is_ok();
            };
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => lines.push(&buf[..n], &mut send),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::warn!("stdin: {e}; no more commands from it");
                        break;
                    }
                }
            }
            lines.finish(&mut send);
            if open {
                let _ = tx.send(ControlEvent::Closed);
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot read commands from stdin: {e}");
    }
}

struct Enrolling {
    id: Option<u16>,
    label: String,
    remaining: u16,
    added: u16,
    evicted: u16,
}

/// The run loop's state.
struct Runner {
    classifier: Classifier,
    decider: Decider,
    store: Store,
    store_path: Option<PathBuf>,
    dirty: bool,
    autosave: bool,
    sink: Sink,
    format: Format,
    emit: Emit,
    started: Instant,
    frames: u64,
    errors: u64,
    bad_commands: u64,
    last_label: Option<String>,
    last_features: Option<(Vec<f32>, String)>,
    enrolling: Option<Enrolling>,
    pending: VecDeque<(Option<u16>, std::result::Result<Command, String>)>,
    backbone_sha: String,
    /// A live source (camera, stdin stream): it can stall. Files cannot.
    live: bool,
    last_frame: Instant,
    /// What the capture thread reports (only a camera thread reports anything).
    source_health: Arc<SourceHealth>,
    /// Why the last save failed, while the store holds changes not on disk.
    save_error: Option<String>,
    sink_drops: DropWatch,
}

impl Runner {
    fn reply(&mut self, id: Option<u16>, body: ReplyBody) -> std::io::Result<()> {
        let bytes = encode::encode_reply(id, &body, self.format);
        self.sink.send(bytes)
    }

    /// What is wrong now, most urgent first (see [`crate::health::problems`]).
    fn problems(&mut self) -> Vec<String> {
        let sink_dropped = self.sink.dropped();
        self.sink_drops.observe(sink_dropped);
        let trouble = self.source_health.current_trouble();
        crate::health::problems(&Observations {
            since_frame: self.live.then(|| self.last_frame.elapsed()),
            source_trouble: trouble.as_deref(),
            unsaved: self.save_error.as_deref().filter(|_| self.dirty),
            sink_dropping: self
                .sink_drops
                .recent(crate::health::SINK_DROP_MEMORY)
                .then_some(sink_dropped),
        })
    }

    fn status(&mut self, dropped: u64) -> StatusInfo {
        let problems = self.problems();
        StatusInfo {
            healthy: problems.is_empty(),
            problems,
            uptime_s: self.started.elapsed().as_secs(),
            frames: self.frames,
            dropped,
            errors: self.errors,
            store_len: self.store.len() as u64,
            store_capacity: u64::from(self.store.capacity),
            sink_dropped: self.sink.dropped(),
            bad_commands: self.bad_commands + self.sink.bad_input(),
            backbone: self.backbone_sha.clone(),
        }
    }

    fn save(&mut self) -> std::result::Result<String, String> {
        let Some(path) = &self.store_path else {
            return Err("no --store file was given; the store lives in memory only".into());
        };
        if let Err(e) = self.store.save(path) {
            let why = e.to_string();
            self.save_error = Some(why.clone());
            return Err(why);
        }
        self.save_error = None;
        self.dirty = false;
        Ok(format!(
            "saved {} examples to {}",
            self.store.len(),
            path.display()
        ))
    }

    /// Saves when autosaving; the error says what was not saved, for the reply of the command
    /// that changed the store (a reply of success over a failed save would lose the user's
    /// enrolments at the next restart without a word).
    fn autosave(&mut self) -> std::result::Result<(), String> {
        if self.autosave && self.store_path.is_some() {
            if let Err(e) = self.save() {
                log::error!("{e}");
                return Err(format!(
                    "saving the store failed ({e}); the change is in memory only until a save \
                     succeeds"
                ));
            }
        }
        Ok(())
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

    /// Applies a threshold to `label` (`*`: all); returns what changed.
    fn set_threshold(&mut self, label: &str, value: f32, distance: bool) -> ReplyBody {
        // Every command source (text, JSON, postcard on serial) and the flags come through
        // here, so the range rule is applied once for all of them.
        if let Err(why) = crate::control::check_threshold(value, distance) {
            return ReplyBody::Error(why);
        }
        let all = label == "*";
        let head_index = self.classifier.labels().iter().position(|l| l == label);
        let enrolled = self.store.label_index(label).is_some();
        if !all && head_index.is_none() && !enrolled {
            return ReplyBody::Error(format!("no class or enrolled label `{label}`"));
        }
        if all || head_index.is_some() {
            self.classifier
                .thresholds_mut()
                .set(distance, head_index.filter(|_| !all), value);
        }
        if distance && (all || enrolled) {
            self.decider
                .set_enrolled_distance((!all).then_some(label), value);
        }
        let what = if distance {
            "largest distance"
        } else {
            "least score"
        };
        ReplyBody::Ok(format!("{what} for {label} is now {value}"))
    }

    /// Runs one queued request (a command, or a line that did not parse).
    fn request(
        &mut self,
        id: Option<u16>,
        cmd: std::result::Result<Command, String>,
        dropped: u64,
    ) -> std::io::Result<()> {
        match cmd {
            Ok(c) => self.command(id, c, dropped),
            Err(why) => {
                self.bad_commands += 1;
                self.reply(id, ReplyBody::Error(why))
            }
        }
    }

    /// Runs one command (enrollments of future frames start here and finish in `frame`).
    fn command(&mut self, id: Option<u16>, cmd: Command, dropped: u64) -> std::io::Result<()> {
        match cmd {
            Command::Enroll { label, frames } => {
                let label = label.to_string();
                if label == "unknown" {
                    return self.reply(id, ReplyBody::Error("`unknown` is reserved".into()));
                }
                if self.store.capacity == 0 {
                    return self.reply(
                        id,
                        ReplyBody::Error("the store's capacity is 0 (--store-capacity)".into()),
                    );
                }
                self.enrolling = Some(Enrolling {
                    id,
                    label,
                    remaining: frames.max(1),
                    added: 0,
                    evicted: 0,
                });
                // `enroll LABEL` (0 frames) takes the frame just decided, when there is one;
                // otherwise the next frame.
                if frames == 0 {
                    if let Some((features, source)) = self.last_features.take() {
                        let done = self.enroll_frame(&features, &source);
                        self.last_features = Some((features, source));
                        return done;
                    }
                }
                Ok(())
            }
            Command::Forget { label } => {
                let n = self.store.forget(&label);
                if n == 0 {
                    return self.reply(
                        id,
                        ReplyBody::Error(format!("no enrolled examples of `{label}`")),
                    );
                }
                self.dirty = true;
                let body = match self.autosave() {
                    Ok(()) => ReplyBody::Ok(format!("forgot {n} examples of `{label}`")),
                    Err(why) => {
                        ReplyBody::Error(format!("forgot {n} examples of `{label}`, but {why}"))
                    }
                };
                self.reply(id, body)
            }
            Command::List => {
                let list = self.store.counts();
                self.reply(id, ReplyBody::List(list))
            }
            Command::Save => {
                let body = match self.save() {
                    Ok(m) => ReplyBody::Ok(m),
                    Err(e) => ReplyBody::Error(e),
                };
                self.reply(id, body)
            }
            Command::Status => {
                let bytes = encode::encode_status(&self.status(dropped), self.format);
                self.sink.send(bytes)
            }
            Command::SetThreshold { label, value } => {
                let body = self.set_threshold(&label, value, false);
                self.reply(id, body)
            }
            Command::SetDistance { label, value } => {
                let body = self.set_threshold(&label, value, true);
                self.reply(id, body)
            }
        }
    }

    /// Adds the frame to an enrollment in progress; replies when it completes.
    fn enroll_frame(&mut self, features: &[f32], source: &str) -> std::io::Result<()> {
        let Some(e) = self.enrolling.as_mut() else {
            return Ok(());
        };
        match self.store.add(&e.label, features, source.to_owned()) {
            Ok(added) => {
                e.added += 1;
                e.evicted += u16::from(added.evicted.is_some());
                e.remaining -= 1;
                self.dirty = true;
            }
            Err(err) => {
                let id = e.id;
                self.enrolling = None;
                return self.reply(id, ReplyBody::Error(err.to_string()));
            }
        }
        if e.remaining > 0 {
            return Ok(());
        }
        let Some(e) = self.enrolling.take() else {
            return Ok(());
        };
        let saved = self.autosave();
        let evicted = if e.evicted > 0 {
            format!("; the store was full, {} older examples evicted", e.evicted)
        } else {
            String::new()
        };
        let msg = format!(
            "enrolled {} frame{} as `{}` (store {}/{}){evicted}",
            e.added,
            if e.added == 1 { "" } else { "s" },
            e.label,
            self.store.len(),
            self.store.capacity
        );
        let body = match saved {
            Ok(()) => ReplyBody::Ok(msg),
            Err(why) => ReplyBody::Error(format!("{msg}, but {why}")),
        };
        self.reply(e.id, body)
    }

    fn frame(&mut self, frame: ReadyFrame, dropped_since: u64) -> std::io::Result<()> {
        let time_ms = frame.time_ms;
        let classified = frame
            .prepared
            .and_then(|prepared| self.classifier.classify_prepared(prepared));
        let mut p = match classified {
            Ok(p) => p,
            Err(e) => {
                self.errors += 1;
                log::error!("{e}");
                return Ok(());
            }
        };
        let features = p.features.take().unwrap_or_default();
        let decided: Decided = self.decider.decide(
            p,
            &features,
            &self.store,
            self.frames,
            time_ms,
            dropped_since,
        );
        self.frames += 1;
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
    let backbone = classifier.backbone().map(|b| b.identity()).ok_or_else(|| {
        Error::InvalidSetting(
            "`glance run` needs deep features; a raw-pixel bundle has no backbone".into(),
        )
    })?;
    // Flags are applied once the store is loaded (a distance may name an enrolled label); a
    // least score must name a class of the head, checked before anything starts.
    for (label, _) in &config.min_score {
        if let Some(l) = label {
            if !classifier.labels().contains(l) {
                return Err(Error::InvalidSetting(format!(
                    "--min-score names `{l}`, which is not a class of the head"
                )));
            }
        }
    }

    let fresh = || {
        Store::new(
            &backbone.sha256,
            backbone.feature_dim,
            config.store_capacity,
            config.store_precision,
        )
    };
    let store = match &config.store {
        Some(path) => {
            let loaded = Store::load(path, &backbone.sha256, backbone.feature_dim, fresh)?;
            for w in &loaded.warnings {
                log::warn!("{w}");
            }
            match loaded.generation {
                Generation::Previous => log::warn!(
                    "{}: using the previous generation ({} examples)",
                    path.display(),
                    loaded.store.len()
                ),
                Generation::New => log::info!("{}: new store", path.display()),
                Generation::Current => {}
            }
            let mut s = loaded.store;
            s.capacity = s.capacity.max(config.store_capacity);
            s
        }
        None => fresh(),
    };

    let (ctl_tx, ctl_rx): (Sender<ControlEvent>, Receiver<ControlEvent>) = mpsc::channel();
    let sink = match &config.output {
        SinkSpec::Stdout => Sink::Stdout(std::io::BufWriter::new(std::io::stdout())),
        SinkSpec::Serial { path, baud } => Sink::Serial(
            SerialLink::start(path.clone(), *baud, config.format, ctl_tx.clone()).map_err(|e| {
                Error::Io {
                    path: path.clone(),
                    source: e,
                }
            })?,
        ),
    };
    if config.control_stdin {
        start_stdin_control(ctl_tx.clone());
    }
    drop(ctl_tx);

    let source_health = Arc::new(SourceHealth::default());
    let source = match &config.source {
        SourceSpec::Stdin => FrameSource::live(start_stdin_mjpeg(Arc::clone(&stop))?),
        SourceSpec::Camera(path) => FrameSource::live(start_camera(
            path.clone(),
            config.camera.clone(),
            config.camera_wait,
            Arc::clone(&source_health),
            Arc::clone(&stop),
        )?),
        SourceSpec::Files(spec) => FrameSource::files(spec, config.looping),
    };
    let preparer = classifier.preparer().clone();
    let mut source = Frames::start(source, preparer, config.decode_ahead, Arc::clone(&stop))?;

    let mut r = Runner {
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
        backbone_sha: backbone.sha256.clone(),
        live: !matches!(config.source, SourceSpec::Files(_)),
        last_frame: Instant::now(),
        source_health: Arc::clone(&source_health),
        save_error: None,
        sink_drops: DropWatch::default(),
    };
    for (distance, list) in [(false, &config.min_score), (true, &config.max_distance)] {
        for (label, v) in list {
            if let ReplyBody::Error(why) =
                r.set_threshold(label.as_deref().unwrap_or("*"), *v, distance)
            {
                log::warn!("threshold flag: {why}; ignored");
            }
        }
    }

    let mut notifier = crate::notify::Notifier::from_env();
    notifier.ready();
    // The watchdog is fed only while frames are being decided: a camera or stream that has
    // given no frame for STALLED is not healthy, and systemd (WatchdogSec) restarts the service
    // instead of hearing that all is well while the camera thread retries. Files cannot stall.
    // Other problems (a save that failed, an output dropping messages) are reported but keep
    // the watchdog fed: a restart would not cure them and would lose unsaved enrolments.
    let mut stall_reported = false;
    let mut told_systemd = String::new();
    let mut next_health = Instant::now();
    let mut stdin_closed = false;
    let mut next_status = config.heartbeat.map(|h| Instant::now() + h);
    let mut reported_drops = 0u64;
    let outcome: std::io::Result<()> = (|| {
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if !r.live || r.last_frame.elapsed() < STALLED {
                notifier.alive();
                stall_reported = false;
            } else if !stall_reported {
                log::warn!(
                    "no frame for {} s: the source is not delivering; the watchdog is no longer fed",
                    STALLED.as_secs()
                );
                stall_reported = true;
            }
            if Instant::now() >= next_health {
                // `systemctl status glance` shows the last STATUS= line.
                let text = crate::health::summary(&r.problems());
                if text != told_systemd {
                    notifier.status(&text);
                    told_systemd = text;
                }
                next_health = Instant::now() + Duration::from_secs(1);
            }
            // Commands: queued in order; one waits while an enrollment is collecting frames.
            loop {
                match ctl_rx.try_recv() {
                    Ok(ControlEvent::Command(id, c)) => r.pending.push_back((id, Ok(c))),
                    Ok(ControlEvent::Invalid(id, why)) => r.pending.push_back((id, Err(why))),
                    Ok(ControlEvent::Closed) => stdin_closed = true,
                    Err(_) => break,
                }
            }
            while r.enrolling.is_none() {
                let Some((id, c)) = r.pending.pop_front() else {
                    break;
                };
                r.request(id, c, source.dropped())?;
            }
            // The command script ended and everything it asked is done (and, with a frame
            // limit, that many frames were decided: whether the first frame is ready before the
            // script has been read must not decide whether a run sees any frame at all).
            if stdin_closed
                && r.pending.is_empty()
                && r.enrolling.is_none()
                && config.max_frames.is_none_or(|m| r.frames >= m)
            {
                break;
            }
            if let Some(at) = next_status {
                if Instant::now() >= at {
                    let bytes = encode::encode_status(&r.status(source.dropped()), r.format);
                    r.sink.send(bytes)?;
                    next_status = config.heartbeat.map(|h| Instant::now() + h);
                }
            }
            // At the frame limit, finish what was asked before stopping.
            if config.max_frames.is_some_and(|m| r.frames >= m)
                && r.enrolling.is_none()
                && r.pending.is_empty()
            {
                break;
            }
            match source.next(Duration::from_millis(100)) {
                Next::Frame(frame) => {
                    r.last_frame = Instant::now();
                    let dropped = source.dropped();
                    let since = dropped - reported_drops;
                    reported_drops = dropped;
                    r.frame(frame, since)?;
                }
                Next::Failed(why) => {
                    r.errors += 1;
                    log::error!("{why}");
                }
                Next::Idle => {}
                Next::End => {
                    if let Some(e) = r.enrolling.take() {
                        r.reply(
                            e.id,
                            ReplyBody::Error(format!(
                                "the source ended after {} of the frames to enroll as `{}`",
                                e.added, e.label
                            )),
                        )?;
                        // A failed save is logged; the final save below reports it again.
                        let _ = r.autosave();
                    }
                    // Commands still queued can run without frames (except frame enrollments).
                    while let Some((id, c)) = r.pending.pop_front() {
                        r.request(id, c, source.dropped())?;
                    }
                    break;
                }
            }
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    notifier.stopping();
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
    };
    r.sink.finish(Duration::from_secs(2));
    source.into_outcome()?;
    if let (SourceSpec::Camera(path), Some(reason)) = (&config.source, source_health.gave_up()) {
        return Err(Error::Camera {
            path: path.clone(),
            reason,
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
