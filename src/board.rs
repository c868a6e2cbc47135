//! Board profiles (`targets/*.toml`): the target triple and compiler flags a board's binary is
//! built with, and the runtime defaults `glance run --board NAME` takes from it (camera, serial
//! port, store capacity, threads). Flags on the command line override the profile.
//!
//! The profiles in `targets/` are compiled into the binary, so `--board rpi4` works on a board
//! with nothing but the binary; `--board path/to/custom.toml` reads a file instead.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The profiles shipped in `targets/`, by name.
pub(crate) const BUILT_IN: &[(&str, &str)] = &[
    ("rpi3", include_str!("../targets/rpi3.toml")),
    ("rpi4", include_str!("../targets/rpi4.toml")),
    ("rpi5", include_str!("../targets/rpi5.toml")),
    ("rpi-armv7", include_str!("../targets/rpi-armv7.toml")),
    ("jetson-orin", include_str!("../targets/jetson-orin.toml")),
];

/// Camera defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraProfile {
    /// Source (`/dev/video0`).
    pub source: String,
    /// `WIDTHxHEIGHT`.
    pub size: String,
    /// Frames per second.
    pub fps: u32,
}

/// Serial defaults (used by `--output serial`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialProfile {
    /// Device path.
    pub port: String,
    /// Speed.
    pub baud: u32,
}

/// Store defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreProfile {
    /// Most enrolled examples.
    pub capacity: u32,
}

/// MQTT defaults (`[mqtt]`, optional): what `--mqtt` and its companions would say. Built-in
/// profiles have none (they do not know the user's broker); a profile file of the user's own
/// (`--board /etc/glance/shelf.toml`) carries it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttProfile {
    /// `mqtt://[user:pass@]host[:port]/PREFIX` or `mqtts://…`.
    pub url: String,
    /// Home Assistant's discovery prefix, or `off`.
    #[serde(default)]
    pub discovery: Option<String>,
    /// Node id.
    #[serde(default)]
    pub node: Option<String>,
    /// Publish snapshots.
    #[serde(default)]
    pub snapshot: Option<bool>,
    /// CA certificates (PEM) for `mqtts://`.
    #[serde(default)]
    pub ca: Option<String>,
    /// Client certificate chain (PEM).
    #[serde(default)]
    pub cert: Option<String>,
    /// Client key (PEM).
    #[serde(default)]
    pub key: Option<String>,
}

/// Web console defaults (`[web]`, optional).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebProfile {
    /// `HOST:PORT`, `:PORT` or `PORT`.
    pub addr: String,
    /// `user:pass` for basic auth.
    #[serde(default)]
    pub auth: Option<String>,
    /// Live view frames per second.
    #[serde(default)]
    pub fps: Option<f32>,
}

/// One board.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    /// Short name (`rpi4`).
    pub name: String,
    /// One line for people.
    pub description: String,
    /// Rust target triple.
    pub target: String,
    /// Flags for rustc when building for this board (scripts/board/cross-build.sh).
    pub rustflags: Vec<String>,
    /// Threads for the backbone.
    pub threads: usize,
    /// The arithmetic of tract's float operators on this board (`f16` on cores with ARMv8.2
    /// FP16), the fastest path measured by scripts/bench/arm.sh. Absent: f32.
    #[serde(default)]
    pub precision: Option<crate::backbone::BackbonePrecision>,
    /// Camera.
    pub camera: CameraProfile,
    /// Serial port.
    pub serial: SerialProfile,
    /// On-device store.
    pub store: StoreProfile,
    /// Memory one decoded frame or file may take, in MiB: the decoder's buffer and its RGB
    /// copy together, checked from the header before any pixel is allocated (a few hundred
    /// bytes of JPEG can declare gigabytes of pixels). Absent: the default, 512.
    #[serde(default)]
    pub decode_budget_mb: Option<u32>,
    /// MQTT, when the board talks to a broker.
    #[serde(default)]
    pub mqtt: Option<MqttProfile>,
    /// The web console, when the board serves one.
    #[serde(default)]
    pub web: Option<WebProfile>,
}

impl BoardProfile {
    /// Backbone threads on this machine: the profile's threads are for its board, so on a
    /// machine with fewer cores they are cut to what it has, with a warning.
    pub fn threads_here(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        if self.threads > cores {
            log::warn!(
                "board profile asks for {} threads; this machine has {cores} cores",
                self.threads
            );
        }
        self.threads.clamp(1, cores)
    }

    /// Parses profile text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let p: BoardProfile = toml::from_str(text)
            .map_err(|e| Error::InvalidSetting(format!("board profile {origin}: {e}")))?;
        if p.threads == 0
            || p.camera.fps == 0
            || p.serial.baud == 0
            || p.decode_budget_mb == Some(0)
        {
            return Err(Error::InvalidSetting(format!(
                "board profile {origin}: threads, camera.fps, serial.baud and decode_budget_mb \
                 must be positive"
            )));
        }
        Ok(p)
    }

    /// A built-in profile by name, or a profile file by path.
    pub fn load(name_or_path: &str) -> Result<Self> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(text, name_or_path);
        }
        let path = Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "toml") || path.exists() {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
            return Self::parse(&text, &path.display().to_string());
        }
        Err(Error::InvalidSetting(format!(
            "no board `{name_or_path}`; built in: {} (or give a .toml file)",
            BUILT_IN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_parses_and_names_itself() {
        for (name, text) in BUILT_IN {
            let p = BoardProfile::parse(text, name).unwrap();
            assert_eq!(&p.name, name);
            assert!(p.target.ends_with("-linux-gnu") || p.target.ends_with("-gnueabihf"));
            assert!(
                !p.rustflags.iter().any(|f| f.contains("native")),
                "{name}: target-cpu=native has no place in a cross build"
            );
        }
    }

    #[test]
    fn a_profile_of_ones_own_can_name_its_broker_and_console() {
        let text = format!(
            "{}\n[mqtt]\nurl = \"mqtts://u:p@broker.lan/glance/shelf\"\nca = \"/etc/glance/ca.pem\"\n\
             snapshot = true\n\n[web]\naddr = \":8080\"\n",
            BUILT_IN[0].1
        );
        let p = BoardProfile::parse(&text, "shelf.toml").unwrap();
        let m = p.mqtt.unwrap();
        assert_eq!(m.url, "mqtts://u:p@broker.lan/glance/shelf");
        assert_eq!(
            (m.ca.as_deref(), m.snapshot, m.discovery),
            (Some("/etc/glance/ca.pem"), Some(true), None)
        );
        assert_eq!(p.web.unwrap().addr, ":8080");
        let e = BoardProfile::parse(
            &format!("{}\n[mqtt]\nurl = \"x\"\nretain = 1\n", BUILT_IN[0].1),
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("retain"), "{e}");
        for (name, text) in BUILT_IN {
            let p = BoardProfile::parse(text, name).unwrap();
            assert!(
                p.mqtt.is_none() && p.web.is_none(),
                "{name}: a built-in profile knows no broker"
            );
        }
    }

    #[test]
    fn profiles_name_the_precision_measured_fastest_for_their_core() {
        use crate::backbone::BackbonePrecision::{F16, F32};
        for (name, want) in [
            ("rpi3", F32),
            ("rpi4", F32),
            ("rpi5", F16),
            ("rpi-armv7", F32),
            ("jetson-orin", F16),
        ] {
            assert_eq!(
                BoardProfile::load(name).unwrap().precision,
                Some(want),
                "{name}"
            );
        }
        let text = BUILT_IN[0]
            .1
            .replace("precision = \"f32\"", "precision = \"f64\"");
        let e = BoardProfile::parse(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml") && e.contains("f64"), "{e}");
    }

    #[test]
    fn unknown_names_and_fields_are_refused() {
        let e = BoardProfile::load("toaster").unwrap_err().to_string();
        assert!(e.contains("rpi4"), "{e}");
        let text = BUILT_IN[0]
            .1
            .replace("threads = 4", "threads = 4\nturbo = true");
        let e = BoardProfile::parse(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml") && e.contains("turbo"), "{e}");
    }
}
