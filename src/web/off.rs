//! A glance built without the cargo feature `web`: `--web` is refused at start with a message
//! that says so. The console type has no values, so no code path of the run loop can reach it
//! in such a build.

use std::sync::mpsc::Sender;
use std::sync::Arc;

use super::WebConfig;
use crate::control::ControlEvent;
use crate::decision::Decided;
use crate::encode::{ReplyBody, StatusInfo};
use crate::view::Views;

/// No console can exist in this build.
pub(crate) enum Web {}

impl Web {
    /// Always an error: this build has no web server.
    pub(crate) fn start(
        config: &WebConfig,
        _views: Views,
        _commands: Sender<ControlEvent>,
    ) -> std::io::Result<Self> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "this glance was built without the web console (cargo feature `web`), so it \
                 cannot listen on {}",
                config.addr
            ),
        ))
    }

    pub(crate) fn frame(&mut self, _: &Decided, _: Option<Arc<Vec<u8>>>) {
        match *self {}
    }

    pub(crate) fn tick(&self, _: StatusInfo, _: Option<u64>) {
        match *self {}
    }

    pub(crate) fn store(&self, _: Vec<(String, usize)>) {
        match *self {}
    }

    pub(crate) fn reply(&self, _: u64, _: &ReplyBody) {
        match *self {}
    }

    pub(crate) fn status_reply(&self, _: u64, _: &StatusInfo) {
        match *self {}
    }

    pub(crate) fn finish(self) {
        match self {}
    }
}
