//! MQTT beside the main output (`--mqtt mqtt://[user:pass@]host[:port]/PREFIX`): the decision,
//! its changes and the status reports go to the broker, commands come from it, and Home
//! Assistant finds the device by MQTT discovery ([`discovery`]).
//!
//! Topics under PREFIX:
//! * `availability`: retained `online` / `offline`; `offline` is also the Last Will, so the
//!   broker says it when glance dies without a word.
//! * `state`: retained JSON of the current decision (the `glance run` JSON line), on change.
//! * `label`: retained plain text of the current label, on change.
//! * `event`: `{"event_type": LABEL, "from", "to", "score"}` on every change (not retained:
//!   Home Assistant ignores retained events).
//! * `stats`: every heartbeat, the status report plus `fps` and `latency_ms` since the last.
//! * `cmd` → `cmd/reply`: the commands of stdin and serial, text or JSON, replies in JSON.
//! * `enroll`: a label; enrolls the next [`ENROLL_FRAMES`] frames as it (Home Assistant's
//!   text entity).
//!
//! The frame loop never waits on the network: it puts messages in an outbox that a publisher
//! thread hands to the client. The outbox has two lanes. Replies, availability and discovery
//! go in the lane that is never dropped; decisions and stats go in a short lane that drops
//! (and counts) what does not fit, and drops everything while the broker is away, so a
//! reconnect brings no burst of stale decisions: the current state is re-published instead.

#[cfg(feature = "mqtt")]
pub(crate) mod discovery;
#[cfg(feature = "mqtt")]
mod link;
#[cfg(not(feature = "mqtt"))]
mod off;
mod spec;
#[cfg(feature = "mqtt-tls")]
mod tls;

#[cfg(feature = "host")]
pub(crate) use link::client_options;
#[cfg(feature = "mqtt")]
pub(crate) use link::MqttLink;
#[cfg(not(feature = "mqtt"))]
pub(crate) use off::MqttLink;
pub use spec::MqttSpec;

use std::path::PathBuf;

/// Frames an enrollment from the `enroll` topic collects.
pub const ENROLL_FRAMES: u16 = 10;

/// Everything the MQTT link needs.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Broker and prefix.
    pub spec: MqttSpec,
    /// Home Assistant's discovery prefix (`homeassistant` by default); `None`: no discovery.
    pub discovery_prefix: Option<String>,
    /// This device's id in client ids, unique ids and discovery topics (`[A-Za-z0-9_-]`).
    pub node_id: String,
    /// Publish the JPEG of each frame that changed the decision on `PREFIX/snapshot`.
    pub snapshot: bool,
    /// Certificates for `mqtts://`.
    pub tls: MqttTls,
}

/// The PEM files of an `mqtts://` link (`--mqtt-ca`, `--mqtt-cert`, `--mqtt-key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MqttTls {
    /// The CA certificates the broker's certificate must chain to, instead of the system's
    /// (`/etc/ssl/certs`): a home broker's own CA.
    pub ca: Option<PathBuf>,
    /// This device's certificate chain, for brokers that ask for one.
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
}

impl MqttTls {
    /// Whether these files fit `spec`: files only for `mqtts://`, a certificate only with its
    /// key. The one check `glance run` and `glance-host monitor` share, flags or profile alike.
    pub fn check_for(&self, spec: &MqttSpec) -> Result<(), String> {
        if !spec.tls && *self != Self::default() {
            return Err("--mqtt-ca, --mqtt-cert and --mqtt-key are for mqtts:// brokers".into());
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err("--mqtt-cert and --mqtt-key go together".into());
        }
        Ok(())
    }
}

impl MqttConfig {
    /// From `--mqtt URL`, `--mqtt-discovery PREFIX|off` and `--mqtt-node ID` (default: the
    /// topic prefix).
    pub fn from_flags(url: &str, discovery: &str, node: Option<&str>) -> Result<Self, String> {
        let spec: MqttSpec = url.parse()?;
        Ok(Self {
            node_id: Self::node_id_from(node.unwrap_or(&spec.prefix)),
            discovery_prefix: (discovery != "off").then(|| discovery.trim_end_matches('/').into()),
            snapshot: false,
            tls: MqttTls::default(),
            spec,
        })
    }

    /// The node id from `name`: every character outside `[A-Za-z0-9_-]` becomes `_`.
    pub fn node_id_from(name: &str) -> String {
        let id: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if id.is_empty() {
            "glance".into()
        } else {
            id
        }
    }

    #[cfg_attr(not(feature = "mqtt"), allow(dead_code))]
    fn topic(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.spec.prefix)
    }
}
