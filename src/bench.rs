//! `glance bench`: per-stage latency percentiles and frames per second of one classifier on a
//! fixed set of encoded frames, the figure users time their board with. Frames are classified
//! one after another on the calling thread, as `glance run` does with decode-ahead off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pipeline::Classifier;
use crate::source::{Frame, FrameData};

/// The stages every prediction times, in the order of [`Report::stages`].
pub const STAGES: [&str; 5] = ["decode", "preprocess", "backbone", "head", "total"];

/// Where a frame is, for the instruction-count marks of scripts/bench/arm.sh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mark {
    /// `bench` starts loading the classifier.
    LoadStart = 1,
    /// The classifier is loaded (backbone parsed, optimised and planned).
    Loaded = 2,
    /// A frame is handed to the classifier.
    FrameStart = 3,
    /// Its image is decoded.
    Decoded = 4,
    /// Its input tensor (or raw pixels) is ready.
    Prepared = 5,
    /// The backbone has run.
    Backbone = 6,
    /// Its decision is made (head, store, thresholds).
    FrameEnd = 7,
}

static MARKS: AtomicBool = AtomicBool::new(false);

/// Turns the marks on when `GLANCE_INSN_MARKS=1` (`bench` calls this; nothing else does).
pub fn enable_marks_from_env() {
    if std::env::var_os("GLANCE_INSN_MARKS").is_some_and(|v| v == "1") {
        MARKS.store(true, Ordering::Relaxed);
    }
}

/// Marks a stage boundary for an instruction-counting emulator: `write(-1, NULL, 0x61a9ce00 |
/// stage)`, a system call that fails at once (bad descriptor) and that qemu's plugin
/// (scripts/bench/arm/insn-count.c) sees with its arguments. Off (one relaxed load) unless
/// [`enable_marks_from_env`] turned it on; stage timings are untouched either way.
#[inline]
#[allow(unsafe_code)]
pub fn mark(stage: Mark) {
    if MARKS.load(Ordering::Relaxed) {
        // SAFETY: write(2) on descriptor -1 returns EBADF without reading the buffer.
        unsafe {
            libc::write(-1, std::ptr::null(), 0x61a9_ce00 | stage as usize);
        }
    }
}

/// One stage's latency percentiles over the timed frames, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    /// The percentiles of `values`.
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self {
            p50: percentile(&values, 50.0),
            p90: percentile(&values, 90.0),
            p99: percentile(&values, 99.0),
        }
    }
}

/// What a bench run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Timed frames (warm-up excluded).
    pub frames: usize,
    /// Distinct frames they were drawn from, in turn.
    pub distinct_frames: usize,
    /// Timed frames over the wall time they took.
    pub frames_per_second: f64,
    /// The engine that ran the backbone, or that there was none (a raw-pixel bundle).
    pub engine: String,
    /// Per stage, in the order of [`STAGES`].
    pub stages: [Percentiles; 5],
    /// From a frame's capture (here: when it is handed to the classifier) to its decision, as
    /// `glance run` reports it per decision (`latency_ms`). Frames are classified one after
    /// another here, so it is the total plus the hand-over; a live run adds the time a frame
    /// waits for the classifier.
    pub latency: Percentiles,
}

impl Report {
    /// The report as one JSON object (`glance bench --format json`); `threads` is what the
    /// backbone was given.
    pub fn to_json(&self, threads: usize) -> serde_json::Value {
        let stages: serde_json::Map<String, serde_json::Value> = STAGES
            .iter()
            .zip(&self.stages)
            .map(|(n, p)| {
                let v = serde_json::json!({"p50_ms": p.p50, "p90_ms": p.p90, "p99_ms": p.p99});
                (n.to_string(), v)
            })
            .collect();
        serde_json::json!({
            "frames": self.frames,
            "distinct_frames": self.distinct_frames,
            "frames_per_second": self.frames_per_second,
            "build_target": crate::BUILD_TARGET,
            "engine": self.engine,
            "threads": threads,
            "stages": stages,
            "latency": {"p50_ms": self.latency.p50, "p90_ms": self.latency.p90,
                "p99_ms": self.latency.p99},
        })
    }

    /// The report as a table for people; `decider` names what decided ("bundle" or
    /// "ImageNet head").
    pub fn write_text(
        &self,
        out: &mut impl std::io::Write,
        decider: &str,
        threads: usize,
    ) -> std::io::Result<()> {
        writeln!(
            out,
            "{} frames ({} distinct), {decider} ({}), {}, {threads} thread(s)",
            self.frames,
            self.distinct_frames,
            crate::BUILD_TARGET,
            self.engine,
        )?;
        writeln!(
            out,
            "{:<11} {:>9} {:>9} {:>9}",
            "stage", "p50 ms", "p90 ms", "p99 ms"
        )?;
        for (n, p) in STAGES.iter().zip(&self.stages) {
            writeln!(out, "{n:<11} {:>9.2} {:>9.2} {:>9.2}", p.p50, p.p90, p.p99)?;
        }
        let l = &self.latency;
        writeln!(
            out,
            "{:<11} {:>9.2} {:>9.2} {:>9.2}  (capture to decision)",
            "latency", l.p50, l.p90, l.p99
        )?;
        writeln!(out, "{:.1} frames/s", self.frames_per_second)
    }
}

/// The nearest-rank percentile `p` (0–100) of sorted values; 0 for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Eight distinct 640×480 JPEG frames drawn in memory (gradients, a moving disc, noise), so
/// that `bench` runs on a board with no files.
pub fn synthetic_frames() -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for k in 0..8u32 {
        let img = image::RgbImage::from_fn(640, 480, |x, y| {
            let (cx, cy) = (120 + 50 * k, 240);
            let d2 = (x as i64 - cx as i64).pow(2) + (y as i64 - cy as i64).pow(2);
            let noise =
                ((x.wrapping_mul(7919) ^ y.wrapping_mul(104_729) ^ k.wrapping_mul(31)) % 32) as u8;
            if d2 < 90 * 90 {
                image::Rgb([220, 40 + 20 * k as u8, 30])
            } else {
                image::Rgb([
                    (x * 255 / 640) as u8 / 2 + noise,
                    (y * 255 / 480) as u8 / 2 + noise,
                    (64 + 16 * k) as u8,
                ])
            }
        });
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
            .encode_image(&img)
            .map_err(|e| Error::inference_from("cannot encode a synthetic frame", e))?;
        out.push((format!("synthetic#{k}"), bytes));
    }
    Ok(out)
}

/// Classifies `warmup + count` frames, taking `frames` in turn, and times the last `count`.
/// An error names the frame that could not be classified.
pub fn run(
    classifier: &Classifier,
    frames: &[(String, Vec<u8>)],
    warmup: usize,
    count: usize,
) -> Result<Report> {
    if frames.is_empty() || count == 0 {
        return Err(Error::InvalidSetting(
            "nothing to time: give images (or none for synthetic frames) and --frames > 0".into(),
        ));
    }
    let mut stages: [Vec<f64>; 5] = Default::default();
    let mut latency = Vec::with_capacity(count);
    let mut wall = Duration::ZERO;
    for i in 0..warmup + count {
        let (name, bytes) = &frames[i % frames.len()];
        let frame = Frame::now(FrameData::Encoded(bytes.clone()), name.clone(), None);
        let t = Instant::now();
        mark(Mark::FrameStart);
        let p = classifier.classify_frame(&frame)?;
        mark(Mark::FrameEnd);
        let took = t.elapsed();
        if i >= warmup {
            wall += took;
            latency.push(frame.captured_at.elapsed().as_secs_f64() * 1e3);
            let tm = &p.timing_ms;
            for (v, x) in
                stages
                    .iter_mut()
                    .zip([tm.decode, tm.preprocess, tm.backbone, tm.head, tm.total])
            {
                v.push(x);
            }
        }
    }
    let stages = stages.map(Percentiles::of);
    let latency = Percentiles::of(latency);
    Ok(Report {
        frames: count,
        distinct_frames: frames.len(),
        frames_per_second: count as f64 / wall.as_secs_f64().max(1e-9),
        engine: classifier
            .backbone()
            .map_or_else(|| "none (raw pixels)".to_owned(), |b| b.engine()),
        stages,
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 90.0), 91.0);
        assert_eq!(percentile(&v, 99.0), 100.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn synthetic_frames_are_distinct_decodable_jpegs() {
        let frames = synthetic_frames().unwrap();
        assert_eq!(frames.len(), 8);
        for (name, bytes) in &frames {
            let img = image::load_from_memory(bytes).unwrap();
            assert_eq!((img.width(), img.height()), (640, 480), "{name}");
        }
        assert_ne!(frames[0].1, frames[1].1);
    }
}
