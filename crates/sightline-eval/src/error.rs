//! Error type of the evaluation crate.

use std::path::PathBuf;

/// What can go wrong while loading or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A file is not valid JSON of the expected shape.
    #[error("{path}: not a valid {what} file: {error}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What it should have been (e.g. "COCO ground-truth").
        what: &'static str,
        /// The parser's message (with line and column); shown in the message, not chained as a source.
        error: serde_json::Error,
    },
    /// The content is well-formed JSON but inconsistent (unknown image id, missing field, bad mask…).
    #[error("{context}: {message}")]
    Invalid {
        /// Where (file name, annotation index…).
        context: String,
        /// What is wrong.
        message: String,
    },
    /// Inputs of a metric function disagree (lengths, class indices…).
    #[error("invalid metric input: {0}")]
    Input(String),
}

impl EvalError {
    pub(crate) fn invalid(context: impl Into<String>, message: impl Into<String>) -> Self {
        EvalError::Invalid {
            context: context.into(),
            message: message.into(),
        }
    }
}
