//! `/metrics` in Prometheus's text exposition format (version 0.0.4): counters of frames,
//! drops, errors and decisions per label, a latency histogram per stage, gauges of the store,
//! the outputs' drops and uptime.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::encode::StatusInfo;
use crate::pipeline::Timing;

/// Upper bounds of the stage latency buckets, in seconds (a Pi 4 frame is ~0.1 s; a stage of
/// a fast host ~1 ms).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

const STAGES: [&str; 5] = ["decode", "preprocess", "backbone", "head", "total"];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    n: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (c, &le) in self.counts.iter_mut().zip(&BUCKETS) {
            if seconds <= le {
                *c += 1;
            }
        }
        self.sum += seconds;
        self.n += 1;
    }
}

/// What the run loop counted for `/metrics`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    decisions: BTreeMap<String, u64>,
    stages: [Histogram; STAGES.len()],
}

impl Metrics {
    /// One decided frame.
    pub(crate) fn decided(&mut self, label: &str, t: &Timing) {
        match self.decisions.get_mut(label) {
            Some(n) => *n += 1,
            None => {
                self.decisions.insert(label.to_string(), 1);
            }
        }
        let ms = [t.decode, t.preprocess, t.backbone, t.head, t.total];
        for (h, v) in self.stages.iter_mut().zip(ms) {
            h.observe(v / 1000.0);
        }
    }

    /// The exposition text, with the status report's counters.
    pub(crate) fn render(&self, s: Option<&StatusInfo>, mqtt_dropped: Option<u64>) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v.to_string())];
        if let Some(s) = s {
            let gauges = [
                (
                    "glance_frames_total",
                    "counter",
                    "Frames decided.",
                    s.frames,
                ),
                (
                    "glance_frames_dropped_total",
                    "counter",
                    "Frames the source dropped (newest frame wins).",
                    s.dropped,
                ),
                (
                    "glance_frame_errors_total",
                    "counter",
                    "Frames that could not be decoded or classified.",
                    s.errors,
                ),
                (
                    "glance_store_examples",
                    "gauge",
                    "Examples in the on-device store.",
                    s.store_len,
                ),
                (
                    "glance_store_capacity",
                    "gauge",
                    "Capacity of the on-device store.",
                    s.store_capacity,
                ),
                (
                    "glance_sink_dropped_total",
                    "counter",
                    "Messages the main output dropped (serial peer slow or away).",
                    s.sink_dropped,
                ),
                (
                    "glance_uptime_seconds",
                    "gauge",
                    "Seconds since start.",
                    s.uptime_s,
                ),
                (
                    "glance_healthy",
                    "gauge",
                    "1 when no problem is reported.",
                    u64::from(s.healthy),
                ),
            ];
            for (name, kind, help, v) in gauges {
                metric(name, kind, help, &one(v));
            }
            if let Some(d) = &s.drift {
                let mut ks = vec![(
                    "{signal=\"confidence\"}".to_string(),
                    d.confidence_ks.to_string(),
                )];
                if let Some(v) = d.distance_ks {
                    ks.push(("{signal=\"distance\"}".to_string(), v.to_string()));
                }
                metric(
                    "glance_drift_ks",
                    "gauge",
                    "Kolmogorov-Smirnov statistic of the latest frames against the bundle's \
                     held-out images.",
                    &ks,
                );
                metric(
                    "glance_drift_threshold",
                    "gauge",
                    "The statistic above which the scene counts as drifted.",
                    &[(String::new(), d.threshold.to_string())],
                );
                metric(
                    "glance_drifting",
                    "gauge",
                    "1 while the scene counts as drifted.",
                    &one(u64::from(d.drifting)),
                );
                metric(
                    "glance_drift_frames",
                    "gauge",
                    "Frames in the drift window.",
                    &one(d.frames as u64),
                );
            }
            if let Some(c) = &s.capture {
                let outcomes: Vec<(String, String)> = [
                    ("saved", c.saved),
                    ("rate_limited", c.rate_limited),
                    ("busy", c.busy),
                    ("error", c.errors),
                ]
                .iter()
                .map(|(k, v)| (format!("{{outcome=\"{k}\"}}"), v.to_string()))
                .collect();
                metric(
                    "glance_captures_total",
                    "counter",
                    "Unsure frames offered to --capture, by what became of them.",
                    &outcomes,
                );
                metric(
                    "glance_captures_removed_total",
                    "counter",
                    "Captures removed to keep the folder under --capture-max-mb.",
                    &one(c.removed),
                );
                metric(
                    "glance_capture_files",
                    "gauge",
                    "Captures in the --capture folder.",
                    &one(c.files),
                );
                metric(
                    "glance_capture_bytes",
                    "gauge",
                    "Bytes of the captures in the --capture folder.",
                    &one(c.bytes),
                );
            }
        }
        if let Some(n) = mqtt_dropped {
            metric(
                "glance_mqtt_dropped_total",
                "counter",
                "Decisions and stats not sent to the MQTT broker (away or queue full).",
                &one(n),
            );
        }
        let decisions: Vec<(String, String)> = self
            .decisions
            .iter()
            .map(|(l, n)| (format!("{{label=\"{}\"}}", escape(l)), n.to_string()))
            .collect();
        metric(
            "glance_decisions_total",
            "counter",
            "Decided frames per label (after smoothing; unknown included).",
            &decisions,
        );
        let mut samples = Vec::new();
        for (stage, h) in STAGES.iter().zip(&self.stages) {
            for (le, c) in BUCKETS.iter().zip(h.counts) {
                samples.push((
                    format!("_bucket{{stage=\"{stage}\",le=\"{le}\"}}"),
                    c.to_string(),
                ));
            }
            samples.push((
                format!("_bucket{{stage=\"{stage}\",le=\"+Inf\"}}"),
                h.n.to_string(),
            ));
            samples.push((format!("_sum{{stage=\"{stage}\"}}"), format!("{}", h.sum)));
            samples.push((format!("_count{{stage=\"{stage}\"}}"), h.n.to_string()));
        }
        metric(
            "glance_stage_seconds",
            "histogram",
            "Time per frame in each stage (total: the whole frame).",
            &samples,
        );
        out
    }
}

/// A label value as the exposition format wants it: `\`, `"` and newlines escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let mut m = Metrics::default();
        let t = Timing {
            decode: 0.7,
            preprocess: 0.2,
            backbone: 12.0,
            head: 0.01,
            total: 13.0,
        };
        m.decided("a \"b\"", &t);
        m.decided("a \"b\"", &t);
        let text = m.render(None, Some(3));
        assert!(
            text.contains("glance_decisions_total{label=\"a \\\"b\\\"\"} 2"),
            "{text}"
        );
        assert!(text.contains("glance_stage_seconds_bucket{stage=\"backbone\",le=\"0.01\"} 0"));
        assert!(text.contains("glance_stage_seconds_bucket{stage=\"backbone\",le=\"0.025\"} 2"));
        assert!(text.contains("glance_stage_seconds_bucket{stage=\"total\",le=\"+Inf\"} 2"));
        assert!(text.contains("glance_mqtt_dropped_total 3"));
    }
}
