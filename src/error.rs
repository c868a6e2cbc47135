//! The library's error type. Binaries wrap it with `anyhow` for context; the library never prints.
//!
//! An error that another library raised (the image decoders, tract, onnxruntime) is kept whole as
//! the [`std::error::Error::source`] of glance's, not flattened into its text: glance's message
//! says what failed and on which file, the source says why. Print the chain (`{:#}` through
//! `anyhow`, or [`Error::report`]) to show both.

use std::path::PathBuf;

/// An error from a library glance calls, kept as the source of a glance error.
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong inside the glance library.
///
/// Every variant that concerns a file names it, so that a user reading the message knows which
/// input to look at.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// An image file exists but is not an image we can decode (truncated, empty, wrong format).
    #[error("{}: cannot decode image{}", path.display(), colon(reason))]
    Decode {
        /// The image file, or `-`/a description for in-memory frames.
        path: PathBuf,
        /// glance's explanation (empty when the decoder's error says it all).
        reason: String,
        /// The decoder's error.
        source: Option<Cause>,
    },

    /// An image whose declared size or decoded memory exceeds the configured limits
    /// (this is how decompression bombs are refused before any pixel is allocated).
    #[error("{}: image refused: {reason}", path.display())]
    ImageTooLarge {
        /// The image file.
        path: PathBuf,
        /// Which limit was hit.
        reason: String,
    },

    /// The model manifest is missing an entry, or is malformed.
    #[error("model manifest: {0}")]
    Manifest(String),

    /// A model file's sha256 differs from the one recorded for it.
    #[error(
        "{}: sha256 {actual} does not match {expected} recorded for backbone `{name}`; \
         the file is corrupt or is another model",
        path.display()
    )]
    ModelHash {
        /// The model file.
        path: PathBuf,
        /// The manifest entry's name.
        name: String,
        /// The hash the manifest expects.
        expected: String,
        /// The hash of the bytes we read.
        actual: String,
    },

    /// The engine (tract or onnxruntime) could not load or optimise the model.
    #[error("{}: cannot load ONNX model{}", path.display(), colon(reason))]
    ModelLoad {
        /// The model file (or `<embedded>`).
        path: PathBuf,
        /// What glance was doing, or what is wrong with the graph.
        reason: String,
        /// The engine's error.
        source: Option<Cause>,
    },

    /// Running the network failed (shape mismatch, internal error).
    #[error("inference failed{}", colon(reason))]
    Inference {
        /// What failed.
        reason: String,
        /// The engine's (or encoder's) error.
        source: Option<Cause>,
    },

    /// A bundle file that cannot be used (truncated, corrupted, other version or backbone).
    #[error("{}: bundle refused: {reason}", path.display())]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An on-device store file that cannot be used (truncated, corrupted, other backbone).
    #[error("{}: store refused: {reason}", path.display())]
    Store {
        /// The store file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A camera that cannot be opened, configured or read.
    #[error("{}: camera: {reason}", path.display())]
    Camera {
        /// The device.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// A stream source (stdin, a recording, an `exec:` command) that cannot be used.
    #[error("{name}: {reason}")]
    Source {
        /// The source as given (`-`, a file, `exec:COMMAND`).
        name: String,
        /// What is wrong, and what to do.
        reason: String,
    },

    /// A caller-supplied setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
}

impl Error {
    /// An inference error in glance's words, with no other library's error behind it.
    pub(crate) fn inference(reason: impl Into<String>) -> Self {
        Error::Inference {
            reason: reason.into(),
            source: None,
        }
    }

    /// An inference error caused by another library's error.
    pub(crate) fn inference_from(reason: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::Inference {
            reason: reason.into(),
            source: Some(source.into()),
        }
    }

    /// This error and its sources in one line, joined by `: ` (for status lines, replies and
    /// logs, which show one string).
    pub fn report(&self) -> String {
        report(self)
    }
}

/// `err` and its sources in one line, joined by `: `.
pub(crate) fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// `: reason`, or nothing for an empty reason (the source then says it).
fn colon(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// Shorthand used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_kept_typed_and_printed_once_in_the_report() {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad huffman code");
        let e = Error::Decode {
            path: "a.jpg".into(),
            reason: String::new(),
            source: Some(Box::new(io)),
        };
        assert_eq!(e.to_string(), "a.jpg: cannot decode image");
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(
            source.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::InvalidData)
        );
        assert_eq!(e.report(), "a.jpg: cannot decode image: bad huffman code");
        let plain = Error::inference("empty label list");
        assert_eq!(plain.report(), "inference failed: empty label list");
        assert!(std::error::Error::source(&plain).is_none());
    }
}
