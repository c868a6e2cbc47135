//! Where frames come from. For now: image files and folders of them (camera, MJPEG-on-stdin and
//! globs arrive with `glance run`).

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
