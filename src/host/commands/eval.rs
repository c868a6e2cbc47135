//! `eval`, `query` and `features`: a bundle against held-out data, the store's nearest examples
//! to an image, and raw feature vectors.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;

use super::{EvalJob, FeaturesJob, Format, QueryJob};
use crate::backbone::{Backbone, EngineOptions, ModelSource};
use crate::bundle::Bundle;
use crate::host::dataset::ItemSource;
use crate::preprocess::{self, DecodeLimits};

/// Evaluates a bundle on the data's test split.
pub fn eval(args: EvalJob) -> anyhow::Result<ExitCode> {
    let mut bundle = Bundle::load(&args.bundle)?;
    let labels = bundle.labels.clone();
    bundle
        .thresholds
        .apply_flags(&labels, &args.min_score, &args.max_distance)?;
    let ds = args.data.open_like(bundle.split.as_ref())?;
    let run = args.run.clone();
    let overlap = if args.allow_trained {
        crate::host::workbench::Overlap::Warn
    } else {
        crate::host::workbench::Overlap::Refuse
    };
    let (mut e, cases) =
        crate::host::workbench::evaluate_bundle(&bundle, &args.bundle, &ds, &run, overlap)?;
    let mut unknown_cases = Vec::new();
    if let Some(dir) = &args.unknown {
        let (open, u) = crate::host::workbench::open_set(&bundle, &args.bundle, &cases, dir, &run)?;
        e.open_set = Some(open);
        unknown_cases = u;
    }
    if let Some(path) = &args.predictions {
        let all: Vec<&crate::host::workbench::Case> = cases.iter().chain(&unknown_cases).collect();
        crate::host::report::predictions_csv(&bundle.labels, &all, path)?;
        eprintln!("predictions: {}", path.display());
    }

    let out = &mut io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(&e)?)?,
        Format::Text => write!(out, "{}", crate::host::report::text(&e))?,
    }
    if let Some(dir) = &args.report {
        let name = args
            .bundle
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        crate::host::report::html(&e, &cases, &unknown_cases, &name, dir)?;
        eprintln!("report: {}", dir.join("index.html").display());
    }
    Ok(if e.unreadable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The k most similar stored examples to an image.
pub fn query(args: QueryJob) -> anyhow::Result<ExitCode> {
    let bundle = Bundle::load(&args.bundle)?;
    let store = bundle
        .store
        .as_ref()
        .filter(|s| !s.is_empty())
        .with_context(|| format!("{}: the bundle has no kNN store", args.bundle.display()))?;
    let class = match &args.class {
        Some(name) => Some(
            bundle
                .labels
                .iter()
                .position(|l| l == name)
                .with_context(|| {
                    format!(
                        "no class `{name}` in the bundle (classes: {})",
                        bundle.labels.join(", ")
                    )
                })? as u16,
        ),
        None => None,
    };
    let image = preprocess::decode_file(&args.image, DecodeLimits::default())?;
    let backbone = crate::host::workbench::bundle_backbone(
        &bundle,
        &args.bundle,
        &args.model,
        &EngineOptions::default(),
    )?;
    let features = crate::host::extract::Extractor::new(bundle.features, backbone.as_ref())?
        .features(&image, crate::host::extract::View::Plain)?;
    let hits = store.search(&features, args.k.max(1), class);
    let out = &mut io::stdout().lock();
    for n in &hits {
        let source = &store.sources[n.row];
        let label = &bundle.labels[usize::from(n.label)];
        match args.format {
            Format::Json => writeln!(
                out,
                "{}",
                serde_json::json!({"rank": n.rank, "label": label, "distance": n.distance, "id": n.id, "source": source})
            )?,
            Format::Text => writeln!(
                out,
                "{:>3}  {:.4}  {label:<16} {source}",
                n.rank, n.distance
            )?,
        }
    }
    if let Some(sheet) = &args.sheet {
        let mut row = vec![crate::host::draw::Captioned {
            image: Some(image),
            caption: vec![
                "query".into(),
                crate::host::draw::short_name(&args.image.display().to_string()),
            ],
        }];
        let names: Vec<&str> = hits.iter().map(|n| store.sources[n.row].as_str()).collect();
        for (n, source) in hits.iter().zip(ItemSource::from_names(&names)) {
            row.push(crate::host::draw::Captioned {
                image: source
                    .ok()
                    .and_then(|s| s.load(DecodeLimits::default()).ok()),
                caption: vec![
                    format!("#{} {}", n.rank, bundle.labels[usize::from(n.label)]),
                    format!("d {:.3}", n.distance),
                    crate::host::draw::short_name(&store.sources[n.row]),
                ],
            });
        }
        let title = match class {
            Some(c) => format!("in {}", bundle.labels[usize::from(c)]),
            None => "all classes".into(),
        };
        crate::host::draw::captioned_sheet(&[(title, row)], sheet)?;
        eprintln!(
            "sheet: {} (the query first, then the neighbours by rank)",
            sheet.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the deep-feature vector of each image as a JSON line.
pub fn features(args: FeaturesJob) -> anyhow::Result<ExitCode> {
    let source = args.model.map_or(ModelSource::Embedded, ModelSource::File);
    let backbone =
        Backbone::load(&source, &EngineOptions::default()).context("cannot load the backbone")?;
    let name = backbone.entry().name.clone();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failures = 0usize;
    for item in crate::source::expand_paths(&args.images) {
        let result = item
            .map_err(|(p, e)| anyhow::anyhow!("{}: {e}", p.display()))
            .and_then(|path| {
                let image = preprocess::decode_file(&path, DecodeLimits::default())?;
                let tensor = preprocess::tensor_from_image(&image, backbone.preprocess_spec())?;
                Ok((path, backbone.run(tensor)?.features))
            });
        match result {
            Ok((path, features)) => {
                let line = serde_json::json!({"source": path.display().to_string(), "backbone": name, "features": features});
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
