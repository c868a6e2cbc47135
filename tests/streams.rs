//! MJPEG streams as users pipe them: what is not MJPEG (H.264 from a Pi camera tool, H.265,
//! raw frames) is refused with a way to ask for MJPEG; a recording is decided frame by frame
//! while a pipe keeps the newest frame; an `exec:` command is run, restarted and ended.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{fixture, glance_command, stdout_json_lines};

fn need_ffmpeg() {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ffmpeg is missing: scripts/test.sh installs it");
}

/// One second of ffmpeg's test pattern encoded by `args` (codec and container), as bytes.
fn ffmpeg_stream(args: &[&str]) -> Vec<u8> {
    need_ffmpeg();
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=10",
            "-t",
            "1",
        ])
        .args(args)
        .arg("-")
        .output()
        .unwrap();
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `count` frames: the fixture photos in turn, 320×240 MJPEG, as one recording.
fn recording(dir: &Path, count: usize) -> PathBuf {
    need_ffmpeg();
    let photos = ["coffee.png", "chelsea.png", "camera.png"];
    let mut stream = Vec::new();
    for i in 0..count {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(fixture(&format!("photos/{}", photos[i % photos.len()])))
            .args(["-vf", "scale=320:240", "-frames:v", "1", "-f", "mjpeg", "-"])
            .output()
            .unwrap();
        assert!(out.status.success());
        stream.extend(out.stdout);
    }
    let path = dir.join("clip.mjpeg");
    std::fs::write(&path, stream).unwrap();
    path
}

fn run_on_stdin(input: &[u8], extra: &[&str]) -> std::process::Output {
    let mut child = glance_command([
        "run",
        "--source",
        "-",
        "--format",
        "json",
        "--heartbeat",
        "0",
    ])
    .args(extra)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    // glance may refuse the stream and close its end before all of it is written.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn h264_h265_and_raw_frames_on_stdin_are_refused_with_how_to_ask_for_mjpeg() {
    let cases: [(&str, &[&str], &str); 4] = [
        ("H.264", &["-c:v", "libx264", "-f", "h264"], "H.264"),
        (
            "H.265",
            &[
                "-c:v",
                "libx265",
                "-x265-params",
                "log-level=error",
                "-f",
                "hevc",
            ],
            "H.265",
        ),
        (
            "raw YUYV",
            &["-pix_fmt", "yuyv422", "-f", "rawvideo"],
            "no JPEG frame",
        ),
        ("Matroska", &["-c:v", "mjpeg", "-f", "matroska"], "Matroska"),
    ];
    for (what, args, says) in cases {
        let stream = ffmpeg_stream(args);
        let t = Instant::now();
        let out = run_on_stdin(&stream, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains(says) && err.contains("--codec mjpeg"),
            "{what}: {err}"
        );
        assert!(
            stdout_json_lines(&out).is_empty(),
            "{what}: decided something"
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{what}: slow to refuse"
        );
    }
    // The same bytes as MJPEG are decided.
    let out = run_on_stdin(&ffmpeg_stream(&["-c:v", "mjpeg", "-f", "mjpeg"]), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout_json_lines(&out).is_empty());
}

#[test]
fn a_recording_is_decided_frame_by_frame_and_a_pipe_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let clip = recording(dir.path(), 12);
    let seqs = |out: &std::process::Output| -> (Vec<String>, u64) {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = stdout_json_lines(out);
        for l in &lines {
            // Capture to decision: at least the decision's own stages.
            let latency = l["latency_ms"].as_f64().unwrap();
            assert!(latency >= l["timing_ms"]["total"].as_f64().unwrap(), "{l}");
        }
        let dropped = lines.iter().map(|l| l["dropped"].as_u64().unwrap()).sum();
        let sources = lines
            .iter()
            .map(|l| l["source"].as_str().unwrap().to_owned())
            .collect();
        (sources, dropped)
    };
    let every: Vec<String> = (0..12).map(|i| format!("-#{i}")).collect();
    // A file redirected to stdin: a recording.
    let out = glance_command([
        "run",
        "--source",
        "-",
        "--format",
        "json",
        "--heartbeat",
        "0",
    ])
    .stdin(std::fs::File::open(&clip).unwrap())
    .output()
    .unwrap();
    assert_eq!(seqs(&out), (every.clone(), 0));
    // Named as a .mjpeg source: a recording too, with its own name in each decision.
    let out = glance_command(["run", "--format", "json", "--heartbeat", "0", "--source"])
        .arg(&clip)
        .output()
        .unwrap();
    let (sources, dropped) = seqs(&out);
    assert_eq!(dropped, 0);
    let want: Vec<String> = (0..12).map(|i| format!("{}#{i}", clip.display())).collect();
    assert_eq!(sources, want);
    // The same bytes through a pipe, all written at once: live, so frames that came while
    // glance was busy are dropped and counted.
    let bytes = std::fs::read(&clip).unwrap();
    let (sources, dropped) = seqs(&run_on_stdin(&bytes, &[]));
    assert_eq!(sources.len() as u64 + dropped, 12);
    assert!(dropped > 0, "a pipe kept every frame: {sources:?}");
    assert_eq!(sources.last().map(String::as_str), Some("-#11"));
    // --drop never overrides.
    assert_eq!(
        seqs(&run_on_stdin(&bytes, &["--drop", "never"])),
        (every, 0)
    );
}

#[test]
fn an_exec_source_runs_restarts_and_ends_its_command() {
    need_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let clip = recording(dir.path(), 3);
    let pidfile = dir.path().join("pids");
    // Each run of the command writes the 3 frames at 10 frames/s and exits; glance restarts it.
    let command = format!(
        "echo $$ >> '{}'; exec ffmpeg -v error -re -i '{}' -c:v copy -f mjpeg -",
        pidfile.display(),
        clip.display()
    );
    let mut child = glance_command([
        "run",
        "--format",
        "json",
        "--heartbeat",
        "0",
        "--frames",
        "8",
    ])
    .arg("--source")
    .arg(format!("exec:{command}"))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let until = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("glance did not decide 8 frames of a restarted command within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{err}");
    assert_eq!(stdout_json_lines(&out).len(), 8, "{err}");
    assert!(
        err.contains("restarting in"),
        "no restart was reported: {err}"
    );
    let pids: Vec<i32> = std::fs::read_to_string(&pidfile)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(
        pids.len() >= 3,
        "started {} times for 8 frames of 3",
        pids.len()
    );
    // Ended with glance: none of the commands is left running.
    std::thread::sleep(Duration::from_millis(500));
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "command {pid} outlived glance"
        );
    }
}

#[test]
fn an_exec_source_is_ended_on_sigterm_and_an_h264_command_is_refused_not_restarted() {
    need_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    // A command that never ends by itself.
    let command = format!(
        "echo $$ > '{}'; exec ffmpeg -v error -re -f lavfi -i testsrc=size=320x240:rate=5 \
         -c:v mjpeg -f mjpeg -",
        pidfile.display()
    );
    let mut child = glance_command(["run", "--format", "json", "--heartbeat", "0"])
        .arg("--source")
        .arg(format!("exec:{command}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let pid: i32 = loop {
        if let Some(p) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(Instant::now() < until, "the command never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(2));
    let err = crate::run::terminate(&mut child);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "ffmpeg {pid} outlived glance: {err}"
    );

    // H.264 from the command: refused once, not restarted, exit 2.
    let out = glance_command(["run", "--heartbeat", "0", "--source"])
        .arg(
            "exec:ffmpeg -v error -f lavfi -i testsrc=size=320x240:rate=10 -t 2 -c:v libx264 -f h264 -",
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("H.264") && err.contains("--codec mjpeg"),
        "{err}"
    );
    assert!(!err.contains("restarting"), "{err}");
}

#[test]
fn snapshot_writes_one_frame_from_a_stream_or_a_file() {
    need_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    // From a command: a PNG of glance's pixels, and the frame's own bytes with their layout.
    let (png, raw) = (dir.path().join("one.png"), dir.path().join("one.raw"));
    let out = glance_command(["snapshot"])
        .arg("exec:ffmpeg -v error -f lavfi -i testsrc=size=320x240:rate=10 -c:v mjpeg -f mjpeg -")
        .arg(&png)
        .arg("--raw")
        .arg(&raw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let layout: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(layout["format"], "MJPG");
    let bytes = std::fs::read(&raw).unwrap();
    assert_eq!(layout["bytes"], bytes.len());
    assert!(bytes.starts_with(&[0xff, 0xd8]));
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (320, 240));
    // From a photo: a JPEG; a file name glance cannot write is refused, nothing written.
    let jpg = dir.path().join("coffee.jpg");
    let out = glance_command(["snapshot"])
        .arg(fixture("photos/coffee.png"))
        .arg(&jpg)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(image::open(&jpg).unwrap().width(), 600);
    let gif = dir.path().join("coffee.gif");
    let out = glance_command(["snapshot"])
        .arg(fixture("photos/coffee.png"))
        .arg(&gif)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(".jpg or .png"));
    assert!(!gif.exists());
    // H.264 from a command: refused as `run` refuses it.
    let out = glance_command(["snapshot"])
        .arg("exec:ffmpeg -v error -f lavfi -i testsrc=size=320x240:rate=10 -t 1 -c:v libx264 -f h264 -")
        .arg(dir.path().join("h264.jpg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("H.264"));
}
