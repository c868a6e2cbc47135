//! Where decisions go: stdout (text or JSON lines) or a serial port (JSON lines, or framed
//! postcard messages from `glance-proto`).
//!
//! The serial port is owned by one I/O thread. The classifier hands it finished messages
//! through a bounded queue and never waits: when the queue is full (the port is slow or gone)
//! the message is dropped and counted. The thread reopens a port that goes away, with back-off,
//! and passes the commands it reads back to the run loop.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use glance_proto::frame::{self, FrameDecoder, MAX_ENCODED};
use glance_proto::{Command, Message, Reply};
use serde::Serialize;

use crate::bundle::printable;
use crate::decision::Decided;

/// Default serial speed.
pub const DEFAULT_BAUD: u32 = 115_200;

/// How messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per message for people.
    Text,
    /// One JSON object per line.
    Json,
    /// `glance-proto` frames: COBS(version ‖ postcard ‖ CRC32) ‖ 0x00.
    Postcard,
}

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// Standard output.
    Stdout,
    /// A serial device.
    Serial {
        /// The device, e.g. `/dev/ttyUSB0`.
        path: PathBuf,
        /// Its speed.
        baud: u32,
    },
}

impl FromStr for SinkSpec {
    type Err = String;

    /// `stdout` or `serial:PATH[@BAUD]`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "stdout" || s == "-" {
            return Ok(Self::Stdout);
        }
        let Some(rest) = s.strip_prefix("serial:") else {
            return Err(format!(
                "`{s}`: an output is `stdout` or `serial:PATH[@BAUD]`"
            ));
        };
        let (path, baud) = match rest.rsplit_once('@') {
            Some((p, b)) => (
                p,
                b.parse::<u32>()
                    .ok()
                    .filter(|&b| b > 0)
                    .ok_or_else(|| format!("`{b}` is not a baud rate"))?,
            ),
            None => (rest, DEFAULT_BAUD),
        };
        if path.is_empty() {
            return Err(format!("`{s}`: the serial device path is empty"));
        }
        Ok(Self::Serial {
            path: PathBuf::from(path),
            baud,
        })
    }
}

/// A health report.
#[derive(Debug, Clone, Serialize)]
pub struct StatusInfo {
    /// Seconds since start.
    pub uptime_s: u64,
    /// Frames decided.
    pub frames: u64,
    /// Frames the source dropped (newest frame wins).
    pub dropped: u64,
    /// Frames that could not be decoded or classified.
    pub errors: u64,
    /// Examples in the on-device store.
    pub store_len: u64,
    /// Its capacity.
    pub store_capacity: u64,
    /// Messages the sink had to drop (serial port slow or away).
    pub sink_dropped: u64,
    /// Serial frames or command lines that could not be decoded.
    pub bad_commands: u64,
    /// sha256 of the backbone.
    pub backbone: String,
    /// No problem below.
    pub healthy: bool,
    /// What is wrong, most urgent first, in words (camera gone, store not saved, output
    /// dropping). The postcard status frame does not carry these: its layout is fixed for
    /// boards in the field.
    pub problems: Vec<String>,
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    /// Done, with a sentence for people.
    Ok(String),
    /// Refused, and why.
    Error(String),
    /// Labels with their example counts.
    List(Vec<(String, usize)>),
}

/// `s`, cut at a character boundary to fit a fixed-capacity wire string.
fn clip<const N: usize>(s: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

fn us(ms: f64) -> u32 {
    (ms * 1000.0).clamp(0.0, u32::MAX as f64) as u32
}

fn frame_bytes(msg: &Message) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_ENCODED];
    match frame::encode(msg, &mut buf) {
        Ok(n) => {
            buf.truncate(n);
            buf
        }
        Err(e) => {
            log::error!("cannot frame a message: {e}");
            Vec::new()
        }
    }
}

/// Encodes a decision; `label_id` maps a label to its wire id.
pub fn encode_prediction(d: &Decided, format: Format, label_id: impl Fn(&str) -> u16) -> Vec<u8> {
    let p = &d.prediction;
    match format {
        Format::Json => json_line(d),
        Format::Text => {
            let mut s = format!("#{} {}: {}", d.seq, printable(&p.source), p.decision_text());
            let others: Vec<String> = p
                .top_k
                .iter()
                .filter(|r| r.label != p.label)
                .take(2)
                .map(|r| format!("{} {:.1}%", printable(&r.label), r.score * 100.0))
                .collect();
            if !others.is_empty() {
                s += &format!("  (then {})", others.join(", "));
            }
            if let Some(k) = &p.knn {
                s += &format!(
                    "  nearest example: {} at {:.3}",
                    printable(&k.label),
                    k.distance
                );
            }
            if d.dropped > 0 {
                s += &format!("  [{} dropped]", d.dropped);
            }
            s += &format!(
                "  [{:.1} ms: decode {:.1}, preprocess {:.1}, backbone {:.1}, head {:.1}]\n",
                p.timing_ms.total,
                p.timing_ms.decode,
                p.timing_ms.preprocess,
                p.timing_ms.backbone,
                p.timing_ms.head
            );
            s.into_bytes()
        }
        Format::Postcard => {
            let mut flags = 0u8;
            if d.unknown {
                flags |= glance_proto::flags::UNKNOWN;
            }
            if d.disagree {
                flags |= glance_proto::flags::HEAD_KNN_DISAGREE;
            }
            if d.dropped > 0 {
                flags |= glance_proto::flags::FRAMES_DROPPED;
            }
            let mut top_k = heapless::Vec::new();
            for r in p.top_k.iter().take(glance_proto::MAX_TOP_K) {
                let _ = top_k.push(glance_proto::Scored {
                    label_id: label_id(&r.label),
                    score: r.score,
                });
            }
            let msg = Message::Prediction(glance_proto::Prediction {
                seq: d.seq as u32,
                time_ms: d.time_ms,
                label_id: if d.unknown {
                    glance_proto::UNKNOWN_LABEL_ID
                } else {
                    label_id(&p.label)
                },
                label: clip(&p.label),
                score: p.score,
                top_k,
                knn: p.knn.as_ref().map(|k| glance_proto::KnnHit {
                    label_id: label_id(&k.label),
                    distance: k.distance,
                }),
                flags,
                timing: glance_proto::StageTiming {
                    decode_us: us(p.timing_ms.decode),
                    preprocess_us: us(p.timing_ms.preprocess),
                    backbone_us: us(p.timing_ms.backbone),
                    head_us: us(p.timing_ms.head),
                },
            });
            frame_bytes(&msg)
        }
    }
}

fn json_line(v: &impl Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec(v).unwrap_or_else(|e| {
        log::error!("cannot serialise a message: {e}");
        b"{}".to_vec()
    });
    out.push(b'\n');
    out
}

/// Encodes a status report.
pub fn encode_status(s: &StatusInfo, format: Format) -> Vec<u8> {
    match format {
        Format::Json => json_line(&serde_json::json!({ "status": s })),
        Format::Text => {
            let summary = crate::health::summary(&s.problems);
            let health = crate::bundle::printable(&summary);
            format!(
                "status: up {} s, {} frames, {} dropped, {} errors, store {}/{}, sink dropped {}, \
                 bad commands {}; {health}\n",
                s.uptime_s,
                s.frames,
                s.dropped,
                s.errors,
                s.store_len,
                s.store_capacity,
                s.sink_dropped,
                s.bad_commands
            )
            .into_bytes()
        }
        Format::Postcard => {
            let mut backbone = [0u8; 8];
            for (i, b) in backbone.iter_mut().enumerate() {
                *b = s
                    .backbone
                    .get(2 * i..2 * i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .unwrap_or(0);
            }
            let sat = |v: u64| v.min(u64::from(u32::MAX)) as u32;
            frame_bytes(&Message::Status(glance_proto::Status {
                uptime_s: sat(s.uptime_s),
                frames: sat(s.frames),
                dropped: sat(s.dropped),
                store_len: sat(s.store_len),
                store_capacity: sat(s.store_capacity),
                backbone,
            }))
        }
    }
}

/// Encodes the reply to request `id`.
pub fn encode_reply(id: Option<u16>, body: &ReplyBody, format: Format) -> Vec<u8> {
    match format {
        Format::Json => {
            let v = match body {
                ReplyBody::Ok(m) => {
                    serde_json::json!({"reply": {"id": id, "ok": true, "message": m}})
                }
                ReplyBody::Error(m) => {
                    serde_json::json!({"reply": {"id": id, "ok": false, "message": m}})
                }
                ReplyBody::List(l) => serde_json::json!({"reply": {"id": id, "ok": true,
                    "list": l.iter().map(|(k, n)| serde_json::json!({"label": k, "examples": n})).collect::<Vec<_>>()}}),
            };
            json_line(&v)
        }
        Format::Text => match body {
            ReplyBody::Ok(m) => format!("ok: {m}\n"),
            ReplyBody::Error(m) => format!("error: {m}\n"),
            ReplyBody::List(l) if l.is_empty() => "ok: the store is empty\n".into(),
            ReplyBody::List(l) => format!(
                "ok: {}\n",
                l.iter()
                    .map(|(k, n)| format!("{k} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        .into_bytes(),
        Format::Postcard => {
            let reply = match body {
                ReplyBody::Ok(_) => Reply::Ok,
                ReplyBody::Error(m) => Reply::Error(clip(m)),
                ReplyBody::List(l) => {
                    let mut v = heapless::Vec::new();
                    for (k, n) in l {
                        if v.push((clip(k), (*n).min(65535) as u16)).is_err() {
                            break;
                        }
                    }
                    Reply::List(v)
                }
            };
            frame_bytes(&Message::Reply {
                id: id.unwrap_or(0),
                reply,
            })
        }
    }
}

/// A command that arrived, or the end of a control channel.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlEvent {
    /// A well-formed command with its request id.
    Command(Option<u16>, Command),
    /// A line or frame that could not be understood, and why.
    Invalid(Option<u16>, String),
    /// The control channel closed (stdin reached its end).
    Closed,
}

/// The open output.
pub enum Sink {
    /// Standard output, flushed per message.
    Stdout(io::BufWriter<io::Stdout>),
    /// A serial port behind its I/O thread.
    Serial(SerialLink),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdout(_) => write!(f, "Sink::Stdout"),
            Self::Serial(l) => write!(f, "Sink::Serial({})", l.path.display()),
        }
    }
}

impl Sink {
    /// Sends one encoded message. Only stdout can fail (a closed pipe ends the run).
    pub fn send(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        match self {
            Self::Stdout(w) => {
                w.write_all(&bytes)?;
                w.flush()
            }
            Self::Serial(link) => {
                link.send(bytes);
                Ok(())
            }
        }
    }

    /// Messages dropped because the serial queue was full or the port away.
    pub fn dropped(&self) -> u64 {
        match self {
            Self::Stdout(_) => 0,
            Self::Serial(l) => l.dropped.load(Ordering::Relaxed),
        }
    }

    /// Serial lines or frames that did not decode.
    pub fn bad_input(&self) -> u64 {
        match self {
            Self::Stdout(_) => 0,
            Self::Serial(l) => l.bad_input.load(Ordering::Relaxed),
        }
    }

    /// Flushes what is queued (serial: waits up to `timeout` for the I/O thread).
    pub fn finish(self, timeout: Duration) {
        match self {
            Self::Stdout(mut w) => {
                let _ = w.flush();
            }
            Self::Serial(link) => link.finish(timeout),
        }
    }
}

/// The serial I/O thread's handle.
pub struct SerialLink {
    path: PathBuf,
    tx: Option<SyncSender<Vec<u8>>>,
    dropped: Arc<AtomicU64>,
    bad_input: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Outgoing messages held while the port is slow.
const QUEUE: usize = 64;

impl SerialLink {
    /// Starts the I/O thread for `path` at `baud`. Commands read from the port (decoded per
    /// `format`: framed postcard, or text/JSON lines) go to `commands`.
    pub fn start(
        path: PathBuf,
        baud: u32,
        format: Format,
        commands: Sender<ControlEvent>,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let bad_input = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let io = SerialIo {
            path: path.clone(),
            baud,
            format,
            commands,
            dropped: Arc::clone(&dropped),
            bad_input: Arc::clone(&bad_input),
            done: Arc::clone(&done),
        };
        let thread = std::thread::Builder::new()
            .name("serial".into())
            .spawn(move || io.run(rx))?;
        Ok(Self {
            path,
            tx: Some(tx),
            dropped,
            bad_input,
            done,
            thread: Some(thread),
        })
    }

    fn send(&self, bytes: Vec<u8>) {
        if let Some(tx) = &self.tx {
            match tx.try_send(bytes) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn finish(mut self, timeout: Duration) {
        self.tx = None; // the thread drains the queue, then sees the channel closed
        let deadline = Instant::now() + timeout;
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            self.done.store(true, Ordering::Relaxed);
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

struct SerialIo {
    path: PathBuf,
    baud: u32,
    format: Format,
    commands: Sender<ControlEvent>,
    dropped: Arc<AtomicU64>,
    bad_input: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

impl SerialIo {
    fn open(&self) -> serialport::Result<Box<dyn serialport::SerialPort>> {
        serialport::new(self.path.to_string_lossy(), self.baud)
            .timeout(Duration::from_millis(200))
            .open()
    }

    fn run(self, rx: Receiver<Vec<u8>>) {
        let mut port: Option<Box<dyn serialport::SerialPort>> = None;
        let mut backoff = Duration::from_millis(250);
        let mut next_try = Instant::now();
        let mut warned = false;
        let mut decoder = FrameDecoder::new();
        let mut line = crate::control::LineReader::default();
        let mut buf = [0u8; 1024];
        while !self.done.load(Ordering::Relaxed) {
            if port.is_none() && Instant::now() >= next_try {
                match self.open() {
                    Ok(p) => {
                        log::info!("{}: serial port open", self.path.display());
                        port = Some(p);
                        backoff = Duration::from_millis(250);
                        warned = false;
                    }
                    Err(e) => {
                        if !warned {
                            log::warn!(
                                "{}: cannot open serial port: {e}; retrying",
                                self.path.display()
                            );
                            warned = true;
                        }
                        next_try = Instant::now() + backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            match rx.recv_timeout(Duration::from_millis(10)) {
                Ok(bytes) => match port.as_mut() {
                    Some(p) => {
                        if let Err(e) = p.write_all(&bytes).and_then(|_| p.flush()) {
                            self.dropped.fetch_add(1, Ordering::Relaxed);
                            if e.kind() != io::ErrorKind::TimedOut {
                                log::warn!("{}: serial write failed: {e}", self.path.display());
                                port = None;
                            }
                        }
                    }
                    None => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let Some(p) = port.as_mut() else { continue };
            let available = match p.bytes_to_read() {
                Ok(n) => n as usize,
                Err(e) => {
                    log::warn!("{}: serial port lost: {e}", self.path.display());
                    port = None;
                    continue;
                }
            };
            if available == 0 {
                continue;
            }
            let want = available.min(buf.len());
            let n = match p.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => 0,
                Err(e) => {
                    log::warn!("{}: serial read failed: {e}", self.path.display());
                    port = None;
                    continue;
                }
            };
            self.incoming(&buf[..n], &mut decoder, &mut line);
        }
    }

    fn incoming(
        &self,
        bytes: &[u8],
        decoder: &mut FrameDecoder,
        line: &mut crate::control::LineReader,
    ) {
        match self.format {
            Format::Postcard => decoder.feed(bytes, |r| {
                let event = match r {
                    Ok(Message::Command { id, command }) => {
                        ControlEvent::Command(Some(id), command)
                    }
                    Ok(_) => ControlEvent::Invalid(None, "only commands are accepted".into()),
                    Err(e) => {
                        self.bad_input.fetch_add(1, Ordering::Relaxed);
                        log::warn!("{}: bad frame: {e}", self.path.display());
                        return;
                    }
                };
                let _ = self.commands.send(event);
            }),
            Format::Json | Format::Text => line.push(bytes, |text| {
                let event = match text.and_then(|t| crate::control::parse_line(&t)) {
                    Ok((id, c)) => ControlEvent::Command(id, c),
                    Err(e) => {
                        self.bad_input.fetch_add(1, Ordering::Relaxed);
                        ControlEvent::Invalid(None, e)
                    }
                };
                let _ = self.commands.send(event);
            }),
        }
    }
}
