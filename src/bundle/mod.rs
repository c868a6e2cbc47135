//! The bundle (`*.glance`): the one file a board needs besides the binary.
//!
//! Layout: the file envelope of [`crate::envelope`] (magic, version, length, CRC) around a
//! postcard body, so that a truncated or corrupted file is refused with a precise message before
//! any decoding.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backbone::{embedded_model, Backbone, BackboneIdentity, EngineOptions};
use crate::error::{Error, Result};
use crate::head::LinearHead;
use crate::knn::KnnStore;
use crate::manifest::{Manifest, ModelEntry, OutputSpec, Outputs};
use crate::preprocess::PreprocessSpec;

mod thresholds;

pub(crate) use thresholds::RejectReason;
pub use thresholds::Thresholds;

/// Largest backbone input side a bundle may ask for: the shipped backbones take 224-260 px; a
/// larger input costs memory in proportion to its area inside the engine.
pub(crate) const MAX_INPUT_SIDE: u32 = 1024;

/// Largest side of raw-pixel features (the baseline uses 32).
pub(crate) const MAX_RAW_SIZE: u32 = 256;

/// First bytes of every bundle file.
pub const BUNDLE_MAGIC: [u8; 8] = *b"GLANCEBN";

/// Current bundle format version. Version 2 added [`Bundle::split`] and
/// [`Bundle::calibration`] at the end of the body, version 3 [`Bundle::drift`]; version 1 and 2
/// files are still read.
pub const BUNDLE_VERSION: u32 = 3;

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

/// The name of the decision that no class won; never a class name.
pub(crate) const UNKNOWN: &str = "unknown";

/// Longest class name accepted, in bytes.
pub(crate) const MAX_CLASS_NAME: usize = 256;

/// The one label rule, applied to a bundle's classes when it is loaded, to a dataset's classes
/// at fit, and (with the wire's shorter limit) to labels enrolled on the board and read back
/// from a store: not empty, at most [`MAX_CLASS_NAME`] bytes, not `unknown` in any case, and no
/// control characters (a newline or an escape code in a label could forge a line of text
/// output or drive the terminal of whoever watches it).
pub(crate) fn check_class_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidSetting("a class name is empty".into()));
    }
    if name.len() > MAX_CLASS_NAME {
        return Err(Error::InvalidSetting(format!(
            "a class name of {} bytes is longer than {MAX_CLASS_NAME}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidSetting(format!(
            "class name {} holds control characters (newlines, escape codes)",
            printable(name)
        )));
    }
    if name.eq_ignore_ascii_case(UNKNOWN) {
        return Err(Error::InvalidSetting(format!(
            "`{name}` cannot be a class name: `{UNKNOWN}` is what glance answers when no class \
             is accepted; rename the class"
        )));
    }
    Ok(())
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`), for text lines and
/// terminals; printable text is returned as it is.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
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

/// How the data was split when the bundle was fitted, so that `eval` can use the same test
/// split and notice an evaluated image that was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRecord {
    /// `--split`: the fraction held out as test when the data had no test split.
    pub test_fraction: f64,
    /// `--seed` of that split (and of the validation folds).
    pub seed: u64,
    /// `--per-class` subset size (0 = all).
    pub per_class: u64,
    /// True when the test split was generated from `test_fraction` and `seed` (false when the
    /// data had its own test split).
    pub generated: bool,
    /// First 8 bytes (big-endian) of the sha256 content key of every training image (fitted or
    /// used for calibration), sorted: 8 bytes an image keeps the bundle small, and a chance
    /// collision among a few million images is below 1e-6.
    pub train_hashes: Vec<u64>,
}

impl SplitRecord {
    /// The short form of a content key stored in [`SplitRecord::train_hashes`].
    pub fn short_hash(key: &[u8; 32]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&key[..8]);
        u64::from_be_bytes(b)
    }

    /// True when the image with content key `key` was among the training images.
    pub fn trained_on(&self, key: &[u8; 32]) -> bool {
        self.train_hashes
            .binary_search(&Self::short_hash(key))
            .is_ok()
    }
}

/// Where the unknown thresholds and the temperature came from, with the distributions they were
/// taken from (so that `glance-host show` can print them and a user can pick other thresholds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// `cross-validation` (k-fold out-of-fold predictions) or `held-out` (a validation split).
    pub method: String,
    /// Folds of the cross-validation (0 for `held-out`).
    pub folds: u32,
    /// Percentile of the in-class distributions at which the thresholds were set.
    pub reject_percentile: f32,
    /// Training images per class.
    pub examples: Vec<u32>,
    /// Per class: the held-out probabilities of its correctly classified images, at the
    /// quantiles 0, 5, …, 100 % (empty when the class had none).
    pub score_quantiles: Vec<Vec<f32>>,
    /// Per class: the leave-one-out distances from its images to the nearest other stored
    /// example of the class, at the quantiles 0, 5, …, 100 % (empty when there were none).
    pub distance_quantiles: Vec<Vec<f32>>,
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
    /// How the data was split (absent in version 1 bundles).
    pub split: Option<SplitRecord>,
    /// How the thresholds were calibrated (absent in version 1 bundles).
    pub calibration: Option<Calibration>,
    /// The held-out distributions the board compares its frames with (absent before
    /// version 3).
    pub drift: Option<crate::drift::DriftReference>,
}

/// The body of a version 2 bundle: [`Bundle`] without its last field.
#[derive(Deserialize)]
struct BundleV2 {
    backbone: BackboneIdentity,
    onnx: Option<Vec<u8>>,
    preprocess: PreprocessSpec,
    features: FeatureKind,
    labels: Vec<String>,
    head: LinearHead,
    thresholds: Thresholds,
    store: Option<KnnStore>,
    training: TrainingInfo,
    split: Option<SplitRecord>,
    calibration: Option<Calibration>,
}

impl From<BundleV2> for Bundle {
    fn from(v: BundleV2) -> Self {
        Bundle {
            backbone: v.backbone,
            onnx: v.onnx,
            preprocess: v.preprocess,
            features: v.features,
            labels: v.labels,
            head: v.head,
            thresholds: v.thresholds,
            store: v.store,
            training: v.training,
            split: v.split,
            calibration: v.calibration,
            drift: None,
        }
    }
}

/// The body of a version 1 bundle: [`Bundle`] without its last three fields.
#[derive(Deserialize)]
struct BundleV1 {
    backbone: BackboneIdentity,
    onnx: Option<Vec<u8>>,
    preprocess: PreprocessSpec,
    features: FeatureKind,
    labels: Vec<String>,
    head: LinearHead,
    thresholds: Thresholds,
    store: Option<KnnStore>,
    training: TrainingInfo,
}

impl From<BundleV1> for Bundle {
    fn from(v: BundleV1) -> Self {
        Bundle {
            backbone: v.backbone,
            onnx: v.onnx,
            preprocess: v.preprocess,
            features: v.features,
            labels: v.labels,
            head: v.head,
            thresholds: v.thresholds,
            store: v.store,
            training: v.training,
            split: None,
            calibration: None,
            drift: None,
        }
    }
}

impl Bundle {
    /// Checks that every part agrees with the others, so that a crafted file with a valid CRC
    /// is refused here rather than panicking or allocating without bound later.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidSetting(why));
        self.head.validate()?;
        self.preprocess.validate()?;
        if let Some(d) = &self.drift {
            d.validate().map_err(Error::InvalidSetting)?;
        }
        if self.preprocess.width > MAX_INPUT_SIDE || self.preprocess.height > MAX_INPUT_SIDE {
            return bad(format!(
                "backbone input {}×{} is larger than {MAX_INPUT_SIDE}×{MAX_INPUT_SIDE}",
                self.preprocess.width, self.preprocess.height
            ));
        }
        if !self.preprocess.mean.iter().all(|m| m.is_finite()) {
            return bad("normalisation mean is not a finite number".into());
        }
        let want_dim = match self.features {
            FeatureKind::Deep => self.backbone.feature_dim,
            FeatureKind::Raw { size } => {
                if size == 0 || size > MAX_RAW_SIZE {
                    return bad(format!(
                        "raw-pixel features of {size}×{size}: the size must be 1 to {MAX_RAW_SIZE}"
                    ));
                }
                3 * (size as usize) * (size as usize)
            }
        };
        if self.head.dim != want_dim {
            return bad(format!(
                "the head takes {} inputs, the features have {want_dim}",
                self.head.dim
            ));
        }
        if let Some(store) = &self.store {
            if !store.is_empty() && store.dim != want_dim {
                return bad(format!(
                    "the kNN store holds {}-d vectors, the features have {want_dim}",
                    store.dim
                ));
            }
        }
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
        // A NaN threshold would turn rejection off; an infinite distance is "accept all".
        if !self
            .thresholds
            .min_score
            .iter()
            .all(|t| (0.0..=1.0).contains(t))
            || !self.thresholds.max_distance.iter().all(|t| *t >= 0.0)
        {
            return bad("unknown thresholds out of range (scores 0..1, distances ≥ 0)".into());
        }
        if let Some(store) = &self.store {
            store.validate()?;
            if store.labels.iter().any(|&l| usize::from(l) >= c) {
                return Err(Error::InvalidSetting("store label out of range".into()));
            }
        }
        for label in &self.labels {
            check_class_name(label)?;
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
        let (version, body) =
            crate::envelope::open_versions(bytes, &BUNDLE_MAGIC, 1..=BUNDLE_VERSION, "bundle")
                .map_err(bad)?;
        let undecodable = |e: postcard::Error| bad(format!("undecodable body: {e}"));
        let bundle: Bundle = if version == 1 {
            postcard::from_bytes::<BundleV1>(body)
                .map_err(undecodable)?
                .into()
        } else if version == 2 {
            postcard::from_bytes::<BundleV2>(body)
                .map_err(undecodable)?
                .into()
        } else {
            postcard::from_bytes(body).map_err(undecodable)?
        };
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

    /// Loads the backbone this bundle was trained with: the bytes inside the bundle, else
    /// `model_file`, else the binary's embedded model. A backbone whose sha256 differs from the
    /// bundle's is refused. It runs on `engine`, at the bundle's preprocessing (which is what
    /// its head was fitted on, even where it differs from the file's manifest entry).
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
            let bytes = std::fs::read(file).map_err(|source| Error::Io {
                path: file.to_path_buf(),
                source,
            })?;
            let have = crate::backbone::sha256_hex(&bytes);
            if have != want.sha256 {
                let name = Manifest::embedded()
                    .ok()
                    .and_then(|m| m.find_by_sha256(&have).map(|e| e.name.clone()))
                    .unwrap_or_else(|| file.display().to_string());
                return Err(self.mismatch(path, &name, &have));
            }
            return Backbone::from_bytes(&bytes, entry, file.to_path_buf(), engine);
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
            return Err(self.mismatch(path, &have.name, &have.sha256));
        }
        Ok(())
    }

    fn mismatch(&self, path: &Path, name: &str, sha256: &str) -> Error {
        Error::Bundle {
            path: path.to_path_buf(),
            reason: format!(
                "made with backbone `{}` (sha256 {}), but the backbone in use is `{name}` \
                 (sha256 {sha256}); features from another network are meaningless to this head",
                self.backbone.name, self.backbone.sha256
            ),
        }
    }

    /// The manifest's entry for the bundle's backbone, with the bundle's own preprocessing: a
    /// bundle may run a file at another input side than it was exported at (`fit --backbone
    /// lite0-160`), and its head was fitted on features made with the bundle's preprocessing.
    fn model_entry(&self) -> ModelEntry {
        if let Some(mut e) = Manifest::embedded()
            .ok()
            .and_then(|m| m.find_by_sha256(&self.backbone.sha256).cloned())
        {
            e.preprocess = self.preprocess.clone();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::FeatureNorm;
    use crate::preprocess::{ChannelOrder, ResizeMode};

    fn bundle() -> Bundle {
        Bundle {
            backbone: BackboneIdentity {
                name: "raw-pixels".into(),
                sha256: String::new(),
                feature_dim: 2,
            },
            onnx: None,
            preprocess: PreprocessSpec {
                width: 4,
                height: 4,
                resize: ResizeMode::Squash,
                mean: [127.0; 3],
                std: [128.0; 3],
                channel_order: ChannelOrder::Rgb,
            },
            features: FeatureKind::Deep,
            labels: vec!["a".into(), "b".into()],
            head: LinearHead {
                classes: 2,
                dim: 2,
                weights: vec![1.0, 0.0, 0.0, 1.0],
                bias: vec![0.0, 0.0],
                norm: FeatureNorm::L2,
                temperature: 1.0,
            },
            thresholds: Thresholds {
                min_score: vec![0.6, 0.7],
                max_distance: vec![0.3, 0.4],
            },
            store: None,
            training: TrainingInfo {
                dataset: "d".into(),
                dataset_hash: String::new(),
                created_unix: 0,
                glance_version: "0".into(),
                train_examples: 2,
                validation_examples: 0,
                metrics: vec![],
            },
            split: None,
            calibration: None,
            drift: None,
        }
    }

    #[test]
    fn version_1_and_2_bundles_still_load() {
        let b = bundle();
        let v3 = postcard::to_allocvec(&b).unwrap();
        // A version 2 body is the same fields without the last (a `None`, one byte), a
        // version 1 body without the last three.
        let v2 = crate::envelope::seal(&BUNDLE_MAGIC, 2, &v3[..v3.len() - 1]);
        assert_eq!(Bundle::from_bytes(&v2, Path::new("old.glance")).unwrap(), b);
        let v1 = crate::envelope::seal(&BUNDLE_MAGIC, 1, &v3[..v3.len() - 3]);
        assert_eq!(
            Bundle::from_bytes(&v1, Path::new("older.glance")).unwrap(),
            b
        );
        let v4 = crate::envelope::seal(&BUNDLE_MAGIC, 4, &v3);
        let err = Bundle::from_bytes(&v4, Path::new("new.glance")).unwrap_err();
        assert!(err.to_string().contains("reads versions 1 to 3"), "{err}");
        let mut with_drift = bundle();
        with_drift.drift = Some(crate::drift::DriftReference::new(&[0.9, 0.5], &[0.1, 0.3]));
        let back = Bundle::from_bytes(&with_drift.to_bytes().unwrap(), Path::new("d")).unwrap();
        assert_eq!(back.drift, with_drift.drift);
        let mut with_split = bundle();
        with_split.split = Some(SplitRecord {
            test_fraction: 0.2,
            seed: 42,
            per_class: 0,
            generated: true,
            train_hashes: vec![SplitRecord::short_hash(&[7u8; 32])],
        });
        let back = Bundle::from_bytes(&with_split.to_bytes().unwrap(), Path::new("b")).unwrap();
        let split = back.split.unwrap();
        assert!(split.trained_on(&[7u8; 32]) && !split.trained_on(&[8u8; 32]));
    }

    #[test]
    fn a_verdict_names_the_threshold_that_failed() {
        let t = bundle().thresholds;
        assert_eq!(t.verdict(0, 0.65, Some(0.1)), None);
        assert_eq!(
            t.verdict(1, 0.65, Some(0.1)),
            Some(RejectReason::LowScore {
                value: 0.65,
                threshold: 0.7
            })
        );
        assert_eq!(
            t.verdict(0, 0.9, Some(0.35)),
            Some(RejectReason::FarFromExamples {
                value: 0.35,
                threshold: 0.3
            })
        );
        assert!(t.verdict(0, f32::NAN, None).is_some());
        let r = RejectReason::LowScore {
            value: 0.432,
            threshold: 0.6,
        };
        assert_eq!(
            r.describe("mug"),
            "best mug 43.2% is below its score threshold 60.0%"
        );
    }

    #[test]
    fn flags_set_one_class_or_all_and_refuse_bad_values() {
        let mut t = bundle().thresholds;
        let labels = bundle().labels;
        t.apply_flag(&labels, "b=0.9", false).unwrap();
        assert_eq!(t.min_score, vec![0.6, 0.9]);
        t.apply_flag(&labels, "0.5", true).unwrap();
        assert_eq!(t.max_distance, vec![0.5, 0.5]);
        for bad in ["c=0.5", "1.5", "NaN", "x"] {
            assert!(t.apply_flag(&labels, bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_and_empty_class_names_are_refused() {
        for bad in ["unknown", "Unknown", ""] {
            let mut b = bundle();
            b.labels[1] = bad.into();
            assert!(b.validate().is_err(), "`{bad}` accepted");
        }
    }
}
