//! The per-class rejection thresholds a bundle carries, and why a prediction was rejected.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Per-class rejection thresholds, calibrated on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A decision for class c needs a calibrated probability ≥ `min_score[c]`.
    pub min_score: Vec<f32>,
    /// …and, when there is a store, a nearest same-class example within `max_distance[c]`.
    pub max_distance: Vec<f32>,
}

impl Thresholds {
    /// Thresholds that accept everything, for `classes` classes.
    pub fn accept_all(classes: usize) -> Self {
        Self {
            min_score: vec![0.0; classes],
            max_distance: vec![f32::INFINITY; classes],
        }
    }

    /// Sets the least score (`distance` false) or the largest distance (`distance` true) of
    /// class `class`, or of every class (`None`). An index out of range changes nothing.
    pub fn set(&mut self, distance: bool, class: Option<usize>, value: f32) {
        let column = if distance {
            &mut self.max_distance
        } else {
            &mut self.min_score
        };
        match class {
            Some(i) => {
                if let Some(v) = column.get_mut(i) {
                    *v = value;
                }
            }
            None => column.iter_mut().for_each(|v| *v = value),
        }
    }

    /// Applies a `--min-score` (`distance` false) or `--max-distance` flag value `[LABEL=]V`
    /// for the classes `labels`: one class, or every class without a label.
    pub fn apply_flag(&mut self, labels: &[String], flag: &str, distance: bool) -> Result<()> {
        let (label, value) =
            crate::control::parse_threshold_flag(flag, distance).map_err(Error::InvalidSetting)?;
        let class = match label {
            Some(l) => Some(labels.iter().position(|x| x == l).ok_or_else(|| {
                Error::InvalidSetting(format!(
                    "{flag}: `{l}` is not a class (classes: {})",
                    labels.join(", ")
                ))
            })?),
            None => None,
        };
        self.set(distance, class, value);
        Ok(())
    }

    /// Applies every `--min-score` and then every `--max-distance` flag value, in order.
    pub fn apply_flags(
        &mut self,
        labels: &[String],
        min_score: &[String],
        max_distance: &[String],
    ) -> Result<()> {
        for (flags, distance) in [(min_score, false), (max_distance, true)] {
            for flag in flags {
                self.apply_flag(labels, flag, distance)?;
            }
        }
        Ok(())
    }

    /// True when a decision for `class` with probability `score` and nearest same-class
    /// example at `distance` is outside the thresholds.
    pub fn rejects(&self, class: usize, score: f32, distance: Option<f32>) -> bool {
        self.verdict(class, score, distance).is_some()
    }

    /// Why a decision for `class` with probability `score` and nearest same-class example at
    /// `distance` is rejected, or `None` when it is accepted. The score is checked first. A
    /// score that is not a number is rejected (it can only come from a broken input).
    pub fn verdict(&self, class: usize, score: f32, distance: Option<f32>) -> Option<RejectReason> {
        let min = self.min_score.get(class).copied().unwrap_or(0.0);
        let max = self
            .max_distance
            .get(class)
            .copied()
            .unwrap_or(f32::INFINITY);
        if score.is_nan() || score < min {
            return Some(RejectReason::LowScore {
                value: score,
                threshold: min,
            });
        }
        match distance {
            Some(d) if d.is_nan() || d > max => Some(RejectReason::FarFromExamples {
                value: d,
                threshold: max,
            }),
            _ => None,
        }
    }
}

/// Why a decision came out `unknown`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RejectReason {
    /// The best class's calibrated probability `value` is below its threshold.
    LowScore {
        /// The best class's probability.
        value: f32,
        /// Its least accepted probability.
        threshold: f32,
    },
    /// The nearest stored example of the best class is at distance `value`, farther than its
    /// threshold.
    FarFromExamples {
        /// Cosine distance to the nearest example of the best class.
        value: f32,
        /// Its largest accepted distance.
        threshold: f32,
    },
    /// Smoothing over recent frames voted `unknown` (`value`: the share of unknown frames).
    Smoothed {
        /// Share of the window's frames that were unknown.
        value: f32,
    },
}

impl RejectReason {
    /// The machine-readable name (`reject_reason` in JSON).
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::LowScore { .. } => "low_score",
            RejectReason::FarFromExamples { .. } => "far_from_examples",
            RejectReason::Smoothed { .. } => "smoothed",
        }
    }

    /// The measured value and the threshold it failed.
    pub fn value_and_threshold(&self) -> (f32, Option<f32>) {
        match *self {
            RejectReason::LowScore { value, threshold }
            | RejectReason::FarFromExamples { value, threshold } => (value, Some(threshold)),
            RejectReason::Smoothed { value } => (value, None),
        }
    }

    /// One phrase for people, naming the best class: the same in `classify` and `run`.
    pub fn describe(&self, best_label: &str) -> String {
        match *self {
            RejectReason::LowScore { value, threshold } => format!(
                "best {best_label} {:.1}% is below its score threshold {:.1}%",
                value * 100.0,
                threshold * 100.0
            ),
            RejectReason::FarFromExamples { value, threshold } => format!(
                "best {best_label}, but its nearest example is at {value:.3}, farther than \
                 its threshold {threshold:.3}"
            ),
            RejectReason::Smoothed { value } => format!(
                "{:.0}% of the recent frames were unknown (last best {best_label})",
                value * 100.0
            ),
        }
    }
}
