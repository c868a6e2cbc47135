//! One frame through the whole path: decode → preprocess → backbone → scores, with per-stage
//! timing. `glance classify` and (later) `glance run` both go through here.

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use serde::Serialize;

use crate::backbone::{Backbone, EngineOptions, ModelSource};
use crate::bundle::{Bundle, FeatureKind, RejectReason, Thresholds};
use crate::error::{Error, Result};
use crate::head::{self, Ranked};
use crate::knn;
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

impl Timing {
    /// The stages after decoding (decode is added by the caller that decodes).
    fn stages(preprocess: f64, backbone: f64, head: f64) -> Self {
        Self {
            decode: 0.0,
            preprocess,
            backbone,
            head,
            total: preprocess + backbone + head,
        }
    }
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
    /// The nearest stored example (bundles with a store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knn: Option<KnnResult>,
    /// The backbone's pooled features, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<f32>>,
    /// True when the thresholds rejected the best class (then `label` is `unknown`).
    #[serde(skip)]
    pub unknown: bool,
    /// Why the label is `unknown`: `best_label`, `reject_reason`, `reject_value` and
    /// `reject_threshold` in JSON (absent for an accepted label).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
}

/// Why a prediction is `unknown`, in the JSON lines of `classify` and `run`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The class that would have been decided.
    pub best_label: String,
    /// The threshold it failed.
    pub reason: RejectReason,
}

impl Rejection {
    /// One phrase for people (the same in `classify` and `run`).
    pub fn describe(&self) -> String {
        self.reason.describe(&self.best_label)
    }
}

impl Serialize for Rejection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (value, threshold) = self.reason.value_and_threshold();
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("best_label", &self.best_label)?;
        m.serialize_entry("reject_reason", self.reason.code())?;
        m.serialize_entry("reject_value", &finite(value))?;
        if let Some(t) = threshold {
            m.serialize_entry("reject_threshold", &finite(t))?;
        }
        m.end()
    }
}

/// JSON has no NaN or infinity: such a value is written as null.
fn finite(v: f32) -> Option<f32> {
    v.is_finite().then_some(v)
}

impl Prediction {
    /// The text-line form of the decision, shared by `classify` and `run`: `label score%`, or
    /// `unknown (why)` for a rejected one.
    pub fn decision_text(&self) -> String {
        match &self.rejection {
            Some(r) if self.label == crate::bundle::UNKNOWN => {
                format!(
                    "{} ({})",
                    crate::bundle::UNKNOWN,
                    crate::bundle::printable(&r.describe())
                )
            }
            _ => format!(
                "{} {:.1}%",
                crate::bundle::printable(&self.label),
                self.score * 100.0
            ),
        }
    }
}

/// The nearest stored example.
#[derive(Debug, Clone, Serialize)]
pub struct KnnResult {
    /// Its class.
    pub label: String,
    /// Cosine distance.
    pub distance: f32,
}

/// Options for a classifier.
#[derive(Debug, Clone)]
pub struct ClassifierConfig {
    /// Backbone to load.
    pub model: ModelSource,
    /// The engine that runs it.
    pub engine: EngineOptions,
    /// How many classes to report.
    pub top_k: usize,
    /// Decoder limits.
    pub limits: DecodeLimits,
    /// Include the feature vector in each prediction.
    pub with_features: bool,
    /// A trained bundle (its head, store and thresholds); ImageNet classes when `None`.
    pub bundle: Option<(Bundle, PathBuf)>,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            model: ModelSource::Embedded,
            engine: EngineOptions::default(),
            top_k: 5,
            limits: DecodeLimits::default(),
            with_features: false,
            bundle: None,
        }
    }
}

/// Frames → decisions: with a bundle, its features, head, store and thresholds; without one,
/// the backbone's ImageNet logits → softmax → top-k.
#[derive(Debug)]
pub struct Classifier {
    mode: Mode,
    labels: Vec<String>,
    thresholds: Thresholds,
    top_k: usize,
    limits: DecodeLimits,
    with_features: bool,
    preparer: Preparer,
}

/// What a classifier runs; each state holds exactly what it needs, so no path has to check at
/// run time for a backbone or a bundle that is not there.
#[derive(Debug)]
enum Mode {
    /// No bundle: the backbone's ImageNet logits → softmax → top-k.
    ImageNet(Backbone),
    /// A bundle on the backbone's deep features.
    Deep(Backbone, Box<Bundle>),
    /// A bundle on raw pixels: no backbone at all.
    Raw(Box<Bundle>),
}

/// One frame made ready for the model: decoded, cropped, resized and normalised (or reduced to
/// raw pixels for a raw-pixel bundle). This is the part of a frame that needs no model, so
/// `glance run` does it on a helper thread while the previous frame is inferred.
#[derive(Debug)]
pub struct Prepared {
    /// The frame's name for messages.
    pub source: String,
    input: Input,
    decode_ms: f64,
    preprocess_ms: f64,
}

#[derive(Debug)]
enum Input {
    /// The backbone's NCHW tensor.
    Tensor(Vec<f32>),
    /// A raw-pixel bundle's features.
    Raw(Vec<f32>),
}

/// Turns frames into [`Prepared`] inputs for one [`Classifier`]; cheap to clone and `Send`, so
/// it can live on another thread than the classifier.
#[derive(Debug, Clone)]
pub struct Preparer {
    limits: DecodeLimits,
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Backbone(preprocess::PreprocessSpec),
    Raw(u32),
}

impl Preparer {
    /// A preparer for a backbone taking `spec`, decoding within `limits` (what a classifier
    /// without a raw-pixel bundle uses; public for the fuzz targets, which have no model).
    pub fn for_backbone(limits: DecodeLimits, spec: preprocess::PreprocessSpec) -> Self {
        Self {
            limits,
            target: Target::Backbone(spec),
        }
    }

    /// Decodes (timed as the decode stage) and prepares one captured frame.
    pub fn prepare_frame(&self, frame: &crate::source::Frame) -> Result<Prepared> {
        self.prepare_frame_seen(frame, |_| {})
    }

    /// [`Self::prepare_frame`], giving `seen` the decoded image of a frame it prepared (for a
    /// picture of it, without decoding it again).
    pub(crate) fn prepare_frame_seen(
        &self,
        frame: &crate::source::Frame,
        seen: impl FnOnce(&RgbImage),
    ) -> Result<Prepared> {
        self.prepare_decoded(frame.name.clone(), || frame.rgb(self.limits), seen)
    }

    /// Times `decode` as the decode stage, then prepares its image; `seen` is given the image
    /// once it is prepared.
    pub fn prepare_decoded(
        &self,
        source: String,
        decode: impl FnOnce() -> Result<RgbImage>,
        seen: impl FnOnce(&RgbImage),
    ) -> Result<Prepared> {
        let start = Instant::now();
        let image = decode()?;
        let decode_ms = ms(start);
        crate::bench::mark(crate::bench::Mark::Decoded);
        let mut prepared = self.prepare_image(&image, source)?;
        prepared.decode_ms = decode_ms;
        seen(&image);
        Ok(prepared)
    }

    /// Prepares an already-decoded RGB image.
    pub fn prepare_image(&self, image: &RgbImage, source: String) -> Result<Prepared> {
        let t = Instant::now();
        let input = match &self.target {
            Target::Backbone(spec) => Input::Tensor(preprocess::tensor_from_image(image, spec)?),
            Target::Raw(size) => Input::Raw(preprocess::raw_pixels(image, *size)),
        };
        crate::bench::mark(crate::bench::Mark::Prepared);
        Ok(Prepared {
            source,
            input,
            decode_ms: 0.0,
            preprocess_ms: ms(t),
        })
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

impl Classifier {
    /// Loads the backbone and the labels (the bundle's, or ImageNet's).
    pub fn new(config: ClassifierConfig) -> Result<Self> {
        let ClassifierConfig {
            model,
            engine,
            top_k,
            limits,
            with_features,
            bundle,
        } = config;
        let (mode, labels, thresholds, target) = match bundle {
            Some((bundle, path)) => {
                let model_file = match &model {
                    ModelSource::File(p) => Some(p.as_path()),
                    ModelSource::Embedded => None,
                };
                let labels = bundle.labels.clone();
                let thresholds = bundle.thresholds.clone();
                match bundle.features {
                    FeatureKind::Deep => {
                        let backbone = bundle.load_backbone(&path, model_file, &engine)?;
                        let target = Target::Backbone(backbone.preprocess_spec().clone());
                        (
                            Mode::Deep(backbone, Box::new(bundle)),
                            labels,
                            thresholds,
                            target,
                        )
                    }
                    FeatureKind::Raw { size } => (
                        Mode::Raw(Box::new(bundle)),
                        labels,
                        thresholds,
                        Target::Raw(size),
                    ),
                }
            }
            None => {
                let backbone = Backbone::load(&model, &engine)?;
                let labels = manifest::imagenet_labels();
                match &backbone.entry().outputs.logits {
                    Some(logits) if logits.dim != labels.len() => {
                        return Err(Error::Manifest(format!(
                            "backbone has {} logits but {} ImageNet labels ship with it",
                            logits.dim,
                            labels.len()
                        )))
                    }
                    Some(_) => {}
                    None => {
                        return Err(Error::Manifest(format!(
                            "backbone `{}` has no logits output; classifying needs a bundle",
                            backbone.entry().name
                        )))
                    }
                }
                let target = Target::Backbone(backbone.preprocess_spec().clone());
                let thresholds = Thresholds::accept_all(labels.len());
                (Mode::ImageNet(backbone), labels, thresholds, target)
            }
        };
        Ok(Self {
            mode,
            labels,
            thresholds,
            top_k,
            limits,
            with_features,
            preparer: Preparer { limits, target },
        })
    }

    /// The class names the head decides between (the bundle's, or ImageNet's).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The unknown thresholds in use (the bundle's, or accept-all for ImageNet); callers may
    /// override them.
    pub fn thresholds_mut(&mut self) -> &mut Thresholds {
        &mut self.thresholds
    }

    /// The unknown thresholds in use.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// The bundle, if any.
    pub fn bundle(&self) -> Option<&Bundle> {
        match &self.mode {
            Mode::ImageNet(_) => None,
            Mode::Deep(_, bundle) | Mode::Raw(bundle) => Some(bundle),
        }
    }

    /// Classifies one captured frame (encoded bytes, or raw camera pixels).
    pub fn classify_frame(&self, frame: &crate::source::Frame) -> Result<Prediction> {
        self.classify_prepared(self.preparer.prepare_frame(frame)?)
    }

    /// What prepares frames for this classifier (to run on another thread).
    pub fn preparer(&self) -> &Preparer {
        &self.preparer
    }

    /// The loaded backbone (none for a raw-pixel bundle).
    pub fn backbone(&self) -> Option<&Backbone> {
        match &self.mode {
            Mode::ImageNet(backbone) | Mode::Deep(backbone, _) => Some(backbone),
            Mode::Raw(_) => None,
        }
    }

    /// Classifies an image file.
    pub fn classify_file(&self, path: &Path) -> Result<Prediction> {
        let prepared = self.preparer.prepare_decoded(
            path.display().to_string(),
            || preprocess::decode_file(path, self.limits),
            |_| {},
        )?;
        self.classify_prepared(prepared)
    }

    /// Classifies a prepared frame: backbone, then the head (the bundle's, or ImageNet's).
    pub fn classify_prepared(&self, prepared: Prepared) -> Result<Prediction> {
        let Prepared {
            source,
            input,
            decode_ms,
            preprocess_ms,
        } = prepared;
        let mut p = match (&self.mode, input) {
            (Mode::Raw(bundle), Input::Raw(raw)) => {
                self.decide(bundle, raw, source, preprocess_ms, 0.0)
            }
            (Mode::ImageNet(backbone), Input::Tensor(tensor)) => {
                self.imagenet(backbone, tensor, source, preprocess_ms)
            }
            (Mode::Deep(backbone, bundle), Input::Tensor(tensor)) => {
                let t = Instant::now();
                let out = backbone.run(tensor)?;
                crate::bench::mark(crate::bench::Mark::Backbone);
                self.decide(bundle, out.features, source, preprocess_ms, ms(t))
            }
            // A Prepared comes from this classifier's own Preparer, whose target matches its
            // mode; one from another classifier is refused rather than misread.
            _ => Err(Error::inference("a frame prepared for another classifier")),
        }?;
        p.timing_ms.decode = decode_ms;
        p.timing_ms.total += decode_ms;
        Ok(p)
    }

    /// ImageNet's 1000 classes from the backbone's logits.
    fn imagenet(
        &self,
        backbone: &Backbone,
        tensor: Vec<f32>,
        source: String,
        preprocess_ms: f64,
    ) -> Result<Prediction> {
        let t = Instant::now();
        let out = backbone.run(tensor)?;
        let backbone_ms = ms(t);
        crate::bench::mark(crate::bench::Mark::Backbone);

        let t = Instant::now();
        let logits = out
            .logits
            .ok_or_else(|| Error::inference("backbone returned no logits"))?;
        let probs = head::softmax(&logits, 1.0);
        let top_k = head::top_k(&probs, &self.labels, self.top_k);
        let head_ms = ms(t);
        let (class, label, score) = top_k
            .first()
            .map(|r| (r.index, r.label.clone(), r.score))
            .ok_or_else(|| Error::inference("empty label list"))?;
        let rejection = self
            .thresholds
            .verdict(class, score, None)
            .map(|reason| Rejection {
                best_label: label.clone(),
                reason,
            });
        let unknown = rejection.is_some();
        Ok(Prediction {
            source,
            label: if unknown { "unknown".into() } else { label },
            score,
            top_k,
            timing_ms: Timing::stages(preprocess_ms, backbone_ms, head_ms),
            knn: None,
            features: self.with_features.then_some(out.features),
            unknown,
            rejection,
        })
    }

    /// The bundle's head, store and thresholds applied to one feature vector.
    fn decide(
        &self,
        bundle: &Bundle,
        features: Vec<f32>,
        source: String,
        preprocess_ms: f64,
        backbone_ms: f64,
    ) -> Result<Prediction> {
        let t = Instant::now();
        let probs = bundle.head.predict_proba(&features);
        let top_k = head::top_k(&probs, &self.labels, self.top_k);
        let best = top_k
            .first()
            .ok_or_else(|| Error::inference("empty label list"))?;
        // One pass over the store gives both the overall nearest example and the nearest of
        // the decided class (which the unknown threshold needs).
        let (knn, own_distance) = match &bundle.store {
            Some(store) if !store.is_empty() => {
                let per_class = store.nearest_per_class(&features, self.labels.len());
                (
                    knn::nearest_class(&per_class).map(|(k, distance)| KnnResult {
                        label: self.labels[k].clone(),
                        distance,
                    }),
                    per_class.get(best.index).copied().flatten(),
                )
            }
            _ => (None, None),
        };
        let rejection = self
            .thresholds
            .verdict(best.index, best.score, own_distance)
            .map(|reason| Rejection {
                best_label: best.label.clone(),
                reason,
            });
        let unknown = rejection.is_some();
        let label = if unknown {
            "unknown".to_string()
        } else {
            best.label.clone()
        };
        let score = best.score;
        let head_ms = ms(t);
        Ok(Prediction {
            source,
            label,
            score,
            top_k,
            timing_ms: Timing::stages(preprocess_ms, backbone_ms, head_ms),
            knn,
            features: self.with_features.then_some(features),
            unknown,
            rejection,
        })
    }
}
