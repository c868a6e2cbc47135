//! Evaluation figures: accuracy, macro precision/recall/F1, log-loss, top-k, confusion matrix,
//! 1-NN accuracy, head–kNN agreement, and the seed's category-specific retrieval table.

use crate::head::argmax;
use serde::Serialize;

/// Per-class figures.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ClassRow {
    /// Class name.
    pub label: String,
    /// Test examples of this class.
    pub support: usize,
    /// Of those predicted as this class, the fraction that are.
    pub precision: f64,
    /// Of this class, the fraction predicted as it.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
}

/// For the test images of one class: the mean distance to the nearest stored example of every
/// class, and how often their own class was nearest.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RetrievalRow {
    /// The test images' class.
    pub label: String,
    /// Test images of that class.
    pub queries: usize,
    /// Mean nearest-neighbour distance to each class's examples (in `labels` order).
    pub mean_distance: Vec<Option<f64>>,
    /// Fraction whose nearest class was their own (their 1-NN accuracy).
    pub own_class_nearest: f64,
}

/// Everything `glance-host eval` reports.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Evaluation {
    /// Class names (rows and columns of `confusion`).
    pub labels: Vec<String>,
    /// Test examples evaluated.
    pub examples: usize,
    /// Test examples that could not be read.
    pub unreadable: usize,
    /// Head top-1 accuracy.
    pub accuracy: f64,
    /// Macro-averaged precision.
    pub macro_precision: f64,
    /// Macro-averaged recall.
    pub macro_recall: f64,
    /// Macro-averaged F1.
    pub macro_f1: f64,
    /// Mean negative log-likelihood of the true class (calibrated probabilities).
    pub log_loss: f64,
    /// k used for `top_k_accuracy`.
    pub top_k: usize,
    /// Fraction whose true class is among the head's top k.
    pub top_k_accuracy: f64,
    /// 1-nearest-neighbour accuracy against the bundle's store (null with no store).
    pub knn_accuracy: Option<f64>,
    /// Fraction where the head and the nearest stored example agree.
    pub head_knn_agreement: Option<f64>,
    /// Fraction rejected as unknown by the bundle's thresholds.
    pub unknown_rate: f64,
    /// Expected calibration error of the head's top-1 confidence (15 equal-width bins): the
    /// mean gap between how sure the head says it is and how often it is right.
    pub expected_calibration_error: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Per-class precision/recall/F1.
    pub per_class: Vec<ClassRow>,
    /// The category-specific retrieval table.
    pub retrieval: Vec<RetrievalRow>,
    /// Open-set figures (`eval --unknown DIR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_set: Option<super::openset::OpenSet>,
}

/// Inputs per test example.
pub(super) struct Scored {
    /// True class.
    pub truth: usize,
    /// Calibrated probabilities.
    pub probs: Vec<f32>,
    /// Rejected as unknown.
    pub unknown: bool,
    /// Nearest stored example's class, if a store exists.
    pub knn_label: Option<usize>,
    /// Nearest-example distance per class.
    pub per_class_distance: Vec<Option<f32>>,
}

/// Computes every figure from scored test examples.
pub(super) fn evaluate(labels: &[String], scored: &[Scored], unreadable: usize) -> Evaluation {
    let c = labels.len();
    let n = scored.len().max(1) as f64;
    let mut confusion = vec![vec![0usize; c]; c];
    let mut log_loss = 0f64;
    let top_k = 5.min(c);
    let mut in_top_k = 0usize;
    let mut knn_correct = 0usize;
    let mut agree = 0usize;
    let mut has_knn = false;
    let mut unknown = 0usize;
    let mut confidence_correct = Vec::with_capacity(scored.len());
    for s in scored {
        let pred = argmax(&s.probs);
        confidence_correct.push((s.probs[pred], pred == s.truth));
        confusion[s.truth][pred] += 1;
        log_loss -= f64::from(s.probs[s.truth].max(1e-12)).ln();
        let mut order: Vec<usize> = (0..c).collect();
        order.sort_by(|&a, &b| s.probs[b].total_cmp(&s.probs[a]));
        in_top_k += usize::from(order[..top_k].contains(&s.truth));
        unknown += usize::from(s.unknown);
        if let Some(k) = s.knn_label {
            has_knn = true;
            knn_correct += usize::from(k == s.truth);
            agree += usize::from(k == pred);
        }
    }
    let correct: usize = (0..c).map(|i| confusion[i][i]).sum();
    let per_class: Vec<ClassRow> = (0..c)
        .map(|k| {
            let support: usize = confusion[k].iter().sum();
            let predicted: usize = (0..c).map(|t| confusion[t][k]).sum();
            let tp = confusion[k][k] as f64;
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassRow {
                label: labels[k].clone(),
                support,
                precision,
                recall,
                f1,
            }
        })
        .collect();
    let present: Vec<&ClassRow> = per_class.iter().filter(|r| r.support > 0).collect();
    let macro_of = |f: fn(&ClassRow) -> f64| {
        if present.is_empty() {
            0.0
        } else {
            present.iter().map(|r| f(r)).sum::<f64>() / present.len() as f64
        }
    };
    let retrieval = if has_knn {
        (0..c)
            .map(|k| {
                let rows: Vec<&Scored> = scored.iter().filter(|s| s.truth == k).collect();
                let mean_distance = (0..c)
                    .map(|j| {
                        let ds: Vec<f64> = rows
                            .iter()
                            .filter_map(|s| s.per_class_distance.get(j).copied().flatten())
                            .map(f64::from)
                            .collect();
                        (!ds.is_empty()).then(|| ds.iter().sum::<f64>() / ds.len() as f64)
                    })
                    .collect();
                let own = rows
                    .iter()
                    .filter(|s| {
                        let mine = s.per_class_distance.get(k).copied().flatten();
                        mine.is_some_and(|m| s.per_class_distance.iter().flatten().all(|&d| m <= d))
                    })
                    .count();
                RetrievalRow {
                    label: labels[k].clone(),
                    queries: rows.len(),
                    mean_distance,
                    own_class_nearest: if rows.is_empty() {
                        0.0
                    } else {
                        own as f64 / rows.len() as f64
                    },
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    Evaluation {
        labels: labels.to_vec(),
        examples: scored.len(),
        unreadable,
        accuracy: correct as f64 / n,
        macro_precision: macro_of(|r| r.precision),
        macro_recall: macro_of(|r| r.recall),
        macro_f1: macro_of(|r| r.f1),
        log_loss: log_loss / n,
        top_k,
        top_k_accuracy: in_top_k as f64 / n,
        knn_accuracy: has_knn.then(|| knn_correct as f64 / n),
        head_knn_agreement: has_knn.then(|| agree as f64 / n),
        unknown_rate: unknown as f64 / n,
        expected_calibration_error: super::openset::expected_calibration_error(
            &confidence_correct,
            15,
        ),
        confusion,
        per_class,
        retrieval,
        open_set: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(truth: usize, probs: &[f32], knn: usize, d: &[f32]) -> Scored {
        Scored {
            truth,
            probs: probs.to_vec(),
            unknown: false,
            knn_label: Some(knn),
            per_class_distance: d.iter().map(|&x| Some(x)).collect(),
        }
    }

    #[test]
    fn figures_match_scikit_learn() {
        // y_true = [0, 0, 1, 1, 2], y_pred = [0, 1, 1, 1, 0]. scikit-learn 1.x gives:
        // accuracy_score 0.6; precision_score(average='macro') 0.388889 (0.5, 0.666667, 0);
        // recall_score macro 0.5 (0.5, 1, 0); f1_score macro 0.433333 (0.5, 0.8, 0).
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let scored = vec![
            s(0, &[0.8, 0.1, 0.1], 0, &[0.1, 0.5, 0.6]),
            s(0, &[0.3, 0.6, 0.1], 1, &[0.4, 0.2, 0.6]),
            s(1, &[0.1, 0.8, 0.1], 1, &[0.5, 0.1, 0.6]),
            s(1, &[0.2, 0.7, 0.1], 1, &[0.5, 0.2, 0.6]),
            s(2, &[0.5, 0.2, 0.3], 2, &[0.5, 0.4, 0.3]),
        ];
        let e = evaluate(&labels, &scored, 0);
        assert!((e.accuracy - 0.6).abs() < 1e-9);
        assert!((e.macro_precision - 0.388_889).abs() < 1e-6);
        assert!((e.macro_recall - 0.5).abs() < 1e-9);
        assert!((e.macro_f1 - 0.433_333).abs() < 1e-6);
        assert_eq!(
            e.confusion,
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
        );
        // log_loss(y_true, probs) in scikit-learn: 0.642182
        assert!((e.log_loss - 0.642_182).abs() < 1e-5, "{}", e.log_loss);
        assert!((e.knn_accuracy.unwrap() - 0.8).abs() < 1e-9);
        assert!((e.head_knn_agreement.unwrap() - 0.8).abs() < 1e-9);
        assert!((e.retrieval[0].own_class_nearest - 0.5).abs() < 1e-9);
        assert!((e.retrieval[0].mean_distance[1].unwrap() - 0.35).abs() < 1e-6);
        assert!((e.retrieval[2].own_class_nearest - 1.0).abs() < 1e-9);
    }
}
