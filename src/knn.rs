//! The k-nearest-neighbour store: L2-normalised example embeddings with their labels, searched by
//! cosine distance (1 − dot product). Stored as f32 or as int8 with one scale per row (4× smaller,
//! what a board keeps in memory).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the store's embeddings are held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Embeddings {
    /// Full precision, row-major `len × dim`.
    F32(Vec<f32>),
    /// int8, row-major `len × dim`, each row scaled by `scales[row] / 127`.
    I8 {
        /// Quantized values.
        data: Vec<i8>,
        /// Per-row maximum absolute value.
        scales: Vec<f32>,
    },
}

/// Numeric format of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// 4 bytes per value.
    F32,
    /// 1 byte per value plus one scale per row.
    I8,
}

/// The examples a kNN search runs over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnStore {
    /// Embedding length.
    pub dim: usize,
    /// Class index of each example.
    pub labels: Vec<u16>,
    /// Caller-defined id of each example (e.g. its position in the training set).
    pub ids: Vec<u32>,
    /// Where each example came from (file path, or `idx-file#index`), for galleries.
    pub sources: Vec<String>,
    /// The vectors.
    pub embeddings: Embeddings,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbor {
    /// 1-based rank.
    pub rank: usize,
    /// Row in the store.
    pub row: usize,
    /// Its class index.
    pub label: u16,
    /// Its id.
    pub id: u32,
    /// Cosine distance, 0 (same direction) ..= 2.
    pub distance: f32,
}

impl KnnStore {
    /// An empty store of `dim`-long embeddings.
    pub fn new(dim: usize, precision: Precision) -> Self {
        Self {
            dim,
            labels: Vec::new(),
            ids: Vec::new(),
            sources: Vec::new(),
            embeddings: match precision {
                Precision::F32 => Embeddings::F32(Vec::new()),
                Precision::I8 => Embeddings::I8 {
                    data: Vec::new(),
                    scales: Vec::new(),
                },
            },
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Precision of the stored vectors.
    pub fn precision(&self) -> Precision {
        match self.embeddings {
            Embeddings::F32(_) => Precision::F32,
            Embeddings::I8 { .. } => Precision::I8,
        }
    }

    /// Adds an example; `embedding` is L2-normalised here.
    pub fn push(&mut self, embedding: &[f32], label: u16, id: u32, source: String) -> Result<()> {
        if embedding.len() != self.dim {
            return Err(Error::InvalidSetting(format!(
                "embedding has {} values, the store holds {}",
                embedding.len(),
                self.dim
            )));
        }
        let mut v = embedding.to_vec();
        crate::vector::l2_normalize(&mut v);
        match &mut self.embeddings {
            Embeddings::F32(data) => data.extend_from_slice(&v),
            Embeddings::I8 { data, scales } => {
                let (values, amax) = quantize_i8(&v);
                data.extend_from_slice(&values);
                scales.push(amax);
            }
        }
        self.labels.push(label);
        self.ids.push(id);
        self.sources.push(source);
        Ok(())
    }

    /// Keeps the examples for which `keep(row, label, id)` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(usize, u16, u32) -> bool) {
        let flags: Vec<bool> = (0..self.len())
            .map(|r| keep(r, self.labels[r], self.ids[r]))
            .collect();
        retain_by(&mut self.labels, 1, &flags);
        retain_by(&mut self.ids, 1, &flags);
        retain_by(&mut self.sources, 1, &flags);
        match &mut self.embeddings {
            Embeddings::F32(data) => retain_by(data, self.dim, &flags),
            Embeddings::I8 { data, scales } => {
                retain_by(data, self.dim, &flags);
                retain_by(scales, 1, &flags);
            }
        }
    }

    /// Checks that the lengths of every column agree (run after deserialising).
    /// (`n × dim` is checked, so a crafted file cannot make it wrap; every stored value must
    /// be finite.)
    pub fn validate(&self) -> Result<()> {
        let n = self.labels.len();
        let cells = n.checked_mul(self.dim);
        let ok = self.dim > 0
            && self.ids.len() == n
            && self.sources.len() == n
            && match &self.embeddings {
                Embeddings::F32(d) => Some(d.len()) == cells && d.iter().all(|v| v.is_finite()),
                Embeddings::I8 { data, scales } => {
                    Some(data.len()) == cells
                        && scales.len() == n
                        && scales.iter().all(|s| s.is_finite() && *s >= 0.0)
                }
            };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidSetting(
                "kNN store columns have different lengths, or values that are not finite".into(),
            ))
        }
    }

    /// The query in this store's form: unit length, and quantized to int8 like the rows when
    /// the store is int8 (one scale for the whole query), so that a row costs one int8 dot
    /// product.
    fn prepare(&self, query: &[f32]) -> Query {
        let mut unit = query.to_vec();
        crate::vector::l2_normalize(&mut unit);
        match self.embeddings {
            Embeddings::F32(_) => Query::F32(unit),
            Embeddings::I8 { .. } => {
                let (values, scale) = quantize_i8(&unit);
                Query::I8 { values, scale }
            }
        }
    }

    /// Cosine similarity of row `row` with a prepared query.
    fn dot(&self, row: usize, query: &Query) -> f32 {
        let span = row * self.dim..(row + 1) * self.dim;
        match (&self.embeddings, query) {
            (Embeddings::F32(data), Query::F32(q)) => crate::vector::dot(&data[span], q),
            (Embeddings::I8 { data, scales }, Query::I8 { values, scale }) => {
                crate::vector::dot_i8(&data[span], values) as f32
                    * (scales[row] / 127.0)
                    * (scale / 127.0)
            }
            // `prepare` makes the query in the store's precision.
            _ => 0.0,
        }
    }

    /// The `k` nearest examples to `query` (normalised here), optionally only of class `class`:
    /// a category-specific retrieval model is the same store searched with a class filter.
    pub fn search(&self, query: &[f32], k: usize, class: Option<u16>) -> Vec<Neighbor> {
        if query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let q = self.prepare(query);
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
        for row in 0..self.len() {
            if class.is_some_and(|c| self.labels[row] != c) {
                continue;
            }
            let d = (1.0 - self.dot(row, &q)).max(0.0);
            if best.len() < k || d < best[best.len() - 1].0 {
                let at = best.partition_point(|&(bd, _)| bd <= d);
                best.insert(at, (d, row));
                best.truncate(k);
            }
        }
        best.into_iter()
            .enumerate()
            .map(|(i, (distance, row))| Neighbor {
                rank: i + 1,
                row,
                label: self.labels[row],
                id: self.ids[row],
                distance,
            })
            .collect()
    }

    /// Distance from `query` to the nearest example of every class (`None` for a class with no
    /// examples): the seed's per-category retrieval comparison in one pass.
    pub fn nearest_per_class(&self, query: &[f32], classes: usize) -> Vec<Option<f32>> {
        let mut out = vec![None; classes];
        if query.len() != self.dim {
            return out;
        }
        let q = self.prepare(query);
        for row in 0..self.len() {
            let c = usize::from(self.labels[row]);
            if c >= classes {
                continue;
            }
            let d = (1.0 - self.dot(row, &q)).max(0.0);
            if out[c].is_none_or(|b: f32| d < b) {
                out[c] = Some(d);
            }
        }
        out
    }
}

/// A query prepared for one store (see [`KnnStore::prepare`]).
enum Query {
    F32(Vec<f32>),
    I8 { values: Vec<i8>, scale: f32 },
}

/// Symmetric int8 quantization: `v ≈ values × amax / 127`; returns the values and `amax`.
fn quantize_i8(v: &[f32]) -> (Vec<i8>, f32) {
    let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let values = v
        .iter()
        .map(|x| (x * inv).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (values, amax)
}

/// Keeps the `width`-long rows of `v` whose flag is set.
fn retain_by<T>(v: &mut Vec<T>, width: usize, flags: &[bool]) {
    let mut i = 0usize;
    v.retain(|_| {
        let k = flags.get(i / width.max(1)).copied().unwrap_or(false);
        i += 1;
        k
    });
}

/// The overall nearest class and its distance, from [`KnnStore::nearest_per_class`]'s output:
/// the 1-NN over the whole store is the nearest of the per-class nearest examples.
pub(crate) fn nearest_class(per_class: &[Option<f32>]) -> Option<(usize, f32)> {
    per_class
        .iter()
        .enumerate()
        .filter_map(|(k, d)| d.map(|d| (k, d)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(precision: Precision) -> KnnStore {
        let mut s = KnnStore::new(3, precision);
        s.push(&[1.0, 0.0, 0.0], 0, 10, "a".into()).unwrap();
        s.push(&[0.0, 2.0, 0.0], 1, 11, "b".into()).unwrap();
        s.push(&[0.7, 0.7, 0.0], 1, 12, "c".into()).unwrap();
        s.push(&[0.0, 0.0, -5.0], 2, 13, "d".into()).unwrap();
        s
    }

    /// xorshift32: a fixed, seedable sequence for the tests below.
    fn xorshift(state: &mut u32) -> u32 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
    }

    #[test]
    fn int8_search_tracks_f32_search() {
        // Sparse non-negative vectors like pooled ReLU6 features: the int8 distances stay within
        // 0.01 of the f32 ones, and the nearest row is the same.
        let mut seed = 12345u32;
        let mut next = || f64::from(xorshift(&mut seed)) / f64::from(u32::MAX);
        let dim = 1280;
        let mut rows = Vec::new();
        for _ in 0..300 {
            let v: Vec<f32> = (0..dim)
                .map(|_| (next() * 2.0 - 1.0).max(0.0) as f32 * 6.0)
                .collect();
            rows.push(v);
        }
        let mut f = KnnStore::new(dim, Precision::F32);
        let mut q8 = KnnStore::new(dim, Precision::I8);
        for (i, v) in rows.iter().enumerate() {
            f.push(v, (i % 3) as u16, i as u32, String::new())
                .expect("push");
            q8.push(v, (i % 3) as u16, i as u32, String::new())
                .expect("push");
        }
        for (i, base) in rows.iter().take(40).enumerate() {
            // A query near row i: the row plus noise.
            let query: Vec<f32> = base.iter().map(|x| x + next() as f32).collect();
            let a = f.search(&query, 3, None);
            let b = q8.search(&query, 3, None);
            assert_eq!(a[0].row, i);
            assert_eq!(b[0].row, i);
            for (x, y) in a.iter().zip(&b) {
                assert!((x.distance - y.distance).abs() < 0.01, "{x:?} vs {y:?}");
            }
        }
    }

    #[test]
    fn nearest_by_cosine_distance() {
        for p in [Precision::F32, Precision::I8] {
            let s = store(p);
            let r = s.search(&[0.9, 0.1, 0.0], 2, None);
            assert_eq!(
                r.iter().map(|n| n.id).collect::<Vec<_>>(),
                vec![10, 12],
                "{p:?}"
            );
            assert_eq!(r[0].rank, 1);
            // cos([.9,.1,0],[1,0,0]) = 0.9 / |(.9,.1)| = 0.99388
            assert!(
                (r[0].distance - (1.0 - 0.993_883_7)).abs() < 2e-3,
                "{p:?} {}",
                r[0].distance
            );
        }
    }

    #[test]
    fn class_filter_is_a_category_specific_model() {
        let s = store(Precision::F32);
        let r = s.search(&[1.0, 0.0, 0.0], 5, Some(1));
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|n| n.label == 1));
        assert_eq!(r[0].id, 12);
    }

    #[test]
    fn per_class_nearest_distances() {
        let s = store(Precision::F32);
        let d = s.nearest_per_class(&[0.0, 0.0, 1.0], 4);
        assert!((d[0].unwrap() - 1.0).abs() < 1e-6);
        assert!((d[2].unwrap() - 2.0).abs() < 1e-6); // opposite direction
        assert_eq!(d[3], None);
        assert_eq!(nearest_class(&d).map(|(k, _)| k), Some(0));
        assert_eq!(nearest_class(&[None, None]), None);
    }

    #[test]
    fn wrong_dimension_is_refused() {
        let mut s = KnnStore::new(3, Precision::I8);
        assert!(s.push(&[1.0, 2.0], 0, 0, String::new()).is_err());
        assert!(s.search(&[1.0], 1, None).is_empty());
    }
}
