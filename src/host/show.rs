//! `glance-host show BUNDLE`: what is inside a bundle, for people (text) and programs (JSON).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{json, Value};

use crate::bundle::{Bundle, FeatureKind};

/// Sizes of a bundle's parts, in bytes of their postcard encoding.
fn size_breakdown(bundle: &Bundle) -> Vec<(&'static str, usize)> {
    let len = |v: Result<Vec<u8>, postcard::Error>| v.map_or(0, |b| b.len());
    vec![
        ("backbone ONNX", bundle.onnx.as_ref().map_or(0, Vec::len)),
        ("head", len(postcard::to_allocvec(&bundle.head))),
        ("kNN store", len(postcard::to_allocvec(&bundle.store))),
        ("labels", len(postcard::to_allocvec(&bundle.labels))),
        ("thresholds", len(postcard::to_allocvec(&bundle.thresholds))),
        ("split record", len(postcard::to_allocvec(&bundle.split))),
        (
            "calibration",
            len(postcard::to_allocvec(&bundle.calibration)),
        ),
        (
            "training info",
            len(postcard::to_allocvec(&bundle.training)),
        ),
    ]
}

/// Stored kNN examples of each class, in label order.
fn stored_per_class(bundle: &Bundle) -> Vec<usize> {
    let mut counts = vec![0; bundle.labels.len()];
    for &l in bundle.store.iter().flat_map(|s| &s.labels) {
        if let Some(n) = counts.get_mut(usize::from(l)) {
            *n += 1;
        }
    }
    counts
}

/// The values at 0, 10, …, 100 % of a sorted sample (empty for none).
fn deciles(sorted: &[f32]) -> Vec<f32> {
    if sorted.is_empty() {
        return Vec::new();
    }
    (0..=10)
        .map(|i| sorted[i * (sorted.len() - 1) / 10])
        .collect()
}

/// The bundle as one JSON object.
pub(super) fn describe(bundle: &Bundle, path: &Path, file_bytes: u64) -> Value {
    let store_counts = stored_per_class(bundle);
    let classes: Vec<Value> = bundle
        .labels
        .iter()
        .enumerate()
        .map(|(c, label)| {
            json!({
                "label": label,
                "training_images": bundle.calibration.as_ref().and_then(|k| k.examples.get(c)),
                "stored_examples": store_counts[c],
                "min_score": finite(bundle.thresholds.min_score.get(c).copied()),
                "max_distance": finite(bundle.thresholds.max_distance.get(c).copied()),
                "score_quantiles": bundle.calibration.as_ref().and_then(|k| k.score_quantiles.get(c)),
                "distance_quantiles": bundle.calibration.as_ref().and_then(|k| k.distance_quantiles.get(c)),
            })
        })
        .collect();
    let sizes: serde_json::Map<String, Value> = size_breakdown(bundle)
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "bundle": path.display().to_string(),
        "file_bytes": file_bytes,
        "backbone": {
            "name": bundle.backbone.name,
            "sha256": bundle.backbone.sha256,
            "feature_dim": bundle.backbone.feature_dim,
            "embedded": bundle.onnx.is_some(),
        },
        "features": match bundle.features {
            FeatureKind::Deep => "deep".to_string(),
            FeatureKind::Raw { size } => format!("raw {size}x{size}"),
        },
        "preprocess": bundle.preprocess,
        "head": {
            "classes": bundle.head.classes,
            "dim": bundle.head.dim,
            "temperature": bundle.head.temperature,
        },
        "store": bundle.store.as_ref().map(|s| json!({
            "examples": s.len(),
            "precision": format!("{:?}", s.precision()),
        })),
        "classes": classes,
        "drift": bundle.drift.as_ref().map(|d| json!({
            "images": d.images,
            "confidence_deciles": deciles(&d.confidence),
            "distance_deciles": deciles(&d.distance),
        })),
        "calibration": bundle.calibration.as_ref().map(|k| json!({
            "method": k.method,
            "folds": k.folds,
            "reject_percentile": k.reject_percentile,
        })),
        "split": bundle.split.as_ref().map(|s| json!({
            "test_fraction": s.test_fraction,
            "seed": s.seed,
            "per_class": s.per_class,
            "generated": s.generated,
            "training_images": s.train_hashes.len(),
        })),
        "training": {
            "dataset": bundle.training.dataset,
            "dataset_hash": bundle.training.dataset_hash,
            "created_unix": bundle.training.created_unix,
            "glance_version": bundle.training.glance_version,
            "train_examples": bundle.training.train_examples,
            "validation_examples": bundle.training.validation_examples,
            "metrics": bundle.training.metrics.iter()
                .map(|(k, v)| (k.clone(), json!(finite(Some(*v as f32)))))
                .collect::<serde_json::Map<String, Value>>(),
        },
        "sizes": sizes,
    })
}

fn finite(v: Option<f32>) -> Option<f32> {
    v.filter(|x| x.is_finite())
}

fn pct(v: Option<f32>) -> String {
    v.filter(|x| x.is_finite())
        .map_or("-".into(), |x| format!("{:.1}%", x * 100.0))
}

/// Prints what is inside the bundle at `path`.
pub fn show(path: &Path, as_json: bool) -> Result<ExitCode> {
    let bundle = Bundle::load(path)?;
    let file_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    if as_json {
        println!("{}", describe(&bundle, path, file_bytes));
        return Ok(ExitCode::SUCCESS);
    }
    let b = &bundle;
    println!(
        "{}: glance bundle, {:.2} MB",
        path.display(),
        file_bytes as f64 / 1e6
    );
    println!(
        "backbone: {} (sha256 {}), {}-d features, {}",
        b.backbone.name,
        b.backbone.sha256,
        b.backbone.feature_dim,
        if b.onnx.is_some() {
            "ONNX inside the bundle"
        } else {
            "ONNX referenced (pass --model or use a binary that embeds it)"
        }
    );
    match b.features {
        FeatureKind::Deep => println!("head on: deep features"),
        FeatureKind::Raw { size } => println!("head on: raw pixels {size}x{size}"),
    }
    println!(
        "preprocess: {}x{} {:?}, mean {:?}, std {:?}, {:?}",
        b.preprocess.width,
        b.preprocess.height,
        b.preprocess.resize,
        b.preprocess.mean,
        b.preprocess.std,
        b.preprocess.channel_order
    );
    println!(
        "head: {} classes x {} inputs, temperature {:.3}",
        b.head.classes, b.head.dim, b.head.temperature
    );
    match &b.calibration {
        Some(k) if k.method == "cross-validation" => println!(
            "thresholds: {}-fold cross-validated confidences and leave-one-out store distances, \
             at percentile {}",
            k.folds, k.reject_percentile
        ),
        Some(k) => println!(
            "thresholds: held-out validation images, at percentile {}",
            k.reject_percentile
        ),
        None => println!("thresholds: (version 1 bundle: calibration not recorded)"),
    }
    let w = b.labels.iter().map(|l| l.len()).max().unwrap_or(5).max(5);
    println!(
        "{:<w$}  {:>7}  {:>7}  {:>9}  {:>12}  {:>22}",
        "class", "images", "stored", "min score", "max distance", "held-out score p5/p50"
    );
    let stored_counts = stored_per_class(b);
    for (c, label) in b.labels.iter().enumerate() {
        let images = b
            .calibration
            .as_ref()
            .and_then(|k| k.examples.get(c))
            .map_or("-".into(), |n| n.to_string());
        let stored = stored_counts[c];
        let q = b
            .calibration
            .as_ref()
            .and_then(|k| k.score_quantiles.get(c));
        let p5_p50 = q.filter(|q| q.len() == 21).map_or("-".into(), |q| {
            format!("{} / {}", pct(Some(q[1])), pct(Some(q[10])))
        });
        let dist = b
            .thresholds
            .max_distance
            .get(c)
            .filter(|d| d.is_finite())
            .map_or("-".into(), |d| format!("{d:.3}"));
        println!(
            "{label:<w$}  {images:>7}  {stored:>7}  {:>9}  {dist:>12}  {p5_p50:>22}",
            pct(b.thresholds.min_score.get(c).copied()),
        );
    }
    match &b.split {
        Some(s) => println!(
            "split: {} training images recorded; test split {} (--split {} --seed {}{})",
            s.train_hashes.len(),
            if s.generated {
                "generated"
            } else {
                "given by the data"
            },
            s.test_fraction,
            s.seed,
            if s.per_class > 0 {
                format!(" --per-class {}", s.per_class)
            } else {
                String::new()
            }
        ),
        None => println!("split: (version 1 bundle: not recorded)"),
    }
    let t = &b.training;
    println!(
        "trained: {} with glance {} on {} ({} fitted, {} held out or cross-validated)",
        t.dataset, t.glance_version, t.created_unix, t.train_examples, t.validation_examples
    );
    let metrics: Vec<String> = t
        .metrics
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    println!("metrics: {}", metrics.join(", "));
    let sizes: Vec<String> = size_breakdown(b)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {:.1} kB", n as f64 / 1e3))
        .collect();
    println!("sizes: {}", sizes.join(", "));
    Ok(ExitCode::SUCCESS)
}
