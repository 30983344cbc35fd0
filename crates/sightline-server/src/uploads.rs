//! Creating things over HTTP: labels, dataset versions (archive upload + ingest) and model
//! versions (register an experiment's checkpoint).

use axum::Router;
use utoipa::OpenApi;

use crate::AppState;

/// OpenAPI paths of this module (merged into `/openapi.json`).
#[derive(OpenApi)]
#[openapi()]
pub struct UploadsDoc;

/// Routes of this module; `limit` is the server's upload size limit in bytes.
pub fn router(limit: usize) -> Router<AppState> {
    let _ = limit;
    Router::new()
}
