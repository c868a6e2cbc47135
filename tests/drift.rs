//! Scene drift on real frames: a bundle's held-out distributions against the frames `glance
//! run` sees. More pictures of the things it was fitted on do not drift; the same pictures
//! darkened (a lamp gone out) or blurred (a fogged lens) do, and status says so.

use std::path::Path;

use image::RgbImage;
use serde_json::Value;

use crate::util::*;

const PHOTOS: [(&str, &str); 3] = [
    ("cat", "chelsea.png"),
    ("coffee", "coffee.png"),
    ("camera", "camera.png"),
];

/// `n` crops of a fixture photo at independent random places and sizes (45–90 % of the shorter
/// side), half of them mirrored: pictures of one thing as a camera or a phone takes them, each
/// independent of the others. (A grid of crops would lie farther from each other than a new
/// crop from the nearest of them, and no held-out reference would match new frames.)
fn random_crops(photo: &str, n: usize, seed: u64) -> Vec<RgbImage> {
    let img = glance::decode_file(&fixture(&format!("photos/{photo}")), Default::default())
        .expect("fixture decodes");
    let (w, h) = img.dimensions();
    let mut rng = crate::util::Rng(seed);
    let mut uniform = move || rng.uniform();
    (0..n)
        .map(|_| {
            let side = (f64::from(w.min(h)) * (0.45 + 0.45 * uniform())) as u32;
            let x = (f64::from(w - side) * uniform()) as u32;
            let y = (f64::from(h - side) * uniform()) as u32;
            let c = image::imageops::crop_imm(&img, x, y, side, side).to_image();
            if uniform() < 0.5 {
                image::imageops::flip_horizontal(&c)
            } else {
                c
            }
        })
        .collect()
}

/// `count` crops of each of the three photos, through `look`, into `dir`: in class folders
/// when `classes`, else all in `dir`.
fn pictures(
    dir: &Path,
    count: usize,
    seed: u64,
    classes: bool,
    look: impl Fn(&RgbImage) -> RgbImage,
) {
    for (c, (class, photo)) in PHOTOS.iter().enumerate() {
        let to = if classes {
            dir.join(class)
        } else {
            dir.to_path_buf()
        };
        std::fs::create_dir_all(&to).expect("mkdir");
        for (i, img) in random_crops(photo, count, seed + c as u64)
            .iter()
            .enumerate()
        {
            look(img)
                .save(to.join(format!("{c}-{i:03}.png")))
                .expect("save");
        }
    }
}

/// The last status of a `glance run` over `frames` that reports drift.
fn drift_status(bundle: &Path, frames: &Path, window: &str) -> Option<Value> {
    let out = glance([
        "run",
        "--bundle",
        &bundle.to_string_lossy(),
        "--source",
        &frames.to_string_lossy(),
        "--format",
        "json",
        "--heartbeat",
        "0.05",
        "--drift-window",
        window,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_json_lines(&out)
        .into_iter()
        .filter_map(|v| v.get("status").cloned())
        .rfind(|s| s.get("drift").is_some())
}

#[test]
fn darkened_or_blurred_frames_drift_and_the_same_scene_does_not() {
    let tmp = tempfile::tempdir().expect("tmp");
    // A few dozen photos a class, as the README advises.
    let data = tmp.path().join("data");
    pictures(&data, 25, 1, true, RgbImage::clone);
    let bundle = tmp.path().join("b.glance");
    ok(&host([
        "fit",
        &data.to_string_lossy(),
        "--split",
        "0",
        "--out",
        &bundle.to_string_lossy(),
        "--no-cache",
        "-q",
    ]));

    // New pictures of the same things: 35 of each, the last 90 in the window.
    let same = tmp.path().join("same");
    pictures(&same, 35, 500, false, RgbImage::clone);
    let s = drift_status(&bundle, &same, "90").expect("a status with drift");
    let d = &s["drift"];
    eprintln!("the same scene: {d}");
    assert_eq!(d["frames"], 90, "{s}");
    assert_eq!(d["drifting"], false, "{s}");
    assert_eq!(s["healthy"], true, "{s}");

    let dark = tmp.path().join("dark");
    pictures(&dark, 35, 500, false, |img| {
        let mut d = img.clone();
        for p in d.pixels_mut() {
            p.0 = p.0.map(|v| v / 5);
        }
        d
    });
    let s = drift_status(&bundle, &dark, "90").expect("a status with drift");
    eprintln!("darkened: {}", s["drift"]);
    assert_eq!(s["drift"]["drifting"], true, "{s}");
    assert_eq!(s["healthy"], false, "{s}");
    let problems = s["problems"].as_array().expect("problems");
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("scene drift"))),
        "{s}"
    );

    let blurred = tmp.path().join("blurred");
    pictures(&blurred, 35, 500, false, |img| {
        image::imageops::blur(img, 6.0)
    });
    let s = drift_status(&bundle, &blurred, "90").expect("a status with drift");
    eprintln!("blurred: {}", s["drift"]);
    assert_eq!(s["drift"]["drifting"], true, "{s}");

    // `--drift-window 0`: no watch, no drift in status.
    assert_eq!(drift_status(&bundle, &dark, "0"), None);
}
