//! The seed's workflow as functions: features for a dataset, fit a head (deep or raw) into a
//! bundle, evaluate a bundle, query its store.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::backbone::{embedded_model, Backbone, BackboneIdentity, EngineOptions, ModelSource};
use crate::bundle::{Bundle, Calibration, FeatureKind, SplitRecord, Thresholds, TrainingInfo};
use crate::head::{argmax, FeatureNorm};
use crate::knn::{KnnStore, Precision};
use crate::preprocess::DecodeLimits;

use super::dataset::{stratified_order, Dataset, Item, ItemSource, Split};
use super::extract::{extract, ExtractOptions, Extractor};
use super::fit::{fit, loss_and_accuracy, temperature_from_logits, FitOptions, FitReport, Matrix};
use super::metrics::{evaluate, Evaluation, Scored};
use super::openset::{OpenScored, OpenSet};

/// Settings shared by the commands that extract.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Backbone file (else the embedded default).
    pub model: Option<PathBuf>,
    /// The engine that runs it.
    pub engine: EngineOptions,
    /// Feature cache folder (None = no cache).
    pub cache_dir: Option<PathBuf>,
    /// Worker threads.
    pub threads: usize,
    /// Progress bar.
    pub progress: bool,
    /// Decoder limits (`--allow-truncated`).
    pub limits: DecodeLimits,
}

/// Settings for `fit`.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Deep features or raw pixels.
    pub features: FeatureKind,
    /// Fraction of the training split held out for validation.
    pub val_fraction: f64,
    /// Seed for the validation split.
    pub seed: u64,
    /// Head optimiser settings.
    pub fit: FitOptions,
    /// Store precision.
    pub store_precision: Precision,
    /// Most stored examples per class (0 = all).
    pub store_per_class: usize,
    /// Share (in %) of a class's own held-out images each threshold may reject: the score
    /// threshold at this lower percentile of their confidences, the distance threshold at this
    /// upper percentile of their nearest-example distances.
    pub reject_percentile: f64,
    /// Put the ONNX bytes in the bundle.
    pub embed_backbone: bool,
    /// How deep features are conditioned before the head (raw pixels are always standardised).
    pub deep_norm: DeepNorm,
}

/// Conditioning of deep features before the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeepNorm {
    /// Unit length.
    L2,
    /// Signed square root, then unit length (power normalisation).
    #[default]
    SqrtL2,
    /// Per-dimension mean 0, std 1 on the training split.
    Standardize,
}

/// Loads the backbone the user asked for, on the engine they asked for.
pub fn load_backbone(run: &RunOptions) -> Result<Backbone> {
    let source = run
        .model
        .clone()
        .map_or(ModelSource::Embedded, ModelSource::File);
    // The workbench reads features only.
    Backbone::load(&source, &run.engine.for_features()).context("cannot load the backbone")
}

/// `(example name, reason)` of unreadable examples.
pub type Failures = Vec<(String, String)>;

/// Features as a matrix, the index of each kept row in the input, the failures, and the content
/// key of each kept row.
pub type FeatureSet = (Matrix, Vec<usize>, Failures, Vec<[u8; 32]>);

/// Features of `items` as a matrix; unreadable ones are dropped and returned as failures.
pub fn feature_matrix(
    items: &[&Item],
    extractor: &Extractor<'_>,
    run: &RunOptions,
) -> Result<FeatureSet> {
    let ex = extract(
        items,
        extractor,
        &ExtractOptions {
            cache_dir: run.cache_dir.as_deref(),
            threads: run.threads,
            progress: run.progress,
            limits: run.limits,
        },
    )?;
    if ex.cached > 0 {
        log::info!(
            "{} of {} feature vectors came from the cache",
            ex.cached,
            items.len()
        );
    }
    let dim = extractor.dim();
    let mut data = Vec::with_capacity(items.len() * dim);
    let mut labels = Vec::with_capacity(items.len());
    let mut kept = Vec::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    for (i, f) in ex.features.into_iter().enumerate() {
        if let Some(f) = f {
            data.extend_from_slice(&f);
            labels.push(items[i].label);
            kept.push(i);
            keys.push(ex.keys[i]);
        }
    }
    Ok((Matrix { data, dim, labels }, kept, ex.failures, keys))
}

fn condition(m: &mut Matrix, norm: &FeatureNorm) {
    for row in m.data.chunks_exact_mut(m.dim.max(1)) {
        norm.apply(row);
    }
}

fn standardizer(m: &Matrix) -> FeatureNorm {
    let n = m.rows().max(1) as f64;
    let mut mean = vec![0f64; m.dim];
    let mut sq = vec![0f64; m.dim];
    for i in 0..m.rows() {
        for (j, &v) in m.row(i).iter().enumerate() {
            mean[j] += f64::from(v);
            sq[j] += f64::from(v) * f64::from(v);
        }
    }
    let mean: Vec<f32> = mean.iter().map(|s| (s / n) as f32).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(s, &mu)| ((s / n - f64::from(mu) * f64::from(mu)).max(0.0).sqrt() as f32).max(1e-2))
        .collect();
    FeatureNorm::Standardize { mean, std }
}

fn take_rows(m: &Matrix, rows: &[usize]) -> Matrix {
    let mut data = Vec::with_capacity(rows.len() * m.dim);
    for &r in rows {
        data.extend_from_slice(m.row(r));
    }
    Matrix {
        data,
        dim: m.dim,
        labels: rows.iter().map(|&r| m.labels[r]).collect(),
    }
}

/// The finite values of `values`, sorted: the sample the percentile helpers read.
fn sorted_finite(values: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f32::total_cmp);
    v
}

/// The `p`-th percentile (0..=100) of a sorted sample, interpolated linearly between order
/// statistics; `None` when it is empty.
fn percentile_of_sorted(v: &[f32], p: f64) -> Option<f32> {
    if v.is_empty() {
        return None;
    }
    let pos = (v.len() - 1) as f64 * p.clamp(0.0, 100.0) / 100.0;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let w = (pos - lo as f64) as f32;
    Some(v[lo] + (v[hi] - v[lo]) * w)
}

/// The threshold below which at most `p` % of new values should fall, from the calibration
/// values `values`: the ⌊(n+1)·p/100⌋-th smallest of the n values (at least the smallest), the
/// finite-sample quantile of split-conformal prediction. `upper` turns it round: the
/// ⌈(n+1)(1−p/100)⌉-th smallest (at most the largest), above which at most `p` % should fall.
/// With few values the rank is clamped to the sample, so a class of 10 images gets its
/// smallest (or largest) value: all the data can say. `None` when there are no values.
pub fn conformal_threshold(values: &[f32], p: f64, upper: bool) -> Option<f32> {
    let v = sorted_finite(values);
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let q = p.clamp(0.0, 100.0) / 100.0;
    let rank = if upper {
        ((n + 1.0) * (1.0 - q)).ceil()
    } else {
        ((n + 1.0) * q).floor()
    };
    let k = (rank as usize).clamp(1, v.len());
    Some(v[k - 1])
}

/// The quantiles 0, 5, …, 100 % of `v` (empty for no values): the calibration distributions a
/// bundle keeps.
fn quantiles(v: &[f32]) -> Vec<f32> {
    let sorted = sorted_finite(v);
    (0..=20)
        .filter_map(|i| percentile_of_sorted(&sorted, f64::from(i) * 5.0))
        .collect()
}

/// Folds of the cross-validation that calibrates small training sets.
pub const CV_FOLDS: usize = 5;

/// When every class has at least this many validation images, the validation split alone
/// calibrates: it is then large enough, and k-fold would multiply the fitting time on large
/// data (Fashion-MNIST's 60k) for no gain.
pub const HELD_OUT_ENOUGH: usize = 50;

/// The highest score threshold calibration sets. On classes a head separates cleanly, every
/// held-out confidence is 0.9999… and a percentile of them would reject a new image the head is
/// 99.9 % sure of; the score check is for images between classes, and images of no class are
/// the distance check's job.
pub const SCORE_CEILING: f32 = 0.9;

/// Fewer training images than this in a class gets a warning with the numbers: its thresholds
/// rest on a handful of values.
pub const FEW_EXAMPLES: usize = 10;

/// What `fit` returns besides the bundle.
pub struct TrainReport {
    /// Optimiser report (in cross-validation: `val_accuracy` and `val_loss` are the
    /// out-of-fold accuracy and log-loss).
    pub fit: FitReport,
    /// Examples fitted.
    pub train_rows: usize,
    /// Examples validated (held-out mode), or cross-validated (every training example).
    pub val_rows: usize,
    /// Temperature fitted on the held-out predictions.
    pub temperature: f64,
    /// How the thresholds were calibrated.
    pub calibration: Calibration,
    /// Warnings for people (few examples, classes with nothing to calibrate on).
    pub warnings: Vec<String>,
    /// Unreadable training examples.
    pub failures: Vec<(String, String)>,
    /// Seconds spent extracting.
    pub extract_seconds: f64,
    /// Seconds spent fitting.
    pub fit_seconds: f64,
}

/// Loads the backbone that `features` need (none for raw pixels).
pub fn backbone_for(features: FeatureKind, run: &RunOptions) -> Result<Option<Backbone>> {
    match features {
        FeatureKind::Deep => load_backbone(run).map(Some),
        FeatureKind::Raw { .. } => Ok(None),
    }
}

/// Held-out logits of every row of `m` by `k`-fold cross-validation (stratified, seeded): each
/// row is scored by a head fitted on the other folds, with early stopping on its own fold.
/// Returns the logits and the median number of iterations the fold heads ran.
fn cross_validated_logits(
    m: &Matrix,
    classes: usize,
    norm: &FeatureNorm,
    opts: &TrainOptions,
    k: usize,
) -> Result<(Vec<Vec<f32>>, u64)> {
    let mut fold_of = vec![0usize; m.rows()];
    for order in stratified_order(&m.labels, classes, opts.seed ^ 0xF01D) {
        for (j, &r) in order.iter().enumerate() {
            fold_of[r] = j % k;
        }
    }
    let mut logits = vec![Vec::new(); m.rows()];
    let mut iterations = Vec::with_capacity(k);
    for f in 0..k {
        let (held, fitted): (Vec<usize>, Vec<usize>) =
            (0..m.rows()).partition(|&r| fold_of[r] == f);
        if held.is_empty() {
            continue;
        }
        let (train, val) = (take_rows(m, &fitted), take_rows(m, &held));
        let (head, report) = fit(&train, &val, classes, norm.clone(), &opts.fit)?;
        iterations.push(report.iterations);
        for (i, &r) in held.iter().enumerate() {
            logits[r] = head.logits_prepared(val.row(i));
        }
    }
    iterations.sort_unstable();
    let median = iterations
        .get(iterations.len() / 2)
        .copied()
        .unwrap_or(opts.fit.max_iters);
    Ok((logits, median.max(1)))
}

/// Fits a head (and builds the store and thresholds) on the training split of `ds`.
/// `backbone` is the one loaded from `run.model` (see [`backbone_for`]).
///
/// Calibration uses all the training data. With a validation split of at least
/// [`HELD_OUT_ENOUGH`] images in every class, the head is fitted on the rest with early stopping
/// on it, and the temperature and thresholds come from its predictions. Otherwise (the few
/// dozen photos per class transfer learning is for) every training image is scored by
/// [`CV_FOLDS`]-fold cross-validation: the temperature is fitted on those out-of-fold
/// predictions only, the score thresholds come from the out-of-fold confidences of the
/// correctly classified images, and the final head is fitted on every image for the fold heads'
/// median number of iterations. Distance thresholds come from each image's distance to the
/// nearest *other* stored example of its class (leave-one-out), so an image in the store does
/// not count its own zero distance. Both are [`conformal_threshold`]s at the reject percentile;
/// score thresholds are at most [`SCORE_CEILING`].
pub fn train(
    ds: &Dataset,
    backbone: Option<&Backbone>,
    run: &RunOptions,
    opts: &TrainOptions,
) -> Result<(Bundle, TrainReport)> {
    let extractor = Extractor::new(opts.features, backbone)?;
    let items = ds.split(Split::Train);
    let t = Instant::now();
    let (all, kept, failures, keys) = feature_matrix(&items, &extractor, run)?;
    let extract_seconds = t.elapsed().as_secs_f64();
    if all.rows() == 0 {
        bail!("{}: no readable training images", ds.root.display());
    }
    let c = ds.classes.len();
    let mut counts = vec![0usize; c];
    for &y in &all.labels {
        counts[y] += 1;
    }
    for (name, &n) in ds.classes.iter().zip(&counts) {
        if n < 2 {
            bail!(
                "class `{name}` has {n} readable training image(s); it needs at least 2 (one to \
                 fit, one to calibrate), and about {FEW_EXAMPLES} or more for thresholds that hold"
            );
        }
    }
    let mut warnings = Vec::new();
    let few: Vec<String> = ds
        .classes
        .iter()
        .zip(&counts)
        .filter(|(_, &n)| n < FEW_EXAMPLES)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if !few.is_empty() {
        warnings.push(format!(
            "few training images in {} class(es) ({}): their unknown thresholds rest on that \
             many values and may reject good images or accept strangers; about {FEW_EXAMPLES} or \
             more per class hold up (README: how many photos do I need)",
            few.len(),
            few.join(", ")
        ));
    }

    // The validation split, stratified, at least one example per class kept for fitting.
    let mut fit_rows = Vec::new();
    let mut val_rows = Vec::new();
    let mut least_val = usize::MAX;
    for order in stratified_order(&all.labels, c, opts.seed ^ 0x5EED) {
        let n_val = ((order.len() as f64 * opts.val_fraction).round() as usize)
            .min(order.len().saturating_sub(1));
        least_val = least_val.min(n_val);
        val_rows.extend_from_slice(&order[..n_val]);
        fit_rows.extend_from_slice(&order[n_val..]);
    }
    let cross_validate = least_val < HELD_OUT_ENOUGH;
    if cross_validate {
        // Every image is fitted (by the final head) and scored out of fold.
        fit_rows = (0..all.rows()).collect();
        val_rows.clear();
    }
    fit_rows.sort_unstable();
    val_rows.sort_unstable();
    let dim = all.dim;
    let fit_raw = take_rows(&all, &fit_rows);
    let val_raw = take_rows(&all, &val_rows);
    let norm = match (opts.features, opts.deep_norm) {
        (FeatureKind::Deep, DeepNorm::L2) => FeatureNorm::L2,
        (FeatureKind::Deep, DeepNorm::SqrtL2) => FeatureNorm::SqrtL2,
        _ => standardizer(&fit_raw),
    };
    let conditioned = |m: &Matrix| {
        let mut c = m.clone();
        condition(&mut c, &norm);
        c
    };
    let fit_m = conditioned(&fit_raw);
    let val_m = conditioned(&val_raw);
    // The store is searched with unit-length frame features; with plain L2 conditioning those
    // are the conditioned vectors, otherwise the store keeps the unconditioned ones.
    let store_keeps_raw = !matches!(norm, FeatureNorm::L2);
    let t = Instant::now();
    let folds = CV_FOLDS
        .min(counts.iter().copied().min().unwrap_or(2))
        .max(2);
    // Held-out logits and their true classes: the out-of-fold ones, or the validation split's.
    let (mut head, mut report, held_logits, held_labels) = if cross_validate {
        let (logits, iters) = cross_validated_logits(&fit_m, c, &norm, opts, folds)?;
        let final_opts = FitOptions {
            max_iters: iters.div_ceil(opts.fit.check_every.max(1)) * opts.fit.check_every.max(1),
            ..opts.fit.clone()
        };
        let empty = take_rows(&fit_m, &[]);
        let (head, report) = fit(&fit_m, &empty, c, norm.clone(), &final_opts)?;
        (head, report, logits, fit_m.labels.clone())
    } else {
        let (head, report) = fit(&fit_m, &val_m, c, norm.clone(), &opts.fit)?;
        let logits = (0..val_m.rows())
            .map(|i| head.logits_prepared(val_m.row(i)))
            .collect();
        (head, report, logits, val_m.labels.clone())
    };
    let temperature = temperature_from_logits(&held_logits, &held_labels);
    head.temperature = temperature as f32;
    let fit_seconds = t.elapsed().as_secs_f64();

    // Held-out calibrated probabilities: accuracy, log-loss and the in-class scores.
    let mut scores: Vec<Vec<f32>> = vec![Vec::new(); c];
    let (mut correct, mut loss) = (0usize, 0f64);
    for (z, &y) in held_logits.iter().zip(&held_labels) {
        let p = crate::head::softmax(z, head.temperature);
        let pred = argmax(&p);
        loss -= f64::from(p.get(y).copied().unwrap_or(0.0).max(1e-12)).ln();
        if pred == y {
            correct += 1;
            scores[y].push(p[y]);
        }
    }
    let held = held_labels.len().max(1) as f64;
    report.val_accuracy = correct as f64 / held;
    report.val_loss = loss / held;

    // The store: fitted examples, capped per class, in a seeded order.
    let (store_src, val_query) = if store_keeps_raw {
        (&fit_raw, &val_raw)
    } else {
        (&fit_m, &val_m)
    };
    let mut store = KnnStore::new(dim, opts.store_precision);
    for order in stratified_order(&fit_m.labels, c, opts.seed) {
        let take = if opts.store_per_class == 0 {
            order.len()
        } else {
            opts.store_per_class.min(order.len())
        };
        let mut chosen = order[..take].to_vec();
        chosen.sort_unstable();
        for r in chosen {
            let item = items[kept[fit_rows[r]]];
            store.push(
                store_src.row(r),
                store_src.labels[r] as u16,
                kept[fit_rows[r]] as u32,
                item.source.name(),
            )?;
        }
    }

    // Distances to the nearest same-class stored example: leave-one-out over the fitted images
    // (a stored image skips itself), plus the validation split's images in held-out mode.
    let mut dists: Vec<Vec<f32>> = vec![Vec::new(); c];
    for r in 0..store_src.rows() {
        let y = store_src.labels[r];
        let me = kept[fit_rows[r]] as u32;
        if let Some(n) = store
            .search(store_src.row(r), 2, Some(y as u16))
            .into_iter()
            .find(|n| n.id != me)
        {
            dists[y].push(n.distance);
        }
    }
    for i in 0..val_query.rows() {
        let y = val_query.labels[i];
        if let Some(d) = store.nearest_per_class(val_query.row(i), c)[y] {
            dists[y].push(d);
        }
    }
    let p = opts.reject_percentile;
    let mut min_score = Vec::with_capacity(c);
    let mut max_distance = Vec::with_capacity(c);
    for (k, name) in ds.classes.iter().enumerate() {
        let score = conformal_threshold(&scores[k], p, false);
        if score.is_none() {
            warnings.push(format!(
                "class `{name}`: no held-out image of it was classified right, so its score \
                 threshold is 0 (any score accepted)"
            ));
        }
        min_score.push(score.map_or(0.0, |v| v.min(SCORE_CEILING)));
        max_distance.push(conformal_threshold(&dists[k], p, true).unwrap_or(2.0));
    }
    let thresholds = Thresholds {
        min_score,
        max_distance,
    };
    let calibration = Calibration {
        method: if cross_validate {
            "cross-validation".into()
        } else {
            "held-out".into()
        },
        folds: if cross_validate { folds as u32 } else { 0 },
        reject_percentile: p as f32,
        examples: counts.iter().map(|&n| n as u32).collect(),
        score_quantiles: scores.iter().map(|v| quantiles(v)).collect(),
        distance_quantiles: dists.iter().map(|v| quantiles(v)).collect(),
    };

    let mut hash = Sha256::new();
    for &r in &fit_rows {
        hash.update(keys[r]);
        hash.update((fit_m.labels.len() as u64).to_le_bytes());
    }
    let dataset_hash: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let mut train_hashes: Vec<u64> = keys.iter().map(SplitRecord::short_hash).collect();
    train_hashes.sort_unstable();
    train_hashes.dedup();
    let split = SplitRecord {
        test_fraction: ds.opened_with.test_fraction,
        seed: ds.opened_with.seed,
        per_class: ds.opened_with.per_class as u64,
        generated: ds.split_generated,
        train_hashes,
    };
    let (identity, onnx, preprocess) = match backbone {
        Some(b) => {
            let bytes = if opts.embed_backbone {
                Some(match &run.model {
                    Some(p) => {
                        std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?
                    }
                    None => embedded_model()
                        .context("no --model and no embedded backbone in this build")?
                        .to_vec(),
                })
            } else {
                None
            };
            (b.identity(), bytes, b.preprocess_spec().clone())
        }
        None => {
            let spec = crate::manifest::Manifest::embedded()?
                .default_entry()?
                .preprocess
                .clone();
            (
                BackboneIdentity {
                    name: "raw-pixels".into(),
                    sha256: String::new(),
                    feature_dim: dim,
                },
                None,
                spec,
            )
        }
    };
    let created_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let bundle = Bundle {
        backbone: identity,
        onnx,
        preprocess,
        features: extractor.kind(),
        labels: ds.classes.clone(),
        head,
        thresholds,
        store: Some(store),
        split: Some(split),
        calibration: Some(calibration.clone()),
        training: TrainingInfo {
            dataset: ds.root.display().to_string(),
            dataset_hash,
            created_unix,
            glance_version: env!("CARGO_PKG_VERSION").into(),
            train_examples: fit_m.rows() as u64,
            validation_examples: held_labels.len() as u64,
            metrics: vec![
                ("val_accuracy".into(), report.val_accuracy),
                ("val_log_loss".into(), report.val_loss),
                ("l2".into(), opts.fit.l2),
                ("iterations".into(), report.iterations as f64),
                ("temperature".into(), temperature),
                ("fit_seconds".into(), fit_seconds),
            ],
        },
    };
    bundle.validate()?;
    Ok((
        bundle,
        TrainReport {
            fit: report,
            train_rows: fit_m.rows(),
            val_rows: held_labels.len(),
            temperature,
            calibration,
            warnings,
            failures,
            extract_seconds,
            fit_seconds,
        },
    ))
}

/// The backbone a bundle needs (checked against the bundle), or none for raw pixels.
pub fn bundle_backbone(
    bundle: &Bundle,
    bundle_path: &Path,
    model: &Option<PathBuf>,
    engine: &EngineOptions,
) -> Result<Option<Backbone>> {
    match bundle.features {
        FeatureKind::Deep => Ok(Some(bundle.load_backbone(
            bundle_path,
            model.as_deref(),
            engine,
        )?)),
        FeatureKind::Raw { .. } => Ok(None),
    }
}

/// One evaluated test example (for galleries).
pub struct Case {
    /// The example (its pixels stay reachable for galleries without re-reading an IDX file).
    pub source: ItemSource,
    /// True class.
    pub truth: usize,
    /// Head's class.
    pub predicted: usize,
    /// Its probability.
    pub score: f32,
    /// Margin between the best and second-best probabilities.
    pub margin: f32,
    /// The nearest stored example's class and distance.
    pub knn: Option<(usize, f32)>,
    /// Distance to the nearest stored example of the predicted class.
    pub own_distance: Option<f32>,
    /// Why the thresholds rejected the prediction (then it counts as `unknown`).
    pub rejection: Option<crate::bundle::RejectReason>,
}

/// What to do with test images the bundle was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Refuse to evaluate (the default: the figures would be inflated).
    Refuse,
    /// Warn loudly, then evaluate anyway.
    Warn,
}

/// Evaluates `bundle` on the test split of `ds`. Test images that the bundle was trained on
/// (by content, from the bundle's split record) are refused or warned about per `overlap`.
pub fn evaluate_bundle(
    bundle: &Bundle,
    bundle_path: &Path,
    ds: &Dataset,
    run: &RunOptions,
    overlap: Overlap,
) -> Result<(Evaluation, Vec<Case>)> {
    if bundle.labels != ds.classes {
        bail!(
            "{}: the bundle's classes {:?} differ from the data's {:?}",
            ds.root.display(),
            bundle.labels,
            ds.classes
        );
    }
    let backbone = bundle_backbone(bundle, bundle_path, &run.model, &run.engine)?;
    let extractor = Extractor::new(bundle.features, backbone.as_ref())?;
    let mut items = ds.split(Split::Test);
    if items.is_empty() {
        log::warn!(
            "{}: no test split; evaluating on every image",
            ds.root.display()
        );
        items = ds.items.iter().collect();
    }
    let (m, kept, failures, keys) = feature_matrix(&items, &extractor, run)?;
    for (name, reason) in &failures {
        log::warn!("unreadable test image {name}: {reason}");
    }
    match &bundle.split {
        Some(split) => {
            let trained: Vec<String> = keys
                .iter()
                .zip(&kept)
                .filter(|(k, _)| split.trained_on(k))
                .map(|(_, &i)| items[i].source.name())
                .collect();
            if !trained.is_empty() {
                let msg =
                    format!(
                    "{} of the {} test images were trained on by this bundle (for example {}); \
                     its figures on them would be inflated. The bundle was split with --split {} \
                     --seed {}{}; evaluate with the same split (the default when you give no \
                     --split, --seed or --per-class), or pass --allow-trained to evaluate anyway",
                    trained.len(),
                    keys.len(),
                    trained.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                    split.test_fraction,
                    split.seed,
                    if split.per_class > 0 {
                        format!(" --per-class {}", split.per_class)
                    } else {
                        String::new()
                    }
                );
                match overlap {
                    Overlap::Refuse => bail!("{}: {msg}", ds.root.display()),
                    Overlap::Warn => {
                        eprintln!("glance-host: WARNING: {msg}");
                    }
                }
            }
        }
        None => log::warn!(
            "{}: this bundle (format version 1) does not record its training split; cannot check \
             that the test images were not trained on",
            bundle_path.display()
        ),
    }
    // Rows are independent: score them on every core.
    let score_row = |i: usize| -> (Scored, Case) {
        let (probs, per_class_distance, case) =
            score_features(bundle, m.row(i), items[kept[i]].source.clone(), m.labels[i]);
        let scored = Scored {
            truth: m.labels[i],
            probs,
            unknown: case.rejection.is_some(),
            knn_label: case.knn.map(|(k, _)| k),
            per_class_distance,
        };
        (scored, case)
    };
    let n = m.rows();
    let chunk = n.div_ceil(run.threads.max(1)).max(1);
    let parts: Vec<Vec<(Scored, Case)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| {
                let score_row = &score_row;
                s.spawn(move || (start..(start + chunk).min(n)).map(score_row).collect())
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let (scored, cases): (Vec<Scored>, Vec<Case>) = parts.into_iter().flatten().unzip();
    if scored.len() != n {
        bail!("evaluation worker failed");
    }
    Ok((evaluate(&bundle.labels, &scored, failures.len()), cases))
}

/// One image's features through `bundle`: the head's probabilities, the distance to the nearest
/// stored example of every class, and the image's [`Case`] (`truth` is `usize::MAX` for an
/// image of no class).
fn score_features(
    bundle: &Bundle,
    features: &[f32],
    source: ItemSource,
    truth: usize,
) -> (Vec<f32>, Vec<Option<f32>>, Case) {
    let c = bundle.labels.len();
    let probs = bundle.head.predict_proba(features);
    let pred = argmax(&probs);
    let per_class_distance = match &bundle.store {
        Some(store) if !store.is_empty() => store.nearest_per_class(features, c),
        _ => vec![None; c],
    };
    let mut sorted = probs.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let own_distance = per_class_distance.get(pred).copied().flatten();
    let case = Case {
        source,
        truth,
        predicted: pred,
        score: probs[pred],
        margin: sorted[0] - sorted.get(1).copied().unwrap_or(0.0),
        knn: crate::knn::nearest_class(&per_class_distance),
        own_distance,
        rejection: bundle.thresholds.verdict(pred, probs[pred], own_distance),
    };
    (probs, per_class_distance, case)
}

/// An evaluated image as the open-set figures see it, at the bundle's thresholds.
fn open_scored(case: &Case, thresholds: &Thresholds) -> OpenScored {
    OpenScored {
        score: case.score,
        distance: case.own_distance,
        min_score: thresholds
            .min_score
            .get(case.predicted)
            .copied()
            .unwrap_or(0.0),
        max_distance: thresholds
            .max_distance
            .get(case.predicted)
            .copied()
            .unwrap_or(f32::INFINITY),
        rejected: case.rejection.is_some(),
        correct: case.predicted == case.truth,
    }
}

/// The open-set figures: the known test images `cases` against the images in `dir` and its
/// subfolders, which belong to no class of `bundle`.
pub fn open_set(
    bundle: &Bundle,
    bundle_path: &Path,
    cases: &[Case],
    dir: &Path,
    run: &RunOptions,
) -> Result<(OpenSet, Vec<Case>)> {
    let mut paths = Vec::new();
    for entry in crate::source::expand_paths(&[dir.to_path_buf()]) {
        match entry {
            Ok(p) => paths.push(p),
            Err((p, e)) => bail!("{}: {e}", p.display()),
        }
    }
    let items: Vec<Item> = paths
        .into_iter()
        .map(|p| Item {
            source: ItemSource::File(p),
            label: 0,
            split: Split::Test,
        })
        .collect();
    let refs: Vec<&Item> = items.iter().collect();
    let backbone = bundle_backbone(bundle, bundle_path, &run.model, &run.engine)?;
    let extractor = Extractor::new(bundle.features, backbone.as_ref())?;
    let (m, kept, failures, _) = feature_matrix(&refs, &extractor, run)?;
    for (name, reason) in &failures {
        log::warn!("unreadable unknown image {name}: {reason}");
    }
    let unknown_cases: Vec<Case> = (0..m.rows())
        .map(|i| score_features(bundle, m.row(i), items[kept[i]].source.clone(), usize::MAX).2)
        .collect();
    let th = &bundle.thresholds;
    let known: Vec<OpenScored> = cases.iter().map(|k| open_scored(k, th)).collect();
    let unknown: Vec<OpenScored> = unknown_cases.iter().map(|k| open_scored(k, th)).collect();
    if unknown.is_empty() {
        bail!("{}: no readable images of unknown objects", dir.display());
    }
    Ok((
        super::openset::evaluate(&known, &unknown, failures.len()),
        unknown_cases,
    ))
}

/// Test accuracy of a bundle's head alone on a matrix of unconditioned features.
pub fn head_accuracy(bundle: &Bundle, m: &Matrix) -> f64 {
    let mut x = m.clone();
    condition(&mut x, &bundle.head.norm);
    loss_and_accuracy(&bundle.head, &x, 1.0).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformal_thresholds_take_the_finite_sample_rank() {
        let v: Vec<f32> = (1..=30).map(|i| i as f32).collect();
        // n = 30, p = 5: upper rank ⌈31 × 0.95⌉ = 30, lower rank ⌊31 × 0.05⌋ = 1.
        assert_eq!(conformal_threshold(&v, 5.0, true), Some(30.0));
        assert_eq!(conformal_threshold(&v, 5.0, false), Some(1.0));
        // p = 20: ⌈31 × 0.8⌉ = 25, ⌊31 × 0.2⌋ = 6.
        assert_eq!(conformal_threshold(&v, 20.0, true), Some(25.0));
        assert_eq!(conformal_threshold(&v, 20.0, false), Some(6.0));
        // Few values: the rank is clamped to the sample; NaN is ignored; none: None.
        assert_eq!(
            conformal_threshold(&[0.3, f32::NAN, 0.1], 5.0, true),
            Some(0.3)
        );
        assert_eq!(conformal_threshold(&[], 5.0, true), None);
    }

    fn percentile(values: &[f32], p: f64) -> Option<f32> {
        percentile_of_sorted(&sorted_finite(values), p)
    }

    #[test]
    fn percentiles_interpolate() {
        assert_eq!(percentile(&[0.0, 1.0], 25.0), Some(0.25));
        assert_eq!(percentile(&[2.0], 90.0), Some(2.0));
        assert_eq!(percentile(&[f32::NAN], 50.0), None);
    }
}
