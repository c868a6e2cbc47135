//! systemd notification (`sd_notify`): `READY=1` once the model is loaded, `WATCHDOG=1` from
//! the frame loop while it is alive, `STOPPING=1` on the way out. With `WatchdogSec=` in the
//! unit, systemd restarts a glance whose loop stops turning. Does nothing outside systemd
//! (no `NOTIFY_SOCKET`).

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// A connection to systemd's notification socket, if there is one.
#[derive(Debug)]
pub(crate) struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` from the environment.
    pub(crate) fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let addr = if let Some(name) = path.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            } else {
                std::os::unix::net::SocketAddr::from_pathname(&path).ok()?
            };
            let sock = UnixDatagram::unbound().ok()?;
            Some((sock, addr))
        });
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&us| us > 0)
            .map(Duration::from_micros);
        Self {
            socket,
            watchdog,
            last_ping: None,
        }
    }

    fn send(&self, state: &str) {
        if let Some((sock, addr)) = &self.socket {
            if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
                log::warn!("sd_notify {state}: {e}");
            }
        }
    }

    /// Tells systemd the service is up.
    pub(crate) fn ready(&self) {
        self.send("READY=1");
    }

    /// Pings the watchdog, at most twice per watchdog period.
    pub(crate) fn alive(&mut self) {
        let Some(period) = self.watchdog else { return };
        if self.last_ping.is_none_or(|t| t.elapsed() >= period / 2) {
            self.send("WATCHDOG=1");
            self.last_ping = Some(Instant::now());
        }
    }

    /// Tells systemd what state the service is in, in words (`systemctl status` shows it).
    pub(crate) fn status(&self, text: &str) {
        // One line: systemd reads the datagram as newline-separated assignments.
        self.send(&format!("STATUS={}", text.replace('\n', " ")));
    }

    /// Tells systemd the service is shutting down.
    pub(crate) fn stopping(&self) {
        self.send("STOPPING=1");
    }
}
