//! A few dozen photos, as phones make them: EXIF orientation, truncated JPEGs, HEIC files,
//! calibration on tiny sets, the split a bundle remembers, rejections that say why, and the
//! inspection commands (`show`, `eval --predictions`).

use std::path::Path;
use std::process::Output;

use image::{DynamicImage, ImageEncoder, RgbImage};
use serde_json::Value;

use crate::util::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn photo(name: &str) -> RgbImage {
    glance::decode_file(&fixture(&format!("photos/{name}")), Default::default())
        .expect("fixture decodes")
}

/// A TIFF/EXIF block holding only the orientation tag (0x0112, SHORT) with value `o`.
fn exif_orientation(o: u8) -> Vec<u8> {
    vec![
        b'I', b'I', 0x2A, 0, 8, 0, 0, 0, // little-endian TIFF header, IFD at 8
        1, 0, // one entry
        0x12, 0x01, 3, 0, 1, 0, 0, 0, o, 0, 0, 0, // Orientation = o
        0, 0, 0, 0, // no next IFD
    ]
}

/// The stored pixels that EXIF orientation `o` turns into `upright` when displayed.
fn stored_for(upright: &RgbImage, o: u8) -> RgbImage {
    // 6 (rotate 90° clockwise to display) and 8 (270°) undo each other; the others are their
    // own inverse.
    let inverse = match o {
        6 => 8,
        8 => 6,
        other => other,
    };
    let mut img = DynamicImage::ImageRgb8(upright.clone());
    img.apply_orientation(image::metadata::Orientation::from_exif(inverse).expect("1..=8"));
    img.into_rgb8()
}

fn encode(img: &RgbImage, exif: Option<Vec<u8>>, jpeg: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let (w, h) = img.dimensions();
    if jpeg {
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
        if let Some(e) = exif {
            enc.set_exif_metadata(e).expect("jpeg exif");
        }
        enc.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .expect("jpeg");
    } else {
        let mut enc = image::codecs::png::PngEncoder::new(&mut out);
        if let Some(e) = exif {
            enc.set_exif_metadata(e).expect("png exif");
        }
        enc.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .expect("png");
    }
    out
}

#[test]
fn exif_orientation_is_applied_under_all_eight_tags() {
    let upright = photo("chelsea.png");
    let name = Path::new("phone.png");
    let limits = glance::DecodeLimits::default();
    let spec = int8w().preprocess_spec().clone();
    let features = |img: &RgbImage| {
        let t = glance::tensor_from_image(img, &spec).expect("tensor");
        int8w().run(t).expect("backbone").features
    };
    let upright_jpeg =
        glance::decode_bytes(&encode(&upright, None, true), name, limits).expect("decodes");
    let reference = features(&upright_jpeg);
    for o in 1..=8u8 {
        let stored = stored_for(&upright, o);
        if o >= 5 {
            assert_ne!(
                stored.dimensions(),
                upright.dimensions(),
                "orientation {o} transposes"
            );
        }
        // PNG is lossless: the decoded pixels are the upright photo's, exactly.
        let png = encode(&stored, Some(exif_orientation(o)), false);
        let decoded = glance::decode_bytes(&png, name, limits).expect("png decodes");
        assert!(
            decoded == upright,
            "PNG with orientation {o} is not upright after decoding"
        );
        // A phone's JPEG: the features match the upright photo's.
        let jpeg = encode(&stored, Some(exif_orientation(o)), true);
        let decoded = glance::decode_bytes(&jpeg, name, limits).expect("jpeg decodes");
        assert_eq!(
            decoded.dimensions(),
            upright.dimensions(),
            "orientation {o}"
        );
        let c = cosine(&features(&decoded), &reference);
        assert!(
            c >= 0.999,
            "orientation {o}: feature cosine {c:.5} to the upright photo"
        );
    }
}

#[test]
fn truncated_jpegs_are_refused_unless_allowed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let whole = encode(&photo("coffee.png"), None, true);
    assert_eq!(glance::jpeg_truncation(&whole), None);
    // Bytes after the end-of-image marker (camera trailers, USB padding) are allowed.
    let mut padded = whole.clone();
    padded.extend_from_slice(&[0u8; 64]);
    assert_eq!(glance::jpeg_truncation(&padded), None);
    for percent in [10usize, 50, 90] {
        let cut = &whole[..whole.len() * percent / 100];
        let path = tmp.path().join(format!("cut{percent}.jpg"));
        std::fs::write(&path, cut).expect("write");
        let out = glance(["classify", "--format", "json", &p(&path)]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{percent}%: {}",
            text(&out.stdout)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("truncated JPEG") && err.contains(&p(&path)),
            "{err}"
        );
        let out = glance([
            "classify",
            "--allow-truncated",
            "--format",
            "json",
            &p(&path),
        ]);
        assert!(
            out.status.success(),
            "{percent}% with --allow-truncated: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn heic_files_are_named_not_skipped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    for class in ["cat", "coffee"] {
        std::fs::create_dir_all(data.join(class)).expect("mkdir");
        let img = photo(if class == "cat" {
            "chelsea.png"
        } else {
            "coffee.png"
        });
        for i in 0..3 {
            img.save(data.join(class).join(format!("{i}.png")))
                .expect("save");
        }
    }
    std::fs::write(data.join("cat/IMG_0001.HEIC"), b"\0\0\0\x18ftypheic").expect("heic");
    let out = ok(&host(["inspect", &p(&data)]));
    assert!(
        out.contains("left out: 1 file(s)") && out.contains("1 HEIC"),
        "{out}"
    );
    assert!(out.contains("IMG_0001.HEIC"), "{out}");
    let out = glance(["classify", &p(&data.join("cat"))]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("IMG_0001.HEIC") && err.contains("HEIC photos"),
        "{err}"
    );
    // The three PNGs of the folder were still classified.
    assert_eq!(
        text(&out.stdout).lines().count(),
        3,
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn classify_recurses_into_class_folders_and_refuses_an_empty_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    for (class, name) in [("cat", "chelsea.png"), ("coffee", "coffee.png")] {
        std::fs::create_dir_all(data.join("train").join(class)).expect("mkdir");
        photo(name)
            .save(data.join("train").join(class).join("a.png"))
            .expect("save");
    }
    let lines = stdout_json_lines(&glance(["classify", "--format", "json", &p(&data)]));
    let sources: Vec<&str> = lines
        .iter()
        .map(|l| l["source"].as_str().expect("source"))
        .collect();
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert!(sources[0].ends_with("train/cat/a.png"), "{sources:?}");
    assert_eq!(lines[1]["label"], "espresso");
    let empty = tmp.path().join("empty/sub");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = glance(["classify", &p(&tmp.path().join("empty"))]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("no image files"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unknown_says_why_the_same_way_in_classify_and_run() {
    let coffee = fixture("photos/coffee.png");
    let lines = stdout_json_lines(&glance([
        "classify",
        "--format",
        "json",
        "--min-score",
        "0.999",
        &p(&coffee),
    ]));
    let l = &lines[0];
    assert_eq!(l["label"], "unknown", "{l}");
    assert_eq!(l["best_label"], "espresso", "{l}");
    assert_eq!(l["reject_reason"], "low_score", "{l}");
    assert!((l["reject_threshold"].as_f64().expect("threshold") - 0.999).abs() < 1e-6);
    let score = l["reject_value"].as_f64().expect("value");
    assert!(score > 0.5 && score < 0.999, "{l}");
    // An accepted label carries no rejection fields.
    let lines = stdout_json_lines(&glance(["classify", "--format", "json", &p(&coffee)]));
    assert!(lines[0].get("reject_reason").is_none(), "{}", lines[0]);

    let classify = text(&ok_out(glance(["classify", "--min-score", "0.999", &p(&coffee)])).stdout);
    let run = text(
        &ok_out(glance([
            "run",
            "--source",
            &p(&coffee),
            "--min-score",
            "0.999",
        ]))
        .stdout,
    );
    let phrase = "unknown (best espresso";
    let why = |s: &str| -> String {
        let at = s
            .find(phrase)
            .unwrap_or_else(|| panic!("no `{phrase}` in {s}"));
        s[at..].split(')').next().expect("phrase").to_owned()
    };
    assert_eq!(
        why(&classify),
        why(&run),
        "classify: {classify}\nrun: {run}"
    );
    assert!(
        why(&classify).contains("below its score threshold 99.9%"),
        "{classify}"
    );
}

fn ok_out(out: Output) -> Output {
    ok(&out);
    out
}

/// DATA/<class>/*.png: `n` crops of a photo per class (no train/test folders).
fn crop_classes(root: &Path, n: usize, classes: &[(&str, &str)]) {
    for (ci, (class, name)) in classes.iter().enumerate() {
        let img = photo(name);
        let (w, h) = img.dimensions();
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..n {
            let k = (i as u32 * 7919 + ci as u32 * 104_729) % 1000;
            let side = (w.min(h) as f64 * (0.55 + 0.3 * f64::from(k % 10) / 10.0)) as u32;
            let x = (w - side) * (k % 13) / 12;
            let y = (h - side) * (k % 7) / 6;
            let mut c = image::imageops::crop_imm(&img, x, y, side, side).to_image();
            if i % 2 == 1 {
                c = image::imageops::flip_horizontal(&c);
            }
            c.save(dir.join(format!("{i:02}.png"))).expect("save");
        }
    }
}

const THREE: [(&str, &str); 3] = [
    ("camera", "camera.png"),
    ("cat", "chelsea.png"),
    ("coffee", "coffee.png"),
];

fn show_json(bundle: &Path) -> Value {
    serde_json::from_str(ok(&host(["show", &p(bundle), "--format", "json"])).trim()).expect("JSON")
}

#[test]
fn a_tiny_fit_warns_with_numbers_and_has_no_nan() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    crop_classes(&data, 4, &THREE[1..]);
    let bundle = tmp.path().join("tiny.glance");
    let out = host([
        "fit",
        &p(&data),
        "--split",
        "0",
        "--out",
        &p(&bundle),
        "-q",
        "--no-cache",
    ]);
    let stdout = ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        !stdout.contains("NaN") && !stderr.contains("NaN"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("cross-validation"), "{stdout}");
    assert!(
        stderr.contains("few training images in 2 class(es) (cat 4, coffee 4)"),
        "{stderr}"
    );
    let s = show_json(&bundle);
    assert_eq!(s["calibration"]["method"], "cross-validation", "{s}");
    for c in s["classes"].as_array().expect("classes") {
        assert!(c["min_score"].as_f64().is_some(), "{c}");
        assert!(c["max_distance"].as_f64().is_some(), "{c}");
        assert_eq!(c["training_images"], 4);
    }
    // The temperature is fitted on held-out predictions with a prior: a few right answers do
    // not drive it to its bound (1/20), where the head was near-certain about anything.
    let t = s["head"]["temperature"].as_f64().expect("temperature");
    assert!(t > 0.2 && t < 5.0, "temperature {t}");
    // An image of neither class (a flower) is not taken for a cat or a coffee.
    let lines = stdout_json_lines(&glance([
        "classify",
        "--bundle",
        &p(&bundle),
        "--format",
        "json",
        &p(&fixture("photos/flower.jpg")),
    ]));
    assert_eq!(lines[0]["label"], "unknown", "{}", lines[0]);
}

#[test]
fn eval_remembers_the_split_and_refuses_trained_images() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    crop_classes(&data, 12, &THREE);
    let cache = tmp.path().join("cache");
    let bundle = tmp.path().join("b.glance");
    ok(&host([
        "fit",
        &p(&data),
        "--split",
        "0.5",
        "--seed",
        "7",
        "--out",
        &p(&bundle),
        "--cache",
        &p(&cache),
        "-q",
    ]));
    let s = show_json(&bundle);
    assert_eq!(s["split"]["training_images"], 18, "{s}");
    assert_eq!(s["split"]["seed"], 7);
    // The same split by default: 6 test images a class, none trained on.
    let csv = tmp.path().join("pred.csv");
    let e: Value = serde_json::from_str(
        ok(&host([
            "eval",
            &p(&bundle),
            &p(&data),
            "--cache",
            &p(&cache),
            "-q",
            "--format",
            "json",
            "--predictions",
            &p(&csv),
        ]))
        .trim(),
    )
    .expect("JSON");
    assert_eq!(e["examples"], 18, "{e}");
    let rows = std::fs::read_to_string(&csv).expect("csv");
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(
        lines[0],
        "path,true_label,predicted_label,score,nn_label,nn_distance,unknown,reject_reason"
    );
    assert_eq!(lines.len(), 19, "{rows}");
    assert!(lines[1..].iter().all(|l| l.contains(".png,")), "{rows}");
    // Another split puts trained images in the test set: refused, naming the count.
    let out = host([
        "eval",
        &p(&bundle),
        &p(&data),
        "--split",
        "0.9",
        "--cache",
        &p(&cache),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("were trained on by this bundle") && err.contains("--seed 7"),
        "{err}"
    );
    let out = host([
        "eval",
        &p(&bundle),
        &p(&data),
        "--split",
        "0.9",
        "--allow-trained",
        "--cache",
        &p(&cache),
        "-q",
    ]);
    ok(&out);
    assert!(
        text(&out.stderr).contains("WARNING"),
        "{}",
        text(&out.stderr)
    );
    // show prints the calibration and the split for people too.
    let shown = ok(&host(["show", &p(&bundle)]));
    for needle in [
        "cross-validated",
        "camera",
        "split: 18 training images",
        "sizes:",
    ] {
        assert!(shown.contains(needle), "`{needle}` missing in\n{shown}");
    }
}

#[test]
fn reject_percentile_moves_the_thresholds_and_a_class_named_unknown_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    crop_classes(&data, 10, &THREE);
    let cache = tmp.path().join("cache");
    let fit = |pct: &str, out: &Path| {
        ok(&host([
            "fit",
            &p(&data),
            "--reject-percentile",
            pct,
            "--out",
            &p(out),
            "--cache",
            &p(&cache),
            "-q",
        ]));
        show_json(out)
    };
    let (a, b) = (
        fit("0", &tmp.path().join("a.glance")),
        fit("30", &tmp.path().join("b.glance")),
    );
    let classes = |v: &Value| v["classes"].as_array().expect("classes").clone();
    for (ca, cb) in classes(&a).iter().zip(&classes(&b)) {
        let f = |c: &Value, k: &str| c[k].as_f64().expect("threshold");
        let (sa, sb) = (f(ca, "min_score"), f(cb, "min_score"));
        let (da, db) = (f(ca, "max_distance"), f(cb, "max_distance"));
        // Score thresholds may both sit at the ceiling (0.9) when the head is sure of every
        // held-out image; they never go down.
        assert!(
            sb >= sa,
            "percentile 30 must not lower the score threshold: {sa} -> {sb}"
        );
        assert!(
            db < da,
            "percentile 30 must lower the distance threshold: {da} -> {db}"
        );
    }
    std::fs::rename(data.join("coffee"), data.join("unknown")).expect("rename");
    let out = host(["inspect", &p(&data)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`unknown` cannot be a class name"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_workbench_names_truncated_photos_and_exports_paths_beside_the_arrays() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    crop_classes(&data, 3, &THREE[1..]);
    let whole = encode(&photo("chelsea.png"), None, true);
    std::fs::write(data.join("cat/zz-cut.jpg"), &whole[..whole.len() / 2]).expect("write");
    let export = tmp.path().join("export");
    let out = host([
        "extract",
        &p(&data),
        "--split",
        "0",
        "--no-cache",
        "-q",
        "--export",
        &p(&export),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("zz-cut.jpg") && err.contains("truncated JPEG"),
        "{err}"
    );
    let paths = std::fs::read_to_string(export.join("train_paths.txt")).expect("paths");
    let lines: Vec<&str> = paths.lines().collect();
    assert_eq!(lines.len(), 6, "{paths}");
    assert!(
        lines[0].ends_with("cat/00.png") && lines[5].ends_with("coffee/02.png"),
        "{paths}"
    );
    assert!(!paths.contains("zz-cut"), "{paths}");
    // The .npy rows are the paths' rows: 6 × 1280 f32 after a 128-byte header.
    let npy = std::fs::metadata(export.join("train_features.npy"))
        .expect("npy")
        .len();
    assert_eq!(npy, 128 + 6 * 1280 * 4);
    let out = host([
        "extract",
        &p(&data),
        "--split",
        "0",
        "--no-cache",
        "-q",
        "--allow-truncated",
        "--export",
        &p(&export),
    ]);
    ok(&out);
    let paths = std::fs::read_to_string(export.join("train_paths.txt")).expect("paths");
    assert_eq!(paths.lines().count(), 7, "{paths}");
}
