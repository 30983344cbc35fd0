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
    /// The checkpoint records an image size that is not one.
    #[error("invalid argument: {0}; pass the size explicitly")]
    CheckpointImgsz(#[source] sightline_torch::InvalidImgsz),
    /// A checkpoint file could not be read or parsed.
    #[error("cannot read checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `sightline-torch` could not read a checkpoint file.
    #[error("cannot read checkpoint {path}: {source}")]
    ReadCheckpoint {
        /// The file.
        path: PathBuf,
        /// The reader's error (it names the file and what failed; boxed: it is large).
        #[source]
        source: Box<sightline_torch::Error>,
    },
    /// A checkpoint file was read but its content does not make a model (architecture not
    /// recognised, invalid safetensors data…); the cause says why.
    #[error("cannot read checkpoint {path}: {source}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// Why its content is refused.
        #[source]
        source: Box<VisionError>,
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
    /// safetensors data could not be parsed, laid out or serialised.
    #[error("tensor data: {context}: {source}")]
    Safetensors {
        /// What was being done (or the tensor's name).
        context: String,
        /// The safetensors library's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A predicted mask does not make a valid RLE.
    #[error("tensor data: mask RLE: {0}")]
    MaskRle(#[source] sightline_mask::MaskError),
}

/// Result alias of this crate.
pub type Result<T, E = VisionError> = std::result::Result<T, E>;
