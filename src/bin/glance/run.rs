//! `glance run`: its flags, and their mapping onto [`glance::RunConfig`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use glance::{ClassifierConfig, DecodeLimits};

use crate::camera::PixelFormat;
use crate::{load_bundle, model_source, EngineArgs};

/// Output format of `run`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum RunFormat {
    /// One line per message for people.
    Text,
    /// One JSON object per line.
    Json,
    /// Framed postcard messages (glance-proto): COBS, CRC32, version byte.
    Postcard,
}

/// A command channel of `run` (besides a serial output, MQTT and the web console, which
/// always accept commands): `--control none|stdin|unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// No other command channel.
    None,
    /// Text or JSON command lines on stdin; the run ends when stdin closes and its commands
    /// are done.
    Stdin,
    /// The same lines over a Unix socket, several clients at once (`glance ctl PATH CMD`).
    Unix(PathBuf),
}

fn parse_control(s: &str) -> Result<Control, String> {
    match s {
        "none" => Ok(Control::None),
        "stdin" => Ok(Control::Stdin),
        _ => match s.strip_prefix("unix:") {
            Some(p) if !p.is_empty() => Ok(Control::Unix(PathBuf::from(p))),
            _ => Err(format!("`{s}`: expected none, stdin or unix:PATH")),
        },
    }
}

/// When `run` writes a decision.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum EmitArg {
    /// Every frame.
    Every,
    /// Only when the decided label changes.
    OnChange,
}

/// Which frames a source hands on when classification is slower than the source.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DropArg {
    /// Keep only the newest frame and count the others as dropped (live sources).
    Newest,
    /// Decide every frame in order; the source waits (recordings).
    Never,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// A board profile (`rpi3`, `rpi4`, `rpi5`, `rpi-armv7`, `jetson-orin`, or a .toml file):
    /// its camera, serial port, store capacity, threads and precision become the defaults;
    /// flags override.
    #[arg(long, value_name = "BOARD")]
    board: Option<String>,
    /// Frames: `/dev/videoN`, an image file, a folder, a glob (quote it), a recorded
    /// `.mjpeg` file, `-` for an MJPEG stream on stdin, or `exec:COMMAND` for the MJPEG stream a
    /// command writes (`exec:'rpicam-vid -t 0 --codec mjpeg -o -'`: glance runs it, restarts it
    /// when it exits and ends it at exit). Default: the board profile's camera.
    #[arg(long, value_name = "SRC")]
    source: Option<String>,
    /// Which frames to decide when they come faster than glance decides them: `newest` (drop
    /// the others; the default for cameras, pipes and commands) or `never` (every frame in
    /// order; the default for recordings: files, `.mjpeg`, a file redirected to stdin).
    #[arg(long = "drop", value_enum, value_name = "POLICY")]
    drop_policy: Option<DropArg>,
    /// Threads for the backbone [default: the board profile's, else 1].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    #[command(flatten)]
    engine: EngineArgs,
    /// A bundle from `glance-host fit` (ImageNet classes when absent).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Use this backbone ONNX file instead of the embedded one.
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// The on-device store of enrolled examples; loaded at start (FILE, else FILE.prev), saved
    /// atomically after each change and at exit.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
    /// Most examples the store keeps; when full, enrolling evicts the oldest example of the
    /// label with the most examples [default: the board profile's, else 1000].
    #[arg(long, value_name = "N")]
    store_capacity: Option<u32>,
    /// Numeric precision of a new store's vectors.
    #[arg(long, value_enum, default_value_t = StorePrecision::I8)]
    store_precision: StorePrecision,
    /// Save the store only on `save` and at exit, not after every enroll/forget.
    #[arg(long)]
    no_autosave: bool,
    /// `stdout`, `serial:PATH[@BAUD]` (default baud 115200), or `serial` for the board
    /// profile's port and baud.
    #[arg(long, default_value = "stdout", value_name = "SINK")]
    output: String,
    /// Also publish to an MQTT broker and take commands from it:
    /// `mqtt://[user:pass@]host[:port]/PREFIX`, `mqtts://…` for TLS (topics PREFIX/state,
    /// /label, /event, /stats, /availability, /cmd → /cmd/reply, /enroll), or `off` for none
    /// [default: the board profile's `[mqtt]`, else none].
    #[arg(long, value_name = "URL")]
    mqtt: Option<String>,
    /// Home Assistant's MQTT discovery prefix, or `off` for no discovery
    /// [default: the board profile's, else homeassistant].
    #[arg(long, value_name = "PREFIX")]
    mqtt_discovery: Option<String>,
    /// For `mqtts://`: the CA certificates (PEM) the broker's certificate must chain to,
    /// instead of the system's.
    #[arg(long, value_name = "FILE")]
    mqtt_ca: Option<PathBuf>,
    /// For `mqtts://`: this device's certificate chain (PEM), for brokers that ask for one.
    #[arg(long, value_name = "FILE", requires = "mqtt_key")]
    mqtt_cert: Option<PathBuf>,
    /// For `mqtts://`: the private key (PEM) of --mqtt-cert.
    #[arg(long, value_name = "FILE", requires = "mqtt_cert")]
    mqtt_key: Option<PathBuf>,
    /// This device's id in MQTT client id, unique ids and discovery [default: from the prefix].
    #[arg(long, value_name = "ID")]
    mqtt_node: Option<String>,
    /// Publish the JPEG of each frame that changes the decision on PREFIX/snapshot (an image
    /// entity in Home Assistant). Frames that are not JPEG are encoded for it.
    #[arg(long)]
    mqtt_snapshot: bool,
    /// The web console on ADDR (`HOST:PORT`, `:PORT` for every interface, or `PORT`); with no
    /// ADDR, 127.0.0.1:8080; `off` for none [default: the board profile's `[web]`, else none].
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    web: Option<String>,
    /// Basic auth for the web console. There is no TLS: behind a reverse proxy with TLS on
    /// untrusted networks.
    #[arg(long, value_name = "USER:PASSWORD")]
    web_auth: Option<String>,
    /// Live view frames per second [default: the board profile's, else 5].
    #[arg(long, value_name = "FPS")]
    web_fps: Option<f32>,
    /// Message format.
    #[arg(long, value_enum, default_value_t = RunFormat::Text)]
    format: RunFormat,
    /// Another command channel: `stdin` (text or JSON command lines; the run ends when stdin
    /// closes and its commands are done), `unix:PATH` (the same lines over a Unix socket,
    /// several clients at once: `glance ctl PATH 'enroll mug 10'`), or `none`. Repeatable.
    #[arg(long, value_name = "CHANNEL", value_parser = parse_control)]
    control: Vec<Control>,
    /// When to write decisions.
    #[arg(long, value_enum, default_value_t = EmitArg::Every)]
    emit: EmitArg,
    /// Decide by majority over the last N frames (1 = no smoothing).
    #[arg(long, default_value_t = 1, value_name = "N")]
    smooth: usize,
    /// Seconds between status messages (0 = only on request).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    heartbeat: f64,
    /// Seconds to wait for a camera that has not opened since start (a USB camera may still be
    /// enumerating at boot) before giving up with an error. A camera that opened once and
    /// then vanished is retried for ever, and status reports it.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    camera_wait: f64,
    /// Decode and resize each frame on the main thread after the previous frame's inference,
    /// instead of on a helper thread while it runs (the default, which keeps the backbone
    /// busy but decodes live frames that may then be dropped for a newer one).
    #[arg(long)]
    no_decode_ahead: bool,
    /// Least head probability accepted, for one class (`LABEL=V`) or all (`V`); overrides the
    /// bundle's calibrated thresholds. Repeatable.
    #[arg(long, value_name = "[LABEL=]V")]
    min_score: Vec<String>,
    /// Largest nearest-example distance accepted, for one class or enrolled label (`LABEL=V`)
    /// or all (`V`). Repeatable.
    #[arg(long, value_name = "[LABEL=]V")]
    max_distance: Vec<String>,
    /// Cosine distance within which a frame matches an enrolled example.
    #[arg(long, default_value_t = glance::DEFAULT_ENROLLED_DISTANCE, value_name = "D")]
    enrolled_distance: f32,
    /// Number of classes in each decision's top-k.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    top_k: u16,
    /// Go round a file source forever.
    #[arg(long = "loop")]
    looping: bool,
    /// Stop after N frames.
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Camera frame size [default: the board profile's, else 640x480].
    #[arg(long, value_name = "WxH")]
    size: Option<String>,
    /// Camera frame rate [default: the board profile's, else 15].
    #[arg(long)]
    fps: Option<u32>,
    /// Camera pixel format.
    #[arg(long, value_enum, default_value_t = PixelFormat::Auto)]
    pixel_format: PixelFormat,
    /// Refuse frames wider or taller than this many pixels.
    #[arg(long, default_value_t = glance::DEFAULT_MAX_SIDE, value_name = "PX")]
    max_side: u32,
    /// Decide JPEG frames and files that end before their end-of-image marker instead of
    /// refusing them as truncated.
    #[arg(long)]
    allow_truncated: bool,
    /// Keep the frames the model was unsure of in DIR, for labelling (`glance-host label
    /// DIR`) and refitting: a JPEG and a JSON sidecar (decision, top-k, nearest stored
    /// example, why) for each frame that was unknown, hesitant, flipped the decision, or on
    /// which the head and the nearest stored example disagreed.
    #[arg(long, value_name = "DIR")]
    capture: Option<PathBuf>,
    /// With --capture: a frame is hesitant when its best two head scores are closer than this.
    #[arg(long, default_value_t = 0.2, value_name = "M", requires = "capture")]
    capture_margin: f32,
    /// With --capture: most frames kept in any minute.
    #[arg(long, default_value_t = 6, value_name = "N", requires = "capture")]
    capture_per_minute: u32,
    /// With --capture: most megabytes (10⁶ bytes) in DIR; the oldest captures are removed
    /// first.
    #[arg(long, default_value_t = 500, value_name = "MB", requires = "capture")]
    capture_max_mb: u64,
    /// Watch for scene drift over the latest N frames against the bundle's held-out images
    /// (status, metrics and a health problem past PSI 0.25); 0 turns it off.
    #[arg(long, default_value_t = glance::DEFAULT_DRIFT_WINDOW, value_name = "N")]
    drift_window: usize,
}

/// Store precision.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StorePrecision {
    /// 1 byte per value and a scale per example.
    I8,
    /// 4 bytes per value.
    F32,
}

/// A `--min-score` / `--max-distance` value of `glance run`, whose label may also name an
/// enrolled label (checked once the store is loaded).
fn parse_owned_threshold(flag: &str, distance: bool) -> anyhow::Result<(Option<String>, f32)> {
    let (label, value) =
        glance::commands::parse_threshold_flag(flag, distance).map_err(anyhow::Error::msg)?;
    Ok((label.map(str::to_owned), value))
}

pub(crate) fn run_live(args: RunArgs) -> anyhow::Result<ExitCode> {
    use glance::{Emit, RunConfig, SinkSpec, SourceSpec};
    use std::str::FromStr;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let board = match &args.board {
        Some(b) => Some(glance::BoardProfile::load(b)?),
        None => None,
    };
    let source = match (&args.source, &board) {
        (Some(s), _) => s.clone(),
        (None, Some(b)) => b.camera.source.clone(),
        (None, None) => anyhow::bail!("--source is required (or a --board whose camera to use)"),
    };
    let output = match (args.output.as_str(), &board) {
        ("serial", Some(b)) => format!("serial:{}@{}", b.serial.port, b.serial.baud),
        ("serial", None) => {
            anyhow::bail!("--output serial needs a PATH (serial:PATH) or a --board")
        }
        (o, _) => o.to_owned(),
    };
    let output = SinkSpec::from_str(&output).map_err(|e| anyhow::anyhow!("--output {e}"))?;
    let mqtt = mqtt_config(&args, board.as_ref().and_then(|b| b.mqtt.as_ref()))?;
    let web = web_config(&args, board.as_ref().and_then(|b| b.web.as_ref()))?;
    let size_text = args
        .size
        .clone()
        .or_else(|| board.as_ref().map(|b| b.camera.size.clone()))
        .unwrap_or_else(|| "640x480".into());
    let size = glance::commands::parse_size(&size_text).map_err(anyhow::Error::msg)?;
    // A --threads flag beyond this machine's cores is refused (EngineArgs::options).
    let threads = args
        .threads
        .unwrap_or_else(|| board.as_ref().map_or(1, |b| b.threads_here()));
    let engine = args.engine.options_for(threads, board.as_ref())?;
    let bundle = load_bundle(&args.bundle)?;
    if args.smooth == 0 {
        anyhow::bail!("--smooth must be at least 1");
    }
    if !(0.0..=2.0).contains(&args.enrolled_distance) {
        anyhow::bail!("--enrolled-distance must be within 0..=2 (cosine distance)");
    }
    let mut camera = glance::default_camera();
    camera.size = size;
    camera.fps = args
        .fps
        .or_else(|| board.as_ref().map(|b| b.camera.fps))
        .unwrap_or(15);
    camera.formats = args.pixel_format.codes();
    if args
        .control
        .iter()
        .filter(|c| matches!(c, Control::Unix(_)))
        .count()
        > 1
    {
        anyhow::bail!("--control unix:PATH: one control socket at most");
    }
    let config = RunConfig {
        source: SourceSpec::parse(&source),
        looping: args.looping,
        camera,
        camera_wait: glance::commands::check_seconds("--camera-wait", args.camera_wait)
            .map_err(anyhow::Error::msg)?
            .unwrap_or_default(),
        classifier: ClassifierConfig {
            bundle,
            model: model_source(args.model),
            engine,
            top_k: usize::from(args.top_k),
            limits: DecodeLimits {
                max_side: args.max_side,
                allow_truncated: args.allow_truncated,
                max_alloc: board
                    .as_ref()
                    .and_then(|b| b.decode_budget_mb)
                    .map_or(glance::DEFAULT_MAX_ALLOC, |mb| u64::from(mb) << 20),
            },
            with_features: true,
        },
        store: args.store,
        store_capacity: args
            .store_capacity
            .or_else(|| board.as_ref().map(|b| b.store.capacity))
            .unwrap_or(1000),
        store_precision: match args.store_precision {
            StorePrecision::I8 => glance::Precision::I8,
            StorePrecision::F32 => glance::Precision::F32,
        },
        autosave: !args.no_autosave,
        output,
        mqtt,
        web,
        format: match args.format {
            RunFormat::Text => glance::Format::Text,
            RunFormat::Json => glance::Format::Json,
            RunFormat::Postcard => glance::Format::Postcard,
        },
        control_stdin: args.control.contains(&Control::Stdin),
        control_socket: args.control.iter().find_map(|c| match c {
            Control::Unix(p) => Some(p.clone()),
            _ => None,
        }),
        emit: match args.emit {
            EmitArg::Every => Emit::Every,
            EmitArg::OnChange => Emit::OnChange,
        },
        smooth: args.smooth,
        heartbeat: glance::commands::check_seconds("--heartbeat", args.heartbeat)
            .map_err(anyhow::Error::msg)?,
        decode_ahead: !args.no_decode_ahead,
        min_score: args
            .min_score
            .iter()
            .map(|s| parse_owned_threshold(s, false))
            .collect::<anyhow::Result<_>>()?,
        max_distance: args
            .max_distance
            .iter()
            .map(|s| parse_owned_threshold(s, true))
            .collect::<anyhow::Result<_>>()?,
        enrolled_distance: args.enrolled_distance,
        max_frames: args.frames,
        drop: args.drop_policy.map(|d| match d {
            DropArg::Newest => glance::DropPolicy::Newest,
            DropArg::Never => glance::DropPolicy::Never,
        }),
        capture: args.capture.clone().map(|dir| glance::CaptureConfig {
            dir,
            margin: args.capture_margin,
            per_minute: args.capture_per_minute,
            max_bytes: args.capture_max_mb.saturating_mul(1_000_000),
        }),
        drift_window: args.drift_window,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .context("cannot install signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install signal handlers")?;
    }
    let from_stdin = config.source == SourceSpec::Stdin;
    let summary = glance::run(config, stop)?;
    let secs = summary.elapsed.as_secs_f64();
    let latency = summary.latency_ms.map_or_else(String::new, |(p50, p99)| {
        format!("; capture to decision p50 {p50:.1} ms, p99 {p99:.1} ms")
    });
    log::info!(
        "{} frames in {secs:.2} s ({:.1} frames/s), {} errors, {} dropped{latency}",
        summary.frames,
        summary.frames as f64 / secs.max(1e-9),
        summary.errors,
        summary.dropped
    );
    if summary.errors > 0 {
        eprintln!(
            "glance: {} frame(s) could not be classified",
            summary.errors
        );
        return Ok(ExitCode::from(1));
    }
    if from_stdin && summary.frames == 0 && summary.dropped == 0 {
        eprintln!(
            "glance: stdin ended without one whole JPEG frame: is it an MJPEG stream? \
             (ffmpeg: -f mjpeg; rpicam-vid: --codec mjpeg)"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--mqtt` and its companions, each over the board profile's `[mqtt]` entry.
fn mqtt_config(
    args: &RunArgs,
    profile: Option<&glance::MqttProfile>,
) -> anyhow::Result<Option<glance::MqttConfig>> {
    let url = match (args.mqtt.as_deref(), profile) {
        (Some("off"), _) | (None, None) => return Ok(None),
        (Some(url), _) => url,
        (None, Some(p)) => p.url.as_str(),
    };
    let discovery = args
        .mqtt_discovery
        .as_deref()
        .or(profile.and_then(|p| p.discovery.as_deref()))
        .unwrap_or("homeassistant");
    let node = args
        .mqtt_node
        .as_deref()
        .or(profile.and_then(|p| p.node.as_deref()));
    let m = glance::MqttConfig::from_flags(url, discovery, node)
        .map_err(|e| anyhow::anyhow!("--mqtt {e}"))?;
    let file = |flag: &Option<PathBuf>, from_profile: Option<&String>| {
        flag.clone().or_else(|| from_profile.map(PathBuf::from))
    };
    let tls = glance::MqttTls {
        ca: file(&args.mqtt_ca, profile.and_then(|p| p.ca.as_ref())),
        cert: file(&args.mqtt_cert, profile.and_then(|p| p.cert.as_ref())),
        key: file(&args.mqtt_key, profile.and_then(|p| p.key.as_ref())),
    };
    tls.check_for(&m.spec).map_err(anyhow::Error::msg)?;
    Ok(Some(glance::MqttConfig {
        snapshot: args.mqtt_snapshot || profile.and_then(|p| p.snapshot).unwrap_or(false),
        tls,
        ..m
    }))
}

/// `--web` and its companions, each over the board profile's `[web]` entry.
fn web_config(
    args: &RunArgs,
    profile: Option<&glance::WebProfile>,
) -> anyhow::Result<Option<glance::WebConfig>> {
    let addr = match (args.web.as_deref(), profile) {
        (Some("off"), _) | (None, None) => return Ok(None),
        (Some(addr), _) => addr,
        (None, Some(p)) => p.addr.as_str(),
    };
    let auth = args
        .web_auth
        .as_deref()
        .or(profile.and_then(|p| p.auth.as_deref()));
    let fps = args.web_fps.or(profile.and_then(|p| p.fps)).unwrap_or(5.0);
    glance::WebConfig::from_flags(addr, auth, fps)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("--web {e}"))
}
