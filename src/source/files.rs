//! Image files as frames: files, folders of them (sorted, not recursive) and globs.

use std::path::{Path, PathBuf};

/// File extensions treated as images when a folder is expanded (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "pnm", "pbm", "pgm", "ppm", "tga",
    "ico", "qoi", "hdr",
];

/// True when the path's extension is one of [`IMAGE_EXTENSIONS`].
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Expands the command line's paths: a folder becomes its image files (sorted, not recursive);
/// anything else is passed through unchanged, so that a missing or unreadable file is reported
/// by the decoder with its name rather than silently dropped.
pub fn expand_paths(
    paths: &[PathBuf],
) -> Vec<std::result::Result<PathBuf, (PathBuf, std::io::Error)>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut files: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file() && has_image_extension(p))
                        .collect();
                    files.sort();
                    out.extend(files.into_iter().map(Ok));
                }
                Err(e) => out.push(Err((path.clone(), e))),
            }
        } else {
            out.push(Ok(path.clone()));
        }
    }
    out
}

/// Expands one `--source` argument that names files: a glob pattern (`photos/*.jpg`), a folder
/// or a file. A pattern that matches nothing is an error naming the pattern.
pub fn expand_source(spec: &str) -> Vec<std::result::Result<PathBuf, (PathBuf, std::io::Error)>> {
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
