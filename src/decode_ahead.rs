//! The decode-ahead stage between a source and the classifier: frames are decoded and
//! preprocessed either on the main thread between inferences or on a `prepare` thread while the
//! previous frame is inferred ([`Frames`]).
//!
//! [`FrameSource`] is what the stage reads: a list of files (in order, perhaps looping) or the
//! mailbox a capture thread fills ([`crate::source::live`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pipeline::{Prepared, Preparer};
use crate::source::latest::{Latest, Taken};
use crate::source::stream::DropPolicy;
use crate::source::{Frame, FrameData};
use crate::view::Views;

/// What a source (or the stage preparing its frames) has next: `F` is a captured [`Frame`] or,
/// after preparation, a [`ReadyFrame`].
pub(crate) enum Next<F> {
    /// The next frame.
    Frame(F),
    /// A frame that could not be read (a file missing or unreadable), and why.
    Failed(String),
    /// Nothing within the wait.
    Idle,
    /// The source ended.
    End,
}

impl<F> Next<F> {
    fn map<G>(self, f: impl FnOnce(F) -> G) -> Next<G> {
        match self {
            Self::Frame(frame) => Next::Frame(f(frame)),
            Self::Failed(why) => Next::Failed(why),
            Self::Idle => Next::Idle,
            Self::End => Next::End,
        }
    }
}

/// Where the stage reads frames: a list of files, or a live source's mailbox.
pub(crate) enum FrameSource {
    Files {
        items: Vec<std::result::Result<PathBuf, (PathBuf, std::io::Error)>>,
        next: usize,
        looping: bool,
    },
    Live {
        mailbox: Arc<Latest<Frame>>,
    },
}

impl FrameSource {
    /// The files, folders or glob `spec` names, in order; from the start again after the last
    /// when `looping` (and at least one of them could be listed).
    pub(crate) fn files(spec: &str, looping: bool) -> Self {
        Self::Files {
            items: crate::source::expand_source(spec),
            next: 0,
            looping,
        }
    }

    /// The frames a capture thread puts in `mailbox`.
    pub(crate) fn live(mailbox: Arc<Latest<Frame>>) -> Self {
        Self::Live { mailbox }
    }

    fn next(&mut self, wait: Duration) -> Next<Frame> {
        match self {
            Self::Files {
                items,
                next,
                looping,
            } => {
                if *next >= items.len() {
                    if *looping && items.iter().any(|i| i.is_ok()) {
                        *next = 0;
                    } else {
                        return Next::End;
                    }
                }
                let item = &items[*next];
                *next += 1;
                match item {
                    Ok(path) => match std::fs::read(path) {
                        Ok(bytes) => Next::Frame(Frame::now(
                            FrameData::Encoded(bytes),
                            path.display().to_string(),
                            Some(path.clone()),
                        )),
                        Err(e) => Next::Failed(format!("{}: {e}", path.display())),
                    },
                    Err((path, e)) => Next::Failed(format!("{}: {e}", path.display())),
                }
            }
            Self::Live { mailbox } => match mailbox.take(wait) {
                Taken::Value(f) => Next::Frame(f),
                Taken::Timeout => Next::Idle,
                Taken::Closed => Next::End,
            },
        }
    }

    fn dropped(&self) -> u64 {
        match self {
            Self::Files { .. } => 0,
            Self::Live { mailbox } => mailbox.dropped(),
        }
    }
}

/// A frame decoded and preprocessed for the classifier (or why it could not be).
pub(crate) struct ReadyFrame {
    /// The frame's name (file path, or `SRC#N`).
    pub(crate) name: String,
    /// Its capture time, milliseconds since the Unix epoch.
    pub(crate) time_ms: u64,
    /// Its capture time on the monotonic clock (for the capture-to-decision latency).
    pub(crate) captured_at: std::time::Instant,
    /// The classifier's input, or why the frame could not be decoded.
    pub(crate) prepared: Result<Prepared>,
    /// Its picture for people, when there is one ([`crate::view`]).
    pub(crate) picture: Option<Arc<Vec<u8>>>,
    /// Its decoded image, when kept ([`Views::kept`]) and the frame is not a JPEG.
    pub(crate) image: Option<Arc<image::RgbImage>>,
}

impl ReadyFrame {
    fn of(frame: Frame, preparer: &Preparer, views: &Views) -> Self {
        // A JPEG frame is its own picture; any other is encoded from the image decoded for the
        // classifier, never decoded twice.
        let jpeg = Views::is_jpeg(&frame.data);
        let mut encoded = None;
        let mut kept = None;
        let prepared = preparer.prepare_frame_seen(&frame, |image| {
            if !jpeg {
                encoded = views.encoded(image);
                kept = views.kept(image);
            }
        });
        let time_ms = frame.time_ms();
        let captured_at = frame.captured_at;
        let prepared_ok = prepared.is_ok();
        let picture = if prepared_ok {
            Views::picture(frame.data, encoded)
        } else {
            None
        };
        Self {
            prepared,
            time_ms,
            captured_at,
            name: frame.name,
            picture,
            image: kept.filter(|_| prepared_ok),
        }
    }
}

/// Frames for the main loop, prepared on the main thread between inferences (`Inline`) or
/// ahead, on a `prepare` thread, while the previous frame is inferred: the backbone then
/// waits for no decoding (throughput: one frame per max(decode + preprocess, backbone + head)
/// instead of their sum).
///
/// Ahead, files keep their order and none is skipped (a queue of one); a live source keeps
/// its newest-frame-wins rule at both hand-overs: a prepared frame not yet taken is replaced
/// by a newer one and counted as dropped, so a frame is never older than one capture interval
/// plus its own preparation when inference starts. The cost is decoding frames that are then
/// dropped, on a core the backbone is not using. A stream told to drop nothing (a recording,
/// `--drop never`) waits at both hand-overs instead.
pub(crate) enum Frames {
    Inline {
        source: FrameSource,
        preparer: Preparer,
        views: Views,
    },
    FilesAhead {
        rx: Receiver<Next<ReadyFrame>>,
        worker: JoinHandle<()>,
    },
    LiveAhead {
        raw: Arc<Latest<Frame>>,
        ready: Arc<Latest<ReadyFrame>>,
        worker: JoinHandle<()>,
    },
}

/// Closes the prepared-frame mailbox when the `prepare` thread ends, by returning or by a
/// panic, so that the main loop sees the end of the stream instead of waiting forever.
struct CloseOnDrop(Arc<Latest<ReadyFrame>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Frames {
    /// Starts the stage on `source`: ahead (on a `prepare` thread that ends with the source or
    /// when `stop` is set) or inline.
    pub(crate) fn start(
        mut source: FrameSource,
        preparer: Preparer,
        views: Views,
        ahead: bool,
        policy: DropPolicy,
        stop: Arc<AtomicBool>,
    ) -> Result<Self> {
        if !ahead {
            return Ok(Self::Inline {
                source,
                preparer,
                views,
            });
        }
        let spawn_err = |e| Error::Io {
            path: "<prepare thread>".into(),
            source: e,
        };
        let thread = std::thread::Builder::new().name("prepare".into());
        match &source {
            FrameSource::Files { .. } => {
                let (tx, rx) = mpsc::sync_channel::<Next<ReadyFrame>>(1);
                let worker = thread
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            let step = match source.next(Duration::from_millis(100)) {
                                Next::Idle => continue,
                                Next::End => break,
                                step => step.map(|frame| ReadyFrame::of(frame, &preparer, &views)),
                            };
                            if tx.send(step).is_err() {
                                break; // the main loop has finished
                            }
                        }
                    })
                    .map_err(spawn_err)?;
                Ok(Self::FilesAhead { rx, worker })
            }
            FrameSource::Live { mailbox } => {
                let raw = Arc::clone(mailbox);
                let ready = Arc::new(Latest::new());
                let out = CloseOnDrop(Arc::clone(&ready));
                let worker = thread
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            // Wakes twice a second with no frame, to see `stop`.
                            match source.next(Duration::from_millis(500)) {
                                Next::Frame(frame) => {
                                    let ready = ReadyFrame::of(frame, &preparer, &views);
                                    match policy {
                                        DropPolicy::Newest => out.0.put(ready),
                                        DropPolicy::Never => {
                                            let stopping = || stop.load(Ordering::Relaxed);
                                            if out.0.put_waiting(ready, stopping).is_some() {
                                                break;
                                            }
                                        }
                                    }
                                }
                                Next::Failed(why) => log::error!("{why}"),
                                Next::Idle => {}
                                Next::End => break,
                            }
                        }
                    })
                    .map_err(spawn_err)?;
                Ok(Self::LiveAhead { raw, ready, worker })
            }
        }
    }

    /// The next prepared frame, waiting up to `wait`.
    pub(crate) fn next(&mut self, wait: Duration) -> Next<ReadyFrame> {
        match self {
            Self::Inline {
                source,
                preparer,
                views,
            } => source
                .next(wait)
                .map(|frame| ReadyFrame::of(frame, preparer, views)),
            Self::FilesAhead { rx, .. } => match rx.recv_timeout(wait) {
                Ok(step) => step,
                Err(mpsc::RecvTimeoutError::Timeout) => Next::Idle,
                Err(mpsc::RecvTimeoutError::Disconnected) => Next::End,
            },
            Self::LiveAhead { ready, .. } => match ready.take(wait) {
                Taken::Value(frame) => Next::Frame(frame),
                Taken::Timeout => Next::Idle,
                Taken::Closed => Next::End,
            },
        }
    }

    /// Frames the source (and, ahead, the hand-over to the main loop) replaced unseen.
    pub(crate) fn dropped(&self) -> u64 {
        match self {
            Self::Inline { source, .. } => source.dropped(),
            Self::FilesAhead { .. } => 0,
            Self::LiveAhead { raw, ready, .. } => raw.dropped() + ready.dropped(),
        }
    }

    /// An error if the `prepare` thread died of a panic (its stream then ended early).
    pub(crate) fn into_outcome(self) -> Result<()> {
        let worker = match self {
            Self::Inline { .. } => return Ok(()),
            Self::FilesAhead { worker, .. } | Self::LiveAhead { worker, .. } => worker,
        };
        if worker.is_finished() && worker.join().is_err() {
            return Err(Error::inference(
                "the thread preparing frames panicked; the run stopped",
            ));
        }
        Ok(())
    }
}
