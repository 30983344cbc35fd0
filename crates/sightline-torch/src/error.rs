//! Typed loader errors: every error names the file and what failed.

use std::path::PathBuf;

/// A checkpoint could not be loaded, or a tensor it should hold is missing or mis-shaped.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct Error {
    /// The checkpoint file (or the name given to [`crate::load_bytes`]).
    pub path: PathBuf,
    /// What failed.
    pub kind: ErrorKind,
}

/// What failed while loading a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Neither a PyTorch zip archive nor a safetensors file.
    #[error(
        "unrecognised checkpoint format (expected a PyTorch zip archive or a safetensors file)"
    )]
    UnknownFormat,
    /// A pre-1.6 `torch.save` file (a bare pickle stream), which we do not read.
    #[error(
        "legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a recent torch"
    )]
    LegacyFormat,
    /// The zip container is damaged.
    #[error("invalid zip archive: {0}")]
    Zip(#[source] zip::result::ZipError),
    /// The archive's `byteorder` record names neither `little` nor `big`.
    #[error("invalid zip archive: unknown byteorder {0:?}")]
    ByteOrder(String),
    /// A record of the zip container could not be decompressed.
    #[error("invalid zip archive: reading {record}: {source}")]
    ZipRecord {
        /// The archive record.
        record: String,
        /// The decompressor's error.
        #[source]
        source: std::io::Error,
    },
    /// A record the format requires is absent from the archive.
    #[error("archive has no record {0}")]
    MissingRecord(String),
    /// The pickle could not be decoded.
    #[error("in {record}: {source}")]
    Pickle {
        /// Archive record holding the pickle.
        record: String,
        /// Decoder error with its byte offset.
        source: crate::pickle::PickleError,
    },
    /// A tensor could not be rebuilt from its storage.
    #[error("tensor {name}: {message}")]
    Tensor {
        /// State-dict name of the tensor.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor could not be laid out for a safetensors file.
    #[error("tensor {name}: {source}")]
    TensorView {
        /// State-dict name of the tensor.
        name: String,
        /// The safetensors library's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// The decoded object is not a layout we know how to turn into a state dict.
    #[error("unsupported checkpoint layout: {0}")]
    Layout(String),
    /// The safetensors file is invalid (or could not be serialised).
    #[error("invalid safetensors file: {0}")]
    Safetensors(#[source] safetensors::SafeTensorError),
    /// A tensor a model needs is absent.
    #[error("missing tensor {name}")]
    MissingTensor {
        /// State-dict name.
        name: String,
    },
    /// A tensor a model needs has the wrong shape.
    #[error("tensor {name} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// State-dict name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape in the checkpoint.
        found: Vec<usize>,
    },
}

impl Error {
    pub(crate) fn new(path: impl Into<PathBuf>, kind: ErrorKind) -> Self {
        Self {
            path: path.into(),
            kind,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
