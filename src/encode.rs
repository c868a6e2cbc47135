//! Message encoding, one for every output: a decision, a status report or the reply to a
//! command becomes the bytes of a text line, a JSON line, or a `glance-proto` frame
//! (COBS(version ‖ postcard ‖ CRC32) ‖ 0x00).
//!
//! Outputs (stdout, the serial link, and those that come later) only move these bytes, so a
//! message reads the same wherever it goes. Encoding never fails: a message that cannot be
//! serialised is logged and sent empty (`{}` in JSON), since one bad message must not end a
//! run.

use glance_proto::frame::{self, MAX_ENCODED};
use glance_proto::{Message, Reply};
use serde::Serialize;

use crate::bundle::printable;
use crate::decision::Decided;
use crate::pipeline::Prediction;

/// How messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per message for people.
    Text,
    /// One JSON object per line.
    Json,
    /// `glance-proto` frames: COBS(version ‖ postcard ‖ CRC32) ‖ 0x00.
    Postcard,
}

/// A health report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusInfo {
    /// Seconds since start.
    pub uptime_s: u64,
    /// Frames decided.
    pub frames: u64,
    /// Frames the source dropped (newest frame wins).
    pub dropped: u64,
    /// Frames that could not be decoded or classified.
    pub errors: u64,
    /// Examples in the on-device store.
    pub store_len: u64,
    /// Its capacity.
    pub store_capacity: u64,
    /// Messages the sink had to drop (serial port slow or away).
    pub sink_dropped: u64,
    /// Serial frames or command lines that could not be decoded.
    pub bad_commands: u64,
    /// Capture-to-decision latency over the latest decisions: median and 99th percentile, ms.
    pub latency_p50_ms: Option<f64>,
    /// See `latency_p50_ms`.
    pub latency_p99_ms: Option<f64>,
    /// sha256 of the backbone.
    pub backbone: String,
    /// `--capture`: frames kept, skipped and removed, and the folder's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::capture::CaptureCounts>,
    /// Scene drift against the bundle's held-out distributions, once the window is half full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::drift::DriftInfo>,
    /// No problem below.
    pub healthy: bool,
    /// What is wrong, most urgent first, in words (camera gone, store not saved, output
    /// dropping). The postcard status frame does not carry these: its layout is fixed for
    /// boards in the field.
    pub problems: Vec<String>,
}

/// The answer to a command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplyBody {
    /// Done, with a sentence for people.
    Ok(String),
    /// Refused, and why.
    Error(String),
    /// Labels with their example counts.
    List(Vec<(String, usize)>),
}

/// `s`, cut at a character boundary to fit a fixed-capacity wire string.
fn clip<const N: usize>(s: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

fn us(ms: f64) -> u32 {
    (ms * 1000.0).clamp(0.0, u32::MAX as f64) as u32
}

fn frame_bytes(msg: &Message) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_ENCODED];
    match frame::encode(msg, &mut buf) {
        Ok(n) => {
            buf.truncate(n);
            buf
        }
        Err(e) => {
            log::error!("cannot frame a message: {e}");
            Vec::new()
        }
    }
}

/// Encodes a decision; `label_id` maps a label to its wire id.
pub(crate) fn encode_prediction(
    d: &Decided,
    format: Format,
    label_id: impl Fn(&str) -> u16,
) -> Vec<u8> {
    let p = &d.prediction;
    match format {
        Format::Json => json_line(d),
        Format::Text => {
            let mut s = format!("#{} {}: {}", d.seq, printable(&p.source), p.decision_text());
            let others: Vec<String> = p
                .top_k
                .iter()
                .filter(|r| r.label != p.label)
                .take(2)
                .map(|r| format!("{} {:.1}%", printable(&r.label), r.score * 100.0))
                .collect();
            if !others.is_empty() {
                s += &format!("  (then {})", others.join(", "));
            }
            if let Some(k) = &p.knn {
                s += &format!(
                    "  nearest example: {} at {:.3}",
                    printable(&k.label),
                    k.distance
                );
            }
            if d.dropped > 0 {
                s += &format!("  [{} dropped]", d.dropped);
            }
            s += &format!(
                "  [{:.1} ms: decode {:.1}, preprocess {:.1}, backbone {:.1}, head {:.1}]\n",
                p.timing_ms.total,
                p.timing_ms.decode,
                p.timing_ms.preprocess,
                p.timing_ms.backbone,
                p.timing_ms.head
            );
            s.into_bytes()
        }
        Format::Postcard => {
            let mut flags = 0u8;
            if d.unknown {
                flags |= glance_proto::flags::UNKNOWN;
            }
            if d.disagree {
                flags |= glance_proto::flags::HEAD_KNN_DISAGREE;
            }
            if d.dropped > 0 {
                flags |= glance_proto::flags::FRAMES_DROPPED;
            }
            let mut top_k = heapless::Vec::new();
            for r in p.top_k.iter().take(glance_proto::MAX_TOP_K) {
                let _ = top_k.push(glance_proto::Scored {
                    label_id: label_id(&r.label),
                    score: r.score,
                });
            }
            let msg = Message::Prediction(glance_proto::Prediction {
                seq: d.seq as u32,
                time_ms: d.time_ms,
                label_id: if d.unknown {
                    glance_proto::UNKNOWN_LABEL_ID
                } else {
                    label_id(&p.label)
                },
                label: clip(&p.label),
                score: p.score,
                top_k,
                knn: p.knn.as_ref().map(|k| glance_proto::KnnHit {
                    label_id: label_id(&k.label),
                    distance: k.distance,
                }),
                flags,
                timing: glance_proto::StageTiming {
                    decode_us: us(p.timing_ms.decode),
                    preprocess_us: us(p.timing_ms.preprocess),
                    backbone_us: us(p.timing_ms.backbone),
                    head_us: us(p.timing_ms.head),
                },
            });
            frame_bytes(&msg)
        }
    }
}

/// One classified image as `glance classify` prints it: a JSON line, or a text line with the
/// runners-up, the nearest stored example and the stage timings. The run loop's decisions go
/// through [`encode_prediction`] instead.
pub fn encode_classified(p: &Prediction, json: bool) -> Vec<u8> {
    if json {
        return json_line(p);
    }
    let mut line = format!("{}: {}", printable(&p.source), p.decision_text());
    let others: Vec<String> = p
        .top_k
        .iter()
        .skip(1)
        .map(|r| format!("{} {:.1}%", printable(&r.label), r.score * 100.0))
        .collect();
    if !others.is_empty() {
        line.push_str(&format!("  (then {})", others.join(", ")));
    }
    if let Some(k) = &p.knn {
        line.push_str(&format!(
            "  nearest example: {} at {:.3}",
            printable(&k.label),
            k.distance
        ));
    }
    let t = &p.timing_ms;
    line.push_str(&format!(
        "  [{:.1} ms: decode {:.1}, preprocess {:.1}, backbone {:.1}]\n",
        t.total, t.decode, t.preprocess, t.backbone
    ));
    line.into_bytes()
}

fn json_line(v: &impl Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec(v).unwrap_or_else(|e| {
        log::error!("cannot serialise a message: {e}");
        b"{}".to_vec()
    });
    out.push(b'\n');
    out
}

/// Encodes a status report.
pub(crate) fn encode_status(s: &StatusInfo, format: Format) -> Vec<u8> {
    match format {
        Format::Json => json_line(&serde_json::json!({ "status": s })),
        Format::Text => {
            let summary = crate::health::summary(&s.problems);
            let health = crate::bundle::printable(&summary);
            let latency = match (s.latency_p50_ms, s.latency_p99_ms) {
                (Some(p50), Some(p99)) => format!(", latency p50 {p50:.1} ms p99 {p99:.1} ms"),
                _ => String::new(),
            };
            let drift = s.drift.as_ref().map_or(String::new(), |d| {
                format!(", drift KS {:.2} over {} frames", d.score, d.frames)
            });
            let capture = s.capture.as_ref().map_or(String::new(), |c| {
                format!(
                    ", captured {} ({} in the folder, {:.1} MB)",
                    c.saved,
                    c.files,
                    c.bytes as f64 / 1e6
                )
            });
            format!(
                "status: up {} s, {} frames, {} dropped, {} errors, store {}/{}, sink dropped {}, \
                 bad commands {}{latency}{drift}{capture}; {health}\n",
                s.uptime_s,
                s.frames,
                s.dropped,
                s.errors,
                s.store_len,
                s.store_capacity,
                s.sink_dropped,
                s.bad_commands
            )
            .into_bytes()
        }
        Format::Postcard => {
            let mut backbone = [0u8; 8];
            for (i, b) in backbone.iter_mut().enumerate() {
                *b = s
                    .backbone
                    .get(2 * i..2 * i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .unwrap_or(0);
            }
            let sat = |v: u64| v.min(u64::from(u32::MAX)) as u32;
            frame_bytes(&Message::Status(glance_proto::Status {
                uptime_s: sat(s.uptime_s),
                frames: sat(s.frames),
                dropped: sat(s.dropped),
                store_len: sat(s.store_len),
                store_capacity: sat(s.store_capacity),
                backbone,
            }))
        }
    }
}

/// Encodes the reply to request `id`.
pub(crate) fn encode_reply(id: Option<u16>, body: &ReplyBody, format: Format) -> Vec<u8> {
    match format {
        Format::Json => {
            let v = match body {
                ReplyBody::Ok(m) => {
                    serde_json::json!({"reply": {"id": id, "ok": true, "message": m}})
                }
                ReplyBody::Error(m) => {
                    serde_json::json!({"reply": {"id": id, "ok": false, "message": m}})
                }
                ReplyBody::List(l) => serde_json::json!({"reply": {"id": id, "ok": true,
                    "list": l.iter().map(|(k, n)| serde_json::json!({"label": k, "examples": n})).collect::<Vec<_>>()}}),
            };
            json_line(&v)
        }
        Format::Text => match body {
            ReplyBody::Ok(m) => format!("ok: {m}\n"),
            ReplyBody::Error(m) => format!("error: {m}\n"),
            ReplyBody::List(l) if l.is_empty() => "ok: the store is empty\n".into(),
            ReplyBody::List(l) => format!(
                "ok: {}\n",
                l.iter()
                    .map(|(k, n)| format!("{k} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        .into_bytes(),
        Format::Postcard => {
            let reply = match body {
                ReplyBody::Ok(_) => Reply::Ok,
                ReplyBody::Error(m) => Reply::Error(clip(m)),
                ReplyBody::List(l) => {
                    let mut v = heapless::Vec::new();
                    for (k, n) in l {
                        if v.push((clip(k), (*n).min(65535) as u16)).is_err() {
                            break;
                        }
                    }
                    Reply::List(v)
                }
            };
            frame_bytes(&Message::Reply {
                id: id.unwrap_or(0),
                reply,
            })
        }
    }
}
