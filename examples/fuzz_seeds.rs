//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/<target>/`): small valid inputs
//! of every kind each target reads, made by glance's own writers, so the fuzzer starts from
//! inputs that get past the first checks. Rerun after a format change:
//!
//!   cargo run --example fuzz_seeds
//!
//! The files are committed; scripts/ci/fuzz.sh copies them to a scratch corpus before a run.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use glance::BackboneIdentity;
use glance::Store;
use glance::{Bundle, FeatureKind, Thresholds, TrainingInfo};
use glance::{ChannelOrder, PreprocessSpec, ResizeMode};
use glance::{FeatureNorm, LinearHead};
use glance::{KnnStore, Precision};
use glance_proto::{frame, Command, Label, Message, Reply};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(bytes);
    out
}

fn label(s: &str) -> Label {
    Label::try_from(s).unwrap_or_default()
}

fn picture() -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(16, 12, |x, y| {
        Rgb([(x * 16) as u8, (y * 20) as u8, ((x + y) * 8) as u8])
    }))
}

fn encoded(format: ImageFormat) -> Option<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    let image = match format {
        // Formats that store floats or need alpha.
        ImageFormat::OpenExr | ImageFormat::Hdr => DynamicImage::ImageRgb32F(picture().to_rgb32f()),
        ImageFormat::Farbfeld => DynamicImage::ImageRgba16(picture().to_rgba16()),
        ImageFormat::Ico => DynamicImage::ImageRgba8(picture().to_rgba8()),
        _ => picture(),
    };
    image.write_to(&mut out, format).ok()?;
    Some(out.into_inner())
}

fn bundle() -> Bundle {
    let mut store = KnnStore::new(4, Precision::F32);
    let _ = store.push(&[1.0, 0.0, 0.0, 0.0], 0, 0, "a.jpg".into());
    let _ = store.push(&[0.0, 1.0, 0.0, 0.0], 1, 1, "b.jpg".into());
    Bundle {
        backbone: BackboneIdentity {
            name: "seed".into(),
            sha256: "0".repeat(64),
            feature_dim: 4,
        },
        onnx: None,
        preprocess: PreprocessSpec {
            width: 8,
            height: 8,
            resize: ResizeMode::CenterCrop {
                crop_fraction: 0.875,
            },
            mean: [127.0; 3],
            std: [128.0; 3],
            channel_order: ChannelOrder::Rgb,
        },
        features: FeatureKind::Deep,
        labels: vec!["cat".into(), "dog".into()],
        head: LinearHead {
            classes: 2,
            dim: 4,
            weights: vec![1.0, 0.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.5],
            bias: vec![0.1, -0.1],
            norm: FeatureNorm::L2,
            temperature: 1.5,
        },
        thresholds: Thresholds {
            min_score: vec![0.6, 0.7],
            max_distance: vec![0.3, f32::INFINITY],
        },
        store: Some(store),
        training: TrainingInfo {
            dataset: "seed".into(),
            dataset_hash: String::new(),
            created_unix: 0,
            glance_version: env!("CARGO_PKG_VERSION").into(),
            train_examples: 2,
            validation_examples: 0,
            metrics: vec![("accuracy".into(), 1.0)],
        },
        split: None,
        calibration: None,
        drift: Some(glance::DriftReference::new(&[0.5, 0.9, 0.99], &[0.1, 0.3])),
    }
}

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let body = |file: &[u8]| file[glance::HEADER_LEN..].to_vec();

    // Bundles: the file (mode 0) and its body to be sealed as the current version (mode 1).
    let dir = root.join("bundle_open");
    let deep = bundle().to_bytes()?;
    let mut raw = bundle();
    raw.features = FeatureKind::Raw { size: 2 };
    raw.backbone.feature_dim = 12;
    raw.head.dim = 12;
    raw.head.weights = (0..24).map(|i| i as f32 / 24.0).collect();
    raw.store = None;
    let raw = raw.to_bytes()?;
    write(&dir, "deep", &with_mode(0, &deep))?;
    write(&dir, "deep-body", &with_mode(1, &body(&deep)))?;
    write(&dir, "raw-body", &with_mode(1, &body(&raw)))?;

    // Stores, f32 and int8.
    let dir = root.join("store_open");
    for (name, precision) in [("f32", Precision::F32), ("i8", Precision::I8)] {
        let mut store = Store::new(&"0".repeat(64), 4, 8, precision);
        store.add("mug", &[1.0, 0.5, 0.0, 0.0], "frame 1".into())?;
        store.add("cup", &[0.0, 0.5, 1.0, 0.0], "frame 2".into())?;
        let file = store.to_bytes()?;
        write(&dir, name, &with_mode(0, &file))?;
        write(&dir, &format!("{name}-body"), &with_mode(1, &body(&file)))?;
    }

    // Wire frames: commands and replies, back to back, with an idle delimiter and noise.
    let dir = root.join("wire_stream");
    let messages = [
        Message::Command {
            id: 1,
            command: Command::Enroll {
                label: label("mug"),
                frames: 5,
            },
        },
        Message::Command {
            id: 2,
            command: Command::SetThreshold {
                label: label("*"),
                value: 0.6,
            },
        },
        Message::Command {
            id: 3,
            command: Command::Status,
        },
        Message::Reply {
            id: 1,
            reply: Reply::Ok,
        },
    ];
    let mut stream = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let mut out = [0u8; frame::MAX_ENCODED + 1];
        let n = frame::encode(m, &mut out).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        write(&dir, &format!("message-{i}"), &out[..n])?;
        stream.extend_from_slice(&out[..n]);
        stream.push(0);
    }
    stream.extend_from_slice(b"noise\x01\x02\x00");
    write(&dir, "stream", &stream)?;

    // Commands: text and JSON lines, one bad line, and a postcard command.
    let dir = root.join("commands");
    write(
        &dir,
        "lines",
        b"enroll mug 5\nforget mug\nlist\nsave\nstatus\nset-threshold * 0.6\n\
          set-distance cat 0.4\n{\"command\":\"enroll\",\"label\":\"cup\",\"frames\":3,\"id\":7}\n\
          {\"command\":\"set-threshold\",\"label\":\"cat\",\"value\":0.55}\n\xff\xfe\n",
    )?;
    let pc = postcard::to_allocvec(&Command::SetDistance {
        label: label("cat"),
        value: 0.25,
    })?;
    write(&dir, "postcard", &pc)?;

    // Images in every format the decoder takes (flags byte first), and a JPEG cut short.
    let dir = root.join("image_decode");
    let formats = [
        ("jpg", ImageFormat::Jpeg),
        ("png", ImageFormat::Png),
        ("bmp", ImageFormat::Bmp),
        ("pnm", ImageFormat::Pnm),
        ("gif", ImageFormat::Gif),
        ("tif", ImageFormat::Tiff),
        ("webp", ImageFormat::WebP),
        ("tga", ImageFormat::Tga),
        ("ico", ImageFormat::Ico),
        ("qoi", ImageFormat::Qoi),
        ("hdr", ImageFormat::Hdr),
        ("exr", ImageFormat::OpenExr),
        ("ff", ImageFormat::Farbfeld),
    ];
    let mut jpeg = Vec::new();
    for (name, format) in formats {
        let Some(bytes) = encoded(format) else {
            eprintln!("fuzz_seeds: this build cannot write {name}; no seed for it");
            continue;
        };
        let flags = if format == ImageFormat::Tga { 2 } else { 0 };
        write(&dir, name, &with_mode(flags, &bytes))?;
        if format == ImageFormat::Jpeg {
            jpeg = bytes;
        }
    }
    write(&dir, "jpg-cut", &with_mode(0, &jpeg[..jpeg.len() * 2 / 3]))?;

    // MJPEG stream: two frames with garbage between (first byte: the chunk size).
    let dir = root.join("mjpeg_split");
    let mut mjpeg = vec![7u8];
    mjpeg.extend_from_slice(&jpeg);
    mjpeg.extend_from_slice(b"\xff\x00garbage\xff");
    mjpeg.extend_from_slice(&jpeg);
    write(&dir, "two-frames", &mjpeg)?;

    // A YUYV frame: width, height, stride (u32 LE), then the pixels.
    let dir = root.join("camera_frame");
    let mut yuyv = Vec::new();
    for v in [4u32, 2, 10] {
        yuyv.extend_from_slice(&v.to_le_bytes());
    }
    yuyv.extend((0..20).map(|i| (i * 13) as u8));
    write(&dir, "4x2-stride10", &yuyv)?;

    // Configuration text: the shipped board profiles and model manifest.
    let dir = root.join("config_text");
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(here.join("targets"))? {
        let path = entry?.path();
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            write(&dir, name, &std::fs::read(&path)?)?;
        }
    }
    write(
        &dir,
        "manifest.json",
        &std::fs::read(here.join("models/manifest.json"))?,
    )?;
    println!("fuzz_seeds: wrote {}", root.display());
    Ok(())
}
