//! Fitting a head (deep features or raw pixels) into a bundle: splits, cross-validated
//! calibration, thresholds, the store.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::backbone::{embedded_model, Backbone, BackboneIdentity, EngineOptions};
use crate::bundle::{Bundle, Calibration, FeatureKind, SplitRecord, Thresholds, TrainingInfo};
use crate::head::{argmax, FeatureNorm};
use crate::knn::KnnStore;

use super::{
    condition, conformal_threshold, feature_matrix, feature_matrix_of, load_backbone, quantiles,
    standardizer, take_rows, DeepNorm, RunOptions, TrainOptions,
};
use crate::host::dataset::{stratified_order, Dataset, Item, Split};
use crate::host::extract::{Extractor, View};
use crate::host::fit::{fit, temperature_from_logits, FitOptions, FitReport, Matrix};

/// Folds of the cross-validation that calibrates small training sets.
pub(crate) const CV_FOLDS: usize = 5;

/// When every class has at least this many validation images, the validation split alone
/// calibrates: it is then large enough, and k-fold would multiply the fitting time on large
/// data (Fashion-MNIST's 60k) for no gain.
pub(crate) const HELD_OUT_ENOUGH: usize = 50;

/// The highest score threshold calibration sets. On classes a head separates cleanly, every
/// held-out confidence is 0.9999… and a percentile of them would reject a new image the head is
/// 99.9 % sure of; the score check is for images between classes, and images of no class are
/// the distance check's job.
pub(crate) const SCORE_CEILING: f32 = 0.9;

/// Fewer training images than this in a class gets a warning with the numbers: its thresholds
/// rest on a handful of values.
pub(crate) const FEW_EXAMPLES: usize = 10;

/// What `fit` returns besides the bundle.
pub(crate) struct TrainReport {
    /// Optimiser report (in cross-validation: `val_accuracy` and `val_loss` are the
    /// out-of-fold accuracy and log-loss).
    pub fit: FitReport,
    /// Examples fitted.
    pub train_rows: usize,
    /// Augmented views of them fitted besides (`fit --augment`).
    pub augmented_rows: usize,
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
pub(crate) fn backbone_for(features: FeatureKind, run: &RunOptions) -> Result<Option<Backbone>> {
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
    augmented: &Augmented,
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
        // A fold's head also fits the augmented views of its own images, never of the
        // images it scores.
        let views: Vec<usize> = (0..augmented.rows.rows())
            .filter(|&a| fold_of[augmented.origin[a]] != f)
            .collect();
        let train = concat_rows(&take_rows(m, &fitted), &take_rows(&augmented.rows, &views));
        let val = take_rows(m, &held);
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

/// Augmented views of the fitted images: their feature rows (conditioned as the fitted rows
/// are), and for each the fitted row it is a view of.
struct Augmented {
    rows: Matrix,
    origin: Vec<usize>,
    /// Each row's view.
    view: Vec<View>,
}

/// The augmented views `views` of the fitted rows' images. A view that cannot be made of an
/// image that was read once is a failure of the whole fit (the file changed under it).
fn augmented_views(
    fit_items: &[&Item],
    extractor: &Extractor<'_>,
    run: &RunOptions,
    views: &[View],
) -> Result<Augmented> {
    let mut out = Augmented {
        rows: Matrix {
            data: Vec::new(),
            dim: extractor.dim(),
            labels: Vec::new(),
        },
        origin: Vec::new(),
        view: Vec::new(),
    };
    for &view in views {
        let (m, kept, failures, _) = feature_matrix_of(fit_items, extractor, run, view)?;
        if let Some((name, reason)) = failures.first() {
            bail!("{name}: its {} view: {reason}", view.name());
        }
        out.rows = concat_rows(&out.rows, &m);
        out.origin.extend_from_slice(&kept);
        out.view.extend(std::iter::repeat_n(view, kept.len()));
    }
    Ok(out)
}

/// The rows of `a`, then those of `b`.
fn concat_rows(a: &Matrix, b: &Matrix) -> Matrix {
    let mut data = Vec::with_capacity(a.data.len() + b.data.len());
    data.extend_from_slice(&a.data);
    data.extend_from_slice(&b.data);
    Matrix {
        data,
        dim: a.dim,
        labels: a.labels.iter().chain(&b.labels).copied().collect(),
    }
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
pub(crate) fn train(
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
    // Augmented views of the fitted images only: a view of a validation image among the fitted
    // rows would leak it into the head it validates.
    let t = Instant::now();
    let fit_items: Vec<&Item> = fit_rows.iter().map(|&r| items[kept[r]]).collect();
    let Augmented {
        rows: aug_raw,
        origin,
        view,
    } = augmented_views(&fit_items, &extractor, run, &opts.augment)?;
    let extract_seconds = extract_seconds + t.elapsed().as_secs_f64();
    let aug = Augmented {
        rows: conditioned(&aug_raw),
        origin,
        view,
    };
    let fit_all = concat_rows(&fit_m, &aug.rows);
    // The store is searched with unit-length frame features; with plain L2 conditioning those
    // are the conditioned vectors, otherwise the store keeps the unconditioned ones.
    let store_keeps_raw = !matches!(norm, FeatureNorm::L2);
    let t = Instant::now();
    let folds = CV_FOLDS
        .min(counts.iter().copied().min().unwrap_or(2))
        .max(2);
    // Held-out logits and their true classes: the out-of-fold ones, or the validation split's.
    let (mut head, mut report, held_logits, held_labels) = if cross_validate {
        let (logits, iters) = cross_validated_logits(&fit_m, &aug, c, &norm, opts, folds)?;
        let final_opts = FitOptions {
            max_iters: iters.div_ceil(opts.fit.check_every.max(1)) * opts.fit.check_every.max(1),
            ..opts.fit.clone()
        };
        let empty = take_rows(&fit_m, &[]);
        let (head, report) = fit(&fit_all, &empty, c, norm.clone(), &final_opts)?;
        (head, report, logits, fit_m.labels.clone())
    } else {
        let (head, report) = fit(&fit_all, &val_m, c, norm.clone(), &opts.fit)?;
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
    let (store_src, val_query, aug_src) = if store_keeps_raw {
        (&fit_raw, &val_raw, &aug_raw)
    } else {
        (&fit_m, &val_m, &aug.rows)
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
        for &r in &chosen {
            let item = items[kept[fit_rows[r]]];
            store.push(
                store_src.row(r),
                store_src.labels[r] as u16,
                kept[fit_rows[r]] as u32,
                item.source.name(),
            )?;
        }
        // Asked for (`--store-augmented`): the chosen images' views too, under their image's id
        // so that leave-one-out below skips an image's own views as it skips the image.
        if opts.store_augmented {
            for a in (0..aug.origin.len()).filter(|&a| chosen.binary_search(&aug.origin[a]).is_ok())
            {
                let r = aug.origin[a];
                let item = items[kept[fit_rows[r]]];
                store.push(
                    aug_src.row(a),
                    aug_src.labels[a] as u16,
                    kept[fit_rows[r]] as u32,
                    format!("{}#{}", item.source.name(), aug.view[a].name()),
                )?;
            }
        }
    }
    // An image's own entries: itself, and its stored views.
    let own = 1 + if opts.store_augmented {
        opts.augment.len()
    } else {
        0
    };

    // Distances to the nearest same-class stored example: leave-one-out over the fitted images
    // (a stored image skips itself), plus the validation split's images in held-out mode.
    let mut dists: Vec<Vec<f32>> = vec![Vec::new(); c];
    for r in 0..store_src.rows() {
        let y = store_src.labels[r];
        let me = kept[fit_rows[r]] as u32;
        if let Some(n) = store
            .search(store_src.row(r), own + 1, Some(y as u16))
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
    // The drift reference: every held-out image's top-1 probability (right or wrong) and its
    // distance to the nearest stored example of any class, itself and its views left out —
    // what the board measures on each frame.
    let confidences: Vec<f32> = held_logits
        .iter()
        .map(|z| {
            crate::head::softmax(z, head.temperature)
                .into_iter()
                .fold(0.0, f32::max)
        })
        .collect();
    let nearest: Vec<f32> = if cross_validate {
        (0..store_src.rows())
            .filter_map(|r| {
                let me = kept[fit_rows[r]] as u32;
                store
                    .search(store_src.row(r), own + 1, None)
                    .into_iter()
                    .find(|n| n.id != me)
                    .map(|n| n.distance)
            })
            .collect()
    } else {
        (0..val_query.rows())
            .filter_map(|i| {
                store
                    .search(val_query.row(i), 1, None)
                    .first()
                    .map(|n| n.distance)
            })
            .collect()
    };
    let drift = crate::drift::DriftReference::new(&confidences, &nearest);

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
                    None => run
                        .backbone
                        .map_or_else(embedded_model, |b| b.bytes())
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
        drift: Some(drift),
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
                ("augmented_views".into(), aug.rows.rows() as f64),
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
            augmented_rows: aug.rows.rows(),
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
pub(crate) fn bundle_backbone(
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
