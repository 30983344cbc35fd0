//! The router and its thin handlers.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{
    DefaultBodyLimit, FromRequest, MatchedPath, Multipart, Path, Query, Request, State,
};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::OpenApi;

use crate::auth::Role;
use crate::engine::SlotStatus;
use crate::error::{ApiError, ErrorBody};
use crate::inspect::{self, InspectMeta, InspectResponse};
use crate::{AppState, reconcile};

/// The OpenAPI document served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sightline API",
        description = "Visual-inspection models: inspect, registry, deployment, history."
    ),
    paths(
        health,
        inspect_handler,
        deployments,
        list_projects,
        get_project,
        get_labels,
        list_models,
        get_model,
        post_metrics,
        deploy_model,
        list_aliases,
        set_alias,
        crate::history::history,
        crate::history::history_csv,
        crate::history::history_item,
        crate::history::history_image,
        crate::history::review,
        crate::corrections::post_correction,
        crate::corrections::list_corrections,
        crate::corrections::from_corrections,
        crate::catalog::post_project,
        crate::catalog::list_datasets,
        crate::catalog::get_dataset,
        crate::catalog::diff_datasets,
        crate::catalog::list_experiments,
        crate::catalog::get_experiment,
        crate::monitoring::monitoring
    ),
    components(schemas(
        ErrorBody,
        InspectResponse,
        Health,
        DeploymentStatus,
        crate::history::HistoryPage,
        crate::corrections::CorrectionBody,
        crate::corrections::FromCorrectionsBody,
        crate::monitoring::Monitoring
    ))
)]
pub struct ApiDoc;

/// Build the router.
pub fn app(state: AppState) -> Router {
    let limit = state.config().max_upload_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/deployments", get(deployments))
        .route(
            "/projects",
            get(list_projects).post(crate::catalog::post_project),
        )
        .route("/projects/{project}", get(get_project))
        .route("/projects/{project}/labels", get(get_labels))
        .route("/models", get(list_models))
        .route("/models/metrics", post(post_metrics))
        .route("/models/{id}", get(get_model))
        .route("/models/{id}/deploy", post(deploy_model))
        .route("/aliases", get(list_aliases).post(set_alias))
        .route("/history", get(crate::history::history))
        .route("/history.csv", get(crate::history::history_csv))
        .route("/history/{request_id}", get(crate::history::history_item))
        .route(
            "/history/{request_id}/image",
            get(crate::history::history_image),
        )
        .route(
            "/history/{request_id}/corrections",
            get(crate::corrections::list_corrections).post(crate::corrections::post_correction),
        )
        .route("/projects/{project}/review", get(crate::history::review))
        .route(
            "/projects/{project}/monitoring",
            get(crate::monitoring::monitoring),
        )
        .route(
            "/projects/{project}/datasets",
            get(crate::catalog::list_datasets),
        )
        .route(
            "/projects/{project}/datasets/from-corrections",
            post(crate::corrections::from_corrections),
        )
        .route(
            "/projects/{project}/datasets/{id}",
            get(crate::catalog::get_dataset),
        )
        .route(
            "/projects/{project}/datasets/{a}/diff/{b}",
            get(crate::catalog::diff_datasets),
        )
        .route(
            "/projects/{project}/experiments",
            get(crate::catalog::list_experiments),
        )
        .route("/experiments/{id}", get(crate::catalog::get_experiment))
        .route(
            "/projects/{project}/inspect",
            post(inspect_handler).layer(DefaultBodyLimit::max(limit)),
        )
        .merge(crate::uploads::router(limit))
        .merge(crate::jobs::router())
        .merge(crate::ui::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let resp = next.run(req).await;
    state
        .metrics()
        .record_request(&method, &route, resp.status().as_u16());
    resp
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /openapi.json".into())
}

/// Health report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Deployed models.
    pub deployments: Vec<DeploymentStatus>,
}

/// Deployment state of one project + task.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeploymentStatus {
    /// Project.
    pub project: String,
    /// Task.
    pub task: String,
    /// State.
    #[serde(flatten)]
    pub status: SlotStatus,
}

fn deployment_list(state: &AppState) -> Vec<DeploymentStatus> {
    state
        .engine()
        .slots()
        .into_iter()
        .map(|(project, task, slot)| DeploymentStatus {
            project,
            task: task.as_str().to_string(),
            status: slot.status(),
        })
        .collect()
}

/// Liveness and what is deployed.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        deployments: deployment_list(&state),
    })
}

/// Deployment status of every slot (serving, loading, last failure).
#[utoipa::path(get, path = "/deployments", responses((status = 200, body = [DeploymentStatus])))]
async fn deployments(State(state): State<AppState>) -> Json<Vec<DeploymentStatus>> {
    Json(deployment_list(&state))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics().render();
    text.push_str(&crate::monitoring::gauges(&state).await);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn openapi() -> Response {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::uploads::UploadsDoc::openapi());
    doc.merge(crate::jobs::JobsDoc::openapi());
    Json(doc).into_response()
}

/// Inspect one image: multipart (`image` file + optional `line`, `lot`, `camera`, `part_id`
/// fields) or a raw JPEG/PNG body with the metadata as query parameters.
#[utoipa::path(
    post,
    path = "/projects/{project}/inspect",
    params(("project" = String, Path, description = "Project name"), InspectMetaQuery),
    responses(
        (status = 200, body = InspectResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)
    )
)]
async fn inspect_handler(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(query): Query<InspectMetaQuery>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<InspectResponse>, ApiError> {
    let started = Instant::now();
    state.tokens().authorize(&headers, Role::Operator)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (bytes, meta) = if content_type.starts_with("multipart/form-data") {
        read_multipart(req, &state, query.into_meta()).await?
    } else {
        let bytes = Bytes::from_request(req, &state)
            .await
            .map_err(|e| body_error(e.status(), e.body_text(), state.config().max_upload_bytes))?;
        (bytes, query.into_meta())
    };
    ensure_project(&state, &project).await?;
    let response = inspect::inspect(
        state.engine(),
        state.tracker(),
        &project,
        &bytes,
        meta,
        started,
    )
    .await?;
    state
        .metrics()
        .observe_latency(&project, started.elapsed().as_secs_f64());
    state
        .metrics()
        .record_verdict(&project, response.verdict.as_str());
    if let Some(log) = state.log() {
        log.push(crate::log::LogItem {
            row: log_row(&response),
            image: bytes,
        });
    }
    Ok(Json(response))
}

/// Inspection metadata as query parameters.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InspectMetaQuery {
    /// Production line.
    line: Option<String>,
    /// Lot.
    lot: Option<String>,
    /// Camera.
    camera: Option<String>,
    /// Part id.
    part_id: Option<String>,
}

impl InspectMetaQuery {
    fn into_meta(self) -> InspectMeta {
        InspectMeta {
            line: self.line,
            lot: self.lot,
            camera: self.camera,
            part_id: self.part_id,
        }
    }
}

fn body_error(status: StatusCode, text: String, limit: usize) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!("the upload exceeds the limit of {limit} bytes"))
    } else {
        ApiError::BadRequest(format!("cannot read the request body: {text}"))
    }
}

async fn read_multipart(
    req: Request,
    state: &AppState,
    mut meta: InspectMeta,
) -> Result<(Bytes, InspectMeta), ApiError> {
    let limit = state.config().max_upload_bytes;
    let mut mp = Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::BadRequest(format!("invalid multipart body: {}", e.body_text())))?;
    let mut image = None;
    let mut fields: HashMap<String, String> = HashMap::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(body_error(e.status(), e.body_text(), limit)),
        };
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "image" | "file" => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| body_error(e.status(), e.body_text(), limit))?;
                image = Some(bytes);
            }
            "line" | "lot" | "camera" | "part_id" => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| body_error(e.status(), e.body_text(), limit))?;
                fields.insert(name, text);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected multipart field `{other}`; expected image, line, lot, camera, part_id"
                )));
            }
        }
    }
    let image = image
        .ok_or_else(|| ApiError::BadRequest("the multipart body has no `image` field".into()))?;
    for (k, v) in fields {
        let slot = match k.as_str() {
            "line" => &mut meta.line,
            "lot" => &mut meta.lot,
            "camera" => &mut meta.camera,
            _ => &mut meta.part_id,
        };
        *slot = Some(v);
    }
    Ok((image, meta))
}

async fn ensure_project(state: &AppState, project: &str) -> Result<(), ApiError> {
    sightline_db::projects::id_of(state.registry().db(), project)
        .await
        .map(|_| ())
        .map_err(ApiError::from)
}

fn log_row(r: &InspectResponse) -> sightline_db::inference_log::InferenceLogRow {
    let (label, confidence) = match &r.classification {
        Some(c) => (
            c.label.clone().or(Some(c.top_label.clone())),
            Some(c.confidence),
        ),
        None => r
            .detections
            .iter()
            .filter(|d| d.above_threshold)
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
            .map_or((None, None), |d| {
                (Some(d.label.clone()), Some(d.confidence))
            }),
    };
    let version_of = |task| {
        r.models
            .iter()
            .find(|m| m.task == task)
            .map(|m| m.model_version_id)
    };
    sightline_db::inference_log::InferenceLogRow {
        request_id: r.request_id.clone(),
        project: r.project.clone(),
        created_at: sightline_db::now(),
        verdict: r.verdict.as_str().to_string(),
        detector_version_id: version_of(sightline_core::Task::Segment),
        classifier_version_id: version_of(sightline_core::Task::Classify),
        label,
        confidence,
        line: r.meta.line.clone(),
        lot: r.meta.lot.clone(),
        camera: r.meta.camera.clone(),
        part_id: r.meta.part_id.clone(),
        image_sha256: r.image_sha256.clone(),
        image_path: None,
        width: i64::from(r.width),
        height: i64::from(r.height),
        latency_ms: r.timing.total_ms,
        response: sqlx_json(serde_json::to_value(r).unwrap_or(serde_json::Value::Null)),
        corrected: false,
        disagreement: disagreement(r),
    }
}

fn sqlx_json(v: serde_json::Value) -> sightline_db::inference_log::JsonValue {
    sightline_db::inference_log::JsonValue::from(v)
}

/// Projects with label counts.
#[utoipa::path(get, path = "/projects", responses((status = 200, description = "Projects")))]
async fn list_projects(State(state): State<AppState>) -> Result<Response, ApiError> {
    let list = sightline_db::projects::list(state.registry().db()).await?;
    Ok(Json(json_value(&list)?).into_response())
}

fn json_value<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(format!("cannot encode response: {e}")))
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

/// Filters for model listings.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelQuery {
    /// Project name.
    project: Option<String>,
    /// `segment` or `classify`.
    task: Option<String>,
}

fn parse_task(t: Option<&str>) -> Result<Option<sightline_core::Task>, ApiError> {
    t.map(|t| t.parse().map_err(ApiError::BadRequest))
        .transpose()
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
    headers: HeaderMap,
    body: Result<Json<MetricsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    state.tokens().authorize(&headers, Role::Engineer)?;
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
    headers: HeaderMap,
    body: Option<Json<PromoteBody>>,
) -> Result<Response, ApiError> {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let caller = state
        .tokens()
        .authorize(&headers, if b.force { Role::Admin } else { Role::Engineer })?;
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
    headers: HeaderMap,
    body: Result<Json<AliasBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let caller = state
        .tokens()
        .authorize(&headers, if b.force { Role::Admin } else { Role::Engineer })?;
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

/// Whether detector and classifier disagree: the detector found an above-threshold defect while
/// the classifier says `ok`, or the classifier says a defect label while the detector found none.
/// `false` unless both models answered and the classifier decided a label.
pub fn disagreement(r: &InspectResponse) -> bool {
    let has_detector = r
        .models
        .iter()
        .any(|m| m.task == sightline_core::Task::Segment);
    let Some(label) = r.classification.as_ref().and_then(|c| c.label.as_deref()) else {
        return false;
    };
    if !has_detector {
        return false;
    }
    let detector_ng = r
        .detections
        .iter()
        .any(|d| d.above_threshold && !crate::verdict::is_ok_label(&d.label));
    detector_ng == crate::verdict::is_ok_label(label)
}
