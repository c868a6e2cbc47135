//! The backbone: the pretrained network that turns a frame into deep features.
//!
//! Loads an ONNX graph (the quantized default compiled into the binary, or a file), checks its
//! sha256 against the manifest, prepares it once for a batch of one on an inference [`Engine`],
//! and runs frames through it, returning the pooled features and (when the graph has them) the
//! ImageNet logits.
//!
//! Engines: tract (pure Rust, always built, the default) and, with the cargo feature `ort`,
//! onnxruntime loaded at run time from `libonnxruntime.so` ([`EngineKind::Ort`]). Everything
//! outside this module sees only [`Backbone`]; only `backbone.rs` knows tract and only
//! `backbone/ort.rs` knows onnxruntime.

#[cfg(target_arch = "x86_64")]
mod depthwise;
#[cfg(target_arch = "x86_64")]
mod mmm;
#[cfg(feature = "ort")]
mod ort;
#[cfg(target_arch = "x86_64")]
mod rowmmm;
mod stem;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::manifest::{Manifest, ModelEntry};
use crate::preprocess::PreprocessSpec;

/// The default backbone, compiled into the binary (cargo feature `embedded-model`, on by default)
/// so that `glance classify` works with no files; `None` in a build without it (board builds:
/// 4.9 MB smaller; the bundle, or `--model`, brings the backbone).
pub fn embedded_model() -> Option<&'static [u8]> {
    #[cfg(feature = "embedded-model")]
    return Some(include_bytes!("../models/efficientnet_lite0_int8w.onnx"));
    #[cfg(not(feature = "embedded-model"))]
    None
}

type Plan = Arc<TypedSimplePlan>;

/// Which inference engine runs the backbone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EngineKind {
    /// tract, pure Rust, compiled in (the default).
    #[default]
    Tract,
    /// onnxruntime, loaded from `libonnxruntime.so` at run time (cargo feature `ort`).
    Ort,
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tract" => Ok(Self::Tract),
            "ort" | "onnxruntime" => Ok(Self::Ort),
            other => Err(format!("unknown engine `{other}` (tract or ort)")),
        }
    }
}

/// How to run the backbone: the engine and its threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// The engine.
    pub kind: EngineKind,
    /// Threads inside one frame's inference; 0 or 1 = one thread. For tract this is the
    /// process-wide [`set_threads`]; onnxruntime takes it per session.
    pub threads: usize,
    /// onnxruntime only: the shared library to load. When `None`, `ORT_DYLIB_PATH`, then the
    /// dynamic loader's search path (`libonnxruntime.so`).
    pub ort_library: Option<PathBuf>,
    /// Compute the pooled features only, not the ImageNet logits: a bundle brings its own head,
    /// and feature extraction reads the features alone. tract then leaves the graph's 1000-way
    /// classifier out (0.5 ms of a ~17 ms frame here, and 5 MB of weights not streamed through
    /// the cache per frame); onnxruntime runs it either way.
    pub features_only: bool,
}

impl EngineOptions {
    /// The same engine, computing the features only (see [`EngineOptions::features_only`]).
    pub fn for_features(&self) -> Self {
        Self {
            features_only: true,
            ..self.clone()
        }
    }
}

/// An inference engine with one prepared graph: one NCHW `f32` tensor in, the graph's outputs
/// (flattened, in graph order) out. Implemented by tract and, with the `ort` feature, by
/// onnxruntime; [`Backbone`] checks sizes and hashes around it.
pub trait Engine: Send + Sync {
    /// Engine name and version, e.g. `onnxruntime 1.32.0`.
    fn describe(&self) -> String;
    /// How many outputs the prepared graph has.
    fn output_count(&self) -> usize;
    /// Runs one tensor of shape `shape`.
    fn run(&self, input: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>>;
}

/// tract's optimised graph for one fixed NCHW input shape, as the tract engine runs it
/// (public for `examples/tract_profile.rs`). Only the first `outputs` outputs are kept.
///
/// Layout: tract moves a depthwise convolution's data channels-last by itself when tract-linalg
/// has a channel-inner depthwise kernel for the machine (`suggested_axis_changes` of its `Conv`,
/// applied while decluttering); it ships one for aarch64, and glance registers its own for
/// x86-64 (`backbone/depthwise.rs`; see [`tract_depthwise_kernel`]). Measured here, that is the
/// single largest gain for this backbone: the NCHW depthwise path spends most of its time on the
/// border zones of 7×7 and 14×14 maps with 5×5 kernels (BENCHMARKS.md, "tract: where the time
/// goes").
#[doc(hidden)]
///
/// The stem convolution is lowered to glance's im2col + a 1×1 convolution when the graph allows
/// it and `GLANCE_TRACT_STEM` is not `off` (`backbone/stem.rs`); the model's input is then the
/// stem's patch tensor.
pub fn tract_model(bytes: &[u8], shape: [usize; 4], outputs: usize) -> TractResult<TypedModel> {
    tract_graph(bytes, shape, outputs, GraphForm::from_env()).map(|(model, _)| model)
}

/// Which of glance's graph rewrites [`tract_graph`] applies; both on unless the environment
/// turns one off, for comparison.
#[derive(Debug, Clone, Copy)]
struct GraphForm {
    /// The stem as glance's im2col + a 1×1 convolution (`GLANCE_TRACT_STEM=off`: not).
    lower_stem: bool,
    /// Each depthwise convolution's ReLU6 fused into it, where glance's depthwise kernels run
    /// (`GLANCE_TRACT_FUSE_CLIP=off`: not).
    fuse_clips: bool,
}

impl GraphForm {
    fn from_env() -> Self {
        Self {
            lower_stem: stem::enabled(),
            fuse_clips: std::env::var("GLANCE_TRACT_FUSE_CLIP").map_or(true, |v| v != "off"),
        }
    }
}

/// [`tract_model`] in the given form, and the stem's geometry when it was lowered: the graph then
/// takes the stem's patch tensor instead of the image.
fn tract_graph(
    bytes: &[u8],
    shape: [usize; 4],
    outputs: usize,
    form: GraphForm,
) -> TractResult<(TypedModel, Option<stem::Stem>)> {
    let mut reader = bytes;
    // The input shape is fixed below; intermediate shape hints in the file (value_info) may
    // carry a symbolic batch `N` that tract cannot unify with 1 (onnxruntime's quantizer
    // writes them), and tract infers every shape anyway.
    let onnx = tract_onnx::onnx().with_ignore_value_info(true);
    let mut proto = onnx.proto_model_for_read(&mut reader)?;
    check_graph(&proto)?;
    let stem = match form.lower_stem {
        true => stem::lower(&mut proto, shape),
        false => None,
    };
    let input_shape = stem.as_ref().map_or(shape, stem::Stem::patch_shape);
    let mut model = onnx
        .model_for_proto_model(&proto)?
        .with_input_fact(0, f32::fact(input_shape).into())?
        .into_typed()?;
    // Outputs nobody reads are dropped before optimisation, and the nodes only they needed
    // with them (e.g. the 1000-way ImageNet classifier when a bundle brings its own head).
    if model.outputs.len() > outputs {
        model.outputs.truncate(outputs);
    }
    #[allow(unused_mut)]
    let mut model = model.into_optimized()?;
    // glance's depthwise kernels clamp the rows they write: the ReLU6 after each depthwise
    // convolution joins it (`backbone/depthwise.rs`, `GLANCE_TRACT_FUSE_CLIP=off` to compare).
    // Those kernels are x86-64's; elsewhere tract's own run the depthwise convolutions.
    #[cfg(target_arch = "x86_64")]
    if form.fuse_clips && depthwise::active().is_some() {
        let fused = depthwise::fuse_clips(&mut model)?;
        log::debug!("tract: {fused} depthwise convolutions clamp their output themselves");
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = form.fuse_clips;
    Ok((model, stem))
}

/// Refuses a graph whose outputs or node inputs name a value that nothing defines: tract-onnx
/// 0.23 panics on those (a map lookup in its model builder) instead of returning an error, and
/// a bundle brings its own ONNX bytes.
fn check_graph(proto: &tract_onnx::pb::ModelProto) -> TractResult<()> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the ONNX file has no graph"))?;
    let mut defined: std::collections::HashSet<&str> = graph
        .input
        .iter()
        .map(|v| v.name.as_str())
        .chain(graph.initializer.iter().map(|t| t.name.as_str()))
        .collect();
    for node in &graph.node {
        defined.extend(node.output.iter().map(String::as_str));
    }
    for node in &graph.node {
        if let Some(i) = node
            .input
            .iter()
            .find(|i| !i.is_empty() && !defined.contains(i.as_str()))
        {
            anyhow::bail!(
                "node `{}` reads `{i}`, which no node, input or initializer defines",
                node.name
            );
        }
    }
    if graph.output.is_empty() {
        anyhow::bail!("the graph has no outputs");
    }
    if let Some(o) = graph
        .output
        .iter()
        .find(|o| !defined.contains(o.name.as_str()))
    {
        anyhow::bail!("graph output `{}` is produced by no node", o.name);
    }
    Ok(())
}

/// Which channel-inner depthwise kernel tract runs on this machine: one of glance's x86-64
/// kernels, or `tract's own` (tract-linalg's, e.g. NEON on aarch64, or none, where tract keeps
/// depthwise convolutions NCHW).
pub fn tract_depthwise_kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if let Some(name) = depthwise::active() {
        return name;
    }
    "tract's own"
}

/// How glance steers tract-linalg's choice of matrix-product kernel on this machine
/// (`backbone/mmm.rs`): its table of kernels measured fastest for this backbone's shapes on
/// Intel AVX-512, tract's own choice elsewhere, or what `GLANCE_TRACT_MMM` says.
pub fn tract_mmm_tuning() -> String {
    #[cfg(target_arch = "x86_64")]
    return mmm::describe();
    #[cfg(not(target_arch = "x86_64"))]
    "tract's own".to_string()
}

/// tract: the graph optimised once for a fixed input shape, run on the calling thread (plus
/// tract's matrix-product executor, see [`set_threads`]).
struct TractEngine {
    plan: Plan,
    /// Set when the stem runs as glance's im2col + a 1×1 convolution: frames are turned into
    /// its patch tensor before tract runs them.
    stem: Option<stem::Stem>,
}

impl TractEngine {
    /// `outputs`: how many of the graph's outputs (in order) to compute.
    fn new(bytes: &[u8], shape: [usize; 4], outputs: usize, origin: &Path) -> Result<Self> {
        let load_err = |e: TractError| Error::ModelLoad {
            path: origin.to_path_buf(),
            reason: format!("{e:#}"),
        };
        log::debug!("tract depthwise kernel: {}", tract_depthwise_kernel());
        log::debug!("tract matrix-product kernels: {}", tract_mmm_tuning());
        let (model, stem) =
            tract_graph(bytes, shape, outputs, GraphForm::from_env()).map_err(load_err)?;
        log::debug!(
            "tract stem: {}",
            stem.as_ref()
                .map_or("as in the graph".to_owned(), |s| format!(
                    "im2col to {:?} + 1x1 convolution",
                    s.patch_shape()
                ))
        );
        let plan = model.into_runnable().map_err(load_err)?;
        Ok(Self { plan, stem })
    }
}

impl Engine for TractEngine {
    fn describe(&self) -> String {
        "tract".to_owned()
    }

    fn output_count(&self) -> usize {
        self.plan.model().outputs.len()
    }

    fn run(&self, input: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>> {
        let input = match &self.stem {
            Some(stem) if stem.input == shape && input.len() == shape.iter().product::<usize>() => {
                let inference = |e: TractError| Error::Inference(format!("stem patches: {e:#}"));
                let mut patches = Tensor::zero::<f32>(&stem.patch_shape()).map_err(inference)?;
                let mut plain = patches.try_as_plain_ram_mut().map_err(inference)?;
                stem.patches_into(input, plain.as_slice_mut::<f32>().map_err(inference)?);
                patches
            }
            Some(stem) => {
                return Err(Error::Inference(format!(
                    "input of shape {shape:?} ({} values), the graph was prepared for {:?}",
                    input.len(),
                    stem.input
                )))
            }
            None => {
                Tensor::from_shape(&shape, input).map_err(|e| Error::Inference(format!("{e:#}")))?
            }
        };
        let outputs = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| Error::Inference(format!("{e:#}")))?;
        outputs
            .iter()
            .enumerate()
            .map(|(i, value)| {
                value
                    .to_plain_array_view::<f32>()
                    .map(|view| view.iter().copied().collect())
                    .map_err(|e| Error::Inference(format!("output {i}: {e:#}")))
            })
            .collect()
    }
}

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
    engine: Box<dyn Engine>,
    entry: ModelEntry,
    origin: PathBuf,
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backbone")
            .field("name", &self.entry.name)
            .field("sha256", &self.entry.sha256)
            .field("origin", &self.origin)
            .field("engine", &self.engine.describe())
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
    pub fn load(source: &ModelSource, engine: &EngineOptions) -> Result<Self> {
        let manifest = Manifest::embedded()?;
        match source {
            ModelSource::Embedded => {
                let bytes = embedded_model().ok_or_else(|| {
                    Error::InvalidSetting(
                        "this glance was built without the embedded backbone (cargo feature \
                         `embedded-model`): pass the backbone with --model FILE, or a --bundle \
                         that carries it"
                            .to_owned(),
                    )
                })?;
                let entry = manifest.default_entry()?.clone();
                Self::from_bytes(bytes, entry, PathBuf::from("<embedded>"), engine)
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
                                 export it with scripts/models/export-backbone.sh so that it is in \
                                 models/manifest.json",
                                path.display()
                            )),
                        });
                    }
                };
                Self::from_bytes(&bytes, entry, path.clone(), engine)
            }
        }
    }

    /// Loads ONNX bytes described by `entry` on the chosen engine, checking the hash first.
    pub fn from_bytes(
        bytes: &[u8],
        mut entry: ModelEntry,
        origin: PathBuf,
        engine: &EngineOptions,
    ) -> Result<Self> {
        if engine.features_only {
            entry.outputs.logits = None;
        }
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
        let shape = [1usize, 3, spec.height as usize, spec.width as usize];
        let engine: Box<dyn Engine> = match engine.kind {
            EngineKind::Tract => {
                let outputs = 1 + usize::from(entry.outputs.logits.is_some());
                Box::new(TractEngine::new(bytes, shape, outputs, &origin)?)
            }
            #[cfg(feature = "ort")]
            EngineKind::Ort => Box::new(ort::OrtEngine::new(bytes, engine, &origin)?),
            #[cfg(not(feature = "ort"))]
            EngineKind::Ort => {
                return Err(Error::InvalidSetting(
                    "this glance was built without the onnxruntime engine; rebuild with \
                     `--features ort`, or use --engine tract"
                        .to_owned(),
                ))
            }
        };
        let backbone = Self {
            engine,
            entry,
            origin,
        };
        backbone.check_outputs()?;
        Ok(backbone)
    }

    fn check_outputs(&self) -> Result<()> {
        let have = self.engine.output_count();
        let want = 1 + usize::from(self.entry.outputs.logits.is_some());
        if have < want {
            return Err(Error::ModelLoad {
                path: self.origin.clone(),
                reason: format!("graph has {have} outputs, the manifest describes {want}"),
            });
        }
        Ok(())
    }

    /// The engine running this backbone, with its version (`tract`, `onnxruntime 1.32.0`).
    pub fn engine(&self) -> String {
        self.engine.describe()
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
        let mut outputs = self.engine.run(&tensor, shape)?;
        let mut flat = |i: usize, dim: usize, what: &str| -> Result<Vec<f32>> {
            let values = outputs
                .get_mut(i)
                .ok_or_else(|| Error::Inference(format!("missing output {what}")))?;
            if values.len() != dim {
                return Err(Error::Inference(format!(
                    "output {what} has {} values, expected {dim}",
                    values.len()
                )));
            }
            Ok(std::mem::take(values))
        };
        let features = flat(0, self.entry.outputs.features.dim, "features")?;
        let logits = match &self.entry.outputs.logits {
            Some(spec) => Some(flat(1, spec.dim, "logits")?),
            None => None,
        };
        Ok(BackboneOutput { features, logits })
    }
}
