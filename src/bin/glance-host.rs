//! `glance-host`: the host-side workbench. Thin: parse arguments → run → exit code.
//! The work itself lives in `src/host/` (compiled into this binary only).

#[path = "../host/mod.rs"]
mod host;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use glance::backbone::{Backbone, EngineOptions, ModelSource};
use glance::bundle::{Bundle, FeatureKind};
use glance::knn::Precision;
use glance::preprocess::{self, DecodeLimits};

use host::dataset::{Dataset, ItemSource, OpenOptions, Split};
use host::workbench::{DeepNorm, RunOptions, TrainOptions};

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
    /// Time the backbone alone on one image (one JSON object; used by scripts/bench-backbone.sh).
    Latency(LatencyArgs),
    /// Decode what a board sends over serial (framed postcard or JSON lines) and send it commands.
    Monitor(MonitorArgs),
    /// Time kNN search (int8 and f32 stores) on synthetic feature-like vectors; writes them for
    /// faiss (used by scripts/bench-knn.sh).
    KnnBench(KnnBenchArgs),
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
    /// The serial device, with an optional speed: `/dev/ttyUSB0@115200`.
    #[arg(value_name = "PATH[@BAUD]")]
    port: String,
    /// What the board sends.
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
    fn open(&self) -> anyhow::Result<Dataset> {
        self.open_like(None)
    }

    /// Opens DATA split as `bundle` was when a flag does not say otherwise.
    fn open_like(&self, bundle: Option<&glance::bundle::SplitRecord>) -> anyhow::Result<Dataset> {
        let defaults = OpenOptions::default();
        let split = self
            .split
            .or(bundle.map(|b| b.test_fraction))
            .unwrap_or(defaults.test_fraction);
        if !(0.0..1.0).contains(&split) {
            bail!("--split {split} must be in [0, 1)");
        }
        Dataset::open(
            &self.data,
            &OpenOptions {
                test_fraction: split,
                seed: self
                    .seed
                    .or(bundle.map(|b| b.seed))
                    .unwrap_or(defaults.seed),
                per_class: self
                    .per_class
                    .or(bundle.map(|b| b.per_class as usize))
                    .unwrap_or(defaults.per_class),
                label_names: self.label_names.clone(),
            },
        )
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
    engine: glance::backbone::EngineKind,
    /// onnxruntime's shared library for `--engine ort`.
    #[arg(long, value_name = "FILE")]
    ort_library: Option<PathBuf>,
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        RunOptions {
            model: self.model.clone(),
            engine: EngineOptions {
                kind: self.engine,
                // onnxruntime runs one frame at a time on all the threads (its session is
                // shared by the extraction workers); tract runs one frame per worker.
                threads: if self.engine == glance::backbone::EngineKind::Ort {
                    self.threads()
                } else {
                    1
                },
                ort_library: self.ort_library.clone(),
                // The workbench loads the backbone for its features alone either way.
                features_only: false,
            },
            cache_dir: (!self.no_cache).then(|| {
                self.cache
                    .clone()
                    .unwrap_or_else(host::extract::default_cache_dir)
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

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum FeatureChoice {
    /// Deep features from the backbone (transfer learning).
    Deep,
    /// Raw pixels (the baseline).
    Raw,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum StorePrecision {
    I8,
    F32,
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
    /// Also write {train,test}_{features,labels}.npy, {train,test}_paths.txt (row i's image)
    /// and classes.txt into DIR (for numpy).
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
struct HeadArgs {
    /// L2 penalty on the head's weights (on top of early stopping; 1e-6 measured best on
    /// Fashion-MNIST, see BENCHMARKS.md).
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

#[derive(clap::Args, Debug)]
struct LatencyArgs {
    /// Backbone ONNX file (it must be in the manifest); the embedded one when absent.
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Timed runs.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Untimed runs first.
    #[arg(long, default_value_t = 5)]
    warmup: u32,
    /// Inference engine: `tract` (built in) or `ort` (onnxruntime, loaded from
    /// libonnxruntime.so: --ort-library, else $ORT_DYLIB_PATH).
    #[arg(long, default_value = "tract", value_name = "ENGINE")]
    engine: glance::backbone::EngineKind,
    /// onnxruntime's shared library for `--engine ort`.
    #[arg(long, value_name = "FILE")]
    ort_library: Option<PathBuf>,
    /// Compute the features only, as bundles and extraction do (no ImageNet logits).
    #[arg(long)]
    features_only: bool,
    /// The image to run.
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
}

#[derive(clap::Args, Debug)]
struct KnnBenchArgs {
    /// Stored examples.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Vector length.
    #[arg(long, default_value_t = 1280)]
    dim: usize,
    /// Timed queries (each searched alone, as a frame is).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Write the store and the queries here as raw little-endian f32 (`store.f32`,
    /// `queries.f32`), and each store's nearest rows (`top1_f32.u32`, `top1_i8.u32`).
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
}

/// Vectors like pooled ReLU6 features: about half exactly 0, the rest a heavy positive tail;
/// queries are stored rows plus noise, so that each has a clear nearest neighbour (xorshift,
/// fixed seed: every run and faiss see the same numbers).
fn feature_like(rows: usize, dim: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.max(1);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f64::from(x) / f64::from(u32::MAX)
    };
    (0..rows * dim)
        .map(|_| {
            let u = next() * 2.0 - 1.0;
            if u <= 0.0 {
                0.0
            } else {
                (u * u * 6.0) as f32
            }
        })
        .collect()
}

fn knn_bench(args: KnnBenchArgs) -> anyhow::Result<ExitCode> {
    use glance::knn::{KnnStore, Precision};
    if args.rows == 0 || args.dim == 0 || args.queries == 0 {
        bail!("--rows, --dim and --queries must be positive");
    }
    let store = feature_like(args.rows, args.dim, 1);
    let noise = feature_like(args.queries, args.dim, 2);
    let queries: Vec<f32> = (0..args.queries)
        .flat_map(|q| {
            let row = (q * 7919) % args.rows;
            let base = &store[row * args.dim..(row + 1) * args.dim];
            let n = &noise[q * args.dim..(q + 1) * args.dim];
            base.iter()
                .zip(n)
                .map(|(b, e)| b + 0.5 * e)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut report = serde_json::Map::new();
    let mut tops = Vec::new();
    for (name, precision) in [("f32", Precision::F32), ("i8", Precision::I8)] {
        let mut knn = KnnStore::new(args.dim, precision);
        for (r, v) in store.chunks_exact(args.dim).enumerate() {
            knn.push(v, 0, r as u32, String::new())?;
        }
        let mut times = Vec::with_capacity(args.queries);
        let mut top = Vec::with_capacity(args.queries);
        for (i, q) in queries.chunks_exact(args.dim).enumerate() {
            let t = std::time::Instant::now();
            let hit = knn.search(q, 1, None);
            let took = t.elapsed().as_secs_f64() * 1e3;
            if i >= 5.min(args.queries - 1) {
                times.push(took);
            }
            top.push(hit.first().map_or(u32::MAX, |n| n.row as u32));
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        report.insert(
            name.to_owned(),
            serde_json::json!({"median_ms": pct(0.5), "p10_ms": pct(0.1), "p90_ms": pct(0.9),
                               "store_bytes": args.rows * args.dim * if name == "f32" { 4 } else { 1 }}),
        );
        tops.push((name, top));
    }
    let agree = tops[0]
        .1
        .iter()
        .zip(&tops[1].1)
        .filter(|(a, b)| a == b)
        .count();
    report.insert(
        "i8_top1_agrees_with_f32".into(),
        serde_json::json!(agree as f64 / args.queries as f64),
    );
    report.insert(
        "shape".into(),
        serde_json::json!({"rows": args.rows, "dim": args.dim, "queries": args.queries}),
    );
    report.insert(
        "build_target".into(),
        serde_json::json!(glance::BUILD_TARGET),
    );
    if let Some(dir) = &args.write {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let u32_bytes = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for (file, bytes) in [
            ("store.f32", f32_bytes(&store)),
            ("queries.f32", f32_bytes(&queries)),
            ("top1_f32.u32", u32_bytes(&tops[0].1)),
            ("top1_i8.u32", u32_bytes(&tops[1].1)),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, bytes).with_context(|| path.display().to_string())?;
        }
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(ExitCode::SUCCESS)
}

fn monitor(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    use host::monitor::{self, MonitorOptions};
    let spec: glance::sink::SinkSpec = format!("serial:{}", args.port)
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let glance::sink::SinkSpec::Serial { path, baud } = spec else {
        bail!("`{}` is not a serial device", args.port);
    };
    let opts = MonitorOptions {
        path,
        baud,
        framing: match args.framing {
            Framing::Postcard => monitor::Framing::Postcard,
            Framing::Json => monitor::Framing::Json,
        },
        json: args.format == Format::Json,
        send: args.send,
        stdin_commands: args.stdin,
        count: args.count,
        timeout: match args.timeout {
            Some(t) => {
                glance::control::check_seconds("--timeout", t).map_err(anyhow::Error::msg)?
            }
            None => None,
        },
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let summary = monitor::monitor(&opts, &mut out)?;
    if summary.errors > 0 {
        eprintln!(
            "glance-host: {} message(s), {} undecodable frame(s) or line(s) skipped",
            summary.messages, summary.errors
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect(a),
        Command::Extract(a) => extract(a),
        Command::Fit(a) => fit(a),
        Command::Eval(a) => eval(a),
        Command::Show(a) => host::show::show(&a.bundle, a.format == Format::Json),
        Command::Query(a) => query(a),
        Command::Compare(a) => compare(a),
        Command::Features(a) => features(a),
        Command::Latency(a) => latency(a),
        Command::KnnBench(a) => knn_bench(a),
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

/// An example index with its decoded size or the reason it could not be read.
type Probe = (usize, Result<(u32, u32), String>);

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let ds = args.data.open()?;
    let out = &mut io::stdout().lock();
    writeln!(
        out,
        "{}: {} ({} classes, {} images)",
        ds.root.display(),
        ds.kind,
        ds.classes.len(),
        ds.items.len()
    )?;
    if ds.split_generated {
        writeln!(
            out,
            "no test split in the data: {:.0}% held out with seed {}",
            ds.opened_with.test_fraction * 100.0,
            ds.opened_with.seed
        )?;
    }
    report_unsupported(out, &ds)?;
    let train = ds.counts(Split::Train);
    let test = ds.counts(Split::Test);
    let w = ds.classes.iter().map(|c| c.len()).max().unwrap_or(5).max(5);
    writeln!(out, "{:<w$}  {:>7}  {:>7}", "class", "train", "test")?;
    for (i, c) in ds.classes.iter().enumerate() {
        writeln!(out, "{c:<w$}  {:>7}  {:>7}", train[i], test[i])?;
    }
    writeln!(
        out,
        "{:<w$}  {:>7}  {:>7}",
        "total",
        train.iter().sum::<usize>(),
        test.iter().sum::<usize>()
    )?;
    // Decode everything (on all cores) to find unreadable files and the sizes.
    let n = ds.items.len();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Probe> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..std::thread::available_parallelism().map_or(1, |n| n.get()))
            .map(|_| {
                s.spawn(|| {
                    let mut local = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let r = ds.items[i]
                            .source
                            .load(DecodeLimits::default())
                            .map(|img| img.dimensions());
                        local.push((i, r.map_err(|e| e.to_string())));
                    }
                    local
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .flatten()
            .collect()
    });
    let sizes =
        host::dataset::size_histogram(results.iter().filter_map(|(_, r)| r.as_ref().ok().copied()));
    let mut by_count: Vec<_> = sizes.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1));
    let shown: Vec<String> = by_count
        .iter()
        .take(5)
        .map(|((w, h), n)| format!("{w}×{h} ({n})"))
        .collect();
    writeln!(
        out,
        "image sizes: {} distinct; most common: {}",
        sizes.len(),
        shown.join(", ")
    )?;
    let mut bad: Vec<&Probe> = results.iter().filter(|r| r.1.is_err()).collect();
    bad.sort_by_key(|r| r.0);
    writeln!(out, "unreadable: {}", bad.len())?;
    for (_, r) in &bad {
        if let Err(reason) = r {
            writeln!(out, "  {reason}")?;
        }
    }
    if let Some(sheet) = &args.sheet {
        let rows: Vec<(String, Vec<host::draw::Captioned>)> = (0..ds.classes.len())
            .map(|c| {
                let of_class: Vec<_> = ds.items.iter().filter(|i| i.label == c).collect();
                let pictures = of_class
                    .iter()
                    .take(args.sheet_columns)
                    .map(|i| host::draw::Captioned {
                        image: i.source.load(DecodeLimits::default()).ok(),
                        caption: vec![
                            i.split.name().to_string(),
                            host::draw::short_name(&i.source.name()),
                        ],
                    })
                    .collect();
                (format!("{} ({})", ds.classes[c], of_class.len()), pictures)
            })
            .collect();
        host::draw::captioned_sheet(&rows, sheet)?;
        writeln!(
            out,
            "contact sheet: {} (row i = class i in the order above)",
            sheet.display()
        )?;
    }
    Ok(if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn extract(args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let ds = args.data.open()?;
    let run = args.run.options();
    let backbone = host::workbench::load_backbone(&run)?;
    let t = std::time::Instant::now();
    let extractor = host::extract::Extractor::Deep(&backbone);
    let mut rows = 0;
    let mut dim = 0;
    let mut failures = Vec::new();
    for split in [Split::Train, Split::Test] {
        let items = ds.split(split);
        let (m, kept, f, _) = host::workbench::feature_matrix(&items, &extractor, &run)?;
        rows += m.rows();
        dim = m.dim;
        failures.extend(f);
        if let Some(dir) = &args.export {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
            let name = split.name();
            host::npy::write_f32(
                &dir.join(format!("{name}_features.npy")),
                m.rows(),
                m.dim,
                &m.data,
            )?;
            host::npy::write_labels(&dir.join(format!("{name}_labels.npy")), &m.labels)?;
            // One line per feature row, in row order (unreadable images have no row).
            let paths: String = kept
                .iter()
                .map(|&i| items[i].source.name() + "\n")
                .collect();
            std::fs::write(dir.join(format!("{name}_paths.txt")), paths)
                .with_context(|| format!("{}: cannot write {name}_paths.txt", dir.display()))?;
            std::fs::write(dir.join("classes.txt"), ds.classes.join("\n") + "\n")
                .with_context(|| format!("{}: cannot write classes.txt", dir.display()))?;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} feature vectors of {} in {:.1} s ({:.1} images/s){}",
        rows,
        dim,
        secs,
        rows as f64 / secs.max(1e-9),
        run.cache_dir
            .as_ref()
            .map(|d| format!("; cache in {}", d.display()))
            .unwrap_or_default()
    );
    report_failures(&failures);
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Names the files of formats glance cannot decode that the dataset left out.
fn report_unsupported(out: &mut impl Write, ds: &Dataset) -> anyhow::Result<()> {
    if ds.unsupported.is_empty() {
        return Ok(());
    }
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for p in &ds.unsupported {
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_uppercase())
            .unwrap_or_default();
        *kinds.entry(ext).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    writeln!(
        out,
        "left out: {} file(s) of formats glance cannot decode ({}); convert them to JPEG:",
        ds.unsupported.len(),
        kinds.join(", ")
    )?;
    for p in ds.unsupported.iter().take(10) {
        writeln!(out, "  {}", p.display())?;
    }
    if ds.unsupported.len() > 10 {
        writeln!(out, "  … and {} more", ds.unsupported.len() - 10)?;
    }
    Ok(())
}

fn report_failures(failures: &[(String, String)]) {
    if !failures.is_empty() {
        eprintln!(
            "glance-host: {} unreadable image(s) skipped:",
            failures.len()
        );
        for (_, reason) in failures.iter().take(20) {
            eprintln!("  {reason}");
        }
        if failures.len() > 20 {
            eprintln!("  … and {} more", failures.len() - 20);
        }
    }
}

fn train_options(
    head: &HeadArgs,
    features: FeatureKind,
    run: &RunOptions,
    seed: u64,
) -> anyhow::Result<TrainOptions> {
    if !(0.0..0.9).contains(&head.val_split) {
        bail!("--val-split {} must be in [0, 0.9)", head.val_split);
    }
    Ok(TrainOptions {
        features,
        val_fraction: head.val_split,
        seed,
        fit: host::fit::FitOptions {
            l2: head.l2,
            balanced: head.balanced,
            max_iters: head.max_iters,
            threads: run.threads,
            ..Default::default()
        },
        store_precision: Precision::I8,
        store_per_class: 500,
        reject_percentile: 5.0,
        embed_backbone: true,
        deep_norm: head.feature_norm,
    })
}

fn fit(args: FitArgs) -> anyhow::Result<ExitCode> {
    let ds = args.data.open()?;
    let run = args.run.options();
    let features = match args.features {
        FeatureChoice::Deep => FeatureKind::Deep,
        FeatureChoice::Raw => FeatureKind::Raw {
            size: args.head.raw_size,
        },
    };
    let mut opts = train_options(&args.head, features, &run, ds.opened_with.seed)?;
    opts.store_precision = match args.store_precision {
        StorePrecision::I8 => Precision::I8,
        StorePrecision::F32 => Precision::F32,
    };
    opts.store_per_class = args.store_per_class;
    if !(0.0..50.0).contains(&args.reject_percentile) {
        bail!(
            "--reject-percentile {} must be in [0, 50)",
            args.reject_percentile
        );
    }
    opts.reject_percentile = args.reject_percentile;
    opts.embed_backbone = !args.external_backbone;
    let backbone = host::workbench::backbone_for(features, &run)?;
    let (bundle, report) = host::workbench::train(&ds, backbone.as_ref(), &run, &opts)?;
    report_failures(&report.failures);
    report_unsupported(&mut io::stderr().lock(), &ds)?;
    for w in &report.warnings {
        eprintln!("glance-host: warning: {w}");
    }
    bundle.save(&args.out)?;
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    let held_out = if report.calibration.method == "cross-validation" {
        format!(
            "calibrated by {}-fold cross-validation on all {}",
            report.calibration.folds, report.val_rows
        )
    } else {
        format!("validated on {}", report.val_rows)
    };
    println!(
        "{}: {} head on {} features, {} classes; fitted on {} images, {held_out}",
        args.out.display(),
        match bundle.features {
            FeatureKind::Deep => "deep-feature",
            FeatureKind::Raw { .. } => "raw-pixel",
        },
        bundle.head.dim,
        bundle.labels.len(),
        report.train_rows,
    );
    println!(
        "{} accuracy {:.2}%, log-loss {:.4}, temperature {:.3}; {} iterations ({}); \
         extract {:.1} s, fit {:.1} s; store {} examples; bundle {:.2} MB",
        if report.calibration.method == "cross-validation" {
            "out-of-fold"
        } else {
            "validation"
        },
        report.fit.val_accuracy * 100.0,
        report.fit.val_loss,
        report.temperature,
        report.fit.iterations,
        report.fit.stopped,
        report.extract_seconds,
        report.fit_seconds,
        bundle.store.as_ref().map_or(0, |s| s.len()),
        size as f64 / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let mut bundle = Bundle::load(&args.bundle)?;
    let labels = bundle.labels.clone();
    bundle
        .thresholds
        .apply_flags(&labels, &args.min_score, &args.max_distance)?;
    let ds = args.data.open_like(bundle.split.as_ref())?;
    let run = args.run.options();
    let overlap = if args.allow_trained {
        host::workbench::Overlap::Warn
    } else {
        host::workbench::Overlap::Refuse
    };
    let (mut e, cases) =
        host::workbench::evaluate_bundle(&bundle, &args.bundle, &ds, &run, overlap)?;
    let mut unknown_cases = Vec::new();
    if let Some(dir) = &args.unknown {
        let (open, u) = host::workbench::open_set(&bundle, &args.bundle, &cases, dir, &run)?;
        e.open_set = Some(open);
        unknown_cases = u;
    }
    if let Some(path) = &args.predictions {
        let all: Vec<&host::workbench::Case> = cases.iter().chain(&unknown_cases).collect();
        host::report::predictions_csv(&bundle.labels, &all, path)?;
        eprintln!("predictions: {}", path.display());
    }

    let out = &mut io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(&e)?)?,
        Format::Text => write!(out, "{}", host::report::text(&e))?,
    }
    if let Some(dir) = &args.report {
        let name = args
            .bundle
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        host::report::html(&e, &cases, &unknown_cases, &name, dir)?;
        eprintln!("report: {}", dir.join("index.html").display());
    }
    Ok(if e.unreadable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let bundle = Bundle::load(&args.bundle)?;
    let store = bundle
        .store
        .as_ref()
        .filter(|s| !s.is_empty())
        .with_context(|| format!("{}: the bundle has no kNN store", args.bundle.display()))?;
    let class = match &args.class {
        Some(name) => Some(
            bundle
                .labels
                .iter()
                .position(|l| l == name)
                .with_context(|| {
                    format!(
                        "no class `{name}` in the bundle (classes: {})",
                        bundle.labels.join(", ")
                    )
                })? as u16,
        ),
        None => None,
    };
    let image = preprocess::decode_file(&args.image, DecodeLimits::default())?;
    let backbone = host::workbench::bundle_backbone(
        &bundle,
        &args.bundle,
        &args.model,
        &EngineOptions::default(),
    )?;
    let features =
        host::extract::Extractor::new(bundle.features, backbone.as_ref())?.features(&image)?;
    let hits = store.search(&features, args.k.max(1), class);
    let out = &mut io::stdout().lock();
    for n in &hits {
        let source = &store.sources[n.row];
        let label = &bundle.labels[usize::from(n.label)];
        match args.format {
            Format::Json => writeln!(
                out,
                "{}",
                serde_json::json!({"rank": n.rank, "label": label, "distance": n.distance, "id": n.id, "source": source})
            )?,
            Format::Text => writeln!(
                out,
                "{:>3}  {:.4}  {label:<16} {source}",
                n.rank, n.distance
            )?,
        }
    }
    if let Some(sheet) = &args.sheet {
        let mut row = vec![host::draw::Captioned {
            image: Some(image),
            caption: vec![
                "query".into(),
                host::draw::short_name(&args.image.display().to_string()),
            ],
        }];
        let names: Vec<&str> = hits.iter().map(|n| store.sources[n.row].as_str()).collect();
        for (n, source) in hits.iter().zip(ItemSource::from_names(&names)) {
            row.push(host::draw::Captioned {
                image: source
                    .ok()
                    .and_then(|s| s.load(DecodeLimits::default()).ok()),
                caption: vec![
                    format!("#{} {}", n.rank, bundle.labels[usize::from(n.label)]),
                    format!("d {:.3}", n.distance),
                    host::draw::short_name(&store.sources[n.row]),
                ],
            });
        }
        let title = match class {
            Some(c) => format!("in {}", bundle.labels[usize::from(c)]),
            None => "all classes".into(),
        };
        host::draw::captioned_sheet(&[(title, row)], sheet)?;
        eprintln!(
            "sheet: {} (the query first, then the neighbours by rank)",
            sheet.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let ds = args.data.open()?;
    let run = args.run.options();
    let test: Vec<_> = ds.split(Split::Test);
    if test.is_empty() {
        bail!(
            "{}: no test images to compare on (the data has no test split and --split is 0)",
            ds.root.display()
        );
    }
    let mut rows = Vec::new();
    let raw = FeatureKind::Raw {
        size: args.head.raw_size,
    };
    for features in [raw, FeatureKind::Deep] {
        let opts = train_options(&args.head, features, &run, ds.opened_with.seed)?;
        let backbone = host::workbench::backbone_for(features, &run)?;
        let (bundle, report) = host::workbench::train(&ds, backbone.as_ref(), &run, &opts)?;
        let extractor = host::extract::Extractor::new(features, backbone.as_ref())?;
        let (m, _, _, _) = host::workbench::feature_matrix(&test, &extractor, &run)?;
        let acc = host::workbench::head_accuracy(&bundle, &m);
        rows.push((features, report, acc, m.rows(), bundle.head.dim));
    }
    let out = &mut io::stdout().lock();
    match args.format {
        Format::Json => {
            let v: Vec<_> = rows
                .iter()
                .map(|(f, r, acc, n, dim)| {
                    serde_json::json!({
                        "features": match f { FeatureKind::Deep => "deep", FeatureKind::Raw { .. } => "raw" },
                        "dim": dim, "test_accuracy": acc, "test_examples": n,
                        "val_accuracy": r.fit.val_accuracy, "fit_seconds": r.fit_seconds,
                        "extract_seconds": r.extract_seconds,
                    })
                })
                .collect();
            writeln!(out, "{}", serde_json::Value::Array(v))?;
        }
        Format::Text => {
            writeln!(
                out,
                "{:<14} {:>6} {:>10} {:>10} {:>9} {:>9}",
                "features", "dim", "val acc", "test acc", "extract", "fit"
            )?;
            for (f, r, acc, _, dim) in &rows {
                let name = match f {
                    FeatureKind::Deep => "deep (backbone)".to_string(),
                    FeatureKind::Raw { size: s } => format!("raw {s}×{s}"),
                };
                writeln!(
                    out,
                    "{name:<14} {dim:>6} {:>9.2}% {:>9.2}% {:>8.1}s {:>8.1}s",
                    r.fit.val_accuracy * 100.0,
                    acc * 100.0,
                    r.extract_seconds,
                    r.fit_seconds
                )?;
            }
            writeln!(
                out,
                "test split: {} images",
                rows.first().map_or(0, |r| r.3)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn features(args: FeaturesArgs) -> anyhow::Result<ExitCode> {
    let source = args.model.map_or(ModelSource::Embedded, ModelSource::File);
    let backbone =
        Backbone::load(&source, &EngineOptions::default()).context("cannot load the backbone")?;
    let name = backbone.entry().name.clone();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failures = 0usize;
    for item in glance::source::expand_paths(&args.images) {
        let result = item
            .map_err(|(p, e)| anyhow::anyhow!("{}: {e}", p.display()))
            .and_then(|path| {
                let image = preprocess::decode_file(&path, DecodeLimits::default())?;
                let tensor = preprocess::tensor_from_image(&image, backbone.preprocess_spec())?;
                Ok((path, backbone.run(tensor)?.features))
            });
        match result {
            Ok((path, features)) => {
                let line = serde_json::json!({"source": path.display().to_string(), "backbone": name, "features": features});
                writeln!(out, "{line}")?;
            }
            Err(e) => {
                failures += 1;
                out.flush()?;
                eprintln!("glance-host: error: {e:#}");
            }
        }
    }
    out.flush()?;
    Ok(if failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn latency(args: LatencyArgs) -> anyhow::Result<ExitCode> {
    let source = args.model.map_or(ModelSource::Embedded, ModelSource::File);
    let load_start = std::time::Instant::now();
    let engine = EngineOptions {
        kind: args.engine,
        threads: 1,
        ort_library: args.ort_library,
        features_only: args.features_only,
    };
    let backbone = Backbone::load(&source, &engine).context("cannot load the backbone")?;
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;
    let image = preprocess::decode_file(&args.image, DecodeLimits::default())?;
    let tensor = preprocess::tensor_from_image(&image, backbone.preprocess_spec())?;
    for _ in 0..args.warmup {
        backbone.run(tensor.clone())?;
    }
    let mut times = Vec::with_capacity(args.runs as usize);
    for _ in 0..args.runs {
        let input = tensor.clone();
        let t = std::time::Instant::now();
        backbone.run(input)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let line = serde_json::json!({
        "runtime": backbone.engine(), "model": backbone.entry().name,
        "outputs": if args.features_only { "features" } else { "features+logits" }, "runs": times.len(), "load_ms": load_ms,
        "median_ms": pct(0.5), "p10_ms": pct(0.1), "p90_ms": pct(0.9), "min_ms": times[0],
    });
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
