//! Crash-safe file writes: a reader sees either the old file or the new one, never a mix.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename over
/// the target, fsync the folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_inner(path, bytes, None)
}

/// Like [`write_atomic`], but first moves the current file (if any) to `previous`, so that two
/// generations exist. A crash between the two renames leaves no `path` but an intact
/// `previous`, which the reader falls back to.
pub(crate) fn write_atomic_keep_previous(path: &Path, bytes: &[u8], previous: &Path) -> Result<()> {
    write_atomic_inner(path, bytes, Some(previous))
}

fn write_atomic_inner(path: &Path, bytes: &[u8], previous: Option<&Path>) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::InvalidSetting(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        if let Some(prev) = previous {
            match std::fs::rename(path, prev) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the folder entry is on disk.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Removes temporary files that an interrupted [`write_atomic`] of `path` left behind (a crash
/// between creating and renaming them). Only for files one process owns, such as the store.
pub(crate) fn remove_stale_temps(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else { return };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
