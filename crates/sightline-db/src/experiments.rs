//! Training experiments (migration 0005): one row per `sightline train` run and one row per
//! completed epoch.
//!
//! An experiment's id is the name of its folder `<artifacts>/experiments/<id>/` (a UTC
//! timestamp such as `20261129-001500`, with `-2`, `-3`… when two runs start in the same
//! second). Its life: [`insert`] with status `running` when the run starts, [`append_epoch`]
//! after every completed epoch (an epoch recorded again — a resumed run repeating it — replaces
//! the earlier row), and [`finish`] with `completed`, `stopped` (Ctrl-C; resumable) or `failed`.
//! A resumed run calls [`set_running`]. Readers: [`list`] (by project, newest first), [`get`]
//! and [`epochs`].

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::types::Json;

use crate::{Db, DbError, with_pool};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Training (or the process died without recording an end: a stale `running`).
    Running,
    /// All epochs done (or early-stopped by `patience`).
    Completed,
    /// Stopped by the user; the last completed epoch's checkpoint is kept and can be resumed.
    Stopped,
    /// Ended by an error (see [`ExperimentRow::error`]).
    Failed,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Stopped => "stopped",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "running" => Status::Running,
            "completed" => Status::Completed,
            "stopped" => Status::Stopped,
            "failed" => Status::Failed,
            other => {
                return Err(DbError::Corrupt(format!(
                    "unknown experiment status {other:?}"
                )));
            }
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new experiment to record.
#[derive(Debug, Clone)]
pub struct NewExperiment<'a> {
    /// Experiment id (the folder name).
    pub id: &'a str,
    /// `segment` or `classify`.
    pub task: &'a str,
    /// Dataset version trained on.
    pub dataset_version_id: &'a str,
    /// The resolved training configuration.
    pub config: serde_json::Value,
    /// The experiment folder.
    pub dir: &'a str,
}

/// An experiment row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExperimentRow {
    /// Experiment id (the folder name).
    pub id: String,
    /// Project name.
    pub project: String,
    /// `segment` or `classify`.
    pub task: String,
    /// Dataset version trained on.
    pub dataset_version_id: String,
    /// The resolved training configuration.
    pub config: serde_json::Value,
    /// The experiment folder.
    pub dir: String,
    /// Status.
    pub status: Status,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended (`None` while running).
    pub finished_at: Option<DateTime<Utc>>,
    /// Completed epochs.
    pub epochs_completed: i64,
    /// Epoch (0-based) with the best fitness.
    pub best_epoch: Option<i64>,
    /// Best fitness (see the training crate for its definition per task).
    pub best_fitness: Option<f64>,
    /// Validation metrics of the best epoch.
    pub best_metrics: serde_json::Value,
    /// Why a failed run failed.
    pub error: Option<String>,
}

/// One completed epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EpochRow {
    /// Epoch (0-based).
    pub epoch: i64,
    /// Mean training losses by name.
    pub losses: serde_json::Value,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Validation metrics by name.
    pub metrics: serde_json::Value,
    /// Fitness of the epoch.
    pub fitness: f64,
    /// Wall time of the epoch including validation, seconds.
    pub time_s: f64,
}

/// The end of a run, for [`finish`].
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    /// `completed`, `stopped` or `failed`.
    pub status: Status,
    /// Best epoch, if any epoch completed.
    pub best_epoch: Option<i64>,
    /// Its fitness.
    pub best_fitness: Option<f64>,
    /// Its validation metrics.
    pub best_metrics: serde_json::Value,
    /// Error message of a failed run.
    pub error: Option<&'a str>,
}

const SELECT: &str = "SELECT e.id, p.name AS project, e.task, e.dataset_version_id, e.config, \
     e.dir, e.status, e.started_at, e.finished_at, e.epochs_completed, e.best_epoch, \
     e.best_fitness, e.best_metrics, e.error \
     FROM experiments e JOIN projects p ON p.id = e.project_id ";

macro_rules! row_to_experiment {
    ($row:expr) => {{
        let row = $row;
        let Json(config): Json<serde_json::Value> = row.try_get("config")?;
        let Json(best_metrics): Json<serde_json::Value> = row.try_get("best_metrics")?;
        let status: String = row.try_get("status")?;
        ExperimentRow {
            id: row.try_get("id")?,
            project: row.try_get("project")?,
            task: row.try_get("task")?,
            dataset_version_id: row.try_get("dataset_version_id")?,
            config,
            dir: row.try_get("dir")?,
            status: Status::parse(&status)?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            epochs_completed: row.try_get("epochs_completed")?,
            best_epoch: row.try_get("best_epoch")?,
            best_fitness: row.try_get("best_fitness")?,
            best_metrics,
            error: row.try_get("error")?,
        }
    }};
}

/// Record a new run of `project` with status `running`.
pub async fn insert(db: &Db, project: &str, e: &NewExperiment<'_>) -> Result<(), DbError> {
    let pid = crate::projects::id_of(db, project).await?;
    let now = crate::now();
    with_pool!(db, |pool| {
        sqlx::query(
            "INSERT INTO experiments (id, project_id, task, dataset_version_id, config, dir, \
             status, started_at) VALUES ($1, $2, $3, $4, $5, $6, 'running', $7)",
        )
        .bind(e.id)
        .bind(pid)
        .bind(e.task)
        .bind(e.dataset_version_id)
        .bind(Json(&e.config))
        .bind(e.dir)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// Record a completed epoch (replacing an earlier row for the same epoch) and bump
/// `epochs_completed` to `epoch + 1`.
pub async fn append_epoch(db: &Db, id: &str, e: &EpochRow) -> Result<(), DbError> {
    let now = crate::now();
    with_pool!(db, |pool| {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        sqlx::query(
            "INSERT INTO experiment_epochs (experiment_id, epoch, losses, lr, metrics, fitness, \
             time_s, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (experiment_id, epoch) DO UPDATE SET losses = excluded.losses, \
             lr = excluded.lr, metrics = excluded.metrics, fitness = excluded.fitness, \
             time_s = excluded.time_s, created_at = excluded.created_at",
        )
        .bind(id)
        .bind(e.epoch)
        .bind(Json(&e.losses))
        .bind(e.lr)
        .bind(Json(&e.metrics))
        .bind(e.fitness)
        .bind(e.time_s)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE experiments SET epochs_completed = $2 WHERE id = $1")
            .bind(id)
            .bind(e.epoch + 1)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Mark a resumed run `running` again (clears the end time and error).
pub async fn set_running(db: &Db, id: &str) -> Result<(), DbError> {
    let n = with_pool!(db, |pool| {
        sqlx::query(
            "UPDATE experiments SET status = 'running', finished_at = NULL, error = NULL \
             WHERE id = $1",
        )
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected()
    });
    if n == 0 {
        return Err(DbError::Corrupt(format!("no experiment {id:?}")));
    }
    Ok(())
}

/// Record the end of a run: status, end time, best epoch/fitness/metrics, error.
pub async fn finish(db: &Db, id: &str, f: &Finish<'_>) -> Result<(), DbError> {
    let now = crate::now();
    let n = with_pool!(db, |pool| {
        sqlx::query(
            "UPDATE experiments SET status = $2, finished_at = $3, best_epoch = $4, \
             best_fitness = $5, best_metrics = $6, error = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(f.status.as_str())
        .bind(now)
        .bind(f.best_epoch)
        .bind(f.best_fitness)
        .bind(Json(&f.best_metrics))
        .bind(f.error)
        .execute(pool)
        .await?
        .rows_affected()
    });
    if n == 0 {
        return Err(DbError::Corrupt(format!("no experiment {id:?}")));
    }
    Ok(())
}

/// Experiments of a project, newest first.
pub async fn list(db: &Db, project: &str) -> Result<Vec<ExperimentRow>, DbError> {
    let pid = crate::projects::id_of(db, project).await?;
    let sql = format!("{SELECT} WHERE e.project_id = $1 ORDER BY e.started_at DESC, e.id DESC");
    let out = with_pool!(db, |pool| {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(pid)
            .fetch_all(pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(row_to_experiment!(row));
        }
        out
    });
    Ok(out)
}

/// One experiment by id.
pub async fn get(db: &Db, id: &str) -> Result<Option<ExperimentRow>, DbError> {
    let sql = format!("{SELECT} WHERE e.id = $1");
    let out = with_pool!(db, |pool| {
        match sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?
        {
            Some(row) => Some(row_to_experiment!(row)),
            None => None,
        }
    });
    Ok(out)
}

/// The recorded epochs of an experiment, in order.
pub async fn epochs(db: &Db, id: &str) -> Result<Vec<EpochRow>, DbError> {
    let out = with_pool!(db, |pool| {
        let rows = sqlx::query(
            "SELECT epoch, losses, lr, metrics, fitness, time_s FROM experiment_epochs \
             WHERE experiment_id = $1 ORDER BY epoch",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Json(losses): Json<serde_json::Value> = row.try_get("losses")?;
            let Json(metrics): Json<serde_json::Value> = row.try_get("metrics")?;
            out.push(EpochRow {
                epoch: row.try_get("epoch")?,
                losses,
                lr: row.try_get("lr")?,
                metrics,
                fitness: row.try_get("fitness")?,
                time_s: row.try_get("time_s")?,
            });
        }
        out
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fresh_postgres, fresh_sqlite};

    async fn scenario(db: &Db) {
        let yaml = "project: line_a\nlabels: [ok, ng, scratch, dent]\nmodels:\n  detector:\n    name: yolov8n-seg\n";
        let m = sightline_core::Manifest::parse(yaml, "test.yaml").unwrap();
        crate::projects::apply(db, &m, yaml, false).await.unwrap();
        let notes: Vec<String> = Vec::new();
        let v = crate::datasets::NewDatasetVersion {
            id: "0123456789abcdef0123456789abcdef",
            parent_id: None,
            message: "",
            author: "",
            stats: serde_json::json!({}),
            source: "",
            format: None,
            nfiles: 1,
            size_bytes: 1,
            images: 1,
            instances: 1,
            notes: &notes,
        };
        crate::datasets::insert(db, "line_a", &v).await.unwrap();
        let e = NewExperiment {
            id: "20261129-001500",
            task: "segment",
            dataset_version_id: v.id,
            config: serde_json::json!({"epochs": 2}),
            dir: "/a/experiments/20261129-001500",
        };
        insert(db, "line_a", &e).await.unwrap();
        assert!(insert(db, "line_a", &e).await.is_err(), "ids are unique");
        let bad = NewExperiment {
            id: "x",
            dataset_version_id: "missing",
            ..e.clone()
        };
        assert!(insert(db, "line_a", &bad).await.is_err(), "unknown version");
        let row = get(db, e.id).await.unwrap().unwrap();
        assert_eq!(row.status, Status::Running);
        assert_eq!(row.config["epochs"], 2);
        assert_eq!((row.epochs_completed, row.finished_at), (0, None));
        let ep = |epoch, fitness| EpochRow {
            epoch,
            losses: serde_json::json!({"box": 1.5}),
            lr: 0.01,
            metrics: serde_json::json!({"mask_map": fitness}),
            fitness,
            time_s: 2.0,
        };
        append_epoch(db, e.id, &ep(0, 0.1)).await.unwrap();
        append_epoch(db, e.id, &ep(1, 0.2)).await.unwrap();
        append_epoch(db, e.id, &ep(1, 0.3)).await.unwrap(); // repeated after a resume
        let eps = epochs(db, e.id).await.unwrap();
        assert_eq!(eps, vec![ep(0, 0.1), ep(1, 0.3)]);
        finish(
            db,
            e.id,
            &Finish {
                status: Status::Stopped,
                best_epoch: Some(1),
                best_fitness: Some(0.3),
                best_metrics: serde_json::json!({"mask_map": 0.3}),
                error: None,
            },
        )
        .await
        .unwrap();
        set_running(db, e.id).await.unwrap();
        assert_eq!(
            get(db, e.id).await.unwrap().unwrap().status,
            Status::Running
        );
        finish(
            db,
            e.id,
            &Finish {
                status: Status::Completed,
                best_epoch: Some(1),
                best_fitness: Some(0.3),
                best_metrics: serde_json::json!({"mask_map": 0.3}),
                error: None,
            },
        )
        .await
        .unwrap();
        let row = get(db, e.id).await.unwrap().unwrap();
        assert_eq!(row.status, Status::Completed);
        assert_eq!(row.epochs_completed, 2);
        assert_eq!((row.best_epoch, row.best_fitness), (Some(1), Some(0.3)));
        assert_eq!(row.best_metrics["mask_map"], 0.3);
        assert!(row.finished_at.is_some());
        let all = list(db, "line_a").await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].project, "line_a");
        assert!(get(db, "nope").await.unwrap().is_none());
        assert!(
            finish(
                db,
                "nope",
                &Finish {
                    status: Status::Failed,
                    best_epoch: None,
                    best_fitness: None,
                    best_metrics: serde_json::json!({}),
                    error: Some("x")
                }
            )
            .await
            .is_err()
        );
    }

    #[tokio::test]
    async fn experiments_on_sqlite() {
        let t = fresh_sqlite().await.unwrap();
        scenario(&t.db).await;
    }

    #[tokio::test]
    async fn experiments_on_postgres() {
        let t = fresh_postgres().await.unwrap();
        scenario(&t.db).await;
    }
}
