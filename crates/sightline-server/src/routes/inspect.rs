//! `POST /projects/{project}/inspect`: read the image (raw body or multipart with metadata
//! fields), run [`crate::inspect::inspect`], record metrics and queue the request log row.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::AppState;
use crate::auth::Operator;
use crate::error::{ApiError, ErrorBody};
use crate::inspect::{self, InspectMeta, InspectResponse};

/// OpenAPI paths and schemas of this family.
#[derive(OpenApi)]
#[openapi(paths(inspect_handler), components(schemas(InspectResponse)))]
pub struct InspectDoc;

/// Routes of this family; `limit` is the server's upload size limit in bytes.
pub fn router(limit: usize) -> Router<AppState> {
    Router::new().route(
        "/projects/{project}/inspect",
        post(inspect_handler).layer(DefaultBodyLimit::max(limit)),
    )
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
    _caller: Operator,
    req: Request,
) -> Result<Json<InspectResponse>, ApiError> {
    let started = Instant::now();
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
