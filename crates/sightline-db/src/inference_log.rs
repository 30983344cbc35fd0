//! The inference request log (`0004_inference_log`, flags from `0006_corrections`): one row per
//! inspect request with its full response, written in batches by the server's log writer,
//! queried by `GET /history` (filters, sort, offset or keyset paging), the review queue and
//! monitoring.

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
    /// Whether an operator correction exists (set by [`crate::corrections::insert`]).
    pub corrected: bool,
    /// Whether detector and classifier disagreed (computed by the writer from the response).
    pub disagreement: bool,
}

/// Insert rows in one transaction; rows of unknown projects fail the whole batch.
pub async fn insert_batch(db: &Db, rows: &[InferenceLogRow]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    with_pool!(db, |pool| {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO inference_log (request_id, project_id, created_at, verdict, \
                 detector_version_id, classifier_version_id, label, confidence, line, lot, camera, \
                 part_id, image_sha256, image_path, width, height, latency_ms, response, corrected, \
                 disagreement) \
                 SELECT $1, p.id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20 \
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
            .bind(r.corrected)
            .bind(r.disagreement)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok::<(), DbError>(())
    })
}

/// Columns of [`InferenceLogRow`] as selected from `inference_log l JOIN projects p`.
const COLUMNS: &str = "l.request_id, p.name AS project, l.created_at, l.verdict, \
    l.detector_version_id, l.classifier_version_id, l.label, l.confidence, l.line, l.lot, \
    l.camera, l.part_id, l.image_sha256, l.image_path, l.width, l.height, l.latency_ms, \
    l.response, l.corrected, l.disagreement";

/// Sort key of a history query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    /// By time (then request id).
    #[default]
    Time,
    /// By confidence (missing confidence sorts as -1), then time, then request id.
    Confidence,
}

/// Filters of a history query (all optional; `limit` defaults to 50, at most [`MAX_LIMIT`]).
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
    /// Corrected (`true`) or not (`false`).
    pub corrected: Option<bool>,
    /// Sort key.
    pub sort: SortKey,
    /// Ascending instead of the default descending order.
    pub ascending: bool,
    /// Keyset paging: rows strictly after this cursor in the sort order (offset is ignored).
    pub after: Option<Cursor>,
    /// Page size.
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// Largest page of [`query`] (exports go through [`query_unbounded`]).
pub const MAX_LIMIT: i64 = 500;

/// A keyset-paging position: the sort key values of the last row of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// Confidence (as sorted: missing = -1); only used with [`SortKey::Confidence`].
    pub confidence: f64,
    /// Time.
    pub created_at: DateTime<Utc>,
    /// Request id.
    pub request_id: String,
}

impl Cursor {
    /// The cursor positioned at `row`.
    pub fn of(row: &InferenceLogRow) -> Self {
        Self {
            confidence: row.confidence.unwrap_or(-1.0),
            created_at: row.created_at,
            request_id: row.request_id.clone(),
        }
    }

    /// Opaque text form (`<confidence>~<time micros>~<request id>`).
    pub fn encode(&self) -> String {
        format!(
            "{}~{}~{}",
            self.confidence,
            self.created_at.timestamp_micros(),
            self.request_id
        )
    }

    /// Parse [`Cursor::encode`]'s form.
    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '~');
        let confidence: f64 = parts.next()?.parse().ok()?;
        let micros: i64 = parts.next()?.parse().ok()?;
        let request_id = parts.next()?.to_string();
        if !confidence.is_finite() || request_id.is_empty() {
            return None;
        }
        Some(Self {
            confidence,
            created_at: DateTime::from_timestamp_micros(micros)?,
            request_id,
        })
    }
}

enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
    Time(DateTime<Utc>),
    Bool(bool),
}

macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::Int(i) => q.bind(*i),
                Bind::Float(f) => q.bind(*f),
                Bind::Time(t) => q.bind(*t),
                Bind::Bool(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// WHERE clauses (without the cursor) and their binds.
fn where_clauses(filter: &HistoryFilter) -> (Vec<String>, Vec<Bind>) {
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
    if let Some(c) = filter.corrected {
        push("l.corrected = ?", Bind::Bool(c));
    }
    if let Some(id) = filter.model_version_id {
        binds.push(Bind::Int(id));
        let n = binds.len();
        clauses.push(format!(
            "(l.detector_version_id = ${n} OR l.classifier_version_id = ${n})"
        ));
    }
    (clauses, binds)
}

async fn run_query(
    db: &Db,
    filter: &HistoryFilter,
    limit: i64,
    with_total: bool,
) -> Result<(Vec<InferenceLogRow>, i64), DbError> {
    let (mut clauses, mut binds) = where_clauses(filter);
    let count_where = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let count_binds = binds.len();
    let dir = if filter.ascending { "ASC" } else { "DESC" };
    let cmp = if filter.ascending { ">" } else { "<" };
    let (order, key) = match filter.sort {
        SortKey::Time => (
            format!("l.created_at {dir}, l.request_id {dir}"),
            "(l.created_at, l.request_id)",
        ),
        SortKey::Confidence => (
            format!("COALESCE(l.confidence, -1.0) {dir}, l.created_at {dir}, l.request_id {dir}"),
            "(COALESCE(l.confidence, -1.0), l.created_at, l.request_id)",
        ),
    };
    let offset = if let Some(c) = &filter.after {
        let mut ph = Vec::new();
        if filter.sort == SortKey::Confidence {
            binds.push(Bind::Float(c.confidence));
            ph.push(format!("${}", binds.len()));
        }
        binds.push(Bind::Time(c.created_at));
        ph.push(format!("${}", binds.len()));
        binds.push(Bind::Text(c.request_id.clone()));
        ph.push(format!("${}", binds.len()));
        clauses.push(format!("{key} {cmp} ({})", ph.join(", ")));
        0
    } else {
        filter.offset.unwrap_or(0).max(0)
    };
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let base = "FROM inference_log l JOIN projects p ON p.id = l.project_id";
    let count_sql = format!("SELECT COUNT(*) {base} {count_where}");
    let rows_sql = format!(
        "SELECT {COLUMNS} {base} {where_sql} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    );
    with_pool!(db, |pool| {
        let total: i64 = if with_total {
            bind_all!(
                sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql)),
                &binds[..count_binds]
            )
            .fetch_one(pool)
            .await?
        } else {
            -1
        };
        let rows: Vec<InferenceLogRow> = bind_all!(
            sqlx::query_as::<_, InferenceLogRow>(sqlx::AssertSqlSafe(rows_sql)),
            &binds
        )
        .fetch_all(pool)
        .await?;
        Ok((rows, total))
    })
}

/// Rows matching `filter` in its sort order (newest first by default), and the total count of
/// matches (ignoring paging).
pub async fn query(
    db: &Db,
    filter: &HistoryFilter,
) -> Result<(Vec<InferenceLogRow>, i64), DbError> {
    let limit = filter.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    run_query(db, filter, limit, true).await
}

/// Like [`query`] with a caller-chosen limit (exports) and no total.
pub async fn query_unbounded(
    db: &Db,
    filter: &HistoryFilter,
    limit: i64,
) -> Result<Vec<InferenceLogRow>, DbError> {
    Ok(run_query(db, filter, limit.max(1), false).await?.0)
}

/// One logged request by id.
pub async fn get(db: &Db, request_id: &str) -> Result<Option<InferenceLogRow>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM inference_log l JOIN projects p ON p.id = l.project_id \
         WHERE l.request_id = $1"
    );
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, InferenceLogRow>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(request_id)
            .fetch_optional(pool)
            .await?
    }))
}

/// Why a request is in the review queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// The verdict is `unknown`.
    Unknown,
    /// Confidence below the low-confidence bound.
    LowConfidence,
    /// Detector and classifier disagree.
    Disagreement,
    /// Anything else (lowest confidence first).
    Other,
}

/// The review queue of a project: uncorrected requests, verdict `unknown` first, then those with
/// confidence below `low_confidence` (lowest first; a missing confidence counts as -1), then detector/classifier disagreements, then
/// the rest by lowest confidence. Each tier is one indexed query.
pub async fn review_queue(
    db: &Db,
    project: &str,
    limit: i64,
    low_confidence: f64,
) -> Result<Vec<(InferenceLogRow, ReviewReason)>, DbError> {
    let tiers = [
        (ReviewReason::Unknown, "l.verdict = 'unknown'"),
        (
            ReviewReason::LowConfidence,
            "l.verdict <> 'unknown' AND COALESCE(l.confidence, -1.0) < $2",
        ),
        (
            ReviewReason::Disagreement,
            "l.verdict <> 'unknown' AND COALESCE(l.confidence, -1.0) >= $2 \
             AND l.disagreement = TRUE",
        ),
        (
            ReviewReason::Other,
            "l.verdict <> 'unknown' AND COALESCE(l.confidence, -1.0) >= $2 \
             AND l.disagreement = FALSE",
        ),
    ];
    let mut out = Vec::new();
    for (reason, cond) in tiers {
        let left = limit - out.len() as i64;
        if left <= 0 {
            break;
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM inference_log l JOIN projects p ON p.id = l.project_id \
             WHERE p.name = $1 AND l.corrected = FALSE AND {cond} \
             ORDER BY COALESCE(l.confidence, -1.0) ASC, l.created_at DESC, l.request_id DESC \
             LIMIT {left}"
        );
        let uses_low = cond.contains("$2");
        let rows: Vec<InferenceLogRow> = with_pool!(db, |pool| {
            let q = sqlx::query_as::<_, InferenceLogRow>(sqlx::AssertSqlSafe(sql)).bind(project);
            let q = if uses_low { q.bind(low_confidence) } else { q };
            q.fetch_all(pool).await?
        });
        out.extend(rows.into_iter().map(|r| (r, reason)));
    }
    Ok(out)
}

/// What monitoring needs of one logged request.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WindowRow {
    /// Verdict.
    pub verdict: String,
    /// Latency.
    pub latency_ms: f64,
    /// The full response.
    pub response: Json<Value>,
}

/// The newest (at most `cap`) requests of `project` logged at or after `from`.
pub async fn window(
    db: &Db,
    project: &str,
    from: DateTime<Utc>,
    cap: i64,
) -> Result<Vec<WindowRow>, DbError> {
    let sql = format!(
        "SELECT l.verdict, l.latency_ms, l.response FROM inference_log l \
         JOIN projects p ON p.id = l.project_id WHERE p.name = $1 AND l.created_at >= $2 \
         ORDER BY l.created_at DESC LIMIT {}",
        cap.max(1)
    );
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, WindowRow>(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .bind(from)
            .fetch_all(pool)
            .await?
    }))
}
