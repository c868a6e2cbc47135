//! One frame through the whole path: decode → preprocess → backbone → scores, with per-stage
//! timing. `glance classify` and (later) `glance run` both go through here.

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use serde::Serialize;

use crate::backbone::{Backbone, ModelSource};
use crate::error::{Error, Result};
use crate::head::{self, Ranked};
use crate::manifest;
use crate::preprocess::{self, DecodeLimits};

/// Milliseconds spent in each stage of one frame.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    /// Reading and decoding the encoded image.
    pub decode: f64,
    /// Resizing and normalising into the input tensor.
    pub preprocess: f64,
    /// Running the backbone.
    pub backbone: f64,
    /// Scoring (softmax, top-k).
    pub head: f64,
    /// Sum of the stages.
    pub total: f64,
}

/// The result for one image, in the shape of the JSON contract.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The image file (or frame description).
    pub source: String,
    /// The winning label, or `"unknown"` when rejected.
    pub label: String,
    /// Its probability.
    pub score: f32,
    /// The best `k` classes.
    pub top_k: Vec<Ranked>,
    /// Per-stage time in milliseconds.
    pub timing_ms: Timing,
    /// The backbone's pooled features, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<f32>>,
}

/// Options for a classifier.
#[derive(Debug, Clone)]
pub struct ClassifierConfig {
    /// Backbone to load.
    pub model: ModelSource,
    /// How many classes to report.
    pub top_k: usize,
    /// Decoder limits.
    pub limits: DecodeLimits,
    /// Include the feature vector in each prediction.
    pub with_features: bool,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            model: ModelSource::Embedded,
            top_k: 5,
            limits: DecodeLimits::default(),
            with_features: false,
        }
    }
}

/// The ImageNet classifier used when no bundle is given: backbone logits → softmax → top-k.
#[derive(Debug)]
pub struct Classifier {
    backbone: Backbone,
    labels: Vec<String>,
    config: ClassifierConfig,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

impl Classifier {
    /// Loads the backbone and the ImageNet labels.
    pub fn new(config: ClassifierConfig) -> Result<Self> {
        let backbone = Backbone::load(&config.model)?;
        let labels = manifest::imagenet_labels();
        if let Some(logits) = &backbone.entry().outputs.logits {
            if logits.dim != labels.len() {
                return Err(Error::Manifest(format!(
                    "backbone has {} logits but {} ImageNet labels ship with it",
                    logits.dim,
                    labels.len()
                )));
            }
        } else {
            return Err(Error::Manifest(format!(
                "backbone `{}` has no logits output; classifying needs a bundle",
                backbone.entry().name
            )));
        }
        Ok(Self {
            backbone,
            labels,
            config,
        })
    }

    /// The loaded backbone.
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// Classifies an image file.
    pub fn classify_file(&self, path: &Path) -> Result<Prediction> {
        let start = Instant::now();
        let image = preprocess::decode_file(path, self.config.limits)?;
        let decode = ms(start);
        let mut p = self.classify_image(&image, path.display().to_string())?;
        p.timing_ms.decode = decode;
        p.timing_ms.total += decode;
        Ok(p)
    }

    /// Classifies encoded image bytes (a frame from a stream); `name` appears in messages.
    pub fn classify_bytes(&self, bytes: &[u8], name: &str) -> Result<Prediction> {
        let start = Instant::now();
        let image = preprocess::decode_bytes(bytes, &PathBuf::from(name), self.config.limits)?;
        let decode = ms(start);
        let mut p = self.classify_image(&image, name.to_owned())?;
        p.timing_ms.decode = decode;
        p.timing_ms.total += decode;
        Ok(p)
    }

    /// Classifies an already-decoded RGB frame.
    pub fn classify_image(&self, image: &RgbImage, source: String) -> Result<Prediction> {
        let t = Instant::now();
        let tensor = preprocess::tensor_from_image(image, self.backbone.preprocess_spec())?;
        let preprocess = ms(t);

        let t = Instant::now();
        let out = self.backbone.run(tensor)?;
        let backbone = ms(t);

        let t = Instant::now();
        let logits = out
            .logits
            .ok_or_else(|| Error::Inference("backbone returned no logits".into()))?;
        let probs = head::softmax(&logits, 1.0);
        let top_k = head::top_k(&probs, &self.labels, self.config.top_k);
        let head_ms = ms(t);

        let (label, score) = top_k
            .first()
            .map(|r| (r.label.clone(), r.score))
            .ok_or_else(|| Error::Inference("empty label list".into()))?;
        Ok(Prediction {
            source,
            label,
            score,
            top_k,
            timing_ms: Timing {
                decode: 0.0,
                preprocess,
                backbone,
                head: head_ms,
                total: preprocess + backbone + head_ms,
            },
            features: self.config.with_features.then_some(out.features),
        })
    }
}
