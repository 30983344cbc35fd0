//! The inference request log (`0004_inference_log`): one row per inspect request with its full
//! response, written in batches by the server's log writer, queried by `GET /history`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use crate::{Db, DbError, with_pool};

/// The JSON column type of [`InferenceLogRow::response`].
pub type JsonValue = Json<Value>;

/// One logged request.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InferenceLogRow {
    /// Request id.
    pub request_id: String,
    /// Project name (read: joined; write: resolved to the id).
    pub project: String,
    /// When the request was answered.
    pub created_at: DateTime<Utc>,
    /// `ok`, `ng` or `unknown`.
    pub verdict: String,
    /// Detector model version id.
    pub detector_version_id: Option<i64>,
    /// Classifier model version id.
    pub classifier_version_id: Option<i64>,
    /// Classifier label, else the most confident defect label.
    pub label: Option<String>,
    /// Its confidence.
    pub confidence: Option<f64>,
    /// Line.
    pub line: Option<String>,
    /// Lot.
    pub lot: Option<String>,
    /// Camera.
    pub camera: Option<String>,
    /// Part id.
    pub part_id: Option<String>,
    /// SHA-256 of the image bytes.
    pub image_sha256: String,
    /// Stored image, relative to the artifact root.
    pub image_path: Option<String>,
    /// Image width.
    pub width: i64,
    /// Image height.
    pub height: i64,
    /// Server-side latency.
    pub latency_ms: f64,
    /// The full response (JSON).
    pub response: Json<Value>,
}

/// Insert rows in one transaction; rows of unknown projects fail the whole batch.
pub async fn insert_batch(db: &Db, rows: &[InferenceLogRow]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    with_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO inference_log (request_id, project_id, created_at, verdict, \
                 detector_version_id, classifier_version_id, label, confidence, line, lot, camera, \
                 part_id, image_sha256, image_path, width, height, latency_ms, response) \
                 SELECT $1, p.id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 \
                 FROM projects p WHERE p.name = $2",
            )
            .bind(&r.request_id)
            .bind(&r.project)
            .bind(r.created_at)
            .bind(&r.verdict)
            .bind(r.detector_version_id)
            .bind(r.classifier_version_id)
            .bind(&r.label)
            .bind(r.confidence)
            .bind(&r.line)
            .bind(&r.lot)
            .bind(&r.camera)
            .bind(&r.part_id)
            .bind(&r.image_sha256)
            .bind(&r.image_path)
            .bind(r.width)
            .bind(r.height)
            .bind(r.latency_ms)
            .bind(&r.response)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok::<(), DbError>(())
    })
}

/// Filters of a history query (all optional; `limit` defaults to 50, at most 500).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryFilter {
    /// Project name.
    pub project: Option<String>,
    /// Verdict.
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
    /// From this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Before this time (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
    Time(DateTime<Utc>),
}

/// Rows matching `filter`, newest first, and the total count of matches.
pub async fn query(
    db: &Db,
    filter: &HistoryFilter,
) -> Result<(Vec<InferenceLogRow>, i64), DbError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut binds: Vec<Bind> = Vec::new();
    let mut push = |clause: &str, b: Bind| {
        binds.push(b);
        clauses.push(clause.replace('?', &format!("${}", binds.len())));
    };
    let text_filters = [
        ("p.name = ?", &filter.project),
        ("l.verdict = ?", &filter.verdict),
        ("l.label = ?", &filter.label),
        ("l.line = ?", &filter.line),
        ("l.lot = ?", &filter.lot),
        ("l.camera = ?", &filter.camera),
        ("l.part_id = ?", &filter.part_id),
    ];
    for (clause, v) in text_filters {
        if let Some(v) = v {
            push(clause, Bind::Text(v.clone()));
        }
    }
    if let Some(v) = filter.min_confidence {
        push("l.confidence >= ?", Bind::Float(v));
    }
    if let Some(v) = filter.max_confidence {
        push("l.confidence <= ?", Bind::Float(v));
    }
    if let Some(t) = filter.from {
        push("l.created_at >= ?", Bind::Time(t));
    }
    if let Some(t) = filter.to {
        push("l.created_at < ?", Bind::Time(t));
    }
    if let Some(id) = filter.model_version_id {
        binds.push(Bind::Int(id));
        let n = binds.len();
        clauses.push(format!(
            "(l.detector_version_id = ${n} OR l.classifier_version_id = ${n})"
        ));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let from_sql =
        format!("FROM inference_log l JOIN projects p ON p.id = l.project_id {where_sql}");
    let limit = filter.limit.unwrap_or(50).clamp(1, 500);
    let offset = filter.offset.unwrap_or(0).max(0);
    let count_sql = format!("SELECT COUNT(*) {from_sql}");
    let rows_sql = format!(
        "SELECT l.request_id, p.name AS project, l.created_at, l.verdict, l.detector_version_id, \
         l.classifier_version_id, l.label, l.confidence, l.line, l.lot, l.camera, l.part_id, \
         l.image_sha256, l.image_path, l.width, l.height, l.latency_ms, l.response {from_sql} \
         ORDER BY l.created_at DESC, l.request_id DESC LIMIT {limit} OFFSET {offset}"
    );
    macro_rules! bind_all {
        ($q:expr) => {{
            let mut q = $q;
            for b in &binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.clone()),
                    Bind::Int(i) => q.bind(*i),
                    Bind::Float(f) => q.bind(*f),
                    Bind::Time(t) => q.bind(*t),
                };
            }
            q
        }};
    }
    with_pool!(db, |pool| {
        let total: i64 = bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql)))
            .fetch_one(pool)
            .await?;
        let rows: Vec<InferenceLogRow> = bind_all!(sqlx::query_as::<_, InferenceLogRow>(
            sqlx::AssertSqlSafe(rows_sql)
        ))
        .fetch_all(pool)
        .await?;
        Ok((rows, total))
    })
}

/// One logged request by id.
pub async fn get(db: &Db, request_id: &str) -> Result<Option<InferenceLogRow>, DbError> {
    let filter_sql = "SELECT l.request_id, p.name AS project, l.created_at, l.verdict, \
        l.detector_version_id, l.classifier_version_id, l.label, l.confidence, l.line, l.lot, \
        l.camera, l.part_id, l.image_sha256, l.image_path, l.width, l.height, l.latency_ms, \
        l.response FROM inference_log l JOIN projects p ON p.id = l.project_id WHERE l.request_id = $1";
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, InferenceLogRow>(filter_sql)
            .bind(request_id)
            .fetch_optional(pool)
            .await?
    }))
}
