//! Operator corrections of logged inspections (migration `0006_corrections`).
//!
//! A correction says what an inspected image really shows: `accept` (the logged predictions are
//! right), `relabel` (a corrected image label and/or instance list) or `reject` (unusable). Several
//! corrections of one request may exist; the newest counts. Recording one sets
//! `inference_log.corrected`; building a dataset version from corrections stamps them with the
//! version id (`dataset_version_id`), so each is used once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::types::Json;

use crate::{Db, DbError, with_pool};

/// What a correction does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The logged predictions are right.
    Accept,
    /// The image label and/or instances are replaced by the correction's.
    Relabel,
    /// The image is unusable: left out of datasets.
    Reject,
}

impl Action {
    /// Lowercase name (as stored).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Relabel => "relabel",
            Action::Reject => "reject",
        }
    }

    /// Parse `accept|relabel|reject`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accept" => Some(Action::Accept),
            "relabel" => Some(Action::Relabel),
            "reject" => Some(Action::Reject),
            _ => None,
        }
    }
}

/// One corrected object: a label with polygon(s) and/or a box, in image pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrectedInstance {
    /// Project label.
    pub label: String,
    /// Polygons, each a flat `[x0, y0, x1, y1, …]` list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub polygons: Vec<Vec<f64>>,
    /// Box `[x1, y1, x2, y2]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_xyxy: Option<[f64; 4]>,
}

/// A stored correction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Correction {
    /// Database id (increasing: a larger id is newer).
    pub id: i64,
    /// The corrected request.
    pub request_id: String,
    /// Project name.
    pub project: String,
    /// Action.
    pub action: Action,
    /// Corrected image-level label.
    pub image_label: Option<String>,
    /// Corrected instances (the full list; `None`: not given).
    pub instances: Option<Vec<CorrectedInstance>>,
    /// Free-text note.
    pub note: Option<String>,
    /// Who corrected (API token name, `anonymous`, or the CLI user).
    pub author: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The dataset version built from it, once used.
    pub dataset_version_id: Option<String>,
}

/// A correction to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCorrection {
    /// The corrected request (must be logged).
    pub request_id: String,
    /// Action.
    pub action: Action,
    /// Corrected image-level label.
    pub image_label: Option<String>,
    /// Corrected instances.
    pub instances: Option<Vec<CorrectedInstance>>,
    /// Note.
    pub note: Option<String>,
    /// Author.
    pub author: String,
}

const SELECT: &str = "SELECT c.id, c.request_id, p.name AS project, c.action, c.image_label, \
    c.instances, c.note, c.author, c.created_at, c.dataset_version_id \
    FROM corrections c JOIN projects p ON p.id = c.project_id";

macro_rules! row_to_correction {
    ($row:expr) => {{
        let row = $row;
        let action: String = row.try_get("action")?;
        let instances: Option<Json<Vec<CorrectedInstance>>> = row.try_get("instances")?;
        Correction {
            id: row.try_get("id")?,
            request_id: row.try_get("request_id")?,
            project: row.try_get("project")?,
            action: Action::parse(&action)
                .ok_or_else(|| DbError::Corrupt(format!("unknown correction action `{action}`")))?,
            image_label: row.try_get("image_label")?,
            instances: instances.map(|Json(v)| v),
            note: row.try_get("note")?,
            author: row.try_get("author")?,
            created_at: row.try_get("created_at")?,
            dataset_version_id: row.try_get("dataset_version_id")?,
        }
    }};
}

/// Record a correction and flag its request as corrected. `Ok(None)` when the request is not
/// logged.
pub async fn insert(db: &Db, c: &NewCorrection) -> Result<Option<Correction>, DbError> {
    let now = crate::now();
    let instances = c.instances.as_ref().map(Json);
    let id: Option<i64> = with_pool!(db, |pool| {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO corrections (request_id, project_id, action, image_label, instances, \
             note, author, created_at) \
             SELECT l.request_id, l.project_id, $2, $3, $4, $5, $6, $7 FROM inference_log l \
             WHERE l.request_id = $1 RETURNING id",
        )
        .bind(&c.request_id)
        .bind(c.action.as_str())
        .bind(&c.image_label)
        .bind(instances)
        .bind(&c.note)
        .bind(&c.author)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if id.is_some() {
            sqlx::query("UPDATE inference_log SET corrected = TRUE WHERE request_id = $1")
                .bind(&c.request_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        id
    });
    match id {
        Some(id) => get(db, id).await,
        None => Ok(None),
    }
}

/// One correction by id.
pub async fn get(db: &Db, id: i64) -> Result<Option<Correction>, DbError> {
    let sql = format!("{SELECT} WHERE c.id = $1");
    Ok(with_pool!(db, |pool| {
        match sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?
        {
            Some(row) => Some(row_to_correction!(row)),
            None => None,
        }
    }))
}

/// Corrections of one request, newest first.
pub async fn for_request(db: &Db, request_id: &str) -> Result<Vec<Correction>, DbError> {
    let sql = format!("{SELECT} WHERE c.request_id = $1 ORDER BY c.id DESC");
    Ok(with_pool!(db, |pool| {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(request_id)
            .fetch_all(pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(row_to_correction!(row));
        }
        out
    }))
}

/// The newest correction of each request of `project` that has a correction not yet used in a
/// dataset version (oldest request first). The newest one counts even if an older one was used.
pub async fn unused_latest(db: &Db, project: &str) -> Result<Vec<Correction>, DbError> {
    let sql = format!(
        "{SELECT} WHERE p.name = $1 AND c.id IN (SELECT MAX(c2.id) FROM corrections c2 \
         WHERE c2.project_id = p.id GROUP BY c2.request_id) \
         AND c.dataset_version_id IS NULL ORDER BY c.id"
    );
    Ok(with_pool!(db, |pool| {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .fetch_all(pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(row_to_correction!(row));
        }
        out
    }))
}

/// Stamp every not-yet-used correction of `request_ids` with the dataset version built from
/// them; returns how many rows were stamped.
pub async fn mark_used(
    db: &Db,
    request_ids: &[String],
    dataset_version_id: &str,
) -> Result<u64, DbError> {
    with_pool!(db, |pool| {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let mut n = 0;
        for r in request_ids {
            n += sqlx::query(
                "UPDATE corrections SET dataset_version_id = $1 \
                 WHERE request_id = $2 AND dataset_version_id IS NULL",
            )
            .bind(dataset_version_id)
            .bind(r)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok::<u64, DbError>(n)
    })
}

/// Request ids of `project` whose corrections went into `dataset_version_id`.
pub async fn requests_of_version(
    db: &Db,
    project: &str,
    dataset_version_id: &str,
) -> Result<Vec<String>, DbError> {
    Ok(with_pool!(db, |pool| {
        sqlx::query_scalar(
            "SELECT DISTINCT c.request_id FROM corrections c JOIN projects p ON p.id = c.project_id \
             WHERE p.name = $1 AND c.dataset_version_id = $2 ORDER BY c.request_id",
        )
        .bind(project)
        .bind(dataset_version_id)
        .fetch_all(pool)
        .await?
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference_log::{
        self, Cursor, HistoryFilter, InferenceLogRow, ReviewReason, SortKey,
    };
    use crate::testing::{fresh_postgres, fresh_sqlite};

    fn row(
        id: &str,
        secs: i64,
        verdict: &str,
        conf: Option<f64>,
        disagree: bool,
    ) -> InferenceLogRow {
        InferenceLogRow {
            request_id: id.into(),
            project: "line_a".into(),
            created_at: DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
            verdict: verdict.into(),
            detector_version_id: None,
            classifier_version_id: None,
            label: Some("scratch".into()),
            confidence: conf,
            line: Some("L1".into()),
            lot: None,
            camera: Some(if secs % 2 == 0 { "c0" } else { "c1" }.into()),
            part_id: None,
            image_sha256: "ab".repeat(32),
            image_path: None,
            width: 32,
            height: 32,
            latency_ms: 5.0,
            response: Json(serde_json::json!({"request_id": id})),
            corrected: false,
            disagreement: disagree,
        }
    }

    async fn scenario(db: &Db) {
        let yaml = "project: line_a\nlabels: [ok, ng, scratch, dent]\nmodels:\n  classifier:\n    name: mobilenet_v3_small\n    weights: none\n";
        let m = sightline_core::Manifest::parse(yaml, "t.yaml").unwrap();
        crate::projects::apply(db, &m, yaml, false).await.unwrap();
        let rows = vec![
            row("r1", 1, "ok", Some(0.9), false),
            row("r2", 2, "unknown", Some(0.3), false),
            row("r3", 3, "ng", Some(0.2), false),
            row("r4", 4, "ng", Some(0.8), true),
            row("r5", 5, "ok", Some(0.7), false),
            row("r6", 6, "ok", None, false),
        ];
        inference_log::insert_batch(db, &rows).await.unwrap();

        // Review queue: unknown, then low confidence, then disagreement, then the rest.
        let q = inference_log::review_queue(db, "line_a", 10, 0.5)
            .await
            .unwrap();
        let order: Vec<(&str, ReviewReason)> =
            q.iter().map(|(r, w)| (r.request_id.as_str(), *w)).collect();
        assert_eq!(
            order,
            vec![
                ("r2", ReviewReason::Unknown),
                ("r6", ReviewReason::LowConfidence),
                ("r3", ReviewReason::LowConfidence),
                ("r4", ReviewReason::Disagreement),
                ("r5", ReviewReason::Other),
                ("r1", ReviewReason::Other),
            ]
        );
        assert_eq!(
            inference_log::review_queue(db, "line_a", 2, 0.5)
                .await
                .unwrap()
                .len(),
            2
        );

        // Corrections.
        let none = insert(
            db,
            &NewCorrection {
                request_id: "missing".into(),
                action: Action::Accept,
                image_label: None,
                instances: None,
                note: None,
                author: "op".into(),
            },
        )
        .await
        .unwrap();
        assert!(none.is_none());
        let inst = vec![CorrectedInstance {
            label: "dent".into(),
            polygons: vec![vec![1.0, 1.0, 10.0, 1.0, 10.0, 10.0]],
            box_xyxy: Some([1.0, 1.0, 10.0, 10.0]),
        }];
        let c1 = insert(
            db,
            &NewCorrection {
                request_id: "r2".into(),
                action: Action::Relabel,
                image_label: Some("ng".into()),
                instances: Some(inst.clone()),
                note: Some("a dent, not unknown".into()),
                author: "op".into(),
            },
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(c1.project, "line_a");
        assert_eq!(c1.instances.as_deref(), Some(inst.as_slice()));
        let c2 = insert(
            db,
            &NewCorrection {
                request_id: "r3".into(),
                action: Action::Reject,
                image_label: None,
                instances: None,
                note: None,
                author: "op2".into(),
            },
        )
        .await
        .unwrap()
        .unwrap();
        let c3 = insert(
            db,
            &NewCorrection {
                request_id: "r2".into(),
                action: Action::Accept,
                image_label: None,
                instances: None,
                note: None,
                author: "op".into(),
            },
        )
        .await
        .unwrap()
        .unwrap();
        let list = for_request(db, "r2").await.unwrap();
        assert_eq!(
            list.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![c3.id, c1.id]
        );
        let unused = unused_latest(db, "line_a").await.unwrap();
        assert_eq!(
            unused.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![c2.id, c3.id]
        );

        // History: corrected flag, filters, sort, keyset paging.
        let f = HistoryFilter {
            project: Some("line_a".into()),
            corrected: Some(true),
            ..Default::default()
        };
        let (got, total) = inference_log::query(db, &f).await.unwrap();
        assert_eq!(total, 2);
        assert!(got.iter().all(|r| r.corrected));
        assert!(
            !inference_log::review_queue(db, "line_a", 10, 0.5)
                .await
                .unwrap()
                .iter()
                .any(|(r, _)| r.request_id == "r2" || r.request_id == "r3")
        );
        let by_conf = HistoryFilter {
            sort: SortKey::Confidence,
            ascending: true,
            limit: Some(2),
            ..Default::default()
        };
        let (p1, total) = inference_log::query(db, &by_conf).await.unwrap();
        assert_eq!(total, 6);
        assert_eq!(
            p1.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(),
            vec!["r6", "r3"]
        );
        let mut seen: Vec<String> = p1.iter().map(|r| r.request_id.clone()).collect();
        let mut cursor = p1.last().map(Cursor::of);
        while let Some(c) = cursor {
            let c = Cursor::decode(&c.encode()).unwrap();
            let (page, _) = inference_log::query(
                db,
                &HistoryFilter {
                    after: Some(c),
                    ..by_conf.clone()
                },
            )
            .await
            .unwrap();
            seen.extend(page.iter().map(|r| r.request_id.clone()));
            cursor = if page.len() == 2 {
                page.last().map(Cursor::of)
            } else {
                None
            };
        }
        assert_eq!(seen, vec!["r6", "r3", "r2", "r5", "r4", "r1"]);
        let by_time = HistoryFilter {
            limit: Some(4),
            camera: Some("c1".into()),
            ..Default::default()
        };
        let (t1, total) = inference_log::query(db, &by_time).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(
            t1.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(),
            vec!["r5", "r3", "r1"]
        );
        let (t2, _) = inference_log::query(
            db,
            &HistoryFilter {
                after: Some(Cursor::of(&t1[0])),
                ..by_time.clone()
            },
        )
        .await
        .unwrap();
        assert_eq!(t2.len(), 2);
        let w = inference_log::window(
            db,
            "line_a",
            DateTime::from_timestamp(1_800_000_004, 0).unwrap(),
            100,
        )
        .await
        .unwrap();
        assert_eq!(w.len(), 3);

        // Using corrections stamps every unused one of those requests.
        let v = crate::datasets::NewDatasetVersion {
            id: "0123456789abcdef0123456789abcdef",
            parent_id: None,
            message: "from corrections",
            author: "t",
            stats: serde_json::json!({}),
            source: "corrections",
            format: None,
            nfiles: 1,
            size_bytes: 1,
            images: 1,
            instances: 0,
            notes: &[],
        };
        crate::datasets::insert(db, "line_a", &v).await.unwrap();
        let n = mark_used(db, &["r2".into(), "r3".into()], v.id)
            .await
            .unwrap();
        assert_eq!(n, 3);
        assert!(unused_latest(db, "line_a").await.unwrap().is_empty());
        assert_eq!(
            requests_of_version(db, "line_a", v.id).await.unwrap(),
            vec!["r2", "r3"]
        );
    }

    #[tokio::test]
    async fn corrections_history_review_on_sqlite() {
        let t = fresh_sqlite().await.unwrap();
        scenario(&t.db).await;
    }

    #[tokio::test]
    async fn corrections_history_review_on_postgres() {
        let t = fresh_postgres()
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 must be reachable");
        scenario(&t.db).await;
    }
}
