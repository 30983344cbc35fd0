//! Catalog endpoints: apply a project manifest (`POST /projects`), dataset versions with stats,
//! lineage and diffs (`/projects/{p}/datasets…`), experiments with per-epoch metrics.
//!
//! Dataset versions are listed from the database; their stats, diffs and annotations come from
//! the project's data area (`<home>/projects/<p>/datasets`), whose ids are checked by the
//! version store itself (no request value names a file).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::AppState;
use crate::auth::{Credentials, Role};
use crate::error::ApiError;

/// OpenAPI paths of this module (merged into `/openapi.json`). The handlers are named by their
/// full path, which is also their tag (`crate::catalog`).
#[derive(OpenApi)]
#[openapi(paths(
    crate::catalog::post_project,
    crate::catalog::list_datasets,
    crate::catalog::get_dataset,
    crate::catalog::diff_datasets,
    crate::catalog::list_experiments,
    crate::catalog::get_experiment
))]
pub struct CatalogDoc;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", post(post_project))
        .route("/projects/{project}/datasets", get(list_datasets))
        .route("/projects/{project}/datasets/{id}", get(get_dataset))
        .route(
            "/projects/{project}/datasets/{a}/diff/{b}",
            get(diff_datasets),
        )
        .route("/projects/{project}/experiments", get(list_experiments))
        .route("/experiments/{id}", get(get_experiment))
}

fn dataset_error(e: sightline_datasets::DatasetError) -> ApiError {
    match e {
        sightline_datasets::DatasetError::NotFound(m) => ApiError::NotFound(m),
        other => ApiError::internal("dataset version store", other),
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal("cannot encode the response", e))
}

/// Options of `POST /projects`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApplyQuery {
    /// Allow breaking label changes (admin only).
    #[serde(default)]
    pub allow_label_change: bool,
}

/// Create or update a project from its manifest (YAML, or the same fields as JSON), like
/// `sightline project apply`. Role: engineer (admin with `allow_label_change`).
#[utoipa::path(post, path = "/projects", params(ApplyQuery),
    request_body(content = String, description = "The manifest (YAML or JSON)", content_type = "application/yaml"),
    responses((status = 201, description = "Created: {outcome, label_changes, project}"),
        (status = 200, description = "Updated or unchanged"),
        (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn post_project(
    State(state): State<AppState>,
    Query(q): Query<ApplyQuery>,
    credentials: Credentials,
    body: Bytes,
) -> Result<Response, ApiError> {
    credentials.require(if q.allow_label_change {
        Role::Admin
    } else {
        Role::Engineer
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the manifest must be UTF-8 text".into()))?;
    if text.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "send the project manifest (YAML or JSON) as the body".into(),
        ));
    }
    // JSON is YAML: one parser validates both with the same messages.
    let manifest = sightline_core::Manifest::parse(text, "request body")
        .map_err(|d| ApiError::BadRequest(format!("invalid manifest:\n{d}")))?;
    let report =
        sightline_db::projects::apply(state.registry().db(), &manifest, text, q.allow_label_change)
            .await?;
    let status = if report.outcome == sightline_db::ApplyOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)).into_response())
}

/// Dataset versions of a project, oldest first.
#[utoipa::path(get, path = "/projects/{project}/datasets", params(("project" = String, Path)),
    responses((status = 200, description = "Dataset versions"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_datasets(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    let list = sightline_db::datasets::list(state.registry().db(), &project).await?;
    Ok(Json(list).into_response())
}

fn repo(state: &AppState, project: &str) -> Result<sightline_datasets::version::Repo, ApiError> {
    sightline_workflows::dataset_repo(&state.config().home, project)
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn resolve_id(
    list: &[sightline_db::datasets::DatasetVersionRow],
    project: &str,
    id: &str,
) -> Result<String, ApiError> {
    if id == "latest" {
        return list.last().map(|v| v.id.clone()).ok_or_else(|| {
            ApiError::NotFound(format!("project `{project}` has no dataset version yet"))
        });
    }
    let m: Vec<&str> = list
        .iter()
        .map(|v| v.id.as_str())
        .filter(|v| id.len() >= 4 && v.starts_with(id))
        .collect();
    match m.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err(ApiError::NotFound(format!(
            "project `{project}` has no dataset version `{id}`"
        ))),
        _ => Err(ApiError::BadRequest(format!(
            "dataset version prefix `{id}` is ambiguous"
        ))),
    }
}

/// One dataset version (id, unique prefix of ≥ 4 characters, or `latest`): its record and stats,
/// the models trained on it, and the requests whose corrections it holds.
#[utoipa::path(get, path = "/projects/{project}/datasets/{id}", params(("project" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "Version + models + from_corrections"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_dataset(
    State(state): State<AppState>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let db = state.registry().db();
    let list = sightline_db::datasets::list(db, &project).await?;
    let id = resolve_id(&list, &project, &id)?;
    let row = list
        .into_iter()
        .find(|v| v.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("dataset version `{id}` not found")))?;
    let models = state.registry().models_for_dataset(&id).await?;
    let from_corrections =
        sightline_db::corrections::requests_of_version(db, &project, &id).await?;
    let mut v = encode(&row)?;
    v["models"] = encode(&models)?;
    v["from_corrections"] = serde_json::json!(from_corrections);
    Ok(Json(v).into_response())
}

/// Differences between two versions of a project: images added/removed/changed and instance
/// and image-label changes per label.
#[utoipa::path(get, path = "/projects/{project}/datasets/{a}/diff/{b}",
    params(("project" = String, Path), ("a" = String, Path), ("b" = String, Path)),
    responses((status = 200, description = "Diff"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn diff_datasets(
    State(state): State<AppState>,
    Path((project, a, b)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let list = sightline_db::datasets::list(state.registry().db(), &project).await?;
    let a = resolve_id(&list, &project, &a)?;
    let b = resolve_id(&list, &project, &b)?;
    let repo = repo(&state, &project)?;
    let diff = tokio::task::spawn_blocking(move || repo.diff(&a, &b))
        .await
        .map_err(|e| ApiError::internal("the diff task failed", e))?
        .map_err(dataset_error)?;
    Ok(Json(diff).into_response())
}

/// Training runs (experiments) of a project, newest first.
#[utoipa::path(get, path = "/projects/{project}/experiments", params(("project" = String, Path)),
    responses((status = 200, description = "Experiments"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_experiments(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    let list = sightline_db::experiments::list(state.registry().db(), &project).await?;
    Ok(Json(list).into_response())
}

/// One experiment with its per-epoch losses and metrics (`epochs`) and the models registered
/// from it (`models`).
#[utoipa::path(get, path = "/experiments/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "Experiment + epochs + models"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_experiment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let db = state.registry().db();
    let e = sightline_db::experiments::get(db, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("experiment `{id}` not found")))?;
    let epochs = sightline_db::experiments::epochs(db, &id).await?;
    let models: Vec<_> = state
        .registry()
        .list(Some(&e.project), None)
        .await?
        .into_iter()
        .filter(|m| m.experiment_id.as_deref() == Some(id.as_str()))
        .collect();
    let mut v = encode(&e)?;
    v["epochs"] = encode(&epochs)?;
    v["models"] = encode(&models)?;
    Ok(Json(v).into_response())
}
