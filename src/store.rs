//! The on-device store: examples enrolled on the board (`enroll LABEL`), searched by kNN beside
//! the bundle's head, and persisted across restarts.
//!
//! File layout, like the bundle's: the [`crate::envelope`] (magic, version, length, CRC) around
//! a postcard body. Saving writes a temporary file, fsyncs it,
//! moves the current file to `FILE.prev`, renames the temporary file over `FILE` and fsyncs the
//! folder. A `kill -9` at any instant therefore leaves `FILE` old or new, or (between the two
//! renames) no `FILE` but an intact `FILE.prev`; [`Store::load`] falls back to `FILE.prev` when
//! `FILE` is missing, truncated or corrupted, and says so.
//!
//! Capacity: a store holds at most `capacity` examples. Enrolling into a full store evicts the
//! oldest example of the label that has the most examples (ties: the label enrolled first), so a
//! new label always gets room and no label is starved by another's long enrollment.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::knn::{KnnStore, Precision};

/// First bytes of every store file.
pub const STORE_MAGIC: [u8; 8] = *b"GLANCEST";

/// Current store format version.
pub const STORE_VERSION: u32 = 1;

/// Enrolled examples with their labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Store {
    /// sha256 of the backbone whose features these are; another backbone's store is refused.
    pub backbone_sha256: String,
    /// Most examples kept.
    pub capacity: u32,
    /// Enrolled label names; the kNN store's class indices point here.
    pub labels: Vec<String>,
    /// Id given to the next enrolled example (ids only grow, so a smaller id is older).
    pub next_id: u32,
    /// The examples.
    pub knn: KnnStore,
}

/// Which file a store was loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// `FILE` itself.
    Current,
    /// `FILE.prev`, because `FILE` was missing or refused.
    Previous,
    /// Neither exists: a new, empty store.
    New,
}

/// A loaded store and how it was found.
#[derive(Debug)]
pub struct Loaded {
    /// The store.
    pub store: Store,
    /// Where it came from.
    pub generation: Generation,
    /// Why a file was passed over (empty when `FILE` loaded cleanly).
    pub warnings: Vec<String>,
}

/// What an enrollment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The new example's id.
    pub id: u32,
    /// The label of the example evicted to make room, if the store was full.
    pub evicted: Option<String>,
}

/// `FILE.prev`: the previous generation of a store file.
pub fn previous_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".prev");
    PathBuf::from(name)
}

impl Store {
    /// An empty store for `dim`-long features of the backbone with this sha256.
    pub fn new(backbone_sha256: &str, dim: usize, capacity: u32, precision: Precision) -> Self {
        Self {
            backbone_sha256: backbone_sha256.to_owned(),
            capacity,
            labels: Vec::new(),
            next_id: 0,
            knn: KnnStore::new(dim, precision),
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.knn.len()
    }

    /// True when nothing is enrolled.
    pub fn is_empty(&self) -> bool {
        self.knn.is_empty()
    }

    /// Index of `label`, if enrolled.
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// Examples per label, in label order.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut n = vec![0usize; self.labels.len()];
        for &l in &self.knn.labels {
            if let Some(c) = n.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        self.labels.iter().cloned().zip(n).collect()
    }

    /// Adds one example of `label` (see [`check_label`]), evicting per the capacity rule when
    /// full.
    pub fn add(&mut self, label: &str, features: &[f32], source: String) -> Result<Added> {
        if self.capacity == 0 {
            return Err(Error::InvalidSetting(
                "the store's capacity is 0; nothing can be enrolled".into(),
            ));
        }
        check_label(label)?;
        if features.len() != self.knn.dim {
            return Err(Error::InvalidSetting(format!(
                "features have {} values, the store holds {}",
                features.len(),
                self.knn.dim
            )));
        }
        let mut evicted = None;
        while self.len() >= self.capacity as usize {
            evicted = Some(self.evict_one());
        }
        let class = match self.label_index(label) {
            Some(i) => i,
            None => {
                if self.labels.len() >= usize::from(u16::MAX) {
                    return Err(Error::InvalidSetting("too many labels".into()));
                }
                self.labels.push(label.to_owned());
                self.labels.len() - 1
            }
        };
        let id = self.next_id;
        self.knn.push(features, class as u16, id, source)?;
        self.next_id = self.next_id.wrapping_add(1);
        Ok(Added { id, evicted })
    }

    /// Removes the oldest example of the most-populated label; returns that label.
    fn evict_one(&mut self) -> String {
        let counts = self.counts();
        let (victim, _) = counts
            .iter()
            .enumerate()
            .fold(
                (0usize, 0usize),
                |best, (i, (_, n))| {
                    if *n > best.1 {
                        (i, *n)
                    } else {
                        best
                    }
                },
            );
        // Rows are appended in enrollment order, so the first row of the label is its oldest.
        let mut done = false;
        self.knn.retain(|_, label, _| {
            if !done && usize::from(label) == victim {
                done = true;
                false
            } else {
                true
            }
        });
        let name = self.labels.get(victim).cloned().unwrap_or_default();
        self.drop_empty_labels();
        name
    }

    /// Removes every example of `label`; returns how many there were.
    pub fn forget(&mut self, label: &str) -> usize {
        let Some(class) = self.label_index(label) else {
            return 0;
        };
        let before = self.len();
        self.knn.retain(|_, l, _| usize::from(l) != class);
        self.drop_empty_labels();
        before - self.len()
    }

    /// Drops labels with no examples left and renumbers the rest.
    fn drop_empty_labels(&mut self) {
        let counts = self.counts();
        let mut remap = vec![u16::MAX; self.labels.len()];
        let mut kept = Vec::new();
        for (i, (name, n)) in counts.into_iter().enumerate() {
            if n > 0 {
                remap[i] = kept.len() as u16;
                kept.push(name);
            }
        }
        for l in &mut self.knn.labels {
            *l = remap[usize::from(*l)];
        }
        self.labels = kept;
    }

    /// The nearest example of every label, as (label index, cosine distance), `None` for none.
    pub fn nearest_per_label(&self, features: &[f32]) -> Vec<Option<f32>> {
        self.knn.nearest_per_class(features, self.labels.len())
    }

    /// Checks internal consistency (run after deserialising).
    pub fn validate(&self) -> Result<()> {
        self.knn.validate()?;
        for label in &self.labels {
            check_label(label)?;
        }
        if self
            .knn
            .labels
            .iter()
            .any(|&l| usize::from(l) >= self.labels.len())
        {
            return Err(Error::InvalidSetting("example label out of range".into()));
        }
        if self.len() > self.capacity as usize {
            return Err(Error::InvalidSetting(format!(
                "{} examples in a store of capacity {}",
                self.len(),
                self.capacity
            )));
        }
        Ok(())
    }

    /// Serialises inside the file envelope ([`crate::envelope`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let body = postcard::to_allocvec(self)
            .map_err(|e| Error::InvalidSetting(format!("cannot serialise store: {e}")))?;
        Ok(crate::envelope::seal(&STORE_MAGIC, STORE_VERSION, &body))
    }

    /// Parses bytes read from `path` (named in messages).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Store {
            path: path.to_path_buf(),
            reason,
        };
        let body =
            crate::envelope::open(bytes, &STORE_MAGIC, STORE_VERSION, "store").map_err(bad)?;
        let store: Store =
            postcard::from_bytes(body).map_err(|e| bad(format!("undecodable body: {e}")))?;
        store.validate().map_err(|e| bad(e.to_string()))?;
        Ok(store)
    }

    /// Reads one store file and checks that it belongs to this backbone and feature length.
    pub fn read(path: &Path, backbone_sha256: &str, dim: usize) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Self::from_bytes(&bytes, path)?;
        if store.backbone_sha256 != backbone_sha256 || store.knn.dim != dim {
            return Err(Error::Store {
                path: path.to_path_buf(),
                reason: format!(
                    "made with backbone sha256 {} ({}-d features), but the backbone in use is \
                     {backbone_sha256} ({dim}-d)",
                    store.backbone_sha256, store.knn.dim
                ),
            });
        }
        Ok(store)
    }

    /// Loads `path`, else its previous generation, else a new store made by `fresh`.
    ///
    /// Both generations refused (as opposed to missing) is an error: starting empty would
    /// silently throw away what the user enrolled, and the next save would overwrite it.
    pub fn load(
        path: &Path,
        backbone_sha256: &str,
        dim: usize,
        fresh: impl FnOnce() -> Store,
    ) -> Result<Loaded> {
        crate::fsutil::remove_stale_temps(path);
        let mut warnings = Vec::new();
        let mut refused = Vec::new();
        for (file, generation) in [
            (path.to_path_buf(), Generation::Current),
            (previous_path(path), Generation::Previous),
        ] {
            if !file.exists() {
                continue;
            }
            match Self::read(&file, backbone_sha256, dim) {
                Ok(store) => {
                    if generation == Generation::Previous && path.exists() {
                        // The refused current file must not be rotated into `.prev` by the next
                        // save, which would delete the only good generation: keep it aside.
                        let aside = corrupt_path(path);
                        match std::fs::rename(path, &aside) {
                            Ok(()) => warnings.push(format!(
                                "{} was refused and is kept as {}",
                                path.display(),
                                aside.display()
                            )),
                            Err(e) => {
                                return Err(Error::Store {
                                    path: path.to_path_buf(),
                                    reason: format!(
                                        "refused, and it cannot be moved aside to {} ({e}); the \
                                         next save would replace the good previous generation",
                                        aside.display()
                                    ),
                                })
                            }
                        }
                    }
                    return Ok(Loaded {
                        store,
                        generation,
                        warnings,
                    });
                }
                Err(e) => {
                    warnings.push(e.report());
                    refused.push(e);
                }
            }
        }
        if let Some(first) = refused.into_iter().next() {
            return Err(Error::Store {
                path: path.to_path_buf(),
                reason: format!(
                    "no usable generation ({}); move the files away to start an empty store",
                    match &first {
                        Error::Store { reason, .. } => reason.clone(),
                        e => e.report(),
                    }
                ),
            });
        }
        Ok(Loaded {
            store: fresh(),
            generation: Generation::New,
            warnings,
        })
    }

    /// Saves atomically, keeping the current file as `FILE.prev`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        crate::fsutil::write_atomic_keep_previous(path, &bytes, &previous_path(path))
    }
}

/// The label rule of enrolled examples: [`crate::bundle::check_class_name`], and at most the
/// wire's [`glance_proto::MAX_LABEL`] bytes.
pub(crate) fn check_label(label: &str) -> Result<()> {
    if label.len() > glance_proto::MAX_LABEL {
        return Err(Error::InvalidSetting(format!(
            "label `{}`: labels are at most {} bytes",
            crate::bundle::printable(label),
            glance_proto::MAX_LABEL
        )));
    }
    crate::bundle::check_class_name(label).map_err(|e| {
        Error::InvalidSetting(format!("label `{}`: {e}", crate::bundle::printable(label)))
    })
}

/// Where a refused store file is kept aside: `FILE.corrupt-<seconds since the epoch>` (with a
/// counter if that exists).
fn corrupt_path(path: &Path) -> std::path::PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.corrupt-{secs}", path.display());
    let mut candidate = std::path::PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = std::path::PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: f32, y: f32) -> Vec<f32> {
        vec![x, y, 0.5]
    }

    #[test]
    fn a_refused_current_file_is_kept_aside_and_never_rotated_into_prev() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.store");
        let mut s = Store::new("abc", 3, 10, Precision::F32);
        s.add("a", &v(1.0, 0.0), String::new()).unwrap();
        s.save(&path).unwrap();
        s.add("b", &v(0.0, 1.0), String::new()).unwrap();
        s.save(&path).unwrap(); // FILE = {a, b}, FILE.prev = {a}
        let good_prev = std::fs::read(previous_path(&path)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();

        let loaded = Store::load(&path, "abc", 3, || unreachable!()).unwrap();
        assert_eq!(loaded.generation, Generation::Previous);
        assert!(
            loaded.warnings.iter().any(|w| w.contains("kept as")),
            "{:?}",
            loaded.warnings
        );
        assert!(!path.exists(), "the corrupt file is out of the way");
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(aside[0].path()).unwrap(), bytes);
        // The next save writes FILE and leaves the good generation in FILE.prev.
        loaded.store.save(&path).unwrap();
        assert_eq!(std::fs::read(previous_path(&path)).unwrap(), good_prev);
        assert_eq!(
            Store::read(&path, "abc", 3).unwrap().counts(),
            vec![("a".into(), 1)]
        );
    }

    #[test]
    fn a_full_store_evicts_the_oldest_of_the_largest_label() {
        let mut s = Store::new("abc", 3, 4, Precision::F32);
        for i in 0..3 {
            s.add("cup", &v(1.0, i as f32), format!("cup{i}")).unwrap();
        }
        s.add("pen", &v(0.0, 1.0), "pen0".into()).unwrap();
        let added = s.add("key", &v(-1.0, 0.0), "key0".into()).unwrap();
        assert_eq!(added.evicted.as_deref(), Some("cup"));
        assert_eq!(s.len(), 4);
        assert_eq!(
            s.counts(),
            vec![("cup".into(), 2), ("pen".into(), 1), ("key".into(), 1)]
        );
        // the oldest cup (id 0) went
        assert!(!s.knn.ids.contains(&0));
        assert_eq!(s.knn.sources[0], "cup1");
    }

    #[test]
    fn forget_removes_a_label_and_renumbers_the_rest() {
        let mut s = Store::new("abc", 3, 10, Precision::I8);
        s.add("a", &v(1.0, 0.0), String::new()).unwrap();
        s.add("b", &v(0.0, 1.0), String::new()).unwrap();
        s.add("a", &v(1.0, 0.1), String::new()).unwrap();
        assert_eq!(s.forget("a"), 2);
        assert_eq!(s.forget("zzz"), 0);
        assert_eq!(s.labels, vec!["b".to_string()]);
        assert_eq!(s.knn.labels, vec![0]);
        s.validate().unwrap();
        let d = s.nearest_per_label(&v(0.0, 1.0));
        assert!(d[0].unwrap() < 1e-2);
    }

    #[test]
    fn bad_labels_and_zero_capacity_are_refused() {
        let mut s = Store::new("abc", 3, 0, Precision::F32);
        assert!(s.add("a", &v(1.0, 0.0), String::new()).is_err());
        let mut s = Store::new("abc", 3, 5, Precision::F32);
        assert!(s.add("unknown", &v(1.0, 0.0), String::new()).is_err());
        assert!(s.add(&"x".repeat(40), &v(1.0, 0.0), String::new()).is_err());
        assert!(s.add("", &v(1.0, 0.0), String::new()).is_err());
        assert!(s.add("a", &[1.0], String::new()).is_err());
    }
}
