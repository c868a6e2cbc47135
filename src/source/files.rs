//! Image files as frames: files, folders of them (sorted, with their subfolders) and globs.

use std::path::{Path, PathBuf};

/// File extensions treated as images when a folder is expanded (case-insensitive).
pub(crate) const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "pnm", "pbm", "pgm", "ppm", "tga",
    "ico", "qoi", "hdr",
];

/// True when the path's extension is one of [`IMAGE_EXTENSIONS`].
pub(crate) fn has_image_extension(path: &Path) -> bool {
    extension_in(path, IMAGE_EXTENSIONS)
}

/// True when the path's extension, in any case, is one of `list` (lower case).
fn extension_in(path: &Path, list: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| list.contains(&e.to_ascii_lowercase().as_str()))
}

/// Photo formats that glance recognises by name but cannot decode (phones save HEIC by default;
/// raw camera files): a folder's files of these kinds are reported, never silently skipped.
pub(crate) const UNSUPPORTED_IMAGE_EXTENSIONS: &[&str] = &[
    "heic", "heif", "avif", "jxl", "dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2",
];

/// True when the path's extension is one of [`UNSUPPORTED_IMAGE_EXTENSIONS`].
pub(crate) fn has_unsupported_image_extension(path: &Path) -> bool {
    extension_in(path, UNSUPPORTED_IMAGE_EXTENSIONS)
}

/// Deepest folder level searched below a folder argument (a guard against deep trees).
const MAX_DEPTH: usize = 16;

/// Expands the command line's paths: a folder becomes its image files and those of its
/// subfolders (sorted, depth first; symlinked folders are not followed, so a loop cannot trap
/// the walk); anything else is passed through unchanged, so that a missing or unreadable file is
/// reported by the decoder with its name rather than silently dropped. Files of a photo format
/// glance cannot decode (HEIC, raw) are passed through too, for the decoder to name them. A
/// folder with no image anywhere below it is an error naming it.
pub fn expand_paths(
    paths: &[PathBuf],
) -> Vec<std::result::Result<PathBuf, (PathBuf, std::io::Error)>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = out.len();
            walk(path, 0, &mut out);
            if out.len() == before {
                out.push(Err((
                    path.clone(),
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no image files in this folder or its subfolders",
                    ),
                )));
            }
        } else {
            out.push(Ok(path.clone()));
        }
    }
    out
}

fn walk(
    dir: &Path,
    depth: usize,
    out: &mut Vec<std::result::Result<PathBuf, (PathBuf, std::io::Error)>>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.push(Err((dir.to_path_buf(), e)));
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    let mut subdirs = Vec::new();
    for p in children {
        let is_link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        if p.is_dir() {
            if !is_link && depth < MAX_DEPTH {
                subdirs.push(p);
            }
        } else if p.is_file() && (has_image_extension(&p) || has_unsupported_image_extension(&p)) {
            out.push(Ok(p));
        }
    }
    for d in subdirs {
        walk(&d, depth + 1, out);
    }
}

/// Expands one `--source` argument that names files: a glob pattern (`photos/*.jpg`), a folder
/// or a file. A pattern that matches nothing is an error naming the pattern.
pub(crate) fn expand_source(
    spec: &str,
) -> Vec<std::result::Result<PathBuf, (PathBuf, std::io::Error)>> {
    let path = Path::new(spec);
    let is_pattern = spec.contains(['*', '?', '[']) && !path.exists();
    if !is_pattern {
        return expand_paths(&[path.to_path_buf()]);
    }
    let entries = match glob::glob(spec) {
        Ok(paths) => paths,
        Err(e) => {
            return vec![Err((
                path.to_path_buf(),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
            ))]
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        match entry {
            Ok(p) if p.is_file() => files.push(Ok(p)),
            Ok(_) => {}
            Err(e) => {
                let p = e.path().to_path_buf();
                files.push(Err((p, e.into())));
            }
        }
    }
    if files.is_empty() {
        files.push(Err((
            path.to_path_buf(),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no files match this pattern"),
        )));
    }
    files
}
