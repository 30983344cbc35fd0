//! The one error type of the API and its JSON shape:
//! `{"error": {"code": "<snake_case>", "message": "<text>", "details": [..]}}`.
//!
//! Client errors (4xx) carry the message the client sees. Server-side failures (500) are
//! logged with their whole source chain and the request id, and answered with a generic
//! message naming only that id ([`internal_message`]): internal text never reaches a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sightline_core::error_chain;

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
    /// A server-side failure with no underlying error (a broken invariant); the text goes to
    /// the log, the client gets [`internal_message`].
    #[error("{0}")]
    Internal(String),
    /// A server-side failure caused by `source` (see [`ApiError::internal`]); `context` and the
    /// whole source chain go to the log, the client gets [`internal_message`]. Shown as
    /// `context: source` (as where a background task logs it).
    #[error("{context}: {source}")]
    Failure {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: Cause,
    },
}

/// The cause of an [`ApiError::Failure`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// A server-side failure: doing `context` failed because of `source`.
    pub fn internal(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        ApiError::Failure {
            context: context.into(),
            source: source.into(),
        }
    }

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
            ApiError::Internal(_) | ApiError::Failure { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

/// The message a client gets for a server-side failure (500): generic, with the request id that
/// the log line of the failure names too.
pub fn internal_message(request_id: &str) -> String {
    format!("internal server error (request id {request_id}); see the server log")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Outside the request-id middleware (which every route of `app` has) a fresh id
            // still ties the answer to its log line.
            let request_id = crate::routes::middleware::current_request_id()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            tracing::error!(%code, %request_id, error = %error_chain(&self), "request failed");
            internal_message(&request_id)
        } else {
            if status.is_server_error() {
                tracing::error!(%code, error = %error_chain(&self), "request failed");
            }
            self.to_string()
        };
        let details = match self {
            ApiError::GateFailed { failures, .. } => failures,
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
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
                ApiError::internal("the inference engine failed", e)
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
            | R::Db(_) => ApiError::internal("the model registry failed", e),
        }
    }
}

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
            | D::Corrupt(_) => ApiError::internal("database error", e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_db::DbError;

    /// Status, code and the message a client gets (read from the response body) for `e`,
    /// answered while handling the request with id `req-42`.
    async fn answered(e: ApiError) -> (StatusCode, &'static str, String) {
        let (status, code) = e.status();
        let resp = crate::routes::middleware::with_request_id("req-42".into(), async {
            e.into_response()
        })
        .await;
        assert_eq!(resp.status(), status);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body")
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
        assert_eq!(v["error"]["code"], code);
        let message = v["error"]["message"].as_str().expect("message").to_string();
        (status, code, message)
    }

    async fn mapped(e: DbError) -> (StatusCode, &'static str, String) {
        answered(ApiError::from(e)).await
    }

    #[tokio::test]
    async fn project_not_found_is_404_with_its_message() {
        let (status, code, message) = mapped(DbError::ProjectNotFound("acme".into())).await;
        assert_eq!((status, code), (StatusCode::NOT_FOUND, "not_found"));
        assert!(
            message.contains("project `acme` does not exist"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn server_side_db_errors_are_500_with_a_generic_message() {
        let cases = [
            DbError::UnsupportedUrl("mysql://secret@host/db".into()),
            DbError::Io(std::io::Error::other("disk on fire")),
            DbError::Corrupt("bad json in column x".into()),
        ];
        for e in cases {
            let shown = e.to_string();
            let (status, code, message) = mapped(e).await;
            assert_eq!(
                (status, code),
                (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                "{shown}"
            );
            assert_eq!(message, internal_message("req-42"), "{shown}");
        }
    }

    #[tokio::test]
    async fn internal_errors_keep_their_cause_for_the_log_only() {
        let io = std::io::Error::other("disk on fire");
        let e = ApiError::internal("cannot write the upload file", io);
        assert_eq!(
            error_chain(&e),
            "cannot write the upload file: disk on fire"
        );
        assert_eq!(e.to_string(), "cannot write the upload file: disk on fire");
        let (status, _, message) = answered(e).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            message,
            "internal server error (request id req-42); see the server log"
        );
        let (_, _, message) = answered(ApiError::Internal("secret invariant".into())).await;
        assert_eq!(message, internal_message("req-42"));
    }

    #[tokio::test]
    async fn a_500_outside_a_request_still_names_an_id() {
        let resp = ApiError::Internal("secret invariant".into()).into_response();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body")
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
        let message = v["error"]["message"].as_str().expect("message");
        let id = message
            .strip_prefix("internal server error (request id ")
            .and_then(|m| m.strip_suffix("); see the server log"))
            .expect("generic message");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{message}");
    }

    #[tokio::test]
    async fn client_errors_keep_their_message() {
        let (status, code, message) = answered(ApiError::Unavailable("queue full".into())).await;
        assert_eq!(
            (status, code),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        assert_eq!(message, "queue full");
    }

    #[tokio::test]
    async fn label_change_refused_is_409_with_its_message() {
        let refused = sightline_db::projects::LabelChangeRefused {
            project: "acme".into(),
            changes: Vec::new(),
            dataset_versions: vec!["v1".into()],
            model_versions: Vec::new(),
        };
        let expected = refused.to_string();
        let (status, code, message) = mapped(DbError::LabelChangeRefused(refused)).await;
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
