//! Model versions: listing, lineage, recording an evaluation (`POST /models/metrics`) and
//! deploying (`POST /models/{id}/deploy`: promote to `production` through the gates, then load).
//! Registering a model version is [`crate::uploads::post_model`].

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use super::{ModelQuery, json_value, parse_task};
use crate::auth::{Credentials, Engineer, Role};
use crate::error::{ApiError, ErrorBody};
use crate::{AppState, reconcile};

/// OpenAPI paths of this family.
#[derive(OpenApi)]
#[openapi(paths(list_models, get_model, post_metrics, deploy_model))]
pub struct ModelsDoc;

/// Routes of this family.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/models", get(list_models))
        .route("/models/metrics", post(post_metrics))
        .route("/models/{id}", get(get_model))
        .route("/models/{id}/deploy", post(deploy_model))
}

/// Registered model versions.
#[utoipa::path(get, path = "/models", params(ModelQuery), responses((status = 200, description = "Model versions")))]
async fn list_models(
    State(state): State<AppState>,
    Query(q): Query<ModelQuery>,
) -> Result<Response, ApiError> {
    let task = parse_task(q.task.as_deref())?;
    let list = state.registry().list(q.project.as_deref(), task).await?;
    Ok(Json(json_value(&list)?).into_response())
}

/// A model version with its lineage (experiment, dataset version, evaluations, aliases).
#[utoipa::path(get, path = "/models/{id}", params(("id" = i64, Path)),
    responses((status = 200, description = "Lineage"), (status = 404, body = ErrorBody)))]
async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let lineage = state.registry().lineage(id).await?;
    Ok(Json(json_value(&lineage)?).into_response())
}

/// Body of `POST /models/metrics`: an evaluation summary for a model version or experiment.
/// The version may be named by id or by project + task + version.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct MetricsBody {
    /// Model version id.
    model_version_id: Option<i64>,
    /// Project (with task and version).
    project: Option<String>,
    /// Task.
    task: Option<String>,
    /// Version number.
    version: Option<i64>,
    /// Experiment id.
    experiment_id: Option<String>,
    /// Dataset version.
    dataset_version: Option<String>,
    /// Split.
    split: Option<String>,
    /// Gate-relevant numbers: box_map50_95, box_map50, mask_map50_95, mask_map50, accuracy,
    /// ng_ratio, unknown_rate, business_rules_passed, business_rule_failures.
    #[schema(value_type = Object)]
    summary: sightline_registry::EvaluationSummary,
    /// Anything else (kept verbatim).
    #[serde(default)]
    #[schema(value_type = Object)]
    details: serde_json::Value,
    /// Report path under the artifact root.
    report_path: Option<String>,
}

/// Record an evaluation (seed: `POST /models/metrics`). Role: engineer.
#[utoipa::path(post, path = "/models/metrics", request_body = MetricsBody,
    responses((status = 201, description = "Recorded evaluation"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn post_metrics(
    State(state): State<AppState>,
    _caller: Engineer,
    body: Result<Json<MetricsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let model_version_id = match (b.model_version_id, &b.project, &b.task, b.version) {
        (Some(id), _, _, _) => Some(id),
        (None, Some(p), Some(t), Some(v)) => {
            let task = parse_task(Some(t))?.ok_or_else(|| ApiError::BadRequest("task".into()))?;
            Some(state.registry().resolve(p, task, &v.to_string()).await?.id)
        }
        _ => None,
    };
    let e = state
        .registry()
        .record_evaluation(sightline_registry::NewEvaluation {
            model_version_id,
            experiment_id: b.experiment_id,
            dataset_version: b.dataset_version,
            split: b.split,
            summary: b.summary,
            details: b.details,
            report_path: b.report_path,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json_value(&e)?)).into_response())
}

/// Promotion options.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct PromoteBody {
    /// Override failed gates (admin only; recorded).
    #[serde(default)]
    force: bool,
    /// Minimum mAP50-95 (detectors).
    min_map: Option<f64>,
    /// Minimum accuracy (classifiers).
    min_accuracy: Option<f64>,
}

/// Deploy a version: promote it to `production` (gated) and load it in the background.
/// Role: engineer (admin with `force`).
#[utoipa::path(post, path = "/models/{id}/deploy", params(("id" = i64, Path)), request_body = PromoteBody,
    responses((status = 202, description = "Promoted; loading in the background"), (status = 409, body = ErrorBody)))]
async fn deploy_model(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    credentials: Credentials,
    body: Option<Json<PromoteBody>>,
) -> Result<Response, ApiError> {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let caller = credentials.require(if b.force { Role::Admin } else { Role::Engineer })?;
    let gates = sightline_registry::Gates {
        min_map: b.min_map,
        min_accuracy: b.min_accuracy,
    };
    let p = state
        .registry()
        .promote(
            id,
            sightline_registry::PRODUCTION,
            &gates,
            b.force,
            &caller.name,
        )
        .await?;
    reconcile(&state).await?;
    Ok((StatusCode::ACCEPTED, Json(json_value(&p)?)).into_response())
}
