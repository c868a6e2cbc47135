//! A glance built without the cargo feature `mqtt`: `--mqtt` is refused at start with a
//! message that says so. The link type has no values, so no code path of the run loop can
//! reach MQTT in such a build.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use super::MqttConfig;
use crate::control::ControlEvent;
use crate::decision::Decided;
use crate::encode::{ReplyBody, StatusInfo};

/// No link can exist in this build.
pub(crate) enum MqttLink {}

impl MqttLink {
    /// Always an error: this build has no MQTT client.
    pub(crate) fn start(
        config: MqttConfig,
        _labels: Vec<String>,
        _commands: Sender<ControlEvent>,
    ) -> std::io::Result<Self> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "this glance was built without MQTT (cargo feature `mqtt`), so it cannot \
                 reach {}:{}",
                config.spec.host, config.spec.port
            ),
        ))
    }

    pub(crate) fn decision(&mut self, _: &Decided, _: Option<&str>, _: Option<&Arc<Vec<u8>>>) {
        match *self {}
    }

    pub(crate) fn stats(&mut self, _: &StatusInfo) {
        match *self {}
    }

    pub(crate) fn reply(&self, _: Option<u16>, _: &ReplyBody) {
        match *self {}
    }

    pub(crate) fn status_reply(&self, _: &StatusInfo) {
        match *self {}
    }

    pub(crate) fn set_labels(&self, _: Vec<String>) {
        match *self {}
    }

    pub(crate) fn dropped(&self) -> u64 {
        match *self {}
    }

    pub(crate) fn trouble(&self) -> Option<String> {
        match *self {}
    }

    pub(crate) fn finish(self, _: Duration) {
        match self {}
    }
}
