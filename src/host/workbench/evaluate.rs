//! Evaluating a bundle on a test split, and open-set evaluation against images of no class.

use std::path::Path;

use anyhow::{bail, Result};

use crate::bundle::{Bundle, Thresholds};
use crate::head::argmax;

use super::{bundle_backbone, condition, feature_matrix, RunOptions};
use crate::host::dataset::{Dataset, Item, ItemSource, Split};
use crate::host::extract::Extractor;
use crate::host::fit::{loss_and_accuracy, Matrix};
use crate::host::metrics::{evaluate, Evaluation, Scored};
use crate::host::openset::{OpenScored, OpenSet};

/// One evaluated test example (for galleries).
pub(crate) struct Case {
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
pub(crate) enum Overlap {
    /// Refuse to evaluate (the default: the figures would be inflated).
    Refuse,
    /// Warn loudly, then evaluate anyway.
    Warn,
}

/// Evaluates `bundle` on the test split of `ds`. Test images that the bundle was trained on
/// (by content, from the bundle's split record) are refused or warned about per `overlap`.
pub(crate) fn evaluate_bundle(
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
pub(crate) fn open_set(
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
        crate::host::openset::evaluate(&known, &unknown, failures.len()),
        unknown_cases,
    ))
}

/// Test accuracy of a bundle's head alone on a matrix of unconditioned features.
pub(crate) fn head_accuracy(bundle: &Bundle, m: &Matrix) -> f64 {
    let mut x = m.clone();
    condition(&mut x, &bundle.head.norm);
    loss_and_accuracy(&bundle.head, &x, 1.0).1
}
