//! The bundle (`*.glance`): the one file a board needs besides the binary.
//!
//! Layout: the file envelope of [`crate::envelope`] (magic, version, length, CRC) around a
//! postcard body, so that a truncated or corrupted file is refused with a precise message before
//! any decoding.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backbone::{embedded_model, Backbone, BackboneIdentity, EngineOptions, ModelSource};
use crate::error::{Error, Result};
use crate::head::LinearHead;
use crate::knn::KnnStore;
use crate::manifest::{Manifest, ModelEntry, OutputSpec, Outputs};
use crate::preprocess::PreprocessSpec;

/// First bytes of every bundle file.
pub const BUNDLE_MAGIC: [u8; 8] = *b"GLANCEBN";

/// Current bundle format version.
pub const BUNDLE_VERSION: u32 = 1;

/// What the head was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureKind {
    /// The backbone's pooled deep features.
    Deep,
    /// Raw RGB pixels of the frame squashed to `size × size` (the seed's baseline).
    Raw {
        /// Side length in pixels.
        size: u32,
    },
}

/// Per-class rejection thresholds, calibrated on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A decision for class c needs a calibrated probability ≥ `min_score[c]`.
    pub min_score: Vec<f32>,
    /// …and, when there is a store, a nearest same-class example within `max_distance[c]`.
    pub max_distance: Vec<f32>,
}

impl Thresholds {
    /// Thresholds that accept everything, for `classes` classes.
    pub fn accept_all(classes: usize) -> Self {
        Self {
            min_score: vec![0.0; classes],
            max_distance: vec![f32::INFINITY; classes],
        }
    }

    /// Sets the least score (`distance` false) or the largest distance (`distance` true) of
    /// class `class`, or of every class (`None`). An index out of range changes nothing.
    pub fn set(&mut self, distance: bool, class: Option<usize>, value: f32) {
        let column = if distance {
            &mut self.max_distance
        } else {
            &mut self.min_score
        };
        match class {
            Some(i) => {
                if let Some(v) = column.get_mut(i) {
                    *v = value;
                }
            }
            None => column.iter_mut().for_each(|v| *v = value),
        }
    }

    /// True when a decision for `class` with probability `score` and nearest same-class
    /// example at `distance` is outside the thresholds.
    pub fn rejects(&self, class: usize, score: f32, distance: Option<f32>) -> bool {
        let min = self.min_score.get(class).copied().unwrap_or(0.0);
        let max = self
            .max_distance
            .get(class)
            .copied()
            .unwrap_or(f32::INFINITY);
        score < min || distance.is_some_and(|d| d > max)
    }
}

/// Where the bundle came from and how well it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The DATA argument of `glance-host fit`.
    pub dataset: String,
    /// sha256 over the training examples' content keys, in order.
    pub dataset_hash: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// glance version that trained it.
    pub glance_version: String,
    /// Examples used to fit the head.
    pub train_examples: u64,
    /// Examples held out for validation.
    pub validation_examples: u64,
    /// Named figures (validation accuracy, L2 penalty, iterations, …).
    pub metrics: Vec<(String, f64)>,
}

/// Everything a board needs to classify into the trained classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// Which backbone the features come from.
    pub backbone: BackboneIdentity,
    /// The backbone's ONNX bytes, unless the bundle references an external file.
    pub onnx: Option<Vec<u8>>,
    /// How to prepare frames for the backbone.
    pub preprocess: PreprocessSpec,
    /// Deep features or raw pixels.
    pub features: FeatureKind,
    /// Class names, in head order.
    pub labels: Vec<String>,
    /// The linear head.
    pub head: LinearHead,
    /// Unknown-rejection thresholds.
    pub thresholds: Thresholds,
    /// Stored examples for kNN.
    pub store: Option<KnnStore>,
    /// Provenance and metrics.
    pub training: TrainingInfo,
}

impl Bundle {
    /// Checks that every part agrees with the others.
    pub fn validate(&self) -> Result<()> {
        self.head.validate()?;
        let c = self.labels.len();
        if self.head.classes != c {
            return Err(Error::InvalidSetting(format!(
                "head has {} classes, bundle has {c} labels",
                self.head.classes
            )));
        }
        if self.thresholds.min_score.len() != c || self.thresholds.max_distance.len() != c {
            return Err(Error::InvalidSetting(
                "thresholds do not cover every class".into(),
            ));
        }
        if let Some(store) = &self.store {
            store.validate()?;
            if store.labels.iter().any(|&l| usize::from(l) >= c) {
                return Err(Error::InvalidSetting("store label out of range".into()));
            }
        }
        Ok(())
    }

    /// True when a decision for `class` with calibrated probability `score` and nearest
    /// same-class stored example at `distance` falls outside the calibrated thresholds.
    pub fn is_unknown(&self, class: usize, score: f32, distance: Option<f32>) -> bool {
        self.thresholds.rejects(class, score, distance)
    }

    /// Serialises inside the file envelope ([`crate::envelope`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let body = postcard::to_allocvec(self)
            .map_err(|e| Error::InvalidSetting(format!("cannot serialise bundle: {e}")))?;
        Ok(crate::envelope::seal(&BUNDLE_MAGIC, BUNDLE_VERSION, &body))
    }

    /// Parses bytes read from `path` (used in messages).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Bundle {
            path: path.to_path_buf(),
            reason,
        };
        let body =
            crate::envelope::open(bytes, &BUNDLE_MAGIC, BUNDLE_VERSION, "bundle").map_err(bad)?;
        let bundle: Bundle =
            postcard::from_bytes(body).map_err(|e| bad(format!("undecodable body: {e}")))?;
        bundle.validate().map_err(|e| bad(e.to_string()))?;
        Ok(bundle)
    }

    /// Reads and checks a bundle file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Writes the bundle atomically (the previous file survives a crash mid-save).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, &self.to_bytes()?)
    }

    /// Loads the backbone this bundle was trained with: the bytes inside the bundle, else the
    /// binary's embedded model, else `model_file`. A backbone whose sha256 differs from the
    /// bundle's is refused. It runs on `engine`.
    pub fn load_backbone(
        &self,
        path: &Path,
        model_file: Option<&Path>,
        engine: &EngineOptions,
    ) -> Result<Backbone> {
        let want = &self.backbone;
        let entry = self.model_entry();
        // The bundle's head replaces the ImageNet classifier.
        let engine = &engine.for_features();
        if let Some(bytes) = &self.onnx {
            return Backbone::from_bytes(bytes, entry, path.to_path_buf(), engine);
        }
        if let Some(file) = model_file {
            let b = Backbone::load(&ModelSource::File(file.to_path_buf()), engine)?;
            return self.check_backbone(&b, path).map(|_| b);
        }
        if let Some(bytes) =
            embedded_model().filter(|b| crate::backbone::sha256_hex(b) == want.sha256)
        {
            return Backbone::from_bytes(bytes, entry, PathBuf::from("<embedded>"), engine);
        }
        Err(Error::Bundle {
            path: path.to_path_buf(),
            reason: format!(
                "made with backbone `{}` (sha256 {}), which this binary does not embed; \
                 pass its ONNX file with --model",
                want.name, want.sha256
            ),
        })
    }

    /// Refuses a backbone other than the one the bundle was trained with.
    pub fn check_backbone(&self, backbone: &Backbone, path: &Path) -> Result<()> {
        let have = backbone.identity();
        if have.sha256 != self.backbone.sha256 {
            return Err(Error::Bundle {
                path: path.to_path_buf(),
                reason: format!(
                    "made with backbone `{}` (sha256 {}), but the backbone in use is `{}` \
                     (sha256 {}); features from another network are meaningless to this head",
                    self.backbone.name, self.backbone.sha256, have.name, have.sha256
                ),
            });
        }
        Ok(())
    }

    fn model_entry(&self) -> ModelEntry {
        if let Some(e) = Manifest::embedded()
            .ok()
            .and_then(|m| m.find_by_sha256(&self.backbone.sha256).cloned())
        {
            return e;
        }
        ModelEntry {
            name: self.backbone.name.clone(),
            file: String::new(),
            sha256: self.backbone.sha256.clone(),
            bytes: self.onnx.as_ref().map_or(0, |b| b.len() as u64),
            precision: "from bundle".into(),
            runtimes: vec!["tract".into()],
            input: "input".into(),
            preprocess: self.preprocess.clone(),
            outputs: Outputs {
                features: OutputSpec {
                    name: "features".into(),
                    dim: self.backbone.feature_dim,
                },
                logits: None,
            },
        }
    }
}
