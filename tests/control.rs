//! `glance run --control unix:PATH` and `glance ctl`: commands beside a camera on stdin, from
//! several clients, with replies to each; the socket file's life.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{fixture, glance_command, p};

fn ctl(socket: &Path, commands: &[&str]) -> std::process::Output {
    glance_command(["ctl"])
        .arg(socket)
        .args(commands)
        .output()
        .unwrap()
}

fn wait_for_socket(socket: &Path, child: &mut std::process::Child) {
    let until = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(socket).is_err() {
        if let Some(s) = child.try_wait().unwrap() {
            panic!(
                "glance exited ({s}) before listening on {}",
                socket.display()
            );
        }
        assert!(Instant::now() < until, "no socket at {}", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_control_socket_takes_commands_beside_a_stream_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("glance.sock");
    // An MJPEG stream on stdin (a piped camera), commands on the socket.
    let mut child = glance_command([
        "run",
        "--source",
        "-",
        "--format",
        "json",
        "--heartbeat",
        "0",
    ])
    .arg("--control")
    .arg(format!("unix:{}", p(&socket)))
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let frame = std::fs::read(fixture("photos/china.jpg")).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // 10 frames a second until glance goes away.
        while stdin.write_all(&frame).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    wait_for_socket(&socket, &mut child);

    // Two clients at once, each answered on its own connection, in its own format.
    let mut a = UnixStream::connect(&socket).unwrap();
    let mut b = UnixStream::connect(&socket).unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    }
    a.write_all(b"list\n").unwrap();
    b.write_all(b"{\"command\":\"status\",\"id\":4}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&a).read_line(&mut line).unwrap();
    assert_eq!(line, "ok: the store is empty\n");
    line.clear();
    let mut b_lines = BufReader::new(b.try_clone().unwrap());
    b_lines.read_line(&mut line).unwrap();
    let status: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(status["status"]["store_len"], 0, "{status}");
    // The stream's frames are being decided (the socket opens before the first one is).
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        b.write_all(b"{\"command\":\"status\"}\n").unwrap();
        line.clear();
        b_lines.read_line(&mut line).unwrap();
        let status: serde_json::Value = serde_json::from_str(&line).unwrap();
        if status["status"]["frames"].as_u64().unwrap() > 0 {
            assert!(
                status["status"]["latency_p50_ms"].as_f64().unwrap() > 0.0,
                "{status}"
            );
            break;
        }
        assert!(Instant::now() < until, "no frame decided in 60 s: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // glance ctl: an enrollment of frames from the stream, then list; exit 0.
    let out = ctl(&socket, &["enroll mug 3", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("ok: enrolled 3 frames as `mug`"),
        "{text}"
    );
    assert_eq!(lines[1], "ok: mug (3)");
    // A refused command: its error printed, exit 1. JSON in, JSON out.
    let out = ctl(
        &socket,
        &[r#"{"command":"forget","label":"nothing","id":7}"#],
    );
    assert_eq!(out.status.code(), Some(1));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["reply"]["id"], 7);
    assert_eq!(reply["reply"]["ok"], false);
    // Commands from ctl's stdin.
    let mut c = glance_command(["ctl"])
        .arg(&socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(b"forget mug\nlist\n")
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: forgot 3 examples of `mug`\nok: the store is empty\n"
    );
    // A second glance cannot take the same socket.
    let second = glance_command(["run", "--source"])
        .arg(fixture("photos/coffee.png"))
        .arg("--control")
        .arg(format!("unix:{}", p(&socket)))
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("listening"));

    drop((a, b));
    crate::run::terminate(&mut child);
    feeder.join().unwrap();
    assert!(!socket.exists(), "the socket file outlived glance");
    // With nobody listening, ctl says so and exits 2.
    let out = ctl(&socket, &["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stale.sock");
    // What a glance killed with -9 leaves: the file, nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let mut child = glance_command(["run", "--loop", "--heartbeat", "0", "--source"])
        .arg(fixture("photos/coffee.png"))
        .arg("--control")
        .arg(format!("unix:{}", p(&socket)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_socket(&socket, &mut child);
    let out = ctl(&socket, &["status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("status: "));
    crate::run::terminate(&mut child);
}
