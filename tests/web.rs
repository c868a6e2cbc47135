//! `glance run --web`: the console's endpoints over real HTTP (the page, state, snapshot, the
//! MJPEG stream part by part, commands, health, Prometheus metrics, basic auth), and the page in
//! a real headless Chromium (tests/browser/web_console.py).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    s
}

fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (status, headers)
}

/// One request with `Connection: close`; the body by Content-Length (what tiny_http sends for
/// these endpoints) or to the end.
fn http(port: u16, method: &str, path: &str, body: &str, auth: Option<&str>) -> Reply {
    let mut s = connect(port);
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    let mut out = Vec::new();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    match len {
        _ if chunked => loop {
            let mut size = String::new();
            r.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).expect("chunk");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        },
        Some(n) => {
            out.resize(n, 0);
            r.read_exact(&mut out).expect("body");
        }
        None => {
            r.read_to_end(&mut out).expect("body");
        }
    }
    Reply {
        status,
        headers,
        body: out,
    }
}

fn start_glance(port: u16, extra: &[&str]) -> Running {
    let mut args = vec![
        "run".to_string(),
        "--source".into(),
        p(&fixture("photos")),
        "--loop".into(),
        "--web".into(),
        format!("127.0.0.1:{port}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn_glance(&args)
}

fn wait_ready(port: u16) {
    let until = Instant::now() + Duration::from_secs(90);
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/healthz", "", None).status == 200
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the web console did not come up within 90 s");
}

/// Reads `n` parts of a multipart/x-mixed-replace stream: each a decodable JPEG.
fn stream_parts(port: u16, n: usize) -> Vec<(u32, u32)> {
    let mut s = connect(port);
    write!(s, "GET /stream.mjpg HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200);
    let ct = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        ct.starts_with("multipart/x-mixed-replace; boundary=frame"),
        "{ct}"
    );
    let mut sizes = Vec::new();
    while sizes.len() < n {
        let mut line = String::new();
        r.read_line(&mut line).expect("boundary");
        if line.trim().is_empty() {
            continue;
        }
        assert_eq!(line.trim_end(), "--frame");
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).expect("part header");
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.strip_prefix("Content-Length: ") {
                len = v.parse().expect("length");
            } else {
                assert_eq!(h, "Content-Type: image/jpeg");
            }
        }
        let mut jpeg = vec![0u8; len];
        r.read_exact(&mut jpeg).expect("part");
        let img = image::load_from_memory(&jpeg).expect("each part is a JPEG");
        sizes.push((img.width(), img.height()));
    }
    sizes
}

#[test]
fn the_console_serves_its_page_state_pictures_commands_and_metrics() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("shop.store");
    let glance = start_glance(port, &["--store", &p(&store)]);
    wait_ready(port);

    let page = http(port, "GET", "/", "", None);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let html = String::from_utf8(page.body).unwrap();
    assert!(
        html.contains("<img id=\"live\" src=\"stream.mjpg\""),
        "the live view"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN, no outside link"
    );

    let until = Instant::now() + Duration::from_secs(60);
    let state = loop {
        let s = http(port, "GET", "/api/state", "", None).json();
        if !s["decision"].is_null() || Instant::now() > until {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let label = state["decision"]["label"].as_str().expect("a decision");
    assert!(!label.is_empty());
    assert!(state["decision"]["top_k"].as_array().unwrap().len() >= 2);

    let snap = http(port, "GET", "/snapshot.jpg", "", None);
    assert_eq!(snap.status, 200);
    assert_eq!(snap.header("content-type"), Some("image/jpeg"));
    let img = image::load_from_memory(&snap.body).expect("a JPEG");
    assert!(img.width() >= 224, "{}", img.width());

    let parts = stream_parts(port, 3);
    assert_eq!(parts.len(), 3);

    let r = http(port, "POST", "/api/cmd", "enroll mug 3", None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let msg = r.json()["reply"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("enrolled 3 frames as `mug`"), "{msg}");
    let r = http(port, "POST", "/api/cmd", r#"{"command":"list"}"#, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["reply"]["list"][0]["label"], "mug");
    let store_state = http(port, "GET", "/api/state", "", None).json();
    assert_eq!(store_state["store"][0]["examples"], 3, "{store_state}");
    let bad = http(port, "POST", "/api/cmd", "frobnicate", None);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["reply"]["ok"], false);
    let refused = http(port, "POST", "/api/cmd", "forget nothing-here", None);
    assert_eq!(refused.status, 422);
    let status = http(port, "POST", "/api/cmd", "status", None).json();
    assert!(status["status"]["frames"].as_u64().unwrap() > 0);
    assert_eq!(http(port, "GET", "/api/cmd", "", None).status, 405);
    assert_eq!(http(port, "GET", "/nothing", "", None).status, 404);

    let metrics = http(port, "GET", "/metrics", "", None);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(metrics.body).unwrap();
    for name in [
        "glance_frames_total",
        "glance_decisions_total{label=",
        "glance_stage_seconds_bucket{stage=\"backbone\",le=\"+Inf\"}",
        "glance_store_examples",
        "glance_uptime_seconds",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    assert_eq!(http(port, "GET", "/readyz", "", None).status, 200);

    stop(glance);
    // The enrolment reached the store file (saved on every change, and at exit).
    let bytes = std::fs::read(&store).expect("the store file");
    assert!(bytes.windows(3).any(|w| w == b"mug"));
}

#[test]
fn basic_auth_guards_everything_but_the_health_checks() {
    let port = free_port();
    let glance = start_glance(port, &["--web-auth", "ann:s3cret"]);
    wait_ready(port);
    for path in ["/", "/api/state", "/snapshot.jpg", "/metrics"] {
        let r = http(port, "GET", path, "", None);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"glance\""));
        let wrong = http(port, "GET", path, "", Some("Basic YW5uOndyb25n"));
        assert_eq!(wrong.status, 401, "{path} with a wrong password");
    }
    // base64("ann:s3cret")
    let ok = http(
        port,
        "GET",
        "/api/state",
        "",
        Some("Basic YW5uOnMzY3JldA=="),
    );
    assert_eq!(ok.status, 200);
    assert_eq!(http(port, "POST", "/api/cmd", "list", None).status, 401);
    assert_eq!(http(port, "GET", "/healthz", "", None).status, 200);
    stop(glance);
}

#[test]
fn the_page_works_in_headless_chromium() {
    let Some(python) = std::env::var_os("GLANCE_BROWSER_PY") else {
        assert!(
            std::env::var_os("GLANCE_REQUIRE_BROWSER").is_none(),
            "GLANCE_REQUIRE_BROWSER is set but GLANCE_BROWSER_PY is not"
        );
        eprintln!(
            "SKIPPED: the_page_works_in_headless_chromium needs GLANCE_BROWSER_PY (a python \
             with selenium and prometheus-client; scripts/test.sh sets it)"
        );
        return;
    };
    let port = free_port();
    let glance = start_glance(port, &[]);
    wait_ready(port);
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("console.png");
    let out = Command::new(python)
        .arg(root().join("tests/browser/web_console.py"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .arg(&shot)
        .output()
        .expect("python runs");
    stop(glance);
    assert!(
        out.status.success(),
        "web_console.py: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    eprintln!("chromium saw: {seen}");
    assert_eq!(seen["store"]["mug"], 3);
    assert!(seen["natural_width"].as_u64().unwrap() >= 224);
    let shot = image::open(&shot).expect("the screenshot");
    assert!(shot.width() >= 700);
}
