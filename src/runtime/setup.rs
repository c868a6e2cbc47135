//! What `run` sets up before its loop: the backbone it needs, the store, the output, the
//! source; and the labels a decision can take.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use super::{RunConfig, SourceSpec};
use crate::backbone::BackboneIdentity;
use crate::control::ControlEvent;
use crate::decode_ahead::FrameSource;
use crate::error::{Error, Result};
use crate::health::SourceHealth;
use crate::pipeline::Classifier;
use crate::serial::SerialLink;
use crate::sink::{Sink, SinkSpec};
use crate::source::live::start_camera;
use crate::source::stream::{start_exec, start_file, start_stdin, ExecGuard};
use crate::store::{Generation, Store};
/// The labels a decision can take besides `unknown`: the head's classes, then the enrolled
/// labels that are not among them.
pub(crate) fn decision_labels(classifier: &Classifier, store: &Store) -> Vec<String> {
    let mut labels = classifier.labels().to_vec();
    for (label, _) in store.counts() {
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    labels
}

/// The backbone's identity; `glance run` needs one (its store holds deep features).
pub(super) fn deep_backbone(classifier: &Classifier) -> Result<BackboneIdentity> {
    classifier.backbone().map(|b| b.identity()).ok_or_else(|| {
        Error::InvalidSetting(
            "`glance run` needs deep features; a raw-pixel bundle has no backbone".into(),
        )
    })
}

/// Threshold flags are applied once the store is loaded (a distance may name an enrolled
/// label); a least score must name a class of the head, checked before anything starts.
pub(super) fn check_min_score_labels(config: &RunConfig, classifier: &Classifier) -> Result<()> {
    for (label, _) in &config.min_score {
        if let Some(l) = label {
            if !classifier.labels().contains(l) {
                return Err(Error::InvalidSetting(format!(
                    "--min-score names `{l}`, which is not a class of the head"
                )));
            }
        }
    }
    Ok(())
}

/// The store from `--store` (its previous generation, or a new one, with a warning), or a new
/// store in memory; never smaller than `--store-capacity`.
pub(super) fn open_store(config: &RunConfig, backbone: &BackboneIdentity) -> Result<Store> {
    let fresh = || {
        Store::new(
            &backbone.sha256,
            backbone.feature_dim,
            config.store_capacity,
            config.store_precision,
        )
    };
    let Some(path) = &config.store else {
        return Ok(fresh());
    };
    let loaded = Store::load(path, &backbone.sha256, backbone.feature_dim, fresh)?;
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    match loaded.generation {
        Generation::Previous => log::warn!(
            "{}: using the previous generation ({} examples)",
            path.display(),
            loaded.store.len()
        ),
        Generation::New => log::info!("{}: new store", path.display()),
        Generation::Current => {}
    }
    let mut s = loaded.store;
    s.capacity = s.capacity.max(config.store_capacity);
    Ok(s)
}

/// Opens the output; a serial link sends the commands it reads to `commands`.
pub(super) fn open_sink(config: &RunConfig, commands: &Sender<ControlEvent>) -> Result<Sink> {
    Ok(match &config.output {
        SinkSpec::Stdout => Sink::Stdout(std::io::BufWriter::new(std::io::stdout())),
        SinkSpec::Serial { path, baud } => Sink::Serial(
            SerialLink::start(path.clone(), *baud, config.format, commands.clone()).map_err(
                |e| Error::Io {
                    path: path.clone(),
                    source: e,
                },
            )?,
        ),
    })
}

/// Starts the source: a capture thread for a stream or camera (which reports into `health`
/// and ends when `stop` is set), the list of files otherwise; and for an `exec:` source the
/// guard that ends its child.
pub(super) fn start_source(
    config: &RunConfig,
    health: &Arc<SourceHealth>,
    stop: &Arc<AtomicBool>,
) -> Result<(FrameSource, Option<ExecGuard>)> {
    let policy = config.drop.unwrap_or_else(|| config.source.default_drop());
    let (h, s) = (Arc::clone(health), Arc::clone(stop));
    Ok(match &config.source {
        SourceSpec::Stdin => (FrameSource::live(start_stdin(policy, h, s)?), None),
        SourceSpec::Recording(path) => (
            FrameSource::live(start_file(path.clone(), config.looping, policy, h, s)?),
            None,
        ),
        SourceSpec::Exec(command) => {
            let (mailbox, guard) = start_exec(command.clone(), policy, h, s)?;
            (FrameSource::live(mailbox), Some(guard))
        }
        SourceSpec::Camera(path) => (
            FrameSource::live(start_camera(
                path.clone(),
                config.camera.clone(),
                config.camera_wait,
                policy,
                h,
                s,
            )?),
            None,
        ),
        SourceSpec::Files(spec) => (FrameSource::files(spec, config.looping), None),
    })
}
