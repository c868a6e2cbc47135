//! The serial link: one I/O thread owns the port, in both directions.
//!
//! The run loop hands it finished messages (bytes from [`crate::encode`]) through a bounded
//! queue and never waits: when the queue is full (the port is slow or gone) the message is
//! dropped and counted. The thread reopens a port that goes away, with back-off, and passes
//! the commands it reads (framed postcard, or text/JSON lines) back to the run loop.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use glance_proto::frame::FrameDecoder;
use glance_proto::Message;

use crate::control::ControlEvent;
use crate::encode::Format;

/// The serial I/O thread's handle.
pub(crate) struct SerialLink {
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
    pub(crate) fn start(
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

    /// The port's device path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Messages dropped because the queue was full or the port away.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines or frames read from the port that did not decode.
    pub(crate) fn bad_input(&self) -> u64 {
        self.bad_input.load(Ordering::Relaxed)
    }

    /// Queues one message; drops and counts it when the queue is full (never waits).
    pub(crate) fn send(&self, bytes: Vec<u8>) {
        if let Some(tx) = &self.tx {
            match tx.try_send(bytes) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Lets the thread write what is queued, waiting up to `timeout`, then stops it.
    pub(crate) fn finish(mut self, timeout: Duration) {
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
