//! The broker URL of `--mqtt`.

use std::str::FromStr;

/// The broker and topics of `--mqtt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSpec {
    /// Broker host name or address.
    pub host: String,
    /// Broker port (1883 unless given; 8883 for `mqtts://`).
    pub port: u16,
    /// TLS (`mqtts://`).
    pub tls: bool,
    /// User name and password, when the broker wants them.
    pub credentials: Option<(String, String)>,
    /// Topic prefix (no leading or trailing `/`).
    pub prefix: String,
}

impl FromStr for MqttSpec {
    type Err = String;

    /// `mqtt://[user:pass@]host[:port]/PREFIX`, or `mqtts://` for TLS.
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "an MQTT broker is mqtt://[user:pass@]host[:port]/PREFIX (mqtts:// for TLS)";
        let (tls, rest) = match (s.strip_prefix("mqtt://"), s.strip_prefix("mqtts://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(format!("`{s}`: {usage}")),
        };
        let (authority, prefix) = rest
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: no topic prefix; {usage}"))?;
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return Err(format!("`{s}`: the topic prefix is empty; {usage}"));
        }
        if prefix.contains(['#', '+', '\0']) || prefix.starts_with('/') {
            return Err(format!(
                "`{s}`: the topic prefix `{prefix}` may not hold `#`, `+`, NUL or start with `/`"
            ));
        }
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((auth, hp)) => {
                let (u, p) = auth.split_once(':').unwrap_or((auth, ""));
                if u.is_empty() {
                    return Err(format!("`{s}`: empty user name; {usage}"));
                }
                (Some((u.to_string(), p.to_string())), hp)
            }
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| format!("`{s}`: `{p}` is not a port"))?,
            ),
            _ => (hostport, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{s}`: no host; {usage}"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
            tls,
            credentials,
            prefix: prefix.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::MqttConfig;

    #[test]
    fn broker_urls_parse_and_bad_ones_say_why() {
        let s: MqttSpec = "mqtt://u:p@broker.lan:1884/glance/kitchen/"
            .parse()
            .unwrap();
        assert_eq!(
            s,
            MqttSpec {
                host: "broker.lan".into(),
                port: 1884,
                tls: false,
                credentials: Some(("u".into(), "p".into())),
                prefix: "glance/kitchen".into(),
            }
        );
        let s: MqttSpec = "mqtt://10.0.0.2/g".parse().unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.credentials),
            ("10.0.0.2", 1883, None)
        );
        let s: MqttSpec = "mqtt://[::1]:1999/g".parse().unwrap();
        assert_eq!((s.host.as_str(), s.port), ("::1", 1999));
        let s: MqttSpec = "mqtts://broker.lan/g".parse().unwrap();
        assert_eq!((s.port, s.tls), (8883, true));
        let s: MqttSpec = "mqtts://broker.lan:8884/g".parse().unwrap();
        assert_eq!((s.port, s.tls), (8884, true));
        for (bad, needle) in [
            ("broker/g", "mqtt://"),
            ("mqtt://broker", "no topic prefix"),
            ("mqtt://broker/", "empty"),
            ("mqtt://broker:0/g", "not a port"),
            ("mqtt://broker:x/g", "not a port"),
            ("mqtt://broker/a/#", "`#`"),
            ("mqtt:///g", "no host"),
            ("tcp://broker/g", "mqtts://"),
        ] {
            let e = bad.parse::<MqttSpec>().unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn node_ids_keep_only_what_topics_and_unique_ids_allow() {
        assert_eq!(
            MqttConfig::node_id_from("glance/kitchen cam"),
            "glance_kitchen_cam"
        );
        assert_eq!(MqttConfig::node_id_from(""), "glance");
        let c = MqttConfig::from_flags("mqtt://b/glance/shelf", "off", None).unwrap();
        assert_eq!(
            (c.node_id.as_str(), c.discovery_prefix),
            ("glance_shelf", None)
        );
        let c = MqttConfig::from_flags("mqtt://b/g", "ha/", Some("pi 4")).unwrap();
        assert_eq!(
            (c.node_id.as_str(), c.discovery_prefix.as_deref()),
            ("pi_4", Some("ha"))
        );
    }
}
