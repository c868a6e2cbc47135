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
//! `backbone/ort.rs` knows onnxruntime. This module uses tract's public model API only (load,
//! declutter and optimise, run); on x86-64, with the cargo feature `x86-kernels` (default), the
//! optimisation goes through `crates/tract-x86-kernels`, and boards run tract's own kernels. The
//! half-precision path ([`BackbonePrecision::F16`]) goes through `crates/tract-f16`. Those two
//! crates are the only code that touches tract's internals.

#[cfg(feature = "ort")]
mod ort;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::manifest::{Manifest, ModelEntry};
use crate::preprocess::{PreprocessSpec, ResizeMode};

/// The default backbone, compiled into the binary (cargo feature `embedded-model`, on by default)
/// so that `glance classify` works with no files; `None` in a build without it (board builds:
/// 4.9 MB smaller; the bundle, or `--model`, brings the backbone).
pub(crate) fn embedded_model() -> Option<&'static [u8]> {
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

/// The arithmetic tract runs the backbone's float operators in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackbonePrecision {
    /// 32-bit floats (the default).
    #[default]
    F32,
    /// Half precision where the CPU computes it natively (ARMv8.2 FP16, `asimdhp` in
    /// /proc/cpuinfo: Cortex-A55, A76, A78…), else 32-bit floats with a note in the log:
    /// elsewhere tract would emulate f16 in software, far slower than f32. The graph is translated
    /// to f16 after decluttering; frames go in and features come out as f32 all the same.
    F16,
}

impl std::str::FromStr for BackbonePrecision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            other => Err(format!("unknown precision `{other}` (f32 or f16)")),
        }
    }
}

/// Whether this CPU computes f16 natively (what [`BackbonePrecision::F16`] needs).
pub fn cpu_has_fp16() -> bool {
    tract_onnx::prelude::tract_linalg::has_fp16()
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
    /// tract only: the arithmetic of the float operators (onnxruntime runs the graph's own).
    pub precision: BackbonePrecision,
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
pub(crate) trait Engine: Send + Sync {
    /// Engine name and version, e.g. `onnxruntime 1.32.0`.
    fn describe(&self) -> String;
    /// How many outputs the prepared graph has.
    fn output_count(&self) -> usize;
    /// Runs one tensor of shape `shape`.
    fn run(&self, input: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>>;
}

/// tract's optimised graph for one fixed NCHW input shape, as the tract engine runs it
/// (public for `examples/tract_profile.rs`). Only the first `outputs` outputs are kept.
pub fn tract_model(bytes: &[u8], shape: [usize; 4], outputs: usize) -> TractResult<TypedModel> {
    optimize(tract_typed(bytes, shape, outputs)?)
}

/// The graph of [`tract_model`] before optimisation, for profilers that optimise it their own
/// way (`examples/tract_profile.rs --matmul`).
pub fn tract_typed(bytes: &[u8], shape: [usize; 4], outputs: usize) -> TractResult<TypedModel> {
    let mut reader = bytes;
    // The input shape is fixed below; intermediate shape hints in the file (value_info) may
    // carry a symbolic batch `N` that tract cannot unify with 1 (onnxruntime's quantizer
    // writes them), and tract infers every shape anyway.
    let onnx = tract_onnx::onnx().with_ignore_value_info(true);
    let proto = onnx.proto_model_for_read(&mut reader)?;
    check_graph(&proto)?;
    let mut model = onnx
        .model_for_proto_model(&proto)?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_typed()?;
    // Outputs nobody reads are dropped before optimisation, and the nodes only they needed
    // with them (e.g. the 1000-way ImageNet classifier when a bundle brings its own head).
    if model.outputs.len() > outputs {
        model.outputs.truncate(outputs);
    }
    Ok(model)
}

/// tract's declutter and optimisation (`into_optimized`), through the x86-64 kernel crate where
/// it is built in: its depthwise kernel, matrix-product kernels and their table. Either way the
/// graph computes the same to float rounding.
fn optimize(model: TypedModel) -> TractResult<TypedModel> {
    #[cfg(all(feature = "x86-kernels", target_arch = "x86_64"))]
    return tract_x86_kernels::optimize(model, &tract_x86_kernels::Pieces::default());
    #[cfg(not(all(feature = "x86-kernels", target_arch = "x86_64")))]
    model.into_optimized()
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

/// Which kernels tract runs here beyond its own, in words: what `crates/tract-x86-kernels` does
/// on this machine, or `tract's own` (other targets, or built without the feature `x86-kernels`).
pub fn tract_kernels() -> String {
    #[cfg(all(feature = "x86-kernels", target_arch = "x86_64"))]
    return tract_x86_kernels::describe();
    #[cfg(not(all(feature = "x86-kernels", target_arch = "x86_64")))]
    "tract's own".to_owned()
}

/// The graph of [`tract_typed`] with its float operators in f16, depthwise convolutions on
/// `tract_f16::DepthwiseF16` (`tract_f16::translate` says why): decluttered first (so that int8
/// weights are dequantized into f32 constants, which are then cast once), translated,
/// optimised, and any f16↔f32 casts left vectorised. Its input and outputs are f16:
/// [`TractEngine`] casts frames in and results out.
pub fn tract_model_f16(bytes: &[u8], shape: [usize; 4], outputs: usize) -> TractResult<TypedModel> {
    let mut model = tract_typed(bytes, shape, outputs)?.into_decluttered()?;
    tract_f16::translate(&mut model)?;
    let mut model = optimize(model)?;
    tract_f16::vectorise_casts(&mut model)?;
    Ok(model)
}

/// tract: the graph optimised once for a fixed input shape, run on the calling thread (plus
/// tract's matrix-product executor, see [`set_threads`]).
struct TractEngine {
    plan: Plan,
    /// The plan's arithmetic: an f16 plan takes an f16 input and gives f16 outputs.
    precision: BackbonePrecision,
}

impl TractEngine {
    /// `outputs`: how many of the graph's outputs (in order) to compute.
    fn new(
        bytes: &[u8],
        shape: [usize; 4],
        outputs: usize,
        precision: BackbonePrecision,
        origin: &Path,
    ) -> Result<Self> {
        let load_err = |e: TractError| Error::ModelLoad {
            path: origin.to_path_buf(),
            reason: String::new(),
            source: Some(e.into()),
        };
        log::debug!("tract kernels: {}", tract_kernels());
        let precision = match precision {
            BackbonePrecision::F16 if !cpu_has_fp16() => {
                log::info!(
                    "f16 asked for, but this CPU has no half-precision arithmetic (ARMv8.2 \
                     FP16): running the backbone in f32"
                );
                BackbonePrecision::F32
            }
            p => p,
        };
        let model = match precision {
            BackbonePrecision::F32 => tract_model(bytes, shape, outputs),
            BackbonePrecision::F16 => {
                log::info!("backbone in f16 (ARMv8.2 FP16)");
                tract_model_f16(bytes, shape, outputs)
            }
        }
        .map_err(load_err)?;
        let plan = model.into_runnable().map_err(load_err)?;
        Ok(Self { plan, precision })
    }
}

impl Engine for TractEngine {
    fn describe(&self) -> String {
        match self.precision {
            BackbonePrecision::F32 => "tract".to_owned(),
            BackbonePrecision::F16 => "tract (f16)".to_owned(),
        }
    }

    fn output_count(&self) -> usize {
        self.plan.model().outputs.len()
    }

    fn run(&self, input: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>> {
        let input = match self.precision {
            BackbonePrecision::F32 => Tensor::from_shape(&shape, input),
            BackbonePrecision::F16 => tract_f16::f16_tensor(&shape, input),
        }
        .map_err(|e| Error::inference_from("", e))?;
        let outputs = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| Error::inference_from("", e))?;
        outputs
            .iter()
            .enumerate()
            .map(|(i, value)| {
                // An f16 graph's outputs are f16 (the translator casts none back): widen here.
                value
                    .cast_to::<f32>()
                    .and_then(|t| {
                        t.to_plain_array_view::<f32>()
                            .map(|view| view.iter().copied().collect())
                    })
                    .map_err(|e| Error::inference_from(format!("output {i}"), e))
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
    // tract-core's prelude re-exports tract-linalg's executor: the public route to it.
    use tract_onnx::prelude::multithread::{set_default_executor, Executor};
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
                Box::new(TractEngine::new(
                    bytes,
                    shape,
                    outputs,
                    engine.precision,
                    &origin,
                )?)
            }
            #[cfg(feature = "ort")]
            EngineKind::Ort if engine.precision == BackbonePrecision::F16 => {
                return Err(Error::InvalidSetting(
                    "--precision f16 is tract's; onnxruntime runs the graph in its own precision \
                     (use --precision f32 with --engine ort)"
                        .to_owned(),
                ))
            }
            #[cfg(feature = "ort")]
            EngineKind::Ort => Box::new(ort::OrtEngine::new(bytes, shape, engine, &origin)?),
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
                source: None,
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

    /// The same backbone with frames resized by `resize` (the input size stays): a bundle
    /// fitted with it carries it, so the board prepares frames the same way.
    pub fn with_resize(mut self, resize: ResizeMode) -> Result<Self> {
        self.entry.preprocess.resize = resize;
        self.entry.preprocess.validate()?;
        Ok(self)
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

    /// What `glance info --format json` prints: this build, this backbone, and the backbones
    /// `manifest` knows.
    pub fn info_json(&self, manifest: &Manifest) -> serde_json::Value {
        let entry = &self.entry;
        serde_json::json!({
            "glance_version": env!("CARGO_PKG_VERSION"),
            "build_target": crate::BUILD_TARGET,
            "backbone": {
                "name": entry.name,
                "origin": self.origin.display().to_string(),
                "engine": self.engine(),
                "sha256": entry.sha256,
                "bytes": entry.bytes,
                "precision": entry.precision,
                "input": entry.input,
                "preprocess": entry.preprocess,
                "outputs": entry.outputs,
            },
            "default_backbone": manifest.default,
            "known_backbones": manifest.models.iter().map(|m| &m.name).collect::<Vec<_>>(),
        })
    }

    /// What `glance info` prints for people: this build and this backbone, one fact a line.
    pub fn info_text(&self) -> String {
        let entry = &self.entry;
        let p = &entry.preprocess;
        let logits = entry
            .outputs
            .logits
            .as_ref()
            .map(|l| format!(", {} ({})", l.name, l.dim))
            .unwrap_or_default();
        format!(
            "glance {} ({})\n\
             backbone   {} from {}\n\
             sha256     {}\n\
             precision  {}\n\
             size       {:.2} MB\n\
             input      `{}` 1×3×{}×{} {:?}, resize {:?}, (x - {:?}) / {:?} on 0..255\n\
             outputs    {} ({}){logits}\n",
            env!("CARGO_PKG_VERSION"),
            crate::BUILD_TARGET,
            entry.name,
            self.origin.display(),
            entry.sha256,
            entry.precision,
            entry.bytes as f64 / 1e6,
            entry.input,
            p.height,
            p.width,
            p.channel_order,
            p.resize,
            p.mean,
            p.std,
            entry.outputs.features.name,
            entry.outputs.features.dim,
        )
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
                .ok_or_else(|| Error::inference(format!("missing output {what}")))?;
            if values.len() != dim {
                return Err(Error::inference(format!(
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
