//! IDX pairs (MNIST, Fashion-MNIST; gzipped or not) as datasets.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::{Dataset, IdxImages, Item, ItemSource, OpenOptions, Split};

/// The Fashion-MNIST class names, in label order.
pub(crate) const FASHION_MNIST: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: corrupt gzip data", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads an IDX3 (unsigned byte) images file.
pub(crate) fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let data = read_maybe_gz(path)?;
    if data.len() < 16 || data[..4] != [0, 0, 8, 3] {
        bail!("{}: not an IDX3 unsigned-byte images file", path.display());
    }
    let be = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let (count, height, width) = (be(4) as usize, be(8), be(12));
    if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
        bail!(
            "{}: IDX images of {width}×{height} are not supported",
            path.display()
        );
    }
    let need = count
        .checked_mul((height as usize).saturating_mul(width as usize))
        .filter(|n| *n <= data.len() - 16)
        .with_context(|| {
            format!(
                "{}: header declares {count} images of {width}×{height}, but the file holds {} bytes",
                path.display(),
                data.len() - 16
            )
        })?;
    Ok(IdxImages {
        path: path.to_path_buf(),
        width,
        height,
        pixels: data[16..16 + need].to_vec(),
    })
}

/// Reads an IDX1 (unsigned byte) labels file.
pub(crate) fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let data = read_maybe_gz(path)?;
    if data.len() < 8 || data[..4] != [0, 0, 8, 1] {
        bail!("{}: not an IDX1 unsigned-byte labels file", path.display());
    }
    let count = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
    if data.len() - 8 < count {
        bail!("{}: truncated: {count} labels declared", path.display());
    }
    Ok(data[8..8 + count].to_vec())
}

pub(super) fn find_idx(dir: &Path, prefix: &str) -> Option<(PathBuf, PathBuf)> {
    for ext in ["", ".gz"] {
        let images = dir.join(format!("{prefix}-images-idx3-ubyte{ext}"));
        let labels = dir.join(format!("{prefix}-labels-idx1-ubyte{ext}"));
        if images.is_file() && labels.is_file() {
            return Some((images, labels));
        }
    }
    None
}

fn idx_class_names(root: &Path, max_label: u8, opts: &OpenOptions) -> Result<Vec<String>> {
    if let Some(file) = &opts.label_names {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read label names", file.display()))?;
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if names.len() <= usize::from(max_label) {
            bail!(
                "{}: {} names for labels up to {max_label}",
                file.display(),
                names.len()
            );
        }
        return Ok(names);
    }
    let lower = root.display().to_string().to_ascii_lowercase();
    if lower.contains("fashion") && max_label < 10 {
        return Ok(FASHION_MNIST.iter().map(|s| s.to_string()).collect());
    }
    Ok((0..=max_label).map(|l| l.to_string()).collect())
}

fn idx_items(images: IdxImages, labels: Vec<u8>, split: Split) -> Result<Vec<(u8, Item)>> {
    let n = images.pixels.len() / (images.width * images.height).max(1) as usize;
    if n != labels.len() {
        bail!(
            "{}: {n} images but {} labels in the matching labels file",
            images.path.display(),
            labels.len()
        );
    }
    let images = Arc::new(images);
    Ok(labels
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            (
                l,
                Item {
                    source: ItemSource::Idx(images.clone(), i),
                    label: usize::from(l),
                    split,
                },
            )
        })
        .collect())
}

pub(super) fn open_idx_dir(root: &Path, opts: &OpenOptions) -> Result<Dataset> {
    let (ti, tl) = find_idx(root, "train").context("no train IDX pair")?;
    let mut rows = idx_items(read_idx_images(&ti)?, read_idx_labels(&tl)?, Split::Train)?;
    if let Some((ei, el)) = find_idx(root, "t10k").or_else(|| find_idx(root, "test")) {
        rows.extend(idx_items(
            read_idx_images(&ei)?,
            read_idx_labels(&el)?,
            Split::Test,
        )?);
    }
    let max = rows.iter().map(|r| r.0).max().unwrap_or(0);
    let classes = idx_class_names(root, max, opts)?;
    Ok(Dataset {
        root: root.to_path_buf(),
        kind: "IDX",
        classes,
        items: rows.into_iter().map(|r| r.1).collect(),
        split_generated: false,
        unsupported: Vec::new(),
        opened_with: OpenOptions::default(),
    })
}

pub(super) fn open_idx_file(path: &Path, opts: &OpenOptions) -> Result<Dataset> {
    let name = path.to_string_lossy();
    if !name.contains("images-idx3") {
        bail!(
            "{}: not a dataset (expected a folder, a .csv manifest, or an IDX *-images-idx3-ubyte file)",
            path.display()
        );
    }
    let labels_path = PathBuf::from(name.replace("images-idx3", "labels-idx1"));
    let rows = idx_items(
        read_idx_images(path)?,
        read_idx_labels(&labels_path)?,
        Split::Train,
    )?;
    let max = rows.iter().map(|r| r.0).max().unwrap_or(0);
    Ok(Dataset {
        root: path.to_path_buf(),
        kind: "IDX",
        classes: idx_class_names(path, max, opts)?,
        items: rows.into_iter().map(|r| r.1).collect(),
        split_generated: false,
        unsupported: Vec::new(),
        opened_with: OpenOptions::default(),
    })
}
