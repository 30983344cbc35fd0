//! Registry errors.

use std::path::PathBuf;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// File-system error (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON (de)serialisation failed.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// A bundle folder already holds a `bundle.json`; bundles are immutable.
    #[error("a bundle already exists in {0}; model versions are immutable")]
    BundleExists(PathBuf),
    /// A bundle folder has no `bundle.json` (missing or interrupted write).
    #[error("{0} holds no bundle.json: the bundle is missing or its write was interrupted")]
    BundleIncomplete(PathBuf),
    /// `bundle.json` is unreadable or inconsistent.
    #[error("invalid bundle manifest {path}: {reason}")]
    BundleInvalid {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A bundle file does not match its recorded checksum.
    #[error(
        "checksum mismatch for {path}: bundle.json says sha256 {expected}, the file has {actual}"
    )]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Recorded SHA-256.
        expected: String,
        /// SHA-256 of the file now.
        actual: String,
    },
    /// Input the user gave is not acceptable (message says why).
    #[error("{0}")]
    Invalid(String),
    /// A referenced record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Promotion refused by its gates.
    #[error("promotion of {what} refused: {}; pass --force to override (recorded)", .failures.join("; "))]
    GateFailed {
        /// The model version, as `project/task v<N>`.
        what: String,
        /// Each failed gate.
        failures: Vec<String>,
    },
    /// Database error.
    #[error("database error: {0}")]
    Db(String),
    /// The artifact store failed (the message names the object or folder).
    #[error("artifact store {store}: {source}")]
    Store {
        /// The store (`s3://bucket/prefix` or a folder).
        store: String,
        /// What failed.
        source: sightline_store::StoreError,
    },
    /// A file listed in `bundle.json` is missing from the bundle.
    #[error("bundle file {0} is missing (listed in bundle.json)")]
    BundleFileMissing(String),
}
