//! Minimal NumPy `.npy` writer (format version 1.0), so that features can be checked with
//! numpy / scikit-learn (scripts/bench/fashion-sklearn.py).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) -> Result<()> {
    let shape_txt = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n' must be a multiple of 64.
    let pad = 64 - (10 + header.len() + 1) % 64;
    header.push_str(&" ".repeat(pad % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&out))
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Writes a row-major `rows × cols` f32 matrix.
pub(super) fn write_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_npy(path, "<f4", &[rows, cols], &bytes)
}

/// Writes a vector of labels as int64.
pub(super) fn write_labels(path: &Path, labels: &[usize]) -> Result<()> {
    let bytes: Vec<u8> = labels
        .iter()
        .flat_map(|&v| (v as i64).to_le_bytes())
        .collect();
    write_npy(path, "<i8", &[labels.len()], &bytes)
}
