//! Every command source: text and JSON lines (stdin, or a serial link in JSON/text framing) cut
//! by the bounded line reader and parsed, and postcard commands off the serial wire. Whatever
//! parses must satisfy the shared range rules, so no source can smuggle past them.
//!
//! The body of fuzz target `commands` (fuzz/fuzz_targets), shared with the test suite's
//! corpus replay and mutation test (tests/fuzz_corpus.rs).

use glance::commands::{self, LineReader, MAX_COMMAND_LINE};
use glance_proto::Command;

fn check(cmd: &Command) {
    match cmd {
        Command::SetThreshold { label, value } => {
            assert!(
                commands::check_score(*value).is_ok(),
                "{label}: score {value} passed"
            );
        }
        Command::SetDistance { label, value } => {
            assert!(
                commands::check_distance(*value).is_ok(),
                "{label}: distance {value} passed"
            );
        }
        Command::Enroll { label, .. } | Command::Forget { label } => {
            assert!(!label.is_empty(), "an empty label parsed");
        }
        Command::List | Command::Save | Command::Status => {}
    }
}

/// One input: returns, or panics on a broken invariant.
pub fn run(data: &[u8]) {
    let mut lines = LineReader::default();
    let mut parsed = Vec::new();
    let mut take = |line: Result<String, String>| {
        if let Ok(text) = line {
            assert!(text.len() <= MAX_COMMAND_LINE);
            if let Ok((_, cmd)) = commands::parse_line(&text) {
                check(&cmd);
                parsed.push(cmd);
            }
        }
    };
    lines.push(data, &mut take);
    lines.finish(&mut take);
    // The text form that `glance-host monitor` sends parses back to the same command, for
    // every label a text line can carry (one word).
    for cmd in parsed {
        let one_word = match &cmd {
            Command::Enroll { label, .. }
            | Command::Forget { label }
            | Command::SetThreshold { label, .. }
            | Command::SetDistance { label, .. } => !label.contains(char::is_whitespace),
            _ => true,
        };
        if one_word {
            let text = commands::to_text(&cmd);
            assert_eq!(commands::parse_text(&text).as_ref(), Ok(&cmd), "`{text}`");
        }
    }
    // Postcard commands as they come off the serial wire (inside a frame, see wire_stream):
    // the decoder must refuse or accept, never panic.
    let _ = postcard::take_from_bytes::<Command>(data);
}
