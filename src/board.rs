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

/// One board.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
