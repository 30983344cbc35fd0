//! Aliases: `GET /aliases` and `POST /aliases` (`production` goes through the promotion gates
//! and triggers deployment).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use super::{ModelQuery, json_value, parse_task};
use crate::auth::{Credentials, Role};
use crate::error::{ApiError, ErrorBody};
use crate::{AppState, reconcile};

/// OpenAPI paths of this family.
#[derive(OpenApi)]
#[openapi(paths(list_aliases, set_alias))]
pub struct AliasesDoc;

/// Routes of this family.
pub fn router() -> Router<AppState> {
    Router::new().route("/aliases", get(list_aliases).post(set_alias))
}

/// Aliases, optionally filtered.
#[utoipa::path(get, path = "/aliases", params(ModelQuery), responses((status = 200, description = "Aliases")))]
async fn list_aliases(
    State(state): State<AppState>,
    Query(q): Query<ModelQuery>,
) -> Result<Response, ApiError> {
    let task = parse_task(q.task.as_deref())?;
    let list = state.registry().aliases(q.project.as_deref(), task).await?;
    Ok(Json(json_value(&list)?).into_response())
}

/// Body of `POST /aliases`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct AliasBody {
    /// Project.
    project: String,
    /// Task.
    task: String,
    /// Alias.
    alias: String,
    /// Version number.
    version: i64,
    /// Override gates (production only; admin).
    #[serde(default)]
    force: bool,
    /// Minimum mAP50-95 (production only).
    min_map: Option<f64>,
    /// Minimum accuracy (production only).
    min_accuracy: Option<f64>,
}

/// Set an alias. `production` goes through the promotion gates and triggers deployment.
/// Role: engineer (admin with `force`).
#[utoipa::path(post, path = "/aliases", request_body = AliasBody,
    responses((status = 200, description = "Alias set"), (status = 409, body = ErrorBody)))]
async fn set_alias(
    State(state): State<AppState>,
    credentials: Credentials,
    body: Result<Json<AliasBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let caller = credentials.require(if b.force { Role::Admin } else { Role::Engineer })?;
    let task = parse_task(Some(&b.task))?.ok_or_else(|| ApiError::BadRequest("task".into()))?;
    let model = state
        .registry()
        .resolve(&b.project, task, &b.version.to_string())
        .await?;
    if b.alias == sightline_registry::PRODUCTION {
        let gates = sightline_registry::Gates {
            min_map: b.min_map,
            min_accuracy: b.min_accuracy,
        };
        let p = state
            .registry()
            .promote(model.id, &b.alias, &gates, b.force, &caller.name)
            .await?;
        reconcile(&state).await?;
        Ok(Json(json_value(&p)?).into_response())
    } else {
        let previous = state
            .registry()
            .set_alias(model.id, &b.alias, &caller.name)
            .await?;
        Ok(Json(serde_json::json!({
            "alias": b.alias, "model": json_value(&model)?, "previous_model_version_id": previous
        }))
        .into_response())
    }
}
