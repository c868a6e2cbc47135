//! Labelled image datasets: class folders (with or without train/test splits), CSV manifests,
//! IDX pairs (MNIST, Fashion-MNIST; gzipped or not), and `glance run --capture` folders once
//! labelled (their `labels.csv`, written by `glance-host label`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use sha2::{Digest, Sha256};

use crate::preprocess::{self, DecodeLimits};

mod idx;

pub(super) use idx::read_idx_images;
use idx::{find_idx, open_idx_dir, open_idx_file};

/// Which part of the data an example belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    /// Used to fit (a validation part is carved out of it).
    Train,
    /// Only for evaluation.
    Test,
}

impl Split {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// Greyscale images held in memory from an IDX file.
#[derive(Debug)]
pub struct IdxImages {
    /// The file they came from.
    pub path: PathBuf,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// `count × height × width` bytes.
    pub pixels: Vec<u8>,
}

/// Where one example's pixels come from.
#[derive(Debug, Clone)]
pub enum ItemSource {
    /// An image file.
    File(PathBuf),
    /// Image `index` of an IDX file.
    Idx(Arc<IdxImages>, usize),
}

impl ItemSource {
    /// A name for messages and galleries: the path, or `path#index`.
    pub fn name(&self) -> String {
        match self {
            ItemSource::File(p) => p.display().to_string(),
            ItemSource::Idx(idx, i) => format!("{}#{i}", idx.path.display()),
        }
    }

    /// Reads the example and returns its content key (sha256 of the encoded bytes, or of the
    /// raw IDX pixels), so that caches follow content, not names, with the undecoded payload.
    pub fn read(&self) -> crate::Result<([u8; 32], Payload)> {
        match self {
            ItemSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| crate::Error::Io {
                    path: path.clone(),
                    source,
                })?;
                let key: [u8; 32] = Sha256::digest(&bytes).into();
                Ok((key, Payload::Encoded(path.clone(), bytes)))
            }
            ItemSource::Idx(idx, i) => {
                let n = (idx.width * idx.height) as usize;
                let px = &idx.pixels[i * n..(i + 1) * n];
                let mut h = Sha256::new();
                h.update(b"idx");
                h.update(idx.width.to_le_bytes());
                h.update(idx.height.to_le_bytes());
                h.update(px);
                let gray = image::GrayImage::from_raw(idx.width, idx.height, px.to_vec())
                    .ok_or_else(|| crate::Error::Decode {
                        path: PathBuf::from(self.name()),
                        reason: "IDX image size mismatch".into(),
                        source: None,
                    })?;
                Ok((
                    h.finalize().into(),
                    Payload::Pixels(image::DynamicImage::ImageLuma8(gray).into_rgb8()),
                ))
            }
        }
    }

    /// Reads and decodes the example.
    pub fn load(&self, limits: DecodeLimits) -> crate::Result<RgbImage> {
        self.read()?.1.decode(limits)
    }

    /// Opens sources by their [`name`](Self::name)s (for galleries of stored examples),
    /// reading each IDX file once however many of its images are named.
    pub fn from_names(names: &[&str]) -> Vec<Result<Self>> {
        let mut idx_files: BTreeMap<&str, Arc<IdxImages>> = BTreeMap::new();
        names
            .iter()
            .map(|name| {
                if let Some((path, index)) = name.rsplit_once('#') {
                    if let Ok(i) = index.parse::<usize>() {
                        let images = match idx_files.get(path) {
                            Some(images) => images.clone(),
                            None => {
                                let images = Arc::new(read_idx_images(Path::new(path))?);
                                idx_files.insert(path, images.clone());
                                images
                            }
                        };
                        if i < images.pixels.len() / (images.width * images.height) as usize {
                            return Ok(ItemSource::Idx(images, i));
                        }
                    }
                }
                Ok(ItemSource::File(PathBuf::from(name)))
            })
            .collect()
    }
}

/// An example's content before decoding.
#[derive(Debug)]
pub enum Payload {
    /// Encoded image bytes from a file.
    Encoded(PathBuf, Vec<u8>),
    /// Pixels already in memory.
    Pixels(RgbImage),
}

impl Payload {
    /// Decodes to RGB.
    pub fn decode(self, limits: DecodeLimits) -> crate::Result<RgbImage> {
        match self {
            Payload::Encoded(path, bytes) => preprocess::decode_bytes(&bytes, &path, limits),
            Payload::Pixels(img) => Ok(img),
        }
    }
}

/// One labelled example.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its pixels.
    pub source: ItemSource,
    /// Class index into [`Dataset::classes`].
    pub label: usize,
    /// Its split.
    pub split: Split,
}

/// A loaded dataset description (pixels are read lazily).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// What the user pointed at.
    pub root: PathBuf,
    /// How it was read (for messages): `class folders`, `CSV manifest`, `IDX`.
    pub kind: &'static str,
    /// Class names, sorted.
    pub classes: Vec<String>,
    /// Every example.
    pub items: Vec<Item>,
    /// True when the test split was made by `--split` rather than given.
    pub split_generated: bool,
    /// Files in class folders of a photo format glance cannot decode (HEIC, raw), left out.
    pub unsupported: Vec<PathBuf>,
    /// The options it was opened with (the split a bundle records).
    pub opened_with: OpenOptions,
}

/// Options for opening a dataset.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Fraction held out as test when the data has no test split (0 = none).
    pub test_fraction: f64,
    /// Seed for that split.
    pub seed: u64,
    /// Keep at most this many examples per class and split (0 = all): a stratified subset.
    pub per_class: usize,
    /// Class names file (one per line) for IDX data.
    pub label_names: Option<PathBuf>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            test_fraction: 0.2,
            seed: 42,
            per_class: 0,
            label_names: None,
        }
    }
}

impl Dataset {
    /// Opens DATA: a folder with `train/` (and optionally `test/`) of class folders, a folder of
    /// class folders, a folder with IDX files, an IDX images file, or a `.csv` manifest.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self> {
        let mut ds = Self::read(path, opts)?;
        if !ds.items.iter().any(|i| i.split == Split::Test) && opts.test_fraction > 0.0 {
            split_test(&mut ds, opts.test_fraction, opts.seed);
            ds.split_generated = true;
        }
        if opts.per_class > 0 {
            subset(&mut ds, opts.per_class, opts.seed);
        }
        ds.opened_with = opts.clone();
        ds.check()?;
        Ok(ds)
    }

    /// What DATA holds, as it is: no split made, nothing checked.
    fn read(path: &Path, opts: &OpenOptions) -> Result<Self> {
        if !path.exists() {
            bail!("{}: no such file or folder", path.display());
        }
        Ok(if path.is_file() {
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                open_csv(path)?
            } else {
                open_idx_file(path, opts)?
            }
        } else if crate::host::label::has_labels(path) {
            open_csv(&path.join(crate::host::label::LABELS_CSV))?
        } else if crate::host::label::is_capture_folder(path) {
            bail!(
                "{}: a --capture folder with no labels yet: run `glance-host label {}` and fill \
                 in the label column of the {} it writes",
                path.display(),
                path.display(),
                crate::host::label::LABELS_CSV
            );
        } else if find_idx(path, "train").is_some() {
            open_idx_dir(path, opts)?
        } else if path.join("train").is_dir() {
            open_split_folders(path)?
        } else {
            open_class_folders(path)?
        })
    }

    /// Extra training data (`fit --add`): every example of DATA is for training, whatever its
    /// own split; checked once added to the main data ([`Self::add_training`]).
    pub fn open_extra(path: &Path, label_names: Option<PathBuf>) -> Result<Self> {
        let opts = OpenOptions {
            test_fraction: 0.0,
            label_names,
            ..OpenOptions::default()
        };
        let mut ds = Self::read(path, &opts)?;
        ds.opened_with = opts;
        Ok(ds)
    }

    /// Adds every example of `other` to the training split (`fit --add`: labelled captures
    /// beside the original data). Classes are matched by name; a class only `other` has is
    /// added.
    pub fn add_training(&mut self, other: Dataset) -> Result<()> {
        let mut classes = self.classes.clone();
        for c in &other.classes {
            if !classes.contains(c) {
                classes.push(c.clone());
            }
        }
        classes.sort();
        let remap = |old: &[String], label: usize| {
            classes.iter().position(|c| *c == old[label]).unwrap_or(0)
        };
        for item in &mut self.items {
            item.label = remap(&self.classes, item.label);
        }
        let added = other.items.len();
        self.items.extend(other.items.into_iter().map(|mut item| {
            item.label = remap(&other.classes, item.label);
            item.split = Split::Train;
            item
        }));
        self.unsupported.extend(other.unsupported);
        self.classes = classes;
        log::info!(
            "{}: {added} training example(s) added from {}",
            self.root.display(),
            other.root.display()
        );
        self.check()
    }

    /// Examples of one split.
    pub fn split(&self, split: Split) -> Vec<&Item> {
        self.items.iter().filter(|i| i.split == split).collect()
    }

    /// Counts per class for one split.
    pub fn counts(&self, split: Split) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for i in self.items.iter().filter(|i| i.split == split) {
            c[i.label] += 1;
        }
        c
    }

    fn check(&self) -> Result<()> {
        for name in &self.classes {
            crate::bundle::check_class_name(name)
                .with_context(|| format!("{}: class `{name}`", self.root.display()))?;
        }
        if self.classes.len() < 2 {
            bail!(
                "{}: found {} class(es); a classifier needs at least 2",
                self.root.display(),
                self.classes.len()
            );
        }
        let train = self.counts(Split::Train);
        for (c, &n) in train.iter().enumerate() {
            if n < 2 {
                bail!(
                    "{}: class `{}` has {n} training image(s); it needs at least 2 \
                     (one to fit, one to validate)",
                    self.root.display(),
                    self.classes[c]
                );
            }
        }
        Ok(())
    }
}

/// The image files of a folder, sorted, and the files of formats glance cannot decode.
fn list_images(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let unsupported = files
        .iter()
        .filter(|p| crate::source::has_unsupported_image_extension(p))
        .cloned()
        .collect();
    files.retain(|p| crate::source::has_image_extension(p));
    Ok((files, unsupported))
}

fn class_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            (!name.starts_with('.')).then_some((name, p))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The items of every class folder in `dir`, and the files left out as undecodable.
fn read_class_folders(
    dir: &Path,
    split: Split,
    classes: &[String],
) -> Result<(Vec<Item>, Vec<PathBuf>)> {
    let mut items = Vec::new();
    let mut left_out = Vec::new();
    for (name, path) in class_dirs(dir)? {
        let label = classes
            .iter()
            .position(|c| *c == name)
            .with_context(|| format!("{}: unexpected class folder", path.display()))?;
        let (files, unsupported) = list_images(&path)?;
        if files.is_empty() {
            let also = if unsupported.is_empty() {
                String::new()
            } else {
                format!(
                    "; its {} file(s) such as {} are of a format glance cannot decode \
                     (convert HEIC or raw photos to JPEG)",
                    unsupported.len(),
                    unsupported[0].display()
                )
            };
            bail!(
                "{}: class folder `{name}` has no images (expected files like .jpg, .png){also}",
                path.display()
            );
        }
        left_out.extend(unsupported);
        items.extend(files.into_iter().map(|f| Item {
            source: ItemSource::File(f),
            label,
            split,
        }));
    }
    Ok((items, left_out))
}

fn open_class_folders(root: &Path) -> Result<Dataset> {
    let classes: Vec<String> = class_dirs(root)?.into_iter().map(|(n, _)| n).collect();
    if classes.is_empty() {
        bail!(
            "{}: no class folders found (expected DATA/<class>/*.jpg, DATA/train/<class>/…, \
             an IDX pair or a .csv manifest)",
            root.display()
        );
    }
    let (items, unsupported) = read_class_folders(root, Split::Train, &classes)?;
    Ok(Dataset {
        root: root.to_path_buf(),
        kind: "class folders",
        classes,
        items,
        split_generated: false,
        unsupported,
        opened_with: OpenOptions::default(),
    })
}

fn open_split_folders(root: &Path) -> Result<Dataset> {
    let train_dir = root.join("train");
    let test_dir = root.join("test");
    let classes: Vec<String> = class_dirs(&train_dir)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    if test_dir.is_dir() {
        let test_classes: Vec<String> =
            class_dirs(&test_dir)?.into_iter().map(|(n, _)| n).collect();
        if test_classes != classes {
            let only_train: Vec<_> = classes
                .iter()
                .filter(|c| !test_classes.contains(c))
                .collect();
            let only_test: Vec<_> = test_classes
                .iter()
                .filter(|c| !classes.contains(c))
                .collect();
            bail!(
                "{}: train and test have different classes (only in train: {only_train:?}; \
                 only in test: {only_test:?})",
                root.display()
            );
        }
    }
    let (mut items, mut unsupported) = read_class_folders(&train_dir, Split::Train, &classes)?;
    if test_dir.is_dir() {
        let (test, left_out) = read_class_folders(&test_dir, Split::Test, &classes)?;
        items.extend(test);
        unsupported.extend(left_out);
    }
    Ok(Dataset {
        root: root.to_path_buf(),
        kind: "class folders with train/test",
        classes,
        items,
        split_generated: false,
        unsupported,
        opened_with: OpenOptions::default(),
    })
}

fn open_csv(path: &Path) -> Result<Dataset> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("{}: cannot read CSV", path.display()))?;
    let mut rows = Vec::new();
    let mut unlabelled = 0;
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", path.display(), n + 1))?;
        if n == 0 && rec.get(0) == Some("path") {
            continue; // header row
        }
        // A row still to be labelled (`glance-host label` writes them with an empty label).
        if rec.get(0).is_some_and(|f| !f.is_empty()) && rec.get(1).is_some_and(str::is_empty) {
            unlabelled += 1;
            continue;
        }
        let (file, label) = match (rec.get(0), rec.get(1)) {
            (Some(f), Some(l)) if !f.is_empty() && !l.is_empty() => (f, l),
            _ => bail!(
                "{}: line {}: expected `path,label[,split]`",
                path.display(),
                n + 1
            ),
        };
        let split = match rec.get(2).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("train") => Split::Train,
            Some("test") => Split::Test,
            Some(other) => bail!(
                "{}: line {}: split `{other}` is neither train nor test",
                path.display(),
                n + 1
            ),
        };
        let p = Path::new(file);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        };
        rows.push((full, label.to_string(), split));
    }
    if unlabelled > 0 {
        log::warn!(
            "{}: {unlabelled} row(s) with no label yet, left out",
            path.display()
        );
    }
    if rows.is_empty() {
        bail!(
            "{}: no labelled rows (fill in the label column: path,label[,split])",
            path.display()
        );
    }
    let mut classes: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    classes.sort();
    classes.dedup();
    let train_classes: std::collections::BTreeSet<_> = rows
        .iter()
        .filter(|r| r.2 == Split::Train)
        .map(|r| &r.1)
        .collect();
    let test_only: Vec<_> = rows
        .iter()
        .filter(|r| r.2 == Split::Test && !train_classes.contains(&r.1))
        .map(|r| r.1.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !test_only.is_empty() {
        bail!(
            "{}: labels {test_only:?} appear in test rows but never in train rows",
            path.display()
        );
    }
    let items = rows
        .into_iter()
        .map(|(p, l, split)| Item {
            source: ItemSource::File(p),
            label: classes.iter().position(|c| *c == l).unwrap_or(0),
            split,
        })
        .collect();
    Ok(Dataset {
        root: path.to_path_buf(),
        kind: "CSV manifest",
        classes,
        items,
        split_generated: false,
        unsupported: Vec::new(),
        opened_with: OpenOptions::default(),
    })
}

/// A small deterministic PRNG (SplitMix64) so that splits are the same on every machine.
#[derive(Debug, Clone)]
pub(super) struct SplitMix(pub u64);

impl SplitMix {
    /// Next value.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher–Yates shuffle.
    pub(super) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Indices of each class, in a seeded random order.
pub(super) fn stratified_order(labels: &[usize], classes: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut per: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        per[l].push(i);
    }
    let mut rng = SplitMix(seed);
    for v in &mut per {
        rng.shuffle(v);
    }
    per
}

fn split_test(ds: &mut Dataset, fraction: f64, seed: u64) {
    let labels: Vec<usize> = ds.items.iter().map(|i| i.label).collect();
    for idx in stratified_order(&labels, ds.classes.len(), seed) {
        // Leave at least 2 training examples per class.
        let n_test =
            ((idx.len() as f64 * fraction).round() as usize).min(idx.len().saturating_sub(2));
        for &i in &idx[..n_test] {
            ds.items[i].split = Split::Test;
        }
    }
}

fn subset(ds: &mut Dataset, per_class: usize, seed: u64) {
    let mut keep = vec![false; ds.items.len()];
    for split in [Split::Train, Split::Test] {
        let idx: Vec<usize> = (0..ds.items.len())
            .filter(|&i| ds.items[i].split == split)
            .collect();
        let labels: Vec<usize> = idx.iter().map(|&i| ds.items[i].label).collect();
        for order in stratified_order(&labels, ds.classes.len(), seed) {
            let mut chosen: Vec<usize> =
                order.into_iter().take(per_class).map(|j| idx[j]).collect();
            chosen.sort_unstable();
            for i in chosen {
                keep[i] = true;
            }
        }
    }
    let mut k = keep.into_iter();
    ds.items.retain(|_| k.next().unwrap_or(false));
}

/// Image sizes seen, with counts (for `inspect`).
pub(super) fn size_histogram(
    sizes: impl Iterator<Item = (u32, u32)>,
) -> BTreeMap<(u32, u32), usize> {
    let mut h = BTreeMap::new();
    for s in sizes {
        *h.entry(s).or_insert(0) += 1;
    }
    h
}
