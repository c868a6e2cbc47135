//! `glance run --mqtt` against a real broker (Debian's mosquitto, started per test on a free
//! 127.0.0.1 port): the topics and their retain flags, Home Assistant's device discovery checked
//! field by field against its documented schema, commands and replies, the enroll topic, a
//! broker restart (reconnect, availability, no stale burst) and a `kill -9` (the Last Will).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::util::*;

/// A mosquitto broker on 127.0.0.1:`port`, killed on drop.
struct Broker {
    child: Child,
    dir: Option<tempfile::TempDir>,
}

impl Broker {
    fn start(port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, port)
    }

    fn start_in(dir: tempfile::TempDir, port: u16) -> Self {
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             log_dest stderr\n"
        );
        Self::with_conf(dir, &conf)
    }

    /// mosquitto with `conf` written to `dir`, once it says it is running.
    fn with_conf(dir: tempfile::TempDir, conf: &str) -> Self {
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf).expect("write conf");
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto is missing: scripts/test.sh installs it");
        // Ready once it says so on stderr ("mosquitto version X running").
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(" running") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("mosquitto starts within 10 s");
        Self {
            child,
            dir: Some(dir),
        }
    }

    fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().expect("a broker's directory")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as a subscriber saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

impl Seen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.topic, self.text()))
    }
}

/// A subscriber to `#` that keeps everything it sees and resubscribes after a reconnect;
/// `publish` sends as Home Assistant or a user would.
struct Watcher {
    seen: Arc<Mutex<Vec<Seen>>>,
    client: Client,
}

impl Watcher {
    fn start(port: u16, id: &str) -> Self {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = Client::new(o, 64);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (sub, log) = (client.clone(), Arc::clone(&seen));
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub.try_subscribe("#", QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => log.lock().unwrap().push(Seen {
                        at: Instant::now(),
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    }),
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the watcher subscribes");
        Self { seen, client }
    }

    fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits up to `secs` for a message that `pred` accepts, seen at or after `from`.
    fn wait_for(&self, secs: u64, from: Instant, pred: impl Fn(&Seen) -> bool) -> Seen {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.all().into_iter().find(|s| s.at >= from && pred(s)) {
                return s;
            }
            assert!(
                Instant::now() < until,
                "no such message within {secs} s; saw topics {:?}",
                self.all()
                    .iter()
                    .map(|s| s.topic.clone())
                    .collect::<BTreeSet<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .expect("publish");
    }
}

/// `glance run` over the fixture photos, looping, with MQTT on `port` under `prefix`.
fn start_glance(port: u16, prefix: &str, extra: &[&str]) -> Running {
    let mut args = vec![
        "run".to_string(),
        "--source".into(),
        p(&fixture("photos")),
        "--loop".into(),
        "--format".into(),
        "json".into(),
        "--heartbeat".into(),
        "1".into(),
        "--mqtt".into(),
        format!("mqtt://127.0.0.1:{port}/{prefix}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn_glance(&args)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The keys a Home Assistant template `{{ value_json.KEY ... }}` reads.
fn template_keys(template: &str) -> Vec<String> {
    template
        .split("value_json.")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// Checks a device discovery payload against Home Assistant's documented schema for
/// device-based discovery (home-assistant.io, integrations/mqtt, "Device discovery payload",
/// and each platform's page): `device` with identifiers, `origin` with a name, `components`
/// with a supported `platform` and a `unique_id` each, and each platform's required options.
/// `topics`: what glance published, to check that every topic and template refers to them.
fn check_discovery(config: &Value, prefix: &str, published: &[Seen], retained: &BTreeSet<String>) {
    let dev = &config["device"];
    let ids = dev["identifiers"]
        .as_array()
        .expect("device.identifiers is a list");
    assert!(!ids.is_empty() && ids.iter().all(Value::is_string), "{dev}");
    assert!(dev["name"].is_string(), "device.name");
    assert!(
        config["origin"]["name"].is_string(),
        "origin.name is required"
    );
    assert_eq!(
        config["availability_topic"],
        format!("{prefix}/availability")
    );
    assert_eq!(config["payload_available"], "online");
    assert_eq!(config["payload_not_available"], "offline");
    let components = config["components"]
        .as_object()
        .expect("components is a map");
    let mut unique = BTreeSet::new();
    let latest = |topic: &str| {
        published
            .iter()
            .rev()
            .find(|s| s.topic == topic)
            .unwrap_or_else(|| panic!("nothing published on {topic}"))
            .clone()
    };
    for (id, c) in components {
        assert!(
            id.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'),
            "component id `{id}`"
        );
        let platform = c["platform"].as_str().expect("platform is required");
        let uid = c["unique_id"].as_str().expect("unique_id is required");
        assert!(unique.insert(uid.to_string()), "unique_id {uid} twice");
        for (key, v) in c.as_object().unwrap() {
            if key.ends_with("_topic") {
                let t = v.as_str().expect("a topic is a string");
                assert!(t.starts_with(&format!("{prefix}/")), "{id}.{key} = {t}");
            }
        }
        match platform {
            "sensor" => {
                let topic = c["state_topic"].as_str().expect("sensor: state_topic");
                if let Some(cat) = c.get("entity_category") {
                    assert_eq!(
                        cat, "diagnostic",
                        "a sensor's category may only be diagnostic"
                    );
                }
                if let Some(class) = c.get("state_class") {
                    assert!(
                        ["measurement", "total", "total_increasing"]
                            .contains(&class.as_str().unwrap()),
                        "{id}: state_class {class}"
                    );
                }
                if let Some(t) = c["value_template"].as_str() {
                    let payload = latest(topic).json();
                    for key in template_keys(t) {
                        assert!(
                            payload.get(&key).is_some(),
                            "{id}: {topic} has no `{key}`: {payload}"
                        );
                    }
                }
            }
            "event" => {
                let topic = c["state_topic"].as_str().expect("event: state_topic");
                let types: Vec<&str> = c["event_types"]
                    .as_array()
                    .expect("event: event_types is required")
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert!(types.contains(&"unknown"));
                // The payload is a JSON object whose event_type is one of event_types, and
                // Home Assistant ignores retained events.
                let e = latest(topic);
                assert!(!retained.contains(topic), "events must not be retained");
                let et = e.json()["event_type"]
                    .as_str()
                    .expect("event_type")
                    .to_string();
                assert!(types.contains(&et.as_str()), "event_type {et} not declared");
            }
            "text" => {
                assert!(
                    c["command_topic"].is_string(),
                    "text: command_topic is required"
                );
                let (min, max) = (c["min"].as_u64().unwrap(), c["max"].as_u64().unwrap());
                assert!(min <= max && max <= 255, "text: min/max");
                assert!(["text", "password"].contains(&c["mode"].as_str().unwrap()));
            }
            other => panic!("component {id}: platform {other} not expected"),
        }
    }
}

#[test]
fn topics_discovery_commands_and_enroll_over_a_real_broker() {
    let port = free_port();
    let _broker = Broker::start(port);
    let watcher = Watcher::start(port, "watcher-topics");
    let t0 = Instant::now();
    let glance = start_glance(port, "glance/t1", &[]);

    let online = watcher.wait_for(60, t0, |s| s.topic == "glance/t1/availability");
    assert_eq!(online.text(), "online");
    let state = watcher.wait_for(30, t0, |s| s.topic == "glance/t1/state");
    let stats = watcher.wait_for(30, t0, |s| s.topic == "glance/t1/stats");
    watcher.wait_for(30, t0, |s| s.topic == "glance/t1/event");
    // What is retained: a subscriber that comes later is given availability, state, label and
    // discovery at once (the broker marks those retain), and never an event or stats.
    let late = Watcher::start(port, "watcher-late-t1");
    std::thread::sleep(Duration::from_millis(500));
    let retained: BTreeSet<String> = late
        .all()
        .into_iter()
        .filter(|s| {
            s.retain && (s.topic.starts_with("glance/t1/") || s.topic.starts_with("homeassistant/"))
        })
        .map(|s| s.topic)
        .collect();
    let expected: BTreeSet<String> = [
        "glance/t1/availability",
        "glance/t1/state",
        "glance/t1/label",
        "homeassistant/device/glance_t1/config",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(retained, expected);
    let st = stats.json();
    for key in [
        "frames",
        "fps",
        "latency_ms",
        "mqtt_dropped",
        "store_len",
        "healthy",
    ] {
        assert!(st.get(key).is_some(), "stats lacks {key}: {st}");
    }
    assert!(st["fps"].as_f64().unwrap() > 0.0, "{st}");
    // The state is the run's JSON line for the decision; the event says from and to.
    let sj = state.json();
    assert!(sj["label"].is_string() && sj["score"].is_number() && sj["top_k"].is_array());
    let ev = watcher
        .wait_for(30, t0, |s| s.topic == "glance/t1/event")
        .json();
    assert_eq!(ev["event_type"], ev["to"]);

    let disc = watcher.wait_for(30, t0, |s| {
        s.topic == "homeassistant/device/glance_t1/config"
    });
    check_discovery(&disc.json(), "glance/t1", &watcher.all(), &retained);

    // Commands, text and JSON, reply on cmd/reply with the id echoed.
    let t1 = Instant::now();
    watcher.publish("glance/t1/cmd", r#"{"command":"list","id":41}"#);
    let r = watcher
        .wait_for(30, t1, |s| s.topic == "glance/t1/cmd/reply")
        .json();
    assert_eq!(r["reply"]["id"], 41, "{r}");
    assert_eq!(r["reply"]["ok"], true);
    let t2 = Instant::now();
    watcher.publish("glance/t1/cmd", "frobnicate");
    let r = watcher
        .wait_for(30, t2, |s| s.topic == "glance/t1/cmd/reply")
        .json();
    assert_eq!(r["reply"]["ok"], false, "{r}");
    let t3 = Instant::now();
    watcher.publish("glance/t1/cmd", "status");
    let r = watcher
        .wait_for(30, t3, |s| s.topic == "glance/t1/cmd/reply")
        .json();
    assert!(r["status"]["frames"].as_u64().unwrap() > 0, "{r}");

    // Home Assistant's text entity: a label enrolls the next frames; discovery lists it.
    let t4 = Instant::now();
    watcher.publish("glance/t1/enroll", "mug");
    let r = watcher
        .wait_for(60, t4, |s| s.topic == "glance/t1/cmd/reply")
        .json();
    assert_eq!(r["reply"]["ok"], true, "{r}");
    let msg = r["reply"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "enrolled {} frames as `mug`",
            glance::ENROLL_FRAMES
        )),
        "{msg}"
    );
    let disc = watcher.wait_for(30, t4, |s| {
        s.topic == "homeassistant/device/glance_t1/config"
    });
    let types = disc.json()["components"]["decision"]["event_types"].clone();
    assert!(
        types.as_array().unwrap().iter().any(|v| v == "mug"),
        "{types}"
    );
    // Home Assistant drops an event whose type the device's last config did not list: every
    // event, the first `mug` ones included, comes after a config that lists its type.
    watcher.wait_for(30, t4, |s| {
        s.topic == "glance/t1/event" && s.json()["event_type"] == "mug"
    });
    let mut listed: Option<Value> = None;
    for s in watcher.all() {
        if s.topic == "homeassistant/device/glance_t1/config" {
            listed = Some(s.json()["components"]["decision"]["event_types"].clone());
        } else if s.topic == "glance/t1/event" {
            let ev = s.json();
            let types = listed.as_ref().and_then(|t| t.as_array());
            assert!(
                types.is_some_and(|t| t.contains(&ev["event_type"])),
                "event {ev} came before a discovery config listing its type"
            );
        }
    }
    // Home Assistant restarting asks for discovery again.
    let t5 = Instant::now();
    watcher.publish("homeassistant/status", "online");
    watcher.wait_for(30, t5, |s| {
        s.topic == "homeassistant/device/glance_t1/config"
    });

    // A clean stop: offline, retained, after the last state.
    let t6 = Instant::now();
    stop(glance);
    let off = watcher.wait_for(30, t6, |s| s.topic == "glance/t1/availability");
    assert_eq!(off.text(), "offline");
    std::thread::sleep(Duration::from_millis(300));
    let after: Vec<_> = watcher
        .all()
        .into_iter()
        .filter(|s| s.at > off.at && s.topic.starts_with("glance/t1/"))
        .collect();
    assert!(
        after.is_empty(),
        "messages after offline: {:?}",
        after.iter().map(|s| &s.topic).collect::<Vec<_>>()
    );
}

#[test]
fn a_broker_restart_reconnects_without_a_stale_burst() {
    let port = free_port();
    let broker = Broker::start(port);
    let t0 = Instant::now();
    let glance = start_glance(port, "glance/t2", &[]);
    let watcher = Watcher::start(port, "watcher-restart");
    watcher.wait_for(60, t0, |s| s.topic == "glance/t2/state");

    // 3 s without a broker, then the same port again.
    let dir = broker.kill();
    std::thread::sleep(Duration::from_secs(3));
    let restarted_ms = now_ms();
    let back = Instant::now();
    let _broker = Broker::start_in(dir, port);
    let watcher = Watcher::start(port, "watcher-restart-2");
    let online = watcher.wait_for(60, back, |s| s.topic == "glance/t2/availability");
    assert_eq!(online.text(), "online");
    // Decisions after the restart are fresh: none was captured during the outage.
    watcher.wait_for(30, back, |s| s.topic == "glance/t2/state");
    std::thread::sleep(Duration::from_secs(2));
    let states: Vec<Value> = watcher
        .all()
        .into_iter()
        .filter(|s| s.topic == "glance/t2/state" && !s.retain)
        .map(|s| s.json())
        .collect();
    assert!(
        states.len() > 10,
        "{} decisions after the restart",
        states.len()
    );
    // Stale: captured before the broker went away (3 s before it came back). At most what the
    // MQTT client held when the connection dropped (its queue is 8 messages, 3 per decision)
    // may still go out; what was decided during the outage never does.
    let stale: Vec<u64> = states
        .iter()
        .map(|s| s["time_ms"].as_u64().unwrap())
        .filter(|&t| t + 1500 < restarted_ms)
        .map(|t| restarted_ms - t)
        .collect();
    assert!(
        stale.len() <= 3,
        "{} stale decisions after the restart (ms old: {stale:?})",
        stale.len()
    );
    // The outage is counted, and the link says it is well again.
    let stats = watcher
        .wait_for(30, back, |s| s.topic == "glance/t2/stats")
        .json();
    assert!(stats["mqtt_dropped"].as_u64().unwrap() > 0, "{stats}");
    let later = Instant::now();
    let stats = watcher
        .wait_for(30, later, |s| s.topic == "glance/t2/stats")
        .json();
    let problems = stats["problems"].to_string();
    assert!(!problems.contains("mqtt"), "{problems}");
    stop(glance);
}

#[test]
fn kill_9_makes_the_broker_publish_offline() {
    let port = free_port();
    let _broker = Broker::start(port);
    let watcher = Watcher::start(port, "watcher-kill");
    let t0 = Instant::now();
    let glance = start_glance(port, "glance/t3", &[]);
    let on = watcher.wait_for(60, t0, |s| s.topic == "glance/t3/availability");
    assert_eq!(on.text(), "online");
    let t1 = Instant::now();
    let mut glance = glance.take();
    glance.kill().expect("SIGKILL");
    let _ = glance.wait();
    let off = watcher.wait_for(30, t1, |s| s.topic == "glance/t3/availability");
    assert_eq!(off.text(), "offline", "the Last Will");
    // It is retained: a new subscriber is told at once.
    let late = Watcher::start(port, "watcher-late");
    let t2 = Instant::now() - Duration::from_secs(1);
    let seen = late.wait_for(10, t2, |s| s.topic == "glance/t3/availability");
    assert!(seen.retain && seen.text() == "offline");
}

/// A CA, a broker certificate for 127.0.0.1 signed by it, a client certificate signed by it,
/// and a second CA that signed nothing here, made by the `openssl` command line in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is missing: scripts/test.sh installs it");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for ca in ["ca", "rogue"] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=glance test {ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
        ]);
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("write ext");
    for (name, cn) in [("server", "127.0.0.1"), ("client", "glance-board")] {
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }
}

/// A mosquitto with a plain listener on `plain` (for the watcher) and a TLS listener on `tls`
/// that wants a client certificate from the test CA.
fn start_tls_broker(dir: tempfile::TempDir, plain: u16, tls: u16) -> Broker {
    let d = dir.path().display().to_string();
    // `user root`: started as root, mosquitto would become the user `mosquitto`, who cannot
    // read the test's private keys (not root: it stays who it is).
    let conf = format!(
        "user root\nper_listener_settings false\nallow_anonymous true\npersistence false\n\
         log_dest stderr\nlistener {plain} 127.0.0.1\nlistener {tls} 127.0.0.1\n\
         cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
         require_certificate true\n"
    );
    Broker::with_conf(dir, &conf)
}

/// `glance run` over the photos with `args`, its JSON lines on stdout kept.
fn spawn_watched(args: &[String]) -> (Running, Arc<Mutex<Vec<Value>>>) {
    let mut child = glance_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("glance starts");
    let stdout = child.stdout.take().expect("stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                keep.lock().unwrap().push(v);
            }
        }
    });
    (Running(Some(child)), lines)
}

#[test]
fn mqtts_checks_the_broker_and_shows_a_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_certificates(dir.path());
    let d = dir.path().to_path_buf();
    let (plain, tls) = (free_port(), free_port());
    let _broker = start_tls_broker(dir, plain, tls);
    let watcher = Watcher::start(plain, "watcher-tls");

    // A board profile of one's own names the broker and the files; the flags add nothing.
    let profile = d.join("shelf.toml");
    let rpi4 = std::fs::read_to_string(root().join("targets/rpi4.toml")).expect("rpi4.toml");
    std::fs::write(
        &profile,
        format!(
            "{rpi4}\n[mqtt]\nurl = \"mqtts://127.0.0.1:{tls}/glance/tls\"\nca = \"{d}/ca.pem\"\n\
             cert = \"{d}/client.pem\"\nkey = \"{d}/client.key\"\n",
            d = d.display()
        ),
    )
    .expect("write profile");
    let base = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "run",
            "--source",
            &p(&fixture("photos")),
            "--loop",
            "--format",
            "json",
            "--heartbeat",
            "1",
            "--threads",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let t0 = Instant::now();
    let good = spawn_glance(&base(&["--board", &p(&profile)]));
    let on = watcher.wait_for(60, t0, |s| s.topic == "glance/tls/availability");
    assert_eq!(on.text(), "online");
    let state = watcher
        .wait_for(30, t0, |s| s.topic == "glance/tls/state")
        .json();
    assert!(state["label"].is_string(), "{state}");
    stop(good);

    // A broker whose certificate another CA signed: refused, said in the status, retried;
    // the run goes on deciding.
    let t1 = Instant::now();
    let rogue_ca = format!("{}/rogue.pem", d.display());
    let url = format!("mqtts://127.0.0.1:{tls}/glance/rogue");
    let (rogue, lines) = spawn_watched(&base(&[
        "--mqtt",
        &url,
        "--mqtt-ca",
        &rogue_ca,
        "--mqtt-cert",
        &format!("{}/client.pem", d.display()),
        "--mqtt-key",
        &format!("{}/client.key", d.display()),
    ]));
    let until = Instant::now() + Duration::from_secs(60);
    let problem = loop {
        let seen = lines.lock().unwrap().clone();
        let p = seen
            .iter()
            .filter_map(|v| v["status"]["problems"].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .find(|p| p.starts_with("mqtt:"))
            .map(str::to_string);
        let decided = seen.iter().filter(|v| v["label"].is_string()).count();
        if let (Some(p), true) = (&p, decided > 3) {
            break p.clone();
        }
        let statuses: Vec<&Value> = seen.iter().filter(|v| v["status"].is_object()).collect();
        assert!(
            Instant::now() < until,
            "no mqtt problem in 60 s ({decided} decided): {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(problem.contains("certificate"), "{problem}");
    assert!(
        watcher
            .all()
            .iter()
            .all(|s| s.at < t1 || !s.topic.starts_with("glance/rogue")),
        "nothing got through with an untrusted broker"
    );
    stop(rogue);

    // Files that are not there or not certificates: a clear error at start, naming the file.
    for (flag, file) in [
        ("--mqtt-ca", format!("{}/missing.pem", d.display())),
        ("--mqtt-ca", format!("{}/server.ext", d.display())),
    ] {
        let out = glance_command(base(&["--mqtt", &url, flag, &file]))
            .output()
            .expect("glance runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {file}: exit 0");
        assert!(err.contains(&file), "{flag} {file}: {err}");
    }
    // TLS files with a plain broker are a mistake, said as such.
    let out = glance_command(base(&[
        "--mqtt",
        &format!("mqtt://127.0.0.1:{plain}/g"),
        "--mqtt-ca",
        &rogue_ca,
    ]))
    .output()
    .expect("glance runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mqtts://"));
}

#[cfg(feature = "host")]
#[test]
fn the_host_monitor_reads_a_board_over_mqtt_and_sends_it_commands() {
    let port = free_port();
    let _broker = Broker::start(port);
    let watcher = Watcher::start(port, "watcher-monitor");
    let t0 = Instant::now();
    let glance = start_glance(port, "glance/t4", &[]);
    watcher.wait_for(60, t0, |s| s.topic == "glance/t4/stats");
    let out = Command::new(env!("CARGO_BIN_EXE_glance-host"))
        .args(["monitor", &format!("mqtt://127.0.0.1:{port}/glance/t4")])
        .args(["--format", "json", "--send", "list", "--timeout", "20"])
        .output()
        .expect("glance-host runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let on = |topic: &'static str| lines.iter().filter(move |l| l["topic"] == topic);
    let avail: Vec<&Value> = on("availability").collect();
    assert!(
        avail
            .first()
            .is_some_and(|a| a["retained"] == true && a["payload"] == "online"),
        "{avail:?}"
    );
    assert!(on("stats").count() >= 10, "stats for 20 s: {lines:?}");
    assert!(
        on("event").all(|e| e["payload"]["to"].is_string()),
        "{lines:?}"
    );
    let reply = on("cmd/reply")
        .next()
        .unwrap_or_else(|| panic!("no reply to `list`: {lines:?}"));
    assert!(reply["payload"]["reply"].is_object(), "{reply}");
    // The text form of the same, for people.
    let out = Command::new(env!("CARGO_BIN_EXE_glance-host"))
        .args(["monitor", &format!("mqtt://127.0.0.1:{port}/glance/t4")])
        .args(["--count", "3", "--timeout", "30"])
        .output()
        .expect("glance-host runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut text_lines = text.lines();
    assert_eq!(
        text_lines.next(),
        Some("availability (retained): online"),
        "{text}"
    );
    assert!(
        text_lines
            .all(|l| (l.starts_with('#') && l.contains("% (was ")) || l.starts_with("status: up ")),
        "{text}"
    );
    stop(glance);
    // No broker: a clear error, not a hang.
    let out = Command::new(env!("CARGO_BIN_EXE_glance-host"))
        .args(["monitor", &format!("mqtt://127.0.0.1:{}/g", free_port())])
        .args(["--timeout", "30"])
        .output()
        .expect("glance-host runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1"));
}
