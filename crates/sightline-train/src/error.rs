//! Errors of the training crate.
//!
//! A variant that wraps another error keeps it as its `#[source]` (its own message is only the
//! context: which file, which step), so a caller that prints the chain (`anyhow`'s `{:#}`)
//! shows `context: cause: cause…`.

use std::path::PathBuf;

/// Anything that can stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Tensor shapes that do not fit together (a programming or configuration error).
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Reading back tensor data failed.
    #[error("tensor data: {0}")]
    Data(String),
    /// A file or folder is not where it must be (the message names the path).
    #[error("{0}")]
    Io(String),
    /// Invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file system operation failed (`fs_err`'s error names the path).
    #[error(transparent)]
    FileSystem(#[from] std::io::Error),
    /// Serialising a JSON document (config, metrics, summary) failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A JSON file of an experiment (`metrics.json`) could not be read back.
    #[error("{}", path.display())]
    ParseJson {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// An image could not be decoded.
    #[error("{}", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: sightline_imageio::DecodeError,
    },
    /// The worker thread pool could not be started.
    #[error("starting {workers} worker threads")]
    ThreadPool {
        /// Threads asked for.
        workers: usize,
        /// rayon's error.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// A model's weights could not be read or converted.
    #[error("tensor data")]
    Weights(#[source] sightline_vision::VisionError),
    /// The starting weights are not a model of the kind being trained.
    #[error("invalid configuration: {what}")]
    StartWeights {
        /// What was being done with them.
        what: &'static str,
        /// The model loader's error.
        #[source]
        source: sightline_vision::VisionError,
    },
    /// A metric could not be computed.
    #[error("tensor data")]
    Eval(#[source] sightline_eval::EvalError),
    /// A model file could not be read or loaded (the message names it).
    #[error("{}", path.display())]
    Model {
        /// The file.
        path: PathBuf,
        /// The model loader's error.
        #[source]
        source: sightline_vision::VisionError,
    },
    /// A model's weights could not be converted (the model crate's message as is).
    #[error(transparent)]
    Vision(sightline_vision::VisionError),
    /// A checkpoint does not fit the model configuration (the message names the file).
    #[error("invalid configuration: {}", path.display())]
    ModelConfig {
        /// The file.
        path: PathBuf,
        /// The model loader's error.
        #[source]
        source: sightline_vision::VisionError,
    },
    /// The classifier's thread pool could not be started.
    #[error("invalid configuration")]
    Pool(#[source] rayon::ThreadPoolBuildError),
    /// An optimiser or EMA state file could not be read or restored (the message names it).
    #[error("{}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<TrainError>,
    },
    /// A checkpoint could not be serialised.
    #[error("tensor data")]
    Serialize(#[source] safetensors::SafeTensorError),
    /// A safetensors state or checkpoint could not be written or read.
    #[error("tensor data: {what}")]
    Safetensors {
        /// Which tensor or step.
        what: String,
        /// The safetensors error.
        #[source]
        source: safetensors::SafeTensorError,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
