//! Times the backbone alone on one image and prints one JSON object (median, p10, p90, load
//! time). Used by scripts/bench/backbone.sh beside onnxruntime's Python API:
//! `cargo run --release --example latency -- [--model ONNX] [--engine tract|ort] IMAGE`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use glance::DecodeLimits;
use glance::{Backbone, EngineOptions, ModelSource};

#[derive(clap::Parser, Debug)]
/// Times the backbone alone on one image (one JSON object).
#[command(name = "latency")]
struct LatencyArgs {
    /// Backbone ONNX file (it must be in the manifest); the embedded one when absent.
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Timed runs.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Untimed runs first.
    #[arg(long, default_value_t = 5)]
    warmup: u32,
    /// Inference engine: `tract` (built in) or `ort` (onnxruntime, loaded from
    /// libonnxruntime.so: --ort-library, else $ORT_DYLIB_PATH).
    #[arg(long, default_value = "tract", value_name = "ENGINE")]
    engine: glance::EngineKind,
    /// onnxruntime's shared library for `--engine ort`.
    #[arg(long, value_name = "FILE")]
    ort_library: Option<PathBuf>,
    /// Compute the features only, as bundles and extraction do (no ImageNet logits).
    #[arg(long)]
    features_only: bool,
    /// The image to run.
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
}

fn latency(args: LatencyArgs) -> anyhow::Result<ExitCode> {
    let source = args.model.map_or(ModelSource::Embedded, ModelSource::File);
    let load_start = std::time::Instant::now();
    let engine = EngineOptions {
        kind: args.engine,
        threads: 1,
        ort_library: args.ort_library,
        features_only: args.features_only,
        ..EngineOptions::default()
    };
    let backbone = Backbone::load(&source, &engine).context("cannot load the backbone")?;
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;
    let image = glance::decode_file(&args.image, DecodeLimits::default())?;
    let tensor = glance::tensor_from_image(&image, backbone.preprocess_spec())?;
    for _ in 0..args.warmup {
        backbone.run(tensor.clone())?;
    }
    let mut times = Vec::with_capacity(args.runs as usize);
    for _ in 0..args.runs {
        let input = tensor.clone();
        let t = std::time::Instant::now();
        backbone.run(input)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let line = serde_json::json!({
        "runtime": backbone.engine(), "model": backbone.entry().name,
        "outputs": if args.features_only { "features" } else { "features+logits" }, "runs": times.len(), "load_ms": load_ms,
        "median_ms": pct(0.5), "p10_ms": pct(0.1), "p90_ms": pct(0.9), "min_ms": times[0],
    });
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match latency(<LatencyArgs as clap::Parser>::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("latency: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
