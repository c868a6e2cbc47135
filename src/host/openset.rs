//! Open-set evaluation: images of no class (`eval --unknown DIR`) against the test images of the
//! bundle's classes. How well the bundle's rejection separates them (AUROC), what its thresholds
//! do (known images accepted, unknowns rejected), how honest its confidences are (expected
//! calibration error), and a sweep a user can pick thresholds from.

use serde::Serialize;

/// One scored image for the open-set figures.
#[derive(Debug, Clone, Copy)]
pub(super) struct OpenScored {
    /// The head's best-class probability.
    pub score: f32,
    /// Distance to the best class's nearest stored example (`None`: no store).
    pub distance: Option<f32>,
    /// The best class's score threshold.
    pub min_score: f32,
    /// The best class's distance threshold.
    pub max_distance: f32,
    /// Rejected at the bundle's thresholds.
    pub rejected: bool,
    /// For known images: the head's class is the true one.
    pub correct: bool,
}

impl OpenScored {
    /// How far inside the bundle's thresholds the image is: `min(p / t_s, t_d / d)`. The bundle
    /// rejects exactly when this is below 1, so ranking by it is the bundle's own rule with
    /// both thresholds scaled together.
    pub(super) fn slack(&self) -> f64 {
        let by_score = if self.min_score > 0.0 {
            f64::from(self.score) / f64::from(self.min_score)
        } else {
            f64::INFINITY
        };
        let by_distance = match self.distance {
            Some(d) if d > 0.0 && self.max_distance.is_finite() => {
                f64::from(self.max_distance) / f64::from(d)
            }
            _ => f64::INFINITY,
        };
        by_score.min(by_distance)
    }
}

/// One row of the threshold sweep.
#[derive(Debug, Clone, Serialize)]
pub(super) struct SweepRow {
    /// The threshold applied to every class (the other kind stays at the bundle's values).
    pub threshold: f64,
    /// Known test images accepted and classified right.
    pub known_accepted_correct: f64,
    /// Known test images accepted.
    pub known_accepted: f64,
    /// Unknown images rejected.
    pub unknown_rejected: f64,
}

/// What `eval --unknown` adds.
#[derive(Debug, Clone, Serialize)]
pub(super) struct OpenSet {
    /// Images of no class evaluated.
    pub unknown_examples: usize,
    /// Unknown images that could not be read.
    pub unknown_unreadable: usize,
    /// Area under the ROC curve of known vs unknown, ranked by the bundle's own rule (both
    /// thresholds scaled together): 1 = perfect separation, 0.5 = chance (null with no known
    /// test image).
    pub auroc: Option<f64>,
    /// The same ranked by the head's confidence alone.
    pub auroc_score: Option<f64>,
    /// The same ranked by the distance to the nearest example alone (null: no store).
    pub auroc_distance: Option<f64>,
    /// At the bundle's thresholds: unknown images rejected.
    pub unknown_rejected: f64,
    /// At the bundle's thresholds: known images rejected (falsely).
    pub known_rejected: f64,
    /// At the bundle's thresholds: known images accepted and classified right.
    pub known_accepted_correct: f64,
    /// Sweep of one distance threshold for every class (score thresholds as in the bundle).
    pub distance_sweep: Vec<SweepRow>,
    /// Sweep of one score threshold for every class (distance thresholds as in the bundle).
    pub score_sweep: Vec<SweepRow>,
}

/// Mann–Whitney AUROC: the chance that a known image ranks above an unknown one (`higher` is
/// the known-ness), ties counting half. `None` when either side is empty.
pub(super) fn auroc(known: &[f64], unknown: &[f64]) -> Option<f64> {
    if known.is_empty() || unknown.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = known
        .iter()
        .map(|&v| (v, true))
        .chain(unknown.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks over ties.
    let mut rank_sum_known = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0.total_cmp(&all[i].0).is_eq() {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_known += all[i..=j].iter().filter(|x| x.1).count() as f64 * avg;
        i = j + 1;
    }
    let (n1, n0) = (known.len() as f64, unknown.len() as f64);
    Some((rank_sum_known - n1 * (n1 + 1.0) / 2.0) / (n1 * n0))
}

/// Expected calibration error of the head's top-1 confidence over `bins` equal-width bins: the
/// mean gap between confidence and accuracy, weighted by the bin's share of images.
pub(super) fn expected_calibration_error(confidence_correct: &[(f32, bool)], bins: usize) -> f64 {
    let n = confidence_correct.len();
    if n == 0 || bins == 0 {
        return 0.0;
    }
    let mut sum_conf = vec![0f64; bins];
    let mut sum_acc = vec![0f64; bins];
    let mut count = vec![0usize; bins];
    for &(c, ok) in confidence_correct {
        let b = ((f64::from(c) * bins as f64) as usize).min(bins - 1);
        sum_conf[b] += f64::from(c);
        sum_acc[b] += f64::from(u8::from(ok));
        count[b] += 1;
    }
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (sum_acc[b] - sum_conf[b]).abs() / n as f64)
        .sum()
}

fn frac(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

/// The open-set figures for known test images and images of no class.
pub(super) fn evaluate(known: &[OpenScored], unknown: &[OpenScored], unreadable: usize) -> OpenSet {
    let slack = |v: &[OpenScored]| -> Vec<f64> { v.iter().map(|s| s.slack()).collect() };
    let score = |v: &[OpenScored]| -> Vec<f64> { v.iter().map(|s| f64::from(s.score)).collect() };
    let has_store = known.iter().chain(unknown).all(|s| s.distance.is_some());
    let neg_dist = |v: &[OpenScored]| -> Vec<f64> {
        v.iter()
            .map(|s| -f64::from(s.distance.unwrap_or(0.0)))
            .collect()
    };
    let sweep = |distance: bool| -> Vec<SweepRow> {
        (0..=40)
            .map(|i| {
                let threshold = f64::from(i) * 0.025;
                let rejects = |s: &OpenScored| {
                    if distance {
                        f64::from(s.score) < f64::from(s.min_score)
                            || s.distance.is_some_and(|d| f64::from(d) > threshold)
                    } else {
                        f64::from(s.score) < threshold
                            || s.distance.is_some_and(|d| d > s.max_distance)
                    }
                };
                let accepted: Vec<&OpenScored> = known.iter().filter(|s| !rejects(s)).collect();
                SweepRow {
                    threshold,
                    known_accepted_correct: frac(
                        accepted.iter().filter(|s| s.correct).count(),
                        known.len(),
                    ),
                    known_accepted: frac(accepted.len(), known.len()),
                    unknown_rejected: frac(
                        unknown.iter().filter(|s| rejects(s)).count(),
                        unknown.len(),
                    ),
                }
            })
            .collect()
    };
    OpenSet {
        unknown_examples: unknown.len(),
        unknown_unreadable: unreadable,
        auroc: auroc(&slack(known), &slack(unknown)),
        auroc_score: auroc(&score(known), &score(unknown)),
        auroc_distance: if has_store {
            auroc(&neg_dist(known), &neg_dist(unknown))
        } else {
            None
        },
        unknown_rejected: frac(unknown.iter().filter(|s| s.rejected).count(), unknown.len()),
        known_rejected: frac(known.iter().filter(|s| s.rejected).count(), known.len()),
        known_accepted_correct: frac(
            known.iter().filter(|s| !s.rejected && s.correct).count(),
            known.len(),
        ),
        distance_sweep: if has_store { sweep(true) } else { Vec::new() },
        score_sweep: sweep(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_matches_scikit_learn() {
        // sklearn.metrics.roc_auc_score([1, 1, 1, 0, 0], [0.9, 0.4, 0.7, 0.4, 0.2]) = 0.916667
        // (the tie between 0.4 and 0.4 counts half).
        let a = auroc(&[0.9, 0.4, 0.7], &[0.4, 0.2]).unwrap();
        assert!((a - 0.916_667).abs() < 1e-6, "{a}");
        assert_eq!(auroc(&[1.0], &[0.0]), Some(1.0));
        assert_eq!(auroc(&[0.0], &[1.0]), Some(0.0));
        assert_eq!(auroc(&[], &[1.0]), None);
    }

    #[test]
    fn ece_is_the_weighted_gap_between_confidence_and_accuracy() {
        // Two bins of 10: [0.9 × 2, right and wrong] → |0.5 − 0.9| × 2/4; [0.3 × 2, both
        // right] → |1 − 0.3| × 2/4. ECE = 0.2 + 0.35 = 0.55.
        let v = [(0.9, true), (0.9, false), (0.3, true), (0.3, true)];
        let e = expected_calibration_error(&v, 10);
        assert!((e - 0.55).abs() < 1e-6, "{e}");
        // Perfect calibration: confidence 1 and always right.
        assert!(expected_calibration_error(&[(1.0, true); 3], 15) < 1e-9);
    }

    #[test]
    fn slack_below_one_is_exactly_the_bundles_rejection() {
        let s = |score, distance| OpenScored {
            score,
            distance: Some(distance),
            min_score: 0.5,
            max_distance: 0.3,
            rejected: false,
            correct: true,
        };
        assert!(s(0.6, 0.2).slack() > 1.0);
        assert!(s(0.4, 0.2).slack() < 1.0);
        assert!(s(0.6, 0.4).slack() < 1.0);
    }
}
