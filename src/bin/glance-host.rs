//! `glance-host`: the host-side workbench. Thin: parse arguments → run → exit code.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use glance::backbone::{Backbone, ModelSource};
use glance::preprocess::{self, DecodeLimits};

/// Host workbench for glance: extract deep features, train and evaluate heads, pack bundles.
#[derive(Parser, Debug)]
#[command(name = "glance-host", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the deep-feature vector of each image as a JSON line `{source, backbone, features}`
    /// (for use with numpy / scikit-learn).
    Features(FeaturesArgs),
    /// Time the backbone alone on one image: median and percentiles over `--runs` runs, after
    /// `--warmup` runs, single-threaded. Prints one JSON object (used by scripts/bench-backbone.sh).
    Latency(LatencyArgs),
}

#[derive(clap::Args, Debug)]
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
    /// The image to run.
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
}

#[derive(clap::Args, Debug)]
struct FeaturesArgs {
    /// Use this backbone ONNX file instead of the embedded one (it must be in the manifest).
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Image files or folders.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Features(args) => features(args),
        Command::Latency(args) => latency(args),
    };
    match result {
        Ok(code) => code,
        Err(err)
            if err.chain().any(|e| {
                e.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("glance-host: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn features(args: FeaturesArgs) -> anyhow::Result<ExitCode> {
    let source = args.model.map_or(ModelSource::Embedded, ModelSource::File);
    let backbone = Backbone::load(&source).context("cannot load the backbone")?;
    let name = backbone.entry().name.clone();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failures = 0usize;
    for item in glance::source::expand_paths(&args.images) {
        let result = item
            .map_err(|(p, e)| anyhow::anyhow!("{}: {e}", p.display()))
            .and_then(|path| {
                let image = preprocess::decode_file(&path, DecodeLimits::default())?;
                let tensor = preprocess::tensor_from_image(&image, backbone.preprocess_spec())?;
                let out = backbone.run(tensor)?;
                Ok((path, out.features))
            });
        match result {
            Ok((path, features)) => {
                let line = serde_json::json!({
                    "source": path.display().to_string(),
                    "backbone": name,
                    "features": features,
                });
                writeln!(out, "{line}")?;
            }
            Err(e) => {
                failures += 1;
                out.flush()?;
                eprintln!("glance-host: error: {e:#}");
            }
        }
    }
    out.flush()?;
    Ok(if failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn latency(args: LatencyArgs) -> anyhow::Result<ExitCode> {
    let source = args.model.map_or(ModelSource::Embedded, ModelSource::File);
    let load_start = std::time::Instant::now();
    let backbone = Backbone::load(&source).context("cannot load the backbone")?;
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;
    let image = preprocess::decode_file(&args.image, DecodeLimits::default())?;
    let tensor = preprocess::tensor_from_image(&image, backbone.preprocess_spec())?;
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
        "runtime": "tract",
        "model": backbone.entry().name,
        "runs": times.len(),
        "load_ms": load_ms,
        "median_ms": pct(0.5),
        "p10_ms": pct(0.1),
        "p90_ms": pct(0.9),
        "min_ms": times[0],
    });
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
