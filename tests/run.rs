//! `glance run` with real parts: serial through a socat pseudo-terminal pair (both framings),
//! an ffmpeg MJPEG stream on stdin, enroll/forget/save round trips, kill -9 during saves,
//! camera pixel formats checked against ffmpeg, and the V4L2 ABI against the kernel header.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use glance::Precision;
use glance::{Generation, Store};
use glance_proto::frame::{self, FrameDecoder, MAX_ENCODED};
use glance_proto::{Message, Reply};
use serde_json::Value;

use crate::util::{fixture, int8w};

fn need(tool: &str) {
    let ok = Command::new(tool)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "`{tool}` is missing: scripts/test.sh installs it");
}

/// A socat pseudo-terminal pair, killed on drop.
struct PtyPair {
    child: Child,
    board: PathBuf,
    peer: PathBuf,
    _dir: tempfile::TempDir,
}

impl PtyPair {
    fn new() -> Self {
        need("socat");
        let dir = tempfile::tempdir().unwrap();
        let board = dir.path().join("board");
        let peer = dir.path().join("peer");
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", board.display()))
            .arg(format!("pty,raw,echo=0,link={}", peer.display()))
            .stderr(Stdio::null())
            .spawn()
            .expect("socat starts");
        let t = Instant::now();
        while !(board.exists() && peer.exists()) {
            assert!(t.elapsed() < Duration::from_secs(10), "socat made no ptys");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            board,
            peer,
            _dir: dir,
        }
    }

    fn open_peer(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.peer)
            .expect("peer pty opens")
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops `child` with SIGTERM (the graceful path: store saved, sink flushed) and returns what
/// it wrote to stderr (when piped).
pub(crate) fn terminate(child: &mut Child) -> String {
    terminate_within(child, 20)
}

/// [`terminate`], with `secs` to stop in ([`crate::util::sigterm_and_wait`]).
pub(crate) fn terminate_within(child: &mut Child, secs: u64) -> String {
    crate::util::sigterm_and_wait(child, secs);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    stderr
}

/// Reads from `file` (non-blocking via a thread) until `done(messages)` or the deadline.
fn read_until<T>(
    mut file: std::fs::File,
    mut parse: impl FnMut(&[u8], &mut Vec<T>) + Send + 'static,
    done: impl Fn(&[T]) -> bool,
    secs: u64,
) -> Vec<T>
where
    T: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline && !done(&out) {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
            parse(&chunk, &mut out);
        }
    }
    out
}

/// A folder of three photos, removed when dropped.
fn photos_dir() -> tempfile::TempDir {
    // coffee (espresso), chelsea (a cat) and the camera man (tripod): distinct, confident.
    let dir = tempfile::Builder::new()
        .prefix("glance-photos")
        .tempdir()
        .unwrap();
    for f in ["coffee.png", "chelsea.png", "camera.png"] {
        std::fs::copy(fixture(&format!("photos/{f}")), dir.path().join(f)).unwrap();
    }
    dir
}

#[test]
fn serial_postcard_predictions_status_and_commands_through_a_pty() {
    let pty = PtyPair::new();
    let photos = photos_dir();
    let store = tempfile::tempdir().unwrap();
    let store_file = store.path().join("board.store");
    let mut child = crate::util::glance_command([
        "run",
        "--loop",
        "--format",
        "postcard",
        "--heartbeat",
        "0.5",
    ])
    .arg("--source")
    .arg(photos.path())
    .arg("--output")
    .arg(format!("serial:{}@57600", pty.board.display()))
    .arg("--store")
    .arg(&store_file)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut peer = pty.open_peer();
    // Line noise first: garbage, a frame with a broken CRC, an oversized run; then commands.
    let encode = |id: u16, c: glance_proto::Command| {
        let mut buf = vec![0u8; MAX_ENCODED];
        let n = frame::encode(&Message::Command { id, command: c }, &mut buf).unwrap();
        buf[..n].to_vec()
    };
    let send = |peer: &mut std::fs::File, id: u16, c: glance_proto::Command| {
        peer.write_all(&encode(id, c)).unwrap();
    };
    peer.write_all(&[0x13, 0x37, 0x00]).unwrap();
    let mut bad = encode(99, glance_proto::Command::List);
    bad[3] ^= 0x40;
    peer.write_all(&bad).unwrap();
    peer.write_all(&vec![0x55; MAX_ENCODED + 10]).unwrap();
    peer.write_all(&[0]).unwrap();
    let label = |s: &str| glance_proto::Label::try_from(s).unwrap();
    send(
        &mut peer,
        1,
        glance_proto::Command::Enroll {
            label: label("mug"),
            frames: 2,
        },
    );
    send(&mut peer, 2, glance_proto::Command::List);
    send(&mut peer, 3, glance_proto::Command::Save);
    // Postcard commands get the same range rule as text and JSON ones.
    for (id, value) in [(4, f32::NAN), (5, -5.0), (6, 1e30), (7, 0.5)] {
        send(
            &mut peer,
            id,
            glance_proto::Command::SetThreshold {
                label: label("*"),
                value,
            },
        );
    }
    send(
        &mut peer,
        8,
        glance_proto::Command::SetDistance {
            label: label("*"),
            value: f32::INFINITY,
        },
    );
    let msgs = read_until(
        peer,
        {
            let mut dec = FrameDecoder::new();
            move |chunk, out: &mut Vec<Message>| dec.feed(chunk, |m| out.extend(m.ok()))
        },
        |m| {
            m.iter().any(|x| matches!(x, Message::Reply { id: 8, .. }))
                && m.iter().filter(|x| matches!(x, Message::Status(_))).count() >= 2
                && m.iter()
                    .filter(|x| matches!(x, Message::Prediction(_)))
                    .count()
                    >= 6
        },
        120,
    );
    let stderr = terminate(&mut child);

    let predictions: Vec<&glance_proto::Prediction> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Prediction(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(predictions.len() >= 6, "{msgs:?}\n{stderr}");
    for w in predictions.windows(2) {
        assert!(w[1].seq > w[0].seq, "seq grows");
    }
    // The head's labels for the three photos come round in order.
    let labels: Vec<&str> = predictions.iter().map(|p| p.label.as_str()).collect();
    assert!(labels.contains(&"espresso"), "{labels:?}");
    assert!(labels.contains(&"tripod"), "{labels:?}");
    for p in &predictions {
        assert!(p.timing.backbone_us > 0 && p.top_k.len() == 5);
    }
    let replies: Vec<(u16, &Reply)> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Reply { id, reply } => Some((*id, reply)),
            _ => None,
        })
        .collect();
    assert_eq!(replies[0], (1, &Reply::Ok), "{replies:?}\n{stderr}");
    match replies[1] {
        (2, Reply::List(l)) => {
            assert_eq!(l.len(), 1);
            assert_eq!((l[0].0.as_str(), l[0].1), ("mug", 2));
        }
        other => panic!("expected the list reply, got {other:?}"),
    }
    assert_eq!(replies[2], (3, &Reply::Ok));
    for (id, want_ok) in [(4, false), (5, false), (6, false), (7, true), (8, false)] {
        let reply = replies
            .iter()
            .find(|(i, _)| *i == id)
            .unwrap_or_else(|| panic!("no reply {id}: {replies:?}"));
        match (want_ok, reply.1) {
            (true, Reply::Ok) | (false, Reply::Error(_)) => {}
            other => panic!("set-threshold id {id}: {other:?}"),
        }
    }
    assert!(
        replies.iter().all(|(id, _)| *id != 99),
        "a corrupted frame was obeyed"
    );
    let status = msgs
        .iter()
        .rev()
        .find_map(|m| match m {
            Message::Status(s) => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(status.store_len, 2);
    assert_eq!(status.store_capacity, 1000);
    assert!(stderr.contains("bad frame"), "{stderr}");
    let saved = Store::read(&store_file, &int8w().identity().sha256, 1280).unwrap();
    assert_eq!(saved.counts(), vec![("mug".to_string(), 2)]);
}

#[test]
#[cfg(feature = "host")]
fn serial_json_lines_and_the_host_monitor_through_a_pty() {
    let pty = PtyPair::new();
    let photos = photos_dir();
    let mut child =
        crate::util::glance_command(["run", "--loop", "--format", "json", "--heartbeat", "0"])
            .arg("--source")
            .arg(photos.path())
            .arg("--output")
            .arg(format!("serial:{}", pty.board.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    // glance-host monitor is the peer: it sends the commands and prints JSON lines.
    let monitor = Command::new(env!("CARGO_BIN_EXE_glance-host"))
        .arg("monitor")
        .arg(&pty.peer)
        .args(["--framing", "json", "--format", "json", "--count", "8"])
        .args(["--timeout", "120"])
        .args(["--send", "set-threshold * 0.99", "--send", "status"])
        .args(["--send", r#"{"command":"forget","label":"nothing","id":5}"#])
        .output()
        .unwrap();
    terminate(&mut child);
    assert!(
        monitor.status.success(),
        "{}",
        String::from_utf8_lossy(&monitor.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&monitor.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8, "{lines:?}");
    let replies: Vec<&Value> = lines.iter().filter_map(|v| v.get("reply")).collect();
    assert_eq!(replies.len(), 2, "{lines:?}");
    assert_eq!(replies[0]["ok"], true);
    assert_eq!(replies[1]["ok"], false);
    assert_eq!(replies[1]["id"], 5);
    assert!(lines.iter().any(|v| v.get("status").is_some()));
    let predictions: Vec<&Value> = lines.iter().filter(|v| v.get("seq").is_some()).collect();
    assert!(!predictions.is_empty());
    for p in &predictions {
        for key in [
            "source",
            "label",
            "score",
            "top_k",
            "timing_ms",
            "seq",
            "time_ms",
        ] {
            assert!(p.get(key).is_some(), "{key} missing in {p}");
        }
    }
    // After `set-threshold * 0.99` only near-certain decisions survive; the cat photo's
    // best class is far below that, so it must come out unknown.
    let last_cat = predictions
        .iter()
        .rev()
        .find(|p| p["source"].as_str().unwrap().ends_with("chelsea.png"));
    if let Some(p) = last_cat {
        if p["seq"].as_u64().unwrap() > 2 {
            assert_eq!(p["label"], "unknown", "{p}");
        }
    }
}

fn ffmpeg_mjpeg(photo: &Path, frames: u32, out: &Path) {
    need("ffmpeg");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-i"])
        .arg(photo)
        .args(["-vf", "scale=640:480", "-frames:v", &frames.to_string()])
        .args(["-f", "mjpeg"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg made no stream");
}

#[test]
fn an_ffmpeg_mjpeg_stream_on_stdin_is_classified_newest_frame_first() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.mjpeg"), dir.path().join("b.mjpeg"));
    ffmpeg_mjpeg(&fixture("photos/coffee.png"), 15, &a);
    ffmpeg_mjpeg(&fixture("photos/camera.png"), 15, &b);
    let mut stream = std::fs::read(&a).unwrap();
    stream.extend(std::fs::read(&b).unwrap());
    let mut child = crate::util::glance_command([
        "run",
        "--source",
        "-",
        "--format",
        "json",
        "--heartbeat",
        "0",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Written in uneven chunks, as a pipe delivers them.
    let writer = std::thread::spawn(move || {
        for chunk in stream.chunks(7777) {
            stdin.write_all(chunk).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = crate::util::stdout_json_lines(&out);
    let dropped: u64 = lines.iter().map(|l| l["dropped"].as_u64().unwrap()).sum();
    assert_eq!(
        lines.len() as u64 + dropped,
        30,
        "every frame decided or counted as dropped"
    );
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as u64);
        assert!(l["source"].as_str().unwrap().starts_with("-#"));
    }
    // The last frame is never dropped: it is the camera man.
    assert_eq!(lines.last().unwrap()["label"], "tripod");
    let labels: Vec<&str> = lines.iter().map(|l| l["label"].as_str().unwrap()).collect();
    assert!(
        labels.iter().all(|l| ["espresso", "tripod"].contains(l)),
        "{labels:?}"
    );
}

/// Runs glance with `args`, writes `input` to its stdin and closes it, and waits.
fn glance_with_stdin<S: AsRef<std::ffi::OsStr>>(args: &[S], input: &[u8]) -> std::process::Output {
    let mut child = crate::util::glance_command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// `glance run` taking commands on stdin, with no heartbeat messages among the replies.
const RUN_WITH_STDIN_COMMANDS: [&str; 5] = ["run", "--control", "stdin", "--heartbeat", "0"];

fn run_with_commands(args: &[&str], commands: &str) -> (Vec<String>, String, bool) {
    let out = glance_with_stdin(
        &[&RUN_WITH_STDIN_COMMANDS[..], &["--emit", "on-change"], args].concat(),
        commands.as_bytes(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let replies = stdout
        .lines()
        .filter(|l| l.starts_with("ok:") || l.starts_with("error:"))
        .map(str::to_owned)
        .collect();
    (
        replies,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn a_stream_that_ends_mid_frame_or_holds_no_frame_is_not_a_quiet_success() {
    let jpeg = std::fs::read(fixture("photos/china.jpg")).unwrap();
    let out = glance_with_stdin(&["run", "--source", "-"], &jpeg[..jpeg.len() / 2]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("ended in the middle of a frame"), "{err}");
    assert!(err.contains("without one whole JPEG frame"), "{err}");
    // A whole frame then a cut one: the whole one is decided, the cut one reported.
    let mut stream = jpeg.clone();
    stream.extend_from_slice(&jpeg[..jpeg.len() / 3]);
    let out = glance_with_stdin(&["run", "--source", "-", "--format", "json"], &stream);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ended in the middle of a frame"), "{err}");
    assert_eq!(crate::util::stdout_json_lines(&out).len(), 1);
}

#[test]
fn bad_command_lines_on_stdin_are_answered_and_the_channel_stays_open() {
    let coffee = fixture("photos/coffee.png");
    let mut input = b"\xff\xfe enroll\n".to_vec();
    input.extend(std::iter::repeat_n(b'A', 1 << 20));
    input.extend_from_slice(b"\nlist\n");
    let out = glance_with_stdin(
        &[
            &RUN_WITH_STDIN_COMMANDS[..],
            &["--source", coffee.to_str().unwrap(), "--emit", "on-change"],
        ]
        .concat(),
        &input,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let replies: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("ok:") || l.starts_with("error:"))
        .collect();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(replies[0].contains("not UTF-8"), "{replies:?}");
    assert!(replies[1].contains("refused whole"), "{replies:?}");
    assert!(!stdout.contains("AAAA"), "the overlong line was echoed");
    assert!(
        replies[2].starts_with("ok:"),
        "a command after bad lines was not run: {replies:?}"
    );
}

#[test]
fn a_save_that_fails_is_reported_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // The store's folder is a regular file: every save fails, as on a full or read-only disk.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let store = blocker.join("s.store");
    let coffee = fixture("photos/coffee.png");
    let args = [
        "--source",
        coffee.to_str().unwrap(),
        "--loop",
        "--store",
        store.to_str().unwrap(),
    ];
    let (replies, err, ok) = run_with_commands(&args, "enroll mug 2\nforget mug\n");
    assert_eq!(replies.len(), 2, "{replies:?}\n{err}");
    for r in &replies {
        assert!(
            r.starts_with("error:") && r.contains("saving the store failed"),
            "{replies:?}"
        );
    }
    assert!(
        replies[0].contains("enrolled 2 frames as `mug`"),
        "{replies:?}"
    );
    // Status says the store is not saved, and why; before the change it was healthy.
    let out = glance_with_stdin(
        &[
            &RUN_WITH_STDIN_COMMANDS[..],
            &["--emit", "on-change"],
            &args,
        ]
        .concat(),
        b"status\nenroll cup 1\nstatus\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let statuses: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("status:"))
        .collect();
    assert_eq!(statuses.len(), 2, "{stdout}");
    assert!(statuses[0].ends_with("; healthy"), "{statuses:?}");
    assert!(
        statuses[1].contains("NOT HEALTHY: store not saved")
            && statuses[1].contains("not-a-folder"),
        "{statuses:?}"
    );
    // The store changed and the final save failed too: the run must not exit 0.
    let (_, err, ok2) = run_with_commands(&args, "enroll cup 1\n");
    assert!(!ok2, "exit 0 after a failed final save\n{err}");
    assert!(err.contains("the final save failed"), "{err}");
    let _ = ok;
}

#[test]
fn enroll_forget_and_save_round_trip_through_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.store");
    let coffee = fixture("photos/coffee.png");
    let src = coffee.to_str().unwrap();
    let st = store.to_str().unwrap();
    let base = ["--source", src, "--loop", "--store", st, "--no-autosave"];

    let (replies, err, ok) = run_with_commands(&base, "enroll mug 3\nlist\nenroll cup\nsave\n");
    assert!(ok, "{err}");
    assert_eq!(replies.len(), 4, "{replies:?}");
    assert!(
        replies[0].contains("enrolled 3 frames as `mug`"),
        "{replies:?}"
    );
    assert_eq!(replies[1], "ok: mug (3)");
    assert!(replies[2].contains("`cup`"), "{replies:?}");
    assert!(replies[3].contains("saved 4 examples"), "{replies:?}");
    let sha = int8w().identity().sha256;
    let saved = Store::read(&store, &sha, 1280).unwrap();
    assert_eq!(
        saved.counts(),
        vec![("mug".to_string(), 3), ("cup".to_string(), 1)]
    );
    assert_eq!(saved.knn.precision(), Precision::I8);

    // A second run finds them, recognises the photo through them, forgets one label; the
    // store is saved at exit because it changed.
    let json = [&base[..], &["--format", "json"]].concat();
    let out = glance_with_stdin(
        &[&RUN_WITH_STDIN_COMMANDS[..], &["--frames", "2"], &json[..]].concat(),
        b"list\nforget mug\nforget mug\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = crate::util::stdout_json_lines(&out);
    let preds: Vec<&Value> = lines.iter().filter(|l| l.get("seq").is_some()).collect();
    assert!(!preds.is_empty());
    let first = preds[0];
    assert!(
        ["mug", "cup"].contains(&first["label"].as_str().unwrap()),
        "{first}"
    );
    assert_eq!(first["decided_by"], "store");
    assert!(first["knn"]["distance"].as_f64().unwrap() < 0.05);
    let replies: Vec<&Value> = lines.iter().filter_map(|l| l.get("reply")).collect();
    assert_eq!(replies[0]["list"][0]["label"], "mug");
    assert_eq!(replies[0]["list"][0]["examples"], 3);
    assert_eq!(replies[1]["ok"], true);
    assert_eq!(replies[2]["ok"], false, "forgetting twice is an error");
    let saved = Store::read(&store, &sha, 1280).unwrap();
    assert_eq!(saved.counts(), vec![("cup".to_string(), 1)]);
    // the previous generation is the one before the forget
    let prev = Store::read(&glance::previous_path(&store), &sha, 1280).unwrap();
    assert_eq!(prev.len(), 4);
}

#[test]
fn a_full_store_evicts_per_the_documented_rule() {
    let coffee = fixture("photos/coffee.png");
    let (replies, err, ok) = run_with_commands(
        &[
            "--source",
            coffee.to_str().unwrap(),
            "--loop",
            "--store-capacity",
            "3",
        ],
        "enroll a 3\nenroll b 1\nlist\nenroll c 1\nlist\n",
    );
    assert!(ok, "{err}");
    assert!(
        replies[1].contains("1 older examples evicted"),
        "{replies:?}"
    );
    assert_eq!(replies[2], "ok: a (2), b (1)");
    assert_eq!(replies[4], "ok: a (1), b (1), c (1)");
}

fn big_store(sha: &str, n: usize, tag: f32) -> Store {
    let mut s = Store::new(sha, 1280, n as u32, Precision::F32);
    for i in 0..n {
        let v: Vec<f32> = (0..1280)
            .map(|j| ((i * 31 + j * 7) % 97) as f32 / 97.0 + tag)
            .collect();
        s.add(&format!("class{}", i % 7), &v, format!("synthetic {i}"))
            .unwrap();
    }
    s
}

#[test]
fn kill_9_during_saves_never_leaves_a_broken_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("big.store");
    let sha = int8w().identity().sha256;
    // ~10 MB per save, so that a kill lands inside a write often.
    big_store(&sha, 2000, 0.0).save(&store).unwrap();
    let coffee = fixture("photos/coffee.png");
    let mut seen = [0usize; 3];
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..15 {
        let mut child = crate::util::glance_command(RUN_WITH_STDIN_COMMANDS)
            .arg("--loop")
            .arg("--source")
            .arg(&coffee)
            .arg("--store")
            .arg(&store)
            .args(["--store-precision", "f32", "--store-capacity", "2000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // enroll (which evicts one example) and save, over and over; stdin stays open.
        let script: String = (0..400)
            .map(|i| format!("enroll k{}\nsave\n", i % 3))
            .collect();
        let _ = stdin.write_all(script.as_bytes());
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(300 + rng % 1500));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        drop(stdin);
        let loaded = Store::load(&store, &sha, 1280, || panic!("a generation must exist"))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(loaded.store.len(), 2000, "round {round}");
        loaded.store.validate().unwrap();
        seen[match loaded.generation {
            Generation::Current => 0,
            Generation::Previous => 1,
            Generation::New => 2,
        }] += 1;
    }
    assert_eq!(seen[2], 0);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "stale temporaries: {leftovers:?}");
}

#[test]
fn a_truncated_or_bit_flipped_store_falls_back_to_the_previous_generation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.store");
    let prev = glance::previous_path(&path);
    let fresh = || Store::new("sha", 1280, 10, Precision::I8);
    let first = big_store("sha", 5, 0.0);
    let second = big_store("sha", 6, 0.5);
    first.save(&path).unwrap();
    second.save(&path).unwrap();
    assert_eq!(
        Store::load(&path, "sha", 1280, fresh).unwrap().store,
        second
    );

    let good = std::fs::read(&path).unwrap();
    for (what, bytes) in [
        ("truncated", good[..good.len() - 100].to_vec()),
        ("bit-flipped", {
            let mut b = good.clone();
            b[good.len() / 2] ^= 0x08;
            b
        }),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let loaded = Store::load(&path, "sha", 1280, fresh).unwrap();
        assert_eq!(loaded.generation, Generation::Previous, "{what}");
        assert_eq!(loaded.store, first, "{what}");
        assert!(
            loaded.warnings[0].contains("s.store"),
            "{what}: {:?}",
            loaded.warnings
        );
    }
    // Another backbone's store is refused by name.
    std::fs::write(&path, &good).unwrap();
    let e = Store::load(&path, "other", 1280, fresh)
        .unwrap_err()
        .to_string();
    assert!(e.contains("backbone"), "{e}");
    // Both generations broken: an error, not a silently empty store.
    std::fs::write(&prev, b"GLANCEST").unwrap();
    std::fs::write(&path, b"junk").unwrap();
    let e = Store::load(&path, "sha", 1280, fresh)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no usable generation"), "{e}");
    // Neither exists: a new store.
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&prev).unwrap();
    assert_eq!(
        Store::load(&path, "sha", 1280, fresh).unwrap().generation,
        Generation::New
    );
}

#[test]
fn camera_formats_convert_like_ffmpeg() {
    need("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let photo = fixture("photos/chelsea.png");
    let (w, h) = (320u32, 240u32);
    let ff = |args: &[&str], out: &Path| {
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&photo)
            .args(["-vf", &format!("scale={w}:{h}")])
            .args(args)
            .arg(out)
            .status()
            .unwrap();
        assert!(st.success());
    };
    // A recorded frame in each camera layout, and ffmpeg's own RGB rendering of the very same
    // bytes; the frames are V4L2's single-planar layouts, rows packed (stride = width).
    for (format, stride) in [
        (glance::RawFormat::Yuyv, 2 * w),
        (glance::RawFormat::Uyvy, 2 * w),
        (glance::RawFormat::Nv12, w),
        (glance::RawFormat::Yu12, w),
    ] {
        let pix = format.ffmpeg_name();
        let raw = dir.path().join(format!("frame.{pix}"));
        ff(&["-pix_fmt", pix, "-f", "rawvideo"], &raw);
        let reference = dir.path().join(format!("{pix}.rgb"));
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", pix])
            .args(["-s", &format!("{w}x{h}"), "-i"])
            .arg(&raw)
            .args(["-pix_fmt", "rgb24", "-f", "rawvideo"])
            .arg(&reference)
            .status()
            .unwrap();
        assert!(st.success());
        let data = std::fs::read(&raw).unwrap();
        let ours = glance::raw_to_rgb(format, &data, w, h, stride).unwrap();
        let theirs = std::fs::read(&reference).unwrap();
        let diff = crate::util::mean_abs_diff(ours.as_raw(), &theirs);
        // ffmpeg may interpolate chroma; we repeat it over its block. Both are BT.601.
        assert!(diff < 3.0, "{pix}: mean |Δ| {diff}");
        // A mistaken layout is far off: the same bytes read as another 4:2:x format.
        let other = if format == glance::RawFormat::Nv12 {
            glance::RawFormat::Yu12
        } else {
            glance::RawFormat::Nv12
        };
        if let Ok(wrong) = glance::raw_to_rgb(other, &data, w, h, w) {
            let off = crate::util::mean_abs_diff(wrong.as_raw(), &theirs);
            assert!(off > 3.0, "{pix} read as {other:?} is as close: {off}");
        }
    }

    // An MJPEG frame as a UVC camera sends it: standard Huffman tables, DHT left out.
    let jpg = dir.path().join("frame.jpg");
    ff(&["-huffman", "default", "-q:v", "3", "-f", "mjpeg"], &jpg);
    let full = std::fs::read(&jpg).unwrap();
    let mut stripped = Vec::new();
    let mut p = 2;
    stripped.extend_from_slice(&full[..2]);
    while full[p + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([full[p + 2], full[p + 3]]));
        if full[p + 1] != 0xC4 {
            stripped.extend_from_slice(&full[p..p + 2 + len]);
        }
        p += 2 + len;
    }
    stripped.extend_from_slice(&full[p..]);
    assert!(stripped.len() < full.len(), "the frame had tables to strip");
    let limits = glance::DecodeLimits::default();
    let name = Path::new("mjpeg");
    assert!(glance::decode_bytes(&stripped, name, limits).is_err());
    let fixed = glance::mjpeg_to_jpeg(&stripped);
    let a = glance::decode_bytes(&fixed, name, limits).unwrap();
    let b = glance::decode_bytes(&full, name, limits).unwrap();
    assert_eq!(a, b, "same pixels as the frame with its tables");
    assert_eq!(&*glance::mjpeg_to_jpeg(&full), &full[..]);
}

#[test]
fn v4l2_declarations_match_the_kernel_header() {
    need("cc");
    let header = Path::new("/usr/include/linux/videodev2.h");
    assert!(
        header.exists(),
        "linux-libc-dev is missing: scripts/test.sh installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("abi");
    let src = crate::util::root().join("tests/v4l2_abi.c");
    let st = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(st.success(), "cannot compile {}", src.display());
    let out = Command::new(&exe).output().unwrap();
    let c: std::collections::HashMap<String, u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect();
    let ours = glance::v4l2_abi();
    assert_eq!(c.len(), ours.len());
    for (name, v) in ours {
        assert_eq!(c.get(name), Some(&v), "{name}");
    }
}

#[test]
fn a_device_that_is_not_a_camera_is_refused_by_name() {
    let cfg = glance::default_camera();
    let e = glance::Camera::open(Path::new("/dev/null"), &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/dev/null") && e.contains("not a V4L2 device"),
        "{e}"
    );
    let e = glance::Camera::open(Path::new("/dev/video-nope"), &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/dev/video-nope") && e.contains("cannot open"),
        "{e}"
    );
}

#[test]
fn bench_reports_stage_percentiles() {
    let out = crate::util::glance([
        "bench", "--frames", "4", "--warmup", "1", "--format", "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["frames"], 4);
    assert!(v["frames_per_second"].as_f64().unwrap() > 0.0);
    for stage in ["decode", "preprocess", "backbone", "head", "total"] {
        let s = &v["stages"][stage];
        let (p50, p99) = (s["p50_ms"].as_f64().unwrap(), s["p99_ms"].as_f64().unwrap());
        assert!(p50 >= 0.0 && p99 >= p50, "{stage}: {s}");
    }
    assert!(v["stages"]["backbone"]["p50_ms"].as_f64().unwrap() > 1.0);
    // Capture to decision covers the whole classification.
    let latency = v["latency"]["p50_ms"].as_f64().unwrap();
    assert!(
        latency >= v["stages"]["total"]["p50_ms"].as_f64().unwrap(),
        "{v}"
    );
}

/// `GLANCE_INSN_MARKS=1` makes `bench` mark the load and each stage of each frame with a failing
/// `write(-1, NULL, 0x61a9ce00 | stage)`, which scripts/bench/arm.sh's qemu plugin counts
/// between; seen here through strace. Without the variable there is none.
#[test]
fn bench_marks_its_stages_for_the_instruction_counter() {
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("GLANCE_REQUIRE_STRACE").as_deref() != Ok("1"),
            "GLANCE_REQUIRE_STRACE=1 but strace is missing"
        );
        eprintln!("*** bench_marks_its_stages_for_the_instruction_counter: SKIPPED: no strace ***");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marks = |env: Option<&str>| -> Vec<u32> {
        let trace = dir.path().join("trace");
        let inner = crate::util::glance_command([
            "bench", "--frames", "2", "--warmup", "0", "--format", "json",
        ]);
        let mut cmd = std::process::Command::new("strace");
        cmd.args(["-f", "-qq", "-e", "trace=write", "-o"])
            .arg(&trace)
            .arg(inner.get_program())
            .args(inner.get_args())
            .env("RUST_LOG", "warn");
        match env {
            Some(v) => cmd.env("GLANCE_INSN_MARKS", v),
            None => cmd.env_remove("GLANCE_INSN_MARKS"),
        };
        crate::util::ok(&cmd.output().unwrap());
        std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let args = l.split_once("write(-1, NULL, ")?.1;
                let n: u32 = args.split(')').next()?.parse().ok()?;
                (n & !0xff == 0x61a9_ce00).then_some(n & 0xff)
            })
            .collect()
    };
    assert_eq!(
        marks(Some("1")),
        vec![1, 2, 3, 4, 5, 6, 7, 3, 4, 5, 6, 7],
        "load start, loaded, then per frame: start, decoded, prepared, backbone, decided"
    );
    assert_eq!(marks(None), Vec::<u32>::new());
    assert_eq!(marks(Some("0")), Vec::<u32>::new());
}

/// `--board` gives `bench` the profile's threads and precision; `--precision f16` runs f16 only
/// where the CPU computes it (ARMv8.2 FP16) and says which engine it got, and is tract's alone.
#[test]
fn bench_and_info_take_the_boards_precision() {
    let native_f16 = glance::cpu_has_fp16();
    let want = if native_f16 { "tract (f16)" } else { "tract" };
    let out = crate::util::glance([
        "bench", "--board", "rpi5", "--frames", "1", "--warmup", "0", "--format", "json",
    ]);
    let v: Value = serde_json::from_str(&crate::util::ok(&out)).unwrap();
    assert_eq!(v["engine"], want, "{v}");
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    assert_eq!(v["threads"], 4.min(cores), "{v}");
    for (args, engine) in [
        (vec!["info", "--precision", "f16", "--format", "json"], want),
        (
            vec!["info", "--precision", "f32", "--format", "json"],
            "tract",
        ),
        (vec!["info", "--format", "json"], "tract"),
    ] {
        let out = crate::util::glance(&args);
        let v: Value = serde_json::from_str(&crate::util::ok(&out)).unwrap();
        assert_eq!(v["backbone"]["engine"], engine, "{args:?}: {v}");
    }
    let out = crate::util::glance(["info", "--precision", "f64"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("f32 or f16"));
    #[cfg(feature = "ort")]
    {
        let out = crate::util::glance(["info", "--engine", "ort", "--precision", "f16"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--precision f16 is tract's"), "{err}");
    }
}

#[test]
fn run_refuses_bad_settings_with_a_message() {
    for (args, needle) in [
        (
            vec!["run", "--source", "-", "--control", "stdin"],
            "stdin cannot carry both",
        ),
        (
            vec!["run", "--source", "x.png", "--output", "tcp:1"],
            "serial:PATH",
        ),
        (
            vec!["run", "--source", "x.png", "--output", "serial:/dev/x@fast"],
            "baud",
        ),
        (
            vec!["run", "--source", "x.png", "--size", "big"],
            "WIDTHxHEIGHT",
        ),
        (
            vec!["run", "--source", "x.png", "--min-score", "cat=lots"],
            "not a number",
        ),
    ] {
        let out = crate::util::glance(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A missing file is reported by name and the exit code says a frame failed.
    let out = crate::util::glance(["run", "--source", "/nonexistent/*.jpg", "--heartbeat", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/*.jpg"));
}

#[test]
fn a_serial_port_that_goes_away_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let (board, peer) = (dir.path().join("board"), dir.path().join("peer"));
    let socat = || {
        need("socat");
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", board.display()))
            .arg(format!("pty,raw,echo=0,link={}", peer.display()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !(board.exists() && peer.exists()) {
            assert!(t.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    };
    let lines_from = |peer: &Path, n: usize| {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(peer)
            .unwrap();
        read_until(
            f,
            |chunk, out: &mut Vec<String>| {
                out.extend(String::from_utf8_lossy(chunk).lines().map(str::to_owned))
            },
            |l| l.len() >= n,
            60,
        )
    };
    let mut first = socat();
    let coffee = fixture("photos/coffee.png");
    let mut child =
        crate::util::glance_command(["run", "--loop", "--format", "json", "--heartbeat", "0"])
            .arg("--source")
            .arg(&coffee)
            .arg("--output")
            .arg(format!("serial:{}", board.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    assert!(
        lines_from(&peer, 3).len() >= 3,
        "no predictions before the unplug"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = std::fs::remove_file(&board);
    let _ = std::fs::remove_file(&peer);
    let mut second = socat();
    let after = lines_from(&peer, 3);
    let stderr = terminate(&mut child);
    second.kill().unwrap();
    let _ = second.wait();
    assert!(
        after.len() >= 3,
        "no predictions after the port came back\n{stderr}"
    );
    let v: Value = serde_json::from_str(after.last().unwrap()).unwrap();
    assert_eq!(v["label"], "espresso");
    assert!(stderr.contains("serial"), "{stderr}");
}

#[test]
fn an_absent_serial_port_never_stalls_the_frame_loop() {
    let coffee = fixture("photos/coffee.png");
    let out = crate::util::glance_command(["run", "--loop", "--frames", "4", "--heartbeat", "0"])
        .arg("--source")
        .arg(&coffee)
        .args(["--output", "serial:/dev/glance-no-such-port"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/dev/glance-no-such-port"), "{err}");
    assert!(err.contains("4 frames"), "{err}");
}

#[test]
fn emit_on_change_writes_only_when_the_decision_changes() {
    let coffee = fixture("photos/coffee.png");
    let out = crate::util::glance([
        "run",
        "--loop",
        "--frames",
        "4",
        "--heartbeat",
        "0",
        "--format",
        "json",
        "--emit",
        "on-change",
        "--source",
        coffee.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let lines = crate::util::stdout_json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["label"], "espresso");
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let coffee = fixture("photos/coffee.png");
    let out = crate::util::glance_command(["run", "--loop", "--frames", "6", "--heartbeat", "0"])
        .arg("--source")
        .arg(&coffee)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "20000")
        .output()
        .unwrap();
    assert!(out.status.success());
    sock.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got.first().map(String::as_str), Some("READY=1"), "{got:?}");
    assert_eq!(
        got.last().map(String::as_str),
        Some("STOPPING=1"),
        "{got:?}"
    );
    assert!(
        got.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2,
        "{got:?}"
    );
}

#[test]
fn the_watchdog_is_not_fed_while_a_live_source_gives_no_frames() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut child = crate::util::glance_command([
        "run",
        "--source",
        "-",
        "--heartbeat",
        "1",
        "--format",
        "json",
    ])
    .env("NOTIFY_SOCKET", &sock_path)
    .env("WATCHDOG_USEC", "400000")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // One frame, then a stream that stays open and silent, as a camera pipe whose camera died.
    stdin
        .write_all(&std::fs::read(fixture("photos/china.jpg")).unwrap())
        .unwrap();
    let start = Instant::now();
    let mut pings: Vec<f64> = Vec::new();
    let mut states: Vec<String> = Vec::new();
    let mut buf = [0u8; 256];
    while start.elapsed() < Duration::from_secs(14) {
        if let Ok(n) = sock.recv(&mut buf) {
            if &buf[..n] == b"WATCHDOG=1" {
                pings.push(start.elapsed().as_secs_f64());
            } else if let Some(state) = buf[..n].strip_prefix(b"STATUS=") {
                states.push(String::from_utf8_lossy(state).into_owned());
            }
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        pings.iter().any(|&t| t < 5.0),
        "fed while frames came: {pings:?}"
    );
    assert!(
        !pings.iter().any(|&t| t > 11.5),
        "fed after 10 s without a frame: {pings:?}"
    );
    assert!(err.contains("no frame for 10 s"), "{err}");
    // Status messages and systemd's STATUS= say why: healthy while frames came, then not.
    let statuses: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("status").cloned())
        .collect();
    assert_eq!(
        statuses.first().map(|s| &s["healthy"]),
        Some(&Value::Bool(true)),
        "{statuses:?}"
    );
    let last = statuses.last().expect("status messages");
    assert_eq!(last["healthy"], false, "{statuses:?}");
    assert!(
        last["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("no frame for")),
        "{last}"
    );
    assert_eq!(
        states.first().map(String::as_str),
        Some("healthy"),
        "{states:?}"
    );
    assert!(
        states
            .last()
            .is_some_and(|s| s.starts_with("NOT HEALTHY: no frame for")),
        "{states:?}"
    );
}

/// Files decoded ahead on the helper thread (the default) are decided in the same order, with
/// the same results, as decoded on the main loop; a corrupt file is reported the same way.
#[test]
fn decoding_ahead_keeps_file_order_results_and_errors() {
    let dir = photos_dir();
    std::fs::write(
        dir.path().join("broken.jpg"),
        b"\xff\xd8\xff\xe0 not really a jpeg",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--heartbeat",
            "0",
            "--format",
            "json",
            "--loop",
            "--frames",
            "9",
            "--source",
            dir.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        crate::util::glance(args)
    };
    let (ahead, inline) = (run(&[]), run(&["--no-decode-ahead"]));
    let summary = |out: &std::process::Output| -> Vec<(String, String, String)> {
        crate::util::stdout_json_lines(out)
            .iter()
            .map(|l| {
                (
                    l["source"].as_str().unwrap().to_owned(),
                    l["label"].as_str().unwrap().to_owned(),
                    format!("{:.5}", l["score"].as_f64().unwrap()),
                )
            })
            .collect()
    };
    let got = summary(&ahead);
    assert_eq!(got, summary(&inline));
    assert_eq!(got.len(), 9, "{got:?}");
    let order: Vec<&str> = got
        .iter()
        .map(|(s, _, _)| s.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        order[..4],
        ["camera.png", "chelsea.png", "coffee.png", "camera.png"],
        "files in name order, looping, the broken one skipped"
    );
    for out in [&ahead, &inline] {
        assert_eq!(
            out.status.code(),
            Some(1),
            "a frame could not be classified"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("broken.jpg"), "{stderr}");
    }
}
