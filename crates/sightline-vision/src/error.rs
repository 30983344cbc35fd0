//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or running a vision model.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// A tensor the model needs is not in the checkpoint.
    #[error("tensor `{name}` is missing from the checkpoint")]
    MissingTensor {
        /// Full tensor name, e.g. `model.22.proto.cv1.conv.weight`.
        name: String,
    },
    /// A tensor exists but has another shape than the model expects.
    #[error("tensor `{name}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        /// Full tensor name.
        name: String,
        /// Shape the architecture needs.
        expected: Vec<usize>,
        /// Shape found in the checkpoint.
        found: Vec<usize>,
    },
    /// The checkpoint does not describe a model this crate can build.
    #[error("unsupported checkpoint: {0}")]
    Unsupported(String),
    /// An invalid configuration or argument (image size, thresholds, class count…).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A checkpoint file could not be read or parsed.
    #[error("cannot read checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An image file could not be read or decoded.
    #[error("cannot read image {path}: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Decoder error.
        source: image::ImageError,
    },
    /// File system error (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A tensor read back from the device had an unexpected layout or type.
    #[error("tensor data: {0}")]
    TensorData(String),
}

/// Result alias of this crate.
pub type Result<T, E = VisionError> = std::result::Result<T, E>;
