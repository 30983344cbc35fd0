//! The route and OpenAPI doc of `GET /projects/{project}/monitoring`. The handler,
//! [`crate::monitoring::monitoring`], stays beside the monitoring rules it serves.

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

use crate::AppState;

/// OpenAPI paths and schemas of this family.
#[derive(OpenApi)]
#[openapi(
    paths(crate::monitoring::monitoring),
    components(schemas(crate::monitoring::Monitoring))
)]
pub struct MonitoringDoc;

/// Routes of this family.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/projects/{project}/monitoring",
        get(crate::monitoring::monitoring),
    )
}
