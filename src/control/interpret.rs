//! The command interpreter: what the run loop does for each [`Command`] (enroll, forget, list,
//! save, thresholds, status), and the store's saves they ask for.
//!
//! Every command source (text and JSON lines, postcard frames on the serial link) and the
//! threshold flags come through here, so a rule (a label reserved, a range, a save that must
//! succeed before a reply says so) is applied once for all of them. Requests run in the order
//! they arrived; one waits while an enrollment is collecting frames.

use std::io;
use std::sync::mpsc::Receiver;

use glance_proto::Command;

use crate::control::{ControlEvent, Origin, ReplyTo};
use crate::encode::{self, ReplyBody, StatusInfo};
use crate::health::Observations;
use crate::runtime::Runner;

/// An enrollment collecting frames: each decided frame is added until `remaining` is 0.
pub(crate) struct Enrolling {
    id: ReplyTo,
    label: String,
    remaining: u16,
    added: u16,
    evicted: u16,
}

impl Runner {
    /// Queues what the control channels sent, in order; true when one of them closed (the end
    /// of a command script on stdin).
    pub(crate) fn take_commands(&mut self, events: &Receiver<ControlEvent>) -> bool {
        let mut closed = false;
        while let Ok(event) = events.try_recv() {
            match event {
                ControlEvent::Command(id, c) => self.pending.push_back((ReplyTo::local(id), Ok(c))),
                ControlEvent::Invalid(id, why) => {
                    self.pending.push_back((ReplyTo::local(id), Err(why)))
                }
                ControlEvent::Web(ticket, c) => self.pending.push_back((
                    ReplyTo {
                        origin: Origin::Web(ticket),
                        id: None,
                    },
                    Ok(c),
                )),
                ControlEvent::Mqtt(id, c) => self.pending.push_back((
                    ReplyTo {
                        origin: Origin::Mqtt,
                        id,
                    },
                    c,
                )),
                ControlEvent::Unix {
                    client,
                    json,
                    id,
                    command,
                } => self.pending.push_back((
                    ReplyTo {
                        origin: Origin::Unix { client, json },
                        id,
                    },
                    command,
                )),
                ControlEvent::Closed => closed = true,
            }
        }
        closed
    }

    /// Runs queued requests in order until one starts an enrollment that waits for frames
    /// (`dropped`: the source's drop count, for a status reply).
    pub(crate) fn run_queued(&mut self, dropped: impl Fn() -> u64) -> io::Result<()> {
        while self.enrolling.is_none() {
            let Some((id, c)) = self.pending.pop_front() else {
                break;
            };
            self.request(id, c, dropped())?;
        }
        Ok(())
    }

    /// The source ended: an enrollment still collecting frames is refused, and every queued
    /// request runs (they need no frames, except an enrollment of frames to come).
    pub(crate) fn source_ended(&mut self, dropped: impl Fn() -> u64) -> io::Result<()> {
        if let Some(e) = self.enrolling.take() {
            self.reply(
                e.id,
                ReplyBody::Error(format!(
                    "the source ended after {} of the frames to enroll as `{}`",
                    e.added, e.label
                )),
            )?;
            // A failed save is logged; the final save reports it again.
            let _ = self.autosave();
            self.labels_changed();
        }
        while let Some((id, c)) = self.pending.pop_front() {
            self.request(id, c, dropped())?;
        }
        Ok(())
    }

    /// Sends the reply to request `id`.
    fn reply(&mut self, to: ReplyTo, body: ReplyBody) -> io::Result<()> {
        match (to.origin, &self.mqtt, &self.web) {
            (Origin::Web(ticket), _, Some(w)) => w.reply(ticket, &body),
            (Origin::Mqtt, Some(m), _) => m.reply(to.id, &body),
            (Origin::Unix { client, json }, ..) => {
                if let Some(u) = &self.unix {
                    u.reply(
                        client,
                        &encode::encode_reply(to.id, &body, unix_format(json)),
                    );
                }
            }
            (Origin::Local, ..) => {
                return self
                    .sink
                    .send(encode::encode_reply(to.id, &body, self.format))
            }
            // A remote request always has its link; nothing to answer otherwise.
            _ => {}
        }
        Ok(())
    }

    /// The store's labels changed, or an enrollment began: MQTT's discovery lists the labels
    /// as event types, the web console shows them with their counts.
    ///
    /// A label being enrolled is announced before its first example is stored: the frame after
    /// that can already be decided as it, and Home Assistant drops an event whose type its
    /// discovery config does not list ("Invalid event type"). Announcing at the command leaves
    /// at least two frames between the new config and the first event of the label.
    pub(crate) fn labels_changed(&mut self) {
        if let Some(m) = &self.mqtt {
            let mut labels = crate::runtime::decision_labels(&self.classifier, &self.store);
            if let Some(e) = &self.enrolling {
                if !labels.contains(&e.label) {
                    labels.push(e.label.clone());
                }
            }
            m.set_labels(labels);
        }
        if let Some(w) = &self.web {
            w.store(self.store.counts());
        }
    }

    /// What is wrong now, most urgent first (see [`crate::health::problems`]).
    pub(crate) fn problems(&mut self) -> Vec<String> {
        let drift = self.drift_report();
        self.problems_with(drift.as_ref())
    }

    /// The drift watch's comparison now (none without a watch or before its window is half
    /// full).
    fn drift_report(&mut self) -> Option<crate::drift::DriftInfo> {
        self.drift
            .as_mut()
            .and_then(crate::drift::DriftMonitor::report)
    }

    /// [`Self::problems`], with the drift report already made.
    fn problems_with(&mut self, drift: Option<&crate::drift::DriftInfo>) -> Vec<String> {
        let sink_dropped = self.sink.dropped();
        self.sink_drops.observe(sink_dropped);
        let trouble = self.source_health.current_trouble();
        let mqtt_trouble = self.mqtt.as_ref().and_then(|m| m.trouble());
        let drift = drift
            .filter(|d| d.drifting)
            .map(crate::drift::DriftInfo::problem);
        crate::health::problems(&Observations {
            since_frame: self.live.then(|| self.last_frame.elapsed()),
            source_trouble: trouble.as_deref(),
            unsaved: self.save_error.as_deref().filter(|_| self.dirty),
            mqtt_trouble: mqtt_trouble.as_deref(),
            drift: drift.as_deref(),
            sink_dropping: self
                .sink_drops
                .recent(crate::health::SINK_DROP_MEMORY)
                .then_some(sink_dropped),
        })
    }

    /// A status report (`dropped`: the source's drop count).
    pub(crate) fn status(&mut self, dropped: u64) -> StatusInfo {
        let drift = self.drift_report();
        let problems = self.problems_with(drift.as_ref());
        let latency = self.latencies.p50_p99();
        StatusInfo {
            latency_p50_ms: latency.map(|l| l.0),
            latency_p99_ms: latency.map(|l| l.1),
            healthy: problems.is_empty(),
            problems,
            uptime_s: self.started.elapsed().as_secs(),
            frames: self.frames,
            dropped,
            errors: self.errors,
            store_len: self.store.len() as u64,
            store_capacity: u64::from(self.store.capacity),
            sink_dropped: self.sink.dropped(),
            bad_commands: self.bad_commands + self.sink.bad_input(),
            backbone: self.backbone_sha.clone(),
            capture: self.capture.as_ref().map(crate::capture::Capture::counts),
            drift,
        }
    }

    /// Saves the store to `--store`; the error says why not, and is kept for the health
    /// report while the store holds changes not on disk.
    pub(crate) fn save(&mut self) -> std::result::Result<String, String> {
        let Some(path) = &self.store_path else {
            return Err("no --store file was given; the store lives in memory only".into());
        };
        if let Err(e) = self.store.save(path) {
            let why = e.report();
            self.save_error = Some(why.clone());
            return Err(why);
        }
        self.save_error = None;
        self.dirty = false;
        Ok(format!(
            "saved {} examples to {}",
            self.store.len(),
            path.display()
        ))
    }

    /// Saves when autosaving; the error says what was not saved, for the reply of the command
    /// that changed the store (a reply of success over a failed save would lose the user's
    /// enrolments at the next restart without a word).
    fn autosave(&mut self) -> std::result::Result<(), String> {
        if self.autosave && self.store_path.is_some() {
            if let Err(e) = self.save() {
                log::error!("{e}");
                return Err(format!(
                    "saving the store failed ({e}); the change is in memory only until a save \
                     succeeds"
                ));
            }
        }
        Ok(())
    }

    /// Applies a threshold to `label` (`*`: all); returns what changed.
    pub(crate) fn set_threshold(&mut self, label: &str, value: f32, distance: bool) -> ReplyBody {
        // Every command source (text, JSON, postcard on serial) and the flags come through
        // here, so the range rule is applied once for all of them.
        if let Err(why) = crate::control::check_threshold(value, distance) {
            return ReplyBody::Error(why);
        }
        let all = label == "*";
        let head_index = self.classifier.labels().iter().position(|l| l == label);
        let enrolled = self.store.label_index(label).is_some();
        if !all && head_index.is_none() && !enrolled {
            return ReplyBody::Error(format!("no class or enrolled label `{label}`"));
        }
        if all || head_index.is_some() {
            self.classifier
                .thresholds_mut()
                .set(distance, head_index.filter(|_| !all), value);
        }
        if distance && (all || enrolled) {
            self.decider
                .set_enrolled_distance((!all).then_some(label), value);
        }
        let what = if distance {
            "largest distance"
        } else {
            "least score"
        };
        ReplyBody::Ok(format!("{what} for {label} is now {value}"))
    }

    /// Runs one queued request (a command, or a line that did not parse).
    fn request(
        &mut self,
        id: ReplyTo,
        cmd: std::result::Result<Command, String>,
        dropped: u64,
    ) -> io::Result<()> {
        match cmd {
            Ok(c) => self.command(id, c, dropped),
            Err(why) => {
                self.bad_commands += 1;
                self.reply(id, ReplyBody::Error(why))
            }
        }
    }

    /// Runs one command (enrollments of future frames start here and finish in `frame`).
    fn command(&mut self, id: ReplyTo, cmd: Command, dropped: u64) -> io::Result<()> {
        match cmd {
            Command::Enroll { label, frames } => {
                let label = label.to_string();
                if label == "unknown" {
                    return self.reply(id, ReplyBody::Error("`unknown` is reserved".into()));
                }
                if self.store.capacity == 0 {
                    return self.reply(
                        id,
                        ReplyBody::Error("the store's capacity is 0 (--store-capacity)".into()),
                    );
                }
                self.enrolling = Some(Enrolling {
                    id,
                    label,
                    remaining: frames.max(1),
                    added: 0,
                    evicted: 0,
                });
                self.labels_changed();
                // `enroll LABEL` (0 frames) takes the frame just decided, when there is one;
                // otherwise the next frame.
                if frames == 0 {
                    if let Some((features, source)) = self.last_features.take() {
                        let done = self.enroll_frame(&features, &source);
                        self.last_features = Some((features, source));
                        return done;
                    }
                }
                Ok(())
            }
            Command::Forget { label } => {
                let n = self.store.forget(&label);
                if n == 0 {
                    return self.reply(
                        id,
                        ReplyBody::Error(format!("no enrolled examples of `{label}`")),
                    );
                }
                self.dirty = true;
                self.labels_changed();
                let body = match self.autosave() {
                    Ok(()) => ReplyBody::Ok(format!("forgot {n} examples of `{label}`")),
                    Err(why) => {
                        ReplyBody::Error(format!("forgot {n} examples of `{label}`, but {why}"))
                    }
                };
                self.reply(id, body)
            }
            Command::List => {
                let list = self.store.counts();
                self.reply(id, ReplyBody::List(list))
            }
            Command::Save => {
                let body = match self.save() {
                    Ok(m) => ReplyBody::Ok(m),
                    Err(e) => ReplyBody::Error(e),
                };
                self.reply(id, body)
            }
            Command::Status => {
                let status = self.status(dropped);
                match (id.origin, &self.mqtt, &self.web) {
                    (Origin::Web(ticket), _, Some(w)) => w.status_reply(ticket, &status),
                    (Origin::Mqtt, Some(m), _) => m.status_reply(&status),
                    (Origin::Unix { client, json }, ..) => {
                        if let Some(u) = &self.unix {
                            u.reply(client, &encode::encode_status(&status, unix_format(json)));
                        }
                    }
                    (Origin::Local, ..) => {
                        return self.sink.send(encode::encode_status(&status, self.format))
                    }
                    _ => {}
                }
                Ok(())
            }
            Command::SetThreshold { label, value } => {
                let body = self.set_threshold(&label, value, false);
                self.reply(id, body)
            }
            Command::SetDistance { label, value } => {
                let body = self.set_threshold(&label, value, true);
                self.reply(id, body)
            }
        }
    }

    /// Adds the frame to an enrollment in progress; replies when it completes.
    pub(crate) fn enroll_frame(&mut self, features: &[f32], source: &str) -> io::Result<()> {
        let Some(e) = self.enrolling.as_mut() else {
            return Ok(());
        };
        match self.store.add(&e.label, features, source.to_owned()) {
            Ok(added) => {
                e.added += 1;
                e.evicted += u16::from(added.evicted.is_some());
                e.remaining -= 1;
                self.dirty = true;
            }
            Err(err) => {
                let id = e.id;
                self.enrolling = None;
                self.labels_changed();
                return self.reply(id, ReplyBody::Error(err.to_string()));
            }
        }
        if e.remaining > 0 {
            return Ok(());
        }
        let Some(e) = self.enrolling.take() else {
            return Ok(());
        };
        let saved = self.autosave();
        self.labels_changed();
        let evicted = if e.evicted > 0 {
            format!("; the store was full, {} older examples evicted", e.evicted)
        } else {
            String::new()
        };
        let msg = format!(
            "enrolled {} frame{} as `{}` (store {}/{}){evicted}",
            e.added,
            if e.added == 1 { "" } else { "s" },
            e.label,
            self.store.len(),
            self.store.capacity
        );
        let body = match saved {
            Ok(()) => ReplyBody::Ok(msg),
            Err(why) => ReplyBody::Error(format!("{msg}, but {why}")),
        };
        self.reply(e.id, body)
    }
}

/// The format of a reply on the control socket: as the request was written.
fn unix_format(json: bool) -> encode::Format {
    if json {
        encode::Format::Json
    } else {
        encode::Format::Text
    }
}
