//! Where decisions go: stdout or a serial port. The bytes come from [`crate::encode`]; an
//! output only moves them.
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

use glance_proto::frame::FrameDecoder;
use glance_proto::{Command, Message};

// The encoder had its home here; its paths stay valid for code written against them.
pub use crate::encode::{
    encode_prediction, encode_reply, encode_status, Format, ReplyBody, StatusInfo,
};

/// Default serial speed.
pub const DEFAULT_BAUD: u32 = 115_200;

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
