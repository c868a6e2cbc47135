//! `glance`: the board runtime. Thin: parse arguments → run → exit code.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use glance::encode_classified;
use glance::DecodeLimits;
use glance::Manifest;
use glance::{Backbone, BackbonePrecision, EngineKind, EngineOptions, ModelSource};
use glance::{Classifier, ClassifierConfig};

mod camera;
mod ctl;
mod run;
use run::{run_live, RunArgs};

/// Edge image classifier: an int8 EfficientNet-Lite0 backbone on tract, with a linear head and a
/// kNN store from a bundle (or the 1000 ImageNet classes with none).
#[derive(Parser, Debug)]
#[command(name = "glance", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Classify image files (or folders of them) and print one result per image.
    Classify(ClassifyArgs),
    /// Classify live frames (camera, MJPEG on stdin, files) and send decisions to stdout or a
    /// serial port; accepts enroll/forget/list/save/threshold/status commands.
    Run(Box<RunArgs>),
    /// Per-stage latency percentiles and frames/s on a fixed set of frames.
    Bench(BenchArgs),
    /// Show the backbone, its sha256, its input spec and the build target.
    Info(InfoArgs),
    /// Send commands to a running `glance run --control unix:PATH` and print its replies.
    Ctl(ctl::CtlArgs),
    /// List the video devices: driver, card, formats, sizes and frame rates, and what glance
    /// would stream from each.
    Cameras(camera::CamerasArgs),
    /// Write one frame from a camera, stream or file to a .jpg or .png file.
    Snapshot(camera::SnapshotArgs),
}

/// Which engine runs the backbone (shared by classify, run, bench and info).
#[derive(clap::Args, Debug)]
struct EngineArgs {
    /// Inference engine: `tract` (built in) or `ort` (onnxruntime, loaded from
    /// libonnxruntime.so at run time; see --ort-library).
    #[arg(long, default_value = "tract", value_name = "ENGINE")]
    engine: EngineKind,
    /// onnxruntime's shared library for `--engine ort` [default: $ORT_DYLIB_PATH, else
    /// libonnxruntime.so on the loader's path]. The onnxruntime wheel from PyPI has one in
    /// site-packages/onnxruntime/capi/.
    #[arg(long, value_name = "FILE")]
    ort_library: Option<PathBuf>,
    /// Arithmetic of tract's float operators: `f32`, or `f16` on CPUs that compute half
    /// precision natively (ARMv8.2 FP16: Raspberry Pi 5, Jetson Orin; elsewhere f32 is used)
    /// [default: the board profile's, else f32].
    #[arg(long, value_name = "f32|f16")]
    precision: Option<BackbonePrecision>,
}

impl EngineArgs {
    /// The engine options for `threads`; tract's threads are process-wide, so they are set here.
    fn options(&self, threads: usize) -> anyhow::Result<EngineOptions> {
        self.options_for(threads, None)
    }

    /// The engine options for `threads`, taking what the command line leaves open from `board`.
    fn options_for(
        &self,
        threads: usize,
        board: Option<&glance::BoardProfile>,
    ) -> anyhow::Result<EngineOptions> {
        let threads = glance::commands::check_threads(threads).map_err(anyhow::Error::msg)?;
        self.options_unchecked(threads, board)
    }

    /// As [`EngineArgs::options_for`], without refusing more threads than this machine has
    /// cores (`bench` only: counting the work of 4 threads under an emulator on a 2-core host).
    fn options_unchecked(
        &self,
        threads: usize,
        board: Option<&glance::BoardProfile>,
    ) -> anyhow::Result<EngineOptions> {
        if self.engine == EngineKind::Tract {
            glance::set_threads(threads)?;
        }
        Ok(EngineOptions {
            kind: self.engine,
            threads,
            ort_library: self.ort_library.clone(),
            features_only: false,
            // A profile's precision is tract's; with --engine ort it does not apply (an explicit
            // --precision f16 with ort is refused when the backbone loads).
            precision: self
                .precision
                .or_else(|| {
                    board
                        .filter(|_| self.engine == EngineKind::Tract)
                        .and_then(|b| b.precision)
                })
                .unwrap_or_default(),
        })
    }
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// A bundle (head, store and thresholds are then part of the timing).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Use this backbone ONNX file instead of the embedded one.
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Frames to time (after the warm-up).
    #[arg(long, default_value_t = 50)]
    frames: usize,
    /// Untimed frames first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Threads for the backbone [default: the board profile's, else 1].
    #[arg(long)]
    threads: Option<usize>,
    /// A board profile (`rpi3`, `rpi4`, `rpi5`, `rpi-armv7`, `jetson-orin`, or a .toml file):
    /// time the path `glance run --board` takes there (its threads and precision), unless flags
    /// say otherwise.
    #[arg(long, value_name = "NAME|FILE")]
    board: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Encoded images to cycle through (default: 8 synthetic 640×480 JPEG frames).
    #[arg(value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

/// Output format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One line per image for people.
    Text,
    /// One JSON object per image per line, for programs.
    Json,
}

#[derive(clap::Args, Debug)]
struct ClassifyArgs {
    /// Number of classes to report per image.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    top_k: u16,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// A bundle from `glance-host fit`: classify into its classes with its head, kNN store and
    /// unknown thresholds (ImageNet classes when absent).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Use this backbone ONNX file instead of the embedded one (it must be in the manifest).
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Threads for the backbone.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[command(flatten)]
    engine: EngineArgs,
    /// Add the 1280-d feature vector to each JSON line.
    #[arg(long)]
    with_features: bool,
    /// Refuse images wider or taller than this many pixels.
    #[arg(long, default_value_t = glance::DEFAULT_MAX_SIDE, value_name = "PX")]
    max_side: u32,
    /// Least head probability accepted, for one class (`LABEL=V`) or all (`V`); overrides the
    /// bundle's calibrated thresholds. Repeatable.
    #[arg(long, value_name = "[LABEL=]V")]
    min_score: Vec<String>,
    /// Largest distance to the best class's nearest stored example, for one class (`LABEL=V`)
    /// or all (`V`); overrides the bundle's calibrated thresholds. Repeatable.
    #[arg(long, value_name = "[LABEL=]V")]
    max_distance: Vec<String>,
    /// Classify a JPEG that ends before its end-of-image marker instead of refusing it.
    #[arg(long)]
    allow_truncated: bool,
    /// Image files or folders (a folder's subfolders are searched too).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct InfoArgs {
    /// Describe this backbone ONNX file instead of the embedded one.
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("glance: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Classify(args) => classify(args),
        Command::Run(args) => run_live(*args),
        Command::Bench(args) => bench(args),
        Command::Info(args) => info(args),
        Command::Ctl(args) => ctl::ctl(args),
        Command::Cameras(args) => camera::cameras(args),
        Command::Snapshot(args) => camera::snapshot(args),
    }
}

fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let bundle = load_bundle(&args.bundle)?;
    let frames: Vec<(String, Vec<u8>)> = if args.images.is_empty() {
        glance::bench::synthetic_frames()?
    } else {
        let mut v = Vec::new();
        for item in glance::expand_paths(&args.images) {
            let path = item.map_err(|(p, e)| anyhow::anyhow!("{}: {e}", p.display()))?;
            let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
            v.push((path.display().to_string(), bytes));
        }
        v
    };
    let board = match &args.board {
        Some(b) => Some(glance::BoardProfile::load(b)?),
        None => None,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| board.as_ref().map_or(1, |b| b.threads_here()));
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let engine = if threads > cores {
        // Allowed here only: the work of a board's 4 threads can be counted on a smaller host
        // (scripts/bench/arm.sh); the frame rate printed then is not the board's.
        log::warn!(
            "--threads {threads} on a machine with {cores} core(s): times are not meaningful"
        );
        args.engine.options_unchecked(threads, board.as_ref())?
    } else {
        args.engine.options_for(threads, board.as_ref())?
    };
    glance::bench::enable_marks_from_env();
    glance::bench::mark(glance::bench::Mark::LoadStart);
    let classifier = Classifier::new(ClassifierConfig {
        bundle,
        model: model_source(args.model),
        engine,
        ..ClassifierConfig::default()
    })
    .context("cannot set up the classifier")?;
    glance::bench::mark(glance::bench::Mark::Loaded);
    let r = glance::bench::run(&classifier, &frames, args.warmup, args.frames)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Json => writeln!(out, "{}", r.to_json(threads))?,
        Format::Text => {
            let decider = if args.bundle.is_some() {
                "bundle"
            } else {
                "ImageNet head"
            };
            r.write_text(&mut out, decider, threads)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--bundle` file, loaded and checked, with its path.
fn load_bundle(path: &Option<PathBuf>) -> anyhow::Result<Option<(glance::Bundle, PathBuf)>> {
    Ok(match path {
        Some(p) => Some((glance::Bundle::load(p)?, p.clone())),
        None => None,
    })
}

fn model_source(model: Option<PathBuf>) -> ModelSource {
    model.map_or(ModelSource::Embedded, ModelSource::File)
}

fn classify(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let bundle = load_bundle(&args.bundle)?;
    let config = ClassifierConfig {
        bundle,
        model: model_source(args.model),
        engine: args.engine.options(args.threads)?,
        top_k: usize::from(args.top_k),
        limits: DecodeLimits {
            max_side: args.max_side,
            allow_truncated: args.allow_truncated,
            ..DecodeLimits::default()
        },
        with_features: args.with_features,
    };
    let mut classifier = Classifier::new(config).context("cannot set up the classifier")?;
    let labels = classifier.labels().to_vec();
    classifier
        .thresholds_mut()
        .apply_flags(&labels, &args.min_score, &args.max_distance)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failures = 0usize;
    for item in glance::expand_paths(&args.images) {
        let result = match item {
            Ok(path) => classifier.classify_file(&path).map_err(anyhow::Error::from),
            Err((path, e)) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        match result {
            Ok(p) => {
                out.write_all(&encode_classified(&p, args.format == Format::Json))?;
                out.flush()?;
            }
            Err(e) => {
                failures += 1;
                out.flush()?;
                eprintln!("glance: error: {e:#}");
            }
        }
    }
    out.flush()?;
    if failures > 0 {
        eprintln!("glance: {failures} image(s) could not be classified");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let source = model_source(args.model);
    let backbone =
        Backbone::load(&source, &args.engine.options(1)?).context("cannot load the backbone")?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Json => writeln!(out, "{}", backbone.info_json(&Manifest::embedded()?))?,
        Format::Text => write!(out, "{}", backbone.info_text())?,
    }
    Ok(ExitCode::SUCCESS)
}
