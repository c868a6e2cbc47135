//! `glance-host monitor`: read what a board sends over a serial link (framed postcard or JSON
//! lines), print it as text or JSON lines, and send it commands.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::control;
use anyhow::{bail, Context, Result};
use glance_proto::frame::{self, FrameDecoder, MAX_ENCODED};
use glance_proto::{flags, Message, Reply};

/// Wire framing of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// glance-proto frames.
    Postcard,
    /// One JSON object (or text line) per line.
    Json,
}

/// What to watch and what to send.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// The serial device.
    pub path: PathBuf,
    /// Its speed.
    pub baud: u32,
    /// Wire framing.
    pub framing: Framing,
    /// Print JSON lines instead of text.
    pub json: bool,
    /// Commands (text form) to send at start.
    pub send: Vec<String>,
    /// Forward command lines typed on stdin.
    pub stdin_commands: bool,
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Stop after this long.
    pub timeout: Option<Duration>,
}

/// Counters at the end of a session.
#[derive(Debug, Default, Clone, Copy)]
pub struct MonitorSummary {
    /// Messages decoded.
    pub messages: u64,
    /// Frames or lines that did not decode.
    pub errors: u64,
}

fn encode_command(framing: Framing, id: u16, text: &str) -> Result<Vec<u8>> {
    let (_, command) =
        control::parse_line(text).map_err(|e| anyhow::anyhow!("command `{text}`: {e}"))?;
    Ok(match framing {
        Framing::Postcard => {
            let mut buf = vec![0u8; MAX_ENCODED];
            let n = frame::encode(&Message::Command { id, command }, &mut buf)
                .map_err(|e| anyhow::anyhow!("cannot frame `{text}`: {e}"))?;
            buf.truncate(n);
            buf
        }
        Framing::Json => format!("{}\n", text.trim()).into_bytes(),
    })
}

/// A decoded message as one text line.
pub(super) fn describe(msg: &Message) -> String {
    match msg {
        Message::Prediction(p) => {
            let mut s = format!(
                "#{} {} {:.1}%",
                p.seq,
                crate::bundle::printable(&p.label),
                p.score * 100.0
            );
            if let Some(k) = &p.knn {
                s += &format!(
                    "  nearest example: class {} at {:.3}",
                    k.label_id, k.distance
                );
            }
            let mut f = Vec::new();
            if p.flags & flags::UNKNOWN != 0 {
                f.push("unknown");
            }
            if p.flags & flags::HEAD_KNN_DISAGREE != 0 {
                f.push("head/kNN disagree");
            }
            if p.flags & flags::FRAMES_DROPPED != 0 {
                f.push("frames dropped");
            }
            if !f.is_empty() {
                s += &format!("  [{}]", f.join(", "));
            }
            let t = &p.timing;
            s += &format!(
                "  [{:.1} ms: decode {:.1}, preprocess {:.1}, backbone {:.1}, head {:.1}]",
                f64::from(t.decode_us + t.preprocess_us + t.backbone_us + t.head_us) / 1e3,
                f64::from(t.decode_us) / 1e3,
                f64::from(t.preprocess_us) / 1e3,
                f64::from(t.backbone_us) / 1e3,
                f64::from(t.head_us) / 1e3
            );
            s
        }
        Message::Status(st) => format!(
            "status: up {} s, {} frames, {} dropped, store {}/{}",
            st.uptime_s, st.frames, st.dropped, st.store_len, st.store_capacity
        ),
        Message::Reply { id, reply } => match reply {
            Reply::Ok => format!("reply {id}: ok"),
            Reply::Error(e) => format!("reply {id}: error: {e}"),
            Reply::List(l) => format!(
                "reply {id}: {}",
                l.iter()
                    .map(|(k, n)| format!("{k} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        Message::Command { id, command } => {
            format!("command {id}: {}", control::to_text(command))
        }
    }
}

/// Runs the monitor until `count` messages, the timeout, or the port closes.
pub fn monitor(opts: &MonitorOptions, out: &mut impl Write) -> Result<MonitorSummary> {
    let mut port = serialport::new(opts.path.to_string_lossy(), opts.baud)
        .timeout(Duration::from_millis(100))
        .open()
        .with_context(|| format!("{}: cannot open serial port", opts.path.display()))?;
    let mut next_id = 1u16;
    for text in &opts.send {
        let bytes = encode_command(opts.framing, next_id, text)?;
        port.write_all(&bytes)
            .with_context(|| format!("{}: cannot send", opts.path.display()))?;
        next_id = next_id.wrapping_add(1);
    }
    let (tx, rx) = mpsc::channel::<String>();
    if opts.stdin_commands {
        std::thread::spawn(move || {
            for line in io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let started = Instant::now();
    let mut summary = MonitorSummary::default();
    let mut decoder = FrameDecoder::new();
    let mut line = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if opts.count.is_some_and(|c| summary.messages >= c)
            || opts.timeout.is_some_and(|t| started.elapsed() >= t)
        {
            break;
        }
        while let Ok(text) = rx.try_recv() {
            if text.trim().is_empty() {
                continue;
            }
            match encode_command(opts.framing, next_id, &text) {
                Ok(bytes) => {
                    port.write_all(&bytes)?;
                    next_id = next_id.wrapping_add(1);
                }
                Err(e) => eprintln!("glance-host: {e:#}"),
            }
        }
        let n = match port.read(&mut buf) {
            Ok(0) => bail!("{}: the port closed", opts.path.display()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
            Err(e) => return Err(e).context(format!("{}: read failed", opts.path.display())),
        };
        match opts.framing {
            Framing::Postcard => {
                let mut result = Ok(());
                decoder.feed(&buf[..n], |r| match r {
                    Ok(msg) => {
                        summary.messages += 1;
                        let line = if opts.json {
                            serde_json::to_string(&msg).unwrap_or_default()
                        } else {
                            describe(&msg)
                        };
                        if result.is_ok() {
                            result = writeln!(out, "{line}").and_then(|_| out.flush());
                        }
                    }
                    Err(e) => {
                        summary.errors += 1;
                        eprintln!("glance-host: {}: bad frame: {e}", opts.path.display());
                    }
                });
                result?;
            }
            Framing::Json => {
                for &b in &buf[..n] {
                    if b != b'\n' {
                        if line.len() < 1 << 16 {
                            line.push(b);
                        }
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line).trim().to_string();
                    line.clear();
                    if text.is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(v) => {
                            summary.messages += 1;
                            if opts.json {
                                writeln!(out, "{v}")?;
                            } else {
                                writeln!(out, "{}", describe_json(&v))?;
                            }
                            out.flush()?;
                        }
                        Err(_) => {
                            summary.errors += 1;
                            eprintln!("glance-host: {}: not JSON: {text}", opts.path.display());
                        }
                    }
                }
            }
        }
    }
    Ok(summary)
}

fn describe_json(v: &serde_json::Value) -> String {
    if let Some(r) = v.get("reply") {
        return format!("reply: {r}");
    }
    if let Some(s) = v.get("status") {
        return format!("status: {s}");
    }
    match (v.get("seq"), v.get("label"), v.get("score")) {
        (Some(seq), Some(label), Some(score)) => format!(
            "#{seq} {} {:.1}%",
            crate::bundle::printable(label.as_str().unwrap_or("?")),
            score.as_f64().unwrap_or(0.0) * 100.0
        ),
        _ => v.to_string(),
    }
}
