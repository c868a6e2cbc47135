//! `glance-host`: datasets, cached extraction, fit, eval, query, compare, and bad input.

use std::path::{Path, PathBuf};
use std::process::Output;

use image::RgbImage;

use crate::util::*;

/// Crops of one photo: different views of the same object, so that a class is learnable.
pub(crate) fn crops(photo: &str, n: usize, seed: u32) -> Vec<RgbImage> {
    let img = glance::decode_file(&fixture(&format!("photos/{photo}")), Default::default())
        .expect("fixture decodes");
    let (w, h) = img.dimensions();
    (0..n)
        .map(|i| {
            let k = (i as u32 * 7919 + seed * 104_729) % 1000;
            let side = (w.min(h) as f64 * (0.55 + 0.3 * f64::from(k % 10) / 10.0)) as u32;
            let x = (w - side) * (k % 13) / 12;
            let y = (h - side) * (k % 7) / 6;
            let c = image::imageops::crop_imm(&img, x, y, side, side).to_image();
            if i % 2 == 1 {
                image::imageops::flip_horizontal(&c)
            } else {
                c
            }
        })
        .collect()
}

/// DATA/train/<class>/*.png and DATA/test/<class>/*.png from crops of three fixture photos.
pub(crate) fn photo_dataset(root: &Path, train: usize, test: usize) -> Vec<&'static str> {
    let classes = [
        ("cat", "chelsea.png"),
        ("coffee", "coffee.png"),
        ("camera", "camera.png"),
    ];
    for (ci, (class, photo)) in classes.iter().enumerate() {
        for (split, n, seed) in [
            ("train", train, 1 + ci as u32),
            ("test", test, 100 + ci as u32),
        ] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).expect("mkdir");
            for (i, img) in crops(photo, n, seed).iter().enumerate() {
                img.save(dir.join(format!("{i:02}.png"))).expect("save");
            }
        }
    }
    classes.iter().map(|c| c.0).collect()
}

#[test]
fn fit_eval_query_on_class_folders() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    photo_dataset(&data, 8, 4);
    let cache = tmp.path().join("cache");
    let bundle = tmp.path().join("photos.glance");
    let out = ok(&host([
        "fit",
        &p(&data),
        "--out",
        &p(&bundle),
        "--cache",
        &p(&cache),
        "-q",
        "--val-split",
        "0.25",
    ]));
    assert!(out.contains("3 classes"), "{out}");
    let json = ok(&host([
        "eval",
        &p(&bundle),
        &p(&data),
        "--cache",
        &p(&cache),
        "-q",
        "--format",
        "json",
    ]));
    let e: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
    assert_eq!(e["labels"], serde_json::json!(["camera", "cat", "coffee"]));
    assert_eq!(e["examples"], 12);
    assert!(e["accuracy"].as_f64().expect("accuracy") >= 0.9, "{e}");
    assert!(e["knn_accuracy"].as_f64().expect("knn") >= 0.9, "{e}");
    assert!(e["macro_f1"].as_f64().is_some());
    let confusion = e["confusion"].as_array().expect("confusion");
    assert_eq!(confusion.len(), 3);
    let total: u64 = confusion
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 12);
    assert_eq!(e["retrieval"].as_array().expect("retrieval").len(), 3);

    // Query: the nearest stored examples of a cat crop are cats; --class restricts the search.
    let query = data.join("test/cat/00.png");
    let lines = ok(&host([
        "query",
        &p(&bundle),
        &p(&query),
        "-k",
        "3",
        "--format",
        "json",
    ]));
    let hits: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["label"], "cat");
    assert_eq!(hits[0]["rank"], 1);
    assert!(hits[0]["distance"].as_f64() <= hits[1]["distance"].as_f64());
    let sheet = tmp.path().join("q.png");
    let lines = ok(&host([
        "query",
        &p(&bundle),
        &p(&query),
        "-k",
        "4",
        "--class",
        "coffee",
        "--format",
        "json",
        "--sheet",
        &p(&sheet),
    ]));
    assert!(
        lines.lines().all(|l| l.contains("\"label\":\"coffee\"")),
        "{lines}"
    );
    assert!(image::open(&sheet).is_ok());

    // The report: an HTML page and a heat map.
    let report = tmp.path().join("report");
    ok(&host([
        "eval",
        &p(&bundle),
        &p(&data),
        "--cache",
        &p(&cache),
        "-q",
        "--report",
        &p(&report),
    ]));
    let html = std::fs::read_to_string(report.join("index.html")).expect("report");
    assert!(html.contains("Confusion") && html.contains("Hesitant"));
    assert!(image::open(report.join("confusion.png")).is_ok());

    // The board runtime classifies with the bundle.
    let out = glance([
        "classify",
        "--bundle",
        &p(&bundle),
        "--format",
        "json",
        &p(&query),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout_json_lines(&out);
    assert_eq!(lines[0]["top_k"][0]["label"], "cat");
}

#[test]
fn cache_is_reused_and_a_torn_cache_resumes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    photo_dataset(&data, 3, 1);
    let cache = tmp.path().join("cache");
    let first = ok(&host(["extract", &p(&data), "--cache", &p(&cache), "-q"]));
    assert!(first.starts_with("12 feature vectors"), "{first}");
    let files: Vec<PathBuf> = std::fs::read_dir(&cache)
        .expect("cache")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let full = std::fs::metadata(&files[0]).expect("cache file").len();
    // Cut the file in the middle of a record, as a kill would; the next run keeps the complete
    // records, re-extracts the rest, and ends with the same file.
    let record = 32 + 4 * 1280;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .and_then(|f| f.set_len(full - 3 * record as u64 - 100))
        .expect("truncate");
    let second = host(["extract", &p(&data), "--cache", &p(&cache), "-q"]);
    ok(&second);
    assert_eq!(
        std::fs::metadata(&files[0]).expect("cache file").len(),
        full
    );
}

#[test]
fn inspect_counts_and_draws_a_contact_sheet() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    photo_dataset(&data, 4, 2);
    std::fs::write(
        data.join("train/cat/broken.png"),
        b"\x89PNG\r\n\x1a\nbroken",
    )
    .expect("write");
    let sheet = tmp.path().join("sheet.png");
    let out = host(["inspect", &p(&data), "--sheet", &p(&sheet)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unreadable files make inspect exit 1"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cat") && text.contains("unreadable: 1") && text.contains("broken.png"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("total") && l.contains("13") && l.contains('6')),
        "{text}"
    );
    let img = image::open(&sheet).expect("sheet");
    assert!(img.width() > 64 * 4 && img.height() > 64 * 3);
}

#[test]
fn csv_manifest_and_generated_split() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    photo_dataset(&data, 5, 0);
    let mut csv = String::from("path,label\n");
    for class in ["cat", "coffee"] {
        for i in 0..5 {
            csv.push_str(&format!("data/train/{class}/{i:02}.png,{class}\n"));
        }
    }
    std::fs::write(tmp.path().join("set.csv"), csv).expect("csv");
    let out = ok(&host([
        "inspect",
        &p(&tmp.path().join("set.csv")),
        "--split",
        "0.4",
    ]));
    assert!(
        out.contains("CSV manifest") && out.contains("held out"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("cat") && l.contains('3') && l.contains('2')),
        "{out}"
    );
}

#[test]
fn bad_datasets_get_clear_messages() {
    let tmp = tempfile::tempdir().expect("tmp");
    let err = |out: Output| {
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let s = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!s.contains("panicked"), "{s}");
        s
    };
    let missing = tmp.path().join("nope");
    assert!(err(host(["inspect", &p(&missing)])).contains("no such file or folder"));

    let data = tmp.path().join("empty-class");
    photo_dataset(&data, 3, 1);
    std::fs::create_dir_all(data.join("train/dog")).expect("mkdir");
    std::fs::create_dir_all(data.join("test/dog")).expect("mkdir");
    let s = err(host(["inspect", &p(&data)]));
    assert!(s.contains("dog") && s.contains("no images"), "{s}");

    let data = tmp.path().join("one-image");
    photo_dataset(&data, 3, 1);
    for f in ["01.png", "02.png"] {
        std::fs::remove_file(data.join("train/cat").join(f)).expect("rm");
    }
    let s = err(host(["inspect", &p(&data)]));
    assert!(s.contains("`cat` has 1 training image"), "{s}");

    let data = tmp.path().join("mismatch");
    photo_dataset(&data, 3, 1);
    std::fs::rename(data.join("test/cat"), data.join("test/kitten")).expect("mv");
    let s = err(host(["inspect", &p(&data)]));
    assert!(
        s.contains("different classes") && s.contains("kitten"),
        "{s}"
    );
}

#[test]
fn unreadable_training_images_are_skipped_with_a_warning() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    photo_dataset(&data, 4, 3);
    std::fs::write(
        data.join("train/coffee/zz-truncated.png"),
        &std::fs::read(fixture("photos/coffee.png")).unwrap()[..500],
    )
    .expect("write");
    let bundle = tmp.path().join("b.glance");
    let out = host(["fit", &p(&data), "--out", &p(&bundle), "--no-cache", "-q"]);
    let stderr = ok_with_stderr(&out);
    assert!(stderr.contains("zz-truncated.png"), "{stderr}");
    assert!(Path::new(&bundle).exists());
}

fn ok_with_stderr(out: &Output) -> String {
    ok(out);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn damaged_or_foreign_bundles_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    photo_dataset(&data, 3, 4);
    let cache = tmp.path().join("cache");
    let bundle = tmp.path().join("b.glance");
    ok(&host([
        "fit",
        &p(&data),
        "--out",
        &p(&bundle),
        "--cache",
        &p(&cache),
        "-q",
        "--external-backbone",
    ]));
    let bytes = std::fs::read(&bundle).expect("bundle");

    let truncated = tmp.path().join("truncated.glance");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).expect("write");
    let out = host([
        "eval",
        &p(&truncated),
        &p(&data),
        "--cache",
        &p(&cache),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));

    let mut flipped = bytes.clone();
    let i = bytes.len() - 40;
    flipped[i] ^= 0x10;
    let flipped_path = tmp.path().join("flipped.glance");
    std::fs::write(&flipped_path, &flipped).expect("write");
    let out = host([
        "eval",
        &p(&flipped_path),
        &p(&data),
        "--cache",
        &p(&cache),
        "-q",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("CRC mismatch"));

    // A bundle made with the fp32 backbone, evaluated with the (embedded) int8 one: refused.
    let fp32_bundle = tmp.path().join("fp32.glance");
    ok(&host([
        "fit",
        &p(&data),
        "--out",
        &p(&fp32_bundle),
        "--cache",
        &p(&cache),
        "-q",
        "--external-backbone",
        "--model",
        &p(&model_file("efficientnet_lite0_fp32.onnx")),
    ]));
    let out = host([
        "eval",
        &p(&fp32_bundle),
        &p(&data),
        "--cache",
        &p(&cache),
        "-q",
        "--model",
        &p(&model_file("efficientnet_lite0_int8w.onnx")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let s = String::from_utf8_lossy(&out.stderr);
    assert!(
        s.contains("made with backbone `efficientnet-lite0-fp32`"),
        "{s}"
    );
}

/// `fit --backbone lite1 --augment flip`: the bundle carries Lite1 (its bytes and its 240²
/// preprocessing), the head also fits a mirrored view of each fitted image (cached in a file of
/// its own), the store keeps the images alone unless `--store-augmented`, and `eval` runs the
/// bundle's backbone.
#[test]
fn fit_on_a_shipped_backbone_with_flipped_views() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    photo_dataset(&data, 8, 2);
    let cache = tmp.path().join("cache");
    let bundle = tmp.path().join("lite1.glance");
    let fit = |extra: &[&str]| {
        let mut args = vec![
            "fit".to_string(),
            p(&data),
            "--out".into(),
            p(&bundle),
            "--cache".into(),
            p(&cache),
            "-q".into(),
            "--backbone".into(),
            "lite1".into(),
            "--augment".into(),
            "flip".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        ok(&host(args))
    };
    // 8 training images a class, too few to hold some out: all 24 are fitted (and scored by
    // cross-validation), each with its mirrored view.
    let out = fit(&[]);
    assert!(
        out.contains("fitted on 24 images and 24 augmented views"),
        "{out}"
    );
    let v = show_json(&bundle);
    assert_eq!(v["backbone"]["name"], "efficientnet-lite1-int8w", "{v}");
    assert_eq!(v["backbone"]["embedded"], true);
    assert_eq!(v["preprocess"]["width"], 240, "{v}");
    assert_eq!(v["store"]["examples"], 24, "{v}");
    assert_eq!(v["training"]["metrics"]["augmented_views"], 24.0, "{v}");
    // One cache file for the images, one for their mirrored views.
    assert_eq!(std::fs::read_dir(&cache).expect("cache").count(), 2);
    let eval = ok(&host([
        "eval",
        &p(&bundle),
        &p(&data),
        "--cache",
        &p(&cache),
        "-q",
        "--format",
        "json",
    ]));
    let e: serde_json::Value = serde_json::from_str(&eval).expect("JSON");
    assert!(e["accuracy"].as_f64().expect("accuracy") >= 0.8, "{e}");

    let out = fit(&["--store-augmented"]);
    assert!(out.contains("24 augmented views"), "{out}");
    assert_eq!(show_json(&bundle)["store"]["examples"], 48);
    // Both were cached: nothing new extracted.
    assert_eq!(std::fs::read_dir(&cache).expect("cache").count(), 2);

    // A file and a shipped backbone at once, and an unknown name: refused before any work.
    let out = host([
        "fit",
        &p(&data),
        "--out",
        &p(&bundle),
        "--backbone",
        "lite2",
        "--model",
        &p(&model_file("efficientnet_lite0_fp32.onnx")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    let out = host([
        "fit",
        &p(&data),
        "--out",
        &p(&bundle),
        "--backbone",
        "lite9",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lite9"));
    let out = host(["fit", &p(&data), "--out", &p(&bundle), "--store-augmented"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--store-augmented needs --augment"));
}

/// `glance-host show BUNDLE --format json`.
fn show_json(bundle: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&host(["show", &p(bundle), "--format", "json"]))).expect("JSON")
}

/// `(right, total)`: the board binary's decisions on `bundle` for every image of `test_dir`'s
/// class folders (`classify --bundle`), right when the label is the folder's name.
fn board_score(bundle: &Path, test_dir: &Path) -> (usize, usize) {
    let (mut right, mut total) = (0, 0);
    for class in std::fs::read_dir(test_dir).expect("test dir") {
        let class = class.expect("entry").path();
        let label = class
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for img in std::fs::read_dir(&class).expect("class dir") {
            let img = p(&img.expect("entry").path());
            let out = glance(["classify", "--bundle", &p(bundle), "--format", "json", &img]);
            let d: serde_json::Value = serde_json::from_str(&ok(&out)).expect("a JSON decision");
            right += usize::from(d["label"] == label.as_str());
            total += 1;
        }
    }
    (right, total)
}

/// The feature vector the board binary computes for `photo` (`classify --with-features`), with
/// `extra` arguments (`--bundle B`, `--model F`).
fn board_features(extra: &[&str], photo: &str) -> Vec<f32> {
    let mut args = vec!["classify", "--format", "json", "--with-features"];
    args.extend_from_slice(extra);
    args.push(photo);
    let out = glance(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    d["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter_map(|x| x.as_f64().map(|x| x as f32))
        .collect()
}

/// `fit --resize squash`: the bundle carries the resize mode, the board prepares frames that way
/// (its features of a wide photo are the host's under that mode, not the centre crop's), the
/// mode has its own cache file, and a bad mode is refused with the problem named.
#[test]
fn a_resize_mode_is_carried_by_the_bundle_and_used_by_the_board() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    photo_dataset(&data, 8, 4);
    let cache = tmp.path().join("cache");
    let (data_s, cache_s) = (p(&data), p(&cache));
    let squash_path = tmp.path().join("squash.glance");
    let squash = p(&squash_path);
    let fit = |out: &str, extra: &[&str]| {
        let mut args = vec!["fit", &data_s, "--out", out, "--cache", &cache_s, "-q"];
        args.extend_from_slice(extra);
        ok(&host(args));
    };
    fit(&squash, &["--resize", "squash"]);
    let v = show_json(&squash_path);
    assert_eq!(v["preprocess"]["resize"], "squash", "{v}");
    // The host's features of a wide photo (451×300), stretched whole to 224².
    let wide = fixture("photos/chelsea.png");
    let one = tmp.path().join("one");
    two_class_photos(&one);
    let export = tmp.path().join("export");
    ok(&host([
        "extract",
        &p(&one),
        "--resize",
        "squash",
        "--split",
        "0",
        "--no-cache",
        "-q",
        "--export",
        &p(&export),
    ]));
    let paths = std::fs::read_to_string(export.join("train_paths.txt")).expect("paths");
    let row = paths
        .lines()
        .position(|l| l.ends_with("chelsea.png"))
        .expect("chelsea's row");
    let on_host = npy_f32(&export.join("train_features.npy"))[row * 1280..][..1280].to_vec();
    let on_board = board_features(&["--bundle", &squash], &p(&wide));
    let c = cosine(&on_board, &on_host);
    assert!(
        c > 0.9999,
        "board and host features under squash: cosine {c}"
    );
    let cropped = board_features(&[], &p(&wide));
    let c = cosine(&cropped, &on_host);
    assert!(
        c < 0.98,
        "squashed and centre-cropped features alike: cosine {c}"
    );
    // The default resize is another cache file.
    fit(&p(&tmp.path().join("crop.glance")), &[]);
    assert_eq!(std::fs::read_dir(&cache).expect("cache").count(), 2);
    let out = host([
        "fit",
        &data_s,
        "--out",
        &p(&tmp.path().join("bad.glance")),
        "--resize",
        "center-crop=1.5",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad crop fraction `1.5`"),
        "{err}"
    );
    assert!(!tmp.path().join("bad.glance").exists());
}

/// `fit --backbone lite0-ml`: a bundle on 1776 multi-level features, which the board binary
/// runs from the bundle's own bytes and decides the held-out photos with.
#[test]
fn multi_level_lite0_is_fitted_and_run_by_the_board() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    photo_dataset(&data, 8, 4);
    let bundle_path = tmp.path().join("ml.glance");
    let bundle = p(&bundle_path);
    ok(&host([
        "fit",
        &p(&data),
        "--out",
        &bundle,
        "--no-cache",
        "-q",
        "--backbone",
        "lite0-ml",
    ]));
    let v = show_json(&bundle_path);
    assert_eq!(v["backbone"]["name"], "efficientnet-lite0ml-int8w", "{v}");
    assert_eq!(v["backbone"]["feature_dim"], 1776, "{v}");
    let (right, total) = board_score(&bundle_path, &data.join("test"));
    assert!(total == 12 && right >= 10, "{right} of {total} right");
    assert_eq!(
        board_features(&["--bundle", &bundle], &p(&fixture("photos/coffee.png"))).len(),
        1776
    );
}

/// `--backbone lite0-160`: Lite0's file at a 160² input. The bundle carries the smaller side, its
/// features are not the 224² ones (another cache file), and the board binary runs it at 160²
/// and decides as the fit's own evaluation did.
#[test]
fn lite0_at_160_is_fitted_cached_apart_and_run_at_160_by_the_board() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    photo_dataset(&data, 8, 4);
    let cache = tmp.path().join("cache");
    let fit = |name: &str, extra: &[&str]| -> PathBuf {
        let bundle = tmp.path().join(format!("{name}{}.glance", extra.len()));
        let (data, bundle_s, cache) = (p(&data), p(&bundle), p(&cache));
        let mut args = vec!["fit", &data, "--out", &bundle_s, "--cache", &cache];
        args.extend_from_slice(&["-q", "--backbone", name]);
        args.extend_from_slice(extra);
        ok(&host(args));
        bundle
    };
    let small = fit("lite0-160", &[]);
    let v = show_json(&small);
    assert_eq!(v["backbone"]["name"], "efficientnet-lite0-int8w", "{v}");
    assert_eq!(
        (&v["preprocess"]["width"], &v["preprocess"]["height"]),
        (&serde_json::json!(160), &serde_json::json!(160)),
        "{v}"
    );
    fit("lite0", &[]);
    assert_eq!(std::fs::read_dir(&cache).expect("cache").count(), 2);
    // The board binary on the bundle tells the held-out photos apart, and says it runs at 160².
    let test_dir = data.join("test");
    let (right, total) = board_score(&small, &test_dir);
    assert!(
        total >= 12 && right * 10 >= total * 8,
        "{right} of {total} right"
    );
    // Its features are not the 224² ones of the same file.
    let photo = p(&test_dir.join("cat/00.png"));
    let features = |extra: &[&str]| board_features(extra, &photo);
    let (at160, at224) = (features(&["--bundle", &p(&small)]), features(&[]));
    assert_eq!((at160.len(), at224.len()), (1280, 1280));
    let c = cosine(&at160, &at224);
    assert!(c < 0.99, "160² and 224² features alike: cosine {c}");
    // A bundle that does not carry the file runs at 160² too, on the embedded backbone and on
    // the file given with --model.
    let external = fit("lite0-160", &["--external-backbone"]);
    let file = p(&model_file("efficientnet_lite0_int8w.onnx"));
    for extra in [vec![], vec!["--model", file.as_str()]] {
        let mut args = vec!["--bundle", external.to_str().expect("UTF-8 path")];
        args.extend(extra);
        let other = features(&args);
        let c = cosine(&other, &at160);
        assert!(c > 0.9999, "{args:?}: cosine {c} to the 160² features");
    }
    // onnxruntime only runs the graph at its exported 224²: refused at load, with the way out.
    #[cfg(feature = "ort")]
    if let Some(lib) = ort_library("lite0_at_160_is_fitted_cached_apart_and_run_at_160") {
        let out = glance([
            "classify",
            "--bundle",
            &p(&small),
            "--engine",
            "ort",
            "--ort-library",
            &p(&lib),
            &photo,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("use --engine tract"),
            "{err}"
        );
    }
}
