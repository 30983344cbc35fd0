//! Dataset version records (migrations 0002, 0007): one row per immutable, content-addressed
//! version (id = md5 of its DVC `.dir` object), with parent, message, author, time, stats.
//!
//! The same content ingested into two projects has the same id, so rows are keyed by
//! `(project, id)` (migration 0007); a parent is always a version of the same project.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::types::Json;

use crate::{Db, DbError, with_pool};

/// A dataset version row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DatasetVersionRow {
    /// Version id (32 hex).
    pub id: String,
    /// Project name.
    pub project: String,
    /// Parent version id.
    pub parent_id: Option<String>,
    /// Message.
    pub message: String,
    /// Author.
    pub author: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Statistics (JSON).
    pub stats: serde_json::Value,
    /// Source it came from.
    pub source: String,
    /// Source format.
    pub format: Option<String>,
    /// Files in the version tree.
    pub nfiles: i64,
    /// Total bytes.
    pub size_bytes: i64,
    /// Images.
    pub images: i64,
    /// Instances.
    pub instances: i64,
    /// Conversion notes and warnings.
    pub notes: Vec<String>,
}

/// A new version to record.
#[derive(Debug, Clone)]
pub struct NewDatasetVersion<'a> {
    /// Version id.
    pub id: &'a str,
    /// Parent version id.
    pub parent_id: Option<&'a str>,
    /// Message.
    pub message: &'a str,
    /// Author.
    pub author: &'a str,
    /// Statistics (JSON).
    pub stats: serde_json::Value,
    /// Source.
    pub source: &'a str,
    /// Format.
    pub format: Option<&'a str>,
    /// Files in the tree.
    pub nfiles: i64,
    /// Total bytes.
    pub size_bytes: i64,
    /// Images.
    pub images: i64,
    /// Instances.
    pub instances: i64,
    /// Notes.
    pub notes: &'a [String],
}

macro_rules! select_versions {
    ($where:literal) => {
        concat!(
            "SELECT d.id, p.name AS project, d.parent_id, d.message, d.author, d.created_at, ",
            "d.stats, d.source, d.format, d.nfiles, d.size_bytes, d.images, d.instances, d.notes ",
            "FROM dataset_versions d JOIN projects p ON p.id = d.project_id ",
            $where
        )
    };
}

/// Record a version of `project`; returns `false` when the project already has a row with that id.
pub async fn insert(db: &Db, project: &str, v: &NewDatasetVersion<'_>) -> Result<bool, DbError> {
    let pid = crate::projects::id_of(db, project).await?;
    let now = crate::now();
    let n = with_pool!(db, |pool| {
        sqlx::query(
            "INSERT INTO dataset_versions (id, project_id, parent_id, message, author, created_at, \
             stats, source, format, nfiles, size_bytes, images, instances, notes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (project_id, id) DO NOTHING",
        )
        .bind(v.id)
        .bind(pid)
        .bind(v.parent_id)
        .bind(v.message)
        .bind(v.author)
        .bind(now)
        .bind(Json(&v.stats))
        .bind(v.source)
        .bind(v.format)
        .bind(v.nfiles)
        .bind(v.size_bytes)
        .bind(v.images)
        .bind(v.instances)
        .bind(Json(v.notes))
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

macro_rules! row_to_version {
    ($row:expr) => {{
        let row = $row;
        let Json(stats): Json<serde_json::Value> = row.try_get("stats")?;
        let Json(notes): Json<Vec<String>> = row.try_get("notes")?;
        DatasetVersionRow {
            id: row.try_get("id")?,
            project: row.try_get("project")?,
            parent_id: row.try_get("parent_id")?,
            message: row.try_get("message")?,
            author: row.try_get("author")?,
            created_at: row.try_get("created_at")?,
            stats,
            source: row.try_get("source")?,
            format: row.try_get("format")?,
            nfiles: row.try_get("nfiles")?,
            size_bytes: row.try_get("size_bytes")?,
            images: row.try_get("images")?,
            instances: row.try_get("instances")?,
            notes,
        }
    }};
}

/// Versions of a project, oldest first.
pub async fn list(db: &Db, project: &str) -> Result<Vec<DatasetVersionRow>, DbError> {
    let pid = crate::projects::id_of(db, project).await?;
    const SQL: &str = select_versions!("WHERE d.project_id = $1 ORDER BY d.created_at, d.id");
    let out = with_pool!(db, |pool| {
        let rows = sqlx::query(SQL).bind(pid).fetch_all(pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(row_to_version!(row));
        }
        out
    });
    Ok(out)
}

/// One version of `project` by id.
pub async fn get(db: &Db, project: &str, id: &str) -> Result<Option<DatasetVersionRow>, DbError> {
    const SQL: &str = select_versions!("WHERE p.name = $1 AND d.id = $2");
    let out = with_pool!(db, |pool| {
        match sqlx::query(SQL)
            .bind(project)
            .bind(id)
            .fetch_optional(pool)
            .await?
        {
            Some(row) => Some(row_to_version!(row)),
            None => None,
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fresh_postgres, fresh_sqlite};

    async fn scenario(db: &Db) {
        let yaml = "project: line_a\nlabels: [ok, ng, scratch, dent]\nmodels:\n  detector:\n    name: yolov8n-seg\n    hyperparameters:\n      epochs: 1\n";
        let m = sightline_core::Manifest::parse(yaml, "test.yaml").unwrap();
        crate::projects::apply(db, &m, yaml, false).await.unwrap();
        let notes = vec!["a note".to_string()];
        let v1 = NewDatasetVersion {
            id: "0123456789abcdef0123456789abcdef",
            parent_id: None,
            message: "first",
            author: "tester",
            stats: serde_json::json!({"images": 3}),
            source: "/data/coco",
            format: Some("coco"),
            nfiles: 4,
            size_bytes: 1234,
            images: 3,
            instances: 5,
            notes: &notes,
        };
        assert!(insert(db, "line_a", &v1).await.unwrap());
        assert!(
            !insert(db, "line_a", &v1).await.unwrap(),
            "same id is recorded once"
        );
        let v2 = NewDatasetVersion {
            id: "fedcba9876543210fedcba9876543210",
            parent_id: Some(v1.id),
            message: "second",
            ..v1.clone()
        };
        assert!(insert(db, "line_a", &v2).await.unwrap());
        let all = list(db, "line_a").await.unwrap();
        assert_eq!(all.len(), 2);
        let got = get(db, "line_a", v2.id).await.unwrap().unwrap();
        assert_eq!(got.parent_id.as_deref(), Some(v1.id));
        assert_eq!(got.project, "line_a");
        assert_eq!(got.stats["images"], 3);
        assert_eq!(got.notes, notes);
        assert_eq!(
            (got.nfiles, got.size_bytes, got.images, got.instances),
            (4, 1234, 3, 5)
        );
        assert!(get(db, "line_a", "nope").await.unwrap().is_none());
        // Unknown parent is refused by the foreign key.
        let orphan = NewDatasetVersion {
            id: "11111111111111111111111111111111",
            parent_id: Some("missing"),
            ..v1.clone()
        };
        assert!(insert(db, "line_a", &orphan).await.is_err());
        assert!(insert(db, "no_such_project", &v1).await.is_err());

        // The same content in a second project: its own row, same id (migration 0007).
        let yaml_b = yaml.replace("line_a", "line_b");
        let m = sightline_core::Manifest::parse(&yaml_b, "b.yaml").unwrap();
        crate::projects::apply(db, &m, &yaml_b, false)
            .await
            .unwrap();
        let in_b = NewDatasetVersion {
            message: "same data, other project",
            ..v1.clone()
        };
        assert!(insert(db, "line_b", &in_b).await.unwrap());
        assert!(!insert(db, "line_b", &in_b).await.unwrap());
        let b = get(db, "line_b", v1.id).await.unwrap().unwrap();
        assert_eq!(
            (b.project.as_str(), b.message.as_str()),
            ("line_b", "same data, other project")
        );
        let a = get(db, "line_a", v1.id).await.unwrap().unwrap();
        assert_eq!(a.message, "first");
        assert_eq!(list(db, "line_b").await.unwrap().len(), 1);
        assert_eq!(list(db, "line_a").await.unwrap().len(), 2);
        // A parent must be a version of the same project.
        let cross = NewDatasetVersion {
            id: "22222222222222222222222222222222",
            parent_id: Some(v2.id),
            ..v1.clone()
        };
        assert!(
            insert(db, "line_b", &cross).await.is_err(),
            "v2 exists only in line_a"
        );
        // Model versions link to a version of their own project.
        let pa = crate::projects::id_of(db, "line_a").await.unwrap();
        let pb = crate::projects::id_of(db, "line_b").await.unwrap();
        assert_eq!(
            link(db, pa, 1, "fedcba9876543210fedcba9876543210")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            link(db, pb, 1, "0123456789abcdef0123456789abcdef")
                .await
                .unwrap(),
            1
        );
        assert!(
            link(db, pb, 2, "fedcba9876543210fedcba9876543210")
                .await
                .is_err(),
            "v2 is line_a's"
        );
    }

    /// Insert a model version of project `pid` that links dataset version `ds`.
    async fn link(db: &Db, pid: i64, version: i64, ds: &str) -> Result<u64, sqlx::Error> {
        const SQL: &str = "INSERT INTO model_versions (project_id, task, version, \
            checkpoint_sha256, dataset_version_id, created_at) VALUES ($1, 'segment', $2, 'x', $3, $4)";
        Ok(with_pool!(db, |pool| {
            sqlx::query(SQL)
                .bind(pid)
                .bind(version)
                .bind(ds)
                .bind(crate::now())
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    #[tokio::test]
    async fn dataset_versions_on_sqlite() {
        let t = fresh_sqlite().await.unwrap();
        scenario(&t.db).await;
    }

    #[tokio::test]
    async fn dataset_versions_on_postgres() {
        let t = fresh_postgres()
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 must be reachable");
        scenario(&t.db).await;
    }
}
