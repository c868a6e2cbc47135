//! The web console (`--web [ADDR]`, off by default): one page for a phone or a laptop, the live
//! view, the decision, the store, enroll / forget / thresholds, and the endpoints a house
//! keeps for its tools.
//!
//! * `/`: the page ([`PAGE`]: one self-contained HTML file, no build step, no CDN).
//! * `/stream.mjpg`: `multipart/x-mixed-replace` JPEG parts at `--web-fps` (default 5), each
//!   flushed as it is written; at most [`MAX_STREAMS`] at once.
//! * `/snapshot.jpg`, `/api/state` (decision, status, store), `POST /api/cmd` (a command line or
//!   JSON command, as on serial; the reply is the response).
//! * `/metrics` (Prometheus text), `/healthz` (the loop turns), `/readyz` (and nothing is wrong).
//!
//! `--web-auth user:pass` asks for HTTP basic auth on everything but `/healthz` and `/readyz`.
//! There is no TLS: the password crosses the network in the clear, so put a reverse proxy with
//! TLS in front when the network is not trusted.
//!
//! Threads: one accepts requests and gives each its own short-lived thread (a stream holds its
//! thread while the client watches). The run loop only updates [`WebShared`] under a mutex and
//! never waits on a client.

#[cfg(feature = "web")]
mod metrics;
#[cfg(not(feature = "web"))]
mod off;
#[cfg(feature = "web")]
mod server;

use std::net::SocketAddr;

#[cfg(not(feature = "web"))]
pub(crate) use off::Web;
#[cfg(feature = "web")]
pub(crate) use server::Web;

/// Live streams served at once; more get 503 (each holds a thread and a socket).
pub const MAX_STREAMS: usize = 4;

/// `--web` settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// `user:pass` for basic auth.
    pub auth: Option<String>,
    /// Parts per second of `/stream.mjpg`.
    pub stream_fps: f32,
}

impl WebConfig {
    /// From `--web [ADDR]`, `--web-auth user:pass` and `--web-fps`. ADDR is `host:port`,
    /// `:port` or `port`; with none, 127.0.0.1:8080.
    pub fn from_flags(addr: &str, auth: Option<&str>, fps: f32) -> Result<Self, String> {
        let text = match addr {
            "" => "127.0.0.1:8080".to_string(),
            a if a.starts_with(':') => format!("0.0.0.0{a}"),
            a if a.parse::<u16>().is_ok() => format!("127.0.0.1:{a}"),
            a => a.to_string(),
        };
        let addr = text
            .parse::<SocketAddr>()
            .map_err(|_| format!("`{addr}` is not an address (HOST:PORT, :PORT or PORT)"))?;
        if let Some(a) = auth {
            if !a.contains(':') || a.starts_with(':') {
                return Err("--web-auth is USER:PASSWORD".into());
            }
        }
        if !(fps > 0.0 && fps <= 30.0) {
            return Err(format!("--web-fps {fps}: within (0, 30]"));
        }
        Ok(Self {
            addr,
            auth: auth.map(str::to_string),
            stream_fps: fps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_localhost_8080_and_bad_flags_say_why() {
        let c = WebConfig::from_flags("", None, 5.0).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            WebConfig::from_flags("9000", None, 5.0)
                .unwrap()
                .addr
                .to_string(),
            "127.0.0.1:9000"
        );
        assert_eq!(
            WebConfig::from_flags(":9000", None, 5.0)
                .unwrap()
                .addr
                .to_string(),
            "0.0.0.0:9000"
        );
        assert!(WebConfig::from_flags("nowhere", None, 5.0)
            .unwrap_err()
            .contains("not an address"));
        assert!(WebConfig::from_flags("", Some("nopass"), 5.0)
            .unwrap_err()
            .contains("USER:PASSWORD"));
        assert!(WebConfig::from_flags("", None, 0.0)
            .unwrap_err()
            .contains("--web-fps"));
    }
}
