//! Bad input gets a message naming the file, the other images are still classified, and the
//! exit code is non-zero; nothing panics.

use std::path::Path;

use glance::Error;
use glance::{decode_file, DecodeLimits};

use crate::util::*;

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A valid PNG header declaring `side`×`side` RGB pixels, followed by a token IDAT: a
/// decompression bomb's opening, which must be refused from the header alone.
fn huge_png(side: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = side.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

struct BadFiles {
    _dir: tempfile::TempDir,
    truncated: std::path::PathBuf,
    empty: std::path::PathBuf,
    text_jpg: std::path::PathBuf,
    huge: std::path::PathBuf,
    missing: std::path::PathBuf,
}

fn bad_files() -> BadFiles {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read(fixture("photos/chelsea.png")).expect("fixture");
    let truncated = dir.path().join("truncated.png");
    std::fs::write(&truncated, &good[..good.len() / 3]).expect("write");
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").expect("write");
    let text_jpg = dir.path().join("notes.jpg");
    std::fs::write(&text_jpg, "this is a shopping list, not a photo\n").expect("write");
    let huge = dir.path().join("bomb.png");
    std::fs::write(&huge, huge_png(100_000)).expect("write");
    let missing = dir.path().join("no-such-file.png");
    BadFiles {
        truncated,
        empty,
        text_jpg,
        huge,
        missing,
        _dir: dir,
    }
}

fn name(p: &Path) -> String {
    p.file_name().expect("name").to_string_lossy().into_owned()
}

#[test]
fn bad_images_are_reported_and_good_ones_still_classified() {
    let bad = bad_files();
    let coffee = fixture("photos/coffee.png");
    let files = [
        &bad.truncated,
        &coffee,
        &bad.empty,
        &bad.text_jpg,
        &bad.huge,
        &bad.missing,
    ];
    let mut args: Vec<String> = vec!["classify".into(), "--format".into(), "json".into()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    let out = glance(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code must say something failed"
    );
    let lines = stdout_json_lines(&out);
    assert_eq!(lines.len(), 1, "only the good image gives a result");
    assert_eq!(lines[0]["label"].as_str(), Some("espresso"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    for p in [
        &bad.truncated,
        &bad.empty,
        &bad.text_jpg,
        &bad.huge,
        &bad.missing,
    ] {
        let n = name(p);
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&n) && l.contains("error")),
            "no error line names {n}:\n{stderr}"
        );
    }
}

#[test]
fn each_bad_file_gets_the_right_error_kind() {
    let bad = bad_files();
    let limits = DecodeLimits::default();
    assert!(matches!(
        decode_file(&bad.truncated, limits),
        Err(Error::Decode { .. })
    ));
    let empty = decode_file(&bad.empty, limits);
    assert!(matches!(&empty, Err(Error::Decode { reason, .. }) if reason.contains("empty")));
    assert!(matches!(
        decode_file(&bad.text_jpg, limits),
        Err(Error::Decode { .. })
    ));
    assert!(matches!(
        decode_file(&bad.missing, limits),
        Err(Error::Io { .. })
    ));
}

#[test]
fn decompression_bomb_is_refused_from_its_header() {
    let bad = bad_files();
    // ImageTooLarge comes from the header check, before any pixel buffer exists (a 100000²
    // RGB buffer would need 30 GB, more than this machine has, so reaching it would abort).
    match decode_file(&bad.huge, DecodeLimits::default()) {
        Err(Error::ImageTooLarge { path, reason }) => {
            assert_eq!(path, bad.huge);
            assert!(reason.contains("16384"), "{reason}");
        }
        other => panic!("expected ImageTooLarge, got {other:?}"),
    }
    // A tighter user limit refuses a real photo too.
    let tight = DecodeLimits {
        max_side: 64,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode_file(&fixture("photos/coffee.png"), tight),
        Err(Error::ImageTooLarge { .. })
    ));
}

#[test]
fn missing_model_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("efficientnet_lite0_int8w.onnx");
    let out = glance([
        "classify",
        "--model",
        &model.display().to_string(),
        &fixture("photos/coffee.png").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&model.display().to_string()), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn model_with_wrong_hash_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = std::fs::read(model_file("efficientnet_lite0_int8w.onnx")).expect("model");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let model = dir.path().join("efficientnet_lite0_int8w.onnx");
    std::fs::write(&model, &bytes).expect("write");
    let err = glance::Backbone::load(
        &glance::ModelSource::File(model.clone()),
        &Default::default(),
    )
    .expect_err("a flipped bit must be refused");
    assert!(matches!(err, Error::ModelHash { .. }), "{err}");
    let out = glance([
        "classify",
        "--model",
        &model.display().to_string(),
        &fixture("photos/coffee.png").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not match"), "{stderr}");

    // A file this build has never heard of is refused too, naming the file.
    let stranger = dir.path().join("stranger.onnx");
    std::fs::write(&stranger, b"not an onnx model").expect("write");
    let out = glance(["info", "--model", &stranger.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stranger.onnx"));
}
