//! Home Assistant MQTT device discovery: one retained config message on
//! `<discovery_prefix>/device/<node_id>/config` declares the device and all its entities
//! (Home Assistant's "device-based discovery": `dev`, `o` and `cmps`, each component with its
//! platform `p` and a `unique_id`). Keys are spelled out in full, which the schema allows
//! everywhere, so the payload reads without the abbreviation table.
//!
//! Entities: the label (sensor), the score (sensor, %), the decision (event; its
//! `event_types` are the head's classes, the enrolled labels and `unknown`), an enroll label
//! (text: what is typed is enrolled from the next frames), and diagnostics: frame rate,
//! latency, frames dropped, MQTT messages dropped, examples in the store.

use serde_json::{json, Value};

use super::MqttConfig;

/// The discovery topic of a device.
pub(crate) fn config_topic(discovery_prefix: &str, node_id: &str) -> String {
    format!("{discovery_prefix}/device/{node_id}/config")
}

/// The device config for `labels` (the decision's possible labels besides `unknown`).
pub(crate) fn device_config(config: &MqttConfig, labels: &[String]) -> Value {
    let node = &config.node_id;
    let topic = |leaf: &str| format!("{}/{leaf}", config.spec.prefix);
    let uid = |what: &str| format!("glance_{node}_{what}");
    let mut event_types: Vec<&str> = labels.iter().map(String::as_str).collect();
    if !event_types.contains(&"unknown") {
        event_types.push("unknown");
    }
    let stats = topic("stats");
    let diagnostic = |what: &str, name: &str, template: &str, unit: Option<&str>, class: &str| {
        let mut c = json!({
            "platform": "sensor",
            "unique_id": uid(what),
            "name": name,
            "state_topic": stats,
            "value_template": template,
            "state_class": class,
            "entity_category": "diagnostic",
        });
        if let Some(u) = unit {
            c["unit_of_measurement"] = json!(u);
        }
        c
    };
    let mut config_json = json!({
        "device": {
            "identifiers": [format!("glance_{node}")],
            "name": format!("glance {node}"),
            "manufacturer": "glance",
            "model": "glance edge classifier",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
        "origin": {
            "name": "glance",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
        "availability_topic": topic("availability"),
        "payload_available": "online",
        "payload_not_available": "offline",
        "components": {
            "label": {
                "platform": "sensor",
                "unique_id": uid("label"),
                "name": "Label",
                "icon": "mdi:tag",
                "state_topic": topic("label"),
            },
            "score": {
                "platform": "sensor",
                "unique_id": uid("score"),
                "name": "Score",
                "state_topic": topic("state"),
                "value_template": "{{ (value_json.score * 100) | round(1) }}",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "json_attributes_topic": topic("state"),
                "json_attributes_template":
                    "{{ {'source': value_json.source, 'unknown': value_json.unknown, \
                     'decided_by': value_json.decided_by} | tojson }}",
            },
            "decision": {
                "platform": "event",
                "unique_id": uid("decision"),
                "name": "Decision",
                "state_topic": topic("event"),
                "event_types": event_types,
            },
            "enroll": {
                "platform": "text",
                "unique_id": uid("enroll"),
                "name": "Enroll label",
                "icon": "mdi:school",
                "command_topic": topic("enroll"),
                "min": 1,
                "max": glance_proto::MAX_LABEL,
                "pattern": "\\S+",
                "mode": "text",
            },
            "fps": diagnostic("fps", "Frame rate", "{{ value_json.fps | round(2) }}", Some("fps"), "measurement"),
            "latency": diagnostic(
                "latency",
                "Latency",
                "{{ value_json.latency_ms | round(1) }}",
                Some("ms"),
                "measurement",
            ),
            "dropped": diagnostic("dropped", "Frames dropped", "{{ value_json.dropped }}", None, "total_increasing"),
            "mqtt_dropped": diagnostic(
                "mqtt_dropped",
                "MQTT messages dropped",
                "{{ value_json.mqtt_dropped }}",
                None,
                "total_increasing",
            ),
            "store": diagnostic("store", "Stored examples", "{{ value_json.store_len }}", None, "measurement"),
        },
        "qos": 1,
    });
    if config.snapshot {
        config_json["components"]["snapshot"] = json!({
            "platform": "image",
            "unique_id": uid("snapshot"),
            "name": "Snapshot",
            "image_topic": topic("snapshot"),
            "content_type": "image/jpeg",
        });
    }
    config_json
}
