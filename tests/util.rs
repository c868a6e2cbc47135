//! Shared helpers: fixture paths, the onnxruntime reference, loaded backbones, the CLI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::OnceLock;

use glance::{Backbone, ModelSource};
use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests").join("fixtures").join(rel)
}

pub fn model_file(name: &str) -> PathBuf {
    root().join("models").join(name)
}

/// tests/fixtures/reference.json, written by scripts/models/make-fixtures.py from onnxruntime.
pub fn reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        let text = std::fs::read_to_string(fixture("reference.json")).expect("fixture present");
        serde_json::from_str(&text).expect("fixture is JSON")
    })
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// Mean absolute difference of two images' bytes (levels per channel), which must be as long.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "the two images differ in size");
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len() as f64
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .expect("non-empty")
}

pub fn fp32() -> &'static Backbone {
    static B: OnceLock<Backbone> = OnceLock::new();
    B.get_or_init(|| {
        Backbone::load(
            &ModelSource::File(model_file("efficientnet_lite0_fp32.onnx")),
            &Default::default(),
        )
        .expect("fp32 backbone loads")
    })
}

/// The default backbone: the embedded copy, or in a build without it (`embedded-model` off, as
/// boards build) the same file from models/.
pub fn default_model() -> ModelSource {
    if cfg!(feature = "embedded-model") {
        ModelSource::Embedded
    } else {
        ModelSource::File(model_file("efficientnet_lite0_int8w.onnx"))
    }
}

pub fn int8w() -> &'static Backbone {
    static B: OnceLock<Backbone> = OnceLock::new();
    B.get_or_init(|| {
        Backbone::load(&default_model(), &Default::default()).expect("default backbone loads")
    })
}

/// Runs the `glance-host` binary built for these tests.
#[cfg(feature = "host")]
pub fn host<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_glance-host"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("glance-host runs")
}

/// The stdout of a run that must have succeeded (else a failure showing both streams).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A path as a command-line argument.
pub fn p(path: &Path) -> String {
    path.display().to_string()
}

/// The `glance` binary built for these tests, with `args`. A build without the embedded
/// backbone (`embedded-model` off, as boards build) is given the same file with `--model`
/// wherever a command would have used the embedded one (no `--model`, no `--bundle`).
pub fn glance_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_glance"));
    cmd.env("RUST_LOG", "warn");
    let uses_default = !cfg!(feature = "embedded-model")
        && args
            .first()
            .is_some_and(|c| ["classify", "run", "bench", "info"].iter().any(|s| c == s))
        && !args.iter().any(|a| a == "--model" || a == "--bundle");
    if uses_default {
        cmd.arg(&args[0])
            .arg("--model")
            .arg(model_file("efficientnet_lite0_int8w.onnx"))
            .args(&args[1..]);
    } else {
        cmd.args(&args);
    }
    cmd
}

/// Runs the `glance` binary built for these tests (see [`glance_command`]).
pub fn glance<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    glance_command(args).output().expect("glance runs")
}

pub fn stdout_json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn tensor_of(path: &Path) -> Vec<f32> {
    let image = glance::decode_file(path, Default::default()).expect("decodes");
    glance::normalize(&image, int8w().preprocess_spec()).expect("224×224 tensor")
}

/// onnxruntime's library for the `--engine ort` tests: `ORT_DYLIB_PATH` (scripts/test.sh sets it
/// from the pinned onnxruntime wheel). Missing: a failure when `GLANCE_REQUIRE_ORT=1` (as in
/// scripts/test.sh), else a loud SKIPPED and `None`.
pub fn ort_library(test: &str) -> Option<PathBuf> {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            assert!(
                std::env::var("GLANCE_REQUIRE_ORT").as_deref() != Ok("1"),
                "{test}: GLANCE_REQUIRE_ORT=1 but ORT_DYLIB_PATH is not set"
            );
            eprintln!(
                "*** {test}: SKIPPED: ORT_DYLIB_PATH is not set (scripts/test.sh sets it from \
                 the onnxruntime wheel) ***"
            );
            None
        }
    }
}

/// A child process killed when dropped, so that a test that fails (panics) while a `glance run`
/// is going does not leave it running.
pub struct Running(pub Option<std::process::Child>);

impl Running {
    /// The child, no longer killed on drop.
    pub fn take(mut self) -> std::process::Child {
        self.0.take().expect("the child")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TCP port nobody listens on now (for a broker or a web console a test starts).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// SIGTERM (a clean shutdown) and the exit, which must be a success, within 20 s.
pub fn stop(running: Running) {
    let mut child = running.take();
    let s = sigterm_and_wait(&mut child, 20);
    assert!(s.success(), "glance exited with {s}");
}

/// Sends `child` SIGTERM (the graceful path: store saved, sink flushed) and waits up to `secs`
/// for its exit; past that it is killed and the test fails. glance finishes the frame in the
/// backbone before it stops: under a second on a board, up to half a minute under the camera
/// VM's emulation.
pub fn sigterm_and_wait(child: &mut Child, secs: u64) -> ExitStatus {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("glance did not stop on SIGTERM within {secs} s");
}

/// `glance` (see [`glance_command`]) with `args`, in the background, output discarded, killed if
/// the test fails.
pub fn spawn_glance(args: &[String]) -> Running {
    glance_command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|c| Running(Some(c)))
        .expect("glance starts")
}

/// SplitMix64: a few lines, the same sequence on every machine (test inputs that reproduce).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The f32 values of a version-1 .npy file (what `glance-host extract --export` writes).
pub fn npy_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).expect("npy");
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let header = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    bytes[10 + header..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The fixture photos (tests/fixtures/photos), copied into `root/a` and `root/b` in turn: a
/// two-class dataset of every photo, for `glance-host extract --split 0` (row i of its export is
/// the i-th path of `train_paths.txt`).
pub fn two_class_photos(root: &Path) {
    for (i, photo) in fixture_photos().iter().enumerate() {
        let class = root.join(["a", "b"][i % 2]);
        std::fs::create_dir_all(&class).expect("mkdir");
        std::fs::copy(photo, class.join(photo.file_name().expect("name"))).expect("copy");
    }
}

/// The fixture photos, sorted.
pub fn fixture_photos() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture("photos"))
        .expect("photos")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    assert!(v.len() >= 6, "the fixtures have six photos");
    v
}
