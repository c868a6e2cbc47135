//! MJPEG byte streams: stdin, a recorded `.mjpeg` file, and `exec:` children (a camera tool
//! such as `rpicam-vid --codec mjpeg -o -`, run and restarted by glance).
//!
//! One capture thread per stream reads bytes, checks from the first kilobytes that they are
//! MJPEG at all ([`super::sniff`]), cuts frames ([`MjpegSplitter`]) and hands them on through a
//! [`Latest`] mailbox, by the stream's [`DropPolicy`]: a live stream (a pipe, a child) keeps
//! only the newest frame; a recording (a regular file, on stdin or named) hands on every frame
//! in order, waiting while the classifier is busy.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::health::SourceHealth;
use crate::source::latest::Latest;
use crate::source::mjpeg::MjpegSplitter;
use crate::source::sniff::{sniff, StreamKind, ASK_FOR_MJPEG};
use crate::source::{Frame, FrameData};

/// Which frames a source hands on when the classifier is slower than the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropPolicy {
    /// Keep only the newest frame (live sources: a camera, a pipe, an `exec:` child).
    Newest,
    /// Hand on every frame in order; the source waits (recordings: regular files).
    Never,
}

/// How a stream's reading ended.
#[derive(Debug)]
enum StreamEnd {
    /// End of file (or of the child's output), after this many frames.
    Eof(u64),
    /// The run is stopping.
    Stopped,
    /// A read error.
    Failed(std::io::Error),
    /// Not MJPEG: why, in a sentence that says how to get MJPEG.
    Refused(String),
}

/// Reads `input` to its end, cutting MJPEG frames into `out` by `policy`. `name` names the
/// stream in messages and frame names (`NAME#N`); `counter` numbers frames across restarts;
/// `health` hears that the source is fine again at the first frame.
fn pump(
    mut input: impl Read,
    name: &str,
    out: &Latest<Frame>,
    stop: &AtomicBool,
    policy: DropPolicy,
    counter: &mut u64,
    health: Option<&SourceHealth>,
) -> StreamEnd {
    let mut splitter = MjpegSplitter::default();
    let mut buf = vec![0u8; 64 * 1024];
    // The first bytes, held until they tell what the stream is.
    let mut head: Option<Vec<u8>> = Some(Vec::new());
    let mut stopped = false;
    let first = *counter;
    let mut feed = |splitter: &mut MjpegSplitter, bytes: &[u8], counter: &mut u64| {
        splitter.push(bytes, |jpeg| {
            if stopped {
                return;
            }
            let frame = Frame::now(FrameData::Encoded(jpeg), format!("{name}#{counter}"), None);
            if *counter == first {
                if let Some(h) = health {
                    h.fine();
                }
            }
            *counter += 1;
            match policy {
                DropPolicy::Newest => out.put(frame),
                DropPolicy::Never => {
                    stopped = out
                        .put_waiting(frame, || stop.load(Ordering::Relaxed))
                        .is_some();
                }
            }
        });
        stopped
    };
    let end = loop {
        if stop.load(Ordering::Relaxed) {
            break StreamEnd::Stopped;
        }
        let n = match input.read(&mut buf) {
            Ok(0) => break StreamEnd::Eof(*counter - first),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break StreamEnd::Failed(e),
        };
        let fed = match head.as_mut() {
            Some(h) => {
                h.extend_from_slice(&buf[..n]);
                match sniff(h) {
                    None => continue,
                    Some(StreamKind::Mjpeg) => {
                        let h = head.take().unwrap_or_default();
                        feed(&mut splitter, &h, counter)
                    }
                    Some(kind) => break StreamEnd::Refused(kind.refusal()),
                }
            }
            None => feed(&mut splitter, &buf[..n], counter),
        };
        if fed {
            break StreamEnd::Stopped;
        }
    };
    if let (StreamEnd::Eof(0), Some(h)) = (&end, &head) {
        if !h.is_empty() {
            return StreamEnd::Refused(format!(
                "ended after {} bytes without a JPEG frame: not an MJPEG stream; {ASK_FOR_MJPEG}",
                h.len()
            ));
        }
    }
    if splitter.errors > 0 {
        log::warn!(
            "{name}: skipped {} malformed or oversized stretches of the MJPEG stream",
            splitter.errors
        );
    }
    if splitter.pending() > 0 && matches!(end, StreamEnd::Eof(_)) {
        log::warn!(
            "{name}: the stream ended in the middle of a frame; its {} bytes were dropped",
            splitter.pending()
        );
    }
    end
}

fn spawn_thread(name: &str, body: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map(|_| ())
        .map_err(|e| Error::Io {
            path: name.into(),
            source: e,
        })
}

/// Whether stdin is a regular file (a recording redirected with `<`), not a pipe or terminal.
pub(crate) fn stdin_is_a_file() -> bool {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata("/dev/stdin");
    meta.map(|m| m.file_type().is_file() && !m.file_type().is_fifo())
        .unwrap_or(false)
}

/// Starts the thread that cuts the MJPEG stream on stdin into frames; its mailbox closes at
/// the end of the stream, on a read error, when `stop` is set, or when the stream is not MJPEG
/// (the reason is then in `health`, and the run ends with it).
pub(crate) fn start_stdin(
    policy: DropPolicy,
    health: Arc<SourceHealth>,
    stop: Arc<AtomicBool>,
) -> Result<Arc<Latest<Frame>>> {
    let mailbox = Arc::new(Latest::new());
    let out = Arc::clone(&mailbox);
    spawn_thread("stdin-mjpeg", move || {
        let mut n = 0;
        match pump(
            std::io::stdin().lock(),
            "-",
            &out,
            &stop,
            policy,
            &mut n,
            None,
        ) {
            StreamEnd::Refused(why) => health.give_up(why),
            StreamEnd::Failed(e) => log::error!("stdin: {e}"),
            StreamEnd::Eof(_) | StreamEnd::Stopped => {}
        }
        out.close();
    })?;
    Ok(mailbox)
}

/// Starts the thread that reads a recorded MJPEG file (`--source clip.mjpeg`), from the start
/// again at its end when `looping`.
pub(crate) fn start_file(
    path: PathBuf,
    looping: bool,
    policy: DropPolicy,
    health: Arc<SourceHealth>,
    stop: Arc<AtomicBool>,
) -> Result<Arc<Latest<Frame>>> {
    // Opened here, so that a missing file is an error at start.
    let mut file = std::fs::File::open(&path).map_err(|e| Error::Io {
        path: path.clone(),
        source: e,
    })?;
    let mailbox = Arc::new(Latest::new());
    let out = Arc::clone(&mailbox);
    spawn_thread("mjpeg-file", move || {
        let name = path.display().to_string();
        let mut n = 0;
        loop {
            match pump(&mut file, &name, &out, &stop, policy, &mut n, None) {
                StreamEnd::Refused(why) => health.give_up(why),
                StreamEnd::Failed(e) => health.give_up(format!("cannot read: {e}")),
                StreamEnd::Eof(frames) if looping && frames > 0 => {
                    match std::fs::File::open(&path) {
                        Ok(f) => {
                            file = f;
                            continue;
                        }
                        Err(e) => health.give_up(format!("cannot open again: {e}")),
                    }
                }
                StreamEnd::Eof(_) | StreamEnd::Stopped => {}
            }
            break;
        }
        out.close();
    })?;
    Ok(mailbox)
}

/// Back-off between restarts of an `exec:` child: from the first to the longest, doubling;
/// back to the first once a child has run for [`STEADY`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const LONGEST_BACKOFF: Duration = Duration::from_secs(30);
const STEADY: Duration = Duration::from_secs(10);
/// How long a child is given to end after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// Ends a running `exec:` child when dropped: SIGTERM to its process group (which also
/// unblocks the capture thread's read), then SIGKILL if the thread has not finished within
/// [`TERM_GRACE`]. The run keeps it until its last message is out.
#[derive(Debug)]
pub(crate) struct ExecGuard {
    current: Arc<std::sync::Mutex<Option<i32>>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        let pgid = *self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pgid) = pgid {
            signal_group(pgid, libc::SIGTERM);
        }
        if self
            .done
            .recv_timeout(TERM_GRACE + Duration::from_secs(1))
            .is_err()
        {
            if let Some(pgid) = pgid {
                log::warn!(
                    "exec: the child did not end within {} s of SIGTERM; killing it",
                    TERM_GRACE.as_secs()
                );
                signal_group(pgid, libc::SIGKILL);
            }
        }
    }
}

/// Starts `sh -c COMMAND` and the thread that reads its standard output as an MJPEG stream.
/// The child is restarted with back-off whenever it exits (a camera tool that lost its camera,
/// a crash), and ended when `stop` is set and the returned guard dropped. A child that writes
/// something other than MJPEG (H.264 unless asked otherwise) is ended and not restarted: the
/// run ends with the reason.
pub(crate) fn start_exec(
    command: String,
    policy: DropPolicy,
    health: Arc<SourceHealth>,
    stop: Arc<AtomicBool>,
) -> Result<(Arc<Latest<Frame>>, ExecGuard)> {
    let mailbox = Arc::new(Latest::new());
    let out = Arc::clone(&mailbox);
    // The first start is checked here: a shell that cannot run at all is an error at start.
    let first = spawn_child(&command).map_err(|e| Error::Io {
        path: format!("exec:{command}").into(),
        source: e,
    })?;
    let current = Arc::new(std::sync::Mutex::new(i32::try_from(first.id()).ok()));
    let (done_tx, done) = std::sync::mpsc::channel();
    let guard = ExecGuard {
        current: Arc::clone(&current),
        done,
    };
    let set_current = move |pgid: Option<i32>| {
        *current.lock().unwrap_or_else(|p| p.into_inner()) = pgid;
    };
    spawn_thread("exec-mjpeg", move || {
        let name = "exec";
        let mut child = Some(first);
        let mut backoff = FIRST_BACKOFF;
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut running = match child.take() {
                Some(c) => c,
                None => match spawn_child(&command) {
                    Ok(c) => {
                        set_current(i32::try_from(c.id()).ok());
                        c
                    }
                    Err(e) => {
                        let why = format!("`{command}` could not be started: {e}");
                        log::warn!("exec: {why}; retrying in {:.1} s", backoff.as_secs_f32());
                        health.trouble(why);
                        wait_unless_stopped(backoff, &stop);
                        backoff = (backoff * 2).min(LONGEST_BACKOFF);
                        continue;
                    }
                },
            };
            let started = Instant::now();
            let end = match running.stdout.take() {
                Some(stdout) => pump(stdout, name, &out, &stop, policy, &mut n, Some(&health)),
                None => StreamEnd::Eof(0),
            };
            if stop.load(Ordering::Relaxed) {
                end_child(&mut running);
                break;
            }
            match end {
                StreamEnd::Stopped => {
                    end_child(&mut running);
                    break;
                }
                StreamEnd::Refused(why) => {
                    end_child(&mut running);
                    health.give_up(format!("`{command}`: {why}"));
                    break;
                }
                StreamEnd::Eof(_) | StreamEnd::Failed(_) => {
                    // The output closed: the child ended (or is about to).
                    let status = match running.wait() {
                        Ok(s) => s.to_string(),
                        Err(e) => format!("an unknown status ({e})"),
                    };
                    set_current(None);
                    if started.elapsed() >= STEADY {
                        backoff = FIRST_BACKOFF;
                    }
                    let why = format!(
                        "`{command}` exited ({status}); restarting in {:.1} s",
                        backoff.as_secs_f32()
                    );
                    log::warn!("exec: {why}");
                    health.trouble(why);
                    wait_unless_stopped(backoff, &stop);
                    backoff = (backoff * 2).min(LONGEST_BACKOFF);
                }
            }
        }
        if let Some(mut c) = child {
            end_child(&mut c);
        }
        set_current(None);
        out.close();
        let _ = done_tx.send(());
    })?;
    Ok((mailbox, guard))
}

fn wait_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sh -c COMMAND` in a process group of its own (so that ending it ends what the shell
/// started too), reading nothing, writing its output to a pipe and its errors to glance's.
#[allow(unsafe_code)]
fn spawn_child(command: &str) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    // SAFETY: between fork and exec only prctl(2), which is async-signal-safe, runs: if glance
    // dies without ending the child (kill -9), the kernel sends it SIGTERM.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    log::info!("exec: started `{command}` (pid {})", child.id());
    Ok(child)
}

/// SIGTERM to the child's process group, then SIGKILL if it has not ended within TERM_GRACE.
fn end_child(child: &mut Child) {
    let Ok(pgid) = i32::try_from(child.id()) else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    signal_group(pgid, libc::SIGTERM);
    let until = Instant::now() + TERM_GRACE;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            // The shell ended; its own children may linger in the group.
            signal_group(pgid, libc::SIGKILL);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    log::warn!(
        "exec: the child did not end within {} s of SIGTERM; killing it",
        TERM_GRACE.as_secs()
    );
    signal_group(pgid, libc::SIGKILL);
    let _ = child.wait();
}

#[allow(unsafe_code)]
fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::latest::Taken;

    fn jpeg(tag: u8) -> Vec<u8> {
        // The smallest thing the splitter takes for a frame: SOI, a COM segment, EOI.
        vec![0xff, 0xd8, 0xff, 0xfe, 0x00, 0x03, tag, 0xff, 0xd9]
    }

    #[test]
    fn a_recording_hands_on_every_frame_and_a_live_stream_the_newest() {
        let stream: Vec<u8> = (0..50).flat_map(jpeg).collect();
        for (policy, want_all) in [(DropPolicy::Never, true), (DropPolicy::Newest, false)] {
            let out = Arc::new(Latest::new());
            let (o, s) = (Arc::clone(&out), stream.clone());
            let t = std::thread::spawn(move || {
                let mut n = 0;
                let end = pump(
                    &s[..],
                    "t",
                    &o,
                    &AtomicBool::new(false),
                    policy,
                    &mut n,
                    None,
                );
                o.close();
                (end, n)
            });
            if policy == DropPolicy::Newest {
                // Nobody takes until the stream is read: only the last frame is left.
                while !t.is_finished() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let mut tags = Vec::new();
            while let Taken::Value(f) = out.take(Duration::from_secs(5)) {
                let FrameData::Encoded(b) = f.data else {
                    panic!()
                };
                tags.push(b[6]);
            }
            let (end, n) = t.join().unwrap();
            assert!(matches!(end, StreamEnd::Eof(50)), "{end:?}");
            assert_eq!(n, 50);
            if want_all {
                assert_eq!(tags, (0..50).collect::<Vec<_>>());
            } else {
                assert_eq!(tags, vec![49]);
                assert_eq!(out.dropped(), 49);
            }
        }
    }

    #[test]
    fn h264_and_junk_are_refused_before_any_frame() {
        let out = Latest::new();
        let mut h264 = vec![0, 0, 0, 1, 0x67, 0x64, 0, 0x28];
        h264.resize(4096, 0x11);
        let mut n = 0;
        let end = pump(
            &h264[..],
            "-",
            &out,
            &AtomicBool::new(false),
            DropPolicy::Newest,
            &mut n,
            None,
        );
        let StreamEnd::Refused(why) = end else {
            panic!("{end:?}")
        };
        assert!(why.contains("H.264"), "{why}");
        let end = pump(
            &b"hello"[..],
            "-",
            &out,
            &AtomicBool::new(false),
            DropPolicy::Newest,
            &mut n,
            None,
        );
        let StreamEnd::Refused(why) = end else {
            panic!("{end:?}")
        };
        assert!(why.contains("without a JPEG frame"), "{why}");
        assert_eq!(n, 0);
    }

    #[test]
    fn an_exec_child_is_restarted_and_ended() {
        // Each run of the child writes two frames and exits; glance restarts it.
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("two.mjpeg");
        std::fs::write(&clip, [jpeg(1), jpeg(2)].concat()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let health = Arc::new(SourceHealth::default());
        let (out, guard) = start_exec(
            format!("cat '{}'", clip.display()),
            DropPolicy::Never,
            Arc::clone(&health),
            Arc::clone(&stop),
        )
        .unwrap();
        let mut got = 0;
        let until = Instant::now() + Duration::from_secs(20);
        while got < 5 && Instant::now() < until {
            if let Taken::Value(_) = out.take(Duration::from_millis(100)) {
                got += 1;
            }
        }
        assert!(got >= 5, "only {got} frames: the child was not restarted");
        assert!(health.gave_up().is_none());
        stop.store(true, Ordering::Relaxed);
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            match out.take(Duration::from_millis(100)) {
                Taken::Closed => break,
                _ if Instant::now() > until => panic!("the exec thread did not end"),
                _ => {}
            }
        }
        drop(guard);
    }

    #[test]
    fn a_silent_exec_child_is_ended_by_the_guard() {
        // `sleep` writes nothing: the capture thread is blocked reading when the run stops.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let stop = Arc::new(AtomicBool::new(false));
        let (_out, guard) = start_exec(
            format!("echo $$ > '{}'; exec sleep 600", pidfile.display()),
            DropPolicy::Newest,
            Arc::new(SourceHealth::default()),
            Arc::clone(&stop),
        )
        .unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(p) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                break p;
            }
            assert!(Instant::now() < until, "the child never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        stop.store(true, Ordering::Relaxed);
        let t = Instant::now();
        drop(guard);
        assert!(t.elapsed() < TERM_GRACE + Duration::from_secs(2));
        // Reaped by the capture thread: no such process any more.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} survived"
        );
    }
}
