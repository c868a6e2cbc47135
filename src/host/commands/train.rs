//! `fit` and `compare`: heads on deep features or raw pixels, packed into bundles.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::bail;

use super::{
    report_failures, report_unsupported, train_options, CompareJob, FeatureChoice, FitJob, Format,
    StorePrecision,
};
use crate::bundle::FeatureKind;
use crate::host::dataset::Split;
use crate::knn::Precision;

/// Fits a head and packs a bundle.
pub fn fit(args: FitJob) -> anyhow::Result<ExitCode> {
    let mut ds = args.data.open()?;
    for extra in &args.add {
        let more = crate::host::dataset::Dataset::open_extra(extra, args.data.label_names.clone())?;
        ds.add_training(more)?;
    }
    let run = args.run.clone();
    let features = match args.features {
        FeatureChoice::Deep => FeatureKind::Deep,
        FeatureChoice::Raw => FeatureKind::Raw {
            size: args.head.raw_size,
        },
    };
    let mut opts = train_options(&args.head, features, &run, ds.opened_with.seed)?;
    opts.store_precision = match args.store_precision {
        StorePrecision::I8 => Precision::I8,
        StorePrecision::F32 => Precision::F32,
    };
    opts.store_per_class = args.store_per_class;
    if !(0.0..50.0).contains(&args.reject_percentile) {
        bail!(
            "--reject-percentile {} must be in [0, 50)",
            args.reject_percentile
        );
    }
    opts.reject_percentile = args.reject_percentile;
    opts.embed_backbone = !args.external_backbone;
    opts.augment = crate::host::workbench::views_of(&args.augment);
    opts.store_augmented = args.store_augmented;
    if opts.store_augmented && opts.augment.is_empty() {
        bail!("--store-augmented needs --augment");
    }
    let backbone = crate::host::workbench::backbone_for(features, &run)?;
    let (bundle, report) = crate::host::workbench::train(&ds, backbone.as_ref(), &run, &opts)?;
    report_failures(&report.failures);
    report_unsupported(&mut io::stderr().lock(), &ds)?;
    for w in &report.warnings {
        eprintln!("glance-host: warning: {w}");
    }
    bundle.save(&args.out)?;
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    let held_out = if report.calibration.method == "cross-validation" {
        format!(
            "calibrated by {}-fold cross-validation on all {}",
            report.calibration.folds, report.val_rows
        )
    } else {
        format!("validated on {}", report.val_rows)
    };
    let augmented = if report.augmented_rows > 0 {
        format!(" and {} augmented views", report.augmented_rows)
    } else {
        String::new()
    };
    println!(
        "{}: {} head on {} features, {} classes; fitted on {} images{augmented}, {held_out}",
        args.out.display(),
        match bundle.features {
            FeatureKind::Deep => "deep-feature",
            FeatureKind::Raw { .. } => "raw-pixel",
        },
        bundle.head.dim,
        bundle.labels.len(),
        report.train_rows,
    );
    println!(
        "{} accuracy {:.2}%, log-loss {:.4}, temperature {:.3}; {} iterations ({}); \
         extract {:.1} s, fit {:.1} s; store {} examples; bundle {:.2} MB",
        if report.calibration.method == "cross-validation" {
            "out-of-fold"
        } else {
            "validation"
        },
        report.fit.val_accuracy * 100.0,
        report.fit.val_loss,
        report.temperature,
        report.fit.iterations,
        report.fit.stopped,
        report.extract_seconds,
        report.fit_seconds,
        bundle.store.as_ref().map_or(0, |s| s.len()),
        size as f64 / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

/// Fits raw-pixel and deep-feature heads on the same split and compares them.
pub fn compare(args: CompareJob) -> anyhow::Result<ExitCode> {
    let ds = args.data.open()?;
    let run = args.run.clone();
    let test: Vec<_> = ds.split(Split::Test);
    if test.is_empty() {
        bail!(
            "{}: no test images to compare on (the data has no test split and --split is 0)",
            ds.root.display()
        );
    }
    let mut rows = Vec::new();
    let raw = FeatureKind::Raw {
        size: args.head.raw_size,
    };
    for features in [raw, FeatureKind::Deep] {
        let opts = train_options(&args.head, features, &run, ds.opened_with.seed)?;
        let backbone = crate::host::workbench::backbone_for(features, &run)?;
        let (bundle, report) = crate::host::workbench::train(&ds, backbone.as_ref(), &run, &opts)?;
        let extractor = crate::host::extract::Extractor::new(features, backbone.as_ref())?;
        let (m, _, _, _) = crate::host::workbench::feature_matrix(&test, &extractor, &run)?;
        let acc = crate::host::workbench::head_accuracy(&bundle, &m);
        rows.push((features, report, acc, m.rows(), bundle.head.dim));
    }
    let out = &mut io::stdout().lock();
    match args.format {
        Format::Json => {
            let v: Vec<_> = rows
                .iter()
                .map(|(f, r, acc, n, dim)| {
                    serde_json::json!({
                        "features": match f { FeatureKind::Deep => "deep", FeatureKind::Raw { .. } => "raw" },
                        "dim": dim, "test_accuracy": acc, "test_examples": n,
                        "val_accuracy": r.fit.val_accuracy, "fit_seconds": r.fit_seconds,
                        "extract_seconds": r.extract_seconds,
                    })
                })
                .collect();
            writeln!(out, "{}", serde_json::Value::Array(v))?;
        }
        Format::Text => {
            writeln!(
                out,
                "{:<14} {:>6} {:>10} {:>10} {:>9} {:>9}",
                "features", "dim", "val acc", "test acc", "extract", "fit"
            )?;
            for (f, r, acc, _, dim) in &rows {
                let name = match f {
                    FeatureKind::Deep => "deep (backbone)".to_string(),
                    FeatureKind::Raw { size: s } => format!("raw {s}×{s}"),
                };
                writeln!(
                    out,
                    "{name:<14} {dim:>6} {:>9.2}% {:>9.2}% {:>8.1}s {:>8.1}s",
                    r.fit.val_accuracy * 100.0,
                    acc * 100.0,
                    r.extract_seconds,
                    r.fit_seconds
                )?;
            }
            writeln!(
                out,
                "test split: {} images",
                rows.first().map_or(0, |r| r.3)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
