//! The onnxruntime engine (`--engine ort`, cargo feature `ort`) against tract and against the
//! reference outputs recorded by Python's onnxruntime (scripts/models/make-fixtures.py).
//! libonnxruntime.so comes from the pinned onnxruntime wheel (scripts/python-env.sh, set up by
//! scripts/test.sh); without it these tests say SKIPPED, unless GLANCE_REQUIRE_ORT=1.

use std::path::Path;

use glance::{Backbone, EngineKind, EngineOptions, ModelSource};

use crate::util::*;

fn ort_options(library: &Path) -> EngineOptions {
    EngineOptions {
        kind: EngineKind::Ort,
        threads: 1,
        ort_library: Some(library.to_path_buf()),
        ..EngineOptions::default()
    }
}

fn load(model: &str, options: &EngineOptions) -> Backbone {
    Backbone::load(&ModelSource::File(model_file(model)), options)
        .unwrap_or_else(|e| panic!("{model} on {:?}: {e}", options.kind))
}

fn photo_tensor(path: &Path) -> Vec<f32> {
    let image = glance::decode_file(path, Default::default()).expect("decodes");
    let spec = int8w().preprocess_spec();
    glance::tensor_from_image(&image, spec).expect("tensor")
}

#[test]
fn ort_engine_reproduces_python_onnxruntime() {
    let Some(lib) = ort_library("ort_engine_reproduces_python_onnxruntime") else {
        return;
    };
    for (file, key) in [
        ("efficientnet_lite0_fp32.onnx", "efficientnet-lite0-fp32"),
        ("efficientnet_lite0_int8w.onnx", "efficientnet-lite0-int8w"),
    ] {
        let backbone = load(file, &ort_options(&lib));
        assert!(
            backbone.engine().starts_with("onnxruntime 1."),
            "{}",
            backbone.engine()
        );
        let tensors = reference()["tensors"].as_object().expect("tensors");
        for (name, models) in tensors {
            let out = backbone
                .run(tensor_of(&fixture(&format!("tensors/{name}"))))
                .expect("runs");
            let c = cosine(&out.features, &floats(&models[key]["features"]));
            assert!(
                c >= 0.99999,
                "{name} {key}: cosine {c} against Python's onnxruntime"
            );
        }
    }
}

#[test]
fn ort_and_tract_agree_on_the_photos() {
    let Some(lib) = ort_library("ort_and_tract_agree_on_the_photos") else {
        return;
    };
    for file in [
        "efficientnet_lite0_fp32.onnx",
        "efficientnet_lite0_int8w.onnx",
    ] {
        let tract = load(file, &EngineOptions::default());
        let ort = load(file, &ort_options(&lib));
        for photo in fixture_photos() {
            let tensor = photo_tensor(&photo);
            let a = tract.run(tensor.clone()).expect("tract runs");
            let b = ort.run(tensor).expect("onnxruntime runs");
            let c = cosine(&a.features, &b.features);
            eprintln!("{file} {}: feature cosine {c:.6}", photo.display());
            assert!(c >= 0.999, "{file} {}: feature cosine {c}", photo.display());
            let (la, lb) = (a.logits.expect("logits"), b.logits.expect("logits"));
            assert_eq!(
                argmax(&la),
                argmax(&lb),
                "{file} {}: top-1",
                photo.display()
            );
        }
    }
}

#[test]
fn ort_runs_the_int8_qdq_model() {
    let Some(lib) = ort_library("ort_runs_the_int8_qdq_model") else {
        return;
    };
    let qdq = load("efficientnet_lite0_qdq.onnx", &ort_options(&lib));
    let fp32 = load("efficientnet_lite0_fp32.onnx", &ort_options(&lib));
    // On x86-64 without VNNI, onnxruntime multiplies u8 × s8 with vpmaddubsw, whose 16-bit pair
    // sums saturate: the features drift much further from fp32's (onnxruntime 1.32.0 on an
    // AVX2-only EPYC: cosine 0.81–0.995, mean 0.946; with AVX-512 VNNI: every photo ≥ 0.97,
    // mean ≥ 0.99). The ranking check below holds on both.
    let (least, least_mean) = if x86_without_vnni() {
        (0.75, 0.90)
    } else {
        (0.97, 0.99)
    };
    let mut sum = 0.0;
    let photos = fixture_photos();
    for photo in &photos {
        let tensor = photo_tensor(photo);
        let q = qdq.run(tensor.clone()).expect("QDQ runs");
        let f = fp32.run(tensor).expect("fp32 runs");
        let c = cosine(&q.features, &f.features);
        eprintln!("qdq vs fp32 {}: feature cosine {c:.6}", photo.display());
        assert!(
            c >= least,
            "{}: QDQ feature cosine {c} vs fp32",
            photo.display()
        );
        sum += c;
        // Static int8 moves close calls, not clear ones: fp32's best class stays in QDQ's top 5.
        let ql = q.logits.expect("logits");
        let best = argmax(&f.logits.expect("logits"));
        let rank = ql.iter().filter(|&&v| v > ql[best]).count();
        assert!(
            rank < 5,
            "{}: fp32's top-1 is QDQ's #{}",
            photo.display(),
            rank + 1
        );
    }
    let mean = sum / photos.len() as f64;
    assert!(mean >= least_mean, "mean QDQ feature cosine {mean}");
}

/// An x86-64 CPU whose int8 dot products lack VNNI (AVX2-only Intel before Ice Lake, AMD before
/// Zen 4).
fn x86_without_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    return !(std::arch::is_x86_feature_detected!("avx512vnni")
        || std::arch::is_x86_feature_detected!("avxvnni"));
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[test]
fn a_missing_onnxruntime_is_an_error_naming_the_library() {
    let out = glance([
        "classify",
        "--engine",
        "ort",
        "--ort-library",
        "/nonexistent/libonnxruntime.so",
        fixture("photos/coffee.png").to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/libonnxruntime.so"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn classify_and_bench_run_on_onnxruntime() {
    let Some(lib) = ort_library("classify_and_bench_run_on_onnxruntime") else {
        return;
    };
    let lib = lib.to_str().expect("utf-8");
    let out = glance([
        "classify",
        "--engine",
        "ort",
        "--ort-library",
        lib,
        "--format",
        "json",
        fixture("photos/coffee.png").to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout_json_lines(&out);
    assert_eq!(lines[0]["label"], "espresso");
    let out = glance([
        "bench",
        "--engine",
        "ort",
        "--ort-library",
        lib,
        "--frames",
        "3",
        "--warmup",
        "1",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = &stdout_json_lines(&out)[0];
    let engine = v["engine"].as_str().expect("engine");
    assert!(engine.starts_with("onnxruntime 1."), "{engine}");
}

#[test]
fn host_extraction_on_onnxruntime_gives_tracts_features() {
    let Some(lib) = ort_library("host_extraction_on_onnxruntime_gives_tracts_features") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    two_class_photos(&dir.path().join("data"));
    let mut exported = Vec::new();
    for engine in ["tract", "ort"] {
        let out_dir = dir.path().join(engine);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_glance-host"))
            .args([
                "extract",
                "--no-cache",
                "-q",
                "--split",
                "0",
                "--engine",
                engine,
            ])
            .arg("--ort-library")
            .arg(&lib)
            .arg("--export")
            .arg(&out_dir)
            .arg(dir.path().join("data"))
            .output()
            .expect("glance-host runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        exported.push(npy_f32(&out_dir.join("train_features.npy")));
    }
    assert_eq!(exported[0].len(), fixture_photos().len() * 1280);
    assert_eq!(exported[0].len(), exported[1].len());
    for (a, b) in exported[0].chunks(1280).zip(exported[1].chunks(1280)) {
        let c = cosine(a, b);
        assert!(
            c >= 0.999,
            "feature cosine {c} between tract and onnxruntime extraction"
        );
    }
}

/// Without the logits (a bundle's head replaces them) tract drops the ImageNet classifier from
/// its graph; the features must not change.
#[test]
fn features_only_drops_the_logits_and_keeps_the_features() {
    let full = load("efficientnet_lite0_fp32.onnx", &EngineOptions::default());
    let lean = load(
        "efficientnet_lite0_fp32.onnx",
        &EngineOptions::default().for_features(),
    );
    assert!(full.entry().outputs.logits.is_some());
    assert!(lean.entry().outputs.logits.is_none());
    for path in fixture_photos().iter().take(2) {
        let a = full.run(photo_tensor(path)).expect("full graph runs");
        let b = lean
            .run(photo_tensor(path))
            .expect("features-only graph runs");
        assert_eq!(a.logits.as_ref().map(Vec::len), Some(1000));
        assert!(
            b.logits.is_none(),
            "{}: logits computed anyway",
            path.display()
        );
        let worst = a
            .features
            .iter()
            .zip(&b.features)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-6,
            "{}: features differ by {worst}",
            path.display()
        );
    }
}
