//! `glance classify` on real photos gives the ImageNet class onnxruntime gives
//! (tests/fixtures/reference.json, from scripts/models/make-fixtures.py).

use crate::util::*;

fn photo_names() -> Vec<String> {
    reference()["photos"]
        .as_object()
        .expect("photos")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn classify_json_gives_reference_labels() {
    let names = photo_names();
    let paths: Vec<_> = names
        .iter()
        .map(|n| fixture(&format!("photos/{n}")))
        .collect();
    let mut args = vec![
        "classify".into(),
        "--format".into(),
        "json".into(),
        "--top-k".into(),
        "3".into(),
    ];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let out = glance(&args);
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout_json_lines(&out);
    assert_eq!(lines.len(), names.len());
    for (name, line) in names.iter().zip(&lines) {
        assert!(line["source"]
            .as_str()
            .expect("source")
            .ends_with(name.as_str()));
        let label = line["label"].as_str().expect("label");
        let accepted: Vec<&str> = reference()["photos"][name]["accepted"]
            .as_array()
            .expect("accepted")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(
            accepted.contains(&label),
            "{name}: got {label}, expected one of {accepted:?}"
        );
        let score = line["score"].as_f64().expect("score");
        assert!(score > 0.0 && score <= 1.0);
        let top = line["top_k"].as_array().expect("top_k");
        assert_eq!(top.len(), 3);
        assert_eq!(top[0]["label"].as_str(), Some(label));
        assert!(top[0]["score"].as_f64() >= top[1]["score"].as_f64());
        for stage in ["decode", "preprocess", "backbone", "head", "total"] {
            assert!(
                line["timing_ms"][stage].as_f64().is_some(),
                "timing_ms.{stage} missing"
            );
        }
    }
}

#[test]
fn chelsea_is_a_cat_and_coffee_is_espresso() {
    let out = glance([
        "classify",
        "--format",
        "json",
        &fixture("photos/chelsea.png").display().to_string(),
        &fixture("photos/coffee.png").display().to_string(),
    ]);
    assert!(out.status.success());
    let lines = stdout_json_lines(&out);
    let cats = [
        "tabby",
        "tiger cat",
        "Egyptian cat",
        "Persian cat",
        "Siamese cat",
    ];
    assert!(cats.contains(&lines[0]["label"].as_str().expect("label")));
    assert_eq!(lines[1]["label"].as_str(), Some("espresso"));
}

#[test]
fn a_folder_is_expanded_and_text_output_names_each_file() {
    let out = glance(["classify", &fixture("photos").display().to_string()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), photo_names().len());
    assert!(text.contains("coffee.png: espresso"));
}

#[test]
fn info_reports_the_embedded_backbone() {
    let out = glance(["info", "--format", "json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model_file("manifest.json")).expect("manifest"),
    )
    .expect("JSON");
    assert_eq!(v["backbone"]["name"], manifest["default"]);
    let bytes = std::fs::read(model_file("efficientnet_lite0_int8w.onnx")).expect("model");
    assert_eq!(
        v["backbone"]["sha256"].as_str(),
        Some(glance::sha256_hex(&bytes).as_str())
    );
    assert_eq!(v["backbone"]["preprocess"]["width"], 224);
    assert!(v["build_target"].as_str().is_some_and(|t| !t.is_empty()));
}
