//! Feature extraction for whole datasets: both cores, a progress bar, and an on-disk cache keyed
//! by backbone sha256 + preprocessing + file content, so that re-fitting or re-evaluating never
//! extracts again and an interrupted extraction resumes where it stopped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::backbone::Backbone;
use crate::bundle::FeatureKind;
use crate::preprocess::{self, DecodeLimits};

use super::dataset::Item;

const CACHE_MAGIC: &[u8; 8] = b"GLFEAT01";

/// How to turn an image into a feature vector.
pub(super) enum Extractor<'a> {
    /// Deep features from the backbone.
    Deep(&'a Backbone),
    /// Raw RGB pixels squashed to `size × size`, scaled to 0..1.
    Raw(u32),
}

impl<'a> Extractor<'a> {
    /// The extractor for `kind`; deep features need the backbone.
    pub(super) fn new(kind: FeatureKind, backbone: Option<&'a Backbone>) -> Result<Self> {
        match (kind, backbone) {
            (FeatureKind::Deep, Some(b)) => Ok(Extractor::Deep(b)),
            (FeatureKind::Deep, None) => bail!("deep features need a backbone"),
            (FeatureKind::Raw { size }, _) => Ok(Extractor::Raw(size)),
        }
    }

    /// Feature length.
    pub(super) fn dim(&self) -> usize {
        match self {
            Extractor::Deep(b) => b.entry().outputs.features.dim,
            Extractor::Raw(s) => 3 * (*s as usize) * (*s as usize),
        }
    }

    /// The bundle's description of these features.
    pub(super) fn kind(&self) -> FeatureKind {
        match self {
            Extractor::Deep(_) => FeatureKind::Deep,
            Extractor::Raw(size) => FeatureKind::Raw { size: *size },
        }
    }

    /// Features of one view of a decoded image.
    pub(super) fn features(&self, image: &image::RgbImage, view: View) -> crate::Result<Vec<f32>> {
        if view != View::Plain {
            return self.features(&view.apply(image), View::Plain);
        }
        match self {
            Extractor::Deep(b) => {
                let t = preprocess::tensor_from_image(image, b.preprocess_spec())?;
                Ok(b.run(t)?.features)
            }
            Extractor::Raw(size) => Ok(raw_pixels(image, *size)),
        }
    }

    /// What a cached vector depends on besides the image content: the backbone, the
    /// preprocessing, the decoder's revision (vectors decoded before EXIF orientation was
    /// applied must not be reused) and whether truncated JPEGs were let through (so that a
    /// vector cached with `--allow-truncated` never bypasses the check of a later run).
    /// A view other than the plain image adds its name (so plain vectors keep their cache).
    fn cache_identity(&self, limits: DecodeLimits, view: View) -> Option<String> {
        let view = match view {
            View::Plain => String::new(),
            v => format!("|view={}", v.name()),
        };
        match self {
            Extractor::Deep(b) => Some(format!(
                "deep|decode{}{}|{}|{}{view}",
                preprocess::DECODE_REVISION,
                if limits.allow_truncated {
                    "|truncated-allowed"
                } else {
                    ""
                },
                b.entry().sha256,
                serde_json::to_string(b.preprocess_spec()).unwrap_or_default()
            )),
            Extractor::Raw(_) => None, // cheaper to recompute than to cache
        }
    }
}

pub(super) use crate::preprocess::raw_pixels;

/// One way of showing an image to the backbone: as it is, or an augmented view of it. Views are
/// applied to the decoded image before the backbone's own preprocessing, and each has its own
/// cache file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// The image as it is.
    Plain,
    /// Mirrored left to right.
    Flip,
    /// A corner crop of [`CROP_SIDE`] of each side: 0 top left, 1 top right, 2 bottom left,
    /// 3 bottom right.
    Crop(u8),
}

/// Share of each side an augmentation crop keeps: the object stays in the frame, its position
/// and scale move (a 0.875 centre crop is then taken of it by the backbone's preprocessing).
pub(crate) const CROP_SIDE: f64 = 0.85;

impl View {
    /// The view of `image`.
    pub(crate) fn apply(self, image: &image::RgbImage) -> image::RgbImage {
        match self {
            View::Plain => image.clone(),
            View::Flip => image::imageops::flip_horizontal(image),
            View::Crop(corner) => {
                let (w, h) = image.dimensions();
                let cw = ((f64::from(w) * CROP_SIDE).round() as u32).clamp(1, w.max(1));
                let ch = ((f64::from(h) * CROP_SIDE).round() as u32).clamp(1, h.max(1));
                let x = if corner % 2 == 1 { w - cw } else { 0 };
                let y = if corner >= 2 { h - ch } else { 0 };
                image::imageops::crop_imm(image, x, y, cw, ch).to_image()
            }
        }
    }

    /// Its name in cache identities and store entries.
    pub(crate) fn name(self) -> String {
        match self {
            View::Plain => "plain".into(),
            View::Flip => "flip".into(),
            View::Crop(c) => format!("crop{CROP_SIDE}-{c}"),
        }
    }
}

/// The default cache folder: `$GLANCE_CACHE`, else `$XDG_CACHE_HOME/glance`, else `~/.cache/glance`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GLANCE_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("glance");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache").join("glance"))
        .unwrap_or_else(|| PathBuf::from(".glance-cache"))
}

/// An append-only file of `(content key, feature vector)` records for one backbone + spec.
pub(super) struct FeatureCache {
    map: HashMap<[u8; 32], Vec<f32>>,
    writer: CacheWriter,
}

/// The appending half of a [`FeatureCache`].
pub(super) struct CacheWriter {
    path: PathBuf,
    dim: usize,
    writer: BufWriter<File>,
    unflushed: usize,
}

impl FeatureCache {
    /// Opens (or creates) the cache file for `identity` in `dir`. A torn last record, left by an
    /// interrupted run, is cut off; every complete record is kept.
    pub(super) fn open(dir: &Path, identity: &str, dim: usize) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create cache folder", dir.display()))?;
        let digest = Sha256::digest(identity.as_bytes());
        let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("features-{name}.bin"));
        let mut header = CACHE_MAGIC.to_vec();
        header.extend_from_slice(&(dim as u32).to_le_bytes());
        header.extend_from_slice(&(identity.len() as u32).to_le_bytes());
        header.extend_from_slice(identity.as_bytes());
        let rec = 32 + 4 * dim;
        let mut map = HashMap::new();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open feature cache", path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("{}: cannot read feature cache", path.display()))?;
        let mut keep = header.len();
        if bytes.is_empty() {
            file.write_all(&header)?;
        } else if bytes.len() < header.len() || bytes[..header.len()] != header[..] {
            bail!(
                "{}: not a feature cache for this backbone and preprocessing; delete it or use \
                 another --cache folder",
                path.display()
            );
        } else {
            let body = &bytes[header.len()..];
            let complete = body.len() / rec;
            for r in body.chunks_exact(rec) {
                let mut key = [0u8; 32];
                key.copy_from_slice(&r[..32]);
                let v: Vec<f32> = r[32..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                map.insert(key, v);
            }
            keep += complete * rec;
            if keep < bytes.len() {
                log::warn!(
                    "{}: dropping a torn record left by an interrupted run",
                    path.display()
                );
                file.set_len(keep as u64)?;
                file.seek(SeekFrom::End(0))?;
            }
        }
        Ok(Self {
            map,
            writer: CacheWriter {
                path,
                dim,
                writer: BufWriter::new(file),
                unflushed: 0,
            },
        })
    }
}

impl CacheWriter {
    fn append(&mut self, key: &[u8; 32], v: &[f32]) -> Result<()> {
        if v.len() != self.dim {
            bail!("feature length {} ≠ cache's {}", v.len(), self.dim);
        }
        self.writer.write_all(key)?;
        for x in v {
            self.writer.write_all(&x.to_le_bytes())?;
        }
        self.unflushed += 1;
        if self.unflushed >= 64 {
            self.flush()?;
        }
        Ok(())
    }

    /// Pushes buffered records to the file.
    pub(super) fn flush(&mut self) -> Result<()> {
        self.writer
            .flush()
            .with_context(|| format!("{}: cannot write feature cache", self.path.display()))?;
        self.unflushed = 0;
        Ok(())
    }
}

/// Features of a list of examples. Unreadable ones are `None` and listed in `failures`.
pub(super) struct Extracted {
    /// One entry per example, in order.
    pub features: Vec<Option<Vec<f32>>>,
    /// `(example name, reason)` for every example that could not be read.
    pub failures: Vec<(String, String)>,
    /// Content key per example (zero for failures).
    pub keys: Vec<[u8; 32]>,
    /// How many came from the cache.
    pub cached: usize,
}

/// Settings for [`extract`].
pub(super) struct ExtractOptions<'a> {
    /// Cache folder, or `None` for no cache.
    pub cache_dir: Option<&'a Path>,
    /// Worker threads.
    pub threads: usize,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
    /// Decoder limits.
    pub limits: DecodeLimits,
    /// Which view of each image.
    pub view: View,
}

/// Extracts features for `items`, in parallel, through the cache.
pub(super) fn extract(
    items: &[&Item],
    extractor: &Extractor<'_>,
    opts: &ExtractOptions<'_>,
) -> Result<Extracted> {
    let (cached_map, mut writer) = match (
        opts.cache_dir,
        extractor.cache_identity(opts.limits, opts.view),
    ) {
        (Some(dir), Some(id)) => {
            let c = FeatureCache::open(dir, &id, extractor.dim())?;
            (Some(c.map), Some(c.writer))
        }
        _ => (None, None),
    };
    let n = items.len();
    let bar = if opts.progress {
        indicatif::ProgressBar::new(n as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} extracting [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut features: Vec<Option<Vec<f32>>> = vec![None; n];
    let mut keys = vec![[0u8; 32]; n];
    let mut failures = Vec::new();
    let mut cached = 0;
    let next = AtomicUsize::new(0);
    let cached_map = cached_map.as_ref();
    type Msg = (usize, Result<([u8; 32], Vec<f32>, bool), String>);
    let (tx, rx) = mpsc::sync_channel::<Msg>(256);
    let mut write_error: Option<anyhow::Error> = None;
    std::thread::scope(|scope| {
        for _ in 0..opts.threads.max(1) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let result = (|| -> crate::Result<([u8; 32], Vec<f32>, bool)> {
                    let (key, payload) = items[i].source.read()?;
                    if let Some(v) = cached_map.and_then(|m| m.get(&key)) {
                        return Ok((key, v.clone(), true));
                    }
                    let image = payload.decode(opts.limits)?;
                    Ok((key, extractor.features(&image, opts.view)?, false))
                })();
                if tx.send((i, result.map_err(|e| e.report()))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (i, result) in rx {
            bar.inc(1);
            match result {
                Ok((key, v, from_cache)) => {
                    keys[i] = key;
                    if from_cache {
                        cached += 1;
                    } else if let Some(w) = writer.as_mut() {
                        if let Err(e) = w.append(&key, &v) {
                            write_error.get_or_insert(e);
                        }
                    }
                    features[i] = Some(v);
                }
                Err(reason) => {
                    bar.suspend(|| log::warn!("skipping {}: {reason}", items[i].source.name()));
                    failures.push((items[i].source.name(), reason));
                }
            }
        }
    });
    bar.finish_and_clear();
    if let Some(w) = writer.as_mut() {
        w.flush()?;
    }
    if let Some(e) = write_error {
        return Err(e);
    }
    Ok(Extracted {
        features,
        failures,
        keys,
        cached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 10×6 image whose pixel (x, y) is (x, y, 7): every pixel says where it came from.
    fn coordinates() -> image::RgbImage {
        image::RgbImage::from_fn(10, 6, |x, y| image::Rgb([x as u8, y as u8, 7]))
    }

    #[test]
    fn a_flip_mirrors_left_to_right() {
        let f = View::Flip.apply(&coordinates());
        assert_eq!(f.dimensions(), (10, 6));
        for (x, y, p) in f.enumerate_pixels() {
            assert_eq!(p.0, [9 - x as u8, y as u8, 7]);
        }
    }

    #[test]
    fn each_crop_keeps_its_corner_and_85_percent_of_each_side() {
        let img = coordinates();
        // 85% of 10 and of 6, rounded: 9 (8.5 rounds up) and 5.
        for (corner, origin) in [(0u8, (0, 0)), (1, (1, 0)), (2, (0, 1)), (3, (1, 1))] {
            let c = View::Crop(corner).apply(&img);
            assert_eq!(c.dimensions(), (9, 5), "corner {corner}");
            assert_eq!(
                c.get_pixel(0, 0).0[..2],
                [origin.0, origin.1],
                "corner {corner}"
            );
        }
    }

    #[test]
    fn views_have_distinct_names() {
        let views = [
            View::Plain,
            View::Flip,
            View::Crop(0),
            View::Crop(1),
            View::Crop(2),
            View::Crop(3),
        ];
        let names: std::collections::HashSet<String> = views.iter().map(|v| v.name()).collect();
        assert_eq!(names.len(), views.len());
    }
}
