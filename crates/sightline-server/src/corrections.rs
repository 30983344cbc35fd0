//! Corrections of logged inspections (`POST|GET /history/{id}/corrections`) and the feedback loop
//! endpoint (`POST /projects/{p}/datasets/from-corrections`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sightline_db::corrections::{Action, CorrectedInstance, NewCorrection};
use utoipa::OpenApi;

use crate::AppState;
use crate::auth::{Credentials, Operator, Role};
use crate::error::ApiError;

/// OpenAPI paths and schemas of this module (merged into `/openapi.json`). The handlers are
/// named by their full path, which is also their tag (`crate::corrections`).
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::corrections::post_correction,
        crate::corrections::list_corrections,
        crate::corrections::from_corrections
    ),
    components(schemas(CorrectionBody, FromCorrectionsBody))
)]
pub struct CorrectionsDoc;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/history/{request_id}/corrections",
            get(list_corrections).post(post_correction),
        )
        .route(
            "/projects/{project}/datasets/from-corrections",
            post(from_corrections),
        )
}

/// Longest accepted note.
pub const MAX_NOTE: usize = 2000;
/// Most instances in one correction.
pub const MAX_INSTANCES: usize = 500;
/// Most points in one polygon.
pub const MAX_POLYGON_POINTS: usize = 10_000;

/// Body of `POST /history/{request_id}/corrections`.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionBody {
    /// `accept`, `relabel` or `reject`.
    pub action: String,
    /// Corrected image label (relabel).
    pub image_label: Option<String>,
    /// The full corrected instance list (relabel): `{label, polygons?: [[x,y,…]], box_xyxy?}`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub instances: Option<Vec<CorrectedInstance>>,
    /// Free-text note.
    pub note: Option<String>,
}

/// Check a correction against the project's labels and the image size; the message names the
/// offending field and instance.
pub fn validate(
    body: &CorrectionBody,
    labels: &[String],
    width: f64,
    height: f64,
) -> Result<Action, ApiError> {
    let action = Action::parse(&body.action).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "action `{}` is not accept, relabel or reject",
            body.action
        ))
    })?;
    match action {
        Action::Accept | Action::Reject => {
            if body.image_label.is_some() || body.instances.is_some() {
                return Err(ApiError::BadRequest(format!(
                    "`{}` takes no image_label or instances (use relabel to change them)",
                    action.as_str()
                )));
            }
        }
        Action::Relabel => {
            if body.image_label.is_none() && body.instances.is_none() {
                return Err(ApiError::BadRequest(
                    "relabel needs image_label and/or instances".into(),
                ));
            }
        }
    }
    if let Some(n) = &body.note
        && n.len() > MAX_NOTE
    {
        return Err(ApiError::BadRequest(format!(
            "note is longer than {MAX_NOTE} bytes"
        )));
    }
    let known = |l: &str, what: &str| {
        if labels.iter().any(|x| x == l) {
            Ok(())
        } else {
            Err(ApiError::BadRequest(format!(
                "{what}: `{l}` is not a label of the project (labels: {})",
                labels.join(", ")
            )))
        }
    };
    if let Some(l) = &body.image_label {
        known(l, "image_label")?;
    }
    let inside = |x: f64, y: f64| {
        x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0 && x <= width && y <= height
    };
    let instances = body.instances.as_deref().unwrap_or_default();
    if instances.len() > MAX_INSTANCES {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_INSTANCES} instances per correction"
        )));
    }
    for (i, inst) in instances.iter().enumerate() {
        known(&inst.label, &format!("instances[{i}].label"))?;
        if inst.polygons.is_empty() && inst.box_xyxy.is_none() {
            return Err(ApiError::BadRequest(format!(
                "instances[{i}] needs polygons or box_xyxy"
            )));
        }
        for (j, p) in inst.polygons.iter().enumerate() {
            if p.len() < 6 || p.len() % 2 != 0 || p.len() > 2 * MAX_POLYGON_POINTS {
                return Err(ApiError::BadRequest(format!(
                    "instances[{i}].polygons[{j}] must be a flat [x0, y0, x1, y1, …] list of at least 3 and at most {MAX_POLYGON_POINTS} points"
                )));
            }
            if !p.chunks(2).all(|xy| inside(xy[0], xy[1])) {
                return Err(ApiError::BadRequest(format!(
                    "instances[{i}].polygons[{j}] has a point outside the {width}x{height} image"
                )));
            }
        }
        if let Some([x1, y1, x2, y2]) = inst.box_xyxy
            && (!inside(x1, y1) || !inside(x2, y2) || x2 <= x1 || y2 <= y1)
        {
            return Err(ApiError::BadRequest(format!(
                "instances[{i}].box_xyxy must be [x1, y1, x2, y2] with x1 < x2, y1 < y2 inside the {width}x{height} image"
            )));
        }
    }
    Ok(action)
}

/// Record a correction of a logged inspection (role: operator). The author is the caller's
/// token name (`anonymous` in open mode).
#[utoipa::path(post, path = "/history/{request_id}/corrections", params(("request_id" = String, Path)),
    request_body = CorrectionBody,
    responses((status = 201, description = "The stored correction"), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn post_correction(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
    Operator(caller): Operator,
    body: Result<Json<CorrectionBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let db = state.registry().db();
    let row = crate::history::logged(&state, &request_id).await?;
    let labels = sightline_db::projects::labels(db, &row.project).await?;
    let action = validate(&body, &labels, row.width as f64, row.height as f64)?;
    let c = sightline_db::corrections::insert(
        db,
        &NewCorrection {
            request_id: request_id.clone(),
            action,
            image_label: body.image_label,
            instances: body.instances,
            note: body.note,
            author: caller.name,
        },
    )
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("request `{request_id}` not found")))?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

/// Corrections of a request, newest first.
#[utoipa::path(get, path = "/history/{request_id}/corrections", params(("request_id" = String, Path)),
    responses((status = 200, description = "Corrections, newest first"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_corrections(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    crate::history::logged(&state, &request_id).await?;
    let list = sightline_db::corrections::for_request(state.registry().db(), &request_id).await?;
    Ok(Json(list).into_response())
}

/// Body of `POST /projects/{p}/datasets/from-corrections`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromCorrectionsBody {
    /// Version message (default: a summary).
    #[serde(default)]
    pub message: String,
    /// Author (default: the caller's token name).
    pub author: Option<String>,
}

/// Create a dataset version from the project's unused corrections (role: engineer): parent = the
/// latest version, plus the corrected production images with their corrected annotations.
#[utoipa::path(post, path = "/projects/{project}/datasets/from-corrections", params(("project" = String, Path)),
    request_body = FromCorrectionsBody,
    responses((status = 201, description = "{version, created, parent, images_added, request_ids, corrections_used, rejected}"),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn from_corrections(
    State(state): State<AppState>,
    Path(project): Path<String>,
    credentials: Credentials,
    body: Option<Json<FromCorrectionsBody>>,
) -> Result<Response, ApiError> {
    // The body is read before the role is checked (a malformed body is refused first).
    let caller = credentials.require(Role::Engineer)?;
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let db = state.registry().db();
    sightline_db::projects::id_of(db, &project).await?;
    let store = sightline_store::ArtifactStore::local(state.config().artifacts.clone());
    let author = b.author.unwrap_or(caller.name);
    let out = sightline_workflows::corrections::version_from_corrections(
        db,
        &store,
        &state.config().home,
        &project,
        &b.message,
        &author,
    )
    .await
    .map_err(feedback_error)?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Map feedback-loop errors to API errors.
pub fn feedback_error(e: sightline_workflows::corrections::CorrectionsError) -> ApiError {
    use sightline_workflows::corrections::CorrectionsError as F;
    match e {
        F::NoCorrections(_) | F::NoParent(_) => ApiError::Conflict(e.to_string()),
        F::UnknownLabel { .. } | F::Invalid(_) => ApiError::BadRequest(e.to_string()),
        F::MissingRequest(_) | F::MissingImage { .. } => ApiError::Conflict(e.to_string()),
        F::Db(d) => d.into(),
        F::Dataset(_) | F::Store(_) | F::Io(_) | F::Task(_) => {
            ApiError::internal("cannot make a version from corrections", e)
        }
    }
}
