//! The bodies of `glance-host`'s commands. The binary parses its arguments into these jobs and
//! calls one function; each prints its result to stdout (reports and warnings to stderr) and
//! returns the process's exit code: 0 when everything was read, 1 when some images were
//! unreadable (the run still finished), an `Err` when it could not run at all.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::backbone::{Backbone, EngineOptions, ModelSource};
use crate::bundle::{Bundle, FeatureKind};
use crate::host::dataset::{Dataset, ItemSource, OpenOptions, Split};
use crate::host::workbench::{DeepNorm, RunOptions, TrainOptions};
use crate::knn::Precision;
use crate::preprocess::{self, DecodeLimits};

/// How a command prints its result.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    Text,
    /// One JSON document.
    Json,
}

/// What a head is trained on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FeatureChoice {
    /// Deep features from the backbone (transfer learning).
    Deep,
    /// Raw pixels (the baseline).
    Raw,
}

/// Precision of the kNN store packed into a bundle.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StorePrecision {
    /// One byte a dimension (the default: a quarter of the memory, same neighbours).
    I8,
    /// Four bytes a dimension.
    F32,
}

/// A dataset and how to split it.
#[derive(Debug, Clone)]
pub struct DataSpec {
    /// A folder of class folders, IDX files or a CSV manifest.
    pub data: PathBuf,
    /// Fraction held out as test when the data has no test split.
    pub split: Option<f64>,
    /// Seed for every random split.
    pub seed: Option<u64>,
    /// Most examples per class in each split (0 = all).
    pub per_class: Option<usize>,
    /// Class names for IDX labels, one per line.
    pub label_names: Option<PathBuf>,
}

impl DataSpec {
    /// Opens the data with the given settings, defaults for the rest.
    pub fn open(&self) -> anyhow::Result<Dataset> {
        self.open_like(None)
    }

    /// Opens the data split as `bundle` was where a setting does not say otherwise.
    pub fn open_like(
        &self,
        bundle: Option<&crate::bundle::SplitRecord>,
    ) -> anyhow::Result<Dataset> {
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

/// How a head is fitted.
#[derive(Debug, Clone)]
pub struct HeadSpec {
    /// L2 penalty on the weights.
    pub l2: f64,
    /// Weight classes inversely to their frequency.
    pub balanced: bool,
    /// Fraction of the training split used for validation.
    pub val_split: f64,
    /// Most optimiser iterations.
    pub max_iters: u64,
    /// How deep features are conditioned before the head.
    pub feature_norm: DeepNorm,
    /// Side of the raw-pixel features.
    pub raw_size: u32,
}

/// `glance-host inspect`.
#[derive(Debug, Clone)]
pub struct InspectJob {
    /// The data.
    pub data: DataSpec,
    /// Contact sheet PNG to write.
    pub sheet: Option<PathBuf>,
    /// Examples per row of the sheet.
    pub sheet_columns: usize,
}

/// `glance-host extract`.
#[derive(Debug, Clone)]
pub struct ExtractJob {
    /// The data.
    pub data: DataSpec,
    /// Backbone, cache and threads.
    pub run: RunOptions,
    /// Folder for numpy files of the features.
    pub export: Option<PathBuf>,
}

/// `glance-host fit`.
#[derive(Debug, Clone)]
pub struct FitJob {
    /// The data.
    pub data: DataSpec,
    /// Backbone, cache and threads.
    pub run: RunOptions,
    /// Head settings.
    pub head: HeadSpec,
    /// Bundle to write.
    pub out: PathBuf,
    /// Features to train on.
    pub features: FeatureChoice,
    /// Store precision.
    pub store_precision: StorePrecision,
    /// Most stored examples per class (0 = all).
    pub store_per_class: usize,
    /// Share (%) of a class's own held-out images each unknown threshold may reject.
    pub reject_percentile: f64,
    /// Reference the backbone instead of copying it into the bundle.
    pub external_backbone: bool,
}

/// `glance-host eval`.
#[derive(Debug, Clone)]
pub struct EvalJob {
    /// The bundle.
    pub bundle: PathBuf,
    /// The data (split as the bundle's record says unless set).
    pub data: DataSpec,
    /// Backbone, cache and threads.
    pub run: RunOptions,
    /// Output format.
    pub format: Format,
    /// HTML report folder.
    pub report: Option<PathBuf>,
    /// One CSV row per test image.
    pub predictions: Option<PathBuf>,
    /// A folder of images of no class (open-set figures).
    pub unknown: Option<PathBuf>,
    /// Evaluate even when test images were trained on.
    pub allow_trained: bool,
    /// `[LABEL=]V` least scores overriding the bundle's.
    pub min_score: Vec<String>,
    /// `[LABEL=]V` largest distances overriding the bundle's.
    pub max_distance: Vec<String>,
}

/// `glance-host query`.
#[derive(Debug, Clone)]
pub struct QueryJob {
    /// The bundle.
    pub bundle: PathBuf,
    /// The query image.
    pub image: PathBuf,
    /// Number of neighbours.
    pub k: usize,
    /// Search only this class's examples.
    pub class: Option<String>,
    /// Contact sheet PNG of query and results.
    pub sheet: Option<PathBuf>,
    /// Backbone file, when the bundle references one.
    pub model: Option<PathBuf>,
    /// Output format.
    pub format: Format,
}

/// `glance-host compare`.
#[derive(Debug, Clone)]
pub struct CompareJob {
    /// The data.
    pub data: DataSpec,
    /// Backbone, cache and threads.
    pub run: RunOptions,
    /// Head settings (both heads).
    pub head: HeadSpec,
    /// Output format.
    pub format: Format,
}

/// `glance-host features`.
#[derive(Debug, Clone)]
pub struct FeaturesJob {
    /// Backbone file instead of the embedded one.
    pub model: Option<PathBuf>,
    /// Image files or folders.
    pub images: Vec<PathBuf>,
}

/// An example index with its decoded size or the reason it could not be read.
type Probe = (usize, Result<(u32, u32), String>);

/// Counts per class and split, image sizes, unreadable files; optionally a contact sheet.
pub fn inspect(args: InspectJob) -> anyhow::Result<ExitCode> {
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
    let sizes = crate::host::dataset::size_histogram(
        results.iter().filter_map(|(_, r)| r.as_ref().ok().copied()),
    );
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
        let rows: Vec<(String, Vec<crate::host::draw::Captioned>)> = (0..ds.classes.len())
            .map(|c| {
                let of_class: Vec<_> = ds.items.iter().filter(|i| i.label == c).collect();
                let pictures = of_class
                    .iter()
                    .take(args.sheet_columns)
                    .map(|i| crate::host::draw::Captioned {
                        image: i.source.load(DecodeLimits::default()).ok(),
                        caption: vec![
                            i.split.name().to_string(),
                            crate::host::draw::short_name(&i.source.name()),
                        ],
                    })
                    .collect();
                (format!("{} ({})", ds.classes[c], of_class.len()), pictures)
            })
            .collect();
        crate::host::draw::captioned_sheet(&rows, sheet)?;
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

/// Extracts (and caches) deep features for every image of the data.
pub fn extract(args: ExtractJob) -> anyhow::Result<ExitCode> {
    let ds = args.data.open()?;
    let run = args.run.clone();
    let backbone = crate::host::workbench::load_backbone(&run)?;
    let t = std::time::Instant::now();
    let extractor = crate::host::extract::Extractor::Deep(&backbone);
    let mut rows = 0;
    let mut dim = 0;
    let mut failures = Vec::new();
    for split in [Split::Train, Split::Test] {
        let items = ds.split(split);
        let (m, kept, f, _) = crate::host::workbench::feature_matrix(&items, &extractor, &run)?;
        rows += m.rows();
        dim = m.dim;
        failures.extend(f);
        if let Some(dir) = &args.export {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
            let name = split.name();
            crate::host::npy::write_f32(
                &dir.join(format!("{name}_features.npy")),
                m.rows(),
                m.dim,
                &m.data,
            )?;
            crate::host::npy::write_labels(&dir.join(format!("{name}_labels.npy")), &m.labels)?;
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
pub fn report_unsupported(out: &mut impl Write, ds: &Dataset) -> anyhow::Result<()> {
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
    head: &HeadSpec,
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
        fit: crate::host::fit::FitOptions {
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

/// Fits a head and packs a bundle.
pub fn fit(args: FitJob) -> anyhow::Result<ExitCode> {
    let ds = args.data.open()?;
    let run = args.run.clone();
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
    let backbone = crate::host::workbench::backbone_for(features, &run)?;
    let (bundle, report) = crate::host::workbench::train(&ds, backbone.as_ref(), &run, &opts)?;
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

/// Evaluates a bundle on the data's test split.
pub fn eval(args: EvalJob) -> anyhow::Result<ExitCode> {
    let mut bundle = Bundle::load(&args.bundle)?;
    let labels = bundle.labels.clone();
    bundle
        .thresholds
        .apply_flags(&labels, &args.min_score, &args.max_distance)?;
    let ds = args.data.open_like(bundle.split.as_ref())?;
    let run = args.run.clone();
    let overlap = if args.allow_trained {
        crate::host::workbench::Overlap::Warn
    } else {
        crate::host::workbench::Overlap::Refuse
    };
    let (mut e, cases) =
        crate::host::workbench::evaluate_bundle(&bundle, &args.bundle, &ds, &run, overlap)?;
    let mut unknown_cases = Vec::new();
    if let Some(dir) = &args.unknown {
        let (open, u) = crate::host::workbench::open_set(&bundle, &args.bundle, &cases, dir, &run)?;
        e.open_set = Some(open);
        unknown_cases = u;
    }
    if let Some(path) = &args.predictions {
        let all: Vec<&crate::host::workbench::Case> = cases.iter().chain(&unknown_cases).collect();
        crate::host::report::predictions_csv(&bundle.labels, &all, path)?;
        eprintln!("predictions: {}", path.display());
    }

    let out = &mut io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(&e)?)?,
        Format::Text => write!(out, "{}", crate::host::report::text(&e))?,
    }
    if let Some(dir) = &args.report {
        let name = args
            .bundle
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        crate::host::report::html(&e, &cases, &unknown_cases, &name, dir)?;
        eprintln!("report: {}", dir.join("index.html").display());
    }
    Ok(if e.unreadable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The k most similar stored examples to an image.
pub fn query(args: QueryJob) -> anyhow::Result<ExitCode> {
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
    let backbone = crate::host::workbench::bundle_backbone(
        &bundle,
        &args.bundle,
        &args.model,
        &EngineOptions::default(),
    )?;
    let features = crate::host::extract::Extractor::new(bundle.features, backbone.as_ref())?
        .features(&image)?;
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
        let mut row = vec![crate::host::draw::Captioned {
            image: Some(image),
            caption: vec![
                "query".into(),
                crate::host::draw::short_name(&args.image.display().to_string()),
            ],
        }];
        let names: Vec<&str> = hits.iter().map(|n| store.sources[n.row].as_str()).collect();
        for (n, source) in hits.iter().zip(ItemSource::from_names(&names)) {
            row.push(crate::host::draw::Captioned {
                image: source
                    .ok()
                    .and_then(|s| s.load(DecodeLimits::default()).ok()),
                caption: vec![
                    format!("#{} {}", n.rank, bundle.labels[usize::from(n.label)]),
                    format!("d {:.3}", n.distance),
                    crate::host::draw::short_name(&store.sources[n.row]),
                ],
            });
        }
        let title = match class {
            Some(c) => format!("in {}", bundle.labels[usize::from(c)]),
            None => "all classes".into(),
        };
        crate::host::draw::captioned_sheet(&[(title, row)], sheet)?;
        eprintln!(
            "sheet: {} (the query first, then the neighbours by rank)",
            sheet.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Fits raw-pixel and deep-feature heads on the same split and compares them.
pub fn compare(args: CompareJob) -> anyhow::Result<ExitCode> {
    let ds = args.data.open()?;
    let run = args.run.clone();
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
        let backbone = crate::host::workbench::backbone_for(features, &run)?;
        let (bundle, report) = crate::host::workbench::train(&ds, backbone.as_ref(), &run, &opts)?;
        let extractor = crate::host::extract::Extractor::new(features, backbone.as_ref())?;
        let (m, _, _, _) = crate::host::workbench::feature_matrix(&test, &extractor, &run)?;
        let acc = crate::host::workbench::head_accuracy(&bundle, &m);
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

/// Prints the deep-feature vector of each image as a JSON line.
pub fn features(args: FeaturesJob) -> anyhow::Result<ExitCode> {
    let source = args.model.map_or(ModelSource::Embedded, ModelSource::File);
    let backbone =
        Backbone::load(&source, &EngineOptions::default()).context("cannot load the backbone")?;
    let name = backbone.entry().name.clone();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failures = 0usize;
    for item in crate::source::expand_paths(&args.images) {
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
