//! `glance`: the board runtime. Thin: parse arguments → run → exit code.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use glance::backbone::{Backbone, ModelSource};
use glance::manifest::Manifest;
use glance::pipeline::{Classifier, ClassifierConfig, Prediction};
use glance::preprocess::DecodeLimits;

/// Edge image classifier: an int8 EfficientNet-Lite0 backbone on tract, with a linear head and a
/// kNN store from a bundle (or the 1000 ImageNet classes with none).
#[derive(Parser, Debug)]
#[command(name = "glance", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Classify image files (or folders of them) and print one result per image.
    Classify(ClassifyArgs),
    /// Show the backbone, its sha256, its input spec and the build target.
    Info(InfoArgs),
}

/// Output format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One line per image for people.
    Text,
    /// One JSON object per image per line, for programs.
    Json,
}

#[derive(clap::Args, Debug)]
struct ClassifyArgs {
    /// Number of classes to report per image.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    top_k: u16,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// A bundle from `glance-host fit`: classify into its classes with its head, kNN store and
    /// unknown thresholds (ImageNet classes when absent).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Use this backbone ONNX file instead of the embedded one (it must be in the manifest).
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Add the 1280-d feature vector to each JSON line.
    #[arg(long)]
    with_features: bool,
    /// Refuse images wider or taller than this many pixels.
    #[arg(long, default_value_t = glance::preprocess::DEFAULT_MAX_SIDE, value_name = "PX")]
    max_side: u32,
    /// Image files or folders.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct InfoArgs {
    /// Describe this backbone ONNX file instead of the embedded one.
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("glance: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Classify(args) => classify(args),
        Command::Info(args) => info(args),
    }
}

fn model_source(model: Option<PathBuf>) -> ModelSource {
    model.map_or(ModelSource::Embedded, ModelSource::File)
}

fn classify(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let bundle = match &args.bundle {
        Some(path) => Some((glance::bundle::Bundle::load(path)?, path.clone())),
        None => None,
    };
    let config = ClassifierConfig {
        bundle,
        model: model_source(args.model),
        top_k: usize::from(args.top_k),
        limits: DecodeLimits {
            max_side: args.max_side,
            ..DecodeLimits::default()
        },
        with_features: args.with_features,
    };
    let classifier = Classifier::new(config).context("cannot set up the classifier")?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failures = 0usize;
    for item in glance::source::expand_paths(&args.images) {
        let result = match item {
            Ok(path) => classifier.classify_file(&path).map_err(anyhow::Error::from),
            Err((path, e)) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        match result {
            Ok(p) => {
                write_prediction(&mut out, &p, args.format)?;
                out.flush()?;
            }
            Err(e) => {
                failures += 1;
                out.flush()?;
                eprintln!("glance: error: {e:#}");
            }
        }
    }
    out.flush()?;
    if failures > 0 {
        eprintln!("glance: {failures} image(s) could not be classified");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn write_prediction(out: &mut impl Write, p: &Prediction, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer(&mut *out, p)?;
            writeln!(out)?;
        }
        Format::Text => {
            let others: Vec<String> = p
                .top_k
                .iter()
                .skip(1)
                .map(|r| format!("{} {:.1}%", r.label, r.score * 100.0))
                .collect();
            write!(out, "{}: {} {:.1}%", p.source, p.label, p.score * 100.0)?;
            if !others.is_empty() {
                write!(out, "  (then {})", others.join(", "))?;
            }
            if let Some(k) = &p.knn {
                write!(out, "  nearest example: {} at {:.3}", k.label, k.distance)?;
            }
            writeln!(
                out,
                "  [{:.1} ms: decode {:.1}, preprocess {:.1}, backbone {:.1}]",
                p.timing_ms.total, p.timing_ms.decode, p.timing_ms.preprocess, p.timing_ms.backbone
            )?;
        }
    }
    Ok(())
}

fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let source = model_source(args.model);
    let backbone = Backbone::load(&source).context("cannot load the backbone")?;
    let manifest = Manifest::embedded()?;
    let entry = backbone.entry();
    let info = serde_json::json!({
        "glance_version": env!("CARGO_PKG_VERSION"),
        "build_target": glance::BUILD_TARGET,
        "backbone": {
            "name": entry.name,
            "origin": backbone.origin().display().to_string(),
            "sha256": entry.sha256,
            "bytes": entry.bytes,
            "precision": entry.precision,
            "input": entry.input,
            "preprocess": entry.preprocess,
            "outputs": entry.outputs,
        },
        "default_backbone": manifest.default,
        "known_backbones": manifest.models.iter().map(|m| &m.name).collect::<Vec<_>>(),
    });
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Json => writeln!(out, "{info}")?,
        Format::Text => {
            let p = &entry.preprocess;
            writeln!(
                out,
                "glance {} ({})",
                env!("CARGO_PKG_VERSION"),
                glance::BUILD_TARGET
            )?;
            writeln!(
                out,
                "backbone   {} from {}",
                entry.name,
                backbone.origin().display()
            )?;
            writeln!(out, "sha256     {}", entry.sha256)?;
            writeln!(out, "precision  {}", entry.precision)?;
            writeln!(out, "size       {:.2} MB", entry.bytes as f64 / 1e6)?;
            writeln!(
                out,
                "input      `{}` 1×3×{}×{} {:?}, resize {:?}, (x - {:?}) / {:?} on 0..255",
                entry.input, p.height, p.width, p.channel_order, p.resize, p.mean, p.std
            )?;
            writeln!(
                out,
                "outputs    {} ({}){}",
                entry.outputs.features.name,
                entry.outputs.features.dim,
                entry
                    .outputs
                    .logits
                    .as_ref()
                    .map(|l| format!(", {} ({})", l.name, l.dim))
                    .unwrap_or_default()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
