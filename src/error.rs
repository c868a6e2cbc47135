//! The library's error type. Binaries wrap it with `anyhow` for context; the library never prints.

use std::path::PathBuf;

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
    #[error("{}: cannot decode image: {reason}", path.display())]
    Decode {
        /// The image file, or `-`/a description for in-memory frames.
        path: PathBuf,
        /// The decoder's explanation.
        reason: String,
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

    /// tract could not load or optimise the model.
    #[error("{}: cannot load ONNX model: {reason}", path.display())]
    ModelLoad {
        /// The model file (or `<embedded>`).
        path: PathBuf,
        /// tract's explanation, with its chain.
        reason: String,
    },

    /// Running the network failed (shape mismatch, internal error).
    #[error("inference failed: {0}")]
    Inference(String),

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

    /// A caller-supplied setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
}

/// Shorthand used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
