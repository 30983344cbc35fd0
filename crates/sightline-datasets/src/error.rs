//! Typed errors and validation findings.

use std::fmt;
use std::path::PathBuf;

/// How serious a validation finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Suspicious but importable (fatal with `--strict`).
    Warning,
    /// The input cannot be imported as is.
    Error,
}

/// One validation finding: where and what.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Issue {
    /// Warning or error.
    pub severity: Severity,
    /// File the finding is about (relative to the source root when possible).
    pub file: String,
    /// Line, object id or other position inside the file, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Human explanation.
    pub message: String,
}

impl Issue {
    /// A warning.
    pub fn warning(
        file: impl Into<String>,
        location: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            file: file.into(),
            location,
            message: message.into(),
        }
    }

    /// An error.
    pub fn error(
        file: impl Into<String>,
        location: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            file: file.into(),
            location,
            message: message.into(),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match &self.location {
            Some(loc) => write!(f, "{sev}: {}: {loc}: {}", self.file, self.message),
            None => write!(f, "{sev}: {}: {}", self.file, self.message),
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// File system error (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A file could not be parsed.
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// What is wrong, with line/column when known.
        message: String,
    },
    /// The input format could not be detected or is not supported.
    #[error("{0}")]
    Format(String),
    /// Validation failed: one or more errors (or warnings under `--strict`).
    #[error("{}", format_issues(.0))]
    Invalid(Vec<Issue>),
    /// Labels in the data that the project does not have.
    #[error("{0}")]
    UnknownLabels(String),
    /// A dataset version, file or object is missing.
    #[error("{0}")]
    NotFound(String),
    /// Downloading or unpacking the source failed.
    #[error("{0}")]
    Source(String),
    /// JSON (de)serialisation failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn format_issues(issues: &[Issue]) -> String {
    let errors = issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .count();
    let warnings = issues.len() - errors;
    let mut s = format!("invalid input: {errors} error(s), {warnings} warning(s)");
    for i in issues {
        s.push_str("\n  ");
        s.push_str(&i.to_string());
    }
    s
}

/// Shorthand result type.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

/// Build a parse error for `file`.
pub(crate) fn parse_err(file: impl Into<PathBuf>, message: impl Into<String>) -> DatasetError {
    DatasetError::Parse {
        file: file.into(),
        message: message.into(),
    }
}
