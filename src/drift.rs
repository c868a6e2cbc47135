//! Scene drift: do the frames still look like the images the bundle was validated on?
//!
//! A bundle carries the held-out distributions of two numbers every frame also has: the head's
//! top-1 probability (its confidence) and the distance to the nearest example of the bundle's
//! store. On the board a rolling window of the latest frames' values is compared with them by
//! the two-sample Kolmogorov–Smirnov statistic (the largest gap between the two cumulative
//! distributions). A camera knocked aside, a lamp gone dark, a lens fogged or a new kind of
//! object all move these distributions long before anyone reads the decisions.
//!
//! The scene counts as drifted when a statistic is significant at the 0.1 % level for the two
//! sample sizes (a few dozen photos a class make a small reference) *and* at least
//! [`KS_FLOOR`], so that months of frames against a large reference do not flag a shift too
//! small to matter. tests/drift.rs checks both sides on real pictures (figures: BENCHMARKS.md,
//! "Scene drift"). A population stability index over deciles was tried first: with a reference
//! of a few dozen images its sampling noise alone reaches the usual alarm level.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// The least statistic that counts as drift, whatever the sample sizes (see the module
/// comment).
pub(crate) const KS_FLOOR: f32 = 0.2;
/// Frames the window holds by default.
pub const DEFAULT_WINDOW: usize = 300;
/// Most reference points a bundle keeps per signal (quantiles at 0.1 % steps of more).
pub(crate) const REFERENCE_POINTS: usize = 1001;

/// The held-out distributions a bundle carries (version 3 bundles on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReference {
    /// Held-out images they were measured on.
    pub images: u32,
    /// Their top-1 calibrated probabilities, sorted (at most [`REFERENCE_POINTS`]: quantiles
    /// when there were more).
    pub confidence: Vec<f32>,
    /// Their distances to the nearest stored example of any class (themselves left out),
    /// sorted, the same way; empty for a bundle without a store.
    pub distance: Vec<f32>,
}

impl DriftReference {
    /// The reference of these held-out values (any order; non-finite values are left out).
    pub fn new(confidence: &[f32], distance: &[f32]) -> Self {
        Self {
            images: confidence.len() as u32,
            confidence: reference_points(confidence),
            distance: reference_points(distance),
        }
    }

    /// The Kolmogorov–Smirnov statistics of a window of frames' values against this
    /// reference: `(confidence, distance)`; `None` for a signal without values on either side.
    pub fn statistics(&self, confidence: &[f32], distance: &[f32]) -> (Option<f32>, Option<f32>) {
        (
            ks(&self.confidence, confidence),
            ks(&self.distance, distance),
        )
    }

    /// Refuses what a crafted file could hold: too many points, unsorted or non-finite ones.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("confidence", &self.confidence),
            ("distance", &self.distance),
        ] {
            if v.len() > REFERENCE_POINTS {
                return Err(format!("drift {name}: {} points", v.len()));
            }
            if v.iter().any(|x| !x.is_finite()) || v.windows(2).any(|w| w[0] > w[1]) {
                return Err(format!("drift {name}: not sorted finite values"));
            }
        }
        Ok(())
    }
}

/// `values`, finite ones only, sorted; at most [`REFERENCE_POINTS`] (evenly spaced order
/// statistics of more).
fn reference_points(values: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f32::total_cmp);
    if v.len() <= REFERENCE_POINTS {
        return v;
    }
    let last = (v.len() - 1) as f64;
    (0..REFERENCE_POINTS)
        .map(|i| v[(i as f64 * last / (REFERENCE_POINTS - 1) as f64).round() as usize])
        .collect()
}

/// The two-sample Kolmogorov–Smirnov statistic of `observed` against the sorted `reference`:
/// the largest difference between their empirical distribution functions (0: the same, 1:
/// apart). `None` when either is empty.
pub(crate) fn ks(reference: &[f32], observed: &[f32]) -> Option<f32> {
    if reference.is_empty() || observed.is_empty() {
        return None;
    }
    let mut o: Vec<f32> = observed.iter().copied().filter(|x| x.is_finite()).collect();
    if o.is_empty() {
        return None;
    }
    o.sort_by(f32::total_cmp);
    let (n, m) = (reference.len() as f64, o.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < reference.len() && j < o.len() {
        // Step past every value equal to the smaller one on both sides (ties move together).
        let x = reference[i].min(o[j]);
        while i < reference.len() && reference[i] <= x {
            i += 1;
        }
        while j < o.len() && o[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    Some(d as f32)
}

/// The statistic above which a window of `m` frames differs from a reference of `n` images at
/// the 0.1 % level (the asymptotic two-sample critical value, c(0.001) = 1.949), and never
/// below [`KS_FLOOR`].
pub(crate) fn ks_threshold(n: usize, m: usize) -> f32 {
    let (n, m) = (n.max(1) as f64, m.max(1) as f64);
    ((1.949 * ((n + m) / (n * m)).sqrt()) as f32).max(KS_FLOOR)
}

/// What status reports about drift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DriftInfo {
    /// The larger of the two statistics.
    pub score: f32,
    /// Kolmogorov–Smirnov statistic of the top-1 probabilities.
    pub confidence_ks: f32,
    /// The same of the nearest stored example's distances (absent without a store).
    pub distance_ks: Option<f32>,
    /// The statistic that counts as drift for these sample sizes ([`ks_threshold`]).
    pub threshold: f32,
    /// Frames in the window.
    pub frames: usize,
    /// `score` > `threshold`.
    pub drifting: bool,
}

/// The board's rolling window and its comparison with the bundle's reference.
#[derive(Debug)]
pub(crate) struct DriftMonitor {
    reference: DriftReference,
    window: usize,
    confidence: VecDeque<f32>,
    distance: VecDeque<f32>,
    warned: bool,
}

impl DriftMonitor {
    /// A window of the latest `window` frames (at least 20).
    pub(crate) fn new(reference: DriftReference, window: usize) -> Self {
        Self {
            reference,
            window: window.max(20),
            confidence: VecDeque::new(),
            distance: VecDeque::new(),
            warned: false,
        }
    }

    /// One frame's top-1 probability and nearest stored example's distance.
    pub(crate) fn observe(&mut self, confidence: f32, distance: Option<f32>) {
        push(&mut self.confidence, confidence, self.window);
        if let Some(d) = distance {
            push(&mut self.distance, d, self.window);
        }
    }

    /// The comparison, once the window is half full (fewer frames say little); logs a warning
    /// when the scene starts to count as drifted and a note when it stops.
    pub(crate) fn report(&mut self) -> Option<DriftInfo> {
        let frames = self.confidence.len();
        if frames < self.window / 2 {
            return None;
        }
        let (c, d) = self.reference.statistics(
            self.confidence.make_contiguous(),
            self.distance.make_contiguous(),
        );
        let c = c?;
        let score = d.map_or(c, |d| d.max(c));
        let threshold = ks_threshold(self.reference.images as usize, frames);
        let info = DriftInfo {
            score,
            confidence_ks: c,
            distance_ks: d,
            threshold,
            frames,
            drifting: score > threshold,
        };
        if info.drifting && !self.warned {
            log::warn!("{}", info.problem());
        } else if !info.drifting && self.warned {
            log::info!("scene drift over: KS {score:.2} over the last {frames} frames");
        }
        self.warned = info.drifting;
        Some(info)
    }
}

impl DriftInfo {
    /// The health problem of a drifted scene, in words a user can act on.
    pub(crate) fn problem(&self) -> String {
        format!(
            "scene drift: KS {:.2} over the last {} frames (confidence {:.2}{}; above {:.2} is \
             drift): the frames no longer look like the images the bundle was validated on; \
             check the camera and the light, or capture (--capture) and refit",
            self.score,
            self.frames,
            self.confidence_ks,
            self.distance_ks
                .map_or(String::new(), |d| format!(", distance {d:.2}")),
            self.threshold
        )
    }
}

fn push(q: &mut VecDeque<f32>, v: f32, cap: usize) {
    if v.is_finite() {
        q.push_back(v);
        while q.len() > cap {
            q.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded sample of a smooth distribution, scaled and shifted.
    fn sample(n: usize, seed: u64, shift: f32, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                // Sum of 4 uniforms: bell-shaped on [0, 4].
                (0..4)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        (s >> 40) as f32 / (1u64 << 24) as f32
                    })
                    .sum::<f32>()
                    * scale
                    + shift
            })
            .collect()
    }

    #[test]
    fn ks_is_small_for_the_same_distribution_and_large_for_a_shifted_one() {
        let reference = reference_points(&sample(5000, 1, 0.0, 1.0));
        assert_eq!(reference.len(), REFERENCE_POINTS);
        let t = ks_threshold(5000, 300);
        let same = ks(&reference, &sample(300, 2, 0.0, 1.0)).unwrap();
        assert!(same < t, "same distribution: KS {same}, threshold {t}");
        let moved = ks(&reference, &sample(300, 3, 0.8, 1.0)).unwrap();
        assert!(moved > t, "shifted: KS {moved}");
        // Much narrower around the same mean (KS is weakest at a change of spread alone).
        let narrower = ks(&reference, &sample(300, 4, 1.8, 0.1)).unwrap();
        assert!(narrower > t, "narrower: KS {narrower}");
    }

    #[test]
    fn ks_matches_a_hand_count_and_its_threshold_the_formula() {
        // Reference 0..=9, observed 5..=14: the distributions differ most at 4 (0.5 vs 0).
        let reference: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let observed: Vec<f32> = (5..15).map(|i| i as f32).collect();
        assert!((ks(&reference, &observed).unwrap() - 0.5).abs() < 1e-6);
        assert_eq!(ks(&reference, &reference), Some(0.0));
        // Ties move together: two equal samples of one repeated value are the same.
        assert_eq!(ks(&[1.0; 5], &[1.0; 7]), Some(0.0));
        assert!((ks_threshold(100, 50) - 1.949 * (150.0f32 / 5000.0).sqrt()).abs() < 1e-6);
        assert!((ks_threshold(20, 20) - 1.949 * 0.1f32.sqrt()).abs() < 1e-6);
        assert_eq!(ks_threshold(100_000, 100_000), KS_FLOOR);
    }

    #[test]
    fn saturated_confidences_are_no_drift() {
        // Half the held-out images at exactly 1.0, and half the frames too.
        let mut held: Vec<f32> = sample(500, 5, 0.0, 0.1);
        held.extend(std::iter::repeat_n(1.0, 500));
        let reference = reference_points(&held);
        let mut same: Vec<f32> = sample(150, 6, 0.0, 0.1);
        same.extend(std::iter::repeat_n(1.0, 150));
        let v = ks(&reference, &same).unwrap();
        assert!(v < ks_threshold(1000, 300), "{v}");
    }

    #[test]
    fn the_monitor_waits_for_half_a_window_and_flags_drift() {
        let reference =
            DriftReference::new(&sample(2000, 7, 0.0, 0.25), &sample(2000, 8, 0.0, 0.2));
        reference.validate().unwrap();
        let mut m = DriftMonitor::new(reference, 100);
        let (c, d) = (sample(200, 9, 0.0, 0.25), sample(200, 10, 0.0, 0.2));
        for i in 0..49 {
            m.observe(c[i], Some(d[i]));
        }
        assert!(m.report().is_none());
        for i in 49..200 {
            m.observe(c[i], Some(d[i]));
        }
        let r = m.report().unwrap();
        assert_eq!(r.frames, 100);
        assert!(!r.drifting, "{r:?}");
        // Darker frames: less sure, farther from every stored example.
        let (c, d) = (sample(100, 11, -0.3, 0.25), sample(100, 12, 0.3, 0.2));
        for i in 0..100 {
            m.observe(c[i], Some(d[i]));
        }
        let r = m.report().unwrap();
        assert!(r.drifting, "{r:?}");
        assert!(r.distance_ks.unwrap() > r.threshold, "{r:?}");
    }

    #[test]
    fn a_crafted_reference_is_refused() {
        let mut r = DriftReference::new(&[0.1, 0.5, 0.9], &[0.2, 0.3]);
        r.validate().unwrap();
        r.confidence = vec![0.9, 0.1];
        assert!(r.validate().is_err());
        r.confidence = vec![f32::NAN];
        assert!(r.validate().is_err());
        r.confidence = vec![0.5; REFERENCE_POINTS + 1];
        assert!(r.validate().is_err());
    }
}
