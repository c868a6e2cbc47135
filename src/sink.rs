//! Where decisions go: the choice of output ([`SinkSpec`]) and the open output ([`Sink`]):
//! stdout, or a serial port behind [`crate::serial::SerialLink`]. The bytes come from
//! [`crate::encode`]; an output only moves them.

use std::io::{self, Write};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

// The encoder, the serial link and the control events had their home here; their paths stay
// valid for code written against them.
pub(crate) use crate::serial::SerialLink;

/// Default serial speed.
pub(crate) const DEFAULT_BAUD: u32 = 115_200;

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// Standard output.
    Stdout,
    /// A serial device.
    Serial {
        /// The device, e.g. `/dev/ttyUSB0`.
        path: PathBuf,
        /// Its speed.
        baud: u32,
    },
}

impl FromStr for SinkSpec {
    type Err = String;

    /// `stdout` or `serial:PATH[@BAUD]`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "stdout" || s == "-" {
            return Ok(Self::Stdout);
        }
        let Some(rest) = s.strip_prefix("serial:") else {
            return Err(format!(
                "`{s}`: an output is `stdout` or `serial:PATH[@BAUD]`"
            ));
        };
        let (path, baud) = match rest.rsplit_once('@') {
            Some((p, b)) => (
                p,
                b.parse::<u32>()
                    .ok()
                    .filter(|&b| b > 0)
                    .ok_or_else(|| format!("`{b}` is not a baud rate"))?,
            ),
            None => (rest, DEFAULT_BAUD),
        };
        if path.is_empty() {
            return Err(format!("`{s}`: the serial device path is empty"));
        }
        Ok(Self::Serial {
            path: PathBuf::from(path),
            baud,
        })
    }
}

/// The open output.
pub(crate) enum Sink {
    /// Standard output, flushed per message.
    Stdout(io::BufWriter<io::Stdout>),
    /// A serial port behind its I/O thread.
    Serial(SerialLink),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdout(_) => write!(f, "Sink::Stdout"),
            Self::Serial(l) => write!(f, "Sink::Serial({})", l.path().display()),
        }
    }
}

impl Sink {
    /// Sends one encoded message. Only stdout can fail (a closed pipe ends the run).
    pub(crate) fn send(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        match self {
            Self::Stdout(w) => {
                w.write_all(&bytes)?;
                w.flush()
            }
            Self::Serial(link) => {
                link.send(bytes);
                Ok(())
            }
        }
    }

    /// Messages dropped because the serial queue was full or the port away.
    pub(crate) fn dropped(&self) -> u64 {
        match self {
            Self::Stdout(_) => 0,
            Self::Serial(l) => l.dropped(),
        }
    }

    /// Serial lines or frames that did not decode.
    pub(crate) fn bad_input(&self) -> u64 {
        match self {
            Self::Stdout(_) => 0,
            Self::Serial(l) => l.bad_input(),
        }
    }

    /// Flushes what is queued (serial: waits up to `timeout` for the I/O thread).
    pub(crate) fn finish(self, timeout: Duration) {
        match self {
            Self::Stdout(mut w) => {
                let _ = w.flush();
            }
            Self::Serial(link) => link.finish(timeout),
        }
    }
}
