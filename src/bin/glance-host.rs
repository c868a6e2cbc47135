//! `glance-host`: the host-side workbench. Thin: the command line, parsed into a job of
//! `glance::host::commands` (the library's `host` feature), run, and its exit code.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Parser, Subcommand, ValueEnum};
use glance::host::commands::{self, DataSpec, FeatureChoice, Format, HeadSpec, StorePrecision};
use glance::host::{DeepNorm, RunOptions};
use glance::DecodeLimits;
use glance::EngineOptions;

/// Host workbench for glance: inspect a dataset, extract and cache deep features, fit a head on
/// deep features or raw pixels, evaluate, query the kNN store, and pack bundles for the board.
#[derive(Parser, Debug)]
#[command(name = "glance-host", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Counts per class and split, image sizes, unreadable files; optionally a contact sheet.
    Inspect(InspectArgs),
    /// Make a `glance run --capture` folder ready for labelling: a numbered contact sheet and
    /// DIR/labels.csv to fill in (path, label, split, the board's suggestion, score, why kept).
    /// Filled in, DIR is a dataset: `fit DATA --add DIR` refits with it.
    Label(LabelArgs),
    /// Extract (and cache) deep features for every image of DATA.
    Extract(ExtractArgs),
    /// Fit a softmax-regression head and pack a bundle.
    Fit(FitArgs),
    /// Evaluate a bundle on DATA's test split (by default the split it was fitted with).
    Eval(EvalArgs),
    /// What is inside a bundle: backbone, preprocessing, classes, thresholds, calibration,
    /// training metrics, split and a size breakdown.
    Show(ShowArgs),
    /// The k most similar stored examples to an image (a class filter = category-specific model).
    Query(QueryArgs),
    /// Fit raw-pixel and deep-feature heads on the same split and compare them.
    Compare(CompareArgs),
    /// Print the deep-feature vector of each image as a JSON line `{source, backbone, features}`.
    Features(FeaturesArgs),
    /// Decode what a board sends over serial (framed postcard or JSON lines) or publishes over
    /// MQTT, and send it commands.
    Monitor(MonitorArgs),
}

/// Serial framing.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Framing {
    /// glance-proto frames (`glance run --format postcard`).
    Postcard,
    /// JSON lines (`glance run --format json`).
    Json,
}

#[derive(clap::Args, Debug)]
struct MonitorArgs {
    /// The serial device, with an optional speed (`/dev/ttyUSB0@115200`), or the board's MQTT
    /// broker and topic prefix as given to `glance run --mqtt` (`mqtt://broker.lan/glance/shelf`,
    /// `mqtts://…`).
    #[arg(value_name = "PATH[@BAUD] | URL")]
    port: String,
    /// For `mqtts://`: the CA certificates (PEM) the broker's certificate must chain to.
    #[arg(long, value_name = "FILE")]
    mqtt_ca: Option<PathBuf>,
    /// For `mqtts://`: a client certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "mqtt_key")]
    mqtt_cert: Option<PathBuf>,
    /// For `mqtts://`: the private key (PEM) of --mqtt-cert.
    #[arg(long, value_name = "FILE", requires = "mqtt_cert")]
    mqtt_key: Option<PathBuf>,
    /// What the board sends over serial.
    #[arg(long, value_enum, default_value_t = Framing::Postcard)]
    framing: Framing,
    /// How to print messages.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// A command to send at start (`enroll mug 10`, `list`, `save`, …). Repeatable.
    #[arg(long, value_name = "COMMAND")]
    send: Vec<String>,
    /// Also send each line typed on stdin as a command.
    #[arg(long)]
    stdin: bool,
    /// Stop after N messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
}

#[derive(clap::Args, Debug, Clone)]
struct DataArgs {
    /// A folder of class folders (optionally under train/ and test/), a folder with IDX files, an
    /// IDX images file, or a CSV manifest `path,label[,split]`.
    #[arg(value_name = "DATA")]
    data: PathBuf,
    /// Fraction held out as test when DATA has no test split [default: 0.2; for `eval`, the
    /// bundle's].
    #[arg(long)]
    split: Option<f64>,
    /// Seed for every random split [default: 42; for `eval`, the bundle's].
    #[arg(long)]
    seed: Option<u64>,
    /// Use at most N examples per class in each split (a stratified subset; 0 = all)
    /// [default: 0; for `eval`, the bundle's].
    #[arg(long, value_name = "N")]
    per_class: Option<usize>,
    /// Class names for IDX labels, one per line.
    #[arg(long, value_name = "FILE")]
    label_names: Option<PathBuf>,
}

impl DataArgs {
    fn spec(&self) -> DataSpec {
        DataSpec {
            data: self.data.clone(),
            split: self.split,
            seed: self.seed,
            per_class: self.per_class,
            label_names: self.label_names.clone(),
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Backbone ONNX file (it must be in the manifest); the embedded default when absent.
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Feature cache folder [default: $GLANCE_CACHE, $XDG_CACHE_HOME/glance or ~/.cache/glance].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Do not read or write the feature cache.
    #[arg(long)]
    no_cache: bool,
    /// Worker threads for extraction and fitting [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Use JPEGs that end before their end-of-image marker (the decoder greys the missing
    /// rows) instead of skipping them as unreadable.
    #[arg(long)]
    allow_truncated: bool,
    /// Inference engine for extraction: `tract` (built in) or `ort` (onnxruntime, loaded from
    /// libonnxruntime.so: --ort-library, else $ORT_DYLIB_PATH). Both give the same features
    /// (cosine 1.000000 on the test photos), so one cache serves both.
    #[arg(long, default_value = "tract", value_name = "ENGINE")]
    engine: glance::EngineKind,
    /// onnxruntime's shared library for `--engine ort`.
    #[arg(long, value_name = "FILE")]
    ort_library: Option<PathBuf>,
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        RunOptions {
            model: self.model.clone(),
            backbone: None,
            resize: None,
            engine: EngineOptions {
                kind: self.engine,
                // onnxruntime runs one frame at a time on all the threads (its session is
                // shared by the extraction workers); tract runs one frame per worker.
                threads: if self.engine == glance::EngineKind::Ort {
                    self.threads()
                } else {
                    1
                },
                ort_library: self.ort_library.clone(),
                // The workbench loads the backbone for its features alone either way.
                features_only: false,
                // Features a bundle is fitted on are computed in f32 on the host; a board that
                // runs f16 stays within the cosine BENCHMARKS.md gives for it.
                precision: glance::BackbonePrecision::F32,
            },
            cache_dir: (!self.no_cache).then(|| {
                self.cache
                    .clone()
                    .unwrap_or_else(glance::host::default_cache_dir)
            }),
            threads: self.threads(),
            progress: !self.quiet,
            limits: DecodeLimits {
                allow_truncated: self.allow_truncated,
                ..DecodeLimits::default()
            },
        }
    }

    fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// The backbone to extract with, for the commands that choose one (eval and query take the
/// bundle's).
#[derive(clap::Args, Debug, Clone)]
struct BackboneArgs {
    /// A shipped backbone, compiled into glance-host: `lite0` (224², the default, fastest),
    /// `lite1` (240²) or `lite2` (260², 2.2× Lite0's work), or Lite0's file at a smaller input
    /// for slow boards, `lite0-192` or `lite0-160`, or `lite0-ml` (Lite0 with middle blocks'
    /// features too, for subjects unlike ImageNet's photos); the bundle carries it (README.md,
    /// "Which backbone"). Its int8-weight file; for the others, --model FILE.
    #[arg(long, value_enum, value_name = "NAME", conflicts_with = "model")]
    backbone: Option<glance::host::ShippedBackbone>,
    /// How images are resized to the backbone's input, when not its own way (a centre crop of
    /// 0.875 of the shorter side): `center-crop=F`, `squash` (stretch the whole image) or
    /// `letterbox` (fit it, pad with the mean). For subjects framed to the edge (scans, product
    /// shots, Fashion-MNIST), `center-crop=1` or `squash` keeps what the crop would cut
    /// (BENCHMARKS.md, "Fashion-MNIST: middle blocks and the whole garment"). The bundle
    /// carries it.
    #[arg(long, value_name = "MODE")]
    resize: Option<glance::ResizeMode>,
}

#[derive(clap::Args, Debug)]
struct LabelArgs {
    /// The capture folder.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Where to draw the contact sheet [default: DIR/labels.png].
    #[arg(long, value_name = "PNG")]
    sheet: Option<PathBuf>,
    /// Captures per row of the contact sheet.
    #[arg(long, default_value_t = 8)]
    sheet_columns: usize,
}

#[derive(clap::Args, Debug)]
struct InspectArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Write a contact sheet PNG: one row of examples per class.
    #[arg(long, value_name = "PNG")]
    sheet: Option<PathBuf>,
    /// Examples per row of the contact sheet.
    #[arg(long, default_value_t = 8)]
    sheet_columns: usize,
}

#[derive(clap::Args, Debug)]
struct ExtractArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
    /// Also write {train,test}_{features,labels}.npy, {train,test}_paths.txt (row i's image)
    /// and classes.txt into DIR (for numpy).
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// Also extract the training images' augmented views `fit --augment` uses (cached for it;
    /// exported as train_<view>_{features,labels}.npy, row for row with train_features.npy).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "flip,crops")]
    augment: Vec<glance::host::Augment>,
}

#[derive(clap::Args, Debug, Clone)]
struct HeadArgs {
    /// L2 penalty on the head's weights (on top of early stopping; 1e-6 measured best for Lite0
    /// on Fashion-MNIST, 3e-7 for lite0-ml's longer head: BENCHMARKS.md, "Fashion-MNIST").
    #[arg(long, default_value_t = 1e-6)]
    l2: f64,
    /// Weight classes inversely to their frequency.
    #[arg(long)]
    balanced: bool,
    /// Fraction of the training split used for validation (early stopping, calibration).
    #[arg(long, default_value_t = 0.1)]
    val_split: f64,
    /// Most optimiser iterations.
    #[arg(long, default_value_t = 1000)]
    max_iters: u64,
    /// How deep features are conditioned before the head: `sqrt-l2` (signed square root, then
    /// unit length), `l2` (unit length) or `standardize` (per dimension, on the training split).
    #[arg(long, value_enum, default_value_t = DeepNorm::SqrtL2)]
    feature_norm: DeepNorm,
    /// Side of the raw-pixel features.
    #[arg(long, default_value_t = 32)]
    raw_size: u32,
}

#[derive(clap::Args, Debug)]
struct FitArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
    #[command(flatten)]
    head: HeadArgs,
    /// Bundle to write.
    #[arg(long, value_name = "BUNDLE")]
    out: PathBuf,
    /// Features to train on.
    #[arg(long, value_enum, default_value_t = FeatureChoice::Deep)]
    features: FeatureChoice,
    /// kNN store precision.
    #[arg(long, value_enum, default_value_t = StorePrecision::I8)]
    store_precision: StorePrecision,
    /// Most stored examples per class (0 = every training example).
    #[arg(long, default_value_t = 500)]
    store_per_class: usize,
    /// Share (%) of a class's own held-out images that each unknown threshold may reject: the
    /// score threshold sits at this lower percentile of their confidences (at most 0.9), the
    /// distance threshold at this upper percentile of their distances to the nearest other
    /// stored example (finite-sample conformal ranks).
    #[arg(long, default_value_t = 5.0)]
    reject_percentile: f64,
    /// Reference the backbone instead of copying its ONNX bytes into the bundle.
    #[arg(long)]
    external_backbone: bool,
    /// More training data beside DATA, all of it for training (repeatable): a labelled
    /// capture folder (`glance-host label`), class folders or a CSV. Classes are matched by
    /// name; new ones are added.
    #[arg(long, value_name = "DATA")]
    add: Vec<PathBuf>,
    /// Also fit the head on augmented views of each training image: `flip` (mirrored, one
    /// view) and `crops` (four corner crops of 85% of each side). Their features are extracted
    /// once and cached like the images'; validation images are never augmented.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "flip,crops")]
    augment: Vec<glance::host::Augment>,
    /// Put the augmented views in the kNN store too (by default it keeps the images as they
    /// are).
    #[arg(long)]
    store_augmented: bool,
}

#[derive(clap::Args, Debug)]
struct EvalArgs {
    /// The bundle.
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write an HTML report (confusion heat map, galleries) into DIR.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Write one CSV row per test image: path, true label, predicted label, score, nearest
    /// example's label and distance, unknown, reject reason.
    #[arg(long, value_name = "CSV")]
    predictions: Option<PathBuf>,
    /// Also score the images in DIR (and its subfolders), which belong to no class: rejection
    /// AUROC, unknowns rejected and known images kept at the bundle's thresholds, and a
    /// threshold sweep (open_set in JSON; a curve in --report).
    #[arg(long, value_name = "DIR")]
    unknown: Option<PathBuf>,
    /// Evaluate even when test images were trained on (loudly warned; the default refuses).
    #[arg(long)]
    allow_trained: bool,
    /// Least head probability accepted, for one class (`LABEL=V`) or all (`V`); overrides the
    /// bundle's calibrated thresholds. Repeatable.
    #[arg(long, value_name = "[LABEL=]V")]
    min_score: Vec<String>,
    /// Largest distance to the best class's nearest stored example, for one class (`LABEL=V`)
    /// or all (`V`); overrides the bundle's calibrated thresholds. Repeatable.
    #[arg(long, value_name = "[LABEL=]V")]
    max_distance: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct ShowArgs {
    /// The bundle.
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(clap::Args, Debug)]
struct QueryArgs {
    /// The bundle.
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// The query image.
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
    /// Number of neighbours.
    #[arg(long, short, default_value_t = 5)]
    k: usize,
    /// Search only this class's examples.
    #[arg(long, value_name = "LABEL")]
    class: Option<String>,
    /// Draw query and results as a contact sheet PNG.
    #[arg(long, value_name = "PNG")]
    sheet: Option<PathBuf>,
    /// Backbone ONNX file, when the bundle references one.
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(clap::Args, Debug)]
struct CompareArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
    #[command(flatten)]
    head: HeadArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(clap::Args, Debug)]
struct FeaturesArgs {
    /// Use this backbone ONNX file instead of the embedded one (it must be in the manifest).
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Image files or folders.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

fn monitor(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    let timeout = match args.timeout {
        Some(t) => glance::commands::check_seconds("--timeout", t).map_err(anyhow::Error::msg)?,
        None => None,
    };
    let summary = if args.port.starts_with("mqtt://") || args.port.starts_with("mqtts://") {
        let spec: glance::MqttSpec = args.port.parse().map_err(anyhow::Error::msg)?;
        let tls = glance::MqttTls {
            ca: args.mqtt_ca,
            cert: args.mqtt_cert,
            key: args.mqtt_key,
        };
        tls.check_for(&spec).map_err(anyhow::Error::msg)?;
        let opts = glance::host::MqttMonitorOptions {
            spec,
            tls,
            json: args.format == Format::Json,
            send: args.send,
            stdin_commands: args.stdin,
            count: args.count,
            timeout,
        };
        glance::host::monitor_mqtt(&opts, &mut io::stdout().lock())?
    } else {
        if args.mqtt_ca.is_some() || args.mqtt_cert.is_some() {
            bail!("--mqtt-ca and --mqtt-cert are for an mqtts:// broker, not a serial port");
        }
        serial_monitor(args, timeout)?
    };
    if summary.errors > 0 {
        eprintln!(
            "glance-host: {} message(s), {} undecodable frame(s) or line(s) skipped",
            summary.messages, summary.errors
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn serial_monitor(
    args: MonitorArgs,
    timeout: Option<std::time::Duration>,
) -> anyhow::Result<glance::host::MonitorSummary> {
    use glance::host::MonitorOptions;
    let spec: glance::SinkSpec = format!("serial:{}", args.port)
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let glance::SinkSpec::Serial { path, baud } = spec else {
        bail!("`{}` is not a serial device", args.port);
    };
    let opts = MonitorOptions {
        path,
        baud,
        framing: match args.framing {
            Framing::Postcard => glance::host::Framing::Postcard,
            Framing::Json => glance::host::Framing::Json,
        },
        json: args.format == Format::Json,
        send: args.send,
        stdin_commands: args.stdin,
        count: args.count,
        timeout,
    };
    glance::host::monitor(&opts, &mut io::stdout().lock())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => commands::inspect(a.job()),
        Command::Label(a) => label(&a),
        Command::Extract(a) => commands::extract(a.job()),
        Command::Fit(a) => commands::fit(a.job()),
        Command::Eval(a) => commands::eval(a.job()),
        Command::Show(a) => glance::host::show(&a.bundle, a.format == Format::Json),
        Command::Query(a) => commands::query(a.job()),
        Command::Compare(a) => commands::compare(a.job()),
        Command::Features(a) => commands::features(a.job()),
        Command::Monitor(a) => monitor(a),
    };
    match result {
        Ok(code) => code,
        Err(err)
            if err.chain().any(|e| {
                e.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("glance-host: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

impl HeadArgs {
    fn spec(&self) -> HeadSpec {
        HeadSpec {
            l2: self.l2,
            balanced: self.balanced,
            val_split: self.val_split,
            max_iters: self.max_iters,
            feature_norm: self.feature_norm,
            raw_size: self.raw_size,
        }
    }
}

impl InspectArgs {
    fn job(self) -> commands::InspectJob {
        commands::InspectJob {
            data: self.data.spec(),
            sheet: self.sheet,
            sheet_columns: self.sheet_columns,
        }
    }
}

impl ExtractArgs {
    fn job(self) -> commands::ExtractJob {
        commands::ExtractJob {
            data: self.data.spec(),
            run: RunOptions {
                backbone: self.backbone.backbone,
                resize: self.backbone.resize,
                ..self.run.options()
            },
            export: self.export,
            augment: self.augment,
        }
    }
}

impl FitArgs {
    fn job(self) -> commands::FitJob {
        commands::FitJob {
            data: self.data.spec(),
            run: RunOptions {
                backbone: self.backbone.backbone,
                resize: self.backbone.resize,
                ..self.run.options()
            },
            head: self.head.spec(),
            out: self.out,
            features: self.features,
            store_precision: self.store_precision,
            store_per_class: self.store_per_class,
            reject_percentile: self.reject_percentile,
            external_backbone: self.external_backbone,
            add: self.add,
            augment: self.augment,
            store_augmented: self.store_augmented,
        }
    }
}

impl EvalArgs {
    fn job(self) -> commands::EvalJob {
        commands::EvalJob {
            bundle: self.bundle,
            data: self.data.spec(),
            run: self.run.options(),
            format: self.format,
            report: self.report,
            predictions: self.predictions,
            unknown: self.unknown,
            allow_trained: self.allow_trained,
            min_score: self.min_score,
            max_distance: self.max_distance,
        }
    }
}

impl QueryArgs {
    fn job(self) -> commands::QueryJob {
        commands::QueryJob {
            bundle: self.bundle,
            image: self.image,
            k: self.k,
            class: self.class,
            sheet: self.sheet,
            model: self.model,
            format: self.format,
        }
    }
}

impl CompareArgs {
    fn job(self) -> commands::CompareJob {
        commands::CompareJob {
            data: self.data.spec(),
            run: RunOptions {
                backbone: self.backbone.backbone,
                resize: self.backbone.resize,
                ..self.run.options()
            },
            head: self.head.spec(),
            format: self.format,
        }
    }
}

impl FeaturesArgs {
    fn job(self) -> commands::FeaturesJob {
        commands::FeaturesJob {
            model: self.model,
            images: self.images,
        }
    }
}

/// `glance-host label`.
fn label(a: &LabelArgs) -> anyhow::Result<ExitCode> {
    let s = glance::host::label(&a.dir, a.sheet.as_deref(), a.sheet_columns)?;
    for why in &s.unreadable {
        eprintln!("glance-host: left out: {why}");
    }
    println!(
        "{}: {} capture(s), {} labelled so far; fill in the label column{}",
        s.csv.display(),
        s.captures,
        s.labelled,
        s.sheet
            .as_ref()
            .map(|p| format!(" (contact sheet: {})", p.display()))
            .unwrap_or_default()
    );
    Ok(if s.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
