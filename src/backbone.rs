//! The backbone: the one module that knows about tract.
//!
//! Loads an ONNX graph (the quantized default compiled into the binary, or a file), checks its
//! sha256 against the manifest, optimises it once for a batch of one, and runs frames through it,
//! returning the pooled features and (when the graph has them) the ImageNet logits.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::manifest::{Manifest, ModelEntry};
use crate::preprocess::PreprocessSpec;

/// The default backbone, compiled into the binary so that `glance classify` works with no files.
pub const EMBEDDED_MODEL: &[u8] = include_bytes!("../models/efficientnet_lite0_int8w.onnx");

type Plan = Arc<TypedSimplePlan>;

/// Where the backbone's bytes come from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// The default model compiled into this binary.
    Embedded,
    /// An ONNX file; it must be one of the manifest's files (checked by sha256).
    File(PathBuf),
}

/// Who the backbone is: what a bundle or a store records to refuse a mismatched model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackboneIdentity {
    /// Manifest name, e.g. `efficientnet-lite0-int8w`.
    pub name: String,
    /// sha256 of the ONNX bytes, lower-case hex.
    pub sha256: String,
    /// Length of the feature vector.
    pub feature_dim: usize,
}

/// What one frame produces.
#[derive(Debug, Clone)]
pub struct BackboneOutput {
    /// The pooled deep features (length = `feature_dim`).
    pub features: Vec<f32>,
    /// The ImageNet logits, if the graph has them.
    pub logits: Option<Vec<f32>>,
}

/// A loaded, optimised backbone ready to run frames.
pub struct Backbone {
    plan: Plan,
    entry: ModelEntry,
    origin: PathBuf,
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("name", &self.entry.name)
            .field("sha256", &self.entry.sha256)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Runs the backbone's matrix products on `threads` threads from now on (1: on the calling
/// thread, tract's default). Process-wide, like tract's executor it sets.
pub fn set_threads(threads: usize) -> Result<()> {
    use tract_linalg::multithread::{set_default_executor, Executor};
    if threads <= 1 {
        set_default_executor(Executor::SingleThread);
        return Ok(());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("backbone-{i}"))
        .num_threads(threads)
        .build()
        .map_err(|e| Error::InvalidSetting(format!("cannot start {threads} threads: {e}")))?;
    set_default_executor(Executor::MultiThread(std::sync::Arc::new(pool)));
    Ok(())
}

/// Lower-case hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl Backbone {
    /// Loads a backbone described by the embedded manifest.
    ///
    /// For a file, the manifest entry is the one whose sha256 matches the bytes; a file whose name
    /// is in the manifest but whose bytes differ is refused with both hashes in the message.
    pub fn load(source: &ModelSource) -> Result<Self> {
        let manifest = Manifest::embedded()?;
        match source {
            ModelSource::Embedded => {
                let entry = manifest.default_entry()?.clone();
                Self::from_bytes(EMBEDDED_MODEL, entry, PathBuf::from("<embedded>"))
            }
            ModelSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                let actual = sha256_hex(&bytes);
                let entry = match manifest.find_by_sha256(&actual) {
                    Some(entry) => entry.clone(),
                    None => {
                        let file_name = path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        return Err(match manifest.find_by_file(&file_name) {
                            Some(entry) => Error::ModelHash {
                                path: path.clone(),
                                name: entry.name.clone(),
                                expected: entry.sha256.clone(),
                                actual,
                            },
                            None => Error::Manifest(format!(
                                "{}: sha256 {actual} is not a backbone this build knows; \
                                 export it with scripts/export-backbone.sh so that it is in \
                                 models/manifest.json",
                                path.display()
                            )),
                        });
                    }
                };
                Self::from_bytes(&bytes, entry, path.clone())
            }
        }
    }

    /// Loads ONNX bytes described by `entry`, checking the hash first.
    pub fn from_bytes(bytes: &[u8], entry: ModelEntry, origin: PathBuf) -> Result<Self> {
        let actual = sha256_hex(bytes);
        if actual != entry.sha256 {
            return Err(Error::ModelHash {
                path: origin,
                name: entry.name,
                expected: entry.sha256,
                actual,
            });
        }
        let spec = &entry.preprocess;
        let load_err = |e: TractError| Error::ModelLoad {
            path: origin.clone(),
            reason: format!("{e:#}"),
        };
        let shape = [1usize, 3, spec.height as usize, spec.width as usize];
        let mut reader = bytes;
        let plan = tract_onnx::onnx()
            .model_for_read(&mut reader)
            .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(load_err)?;
        let backbone = Self {
            plan,
            entry,
            origin,
        };
        backbone.check_outputs()?;
        Ok(backbone)
    }

    fn check_outputs(&self) -> Result<()> {
        let model = self.plan.model();
        let want = 1 + usize::from(self.entry.outputs.logits.is_some());
        if model.outputs.len() < want {
            return Err(Error::ModelLoad {
                path: self.origin.clone(),
                reason: format!(
                    "graph has {} outputs, the manifest describes {want}",
                    model.outputs.len()
                ),
            });
        }
        Ok(())
    }

    /// The manifest entry this backbone was loaded from.
    pub fn entry(&self) -> &ModelEntry {
        &self.entry
    }

    /// How frames must be prepared for this backbone.
    pub fn preprocess_spec(&self) -> &PreprocessSpec {
        &self.entry.preprocess
    }

    /// Name, hash and feature size.
    pub fn identity(&self) -> BackboneIdentity {
        BackboneIdentity {
            name: self.entry.name.clone(),
            sha256: self.entry.sha256.clone(),
            feature_dim: self.entry.outputs.features.dim,
        }
    }

    /// Where the bytes came from (`<embedded>` or the file path).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Runs one preprocessed NCHW tensor (length `3 × height × width`).
    pub fn run(&self, tensor: Vec<f32>) -> Result<BackboneOutput> {
        let spec = &self.entry.preprocess;
        if tensor.len() != spec.tensor_len() {
            return Err(Error::InvalidSetting(format!(
                "tensor has {} values, the backbone needs {}",
                tensor.len(),
                spec.tensor_len()
            )));
        }
        let shape = [1usize, 3, spec.height as usize, spec.width as usize];
        let input =
            Tensor::from_shape(&shape, &tensor).map_err(|e| Error::Inference(format!("{e:#}")))?;
        let outputs = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| Error::Inference(format!("{e:#}")))?;
        let flat = |i: usize, dim: usize, what: &str| -> Result<Vec<f32>> {
            let value = outputs
                .get(i)
                .ok_or_else(|| Error::Inference(format!("missing output {what}")))?;
            let view = value
                .to_plain_array_view::<f32>()
                .map_err(|e| Error::Inference(format!("output {what}: {e:#}")))?;
            if view.len() != dim {
                return Err(Error::Inference(format!(
                    "output {what} has {} values, expected {dim}",
                    view.len()
                )));
            }
            Ok(view.iter().copied().collect())
        };
        let features = flat(0, self.entry.outputs.features.dim, "features")?;
        let logits = match &self.entry.outputs.logits {
            Some(spec) => Some(flat(1, spec.dim, "logits")?),
            None => None,
        };
        Ok(BackboneOutput { features, logits })
    }
}
