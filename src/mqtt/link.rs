//! The MQTT link itself (cargo feature `mqtt`): the outbox, the connection thread and the
//! publisher thread described in [`super`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, LastWill, MqttOptions, Packet, QoS};

use super::{discovery, MqttConfig, MqttSpec, MqttTls, ENROLL_FRAMES};
use crate::control::ControlEvent;
use crate::decision::Decided;
use crate::encode::{self, Format, ReplyBody, StatusInfo};

/// Decisions and stats waiting for the publisher at most; more are dropped and counted.
const BEST_EFFORT_QUEUE: usize = 64;

/// Replies, availability and discovery waiting at most (they are only made while connected,
/// so this bounds a publisher stuck behind a dead connection, not normal use).
const MUST_QUEUE: usize = 1024;

/// Longest wait between reconnection attempts: a broker back after a long outage is found
/// within 5 s (an attempt is one TCP connect).
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Request {
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        qos: QoS,
    },
    Subscribe(String),
}

#[derive(Debug, Default)]
struct Outbox {
    must: VecDeque<Request>,
    best: VecDeque<Request>,
}

/// What a (re)connection re-publishes: the retained state of the current decision and the
/// labels the discovery's event entity lists.
#[derive(Debug, Default)]
struct Current {
    state: Option<Vec<u8>>,
    label: Option<String>,
    labels: Vec<String>,
}

struct Shared {
    config: MqttConfig,
    outbox: Mutex<Outbox>,
    wake: Condvar,
    connected: AtomicBool,
    stop: AtomicBool,
    dropped: AtomicU64,
    current: Mutex<Current>,
    trouble: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on another thread while holding the lock leaves plain data behind: go on with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn push_must(&self, r: Request) {
        let mut o = lock(&self.outbox);
        if o.must.len() >= MUST_QUEUE {
            o.must.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        o.must.push_back(r);
        self.wake.notify_one();
    }

    fn push_best(&self, r: Request) {
        if !self.connected.load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut o = lock(&self.outbox);
        if o.best.len() >= BEST_EFFORT_QUEUE {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        o.best.push_back(r);
        self.wake.notify_one();
    }

    fn publish_must(&self, leaf: &str, payload: Vec<u8>, retain: bool) {
        self.push_must(Request::Publish {
            topic: self.config.topic(leaf),
            payload,
            retain,
            qos: QoS::AtLeastOnce,
        });
    }

    /// On every connection: availability, subscriptions, discovery, the current state.
    fn announce(&self) {
        // Queued decisions are from before the outage: stale now.
        let stale = std::mem::take(&mut lock(&self.outbox).best).len();
        self.dropped.fetch_add(stale as u64, Ordering::Relaxed);
        self.publish_must("availability", b"online".to_vec(), true);
        self.push_must(Request::Subscribe(self.config.topic("cmd")));
        self.push_must(Request::Subscribe(self.config.topic("enroll")));
        if let Some(prefix) = &self.config.discovery_prefix {
            self.push_must(Request::Subscribe(format!("{prefix}/status")));
        }
        self.announce_discovery();
        let current = lock(&self.current);
        if let Some(state) = &current.state {
            self.publish_must("state", state.clone(), true);
        }
        if let Some(label) = &current.label {
            self.publish_must("label", label.clone().into_bytes(), true);
        }
    }

    fn announce_discovery(&self) {
        let Some(prefix) = &self.config.discovery_prefix else {
            return;
        };
        let labels = lock(&self.current).labels.clone();
        let payload = discovery::device_config(&self.config, &labels);
        self.push_must(Request::Publish {
            topic: discovery::config_topic(prefix, &self.config.node_id),
            payload: payload.to_string().into_bytes(),
            retain: true,
            qos: QoS::AtLeastOnce,
        });
    }
}

/// The open MQTT link: a connection thread (events, reconnects with back-off, commands in)
/// and a publisher thread (the outbox out).
pub(crate) struct MqttLink {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    done: std::sync::mpsc::Receiver<()>,
    /// Decisions and summed latency since the last stats message.
    since_stats: (u64, f64, Instant),
}

impl MqttLink {
    /// Starts the link; commands from the broker go to `commands`. Connecting happens in the
    /// background: a broker that is away at start is retried like one that went away.
    pub(crate) fn start(
        config: MqttConfig,
        labels: Vec<String>,
        commands: Sender<ControlEvent>,
    ) -> std::io::Result<Self> {
        let client_id = format!("glance-{}", config.node_id);
        let mut options = client_options(&config.spec, &config.tls, client_id)?;
        options.set_last_will(LastWill::new(
            config.topic("availability"),
            b"offline".to_vec(),
            QoS::AtLeastOnce,
            true,
        ));
        // Small: what the client holds when a connection drops goes out after the reconnect.
        let (client, connection) = Client::new(options, 8);
        let shared = Arc::new(Shared {
            config,
            outbox: Mutex::default(),
            wake: Condvar::new(),
            connected: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            current: Mutex::new(Current {
                labels,
                ..Current::default()
            }),
            trouble: Mutex::new(Some("connecting to the broker".into())),
        });
        let (done_tx, done) = std::sync::mpsc::channel();
        let s = Arc::clone(&shared);
        let done_conn = done_tx.clone();
        let conn = std::thread::Builder::new()
            .name("mqtt-connection".into())
            .spawn(move || {
                connection_loop(&s, connection, &commands);
                let _ = done_conn.send(());
            })?;
        let s = Arc::clone(&shared);
        let publisher = std::thread::Builder::new()
            .name("mqtt-publish".into())
            .spawn(move || {
                publish_loop(&s, client);
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            shared,
            threads: vec![conn, publisher],
            done,
            since_stats: (0, 0.0, Instant::now()),
        })
    }

    /// A decided frame: on a change of label, the retained state and label and an event.
    pub(crate) fn decision(
        &mut self,
        d: &Decided,
        previous: Option<&str>,
        picture: Option<&Arc<Vec<u8>>>,
    ) {
        self.since_stats.0 += 1;
        self.since_stats.1 += d.prediction.timing_ms.total;
        let label = d.prediction.label.as_str();
        if previous == Some(label) {
            return;
        }
        // JSON names labels; the wire ids are postcard's alone.
        let mut state = encode::encode_prediction(d, Format::Json, |_| 0);
        if state.last() == Some(&b'\n') {
            state.pop();
        }
        let event = serde_json::json!({
            "event_type": label,
            "from": previous,
            "to": label,
            "score": d.prediction.score,
            "seq": d.seq,
            "time_ms": d.time_ms,
        });
        {
            let mut current = lock(&self.shared.current);
            current.state = Some(state.clone());
            current.label = Some(label.to_string());
        }
        let s = &self.shared;
        if let Some(jpeg) = picture.filter(|_| s.config.snapshot) {
            s.push_best(Request::Publish {
                topic: s.config.topic("snapshot"),
                payload: jpeg.to_vec(),
                retain: true,
                qos: QoS::AtMostOnce,
            });
        }
        for (leaf, payload, retain) in [
            ("state", state, true),
            ("label", label.as_bytes().to_vec(), true),
            ("event", event.to_string().into_bytes(), false),
        ] {
            s.push_best(Request::Publish {
                topic: s.config.topic(leaf),
                payload,
                retain,
                qos: QoS::AtMostOnce,
            });
        }
    }

    /// A status report, with the frame rate and mean latency since the previous one.
    pub(crate) fn stats(&mut self, status: &StatusInfo) {
        let (n, total_ms, since) =
            std::mem::replace(&mut self.since_stats, (0, 0.0, Instant::now()));
        let secs = since.elapsed().as_secs_f64();
        let mut v = serde_json::to_value(status).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "fps".into(),
                serde_json::json!(if secs > 0.0 { n as f64 / secs } else { 0.0 }),
            );
            o.insert(
                "latency_ms".into(),
                serde_json::json!(if n > 0 { total_ms / n as f64 } else { 0.0 }),
            );
            o.insert("mqtt_dropped".into(), serde_json::json!(self.dropped()));
        }
        let s = &self.shared;
        s.push_best(Request::Publish {
            topic: s.config.topic("stats"),
            payload: v.to_string().into_bytes(),
            retain: false,
            qos: QoS::AtMostOnce,
        });
    }

    /// The reply to a command that came over MQTT (never dropped for room).
    pub(crate) fn reply(&self, id: Option<u16>, body: &ReplyBody) {
        let mut bytes = encode::encode_reply(id, body, Format::Json);
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        self.shared.publish_must("cmd/reply", bytes, false);
    }

    /// A status report asked for over MQTT, as its reply.
    pub(crate) fn status_reply(&self, status: &StatusInfo) {
        let mut bytes = encode::encode_status(status, Format::Json);
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        self.shared.publish_must("cmd/reply", bytes, false);
    }

    /// The labels a decision can take changed (an enrollment, a forget): discovery again.
    pub(crate) fn set_labels(&self, labels: Vec<String>) {
        {
            let mut current = lock(&self.shared.current);
            if current.labels == labels {
                return;
            }
            current.labels = labels;
        }
        if self.shared.connected.load(Ordering::Relaxed) {
            self.shared.announce_discovery();
        }
    }

    /// Messages dropped: decisions and stats while the broker was away or the queue full.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Why the link is not up, while it is not.
    pub(crate) fn trouble(&self) -> Option<String> {
        lock(&self.shared.trouble).clone()
    }

    /// Flushes the outbox, says `offline` and disconnects, waiting up to `timeout`.
    pub(crate) fn finish(self, timeout: Duration) {
        let s = &self.shared;
        s.stop.store(true, Ordering::Relaxed);
        s.wake.notify_all();
        let until = Instant::now() + timeout;
        for _ in 0..self.threads.len() {
            let left = until.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                log::warn!(
                    "mqtt: the link did not close within {} s",
                    timeout.as_secs()
                );
                return;
            }
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The options every client of glance's starts from (the board's link and `glance-host
/// monitor`): the broker, the credentials, TLS for `mqtts://`, a 15 s keep-alive, and packets
/// up to 1 MiB (discovery payloads grow with the labels; the default 10 KiB is too tight).
pub(crate) fn client_options(
    spec: &MqttSpec,
    tls: &MqttTls,
    client_id: String,
) -> std::io::Result<MqttOptions> {
    let mut options = MqttOptions::new(client_id, spec.host.clone(), spec.port);
    options.set_keep_alive(Duration::from_secs(15));
    options.set_max_packet_size(1 << 20, 1 << 20);
    if let Some((u, p)) = &spec.credentials {
        options.set_credentials(u.clone(), p.clone());
    }
    if spec.tls {
        options.set_transport(tls_transport(spec, tls)?);
    }
    Ok(options)
}

/// The TLS transport of an `mqtts://` link, or why there is none.
#[cfg(feature = "mqtt-tls")]
fn tls_transport(_spec: &MqttSpec, tls: &MqttTls) -> std::io::Result<rumqttc::Transport> {
    super::tls::client_config(tls)
        .map(|c| rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(c)))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

#[cfg(not(feature = "mqtt-tls"))]
fn tls_transport(spec: &MqttSpec, _tls: &MqttTls) -> std::io::Result<rumqttc::Transport> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!(
            "this glance was built without TLS for MQTT (cargo feature `mqtt-tls`), so it \
             cannot reach mqtts://{}:{}",
            spec.host, spec.port
        ),
    ))
}

/// Events from the broker: (re)connections, commands, Home Assistant coming online.
fn connection_loop(s: &Shared, mut connection: Connection, commands: &Sender<ControlEvent>) {
    let cmd_topic = s.config.topic("cmd");
    let enroll_topic = s.config.topic("enroll");
    let ha_status = s
        .config
        .discovery_prefix
        .as_ref()
        .map(|p| format!("{p}/status"));
    let mut backoff = Duration::from_millis(500);
    let mut reported = false;
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                log::info!(
                    "mqtt: connected to {}:{}",
                    s.config.spec.host,
                    s.config.spec.port
                );
                s.connected.store(true, Ordering::Relaxed);
                *lock(&s.trouble) = None;
                backoff = Duration::from_millis(500);
                reported = false;
                s.announce();
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let text = String::from_utf8_lossy(&p.payload);
                if p.topic == cmd_topic {
                    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                        let event = match crate::control::parse_line(line) {
                            Ok((id, c)) => ControlEvent::Mqtt(id, Ok(c)),
                            Err(e) => ControlEvent::Mqtt(None, Err(e)),
                        };
                        let _ = commands.send(event);
                    }
                } else if p.topic == enroll_topic {
                    let label = text.trim();
                    let event =
                        crate::control::parse_text(&format!("enroll {label} {ENROLL_FRAMES}"))
                            .and_then(|c| {
                                if label.split_whitespace().count() == 1 {
                                    Ok(c)
                                } else {
                                    Err(format!("`{label}`: a label is one word"))
                                }
                            });
                    let _ = commands.send(ControlEvent::Mqtt(None, event));
                } else if ha_status.as_deref() == Some(p.topic.as_str()) && text.trim() == "online"
                {
                    // Home Assistant restarted: it has forgotten what was not retained.
                    s.announce_discovery();
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))
                if s.stop.load(Ordering::Relaxed) =>
            {
                break;
            }
            Ok(_) => {}
            Err(e) => {
                s.connected.store(false, Ordering::Relaxed);
                if s.stop.load(Ordering::Relaxed) {
                    break;
                }
                let why = format!(
                    "broker {}:{} unreachable ({e}); retrying",
                    s.config.spec.host, s.config.spec.port
                );
                if !reported {
                    log::warn!("mqtt: {why}");
                    reported = true;
                }
                *lock(&s.trouble) = Some(why);
                // rumqttc retries at once after an error; the back-off is ours.
                let until = Instant::now() + backoff;
                while Instant::now() < until && !s.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Hands the outbox to the client, replies and announcements first; only while connected
/// (what the client queues while the connection is down would go out as a burst later).
fn publish_loop(s: &Shared, client: Client) {
    loop {
        let next = {
            let mut o = lock(&s.outbox);
            loop {
                let stopping = s.stop.load(Ordering::Relaxed);
                if s.connected.load(Ordering::Relaxed) {
                    if let Some(r) = o.must.pop_front().or_else(|| o.best.pop_front()) {
                        break Some(r);
                    }
                }
                if stopping {
                    break None;
                }
                o = s
                    .wake
                    .wait_timeout(o, Duration::from_millis(200))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        };
        let Some(r) = next else {
            // Everything queued is out: `offline` last, so that it is the retained word.
            if s.connected.load(Ordering::Relaxed) {
                let topic = s.config.topic("availability");
                if let Err(e) = client.publish(topic, QoS::AtLeastOnce, true, b"offline".to_vec()) {
                    log::warn!("mqtt: {e}");
                }
                let _ = client.disconnect();
            }
            break;
        };
        let sent = match r {
            Request::Publish {
                topic,
                payload,
                retain,
                qos,
            } => client.publish(topic, qos, retain, payload),
            Request::Subscribe(topic) => client.subscribe(topic, QoS::AtLeastOnce),
        };
        if let Err(e) = sent {
            log::warn!("mqtt: {e}");
        }
    }
}
