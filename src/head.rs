//! Scores from features: softmax and top-k over logits. The trained linear head (softmax
//! regression shipped in a bundle) builds on these; with no bundle the backbone's own ImageNet
//! logits are the head.

use serde::Serialize;

/// Numerically stable softmax with a temperature (1.0 = plain softmax).
pub fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let t = if temperature.is_finite() && temperature > 0.0 {
        temperature
    } else {
        1.0
    };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut out: Vec<f32> = logits.iter().map(|&l| ((l - max) / t).exp()).collect();
    let sum: f32 = out.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        out.iter_mut().for_each(|p| *p /= sum);
    }
    out
}

/// One ranked class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// Class index in the label list.
    #[serde(skip)]
    pub index: usize,
    /// Class name.
    pub label: String,
    /// Probability (0..=1).
    pub score: f32,
}

/// The `k` highest-scoring classes, best first; ties keep the lower index first.
pub fn top_k(scores: &[f32], labels: &[String], k: usize) -> Vec<Ranked> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k.max(1))
        .map(|i| Ranked {
            index: i,
            label: labels
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("class {i}")),
            score: scores[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, 2.0, -1000.0], 1.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[2] && p[2] > p[0] && p[0] > p[3]);
        // Reference: numpy exp(x - max) / sum for [1, 3, 2].
        assert!((p[1] - 0.665_240_9).abs() < 1e-6);
    }

    #[test]
    fn softmax_survives_huge_logits() {
        let p = softmax(&[1e30, 1e30], 1.0);
        assert!((p[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn temperature_flattens() {
        let sharp = softmax(&[0.0, 2.0], 1.0);
        let flat = softmax(&[0.0, 2.0], 4.0);
        assert!(flat[1] < sharp[1]);
    }

    #[test]
    fn top_k_orders_and_names() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let r = top_k(&[0.2, 0.5, 0.3], &labels, 2);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].label.as_str(), r[1].label.as_str()), ("b", "c"));
        assert_eq!(r[0].index, 1);
    }
}
