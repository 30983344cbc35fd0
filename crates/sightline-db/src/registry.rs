//! Registry records: model versions (columns added by `0003_registry`), their evaluations,
//! MLflow-style aliases and the audit trail of alias changes. Typed views and the registration
//! workflow live in `sightline-registry`; this module is the SQL.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use crate::{Db, DbError, with_pool};

/// A `model_versions` row joined with its project name.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ModelVersionRow {
    /// Id.
    pub id: i64,
    /// Project name.
    pub project: String,
    /// `segment` or `classify`.
    pub task: String,
    /// Version number within project + task.
    pub version: i64,
    /// Architecture.
    pub model_name: String,
    /// SHA-256 of the checkpoint.
    pub checkpoint_sha256: String,
    /// Checkpoint path as given at registration.
    pub checkpoint_path: String,
    /// Bundle folder relative to the artifact root.
    pub bundle_dir: String,
    /// Label names by class id (JSON array).
    pub labels: Json<Value>,
    /// Preprocessing (JSON).
    pub preprocessing: Json<Value>,
    /// Thresholds (JSON object).
    pub thresholds: Json<Value>,
    /// Business rules (JSON object).
    pub business_rules: Json<Value>,
    /// Experiment id.
    pub experiment_id: Option<String>,
    /// Dataset version id.
    pub dataset_version_id: Option<String>,
    /// Evaluation report reference.
    pub evaluation_report: Option<String>,
    /// Note.
    pub note: Option<String>,
    /// Registration time.
    pub created_at: DateTime<Utc>,
}

const MODEL_COLUMNS: &str = "mv.id, p.name AS project, mv.task, mv.version, mv.model_name, \
    mv.checkpoint_sha256, mv.checkpoint_path, mv.bundle_dir, mv.labels, mv.preprocessing, \
    mv.thresholds, mv.business_rules, mv.experiment_id, mv.dataset_version_id, \
    mv.evaluation_report, mv.note, mv.created_at \
    FROM model_versions mv JOIN projects p ON p.id = mv.project_id";

/// A model version to insert (the version number is given: see [`next_version`]).
#[derive(Debug, Clone)]
pub struct NewModelVersionRow<'a> {
    /// Project id.
    pub project_id: i64,
    /// Task.
    pub task: &'a str,
    /// Version number.
    pub version: i64,
    /// Architecture.
    pub model_name: &'a str,
    /// Checkpoint SHA-256.
    pub checkpoint_sha256: &'a str,
    /// Checkpoint path as given.
    pub checkpoint_path: &'a str,
    /// Bundle folder.
    pub bundle_dir: &'a str,
    /// Labels.
    pub labels: Value,
    /// Preprocessing.
    pub preprocessing: Value,
    /// Thresholds.
    pub thresholds: Value,
    /// Business rules.
    pub business_rules: Value,
    /// Experiment id.
    pub experiment_id: Option<&'a str>,
    /// Dataset version id (must exist in `dataset_versions`).
    pub dataset_version_id: Option<&'a str>,
    /// Evaluation report.
    pub evaluation_report: Option<&'a str>,
    /// Note.
    pub note: Option<&'a str>,
}

/// The next free version number of a project + task.
pub async fn next_version(db: &Db, project_id: i64, task: &str) -> Result<i64, DbError> {
    let max: Option<i64> = with_pool!(db, |pool| {
        sqlx::query_scalar(
            "SELECT MAX(version) FROM model_versions WHERE project_id = $1 AND task = $2",
        )
        .bind(project_id)
        .bind(task)
        .fetch_one(pool)
        .await?
    });
    Ok(max.unwrap_or(0) + 1)
}

/// Insert a model version; a taken version number fails with a unique-constraint error.
pub async fn insert_model_version(
    db: &Db,
    row: &NewModelVersionRow<'_>,
) -> Result<ModelVersionRow, DbError> {
    let now = crate::now();
    let id: i64 = with_pool!(db, |pool| {
        sqlx::query_scalar(
            "INSERT INTO model_versions (project_id, task, version, checkpoint_sha256, \
             dataset_version_id, labels, metadata, created_at, model_name, checkpoint_path, \
             bundle_dir, preprocessing, thresholds, business_rules, experiment_id, \
             evaluation_report, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             RETURNING id",
        )
        .bind(row.project_id)
        .bind(row.task)
        .bind(row.version)
        .bind(row.checkpoint_sha256)
        .bind(row.dataset_version_id)
        .bind(Json(&row.labels))
        .bind(Json(serde_json::json!({})))
        .bind(now)
        .bind(row.model_name)
        .bind(row.checkpoint_path)
        .bind(row.bundle_dir)
        .bind(Json(&row.preprocessing))
        .bind(Json(&row.thresholds))
        .bind(Json(&row.business_rules))
        .bind(row.experiment_id)
        .bind(row.evaluation_report)
        .bind(row.note)
        .fetch_one(pool)
        .await?
    });
    get_model_version(db, id)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("model version {id} vanished after insert")))
}

/// A model version by id.
pub async fn get_model_version(db: &Db, id: i64) -> Result<Option<ModelVersionRow>, DbError> {
    let sql = format!("SELECT {MODEL_COLUMNS} WHERE mv.id = $1");
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, ModelVersionRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?
    }))
}

/// A model version by project name, task and version number.
pub async fn find_model_version(
    db: &Db,
    project: &str,
    task: &str,
    version: i64,
) -> Result<Option<ModelVersionRow>, DbError> {
    let sql =
        format!("SELECT {MODEL_COLUMNS} WHERE p.name = $1 AND mv.task = $2 AND mv.version = $3");
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, ModelVersionRow>(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .bind(task)
            .bind(version)
            .fetch_optional(pool)
            .await?
    }))
}

/// Model versions, optionally of one project and/or task, ordered by project, task, version.
pub async fn list_model_versions(
    db: &Db,
    project: Option<&str>,
    task: Option<&str>,
) -> Result<Vec<ModelVersionRow>, DbError> {
    let sql = format!(
        "SELECT {MODEL_COLUMNS} WHERE ($1 IS NULL OR p.name = $1) AND ($2 IS NULL OR mv.task = $2) \
         ORDER BY p.name, mv.task, mv.version"
    );
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, ModelVersionRow>(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .bind(task)
            .fetch_all(pool)
            .await?
    }))
}

/// Model versions trained on a dataset version (lineage, dataset → models).
pub async fn models_for_dataset(
    db: &Db,
    dataset_version_id: &str,
) -> Result<Vec<ModelVersionRow>, DbError> {
    let sql = format!(
        "SELECT {MODEL_COLUMNS} WHERE mv.dataset_version_id = $1 ORDER BY p.name, mv.task, mv.version"
    );
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, ModelVersionRow>(sqlx::AssertSqlSafe(sql))
            .bind(dataset_version_id)
            .fetch_all(pool)
            .await?
    }))
}

/// Whether dataset version `id` exists in project `project_id`. Versions are keyed by
/// (project, id) since migration 0007: the same content ingested into two projects has the same
/// id, so an id alone does not say whether this project has it.
pub async fn dataset_version_exists(db: &Db, project_id: i64, id: &str) -> Result<bool, DbError> {
    let n: i64 = with_pool!(db, |pool| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM dataset_versions WHERE project_id = $1 AND id = $2",
        )
        .bind(project_id)
        .bind(id)
        .fetch_one(pool)
        .await?
    });
    Ok(n > 0)
}

/// A `model_evaluations` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EvaluationRow {
    /// Id.
    pub id: i64,
    /// Model version evaluated.
    pub model_version_id: Option<i64>,
    /// Experiment evaluated.
    pub experiment_id: Option<String>,
    /// Dataset version evaluated on.
    pub dataset_version_id: Option<String>,
    /// Split.
    pub split: Option<String>,
    /// Gate-relevant numbers (JSON).
    pub summary: Json<Value>,
    /// Full payload (JSON).
    pub details: Json<Value>,
    /// Report path.
    pub report_path: Option<String>,
    /// When recorded.
    pub created_at: DateTime<Utc>,
}

/// An evaluation to record.
#[derive(Debug, Clone)]
pub struct NewEvaluationRow<'a> {
    /// Model version (or `None` with an experiment id).
    pub model_version_id: Option<i64>,
    /// Experiment id.
    pub experiment_id: Option<&'a str>,
    /// Dataset version.
    pub dataset_version_id: Option<&'a str>,
    /// Split.
    pub split: Option<&'a str>,
    /// Summary.
    pub summary: Value,
    /// Details.
    pub details: Value,
    /// Report path.
    pub report_path: Option<&'a str>,
}

const EVAL_FIELDS: &str = "id, model_version_id, experiment_id, dataset_version_id, split, summary, \
    details, report_path, created_at";

/// Record an evaluation.
pub async fn insert_evaluation(
    db: &Db,
    row: &NewEvaluationRow<'_>,
) -> Result<EvaluationRow, DbError> {
    let now = crate::now();
    let sql = format!(
        "INSERT INTO model_evaluations (model_version_id, experiment_id, dataset_version_id, split, \
         summary, details, report_path, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         RETURNING {EVAL_FIELDS}"
    );
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, EvaluationRow>(sqlx::AssertSqlSafe(sql))
            .bind(row.model_version_id)
            .bind(row.experiment_id)
            .bind(row.dataset_version_id)
            .bind(row.split)
            .bind(Json(&row.summary))
            .bind(Json(&row.details))
            .bind(row.report_path)
            .bind(now)
            .fetch_one(pool)
            .await?
    }))
}

/// Evaluations of a model version, directly or through its experiment, newest first.
pub async fn evaluations_for_model(
    db: &Db,
    model_version_id: i64,
    experiment_id: Option<&str>,
) -> Result<Vec<EvaluationRow>, DbError> {
    let sql = format!(
        "SELECT {EVAL_FIELDS} FROM model_evaluations WHERE model_version_id = $1 \
         OR ($2 IS NOT NULL AND model_version_id IS NULL AND experiment_id = $2) \
         ORDER BY created_at DESC, id DESC"
    );
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, EvaluationRow>(sqlx::AssertSqlSafe(sql))
            .bind(model_version_id)
            .bind(experiment_id)
            .fetch_all(pool)
            .await?
    }))
}

/// An alias joined with its target's version number.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AliasRow {
    /// Project name.
    pub project: String,
    /// Task.
    pub task: String,
    /// Alias.
    pub alias: String,
    /// Target model version id.
    pub model_version_id: i64,
    /// Target version number.
    pub version: i64,
    /// When set.
    pub updated_at: DateTime<Utc>,
}

/// Aliases, optionally of one project/task, ordered by project, task, alias.
pub async fn list_aliases(
    db: &Db,
    project: Option<&str>,
    task: Option<&str>,
) -> Result<Vec<AliasRow>, DbError> {
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, AliasRow>(
            "SELECT p.name AS project, a.task, a.alias, a.model_version_id, mv.version, a.updated_at \
             FROM model_aliases a JOIN projects p ON p.id = a.project_id \
             JOIN model_versions mv ON mv.id = a.model_version_id \
             WHERE ($1 IS NULL OR p.name = $1) AND ($2 IS NULL OR a.task = $2) \
             ORDER BY p.name, a.task, a.alias",
        )
        .bind(project)
        .bind(task)
        .fetch_all(pool)
        .await?
    }))
}

/// PostgreSQL notification channel on which every alias change is announced, with the payload
/// `<project>/<task>` (sent inside the changing transaction, so delivered on commit).
pub const ALIAS_CHANNEL: &str = "sightline_aliases";

/// Point `alias` of the model version's project + task at it, recording the change.
/// Returns the previous target id, if any. On PostgreSQL the change is announced on
/// [`ALIAS_CHANNEL`] in the same transaction.
pub async fn set_alias(
    db: &Db,
    model_version_id: i64,
    alias: &str,
    forced: bool,
    overridden: &[String],
    actor: &str,
) -> Result<Option<i64>, DbError> {
    let now = crate::now();
    let is_postgres = matches!(db, Db::Postgres(_));
    with_pool!(db, |pool| {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let target: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT mv.project_id, mv.task, p.name FROM model_versions mv \
             JOIN projects p ON p.id = mv.project_id WHERE mv.id = $1",
        )
        .bind(model_version_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((project_id, task, project)) = target else {
            return Err(DbError::Corrupt(format!(
                "model version {model_version_id} does not exist"
            )));
        };
        let previous: Option<i64> = sqlx::query_scalar(
            "SELECT model_version_id FROM model_aliases WHERE project_id = $1 AND task = $2 AND alias = $3",
        )
        .bind(project_id)
        .bind(&task)
        .bind(alias)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO model_aliases (project_id, task, alias, model_version_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, task, alias) \
             DO UPDATE SET model_version_id = excluded.model_version_id, updated_at = excluded.updated_at",
        )
        .bind(project_id)
        .bind(&task)
        .bind(alias)
        .bind(model_version_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO model_alias_events (project_id, task, alias, from_model_version_id, \
             to_model_version_id, forced, overridden, actor, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(project_id)
        .bind(&task)
        .bind(alias)
        .bind(previous)
        .bind(model_version_id)
        .bind(forced)
        .bind(Json(overridden))
        .bind(actor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if is_postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(ALIAS_CHANNEL)
                .bind(format!("{project}/{task}"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(previous)
    })
}

/// A dedicated PostgreSQL connection listening on [`ALIAS_CHANNEL`] (see [`listen_aliases`]).
pub struct AliasListener {
    inner: sqlx::postgres::PgListener,
}

impl std::fmt::Debug for AliasListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AliasListener")
            .field("channel", &ALIAS_CHANNEL)
            .finish()
    }
}

/// What [`AliasListener::recv`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasNotice {
    /// An alias of `<project>/<task>` (the payload) changed.
    Changed(String),
    /// The connection was lost; notifications may have been missed. The next
    /// [`AliasListener::recv`] reconnects (and fails if it cannot).
    Reconnecting,
}

impl AliasListener {
    /// Wait for the next alias change (or a lost connection).
    pub async fn recv(&mut self) -> Result<AliasNotice, DbError> {
        Ok(match self.inner.try_recv().await? {
            Some(n) => AliasNotice::Changed(n.payload().to_string()),
            None => AliasNotice::Reconnecting,
        })
    }
}

/// Start listening for alias changes: `Some` on PostgreSQL (a connection of its own, taken from
/// the pool's settings), `None` on SQLite, which has no notifications (callers poll).
pub async fn listen_aliases(db: &Db) -> Result<Option<AliasListener>, DbError> {
    match db {
        Db::Sqlite(_) => Ok(None),
        Db::Postgres(pool) => {
            let mut inner = sqlx::postgres::PgListener::connect_with(pool).await?;
            inner.listen(ALIAS_CHANNEL).await?;
            Ok(Some(AliasListener { inner }))
        }
    }
}

/// One recorded alias change.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AliasEventRow {
    /// Project name.
    pub project: String,
    /// Task.
    pub task: String,
    /// Alias.
    pub alias: String,
    /// Previous target.
    pub from_model_version_id: Option<i64>,
    /// New target.
    pub to_model_version_id: i64,
    /// Gates bypassed.
    pub forced: bool,
    /// Gate failures overridden (JSON array).
    pub overridden: Json<Vec<String>>,
    /// Who.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Alias changes of a project (optionally one task), oldest first.
pub async fn alias_events(
    db: &Db,
    project: &str,
    task: Option<&str>,
) -> Result<Vec<AliasEventRow>, DbError> {
    Ok(with_pool!(db, |pool| {
        sqlx::query_as::<_, AliasEventRow>(
            "SELECT p.name AS project, e.task, e.alias, e.from_model_version_id, e.to_model_version_id, \
             e.forced, e.overridden, e.actor, e.at FROM model_alias_events e \
             JOIN projects p ON p.id = e.project_id \
             WHERE p.name = $1 AND ($2 IS NULL OR e.task = $2) ORDER BY e.at, e.id",
        )
        .bind(project)
        .bind(task)
        .fetch_all(pool)
        .await?
    }))
}
