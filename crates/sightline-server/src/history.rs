//! History of inspections: filtered, sorted, paged listing (offset or keyset), CSV export, the
//! stored image (optionally with the logged detections drawn), and the review queue.
//!
//! Images are looked up by the row's content hash in the artifact store
//! ([`sightline_workflows::corrections::image_key`]); nothing from the request names a file.

use std::fmt::Write as _;
use std::io::Cursor as IoCursor;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sightline_db::inference_log::{self, Cursor, HistoryFilter, InferenceLogRow, SortKey};
use utoipa::OpenApi;

use crate::AppState;
use crate::error::ApiError;

/// OpenAPI paths and schemas of this module (merged into `/openapi.json`). The handlers are
/// named by their full path, which is also their tag (`crate::history`).
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::history::history,
        crate::history::history_csv,
        crate::history::history_item,
        crate::history::history_image,
        crate::history::review
    ),
    components(schemas(HistoryPage))
)]
pub struct HistoryDoc;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/history", get(history))
        .route("/history.csv", get(history_csv))
        .route("/history/{request_id}", get(history_item))
        .route("/history/{request_id}/image", get(history_image))
        .route("/projects/{project}/review", get(review))
}

/// History filters, sort and paging.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Project.
    pub project: Option<String>,
    /// Verdict (`ok`, `ng`, `unknown`).
    pub verdict: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// Line.
    pub line: Option<String>,
    /// Lot.
    pub lot: Option<String>,
    /// Camera.
    pub camera: Option<String>,
    /// Part id.
    pub part_id: Option<String>,
    /// Model version id (detector or classifier).
    pub model_version_id: Option<i64>,
    /// Lowest confidence.
    pub min_confidence: Option<f64>,
    /// Highest confidence.
    pub max_confidence: Option<f64>,
    /// From (RFC 3339, inclusive).
    pub from: Option<String>,
    /// To (RFC 3339, exclusive).
    pub to: Option<String>,
    /// Corrected (`true`) or not (`false`).
    pub corrected: Option<bool>,
    /// `time` (default) or `confidence`.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    /// Page size (default 50, at most 500; CSV: default 10000, at most 100000).
    pub limit: Option<i64>,
    /// Rows to skip (ignored with `cursor`).
    pub offset: Option<i64>,
    /// Keyset paging: the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Include each row's full response (default true).
    pub include_response: Option<bool>,
}

/// One page of history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    /// Matching requests in total.
    pub total: i64,
    /// This page.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    /// Cursor of the next page (`null`: last page).
    pub next_cursor: Option<String>,
}

/// A time query parameter.
pub fn parse_time(
    name: &str,
    v: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    v.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| ApiError::BadRequest(format!("`{name}` must be an RFC 3339 time: {e}")))
    })
    .transpose()
}

impl HistoryQuery {
    /// The database filter.
    pub fn to_filter(&self) -> Result<HistoryFilter, ApiError> {
        if let Some(v) = &self.verdict
            && !matches!(v.as_str(), "ok" | "ng" | "unknown")
        {
            return Err(ApiError::BadRequest(format!(
                "verdict `{v}` is not ok, ng or unknown"
            )));
        }
        let sort = match self.sort.as_deref() {
            None | Some("time") => SortKey::Time,
            Some("confidence") => SortKey::Confidence,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "sort `{other}` is not time or confidence"
                )));
            }
        };
        let ascending = match self.order.as_deref() {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "order `{other}` is not asc or desc"
                )));
            }
        };
        for (name, v) in [
            ("min_confidence", self.min_confidence),
            ("max_confidence", self.max_confidence),
        ] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(ApiError::BadRequest(format!("`{name}` must be a number")));
            }
        }
        let after = self
            .cursor
            .as_deref()
            .map(|c| {
                Cursor::decode(c).ok_or_else(|| {
                    ApiError::BadRequest(
                        "`cursor` is not a cursor this server returned (next_cursor)".into(),
                    )
                })
            })
            .transpose()?;
        Ok(HistoryFilter {
            from: parse_time("from", self.from.as_deref())?,
            to: parse_time("to", self.to.as_deref())?,
            project: self.project.clone(),
            verdict: self.verdict.clone(),
            label: self.label.clone(),
            line: self.line.clone(),
            lot: self.lot.clone(),
            camera: self.camera.clone(),
            part_id: self.part_id.clone(),
            model_version_id: self.model_version_id,
            min_confidence: self.min_confidence,
            max_confidence: self.max_confidence,
            corrected: self.corrected,
            sort,
            ascending,
            after,
            limit: self.limit,
            offset: self.offset,
        })
    }
}

/// A history row as JSON (the `response` only when asked).
pub fn history_json(r: InferenceLogRow, include_response: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "request_id": r.request_id,
        "project": r.project,
        "created_at": r.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "verdict": r.verdict,
        "detector_version_id": r.detector_version_id,
        "classifier_version_id": r.classifier_version_id,
        "label": r.label,
        "confidence": r.confidence,
        "line": r.line, "lot": r.lot, "camera": r.camera, "part_id": r.part_id,
        "image_sha256": r.image_sha256,
        "image_path": r.image_path,
        "width": r.width, "height": r.height,
        "latency_ms": r.latency_ms,
        "corrected": r.corrected,
        "disagreement": r.disagreement,
        "image_url": format!("/history/{}/image", r.request_id),
    });
    if include_response {
        v["response"] = r.response.0;
    }
    v
}

/// Past inspections with filters, sort (`time`/`confidence`, `asc`/`desc`) and paging (offset or
/// keyset `cursor`).
#[utoipa::path(get, path = "/history", params(HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = crate::error::ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let filter = q.to_filter()?;
    let limit = filter
        .limit
        .unwrap_or(50)
        .clamp(1, inference_log::MAX_LIMIT);
    let (rows, total) = inference_log::query(state.registry().db(), &filter).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| Cursor::of(r).encode()))
        .flatten();
    let include = q.include_response.unwrap_or(true);
    Ok(Json(HistoryPage {
        total,
        items: rows.into_iter().map(|r| history_json(r, include)).collect(),
        next_cursor,
    }))
}

fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// History as CSV, same filters and sort as `/history` (limit default 10000, at most 100000).
#[utoipa::path(get, path = "/history.csv", params(HistoryQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = crate::error::ErrorBody)))]
pub async fn history_csv(
    State(state): State<AppState>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let filter = q.to_filter()?;
    let limit = q.limit.unwrap_or(10_000).clamp(1, 100_000);
    let rows = inference_log::query_unbounded(state.registry().db(), &filter, limit).await?;
    let mut out = String::from(
        "request_id,created_at,project,verdict,label,confidence,line,lot,camera,part_id,detector_version_id,classifier_version_id,latency_ms,image_sha256,corrected\n",
    );
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let int = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in rows {
        let fields = [
            r.request_id.clone(),
            r.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            r.project.clone(),
            r.verdict.clone(),
            opt(&r.label),
            num(r.confidence),
            opt(&r.line),
            opt(&r.lot),
            opt(&r.camera),
            opt(&r.part_id),
            int(r.detector_version_id),
            int(r.classifier_version_id),
            r.latency_ms.to_string(),
            r.image_sha256.clone(),
            r.corrected.to_string(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, f);
        }
        let _ = writeln!(out);
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"history.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

/// One past inspection with its full response.
#[utoipa::path(get, path = "/history/{request_id}", params(("request_id" = String, Path)),
    responses((status = 200, description = "Logged request"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn history_item(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(history_json(logged(&state, &request_id).await?, true)))
}

/// The logged row of a request, or 404.
pub async fn logged(state: &AppState, request_id: &str) -> Result<InferenceLogRow, ApiError> {
    inference_log::get(state.registry().db(), request_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("request `{request_id}` not found")))
}

/// Image options.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImageQuery {
    /// `1`/`true`: draw the logged detections (masks, boxes, labels) and classification.
    pub overlay: Option<String>,
    /// Downsize so that the longer side is at most this (16..2048; thumbnails). Output PNG.
    pub max_side: Option<u32>,
}

/// The stored image of a request (by content hash), optionally with the logged predictions drawn.
#[utoipa::path(get, path = "/history/{request_id}/image", params(("request_id" = String, Path), ImageQuery),
    responses((status = 200, content_type = "image/png", description = "The image (image/jpeg or image/png)"),
        (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn history_image(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
    Query(q): Query<ImageQuery>,
) -> Result<Response, ApiError> {
    let overlay = match q.overlay.as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "overlay `{other}` is not 0, 1, true or false"
            )));
        }
    };
    if let Some(m) = q.max_side
        && !(16..=2048).contains(&m)
    {
        return Err(ApiError::BadRequest(
            "max_side must be between 16 and 2048".into(),
        ));
    }
    let row = logged(&state, &request_id).await?;
    let store = sightline_store::ArtifactStore::local(state.config().artifacts.clone());
    let (bytes, ext) = sightline_workflows::corrections::fetch_image(&store, &row.image_sha256)
        .await
        .map_err(|e| ApiError::internal("cannot read the stored image", e))?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "the image of request `{request_id}` is not stored (logging may still be writing it)"
            ))
        })?;
    if !overlay && q.max_side.is_none() {
        let ct = if ext == "png" {
            "image/png"
        } else {
            "image/jpeg"
        };
        return Ok((
            [
                (header::CONTENT_TYPE, ct),
                (header::CACHE_CONTROL, "private, max-age=86400, immutable"),
            ],
            bytes,
        )
            .into_response());
    }
    let response = row.response.0;
    let max_side = q.max_side;
    let png = tokio::task::spawn_blocking(move || render(&bytes, &response, overlay, max_side))
        .await
        .map_err(|e| ApiError::internal("rendering failed", e))??;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        png,
    )
        .into_response())
}

/// Decode, draw the logged predictions (when `overlay`), downsize, encode as PNG.
pub fn render(
    bytes: &[u8],
    response: &serde_json::Value,
    overlay: bool,
    max_side: Option<u32>,
) -> Result<Vec<u8>, ApiError> {
    let img = crate::inspect::decode_image(bytes)
        .map_err(|e| ApiError::internal("stored image", e))?
        .to_rgb8();
    let mut img = if overlay {
        draw_logged(&img, response)
    } else {
        img
    };
    if let Some(m) = max_side
        && img.width().max(img.height()) > m
    {
        let scale = f64::from(m) / f64::from(img.width().max(img.height()));
        let w = ((f64::from(img.width()) * scale).round() as u32).max(1);
        let h = ((f64::from(img.height()) * scale).round() as u32).max(1);
        img = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
    }
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut IoCursor::new(&mut out), image::ImageFormat::Png)
        .map_err(|e| ApiError::internal("cannot encode PNG", e))?;
    Ok(out)
}

/// The image with the logged detections (masks from RLE, boxes, labels) and the classification
/// tag drawn by `sightline_vision::overlay`.
pub fn draw_logged(img: &image::RgbImage, response: &serde_json::Value) -> image::RgbImage {
    use sightline_vision::postprocess::InstanceMask;
    use sightline_vision::segment::Detection;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let dets: Vec<Detection> = response["detections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let d: crate::inspect::DetectionJson = serde_json::from_value(d.clone()).ok()?;
            let bits = d
                .mask_rle
                .as_ref()
                .filter(|r| r.size == [h as u32, w as u32])
                .and_then(|r| sightline_mask::Rle::new(r.size[0], r.size[1], r.counts.clone()).ok())
                .map(|r| r.decode_row_major())
                .unwrap_or_default();
            let mask = if bits.len() == w * h {
                InstanceMask {
                    height: h,
                    width: w,
                    x0: 0,
                    y0: 0,
                    win_w: w,
                    win_h: h,
                    bits,
                }
            } else {
                InstanceMask {
                    height: 0,
                    width: 0,
                    x0: 0,
                    y0: 0,
                    win_w: 0,
                    win_h: 0,
                    bits: Vec::new(),
                }
            };
            Some(Detection {
                class_id: d.class_id,
                label: d.label,
                confidence: d.confidence as f32,
                box_xyxy: d.box_xyxy.map(|v| v as f32),
                mask,
            })
        })
        .collect();
    let mut out = sightline_vision::overlay::draw_detections(img, &dets);
    if let Some(c) = response["classification"].as_object() {
        let label = c.get("label").and_then(|v| v.as_str()).unwrap_or("unknown");
        let conf = c.get("confidence").and_then(|v| v.as_f64()).unwrap_or(0.0);
        let color = if crate::verdict::is_ok_label(label) {
            [40, 160, 60]
        } else {
            [200, 40, 40]
        };
        out = sightline_vision::overlay::draw_tag(&out, &format!("{label} {conf:.2}"), color);
    }
    out
}

/// Review-queue options.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// Items (default 20, at most 200).
    pub limit: Option<i64>,
    /// Confidence below which an item counts as low-confidence (default 0.5).
    pub low_confidence: Option<f64>,
    /// Include each row's full response (default true).
    pub include_response: Option<bool>,
}

/// The review queue: uncorrected requests, verdict `unknown` first, then low confidence (lowest
/// first), then detector/classifier disagreements, then the rest by lowest confidence. Each item
/// is a history item with `review_reason`.
#[utoipa::path(get, path = "/projects/{project}/review", params(("project" = String, Path), ReviewQuery),
    responses((status = 200, description = "{items: [history item + review_reason]}"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn review(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<ReviewQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let db = state.registry().db();
    sightline_db::projects::id_of(db, &project).await?;
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let low = q.low_confidence.unwrap_or(0.5);
    if !low.is_finite() {
        return Err(ApiError::BadRequest(
            "low_confidence must be a number".into(),
        ));
    }
    let include = q.include_response.unwrap_or(true);
    let rows = inference_log::review_queue(db, &project, limit, low).await?;
    let items: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(r, reason)| {
            let mut v = history_json(r, include);
            v["review_reason"] = serde_json::json!(reason);
            v
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items })))
}
