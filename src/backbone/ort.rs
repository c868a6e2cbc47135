//! The onnxruntime engine (cargo feature `ort`): the one module that knows about onnxruntime.
//!
//! The library is opened at run time (`ort`'s `load-dynamic`): from [`EngineOptions::ort_library`],
//! else `ORT_DYLIB_PATH`, else `libonnxruntime.so` on the loader's path. The onnxruntime wheel
//! from PyPI ships it as `onnxruntime/capi/libonnxruntime.so.<version>`. A missing or unusable
//! library is an error naming the path, never a panic: it is loaded and checked here before any
//! other onnxruntime call.

// Unsafe code here: the onnxruntime library handle and its C version string.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use super::{Engine, EngineOptions};
use crate::error::{Error, Result};

/// The process's one onnxruntime environment (onnxruntime allows one) and the library it came
/// from; a failure is kept so that every later load reports it too.
type Loaded = std::result::Result<(Environment, PathBuf, String), String>;
static ENVIRONMENT: OnceLock<Loaded> = OnceLock::new();

fn library_path(options: &EngineOptions) -> PathBuf {
    if let Some(path) = &options.ort_library {
        return path.clone();
    }
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(format!(
            "{}onnxruntime{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )),
    }
}

/// The environment and the library's version.
fn environment(options: &EngineOptions) -> Result<(&'static Environment, &'static str)> {
    let wanted = library_path(options);
    let loaded = ENVIRONMENT.get_or_init(|| {
        let builder = ort::init_from(&wanted).map_err(|e| {
            format!(
                "cannot load onnxruntime from {}: {e}. Point ORT_DYLIB_PATH (or --ort-library) \
                 at libonnxruntime.so, e.g. the one in the onnxruntime wheel from PyPI \
                 (…/site-packages/onnxruntime/capi/libonnxruntime.so.*)",
                wanted.display()
            )
        })?;
        let env = builder
            .with_name("glance")
            .build()
            .map_err(|e| format!("onnxruntime from {}: {e}", wanted.display()))?;
        let version = library_version(&wanted).unwrap_or_else(|| "(version unknown)".to_owned());
        Ok((env, wanted.clone(), version))
    });
    match loaded {
        Ok((env, path, version)) => {
            if *path != wanted {
                log::warn!(
                    "onnxruntime is already loaded from {}; {} is not loaded as well",
                    path.display(),
                    wanted.display()
                );
            }
            Ok((env, version.as_str()))
        }
        Err(message) => Err(Error::InvalidSetting(message.clone())),
    }
}

/// One onnxruntime session (all graph optimisations, `threads` intra-op threads, no spinning
/// between frames). onnxruntime's `run` needs exclusive access, hence the mutex: frames from
/// several threads take turns, each using onnxruntime's own threads.
pub(super) struct OrtEngine {
    session: Mutex<Session>,
    input: String,
    outputs: Vec<String>,
    version: String,
}

impl OrtEngine {
    /// `shape` is the input the frames are prepared at; a graph exported with other fixed
    /// dimensions is refused here rather than at the first frame (onnxruntime checks the input
    /// against the graph's declared dimensions, tract takes the shape it is given).
    pub(super) fn new(
        bytes: &[u8],
        shape: [usize; 4],
        options: &EngineOptions,
        origin: &Path,
    ) -> Result<Self> {
        let (env, version) = environment(options)?;
        let fail = |what: &str, e: ort::Error| Error::ModelLoad {
            path: origin.to_path_buf(),
            reason: format!("onnxruntime: {what}"),
            source: Some(e.into()),
        };
        let threads = options.threads.max(1);
        let session = Session::builder(env)
            .map_err(|e| fail("session options", e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail("optimisation level", e.into()))?
            .with_intra_threads(threads)
            .map_err(|e| fail("threads", e.into()))?
            .with_inter_threads(1)
            .map_err(|e| fail("threads", e.into()))?
            // A camera frame comes every 30–100 ms; threads spinning between frames would burn
            // the cores that capture and the rest of the board need.
            .with_intra_op_spinning(false)
            .map_err(|e| fail("spinning", e.into()))?
            .commit_from_memory(bytes)
            .map_err(|e| fail("loading the graph", e))?;
        let first = session.inputs().first().ok_or_else(|| Error::ModelLoad {
            path: origin.to_path_buf(),
            reason: "onnxruntime: the graph has no input".into(),
            source: None,
        })?;
        if let Some(declared) = first.dtype().tensor_shape() {
            // The batch dimension is free (-1) in every export; a negative one is symbolic.
            let fixed_elsewhere = declared.len() == shape.len()
                && declared
                    .iter()
                    .zip(shape)
                    .skip(1)
                    .any(|(&d, want)| d >= 0 && d as usize != want);
            if fixed_elsewhere {
                return Err(Error::ModelLoad {
                    path: origin.to_path_buf(),
                    reason: format!(
                        "onnxruntime runs this graph at its exported input {:?} only, and the \
                         preprocessing asks for {shape:?} (a bundle fitted at a smaller side, \
                         such as `--backbone lite0-160`); use --engine tract",
                        &declared[..]
                    ),
                    source: None,
                });
            }
        }
        let input = first.name().to_owned();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| o.name().to_owned())
            .collect();
        Ok(Self {
            session: Mutex::new(session),
            input,
            outputs,
            version: format!("onnxruntime {version}"),
        })
    }
}

/// The version the library at `path` reports (`OrtGetApiBase()->GetVersionString()`); the
/// library is already loaded by then, so this only takes another reference to it.
fn library_version(path: &Path) -> Option<String> {
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: the same library ort has just loaded and initialised (its constructors have run);
    // OrtGetApiBase takes no arguments and returns a pointer to a static table, and
    // GetVersionString returns a static NUL-terminated string. Both are checked for null.
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let get: libloading::Symbol<GetApiBase> = lib.get(b"OrtGetApiBase").ok()?;
        let base = get();
        if base.is_null() {
            return None;
        }
        let version = ((*base).GetVersionString)();
        if version.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(version)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

impl Engine for OrtEngine {
    fn describe(&self) -> String {
        self.version.clone()
    }

    fn output_count(&self) -> usize {
        self.outputs.len()
    }

    fn run(&self, input: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>> {
        let err = |e: ort::Error| Error::inference_from("onnxruntime", e);
        let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let tensor = TensorRef::from_array_view((shape, input)).map_err(err)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| Error::inference("onnxruntime session poisoned by a panic"))?;
        let outputs = session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(err)?;
        self.outputs
            .iter()
            .map(|name| {
                let value = outputs
                    .get(name)
                    .ok_or_else(|| Error::inference(format!("onnxruntime: no output `{name}`")))?;
                let (_, data) = value.try_extract_tensor::<f32>().map_err(err)?;
                Ok(data.to_vec())
            })
            .collect()
    }
}
