//! Scores from features: softmax and top-k over logits. The trained linear head (softmax
//! regression shipped in a bundle) builds on these; with no bundle the backbone's own ImageNet
//! logits are the head.

use serde::Serialize;

/// Numerically stable softmax with a temperature (1.0 = plain softmax).
pub(crate) fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
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

/// Index of the largest value (the first on ties; 0 for an empty slice).
#[cfg(feature = "host")]
pub(crate) fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
        .unwrap_or(0)
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
pub(crate) fn top_k(scores: &[f32], labels: &[String], k: usize) -> Vec<Ranked> {
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

/// How features are conditioned before the linear head.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FeatureNorm {
    /// Scale to unit length (deep features).
    L2,
    /// Subtract a per-feature mean and divide by a per-feature std (raw pixels).
    Standardize {
        /// Per-feature mean.
        mean: Vec<f32>,
        /// Per-feature standard deviation (never zero).
        std: Vec<f32>,
    },
    /// Signed square root of each value, then unit length ("power normalisation"). Pooled
    /// ReLU features are sparse and heavy-tailed; the square root evens them out, which
    /// measurably helps a linear head (BENCHMARKS.md, Fashion-MNIST).
    SqrtL2,
}

impl FeatureNorm {
    /// Conditions one feature vector in place (the head at run time, the trainer on every row).
    pub fn apply(&self, x: &mut [f32]) {
        match self {
            FeatureNorm::L2 => crate::vector::l2_normalize(x),
            FeatureNorm::SqrtL2 => sqrt_l2(x),
            FeatureNorm::Standardize { mean, std } => {
                for ((v, m), s) in x.iter_mut().zip(mean).zip(std) {
                    *v = (*v - m) / s;
                }
            }
        }
    }
}

/// Signed square root of each value, then unit length.
pub(crate) fn sqrt_l2(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = x.signum() * x.abs().sqrt());
    crate::vector::l2_normalize(v);
}

/// Softmax regression on features: `p = softmax((W·norm(x) + b) / T)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinearHead {
    /// Number of classes.
    pub classes: usize,
    /// Feature length.
    pub dim: usize,
    /// Row-major `classes × dim`.
    pub weights: Vec<f32>,
    /// One per class.
    pub bias: Vec<f32>,
    /// Feature conditioning.
    pub norm: FeatureNorm,
    /// Softmax temperature calibrated on validation data (1.0 = none).
    pub temperature: f32,
}

impl LinearHead {
    /// Checks that the shapes agree (run after deserialising).
    /// A crafted file cannot make the shapes wrap (`classes × dim` is checked), and every value
    /// must be finite (a NaN weight would make every score NaN).
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |why: String| Err(crate::Error::InvalidSetting(why));
        let norm_ok = match &self.norm {
            FeatureNorm::L2 | FeatureNorm::SqrtL2 => true,
            FeatureNorm::Standardize { mean, std } => {
                mean.len() == self.dim
                    && std.len() == self.dim
                    && mean.iter().all(|v| v.is_finite())
                    && std.iter().all(|v| v.is_finite() && *v > 0.0)
            }
        };
        if self.classes == 0 || self.dim == 0 {
            return bad(format!(
                "linear head of {}×{}: it needs at least one class and one input",
                self.classes, self.dim
            ));
        }
        if self.classes.checked_mul(self.dim) != Some(self.weights.len())
            || self.bias.len() != self.classes
            || !norm_ok
        {
            return Err(crate::Error::InvalidSetting(format!(
                "linear head shapes disagree: {} weights, {} biases for {}×{}",
                self.weights.len(),
                self.bias.len(),
                self.classes,
                self.dim
            )));
        }
        if !self.weights.iter().chain(&self.bias).all(|v| v.is_finite()) {
            return bad("linear head has weights that are not finite numbers".into());
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(format!(
                "linear head temperature {} must be a positive number",
                self.temperature
            ));
        }
        Ok(())
    }

    /// Applies the feature conditioning.
    pub fn prepare(&self, features: &[f32]) -> Vec<f32> {
        let mut x = features.to_vec();
        self.norm.apply(&mut x);
        x
    }

    /// Logits of conditioned features.
    pub fn logits_prepared(&self, x: &[f32]) -> Vec<f32> {
        (0..self.classes)
            .map(|c| {
                self.bias[c]
                    + crate::vector::dot(&self.weights[c * self.dim..(c + 1) * self.dim], x)
            })
            .collect()
    }

    /// Calibrated class probabilities for raw features.
    pub fn predict_proba(&self, features: &[f32]) -> Vec<f32> {
        softmax(
            &self.logits_prepared(&self.prepare(features)),
            self.temperature,
        )
    }
}
