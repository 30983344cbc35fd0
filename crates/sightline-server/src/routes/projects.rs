//! Project reads: `GET /projects`, `GET /projects/{project}`, `GET /projects/{project}/labels`.
//! Creating or updating a project is [`crate::catalog::post_project`].

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use super::json_value;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// OpenAPI paths of this family.
#[derive(OpenApi)]
#[openapi(paths(list_projects, get_project, get_labels))]
pub struct ProjectsDoc;

/// Routes of this family.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list_projects))
        .route("/projects/{project}", get(get_project))
        .route("/projects/{project}/labels", get(get_labels))
}

/// Projects with label counts.
#[utoipa::path(get, path = "/projects", responses((status = 200, description = "Projects")))]
async fn list_projects(State(state): State<AppState>) -> Result<Response, ApiError> {
    let list = sightline_db::projects::list(state.registry().db()).await?;
    Ok(Json(json_value(&list)?).into_response())
}

/// One project: labels, manifest, dataset and model versions.
#[utoipa::path(get, path = "/projects/{project}", params(("project" = String, Path)),
    responses((status = 200, description = "Project"), (status = 404, body = ErrorBody)))]
async fn get_project(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    let p = sightline_db::projects::get(state.registry().db(), &project).await?;
    Ok(Json(json_value(&p)?).into_response())
}

/// The ordered label set of a project (class id = index).
#[utoipa::path(get, path = "/projects/{project}/labels", params(("project" = String, Path)),
    responses((status = 200, body = [String]), (status = 404, body = ErrorBody)))]
async fn get_labels(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(
        sightline_db::projects::labels(state.registry().db(), &project).await?,
    ))
}
