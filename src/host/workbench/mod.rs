//! The seed's workflow as functions: features for a dataset, fit a head (deep or raw) into a
//! bundle, evaluate a bundle, query its store.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::backbone::{Backbone, EngineOptions, ModelSource};
use crate::bundle::FeatureKind;
use crate::head::FeatureNorm;
use crate::knn::Precision;
use crate::preprocess::DecodeLimits;

use super::dataset::Item;
use super::extract::{extract, ExtractOptions, Extractor, View};
use super::fit::{FitOptions, Matrix};

mod evaluate;
mod train;

pub(super) use evaluate::{evaluate_bundle, head_accuracy, open_set, Case, Overlap};
pub(super) use train::{backbone_for, bundle_backbone, train};

/// Settings shared by the commands that extract.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Backbone file (else `backbone`, else the embedded default).
    pub model: Option<PathBuf>,
    /// A shipped backbone compiled into glance-host (`--backbone`).
    pub backbone: Option<crate::host::ShippedBackbone>,
    /// How frames are resized to the input, when not the backbone's own way (`--resize`).
    pub resize: Option<crate::preprocess::ResizeMode>,
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
pub(super) struct TrainOptions {
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
    /// Augmented views of each fitted image the head fits besides it.
    pub augment: Vec<View>,
    /// Store the augmented views too (else the store keeps the images as they are).
    pub store_augmented: bool,
}

/// Augmentations `fit --augment` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Augment {
    /// The image mirrored left to right: one more view.
    Flip,
    /// Four corner crops of 85% of each side: four more views.
    Crops,
}

/// The views `augment` asks for, each once, in a fixed order (cache files and rows do not
/// depend on the order given).
pub(crate) fn views_of(augment: &[Augment]) -> Vec<View> {
    let mut views = Vec::new();
    if augment.contains(&Augment::Flip) {
        views.push(View::Flip);
    }
    if augment.contains(&Augment::Crops) {
        views.extend((0..4).map(View::Crop));
    }
    views
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
pub(super) fn load_backbone(run: &RunOptions) -> Result<Backbone> {
    let backbone = if let (None, Some(shipped)) = (&run.model, run.backbone) {
        shipped.load(&run.engine.for_features())
    } else {
        let source = run
            .model
            .clone()
            .map_or(ModelSource::Embedded, ModelSource::File);
        // The workbench reads features only.
        Backbone::load(&source, &run.engine.for_features()).map_err(Into::into)
    }
    .context("cannot load the backbone")?;
    match run.resize {
        Some(resize) => Ok(backbone.with_resize(resize)?),
        None => Ok(backbone),
    }
}

/// `(example name, reason)` of unreadable examples.
pub(super) type Failures = Vec<(String, String)>;

/// Features as a matrix, the index of each kept row in the input, the failures, and the content
/// key of each kept row.
pub(super) type FeatureSet = (Matrix, Vec<usize>, Failures, Vec<[u8; 32]>);

/// Features of `items` as a matrix; unreadable ones are dropped and returned as failures.
pub(super) fn feature_matrix(
    items: &[&Item],
    extractor: &Extractor<'_>,
    run: &RunOptions,
) -> Result<FeatureSet> {
    feature_matrix_of(items, extractor, run, View::Plain)
}

/// [`feature_matrix`] of one view of each image.
pub(super) fn feature_matrix_of(
    items: &[&Item],
    extractor: &Extractor<'_>,
    run: &RunOptions,
    view: View,
) -> Result<FeatureSet> {
    let ex = extract(
        items,
        extractor,
        &ExtractOptions {
            cache_dir: run.cache_dir.as_deref(),
            threads: run.threads,
            progress: run.progress,
            limits: run.limits,
            view,
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
pub(super) fn conformal_threshold(values: &[f32], p: f64, upper: bool) -> Option<f32> {
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
