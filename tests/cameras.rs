//! glance against the kernel's own camera drivers: vivid (the virtual test camera: YUYV, UYVY,
//! NV12, YU12, and a Disconnect control that acts as a USB unplug) and v4l2loopback fed MJPEG
//! by ffmpeg. They need those drivers loaded, so they are ignored in the normal run;
//! `scripts/ci/camera-vm.sh` boots Debian's kernel in a throwaway VM, loads the drivers and runs
//! them there (`--ignored cameras::`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{fixture, glance_command, mean_abs_diff};

/// The node whose driver is `driver` (as `glance cameras` reports it).
fn node(driver: &str) -> PathBuf {
    let out = glance_command(["cameras", "--format", "json"])
        .output()
        .unwrap();
    let found: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    found
        .iter()
        .find(|v| v["driver"] == driver)
        .and_then(|v| v["path"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| {
            let drivers: Vec<&Value> = found.iter().map(|v| &v["driver"]).collect();
            panic!("no {driver} node among {drivers:?}")
        })
}

fn v4l2_ctl(dev: &Path, args: &[&str]) -> String {
    let out = Command::new("v4l2-ctl")
        .arg("-d")
        .arg(dev)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "v4l2-ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// vivid showing a still picture: colour bars, no text, so every frame is the same.
fn vivid_still() -> PathBuf {
    let dev = node("vivid");
    v4l2_ctl(&dev, &["-c", "test_pattern=0,osd_text_mode=2"]);
    dev
}

/// ffmpeg's own capture of one frame of `dev` in `input_format`, as RGB.
fn ffmpeg_frame(dev: &Path, input_format: &str, size: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "v4l2",
            "-input_format",
            input_format,
            "-video_size",
            size,
            "-i",
        ])
        .arg(dev)
        .args(["-frames:v", "1", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Whether `v` is an unhealthy status with a problem that names `dev` and says `why`.
fn unhealthy_for(v: &Value, dev: &Path, why: &str) -> bool {
    let dev = dev.to_string_lossy();
    v["status"]["healthy"] == false
        && v["status"]["problems"].as_array().is_some_and(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .any(|s| s.contains(dev.as_ref()) && s.contains(why))
        })
}

/// The share of one core glance may use while it waits for a camera: under 1% natively.
const CPU_WAITING: f64 = 0.01;
/// The same bound in the camera VM. Its CPU is emulated (TCG), and there each wake-up costs
/// about a millisecond: the same wait measured 0.20% natively and 0.8–3.0% in the VM, where this
/// bound only catches busy waiting; the wake-ups below are the VM's measure of idleness.
const CPU_WAITING_VM: f64 = 0.05;
/// Wake-ups a second (context switches of all threads) while waiting, in the VM and natively:
/// a missing camera is looked for 4 times a second, the run loop turns 4 times a second, the
/// decode-ahead worker twice, and a heartbeat each second here.
const WAKEUPS_WAITING: f64 = 40.0;
/// How long the work of frames already taken may go on once a source is gone: a frame takes
/// 5–28 s in the VM (the longest seen with ffmpeg writing beside it, on CI's machine).
const SETTLE_S: u64 = 60;

/// A running `glance run` whose stdout (JSON lines) and stderr lines arrive on channels.
struct Run {
    child: Child,
    stdout: mpsc::Receiver<Value>,
    /// Each stderr line with the moment it was read.
    stderr: mpsc::Receiver<(Instant, String)>,
}

impl Run {
    /// `glance run` on the fp32 backbone file: the int8-weight default gives the same
    /// decisions but is folded to fp32 as it loads (2.6 G instructions against 0.5 G, BENCHMARKS
    /// "ARM: instructions per frame"), which under the VM's emulation is seconds a start.
    fn start(args: &[&str]) -> Self {
        let model = crate::util::model_file("efficientnet_lite0_fp32.onnx");
        let model = model.to_str().unwrap();
        let mut child = glance_command([
            "run",
            "--format",
            "json",
            "--threads",
            "2",
            "--model",
            model,
        ])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let (out_tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = out_tx.send(v);
                }
            }
        });
        let (err_tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("glance: {line}");
                let _ = err_tx.send((Instant::now(), line));
            }
        });
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Drops the stdout lines read so far: what comes after is the outcome of what the test
    /// does next. (A decision of a frame taken before an unplug, finished during the wait,
    /// must not count as a decision after the replug.)
    fn forget_out(&self) {
        while self.stdout.try_recv().is_ok() {}
    }

    /// The next stdout line that `pred` accepts, within `secs`.
    fn wait_out(&self, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("no {what} within {secs} s"),
            }
        }
    }

    /// When the next stderr line containing `needle` arrived, within `secs`.
    fn wait_err(&self, secs: u64, needle: &str) -> Instant {
        self.wait_err_after(Instant::now() - Duration::from_secs(3600), secs, needle)
    }

    /// When the first stderr line containing `needle` that arrived after `since` did, within
    /// `secs`: lines logged before an event (the first "streaming", before an unplug) do not
    /// count as its outcome.
    fn wait_err_after(&self, since: Instant, secs: u64, needle: &str) -> Instant {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok((at, l)) if at >= since && l.contains(needle) => return at,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} within {secs} s"),
            }
        }
    }

    /// CPU seconds (user + system) the process has used, from /proc.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may hold spaces): utime is the 12th, stime 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        // SAFETY: sysconf reads a constant.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    /// Context switches (voluntary and not) of all the process's threads so far, from /proc:
    /// how often it wakes, which emulation does not inflate as it does CPU time.
    fn wakeups(&self) -> u64 {
        let mut n = 0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.child.id())).unwrap() {
            let status =
                std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
            n += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
        n
    }

    /// Over 5 s, while `what`: under `cpu` of a core and WAKEUPS_WAITING wake-ups a second.
    /// The 5 s start once a 1-s window has been under `cpu` (within SETTLE_S): a frame
    /// captured before the source went may still be in the backbone, and under the VM's
    /// emulation that takes up to 20 s of both cores; its work is not the wait's. A wait that
    /// spins never settles and fails here too.
    fn assert_idle(&self, what: &str, cpu: f64) {
        let settled = Instant::now();
        loop {
            let (c0, t0) = (self.cpu_seconds(), Instant::now());
            std::thread::sleep(Duration::from_secs(1));
            let share = (self.cpu_seconds() - c0) / t0.elapsed().as_secs_f64();
            if share < cpu {
                break;
            }
            assert!(
                settled.elapsed() < Duration::from_secs(SETTLE_S),
                "while {what}: still {:.2}% of a core after {SETTLE_S} s",
                share * 100.0
            );
        }
        eprintln!(
            "while {what}: settled after {:.1} s",
            settled.elapsed().as_secs_f64()
        );
        let (c0, w0, t0) = (self.cpu_seconds(), self.wakeups(), Instant::now());
        std::thread::sleep(Duration::from_secs(5));
        let dt = t0.elapsed().as_secs_f64();
        let share = (self.cpu_seconds() - c0) / dt;
        let wakeups = (self.wakeups() - w0) as f64 / dt;
        eprintln!(
            "while {what}: {:.2}% of a core, {wakeups:.1} wake-ups/s",
            share * 100.0
        );
        assert!(share < cpu, "{:.2}% of a core while waiting", share * 100.0);
        assert!(
            wakeups < WAKEUPS_WAITING,
            "{wakeups:.1} wake-ups/s while waiting"
        );
    }

    /// SIGTERM: glance first finishes the frame in the backbone, which under the VM's emulation
    /// takes up to SETTLE_S (28 s measured in a CI run), then stops within 20 s.
    fn stop(mut self) {
        crate::run::terminate_within(&mut self.child, SETTLE_S + 20);
    }
}

impl Drop for Run {
    /// A test that fails must not leave glance holding the camera for the next one.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The same wait as an unplugged camera's (a missing node, looked for four times a second,
/// the run loop turning for commands and heartbeats), on this machine rather than under the
/// VM's emulation: it runs in the normal test suite.
#[test]
fn waiting_for_a_missing_camera_costs_under_1_percent_of_a_core() {
    let run = Run::start(&[
        "--source",
        "/dev/video-glance-test-missing",
        "--camera-wait",
        "60",
        "--heartbeat",
        "1",
    ]);
    let s = run.wait_out(30, "a heartbeat", |v| v.get("status").is_some());
    assert_eq!(s["status"]["healthy"], false, "{s}");
    run.assert_idle("waiting for a missing camera", CPU_WAITING);
    run.stop();
}

#[test]
#[ignore = "needs the kernel's camera drivers: scripts/ci/camera-vm.sh runs it in a VM"]
fn vivid_formats_convert_like_ffmpeg_and_are_decided() {
    let dev = vivid_still();
    let dir = tempfile::tempdir().unwrap();
    for (flag, fourcc, ffmpeg) in [
        ("yuyv", "YUYV", "yuyv422"),
        ("uyvy", "UYVY", "uyvy422"),
        ("nv12", "NV12", "nv12"),
        ("yu12", "YU12", "yuv420p"),
    ] {
        // glance's pixels of one frame, and ffmpeg's of another (the picture is still).
        let png = dir.path().join(format!("{flag}.png"));
        let raw = dir.path().join(format!("{flag}.raw"));
        let out = glance_command(["snapshot"])
            .arg(&dev)
            .arg(&png)
            .args(["--raw"])
            .arg(&raw)
            .args(["--pixel-format", flag, "--size", "640x480", "--skip", "2"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let layout: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (layout["format"].as_str(), layout["width"].as_u64()),
            (Some(ffmpeg), Some(640))
        );
        let ours = image::open(&png).unwrap().to_rgb8();
        let theirs = ffmpeg_frame(&dev, ffmpeg, "640x480");
        let diff = mean_abs_diff(ours.as_raw(), &theirs);
        eprintln!("{fourcc}: mean |Δ| {diff:.3} against ffmpeg's capture");
        assert!(
            diff < 3.0,
            "{fourcc}: mean |Δ| {diff} against ffmpeg's capture"
        );

        // Decisions arrive, for a packed and a semi-planar format (the run loop converts as
        // the snapshot did; each run costs about half a minute in the VM).
        if !matches!(flag, "yuyv" | "nv12") {
            continue;
        }
        let mut run = Run::start(&[
            "--source",
            dev.to_str().unwrap(),
            "--pixel-format",
            flag,
            "--frames",
            "1",
        ]);
        run.wait_err(60, &format!("streaming 640×480 {fourcc}"));
        let d = run.wait_out(120, "decision", |v| v.get("label").is_some());
        assert!(d["latency_ms"].as_f64().unwrap() > 0.0, "{d}");
        let status = run.child.wait().unwrap();
        assert!(status.success(), "{flag}: {status}");
    }
}

#[test]
#[ignore = "needs the kernel's camera drivers: scripts/ci/camera-vm.sh runs it in a VM"]
fn size_and_fps_are_what_the_driver_reports_while_glance_streams() {
    let dev = vivid_still();
    let run = Run::start(&[
        "--source",
        dev.to_str().unwrap(),
        "--size",
        "320x180",
        "--fps",
        "5",
        "--heartbeat",
        "0",
    ]);
    run.wait_err(60, "streaming 320×180 YUYV at 5.000 fps");
    // Asked of the driver by another process while glance streams.
    let fmt = v4l2_ctl(&dev, &["--get-fmt-video", "--get-parm"]);
    assert!(fmt.contains("Width/Height      : 320/180"), "{fmt}");
    assert!(fmt.contains("Frames per second: 5.000"), "{fmt}");
    run.stop();
}

#[test]
#[ignore = "needs the kernel's camera drivers: scripts/ci/camera-vm.sh runs it in a VM"]
fn an_unplugged_camera_is_reported_waited_for_cheaply_and_resumed_within_2_s() {
    let dev = vivid_still();
    let run = Run::start(&[
        "--source",
        dev.to_str().unwrap(),
        "--heartbeat",
        "1",
        "--size",
        "320x180",
    ]);
    run.wait_out(120, "a first decision", |v| v.get("label").is_some());
    // A handle held here keeps vivid disconnected after glance lets go of its own: vivid comes
    // back when the last handle closes, as a USB camera comes back when plugged in again.
    let holder = std::fs::File::open(&dev).unwrap();
    v4l2_ctl(&dev, &["-c", "disconnect=1"]);
    let gone = run.wait_out(90, "a status saying the camera is gone", |v| {
        unhealthy_for(v, &dev, "")
    });
    eprintln!("status while unplugged: {gone}");
    // Once the frame that was being decided is done (two heartbeats with the same count),
    // waiting costs (almost) nothing: CPU time over 5 s, from /proc.
    let mut last = gone["status"]["frames"].as_u64();
    loop {
        let s = run.wait_out(120, "a heartbeat", |v| v.get("status").is_some());
        let now = s["status"]["frames"].as_u64();
        if now == last {
            break;
        }
        last = now;
    }
    run.assert_idle("the camera is gone", CPU_WAITING_VM);
    run.forget_out();
    // Plugged in again: streaming within 2 s, and decisions again.
    drop(holder);
    let back = Instant::now();
    let streaming = run.wait_err_after(back, 30, "streaming 320×180");
    let took = streaming.duration_since(back);
    eprintln!(
        "streaming again {:.2} s after the camera came back",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(2), "resumed after {took:?}");
    run.wait_out(120, "a decision after the camera came back", |v| {
        v.get("label").is_some()
    });
    run.wait_out(30, "a healthy status", |v| v["status"]["healthy"] == true);
    run.stop();
}

#[test]
#[ignore = "needs the kernel's camera drivers: scripts/ci/camera-vm.sh runs it in a VM"]
fn mjpeg_through_v4l2loopback_is_decided_like_the_photo() {
    let _reload = LoopbackBack;
    let dev = fresh_loopback();
    let feeder = Feeder::start(&dev);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("loop.png");
    let out = glance_command(["snapshot"])
        .arg(&dev)
        .arg(&png)
        .args(["--skip", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = image::open(&png).unwrap().to_rgb8();
    let theirs = ffmpeg_frame(&dev, "mjpeg", "640x480");
    let diff = mean_abs_diff(ours.as_raw(), &theirs);
    eprintln!("MJPEG via v4l2loopback: mean |Δ| {diff:.3} against ffmpeg's capture");
    assert!(diff < 3.0, "mean |Δ| {diff}");
    let mut run = Run::start(&["--source", dev.to_str().unwrap(), "--frames", "2"]);
    run.wait_err(60, "streaming 640×480 MJPG");
    let d = run.wait_out(120, "a decision", |v| v.get("label").is_some());
    assert_eq!(d["label"], "espresso", "{d}");
    let _ = run.child.wait();
    drop(feeder);
}

/// The options the VM loads v4l2loopback with (scripts/ci/camera-vm-inside.sh).
const LOOPBACK_OPTIONS: [&str; 3] = [
    "devices=1",
    "exclusive_caps=1",
    "card_label=glance loopback",
];

#[test]
#[ignore = "needs the kernel's camera drivers: scripts/ci/camera-vm.sh runs it in a VM"]
fn a_removed_loopback_device_is_waited_for_cheaply_and_resumed_within_2_s() {
    // Dropped last: after glance and ffmpeg have let go of the device.
    let _reload = LoopbackBack;
    let dev = fresh_loopback();
    let feeder = Feeder::start(&dev);
    let run = Run::start(&["--source", dev.to_str().unwrap(), "--heartbeat", "1"]);
    run.wait_out(120, "a first decision", |v| v.get("label").is_some());
    // The writer goes: the device gives no more frames, without an error. glance closes it
    // after its stall time and lets go of it between attempts to open it again, so the
    // device can be removed (v4l2loopback 0.12 removes its devices with the module).
    drop(feeder);
    run.wait_err(60, "no frame for");
    let until = Instant::now() + Duration::from_secs(60);
    while !Command::new("modprobe")
        .args(["-r", "v4l2loopback"])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(
            Instant::now() < until,
            "v4l2loopback stayed in use: glance never let go of the stalled device"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!dev.exists());
    let gone = run.wait_out(60, "a status saying the device is gone", |v| {
        unhealthy_for(v, &dev, "No such file")
    });
    eprintln!("status while the device is gone: {gone}");
    run.assert_idle("the loopback device is gone", CPU_WAITING_VM);
    run.forget_out();
    // Added again, and written to again: streaming within 2 s of it being a camera again.
    let reloaded = Instant::now();
    assert!(load_loopback(), "modprobe v4l2loopback failed");
    assert_eq!(
        node("v4l2 loopback"),
        dev,
        "the device came back under another name"
    );
    let feeder = Feeder::start(&dev);
    let back = Instant::now();
    // Any "streaming" after the reload is the resume (the device did not exist before it).
    // glance may see the device capture before this test's own poll does: then it counts as
    // no time at all.
    let streaming = run.wait_err_after(reloaded, 30, "streaming 640×480 MJPG");
    let took = streaming.saturating_duration_since(back);
    eprintln!(
        "streaming again {:.2} s after the loopback device was a camera again",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(2), "resumed after {took:?}");
    let d = run.wait_out(120, "a decision after the device came back", |v| {
        v.get("label").is_some()
    });
    assert_eq!(d["label"], "espresso", "{d}");
    run.wait_out(30, "a healthy status", |v| v["status"]["healthy"] == true);
    run.stop();
    drop(feeder);
}

/// v4l2loopback removed and loaded again, and its node. v4l2loopback 0.12.7 (Debian 12) stops
/// offering the output side once a writer that used write() (ffmpeg) has closed it, so a
/// second writer cannot open it until the module is loaded again: each test starts afresh.
fn fresh_loopback() -> PathBuf {
    assert!(remove_loopback(), "v4l2loopback stayed in use");
    assert!(load_loopback(), "modprobe v4l2loopback failed");
    node("v4l2 loopback")
}

/// Removes v4l2loopback, retrying for 5 s while something still has a device open.
fn remove_loopback() -> bool {
    for _ in 0..50 {
        let removed = Command::new("modprobe")
            .args(["-r", "v4l2loopback"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if removed {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn load_loopback() -> bool {
    Command::new("modprobe")
        .arg("v4l2loopback")
        .args(LOOPBACK_OPTIONS)
        .status()
        .is_ok_and(|s| s.success())
}

/// Leaves v4l2loopback loaded when dropped, so that a test that fails after removing it does
/// not fail the tests after it too.
struct LoopbackBack;

impl Drop for LoopbackBack {
    fn drop(&mut self) {
        if !Path::new("/sys/module/v4l2loopback").exists() {
            load_loopback();
        }
    }
}

/// ffmpeg writing the coffee photo as MJPEG into a v4l2loopback device, 10 frames a second;
/// started once the device shows as a camera (with exclusive_caps, once it has a writer).
struct Feeder(Child);

impl Feeder {
    fn start(dev: &Path) -> Self {
        let child = Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-loop", "1", "-i"])
            .arg(fixture("photos/coffee.png"))
            .args([
                "-vf",
                "scale=640:480",
                "-r",
                "10",
                "-c:v",
                "mjpeg",
                "-q:v",
                "3",
                "-f",
                "v4l2",
            ])
            .arg(dev)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let feeder = Self(child);
        let until = Instant::now() + Duration::from_secs(30);
        while !v4l2_ctl(dev, &["--info"]).contains("Video Capture") {
            assert!(
                Instant::now() < until,
                "the loopback device never became a capture device"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        feeder
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
