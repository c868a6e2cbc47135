//! `glance run --capture DIR`: keeps the frames the model was unsure of (unknown, hesitant
//! between two labels, the head and the nearest stored example disagreeing, or the decision
//! flipping), each as a JPEG with a JSON sidecar saying why, for labelling on the host
//! (`glance-host label DIR`) and refitting.
//!
//! The run loop only decides whether a frame is kept and hands it on; a thread of its own
//! encodes (a frame that is not already a JPEG), writes and prunes, so a slow SD card never
//! stalls the loop. When that thread is behind, frames are skipped and counted, not queued.
//! Captures are rate-limited per minute, and the folder is capped in bytes: the oldest
//! captures go first. Each file is written atomically (a temporary file, then a rename), the
//! JPEG before its sidecar, so a sidecar always has its picture; a crash leaves at most an
//! orphan picture or a temporary file, which the next start removes.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::Serialize;

use crate::decision::Decided;
use crate::error::{Error, Result};

/// Frames waiting for the writer at most; more are skipped (`busy`) when the source is live.
const QUEUE: usize = 4;
/// JPEG quality of captures encoded from frames that were not JPEG: kept for labelling and
/// refitting, so better than the live view's.
const QUALITY: u8 = 90;
/// The name part that marks a temporary file (see [`crate::fsutil::write_atomic`]).
const TEMP_MARK: &str = ".tmp-";

/// `--capture` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureConfig {
    /// The folder (created when missing).
    pub dir: PathBuf,
    /// A frame is hesitant when its best two head scores are closer than this.
    pub margin: f32,
    /// Most captures in any minute.
    pub per_minute: u32,
    /// Most bytes in the folder (pictures and sidecars); the oldest go first.
    pub max_bytes: u64,
}

impl CaptureConfig {
    /// Refuses settings that would keep nothing or not bound the folder.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.margin) {
            return Err(Error::InvalidSetting(format!(
                "--capture-margin {} must be in [0, 1]",
                self.margin
            )));
        }
        if self.per_minute == 0 {
            return Err(Error::InvalidSetting(
                "--capture-per-minute must be at least 1".into(),
            ));
        }
        if self.max_bytes < 1 << 20 {
            return Err(Error::InvalidSetting(format!(
                "--capture-max-mb: {} bytes is less than 1 MB, too little for a capture folder",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

/// Why a frame was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Reason {
    /// The decision is "unknown".
    Unknown,
    /// The best two head scores are closer than the margin.
    Hesitant,
    /// The head and the nearest stored example name different labels.
    Disagree,
    /// The decision differs from the previous frame's.
    Flipped,
}

/// What the capture has done since start, for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct CaptureCounts {
    /// Frames written (picture and sidecar).
    pub saved: u64,
    /// Frames that qualified but were over the per-minute limit.
    pub rate_limited: u64,
    /// Frames that qualified but found the writer behind.
    pub busy: u64,
    /// Frames that could not be written (disk full, folder gone); the run goes on.
    pub errors: u64,
    /// Captures removed to keep the folder under its cap.
    pub removed: u64,
    /// Captures in the folder now.
    pub files: u64,
    /// Their bytes (pictures and sidecars).
    pub bytes: u64,
}

/// The picture of a kept frame.
pub(crate) enum Picture {
    /// The frame's own JPEG (a camera's MJPEG, a JPEG file), written as it is.
    Jpeg(Arc<Vec<u8>>),
    /// A decoded frame, encoded by the writer.
    Image(Arc<RgbImage>),
}

struct Job {
    stem: String,
    picture: Picture,
    sidecar: Vec<u8>,
}

/// The loop's side of the capture.
pub(crate) struct Capture {
    config: CaptureConfig,
    tx: Option<SyncSender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    recent: VecDeque<Instant>,
    counts: Arc<Mutex<CaptureCounts>>,
    rate_limited: u64,
    busy: u64,
    /// The source is read at glance's pace (files, a recording): the loop waits for the writer
    /// rather than skip a frame, since waiting costs nothing but time there and a skipped
    /// capture is lost for good. A live source never waits: it would stall the frame loop.
    wait: bool,
}

impl Capture {
    /// Creates the folder, takes stock of the captures already in it (removing what an
    /// interrupted write left), and starts the writer. `live`: the source delivers at its own
    /// pace, so a writer that is behind makes frames skipped rather than waited for.
    pub(crate) fn start(config: CaptureConfig, live: bool) -> Result<Self> {
        config.validate()?;
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let folder = Folder::scan(&dir, config.max_bytes).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let counts = Arc::new(Mutex::new(CaptureCounts::default()));
        folder.publish(&counts, 0, 0, 0);
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let shared = Arc::clone(&counts);
        let writer = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || writer(folder, rx, shared))
            .map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
        log::info!(
            "capturing unsure frames into {} (at most {} a minute, {:.0} MB)",
            dir.display(),
            config.per_minute,
            config.max_bytes as f64 / 1e6
        );
        Ok(Self {
            config,
            tx: Some(tx),
            writer: Some(writer),
            recent: VecDeque::new(),
            counts,
            rate_limited: 0,
            busy: 0,
            wait: !live,
        })
    }

    /// Why `d` is worth keeping (empty: it is not). `previous` is the previous frame's
    /// decision label.
    pub(crate) fn reasons(&self, d: &Decided, previous: Option<&str>) -> Vec<Reason> {
        let mut why = Vec::new();
        if d.unknown {
            why.push(Reason::Unknown);
        }
        let top = &d.prediction.top_k;
        if top.len() >= 2 && top[0].score - top[1].score < self.config.margin {
            why.push(Reason::Hesitant);
        }
        if d.disagree {
            why.push(Reason::Disagree);
        }
        if previous.is_some_and(|p| p != d.prediction.label) {
            why.push(Reason::Flipped);
        }
        why
    }

    /// Keeps frame `d` if it qualifies and the minute's allowance and the writer allow.
    /// `picture` is called only for a frame that will be written.
    pub(crate) fn offer(
        &mut self,
        d: &Decided,
        previous: Option<&str>,
        picture: impl FnOnce() -> Option<Picture>,
    ) {
        let reasons = self.reasons(d, previous);
        if reasons.is_empty() {
            return;
        }
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.config.per_minute as usize {
            self.rate_limited += 1;
            return;
        }
        let Some(picture) = picture() else {
            // No picture of a frame that was not prepared: nothing to label.
            return;
        };
        let sidecar = sidecar(d, previous, &reasons);
        let job = Job {
            stem: format!("{}-{:08}", d.time_ms, d.seq),
            picture,
            sidecar,
        };
        let sent = self.tx.as_ref().map(|tx| {
            if self.wait {
                tx.send(job).map_err(|e| TrySendError::Disconnected(e.0))
            } else {
                tx.try_send(job)
            }
        });
        match sent {
            Some(Ok(())) => self.recent.push_back(now),
            Some(Err(TrySendError::Full(_))) => self.busy += 1,
            Some(Err(TrySendError::Disconnected(_))) | None => {
                lock(&self.counts).errors += 1;
            }
        }
    }

    /// The counts so far.
    pub(crate) fn counts(&self) -> CaptureCounts {
        let mut c = lock(&self.counts).clone();
        c.rate_limited = self.rate_limited;
        c.busy = self.busy;
        c
    }

    /// Writes what is queued and stops the writer.
    pub(crate) fn finish(&mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

fn lock(m: &Mutex<CaptureCounts>) -> std::sync::MutexGuard<'_, CaptureCounts> {
    // The counts stay meaningful whatever a panicking holder was doing.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The sidecar: the decision as `glance run` writes it (label, score, top-k, nearest stored
/// example, rejection, who decided), and under `capture` why the frame was kept.
fn sidecar(d: &Decided, previous: Option<&str>, reasons: &[Reason]) -> Vec<u8> {
    let top = &d.prediction.top_k;
    let margin = (top.len() >= 2).then(|| top[0].score - top[1].score);
    let mut v = serde_json::to_value(d).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "capture".into(),
            serde_json::json!({
                "reasons": reasons,
                "previous_label": previous,
                "margin": margin,
            }),
        );
    }
    let mut bytes = serde_json::to_vec_pretty(&v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The captures in the folder, oldest first, and their bytes.
struct Folder {
    dir: PathBuf,
    max_bytes: u64,
    /// (stem, bytes of picture + sidecar), in name order: names start with the capture time.
    kept: VecDeque<(String, u64)>,
    bytes: u64,
}

impl Folder {
    /// Takes stock of `dir`: complete captures (a `.jpg` with its `.json`) are kept; temporary
    /// files and half captures (a crash between the two renames, or between the two removals
    /// of a prune) are removed.
    fn scan(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let mut jpgs = std::collections::BTreeMap::new();
        let mut jsons = std::collections::BTreeMap::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            if name.starts_with('.') && name.contains(TEMP_MARK) {
                let _ = std::fs::remove_file(e.path());
            } else if let Some(stem) = name.strip_suffix(".jpg").filter(|s| is_capture(s)) {
                jpgs.insert(stem.to_owned(), len);
            } else if let Some(stem) = name.strip_suffix(".json").filter(|s| is_capture(s)) {
                jsons.insert(stem.to_owned(), len);
            }
        }
        let mut kept = VecDeque::new();
        let mut bytes = 0;
        for (stem, len) in &jpgs {
            match jsons.get(stem) {
                Some(j) => {
                    kept.push_back((stem.clone(), len + j));
                    bytes += len + j;
                }
                None => {
                    let _ = std::fs::remove_file(dir.join(format!("{stem}.jpg")));
                }
            }
        }
        for stem in jsons.keys().filter(|s| !jpgs.contains_key(*s)) {
            let _ = std::fs::remove_file(dir.join(format!("{stem}.json")));
        }
        let mut folder = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            kept,
            bytes,
        };
        // A smaller cap than last time applies at once.
        folder.prune(0);
        Ok(folder)
    }

    /// Removes the oldest captures until `incoming` more bytes fit; returns how many went.
    fn prune(&mut self, incoming: u64) -> u64 {
        let mut removed = 0;
        while self.bytes + incoming > self.max_bytes {
            let Some((stem, len)) = self.kept.pop_front() else {
                break;
            };
            // The sidecar first: a crash between the two leaves an orphan picture, which
            // `scan` removes, never a sidecar without its picture.
            let _ = std::fs::remove_file(self.dir.join(format!("{stem}.json")));
            let _ = std::fs::remove_file(self.dir.join(format!("{stem}.jpg")));
            self.bytes -= len;
            removed += 1;
        }
        removed
    }

    fn publish(&self, counts: &Mutex<CaptureCounts>, saved: u64, errors: u64, removed: u64) {
        let mut c = lock(counts);
        c.saved += saved;
        c.errors += errors;
        c.removed += removed;
        c.files = self.kept.len() as u64;
        c.bytes = self.bytes;
    }
}

/// A capture's stem: `<ms since the epoch>-<frame number>`, both digits.
pub(crate) fn is_capture(stem: &str) -> bool {
    stem.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// Lowers the calling thread to the least CPU priority (nice 19): when the cores are busy, the
/// frame loop and the camera go first and the writer falls behind, which the bounded queue turns
/// into skipped captures (`busy`), never into a slower loop. At normal priority, encoding every
/// decoded frame measurably slowed the loop of a saturated 2-core machine (BENCHMARKS.md,
/// "Capture").
#[allow(unsafe_code)] // two system calls on the calling thread
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: both system calls take plain integers and touch no memory of ours. On Linux
        // the nice value is per thread and PRIO_PROCESS with a thread id sets only that
        // thread's (setpriority(2), NOTES). The raw gettid system call, not glibc's wrapper,
        // which needs glibc 2.30 and older board images have 2.28.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid);
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
        };
        if rc != 0 {
            log::debug!(
                "capture: the writer keeps its priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn writer(mut folder: Folder, rx: mpsc::Receiver<Job>, counts: Arc<Mutex<CaptureCounts>>) {
    lower_priority();
    for job in rx {
        let jpeg = match &job.picture {
            Picture::Jpeg(b) => Some(Arc::clone(b)),
            Picture::Image(img) => {
                crate::view::encode_jpeg(img, QUALITY, "a captured frame").map(Arc::new)
            }
        };
        let Some(jpeg) = jpeg else {
            folder.publish(&counts, 0, 1, 0);
            continue;
        };
        let incoming = (jpeg.len() + job.sidecar.len()) as u64;
        if incoming > folder.max_bytes {
            log::warn!(
                "capture: a {incoming}-byte frame is larger than the whole --capture-max-mb; \
                 not kept"
            );
            folder.publish(&counts, 0, 1, 0);
            continue;
        }
        let removed = folder.prune(incoming);
        let pic = folder.dir.join(format!("{}.jpg", job.stem));
        let side = folder.dir.join(format!("{}.json", job.stem));
        let written = crate::fsutil::write_atomic(&pic, &jpeg)
            .and_then(|()| crate::fsutil::write_atomic(&side, &job.sidecar));
        match written {
            Ok(()) => {
                folder.kept.push_back((job.stem, incoming));
                folder.bytes += incoming;
                folder.publish(&counts, 1, 0, removed);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&pic);
                log::warn!("capture: {}", e.report());
                folder.publish(&counts, 0, 1, removed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::DecidedBy;
    use crate::head::Ranked;
    use crate::pipeline::{KnnResult, Prediction, Timing};

    fn decided(seq: u64, top: &[(&str, f32)], unknown: bool, disagree: bool) -> Decided {
        Decided {
            seq,
            time_ms: 1_700_000_000_000 + seq,
            latency_ms: 1.0,
            prediction: Prediction {
                source: format!("cam#{seq}"),
                label: if unknown { "unknown" } else { top[0].0 }.into(),
                score: top[0].1,
                top_k: top
                    .iter()
                    .enumerate()
                    .map(|(i, (l, s))| Ranked {
                        index: i,
                        label: (*l).into(),
                        score: *s,
                    })
                    .collect(),
                timing_ms: Timing::default(),
                knn: Some(KnnResult {
                    label: "mug".into(),
                    distance: 0.4,
                }),
                features: None,
                unknown,
                rejection: None,
            },
            unknown,
            decided_by: DecidedBy::Head,
            dropped: 0,
            disagree,
        }
    }

    /// The writer lowers itself to nice 19 (read back from /proc, as `ps -L -o ni` shows it).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_runs_at_the_least_cpu_priority() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Capture::start(config(dir.path()), true).unwrap();
        // Other tests' writers may be starting too: every one named `capture` must get there.
        let nice_of_writers = || -> Vec<i64> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| {
                    let t = t.ok()?.path();
                    let comm = std::fs::read_to_string(t.join("comm")).ok()?;
                    (comm.trim() == "capture").then_some(())?;
                    let stat = std::fs::read_to_string(t.join("stat")).ok()?;
                    // After "pid (comm) ", field 3 (state) is first and field 19 (nice) 17th.
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split(' ').nth(16)?.parse().ok()
                })
                .collect()
        };
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let nice = nice_of_writers();
            if !nice.is_empty() && nice.iter().all(|&n| n == 19) {
                break;
            }
            assert!(
                Instant::now() < until,
                "capture writers' nice values: {nice:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        c.finish();
    }

    fn config(dir: &Path) -> CaptureConfig {
        CaptureConfig {
            dir: dir.to_path_buf(),
            margin: 0.2,
            per_minute: 100,
            max_bytes: 1 << 20,
        }
    }

    fn picture() -> Option<Picture> {
        Some(Picture::Image(Arc::new(RgbImage::from_fn(
            64,
            48,
            |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 99]),
        ))))
    }

    #[test]
    fn each_reason_is_found_and_a_sure_steady_frame_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let c = Capture::start(config(dir.path()), true).unwrap();
        let sure = decided(0, &[("cat", 0.9), ("dog", 0.05)], false, false);
        assert!(c.reasons(&sure, Some("cat")).is_empty());
        assert_eq!(c.reasons(&sure, None), []);
        let unsure = decided(1, &[("cat", 0.5), ("dog", 0.4)], false, false);
        assert_eq!(c.reasons(&unsure, Some("cat")), [Reason::Hesitant]);
        let unknown = decided(2, &[("cat", 0.9), ("dog", 0.05)], true, true);
        assert_eq!(
            c.reasons(&unknown, Some("cat")),
            [Reason::Unknown, Reason::Disagree, Reason::Flipped]
        );
    }

    #[test]
    fn a_kept_frame_is_a_jpeg_and_a_sidecar_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Capture::start(config(dir.path()), true).unwrap();
        let d = decided(7, &[("cat", 0.5), ("dog", 0.45)], false, false);
        c.offer(&d, Some("dog"), picture);
        c.finish();
        let stem = format!("{}-{:08}", d.time_ms, 7);
        let jpg = std::fs::read(dir.path().join(format!("{stem}.jpg"))).unwrap();
        let img = image::load_from_memory(&jpg).unwrap();
        assert_eq!((img.width(), img.height()), (64, 48));
        let side: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(side["label"], "cat");
        assert_eq!(side["knn"]["label"], "mug");
        assert_eq!(side["top_k"][1]["label"], "dog");
        assert_eq!(
            side["capture"]["reasons"],
            serde_json::json!(["hesitant", "flipped"])
        );
        assert_eq!(side["capture"]["previous_label"], "dog");
        let counts = c.counts();
        assert_eq!((counts.saved, counts.files), (1, 1));
        let side_len = std::fs::metadata(dir.path().join(format!("{stem}.json")))
            .unwrap()
            .len();
        assert_eq!(counts.bytes, jpg.len() as u64 + side_len);
    }

    /// The counts after `n` hesitant frames offered as fast as the loop can, with an allowance of
    /// `per_minute`, from a live source or not.
    fn offer_hesitant(n: u64, per_minute: u32, live: bool) -> CaptureCounts {
        let dir = tempfile::tempdir().unwrap();
        let config = CaptureConfig {
            per_minute,
            ..config(dir.path())
        };
        let mut c = Capture::start(config, live).unwrap();
        for seq in 0..n {
            c.offer(
                &decided(seq, &[("a", 0.5), ("b", 0.5)], false, false),
                None,
                picture,
            );
        }
        c.finish();
        c.counts()
    }

    #[test]
    fn the_minutes_allowance_is_kept() {
        // A live source skips what finds the writer behind, and such a frame does not use the
        // allowance: three in all are written or skipped; only a source read at glance's pace
        // is sure to get all three written.
        let counts = offer_hesitant(10, 3, true);
        assert_eq!(counts.saved + counts.busy, 3, "{counts:?}");
        assert_eq!(counts.rate_limited, 7);
        let counts = offer_hesitant(10, 3, false);
        assert_eq!((counts.saved, counts.busy), (3, 0), "{counts:?}");
        assert_eq!(counts.rate_limited, 7);
    }

    #[test]
    fn a_source_read_at_glances_pace_waits_for_the_writer() {
        // Far more than the queue holds.
        let n = 10 * QUEUE as u64;
        let counts = offer_hesitant(n, 1000, false);
        assert_eq!((counts.saved, counts.busy, counts.errors), (n, 0, 0));
        assert_eq!(counts.files, n);
    }

    #[test]
    fn the_folder_stays_under_its_cap_oldest_first_and_a_restart_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let cap = 1 << 20;
        // Noise does not compress: each capture is about 100 KB.
        let mut seed = 1u32;
        let mut noisy = || {
            Some(Picture::Image(Arc::new(RgbImage::from_fn(
                200,
                160,
                |_, _| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let b = seed.to_le_bytes();
                    image::Rgb([b[1], b[2], b[3]])
                },
            ))))
        };
        // Not live: the loop waits for the writer, so every frame is written.
        let mut c = Capture::start(config(dir.path()), false).unwrap();
        for seq in 0..30 {
            c.offer(
                &decided(seq, &[("a", 0.5), ("b", 0.5)], false, false),
                None,
                &mut noisy,
            );
        }
        c.finish();
        let total: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= cap, "{total} bytes in a {cap}-byte folder");
        let counts = c.counts();
        assert!(counts.removed > 0, "{counts:?}");
        assert_eq!(counts.bytes, total);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // The newest are kept.
        assert!(
            names.last().unwrap().ends_with("-00000029.json"),
            "{names:?}"
        );
        // A crash's leftovers: a temporary file, a picture without its sidecar.
        std::fs::write(dir.path().join(".1-1.jpg.tmp-99"), b"x").unwrap();
        std::fs::write(dir.path().join("1-00000001.jpg"), b"x").unwrap();
        let c = Capture::start(config(dir.path()), true).unwrap();
        assert!(!dir.path().join(".1-1.jpg.tmp-99").exists());
        assert!(!dir.path().join("1-00000001.jpg").exists());
        assert_eq!(c.counts().files, counts.files);
    }

    #[test]
    fn settings_that_keep_nothing_or_bound_nothing_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            CaptureConfig {
                margin: 1.5,
                ..config(dir.path())
            },
            CaptureConfig {
                per_minute: 0,
                ..config(dir.path())
            },
            CaptureConfig {
                max_bytes: 1000,
                ..config(dir.path())
            },
        ] {
            assert!(Capture::start(bad, true).is_err());
        }
    }
}
