//! `glance ctl SOCKET [COMMAND…]`: sends command lines to a running `glance run --control
//! unix:SOCKET` and prints each reply (one line per command: text for a text command, JSON for
//! a JSON one). With no COMMAND, the lines of stdin are the commands.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub(crate) struct CtlArgs {
    /// The control socket of a running `glance run --control unix:PATH`.
    #[arg(value_name = "SOCKET")]
    socket: PathBuf,
    /// Commands, one per argument, as on the serial link: `enroll mug 10`, `forget mug`, `list`,
    /// `save`, `status`, `set-threshold mug 0.6`, or JSON (`{"command":"list","id":3}`).
    /// Read from stdin, one per line, when none is given.
    #[arg(value_name = "COMMAND")]
    commands: Vec<String>,
    /// Seconds to wait for each reply (an enrollment replies once its frames are taken).
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    timeout: u64,
}

/// Whether a reply line says the command failed.
fn failed(reply: &str) -> bool {
    if reply.starts_with("error:") {
        return true;
    }
    serde_json::from_str::<serde_json::Value>(reply)
        .ok()
        .and_then(|v| v.pointer("/reply/ok").and_then(serde_json::Value::as_bool))
        == Some(false)
}

pub(crate) fn ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let commands: Vec<String> = if args.commands.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<Vec<_>>>()
            .context("reading commands from stdin")?
    } else {
        args.commands
    };
    let commands: Vec<&str> = commands
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(bad) = commands.iter().find(|c| c.contains('\n')) {
        anyhow::bail!("a command is one line: {bad:?}");
    }
    let mut stream = UnixStream::connect(&args.socket).with_context(|| {
        format!(
            "{}: cannot connect (is `glance run --control unix:{}` running?)",
            args.socket.display(),
            args.socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(args.timeout.max(1))))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = std::io::stdout().lock();
    let mut any_failed = false;
    // One command, then its reply: a reply names no command, so they are paired by order.
    for command in commands {
        stream
            .write_all(format!("{command}\n").as_bytes())
            .with_context(|| format!("{}: sending `{command}`", args.socket.display()))?;
        let mut reply = String::new();
        let n = reader.read_line(&mut reply).map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                anyhow::anyhow!("no reply to `{command}` within {} s", args.timeout)
            } else {
                anyhow::anyhow!("{}: {e}", args.socket.display())
            }
        })?;
        if n == 0 {
            anyhow::bail!("glance closed the connection before replying to `{command}`");
        }
        any_failed |= failed(reply.trim_end());
        out.write_all(reply.as_bytes())?;
        out.flush()?;
    }
    Ok(if any_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn failed_replies_are_told_apart_in_text_and_json() {
        assert!(super::failed("error: no class `x`"));
        assert!(!super::failed("ok: enrolled 10 frames as `mug`"));
        assert!(super::failed(
            r#"{"reply":{"id":3,"ok":false,"message":"no"}}"#
        ));
        assert!(!super::failed(
            r#"{"reply":{"id":3,"ok":true,"message":"saved"}}"#
        ));
        assert!(!super::failed(r#"{"status":{"frames":3}}"#));
        assert!(!super::failed("status: up 3 s, 10 frames"));
    }
}
