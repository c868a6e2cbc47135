//! The model manifest (`models/manifest.json`): which backbone files exist, their sha256, their
//! input spec and outputs. The manifest is compiled into the binary, so a model file given on the
//! command line is checked against the hash recorded when it was exported.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::preprocess::PreprocessSpec;

/// The manifest shipped in `models/`, embedded at build time.
pub(crate) const EMBEDDED_MANIFEST: &str = include_str!("../models/manifest.json");

/// The ImageNet-1k class names, one per line, in logit order.
pub(crate) const IMAGENET_LABELS: &str = include_str!("../models/imagenet_labels.txt");

/// One named network output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Output name in the ONNX graph.
    pub name: String,
    /// Number of values per image.
    pub dim: usize,
}

/// The backbone's outputs: pooled features, and optionally the ImageNet logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outputs {
    /// The pooled penultimate activations (the "deep features").
    pub features: OutputSpec,
    /// The 1000 ImageNet logits, if the graph keeps the original classifier.
    pub logits: Option<OutputSpec>,
}

/// One exported backbone file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Stable identifier, e.g. `efficientnet-lite0-int8w`.
    pub name: String,
    /// File name inside `models/`.
    pub file: String,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    /// File size in bytes.
    pub bytes: u64,
    /// Human description of the numeric format.
    pub precision: String,
    /// Which runtime the file is meant for (`tract`, `onnxruntime`).
    pub runtimes: Vec<String>,
    /// Name of the graph input.
    pub input: String,
    /// How to build the input tensor.
    pub preprocess: PreprocessSpec,
    /// Graph outputs, in graph order.
    pub outputs: Outputs,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Name of the model compiled into the binary and used when none is given.
    pub default: String,
    /// File of class names for the logits output.
    pub labels: String,
    /// Every exported file.
    pub models: Vec<ModelEntry>,
}

impl Manifest {
    /// Parses the manifest compiled into this binary.
    pub fn embedded() -> Result<Self> {
        Self::parse(EMBEDDED_MANIFEST)
    }

    /// Parses manifest JSON text.
    pub fn parse(text: &str) -> Result<Self> {
        let manifest: Manifest =
            serde_json::from_str(text).map_err(|e| Error::Manifest(e.to_string()))?;
        for m in &manifest.models {
            m.preprocess
                .validate()
                .map_err(|e| Error::Manifest(format!("model `{}`: {e}", m.name)))?;
        }
        manifest.find(&manifest.default)?;
        Ok(manifest)
    }

    /// The entry with this name.
    pub fn find(&self, name: &str) -> Result<&ModelEntry> {
        self.models.iter().find(|m| m.name == name).ok_or_else(|| {
            Error::Manifest(format!(
                "no backbone named `{name}` (known: {})",
                self.names().join(", ")
            ))
        })
    }

    /// The entry whose file name matches the last component of `file`.
    pub fn find_by_file(&self, file: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.file == file)
    }

    /// The entry whose recorded sha256 equals `sha256`.
    pub fn find_by_sha256(&self, sha256: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.sha256 == sha256)
    }

    /// The default (embedded) backbone's entry.
    pub fn default_entry(&self) -> Result<&ModelEntry> {
        self.find(&self.default)
    }

    fn names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }
}

/// The ImageNet class names shipped with the backbone, in logit order.
pub(crate) fn imagenet_labels() -> Vec<String> {
    IMAGENET_LABELS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}
