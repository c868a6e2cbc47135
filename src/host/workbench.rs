//! The seed's workflow as functions: features for a dataset, fit a head (deep or raw) into a
//! bundle, evaluate a bundle, query its store.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use glance::backbone::{embedded_model, Backbone, BackboneIdentity, EngineOptions, ModelSource};
use glance::bundle::{Bundle, FeatureKind, Thresholds, TrainingInfo};
use glance::head::{argmax, FeatureNorm};
use glance::knn::{KnnStore, Precision};
use glance::preprocess::DecodeLimits;

use super::dataset::{stratified_order, Dataset, Item, ItemSource, Split};
use super::extract::{extract, ExtractOptions, Extractor};
use super::fit::{fit, loss_and_accuracy, FitOptions, FitReport, Matrix};
use super::metrics::{evaluate, Evaluation, Scored};

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
    /// Percentile of in-class validation scores below which a decision is "unknown".
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
            limits: DecodeLimits::default(),
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

fn percentile(v: &mut [f32], p: f64) -> Option<f32> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    let i = ((v.len() - 1) as f64 * p / 100.0).round() as usize;
    Some(v[i.min(v.len() - 1)])
}

/// What `fit` returns besides the bundle.
pub struct TrainReport {
    /// Optimiser report.
    pub fit: FitReport,
    /// Examples fitted.
    pub train_rows: usize,
    /// Examples validated.
    pub val_rows: usize,
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

/// Fits a head (and builds the store and thresholds) on the training split of `ds`.
/// `backbone` is the one loaded from `run.model` (see [`backbone_for`]).
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
    // Validation split, stratified, at least one example per class kept for fitting.
    let mut fit_rows = Vec::new();
    let mut val_rows = Vec::new();
    for order in stratified_order(&all.labels, ds.classes.len(), opts.seed ^ 0x5EED) {
        let n_val = ((order.len() as f64 * opts.val_fraction).round() as usize)
            .min(order.len().saturating_sub(1));
        val_rows.extend_from_slice(&order[..n_val]);
        fit_rows.extend_from_slice(&order[n_val..]);
    }
    fit_rows.sort_unstable();
    val_rows.sort_unstable();
    for (c, name) in ds.classes.iter().enumerate() {
        if !fit_rows.iter().any(|&r| all.labels[r] == c) {
            bail!("class `{name}` has no readable training images left to fit on");
        }
    }
    let dim = all.dim;
    let fit_raw = take_rows(&all, &fit_rows);
    let val_raw = take_rows(&all, &val_rows);
    drop(all);
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
    let (head, report) = fit(&fit_m, &val_m, ds.classes.len(), norm, &opts.fit)?;
    let fit_seconds = t.elapsed().as_secs_f64();

    // The store: fitted examples, capped per class, in a seeded order.
    let (store_src, val_query) = if store_keeps_raw {
        (&fit_raw, &val_raw)
    } else {
        (&fit_m, &val_m)
    };
    let mut store = KnnStore::new(dim, opts.store_precision);
    for order in stratified_order(&fit_m.labels, ds.classes.len(), opts.seed) {
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

    // Per-class thresholds from the validation split.
    let c = ds.classes.len();
    let mut scores: Vec<Vec<f32>> = vec![Vec::new(); c];
    let mut dists: Vec<Vec<f32>> = vec![Vec::new(); c];
    for i in 0..val_m.rows() {
        let y = val_m.labels[i];
        let p = glance::head::softmax(&head.logits_prepared(val_m.row(i)), head.temperature);
        let pred = argmax(&p);
        if pred == y {
            scores[y].push(p[y]);
        }
        if let Some(d) = store.nearest_per_class(val_query.row(i), c)[y] {
            dists[y].push(d);
        }
    }
    let thresholds = Thresholds {
        min_score: scores
            .iter_mut()
            .map(|v| percentile(v, opts.reject_percentile).unwrap_or(0.0))
            .collect(),
        max_distance: dists
            .iter_mut()
            .map(|v| percentile(v, 100.0 - opts.reject_percentile).unwrap_or(2.0))
            .collect(),
    };

    let mut hash = Sha256::new();
    for &r in &fit_rows {
        hash.update(keys[r]);
        hash.update((fit_m.labels.len() as u64).to_le_bytes());
    }
    let dataset_hash: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
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
            let spec = glance::manifest::Manifest::embedded()?
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
        training: TrainingInfo {
            dataset: ds.root.display().to_string(),
            dataset_hash,
            created_unix,
            glance_version: env!("CARGO_PKG_VERSION").into(),
            train_examples: fit_m.rows() as u64,
            validation_examples: val_m.rows() as u64,
            metrics: vec![
                ("val_accuracy".into(), report.val_accuracy),
                ("val_log_loss".into(), report.val_loss),
                ("l2".into(), opts.fit.l2),
                ("iterations".into(), report.iterations as f64),
                ("temperature".into(), report.temperature),
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
            val_rows: val_m.rows(),
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
}

/// Evaluates `bundle` on the test split of `ds`.
pub fn evaluate_bundle(
    bundle: &Bundle,
    bundle_path: &Path,
    ds: &Dataset,
    run: &RunOptions,
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
    let (m, kept, failures, _) = feature_matrix(&items, &extractor, run)?;
    for (name, reason) in &failures {
        log::warn!("unreadable test image {name}: {reason}");
    }
    let c = bundle.labels.len();
    // Rows are independent: score them on every core.
    let score_row = |i: usize| -> (Scored, Case) {
        let f = m.row(i);
        let probs = bundle.head.predict_proba(f);
        let pred = argmax(&probs);
        let per_class_distance = match &bundle.store {
            Some(store) if !store.is_empty() => store.nearest_per_class(f, c),
            _ => vec![None; c],
        };
        let knn_label = glance::knn::nearest_class(&per_class_distance).map(|(k, _)| k);
        let unknown = bundle.is_unknown(pred, probs[pred], per_class_distance[pred]);
        let mut sorted = probs.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let case = Case {
            source: items[kept[i]].source.clone(),
            truth: m.labels[i],
            predicted: pred,
            score: probs[pred],
            margin: sorted[0] - sorted.get(1).copied().unwrap_or(0.0),
        };
        let scored = Scored {
            truth: m.labels[i],
            probs,
            unknown,
            knn_label,
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

/// Test accuracy of a bundle's head alone on a matrix of unconditioned features.
pub fn head_accuracy(bundle: &Bundle, m: &Matrix) -> f64 {
    let mut x = m.clone();
    condition(&mut x, &bundle.head.norm);
    loss_and_accuracy(&bundle.head, &x, 1.0).1
}
