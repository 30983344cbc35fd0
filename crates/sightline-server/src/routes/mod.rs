//! The router: every endpoint family owns a `router()` and an OpenAPI doc, and [`app`] merges
//! them in one place ([`openapi_doc`] merges the docs in the same order).
//!
//! Families whose handlers live here:
//!
//! - [`health`]: `/health`, `/deployments`, `/metrics`.
//! - [`inspect`]: `POST /projects/{p}/inspect` (the thin handler over [`crate::inspect`]).
//! - [`projects`]: project and label reads.
//! - [`models`]: model versions, evaluations (`POST /models/metrics`), deploy.
//! - [`aliases`]: alias reads and changes.
//! - [`monitoring`]: the route and doc of [`crate::monitoring::monitoring`], whose handler stays
//!   beside its rule code.
//!
//! Families in their own modules, each with its `router()` and doc: [`crate::history`],
//! [`crate::corrections`], [`crate::catalog`], [`crate::uploads`], [`crate::jobs`],
//! [`crate::ui`] (no API paths). The middleware (request id, request metrics) is in
//! [`middleware`]; body limits stay on the routes that read bodies.

pub mod aliases;
pub mod health;
pub mod inspect;
pub mod middleware;
pub mod models;
pub mod monitoring;
pub mod projects;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::OpenApi;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

pub use inspect::disagreement;

/// The top of the OpenAPI document served at `/openapi.json`: its title and description, and
/// the error body every family answers with. The paths and the other schemas come from the
/// families' docs ([`openapi_doc`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sightline API",
        description = "Visual-inspection models: inspect, registry, deployment, history."
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// The whole OpenAPI document: [`ApiDoc`] with every family's doc merged in.
pub fn openapi_doc() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for family in [
        health::HealthDoc::openapi(),
        inspect::InspectDoc::openapi(),
        projects::ProjectsDoc::openapi(),
        models::ModelsDoc::openapi(),
        aliases::AliasesDoc::openapi(),
        crate::history::HistoryDoc::openapi(),
        crate::corrections::CorrectionsDoc::openapi(),
        crate::catalog::CatalogDoc::openapi(),
        monitoring::MonitoringDoc::openapi(),
        crate::uploads::UploadsDoc::openapi(),
        crate::jobs::JobsDoc::openapi(),
        crate::ui::UiDoc::openapi(),
    ] {
        doc.merge(family);
    }
    doc
}

/// Build the router: every family's routes, the `/openapi.json` document, a JSON 404 for
/// unknown paths, then the request-metrics and request-id middleware around all of it.
pub fn app(state: AppState) -> Router {
    let limit = state.config().max_upload_bytes;
    Router::new()
        .route("/openapi.json", get(openapi))
        .merge(health::router())
        .merge(inspect::router(limit))
        .merge(projects::router())
        .merge(models::router())
        .merge(aliases::router())
        .merge(crate::history::router())
        .merge(crate::corrections::router())
        .merge(crate::catalog::router())
        .merge(monitoring::router())
        .merge(crate::uploads::router(limit))
        .merge(crate::jobs::router())
        .merge(crate::ui::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::count_requests,
        ))
        .layer(axum::middleware::from_fn(middleware::request_id))
        .with_state(state)
}

async fn openapi() -> Response {
    Json(openapi_doc()).into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /openapi.json".into())
}

/// Filters for model and alias listings.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelQuery {
    /// Project name.
    project: Option<String>,
    /// `segment` or `classify`.
    task: Option<String>,
}

/// A task named in a request (`segment`, `classify`, …); an unknown name is a 400.
fn parse_task(t: Option<&str>) -> Result<Option<sightline_core::Task>, ApiError> {
    t.map(|t| t.parse().map_err(ApiError::BadRequest))
        .transpose()
}

/// A response value as JSON (a failure is a server-side one).
fn json_value<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal("cannot encode the response", e))
}
