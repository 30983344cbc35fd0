//! Training jobs started over HTTP (`POST /projects/{p}/experiments`).

use axum::Router;
use utoipa::OpenApi;

use crate::AppState;

/// OpenAPI paths of this module (merged into `/openapi.json`).
#[derive(OpenApi)]
#[openapi()]
pub struct JobsDoc;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
}
