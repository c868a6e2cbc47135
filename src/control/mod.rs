//! Commands a running `glance` accepts: parsed from text or JSON lines ([`parse_line`]; the
//! postcard framing carries [`glance_proto::Command`] directly), delivered to the run loop as
//! [`ControlEvent`]s by the control channels (stdin here, a Unix socket in [`unix`], the serial
//! link in [`crate::serial`], MQTT and the web console), and carried out by the run loop's
//! command interpreter.

use std::io::Read;
use std::sync::mpsc::Sender;

use glance_proto::Command;

pub(crate) mod interpret;
mod parse;
pub(crate) mod unix;

pub use parse::*;

/// A command that arrived, or the end of a control channel.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ControlEvent {
    /// A well-formed command with its request id.
    Command(Option<u16>, Command),
    /// A line or frame that could not be understood, and why.
    Invalid(Option<u16>, String),
    /// A command (or why a message was not one) from the MQTT `cmd` or `enroll` topic; its
    /// reply goes back over MQTT. (Never made in a build without the feature `mqtt`.)
    #[cfg_attr(not(feature = "mqtt"), allow(dead_code))]
    Mqtt(Option<u16>, std::result::Result<Command, String>),
    /// A command posted to the web console; its reply answers the request with this ticket.
    /// (Never made in a build without the feature `web`.)
    #[cfg_attr(not(feature = "web"), allow(dead_code))]
    Web(u64, Command),
    /// A line from a client of the control socket (`--control unix:PATH`): the reply goes back
    /// to that client, as JSON when the line was JSON.
    Unix {
        client: u64,
        json: bool,
        id: Option<u16>,
        command: std::result::Result<Command, String>,
    },
    /// The control channel closed (stdin reached its end).
    Closed,
}

/// Where a request came from, so that its reply goes back there: the main output (stdin and
/// serial commands) or MQTT's `cmd/reply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// stdin or the serial link: the reply goes to the main output.
    Local,
    /// The MQTT broker.
    Mqtt,
    /// A web console request, by ticket.
    Web(u64),
    /// A client of the control socket, and whether it spoke JSON.
    Unix { client: u64, json: bool },
}

/// Whom a reply answers: the request's origin and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplyTo {
    pub origin: Origin,
    pub id: Option<u16>,
}

impl ReplyTo {
    pub(crate) fn local(id: Option<u16>) -> Self {
        Self {
            origin: Origin::Local,
            id,
        }
    }
}

/// Starts the thread that reads command lines from stdin; it sends [`ControlEvent::Closed`]
/// at the end of stdin (a command script that is done). A thread that cannot start is
/// logged, and the run goes on without commands from stdin.
pub(crate) fn start_stdin_control(tx: Sender<ControlEvent>) {
    let spawned = std::thread::Builder::new()
        .name("stdin-control".into())
        .spawn(move || {
            let mut lines = LineReader::default();
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            let mut open = true;
            let mut send = |line: std::result::Result<String, String>| {
                let event = match line.and_then(|l| parse_line(&l)) {
                    Ok((id, c)) => ControlEvent::Command(id, c),
                    Err(e) => ControlEvent::Invalid(None, e),
                };
                open &= tx.send(event).is_ok();
            };
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => lines.push(&buf[..n], &mut send),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::warn!("stdin: {e}; no more commands from it");
                        break;
                    }
                }
            }
            lines.finish(&mut send);
            if open {
                let _ = tx.send(ControlEvent::Closed);
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot read commands from stdin: {e}");
    }
}
