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
