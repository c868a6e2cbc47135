//! `glance-host monitor mqtt://HOST/PREFIX`: what a board publishes on its MQTT topics (its
//! availability, decision changes, status reports, command replies), printed as text or JSON
//! lines, and commands sent to `PREFIX/cmd`. The same broker URL, TLS files and command
//! language as `glance run --mqtt`.

use std::io::{self, BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rumqttc::{Client, Event, Packet, QoS};
use serde_json::Value;

use super::monitor::MonitorSummary;
use crate::mqtt::{client_options, MqttSpec, MqttTls};

/// What to watch and what to send.
#[derive(Debug, Clone)]
pub struct MqttMonitorOptions {
    /// Broker and the board's topic prefix.
    pub spec: MqttSpec,
    /// Certificates for `mqtts://`.
    pub tls: MqttTls,
    /// Print JSON lines (`{"topic", "retained", "payload"}`) instead of text.
    pub json: bool,
    /// Commands (text form) to send once connected.
    pub send: Vec<String>,
    /// Forward command lines typed on stdin.
    pub stdin_commands: bool,
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Stop after this long.
    pub timeout: Option<Duration>,
}

/// The leaves of a board's topics the monitor prints; `state` and `label` repeat what
/// `event` says, `snapshot` is a JPEG, `enroll` and `cmd` are what peers send.
const LEAVES: [&str; 4] = ["availability", "event", "stats", "cmd/reply"];

/// One message as a line of text.
fn describe(leaf: &str, retained: bool, payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let v: Option<Value> = serde_json::from_slice(payload).ok();
    let mark = if retained { " (retained)" } else { "" };
    match (leaf, &v) {
        ("availability", _) => format!("availability{mark}: {}", text.trim()),
        ("event", Some(e)) => format!(
            "#{} {} {:.1}% (was {})",
            e["seq"],
            crate::bundle::printable(e["to"].as_str().unwrap_or("?")),
            e["score"].as_f64().unwrap_or(0.0) * 100.0,
            e["from"]
                .as_str()
                .map_or("nothing".into(), crate::bundle::printable)
        ),
        ("stats", Some(s)) => {
            let st = s;
            let mut line = format!(
                "status: up {} s, {} frames, {} dropped, store {}/{}, {:.1} fps, {:.1} ms",
                st["uptime_s"],
                st["frames"],
                st["dropped"],
                st["store_len"],
                st["store_capacity"],
                s["fps"].as_f64().unwrap_or(0.0),
                s["latency_ms"].as_f64().unwrap_or(0.0)
            );
            if let Some(p) = s["problems"].as_array().filter(|p| !p.is_empty()) {
                let words: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
                line += &format!("  NOT HEALTHY: {}", words.join("; "));
            }
            line
        }
        ("cmd/reply", Some(r)) => format!("reply: {r}"),
        _ => format!("{leaf}{mark}: {text}"),
    }
}

/// Runs the monitor until `count` messages, the timeout, or the broker refuses it.
pub fn monitor_mqtt(opts: &MqttMonitorOptions, out: &mut impl Write) -> Result<MonitorSummary> {
    let spec = &opts.spec;
    let where_ = format!("{}:{}", spec.host, spec.port);
    for text in &opts.send {
        crate::control::parse_line(text).map_err(|e| anyhow::anyhow!("command `{text}`: {e}"))?;
    }
    let id = format!(
        "glance-host-{}-{}",
        std::process::id(),
        now_nanos() % 1_000_000
    );
    let options = client_options(spec, &opts.tls, id).with_context(|| where_.clone())?;
    let (client, mut connection) = Client::new(options, 64);
    let cmd_topic = format!("{}/cmd", spec.prefix);
    let (tx, rx) = mpsc::channel::<String>();
    for text in &opts.send {
        let _ = tx.send(text.clone());
    }
    if opts.stdin_commands {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let started = Instant::now();
    let mut summary = MonitorSummary::default();
    let mut connected = false;
    loop {
        if opts.count.is_some_and(|c| summary.messages >= c)
            || opts.timeout.is_some_and(|t| started.elapsed() >= t)
        {
            break;
        }
        if connected {
            while let Ok(text) = rx.try_recv() {
                let text = text.trim().to_string();
                if text.is_empty() {
                    continue;
                }
                match crate::control::parse_line(&text) {
                    Ok(_) => client
                        .try_publish(&cmd_topic, QoS::AtLeastOnce, false, text.into_bytes())
                        .with_context(|| format!("{where_}: cannot send"))?,
                    Err(e) => eprintln!("glance-host: command `{text}`: {e}"),
                }
            }
        }
        let event = match connection.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => e,
            Err(rumqttc::RecvTimeoutError::Timeout) => continue,
            Err(rumqttc::RecvTimeoutError::Disconnected) => bail!("{where_}: the link closed"),
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connected = true;
                for leaf in LEAVES {
                    client
                        .try_subscribe(format!("{}/{leaf}", spec.prefix), QoS::AtLeastOnce)
                        .with_context(|| format!("{where_}: cannot subscribe"))?;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some(leaf) = p
                    .topic
                    .strip_prefix(spec.prefix.as_str())
                    .and_then(|t| t.strip_prefix('/'))
                else {
                    continue;
                };
                summary.messages += 1;
                let line = if opts.json {
                    let payload =
                        serde_json::from_slice::<Value>(&p.payload).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&p.payload).into())
                        });
                    serde_json::json!({"topic": leaf, "retained": p.retain, "payload": payload})
                        .to_string()
                } else {
                    describe(leaf, p.retain, &p.payload)
                };
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            Ok(_) => {}
            // A refused connection (bad credentials, an untrusted certificate) will not get
            // better by itself: say why and stop, as a serial port that cannot open does.
            Err(e) => bail!("{where_}: {e}"),
        }
    }
    let _ = client.disconnect();
    Ok(summary)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_what_each_topic_means() {
        let e = br#"{"event_type":"mug","from":"keys","to":"mug","score":0.931,"seq":7}"#;
        assert_eq!(describe("event", false, e), "#7 mug 93.1% (was keys)");
        assert_eq!(
            describe("availability", true, b"offline"),
            "availability (retained): offline"
        );
        let s = br#"{"uptime_s":5,"frames":40,"dropped":1,"store_len":3,"store_capacity":2000,"fps":8.0,"latency_ms":110.5,"problems":["mqtt: x"]}"#;
        let line = describe("stats", false, s);
        assert!(
            line.starts_with("status: up 5 s, 40 frames, 1 dropped, store 3/2000, 8.0 fps"),
            "{line}"
        );
        assert!(line.ends_with("NOT HEALTHY: mqtt: x"), "{line}");
        assert_eq!(
            describe("cmd/reply", false, b"not json"),
            "cmd/reply: not json"
        );
    }
}
