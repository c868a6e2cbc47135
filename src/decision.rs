//! The decision for one frame in `glance run`: the classifier's verdict (head + bundle store +
//! unknown thresholds), then the on-device store of enrolled examples, then temporal smoothing.
//!
//! Enrolled examples win over the head: when a frame lies within a label's accepted distance of
//! one of its enrolled examples, that label is the decision (score = 1 − distance, the cosine
//! similarity). This is how a board learns a new class, or corrects an old one, without
//! retraining. Otherwise the head decides as `classify` would.
//!
//! Smoothing over N frames is a majority vote over the last N decisions (`unknown` included);
//! the winner's score is the mean of its scores in the window, and ties go to the most recent.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::bundle::RejectReason;
use crate::knn;
use crate::pipeline::{KnnResult, Prediction, Rejection};
use crate::store::Store;

/// Default largest cosine distance at which a frame matches an enrolled example.
pub const DEFAULT_ENROLLED_DISTANCE: f32 = 0.25;

/// Who made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DecidedBy {
    /// The linear head (or the ImageNet classifier).
    Head,
    /// An enrolled example in the on-device store.
    Store,
}

/// One decided frame, in the shape of the `glance run` JSON contract: `classify`'s fields plus
/// `seq`, `time_ms`, `unknown`, `decided_by` and `dropped`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Decided {
    /// Frame number since start (0-based).
    pub seq: u64,
    /// Capture time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// From the frame's capture (the camera driver's timestamp, or when a stream's frame
    /// arrived) to this decision, in milliseconds: the waiting, decoding and inference a
    /// frame went through.
    pub latency_ms: f64,
    /// The prediction; `label`/`score` are the smoothed decision.
    #[serde(flatten)]
    pub prediction: Prediction,
    /// The decision is "unknown".
    pub unknown: bool,
    /// Where the (unsmoothed) decision came from.
    pub decided_by: DecidedBy,
    /// Frames the source dropped since the previous decision (newest-frame-wins).
    pub dropped: u64,
    /// The head and the nearest stored example disagree.
    pub disagree: bool,
}

/// Turns classifier output into decisions.
#[derive(Debug)]
pub(crate) struct Decider {
    enrolled_default: f32,
    enrolled_distance: HashMap<String, f32>,
    smooth: usize,
    window: VecDeque<(String, f32)>,
}

impl Decider {
    /// A decider accepting enrolled matches within `enrolled_default` and smoothing over
    /// `smooth` frames (0 or 1: none).
    pub(crate) fn new(enrolled_default: f32, smooth: usize) -> Self {
        Self {
            enrolled_default,
            enrolled_distance: HashMap::new(),
            smooth: smooth.max(1),
            window: VecDeque::new(),
        }
    }

    /// Sets the accepted distance of enrolled label `label` (`None`: every label, and the
    /// default for labels enrolled later).
    pub(crate) fn set_enrolled_distance(&mut self, label: Option<&str>, value: f32) {
        match label {
            Some(l) => {
                self.enrolled_distance.insert(l.to_owned(), value);
            }
            None => {
                self.enrolled_default = value;
                self.enrolled_distance.clear();
            }
        }
    }

    /// The accepted distance for enrolled label `label`.
    pub(crate) fn enrolled_distance(&self, label: &str) -> f32 {
        self.enrolled_distance
            .get(label)
            .copied()
            .unwrap_or(self.enrolled_default)
    }

    /// Decides one frame. `features` are the frame's backbone features (for the store search).
    pub(crate) fn decide(
        &mut self,
        mut p: Prediction,
        features: &[f32],
        store: &Store,
        seq: u64,
        time_ms: u64,
        dropped: u64,
    ) -> Decided {
        let mut decided_by = DecidedBy::Head;
        let mut unknown = p.unknown;
        if !store.is_empty() {
            let per_label = store.nearest_per_label(features);
            if let Some((i, d)) = knn::nearest_class(&per_label) {
                let label = &store.labels[i];
                if p.knn.as_ref().is_none_or(|k| d < k.distance) {
                    p.knn = Some(KnnResult {
                        label: label.clone(),
                        distance: d,
                    });
                }
                if d <= self.enrolled_distance(label) {
                    p.label = label.clone();
                    p.score = 1.0 - d;
                    unknown = false;
                    p.rejection = None;
                    decided_by = DecidedBy::Store;
                }
            }
        }
        let disagree = p.knn.as_ref().is_some_and(|k| {
            p.top_k
                .first()
                .is_some_and(|best| best.label != k.label && decided_by == DecidedBy::Head)
        });
        if self.smooth > 1 {
            self.window.push_back((p.label.clone(), p.score));
            while self.window.len() > self.smooth {
                self.window.pop_front();
            }
            let (label, score) = majority(&self.window);
            let now_unknown = label == "unknown";
            if !now_unknown {
                p.rejection = None;
            } else if p.rejection.is_none() {
                // This frame was accepted, but the window votes unknown.
                let share = self.window.iter().filter(|(l, _)| l == "unknown").count() as f32
                    / self.window.len().max(1) as f32;
                p.rejection = Some(Rejection {
                    best_label: p.label.clone(),
                    reason: RejectReason::Smoothed { value: share },
                });
            }
            unknown = now_unknown;
            p.label = label;
            p.score = score;
        }
        Decided {
            seq,
            time_ms,
            latency_ms: 0.0,
            prediction: p,
            unknown,
            decided_by,
            dropped,
            disagree,
        }
    }
}

/// The most frequent label (ties: the most recent) and its mean score.
fn majority(window: &VecDeque<(String, f32)>) -> (String, f32) {
    let mut count: HashMap<&str, (usize, f32, usize)> = HashMap::new();
    for (i, (label, score)) in window.iter().enumerate() {
        let e = count.entry(label.as_str()).or_insert((0, 0.0, 0));
        e.0 += 1;
        e.1 += score;
        e.2 = i;
    }
    count
        .into_iter()
        .max_by(|a, b| (a.1 .0, a.1 .2).cmp(&(b.1 .0, b.1 .2)))
        .map(|(label, (n, sum, _))| (label.to_owned(), sum / n as f32))
        .unwrap_or_else(|| ("unknown".into(), 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::Ranked;
    use crate::knn::Precision;
    use crate::pipeline::Timing;

    fn prediction(label: &str, score: f32) -> Prediction {
        Prediction {
            source: "f".into(),
            label: label.into(),
            score,
            top_k: vec![Ranked {
                index: 0,
                label: label.into(),
                score,
            }],
            timing_ms: Timing::default(),
            knn: None,
            features: None,
            unknown: label == "unknown",
            rejection: None,
        }
    }

    #[test]
    fn an_enrolled_example_within_its_distance_overrides_the_head() {
        let mut store = Store::new("x", 2, 10, Precision::F32);
        store.add("mug", &[1.0, 0.0], String::new()).unwrap();
        let mut d = Decider::new(0.2, 1);
        let near = d.decide(prediction("cat", 0.9), &[1.0, 0.1], &store, 0, 0, 0);
        assert_eq!(near.prediction.label, "mug");
        assert_eq!(near.decided_by, DecidedBy::Store);
        assert!(near.prediction.score > 0.99);
        let far = d.decide(prediction("cat", 0.9), &[0.0, 1.0], &store, 1, 0, 0);
        assert_eq!(far.prediction.label, "cat");
        assert_eq!(far.decided_by, DecidedBy::Head);
        assert_eq!(far.prediction.knn.as_ref().unwrap().label, "mug");
        assert!(far.disagree);
        d.set_enrolled_distance(Some("mug"), 1.5);
        let now = d.decide(prediction("cat", 0.9), &[0.0, 1.0], &store, 2, 0, 0);
        assert_eq!(now.prediction.label, "mug");
    }

    #[test]
    fn smoothing_is_a_majority_vote_with_recent_ties() {
        let store = Store::new("x", 2, 10, Precision::F32);
        let mut d = Decider::new(0.2, 3);
        let labels: Vec<String> = ["a", "b", "b", "a", "a", "unknown", "unknown"]
            .iter()
            .enumerate()
            .map(|(i, l)| {
                d.decide(prediction(l, 0.5), &[1.0, 0.0], &store, i as u64, 0, 0)
                    .prediction
                    .label
            })
            .collect();
        assert_eq!(labels, ["a", "b", "b", "b", "a", "a", "unknown"]);
    }
}
