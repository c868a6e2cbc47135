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
pub(crate) const USAGE: &str =
    "commands: enroll LABEL [N] | forget LABEL | list | save | status | \
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
            value: check_score(number(v, "threshold")?)?,
        }),
        ["set-distance", l, v] => Ok(Command::SetDistance {
            label: label(l)?,
            value: check_distance(number(v, "distance")?)?,
        }),
        [] => bad("empty command"),
        [w, ..] => bad(&format!("cannot parse `{w}` with these arguments")),
    }
}

/// Longest command line accepted, in bytes (commands are a few dozen).
pub const MAX_COMMAND_LINE: usize = 4096;

/// Cuts a byte stream of text commands into lines, for every text channel (stdin, serial):
/// a line longer than [`MAX_COMMAND_LINE`] is refused whole (never run cut, never echoed, and
/// never held past the limit), a line that is not UTF-8 is refused, and neither closes the
/// channel. Blank lines are skipped.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    overlong: bool,
}

impl LineReader {
    /// Feeds bytes; calls `on_line` with each complete line (trimmed) or why it was refused.
    pub fn push(&mut self, bytes: &[u8], mut on_line: impl FnMut(Result<String, String>)) {
        for &b in bytes {
            if b == b'\n' {
                self.end_line(&mut on_line);
            } else if self.buf.len() < MAX_COMMAND_LINE {
                self.buf.push(b);
            } else {
                self.overlong = true;
            }
        }
    }

    /// The last line of a stream that ended without a newline.
    pub fn finish(&mut self, mut on_line: impl FnMut(Result<String, String>)) {
        if !self.buf.is_empty() || self.overlong {
            self.end_line(&mut on_line);
        }
    }

    fn end_line(&mut self, on_line: &mut impl FnMut(Result<String, String>)) {
        if self.overlong {
            on_line(Err(format!(
                "a command line longer than {MAX_COMMAND_LINE} bytes was refused whole"
            )));
        } else {
            match std::str::from_utf8(&self.buf) {
                Ok(text) if text.trim().is_empty() => {}
                Ok(text) => on_line(Ok(text.trim().to_owned())),
                Err(_) => on_line(Err(
                    "a command line that is not UTF-8 text was refused".into()
                )),
            }
        }
        self.buf.clear();
        self.overlong = false;
    }
}

/// The range rule of a least score, for flags and every command source alike: 0..=1 (NaN is
/// outside it).
pub fn check_score(v: f32) -> Result<f32, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("threshold {v} is outside 0..=1"))
    }
}

/// The range rule of a largest distance, for flags and every command source alike: 0..=2
/// (cosine distance; NaN is outside it).
pub fn check_distance(v: f32) -> Result<f32, String> {
    if (0.0..=2.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("distance {v} is outside 0..=2 (cosine distance)"))
    }
}

/// The range rule of a threshold: [`check_distance`] when `distance`, else [`check_score`].
pub(crate) fn check_threshold(v: f32, distance: bool) -> Result<f32, String> {
    if distance {
        check_distance(v)
    } else {
        check_score(v)
    }
}

/// Parses a `--min-score` (`distance` false) or `--max-distance` flag value `[LABEL=]V` with
/// the range rule of its kind; the error names the flag and the value.
pub fn parse_threshold_flag(flag: &str, distance: bool) -> Result<(Option<&str>, f32), String> {
    let name = if distance {
        "--max-distance"
    } else {
        "--min-score"
    };
    let (label, text) = match flag.rsplit_once('=') {
        Some((l, v)) => (Some(l), v),
        None => (None, flag),
    };
    let value: f32 = text
        .parse()
        .map_err(|_| format!("{name} `{flag}`: `{text}` is not a number"))?;
    check_threshold(value, distance).map_err(|why| format!("{name} `{flag}`: {why}"))?;
    Ok((label, value))
}

/// Longest period a flag may give, in seconds (one day): `Duration::from_secs_f64` panics on
/// values it cannot hold, and a heartbeat of 1e20 s is a typo, not a wish.
pub(crate) const MAX_SECONDS: f64 = 86_400.0;

/// The range rule of a period in seconds (`--heartbeat`, `--timeout`): 0 means none; NaN,
/// infinities, negative values and more than [`MAX_SECONDS`] are refused.
pub fn check_seconds(name: &str, v: f64) -> Result<Option<std::time::Duration>, String> {
    if !(0.0..=MAX_SECONDS).contains(&v) {
        return Err(format!(
            "{name} {v:?}: seconds must be a number from 0 to {MAX_SECONDS} (0 = none)"
        ));
    }
    Ok((v > 0.0).then(|| std::time::Duration::from_secs_f64(v)))
}

/// A camera size `WIDTHxHEIGHT` (`640x480`, `1280X720`), both sides above 0.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    text.split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|&(w, h)| w > 0 && h > 0)
        .ok_or_else(|| format!("--size `{text}`: expected WIDTHxHEIGHT"))
}

/// The range rule of `--threads`: 1 up to the cores this machine has (more threads than cores
/// only add switching; thousands of them stalled a run for minutes).
pub fn check_threads(n: usize) -> Result<usize, String> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    if n == 0 || n > cores {
        return Err(format!(
            "--threads {n}: this machine has {cores} core(s); give 1 to {cores}"
        ));
    }
    Ok(n)
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
            value: check_score(need_value()?)?,
        },
        "set-distance" => Command::SetDistance {
            label: need_label()?,
            value: check_distance(need_value()?)?,
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
    fn lines_are_bounded_and_bad_ones_refused_without_closing() {
        let mut r = LineReader::default();
        let mut got = Vec::new();
        let mut input = b"list\n\xff\xfe\n\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 200_000));
        input.extend_from_slice(b"\nsave\nstatus");
        for chunk in input.chunks(777) {
            r.push(chunk, |l| got.push(l));
        }
        r.finish(|l| got.push(l));
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], Ok("list".into()));
        assert!(got[1].as_ref().is_err_and(|e| e.contains("not UTF-8")));
        assert!(got[2]
            .as_ref()
            .is_err_and(|e| e.contains("refused whole") && e.len() < 100));
        assert_eq!(got[3], Ok("save".into()));
        assert_eq!(got[4], Ok("status".into()));
        assert!(r.buf.capacity() <= 2 * MAX_COMMAND_LINE);
    }

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
