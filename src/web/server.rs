//! The console's server (cargo feature `web`): tiny_http's listener, one thread per request,
//! and the state the run loop updates (see [`super`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tiny_http::{Header, Method, Request, Response, Server};

use super::{metrics, WebConfig, MAX_STREAMS};
use crate::control::ControlEvent;
use crate::decision::Decided;
use crate::encode::{self, Format, ReplyBody, StatusInfo};
use crate::view::Views;

/// The page: HTML, CSS and script in one file.
pub(crate) const PAGE: &str = include_str!("page.html");

/// Requests handled at once.
const MAX_REQUESTS: usize = 32;

/// How long `POST /api/cmd` waits for its reply (an enrollment waits for its frames).
const REPLY_WAIT: Duration = Duration::from_secs(60);

/// How long pictures keep being made after a client last asked for one.
const VIEW_LINGER: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    picture: Option<(u64, Arc<Vec<u8>>)>,
    decision: Option<Decided>,
    status: Option<StatusInfo>,
    mqtt_dropped: Option<u64>,
    store: Vec<(String, usize)>,
    replies: HashMap<u64, serde_json::Value>,
    last_loop: Option<Instant>,
}

/// What the run loop and the request threads share.
pub(crate) struct WebShared {
    state: Mutex<State>,
    changed: Condvar,
    metrics: Mutex<metrics::Metrics>,
    commands: Mutex<Sender<ControlEvent>>,
    next_ticket: AtomicU64,
    auth: Option<String>,
    stream_every: Duration,
    streams: AtomicUsize,
    requests: AtomicUsize,
    last_client: Mutex<Option<Instant>>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running console.
pub(crate) struct Web {
    shared: Arc<WebShared>,
    server: Arc<Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    views: Views,
    picture_seq: u64,
}

impl Web {
    /// Listens on the address; commands posted to `/api/cmd` go to `commands`.
    pub(crate) fn start(
        config: &WebConfig,
        views: Views,
        commands: Sender<ControlEvent>,
    ) -> std::io::Result<Self> {
        let server = Server::http(config.addr).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("web console on {}: {e}", config.addr),
            )
        })?;
        let server = Arc::new(server);
        let auth = config.auth.as_ref().map(|a| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(a.as_bytes())
            )
        });
        let shared = Arc::new(WebShared {
            state: Mutex::default(),
            changed: Condvar::new(),
            metrics: Mutex::default(),
            commands: Mutex::new(commands),
            next_ticket: AtomicU64::new(1),
            auth,
            stream_every: Duration::from_secs_f32(1.0 / config.stream_fps),
            streams: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            last_client: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let (s, srv) = (Arc::clone(&shared), Arc::clone(&server));
        let thread = std::thread::Builder::new()
            .name("web".into())
            .spawn(move || accept_loop(&s, &srv))?;
        log::info!("web console on http://{}/", config.addr);
        Ok(Self {
            shared,
            server,
            thread: Some(thread),
            views,
            picture_seq: 0,
        })
    }

    /// A decided frame and its picture.
    pub(crate) fn frame(&mut self, d: &Decided, picture: Option<Arc<Vec<u8>>>) {
        lock(&self.shared.metrics).decided(&d.prediction.label, &d.prediction.timing_ms);
        // Kept as it is; serialised only when a client asks (`/api/state`).
        let mut st = lock(&self.shared.state);
        st.decision = Some(d.clone());
        if let Some(p) = picture {
            self.picture_seq += 1;
            st.picture = Some((self.picture_seq, p));
        }
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Once a second from the run loop: the status report, and whether pictures are wanted.
    pub(crate) fn tick(&self, status: StatusInfo, mqtt_dropped: Option<u64>) {
        {
            let mut st = lock(&self.shared.state);
            st.status = Some(status);
            st.mqtt_dropped = mqtt_dropped;
            st.last_loop = Some(Instant::now());
        }
        let recent = lock(&self.shared.last_client).is_some_and(|t| t.elapsed() < VIEW_LINGER);
        self.views
            .set_wanted(recent || self.shared.streams.load(Ordering::Relaxed) > 0);
    }

    /// The store's labels and counts changed.
    pub(crate) fn store(&self, counts: Vec<(String, usize)>) {
        lock(&self.shared.state).store = counts;
    }

    /// The reply to the request with `ticket`.
    pub(crate) fn reply(&self, ticket: u64, body: &ReplyBody) {
        let v = serde_json::from_slice(&encode::encode_reply(None, body, Format::Json))
            .unwrap_or_default();
        lock(&self.shared.state).replies.insert(ticket, v);
        self.shared.changed.notify_all();
    }

    /// A status report asked for with `POST /api/cmd status`.
    pub(crate) fn status_reply(&self, ticket: u64, status: &StatusInfo) {
        let v = serde_json::from_slice(&encode::encode_status(status, Format::Json))
            .unwrap_or_default();
        lock(&self.shared.state).replies.insert(ticket, v);
        self.shared.changed.notify_all();
    }

    /// Stops accepting; streams end at their next part.
    pub(crate) fn finish(mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(s: &Arc<WebShared>, server: &Server) {
    while !s.stop.load(Ordering::Relaxed) {
        let request = match server.recv() {
            Ok(r) => r,
            Err(e) => {
                log::warn!("web: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if s.requests.load(Ordering::Relaxed) >= MAX_REQUESTS {
            let _ = request.respond(text(503, "busy"));
            continue;
        }
        s.requests.fetch_add(1, Ordering::Relaxed);
        let sh = Arc::clone(s);
        let spawned = std::thread::Builder::new()
            .name("web-request".into())
            .spawn(move || {
                handle(&sh, request);
                sh.requests.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            s.requests.fetch_sub(1, Ordering::Relaxed);
            log::warn!("web: cannot start a request thread: {e}");
        }
    }
}

fn text(code: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(code)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

fn json(code: u16, v: &serde_json::Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(v.to_string())
        .with_status_code(code)
        .with_header(header("Content-Type", "application/json"))
}

fn header(name: &'static str, value: &'static str) -> Header {
    // Only this module's ASCII constants come here, never a client's bytes.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("an ASCII header constant")
}

fn authorised(s: &WebShared, request: &Request) -> bool {
    let Some(expected) = &s.auth else {
        return true;
    };
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .is_some_and(|h| h.value.as_str() == expected)
}

fn handle(s: &WebShared, mut request: Request) {
    let path = request.url().split('?').next().unwrap_or("/").to_string();
    let method = request.method().clone();
    let open = matches!(path.as_str(), "/healthz" | "/readyz");
    if !open && !authorised(s, &request) {
        let r = text(401, "authorisation required")
            .with_header(header("WWW-Authenticate", "Basic realm=\"glance\""));
        let _ = request.respond(r);
        return;
    }
    if !open && path != "/metrics" {
        *lock(&s.last_client) = Some(Instant::now());
    }
    let response = match (&method, path.as_str()) {
        (Method::Get, "/") => Response::from_string(PAGE)
            .with_header(header("Content-Type", "text/html; charset=utf-8"))
            .with_header(header("Cache-Control", "no-cache")),
        (Method::Get, "/stream.mjpg") => return stream(s, request),
        (Method::Get, "/snapshot.jpg") => match snapshot(s) {
            Some(jpeg) => Response::from_data(jpeg.as_slice())
                .with_header(header("Content-Type", "image/jpeg"))
                .with_header(header("Cache-Control", "no-cache")),
            None => text(503, "no picture yet"),
        },
        (Method::Get, "/api/state") => json(200, &state_json(s)),
        (Method::Post, "/api/cmd") => {
            let mut body = String::new();
            let read = request.as_reader().take(4096).read_to_string(&mut body);
            match read {
                Ok(_) => command(s, body.trim()),
                Err(_) => text(400, "the body is not UTF-8 text"),
            }
        }
        (Method::Get, "/metrics") => {
            let st = lock(&s.state);
            let body = lock(&s.metrics).render(st.status.as_ref(), st.mqtt_dropped);
            Response::from_string(body).with_header(header(
                "Content-Type",
                "text/plain; version=0.0.4; charset=utf-8",
            ))
        }
        (Method::Get, "/healthz") => {
            let alive = lock(&s.state)
                .last_loop
                .is_some_and(|t| t.elapsed() < Duration::from_secs(5));
            if alive {
                text(200, "ok")
            } else {
                text(503, "the run loop has not turned for 5 s")
            }
        }
        (Method::Get, "/readyz") => {
            let st = lock(&s.state);
            match &st.status {
                Some(status) if status.healthy => text(200, "ready"),
                Some(status) => text(503, &crate::health::summary(&status.problems)),
                None => text(503, "starting"),
            }
        }
        (_, "/" | "/stream.mjpg" | "/snapshot.jpg" | "/api/state" | "/metrics") => {
            text(405, "method not allowed")
        }
        (_, "/api/cmd") => text(405, "POST a command"),
        _ => text(404, "not found"),
    };
    let _ = request.respond(response);
}

fn snapshot(s: &WebShared) -> Option<Arc<Vec<u8>>> {
    let st = lock(&s.state);
    if let Some((_, p)) = &st.picture {
        return Some(Arc::clone(p));
    }
    // The first request turns pictures on; wait for the next frame's.
    let (st, _) = s
        .changed
        .wait_timeout_while(st, Duration::from_secs(3), |st| st.picture.is_none())
        .unwrap_or_else(|p| p.into_inner());
    st.picture.as_ref().map(|(_, p)| Arc::clone(p))
}

fn state_json(s: &WebShared) -> serde_json::Value {
    let st = lock(&s.state);
    serde_json::json!({
        "decision": st.decision,
        "status": st.status,
        "store": st.store.iter().map(|(l, n)| serde_json::json!({"label": l, "examples": n})).collect::<Vec<_>>(),
    })
}

fn command(s: &WebShared, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let line = body.lines().next().unwrap_or("").trim();
    let cmd = match crate::control::parse_line(line) {
        Ok((_, c)) => c,
        Err(e) => {
            return json(
                400,
                &serde_json::json!({"reply": {"ok": false, "message": e}}),
            )
        }
    };
    let ticket = s.next_ticket.fetch_add(1, Ordering::Relaxed);
    if lock(&s.commands)
        .send(ControlEvent::Web(ticket, cmd))
        .is_err()
    {
        return text(503, "the run is ending");
    }
    let st = lock(&s.state);
    let (mut st, _) = s
        .changed
        .wait_timeout_while(st, REPLY_WAIT, |st| {
            !st.replies.contains_key(&ticket) && !s.stop.load(Ordering::Relaxed)
        })
        .unwrap_or_else(|p| p.into_inner());
    match st.replies.remove(&ticket) {
        Some(v) => {
            let ok = v["reply"]["ok"].as_bool().unwrap_or(true);
            json(if ok { 200 } else { 422 }, &v)
        }
        None => text(504, "no reply within 60 s"),
    }
}

/// `multipart/x-mixed-replace`: each new picture as a part, at most one per `stream_every`,
/// flushed as written, until the client goes or the run ends.
fn stream(s: &WebShared, request: Request) {
    if s.streams.fetch_add(1, Ordering::Relaxed) >= MAX_STREAMS {
        s.streams.fetch_sub(1, Ordering::Relaxed);
        let _ = request.respond(text(503, "too many live views"));
        return;
    }
    let mut w = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\
                Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
    let mut ok = w
        .write_all(head.as_bytes())
        .and_then(|()| w.flush())
        .is_ok();
    let mut last = 0u64;
    let mut next_at = Instant::now();
    while ok && !s.stop.load(Ordering::Relaxed) {
        let wait = next_at.saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        let picture = {
            let st = lock(&s.state);
            let (st, _) = s
                .changed
                .wait_timeout_while(st, Duration::from_secs(1), |st| {
                    st.picture.as_ref().is_none_or(|(seq, _)| *seq == last)
                        && !s.stop.load(Ordering::Relaxed)
                })
                .unwrap_or_else(|p| p.into_inner());
            st.picture.clone()
        };
        *lock(&s.last_client) = Some(Instant::now());
        let Some((seq, jpeg)) = picture.filter(|(seq, _)| *seq != last) else {
            continue;
        };
        last = seq;
        next_at = Instant::now() + s.stream_every;
        let part = format!(
            "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            jpeg.len()
        );
        ok = w
            .write_all(part.as_bytes())
            .and_then(|()| w.write_all(&jpeg))
            .and_then(|()| w.write_all(b"\r\n"))
            .and_then(|()| w.flush())
            .is_ok();
    }
    s.streams.fetch_sub(1, Ordering::Relaxed);
}
