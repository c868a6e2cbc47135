//! Commands a running `glance` accepts, as text or JSON lines (stdin, or a serial link in JSON
//! framing); the postcard framing carries [`glance_proto::Command`] directly.
//!
//! Text: `enroll LABEL [N]`, `forget LABEL`, `list`, `save`, `status`,
//! `set-threshold LABEL|* VALUE`, `set-distance LABEL|* VALUE`.
//! JSON: `{"command":"enroll","label":"mug","frames":5}`, `{"command":"set-threshold",
//! "label":"cat","value":0.6}`, …, with an optional `"id"` echoed in the reply.

use glance_proto::{Command, Label};
use serde::Deserialize;

/// The usage line shown with every parse error.
pub const USAGE: &str = "commands: enroll LABEL [N] | forget LABEL | list | save | status | \
                         set-threshold LABEL|* VALUE | set-distance LABEL|* VALUE";

fn label(s: &str) -> Result<Label, String> {
    if s.is_empty() {
        return Err("empty label".into());
    }
    Label::try_from(s).map_err(|_| {
        format!(
            "label `{s}` is longer than {} bytes",
            glance_proto::MAX_LABEL
        )
    })
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not a valid {what}"))
}

/// Parses one text command line.
pub fn parse_text(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let bad = |msg: &str| Err(format!("{msg}; {USAGE}"));
    match words.as_slice() {
        ["enroll", l] => Ok(Command::Enroll {
            label: label(l)?,
            frames: 0,
        }),
        ["enroll", l, n] => Ok(Command::Enroll {
            label: label(l)?,
            frames: number(n, "frame count (0..=65535)")?,
        }),
        ["forget", l] => Ok(Command::Forget { label: label(l)? }),
        ["list"] => Ok(Command::List),
        ["save"] => Ok(Command::Save),
        ["status"] => Ok(Command::Status),
        ["set-threshold", l, v] => Ok(Command::SetThreshold {
            label: label(l)?,
            value: probability(number(v, "threshold")?)?,
        }),
        ["set-distance", l, v] => Ok(Command::SetDistance {
            label: label(l)?,
            value: distance(number(v, "distance")?)?,
        }),
        [] => bad("empty command"),
        [w, ..] => bad(&format!("cannot parse `{w}` with these arguments")),
    }
}

fn probability(v: f32) -> Result<f32, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("threshold {v} is outside 0..=1"))
    }
}

fn distance(v: f32) -> Result<f32, String> {
    if (0.0..=2.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("distance {v} is outside 0..=2 (cosine distance)"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCommand {
    command: String,
    #[serde(default)]
    id: Option<u16>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    frames: Option<u16>,
    #[serde(default)]
    value: Option<f32>,
}

/// Parses one line that is either a JSON object or a text command; returns the request id
/// (JSON `"id"`, else none) and the command.
pub fn parse_line(line: &str) -> Result<(Option<u16>, Command), String> {
    let line = line.trim();
    if !line.starts_with('{') {
        return parse_text(line).map(|c| (None, c));
    }
    let j: JsonCommand =
        serde_json::from_str(line).map_err(|e| format!("bad JSON command: {e}"))?;
    let need_label = || label(j.label.as_deref().unwrap_or_default());
    let need_value = || j.value.ok_or_else(|| "missing \"value\"".to_string());
    let cmd = match j.command.as_str() {
        "enroll" => Command::Enroll {
            label: need_label()?,
            frames: j.frames.unwrap_or(0),
        },
        "forget" => Command::Forget {
            label: need_label()?,
        },
        "list" => Command::List,
        "save" => Command::Save,
        "status" => Command::Status,
        "set-threshold" => Command::SetThreshold {
            label: need_label()?,
            value: probability(need_value()?)?,
        },
        "set-distance" => Command::SetDistance {
            label: need_label()?,
            value: distance(need_value()?)?,
        },
        other => return Err(format!("unknown command `{other}`; {USAGE}")),
    };
    Ok((j.id, cmd))
}

/// The text form of a command (what `glance-host monitor` shows and sends).
pub fn to_text(cmd: &Command) -> String {
    match cmd {
        Command::Enroll { label, frames } => format!("enroll {label} {frames}"),
        Command::Forget { label } => format!("forget {label}"),
        Command::List => "list".into(),
        Command::Save => "save".into(),
        Command::Status => "status".into(),
        Command::SetThreshold { label, value } => format!("set-threshold {label} {value}"),
        Command::SetDistance { label, value } => format!("set-distance {label} {value}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_forms_agree() {
        for (text, json) in [
            (
                "enroll mug 5",
                r#"{"command":"enroll","label":"mug","frames":5}"#,
            ),
            ("forget mug", r#"{"command":"forget","label":"mug"}"#),
            ("list", r#"{"command":"list"}"#),
            ("save", r#"{"command":"save"}"#),
            ("status", r#"{"command":"status"}"#),
            (
                "set-threshold cat 0.5",
                r#"{"command":"set-threshold","label":"cat","value":0.5}"#,
            ),
            (
                "set-distance * 0.3",
                r#"{"command":"set-distance","label":"*","value":0.3}"#,
            ),
        ] {
            let a = parse_line(text).unwrap().1;
            let b = parse_line(json).unwrap().1;
            assert_eq!(a, b, "{text}");
            assert_eq!(parse_line(&to_text(&a)).unwrap().1, a);
        }
        assert_eq!(
            parse_line(r#"{"command":"list","id":7}"#).unwrap().0,
            Some(7)
        );
    }

    #[test]
    fn bad_commands_say_why() {
        for (line, needle) in [
            ("", "empty"),
            ("enroll", "cannot parse"),
            ("enroll mug lots", "frame count"),
            ("set-threshold cat 3", "outside"),
            ("set-distance cat -1", "outside"),
            ("fly away", "cannot parse"),
            (r#"{"command":"fly"}"#, "unknown command"),
            (r#"{"command":"forget"}"#, "empty label"),
            (r#"{"command":"#, "bad JSON"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(needle), "{line:?}: {e}");
        }
        let long = format!("enroll {}", "x".repeat(40));
        assert!(parse_line(&long).unwrap_err().contains("longer"));
    }
}
