//! The learning loop on real files: `glance run --capture` keeps the frames a bundle is unsure
//! of, `glance-host label` makes the folder a CSV to fill in and a contact sheet, and `fit
//! --add` refits with the labelled captures, here teaching the bundle a class it never saw.

use std::path::Path;

use serde_json::Value;

use crate::host::{crops, photo_dataset};
use crate::util::*;

/// The capture folder's `(pictures, sidecars)`.
fn count(dir: &Path) -> (usize, usize) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .expect("capture folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    (
        names.iter().filter(|n| n.ends_with(".jpg")).count(),
        names
            .iter()
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .count(),
    )
}

#[test]
fn unsure_frames_are_captured_labelled_and_refitted_into_a_new_class() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The bundle knows cat, coffee and camera (photo_dataset), …
    let data = tmp.path().join("data");
    photo_dataset(&data, 8, 2);
    let bundle = tmp.path().join("b1.glance");
    let cache = tmp.path().join("cache");
    let p = |x: &Path| x.to_string_lossy().into_owned();
    ok(&host([
        "fit",
        &p(&data),
        "--out",
        &p(&bundle),
        "--cache",
        &p(&cache),
        "-q",
    ]));
    // … and the board sees motorcycles, which it has never seen, beside cats.
    let frames = tmp.path().join("frames");
    std::fs::create_dir_all(&frames).expect("mkdir");
    for (i, img) in crops("chelsea.png", 3, 50).iter().enumerate() {
        img.save(frames.join(format!("cat-{i}.png"))).expect("save");
    }
    for (i, img) in crops("motorcycle_right.png", 9, 60).iter().enumerate() {
        img.save(frames.join(format!("moto-{i}.png")))
            .expect("save");
    }
    let cap = tmp.path().join("capture");
    // A margin of 1 makes every frame hesitant: each is kept, within the minute's allowance.
    let out = glance([
        "run",
        "--bundle",
        &p(&bundle),
        "--source",
        &p(&frames),
        "--format",
        "json",
        "--capture",
        &p(&cap),
        "--capture-margin",
        "1",
        "--capture-per-minute",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decisions: Vec<Value> = stdout_json_lines(&out)
        .into_iter()
        .filter(|v| v.get("label").is_some())
        .collect();
    assert_eq!(decisions.len(), 12);
    // Ten kept (the allowance), two over it; each picture has its sidecar.
    assert_eq!(count(&cap), (10, 10));
    let mut sidecars: Vec<Value> = std::fs::read_dir(&cap)
        .expect("capture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).expect("sidecar")).expect("JSON"))
        .collect();
    sidecars.sort_by_key(|v| v["seq"].as_u64());
    for s in &sidecars {
        let reasons = s["capture"]["reasons"].as_array().expect("reasons");
        assert!(reasons.contains(&Value::from("hesitant")), "{s}");
        assert!(s["top_k"].as_array().is_some_and(|t| t.len() >= 2), "{s}");
        assert!(s["knn"]["distance"].is_number(), "{s}");
    }

    // Labelling: a CSV with every capture and the board's suggestion, and a contact sheet.
    let said = ok(&host(["label", &p(&cap)]));
    assert!(said.contains("10 capture(s), 0 labelled"), "{said}");
    let csv_path = cap.join("labels.csv");
    let text = std::fs::read_to_string(&csv_path).expect("labels.csv");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(lines[0], "path,label,split,suggested,score,reasons");
    assert_eq!(lines.len(), 11);
    assert!(image::open(cap.join("labels.png")).is_ok());
    // Unlabelled, the folder is not yet a dataset.
    let out = host(["inspect", &p(&cap)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no labelled rows"));
    // The labeller fills in the label column from what each picture shows (here, the file the
    // frame came from).
    for line in lines.iter_mut().skip(1) {
        let stem = line.split(".jpg").next().expect("path");
        let s: Value = serde_json::from_slice(
            &std::fs::read(cap.join(format!("{stem}.json"))).expect("sidecar"),
        )
        .expect("JSON");
        let source = s["source"].as_str().expect("source");
        let label = if source.contains("moto-") {
            "motorcycle"
        } else {
            "cat"
        };
        let mut cells: Vec<&str> = line.split(',').collect();
        cells[1] = label;
        *line = cells.join(",");
    }
    std::fs::write(&csv_path, lines.join("\n") + "\n").expect("write labels");
    // Labelling again (more captures may have come) keeps every label filled in.
    let said = ok(&host(["label", &p(&cap)]));
    assert!(said.contains("10 capture(s), 10 labelled"), "{said}");
    let inspect = ok(&host(["inspect", &p(&cap), "--split", "0"]));
    assert!(inspect.contains("CSV manifest"), "{inspect}");

    // Refit with the captures: the bundle now knows motorcycles.
    let b2 = tmp.path().join("b2.glance");
    ok(&host([
        "fit",
        &p(&data),
        "--add",
        &p(&cap),
        "--out",
        &p(&b2),
        "--cache",
        &p(&cache),
        "-q",
    ]));
    let shown: Value =
        serde_json::from_str(&ok(&host(["show", &p(&b2), "--format", "json"]))).expect("JSON");
    let classes: Vec<&str> = shown["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .filter_map(|c| c["label"].as_str())
        .collect();
    assert_eq!(
        classes,
        ["camera", "cat", "coffee", "motorcycle"],
        "{shown}"
    );
    // New motorcycle frames, not among the captured ones, are decided as motorcycles.
    let fresh = tmp.path().join("fresh");
    std::fs::create_dir_all(&fresh).expect("mkdir");
    for (i, img) in crops("motorcycle_right.png", 4, 90).iter().enumerate() {
        img.save(fresh.join(format!("m{i}.png"))).expect("save");
    }
    let out = glance([
        "run",
        "--bundle",
        &p(&b2),
        "--source",
        &p(&fresh),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let labels: Vec<String> = stdout_json_lines(&out)
        .iter()
        .filter_map(|v| v["label"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(labels.len(), 4);
    let right = labels.iter().filter(|l| *l == "motorcycle").count();
    assert!(right >= 3, "{labels:?}");
}
