//! The one error type of the API and its JSON shape:
//! `{"error": {"code": "<snake_case>", "message": "<text>", "details": [..]}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::engine::EngineError;

/// Every way a request can fail. Each variant maps to exactly one status code in
/// [`ApiError::status`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (bad JSON, bad query, bad multipart).
    #[error("{0}")]
    BadRequest(String),
    /// No or unknown API token.
    #[error("{0}")]
    Unauthorized(String),
    /// The token's role is not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A promotion gate refused the change.
    #[error("{message}")]
    GateFailed {
        /// Summary.
        message: String,
        /// Each failed gate.
        failures: Vec<String>,
    },
    /// The upload exceeds the size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not an image type we accept.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The image could not be decoded.
    #[error("{0}")]
    UndecodableImage(String),
    /// No model is deployed, or the inference queue is full.
    #[error("{0}")]
    Unavailable(String),
    /// A server-side failure.
    #[error("{0}")]
    Internal(String),
}

/// The error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Details of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Itemised reasons (e.g. failed promotion gates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl ApiError {
    /// HTTP status and stable code of each variant.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::GateFailed { .. } => (StatusCode::CONFLICT, "gate_failed"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::UndecodableImage(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "undecodable_image")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        if status.is_server_error() {
            tracing::error!(%code, error = %self, "request failed");
        }
        let details = match &self {
            ApiError::GateFailed { failures, .. } => failures.clone(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                details,
            },
        };
        (status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NoModel { .. } | EngineError::Overloaded => {
                ApiError::Unavailable(e.to_string())
            }
            EngineError::Inference(_) | EngineError::Deploy { .. } => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<sightline_registry::RegistryError> for ApiError {
    fn from(e: sightline_registry::RegistryError) -> Self {
        use sightline_registry::RegistryError as R;
        match e {
            R::Invalid(m) => ApiError::BadRequest(m),
            R::NotFound(m) => ApiError::NotFound(format!("{m} not found")),
            R::GateFailed { what, failures } => ApiError::GateFailed {
                message: format!(
                    "promotion of {what} refused by its gates; use force to override (recorded)"
                ),
                failures,
            },
            R::BundleExists(_) => ApiError::Conflict(e.to_string()),
            R::Io(_)
            | R::Json(_)
            | R::BundleIncomplete(_)
            | R::BundleInvalid { .. }
            | R::ChecksumMismatch { .. }
            | R::BundleFileMissing(_)
            | R::Store { .. }
            | R::Db(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// The message a client gets for a server-side database failure; the details go to the log.
pub const INTERNAL_DB_MESSAGE: &str = "internal database error; see the server log";

/// The one mapping of database errors. Every variant is named (no `_` arm), so a new
/// [`sightline_db::DbError`] variant does not compile until it is mapped here.
impl From<sightline_db::DbError> for ApiError {
    fn from(e: sightline_db::DbError) -> Self {
        use sightline_db::DbError as D;
        match e {
            D::ProjectNotFound(_) => ApiError::NotFound(e.to_string()),
            D::LabelChangeRefused(_) => ApiError::Conflict(e.to_string()),
            D::UnsupportedUrl(_)
            | D::Connect { .. }
            | D::Migrate(_)
            | D::Sqlx(_)
            | D::Io(_)
            | D::Corrupt(_) => {
                tracing::error!(error = %error_chain(&e), "database error");
                ApiError::Internal(INTERNAL_DB_MESSAGE.to_string())
            }
        }
    }
}

/// `e` and each of its sources, joined by `: ` (a source whose text the message already
/// holds, as in `#[error("...: {source}")]`, is not repeated).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_db::DbError;

    fn mapped(e: DbError) -> (StatusCode, &'static str, String) {
        let api = ApiError::from(e);
        let (status, code) = api.status();
        let message = api.to_string();
        assert_eq!(api.into_response().status(), status);
        (status, code, message)
    }

    #[test]
    fn project_not_found_is_404_with_its_message() {
        let (status, code, message) = mapped(DbError::ProjectNotFound("acme".into()));
        assert_eq!((status, code), (StatusCode::NOT_FOUND, "not_found"));
        assert!(
            message.contains("project `acme` does not exist"),
            "{message}"
        );
    }

    #[test]
    fn server_side_db_errors_are_500_with_a_generic_message() {
        let cases = [
            DbError::UnsupportedUrl("mysql://secret@host/db".into()),
            DbError::Io(std::io::Error::other("disk on fire")),
            DbError::Corrupt("bad json in column x".into()),
        ];
        for e in cases {
            let shown = e.to_string();
            let (status, code, message) = mapped(e);
            assert_eq!(
                (status, code),
                (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                "{shown}"
            );
            assert_eq!(message, INTERNAL_DB_MESSAGE, "{shown}");
        }
    }

    #[test]
    fn label_change_refused_is_409_with_its_message() {
        let refused = sightline_db::projects::LabelChangeRefused {
            project: "acme".into(),
            changes: Vec::new(),
            dataset_versions: vec!["v1".into()],
            model_versions: Vec::new(),
        };
        let expected = refused.to_string();
        let (status, code, message) = mapped(DbError::LabelChangeRefused(refused));
        assert_eq!((status, code), (StatusCode::CONFLICT, "conflict"));
        assert_eq!(message, expected);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Hides(#[source] std::io::Error);

    #[test]
    fn error_chain_appends_each_source_once() {
        let io = || std::io::Error::other("disk on fire");
        assert_eq!(error_chain(&Repeats(io())), "outer: disk on fire");
        assert_eq!(error_chain(&Hides(io())), "outer: disk on fire");
        assert_eq!(error_chain(&DbError::Io(io())), "disk on fire");
    }
}
