//! Hostile files: bundles crafted with a valid CRC but impossible contents are refused with a
//! message naming the file, never a panic or a runaway allocation; labels that could forge
//! output lines are refused.

use std::path::Path;

use glance::{Bundle, FeatureKind};

use crate::util::*;

/// A small real deep-feature bundle: two classes of crops of two photos.
#[cfg(feature = "host")]
fn base_bundle(dir: &Path) -> Bundle {
    let data = dir.join("data");
    for (class, name) in [("cat", "chelsea.png"), ("coffee", "coffee.png")] {
        let img = glance::decode_file(&fixture(&format!("photos/{name}")), Default::default())
            .expect("fixture");
        std::fs::create_dir_all(data.join(class)).expect("mkdir");
        for i in 0..4u32 {
            let s = 200 + 40 * i;
            image::imageops::crop_imm(&img, 10 * i, 5 * i, s, s)
                .to_image()
                .save(data.join(class).join(format!("{i}.png")))
                .expect("save");
        }
    }
    let out_path = dir.join("base.glance");
    let out = host([
        "fit",
        &data.display().to_string(),
        "--split",
        "0",
        "--no-cache",
        "-q",
        "--out",
        &out_path.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Bundle::load(&out_path).expect("base bundle loads")
}

/// Saves `b` and classifies a photo with it: the bundle must be refused (exit 2) with `why`
/// in the message, and nothing may panic.
fn refused(dir: &Path, name: &str, b: &Bundle, why: &str) {
    let path = dir.join(format!("{name}.glance"));
    std::fs::write(&path, b.to_bytes().expect("serialises")).expect("write");
    let out = glance([
        "classify",
        "--bundle",
        &path.display().to_string(),
        &fixture("photos/coffee.png").display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{name}: exit {:?}, stderr {err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert!(
        err.contains(&path.display().to_string()),
        "{name}: the file is not named: {err}"
    );
    assert!(err.contains(why), "{name}: expected `{why}` in {err}");
}

#[test]
#[cfg(feature = "host")]
fn crafted_bundles_with_a_valid_crc_are_refused_not_panicked_on() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let base = base_bundle(dir);

    let mut b = base.clone();
    b.head.dim = 1 << 63;
    b.head.weights.clear();
    refused(dir, "wrapping-head", &b, "shapes disagree");

    let mut b = base.clone();
    b.head.dim = 1;
    b.head.weights = vec![0.0; b.head.classes];
    refused(
        dir,
        "head-dim-1",
        &b,
        "the head takes 1 inputs, the features have 1280",
    );

    let mut b = base.clone();
    b.features = FeatureKind::Raw { size: 20_000 };
    refused(dir, "raw-20000", &b, "the size must be 1 to 256");

    let mut b = base.clone();
    b.preprocess.width = 20_000;
    b.preprocess.height = 20_000;
    refused(dir, "input-20000", &b, "must be between 1 and 4096");

    let mut b = base.clone();
    b.preprocess.width = 0;
    b.preprocess.height = 0;
    refused(dir, "input-0", &b, "must be between 1 and 4096");

    for (name, label, why) in [
        ("label-empty", "", "class name is empty"),
        ("label-unknown", "unknown", "cannot be a class name"),
        (
            "label-newline",
            "cat\n#9 x: mug 99.0%",
            "control characters",
        ),
        ("label-escape", "\u{1b}[2Jcat", "control characters"),
    ] {
        let mut b = base.clone();
        b.labels[0] = label.into();
        refused(dir, name, &b, why);
    }

    let mut b = base.clone();
    b.head.weights[3] = f32::NAN;
    refused(dir, "nan-weight", &b, "not finite");

    let mut b = base.clone();
    b.thresholds.min_score[0] = f32::NAN;
    refused(dir, "nan-threshold", &b, "thresholds out of range");

    let mut b = base.clone();
    b.thresholds.max_distance[1] = -5.0;
    refused(dir, "negative-distance", &b, "thresholds out of range");

    let mut b = base.clone();
    if let Some(store) = b.store.as_mut() {
        store.dim = 1 << 62;
    }
    refused(dir, "wrapping-store", &b, "kNN store");

    // An ONNX graph whose output names no node: tract-onnx 0.23 panics on it.
    let mut b = base.clone();
    let mut onnx = b.onnx.clone().expect("the bundle carries its backbone");
    let at = onnx
        .windows(8)
        .rposition(|w| w == b"features")
        .expect("the graph's output is named `features`");
    onnx[at + 7] = b'z';
    b.backbone.sha256 = glance::sha256_hex(&onnx);
    b.onnx = Some(onnx);
    refused(dir, "dangling-output", &b, "is produced by no node");

    // The base bundle itself is fine, so the refusals above are the mutations'.
    let path = dir.join("base-again.glance");
    std::fs::write(&path, base.to_bytes().expect("serialises")).expect("write");
    let out = glance([
        "classify",
        "--bundle",
        &path.display().to_string(),
        &fixture("photos/coffee.png").display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn labels_that_could_forge_lines_are_refused_on_enrol_and_escaped_in_text() {
    use glance::Precision;
    use glance::Store;
    let mut store = Store::new("x", 2, 10, Precision::F32);
    for bad in ["a\nb", "\u{1b}[31mred", "unknown", ""] {
        assert!(
            store.add(bad, &[1.0, 0.0], String::new()).is_err(),
            "`{bad:?}` enrolled"
        );
    }
    assert!(store.add("mug", &[1.0, 0.0], String::new()).is_ok());
    assert_eq!(glance::printable("a\nb\u{1b}c"), "a\\nb\\u{1b}c");
    assert_eq!(glance::printable("plain"), "plain");
}

#[test]
fn flags_out_of_range_are_refused_not_panicked_on() {
    let coffee = fixture("photos/coffee.png").display().to_string();
    for beat in ["inf", "1e20", "1e30", "NaN", "-1"] {
        let out = glance(["run", "--source", &coffee, &format!("--heartbeat={beat}")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--heartbeat {beat}: {err}");
        assert!(
            err.contains("seconds must be a number from 0 to 86400"),
            "{err}"
        );
    }
    let out = glance(["classify", "--threads", "2000", &coffee]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--threads 2000: this machine has"), "{err}");
    #[cfg(feature = "host")]
    {
        let out = host(["monitor", "/nonexistent-port", "--timeout", "1e30"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains("--timeout 1e30"), "{err}");
    }
    for (flag, v) in [
        ("--min-score", "1.5"),
        ("--min-score", "NaN"),
        ("--max-distance", "3"),
    ] {
        let out = glance(["run", "--source", &coffee, flag, v]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {v}: {err}");
        assert!(err.contains("is outside"), "{flag} {v}: {err}");
    }
}

#[test]
fn a_tiny_file_declaring_a_huge_image_is_refused_against_the_whole_decode_budget() {
    // A 16×16 grey JPEG whose frame header is patched to declare 16000×16000: 244 MiB for the
    // decoder and 732 MiB more for the RGB copy, both under the 16384-pixel side limit, so
    // only a budget on the whole decode catches it.
    let grey = image::GrayImage::from_fn(16, 16, |x, y| image::Luma([(x * 16 + y) as u8]));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode_image(&grey)
        .expect("jpeg");
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    // FF C0, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 7].copy_from_slice(&16_000u16.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&16_000u16.to_be_bytes());
    assert!(bytes.len() < 1000);
    let err = glance::decode_bytes(&bytes, Path::new("bomb.jpg"), Default::default())
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        matches!(err, glance::Error::ImageTooLarge { .. }) && msg.contains("needs 976 MiB"),
        "{msg}"
    );
    // A board profile's smaller budget refuses what the default lets through.
    let rpi = glance::BoardProfile::load("rpi-armv7").expect("profile");
    let budget = u64::from(rpi.decode_budget_mb.expect("budget")) << 20;
    let photo = std::fs::read(fixture("photos/china.jpg")).expect("photo");
    // china.jpg is 640×427 RGB: 820 kB decoded.
    let tight = glance::DecodeLimits {
        max_alloc: 512 << 10,
        ..Default::default()
    };
    assert!(glance::decode_bytes(&photo, Path::new("china.jpg"), tight).is_err());
    let board = glance::DecodeLimits {
        max_alloc: budget,
        ..Default::default()
    };
    assert!(glance::decode_bytes(&photo, Path::new("china.jpg"), board).is_ok());
}

#[test]
fn a_device_that_is_not_a_camera_is_refused_at_start_not_retried_forever() {
    // /dev/null opens but answers no V4L2 ioctl; it never will be a camera.
    let out = glance(["run", "--source", "/dev/null"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/dev/null") && err.contains("not a camera"),
        "{err}"
    );
}

#[test]
fn a_camera_that_never_opens_is_given_up_after_the_wait() {
    // No such device, and never was: after --camera-wait the run ends with an error naming
    // it, instead of retrying forever while systemd hears that all is well.
    let mut child = crate::util::glance_command(["run", "--source", "/dev/video-glance-missing"])
        .args(["--camera-wait", "2", "--heartbeat", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn glance");
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("still retrying a camera that never opened after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/dev/video-glance-missing") && err.contains("--camera-wait"),
        "{err}"
    );
    // Out-of-range waits are refused like every other period.
    let out = glance(["run", "--source", "/dev/video0", "--camera-wait", "inf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--camera-wait"));
}

#[test]
#[cfg(feature = "all-formats")]
fn an_exr_header_declaring_huge_tiles_is_refused_before_decoding() {
    // Found by the image_decode fuzz target: 1.3 KB, a 16×12 data window and 3,014,720 × 64
    // tiles, which the exr decoder allocated whole (2.1 GB resident) before failing.
    let out = glance(["classify", &p(&fixture("hostile/exr-tile-bomb.exr"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("exr-tile-bomb.exr") && err.contains("OpenEXR header declares tiles"),
        "{err}"
    );
    let bytes = std::fs::read(fixture("hostile/exr-tile-bomb.exr")).expect("fixture");
    let declared = glance::exr_declared_bytes(&bytes).expect("a walkable header");
    assert!(declared > 2_000_000_000, "{declared}");
}
