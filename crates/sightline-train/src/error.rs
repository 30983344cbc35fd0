//! Errors of the training crate.

/// Anything that can stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Tensor shapes that do not fit together (a programming or configuration error).
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Reading back tensor data failed.
    #[error("tensor data: {0}")]
    Data(String),
    /// File system or serialisation failure (the message names the path).
    #[error("{0}")]
    Io(String),
    /// Invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
