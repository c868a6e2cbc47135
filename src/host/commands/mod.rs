//! The bodies of `glance-host`'s commands. The binary parses its arguments into these jobs and
//! calls one function; each prints its result to stdout (reports and warnings to stderr) and
//! returns the process's exit code: 0 when everything was read, 1 when some images were
//! unreadable (the run still finished), an `Err` when it could not run at all.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;

use crate::bundle::FeatureKind;
use crate::host::dataset::{Dataset, OpenOptions};
use crate::host::workbench::{DeepNorm, RunOptions, TrainOptions};
use crate::knn::Precision;

mod data;
mod eval;
mod train;

pub use data::{extract, inspect};
pub use eval::{eval, features, query};
pub use train::{compare, fit};

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
    /// Augmented views of the training images to extract (and export) too.
    pub augment: Vec<crate::host::Augment>,
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
    /// More training data (`--add`).
    pub add: Vec<PathBuf>,
    /// Augmented views the head fits besides each image.
    pub augment: Vec<crate::host::Augment>,
    /// Put the augmented views in the store too.
    pub store_augmented: bool,
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

pub(super) fn report_failures(failures: &[(String, String)]) {
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

pub(super) fn train_options(
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
        augment: Vec::new(),
        store_augmented: false,
    })
}
