//! The experiment's database record: the `experiments` row through its lifecycle
//! (`running` → `completed` / `stopped` / `failed`) and one `experiment_epochs` row per epoch.

use sightline_core::Task;
use sightline_db::experiments as dbx;
use sightline_db::{Db, DbError};
use sightline_train::experiment::EpochRecord;

/// Records experiments in the metadata database (cheap to clone).
#[derive(Debug, Clone)]
pub struct ExperimentRecorder {
    db: Db,
}

impl ExperimentRecorder {
    /// A recorder writing into `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Whether experiment `id` is recorded.
    pub async fn exists(&self, id: &str) -> Result<bool, DbError> {
        Ok(dbx::get(&self.db, id).await?.is_some())
    }

    /// A new experiment, `running`.
    pub async fn start(
        &self,
        project: &str,
        id: &str,
        task: Task,
        dataset_version: &str,
        config: serde_json::Value,
        dir: &str,
    ) -> Result<(), DbError> {
        dbx::insert(
            &self.db,
            project,
            &dbx::NewExperiment {
                id,
                task: task.as_str(),
                dataset_version_id: dataset_version,
                config,
                dir,
            },
        )
        .await
    }

    /// A resumed experiment is `running` again.
    pub async fn resume(&self, id: &str) -> Result<(), DbError> {
        dbx::set_running(&self.db, id).await
    }

    /// One completed epoch.
    pub async fn epoch(&self, id: &str, r: &EpochRecord) -> Result<(), DbError> {
        dbx::append_epoch(&self.db, id, &epoch_row(r)).await
    }

    /// The end of the run.
    pub async fn finish(&self, id: &str, finish: &dbx::Finish<'_>) -> Result<(), DbError> {
        dbx::finish(&self.db, id, finish).await
    }
}

/// An epoch record as a database row.
fn epoch_row(r: &EpochRecord) -> dbx::EpochRow {
    dbx::EpochRow {
        epoch: r.epoch as i64,
        losses: serde_json::to_value(&r.losses).unwrap_or_default(),
        lr: r.lr,
        metrics: serde_json::to_value(&r.metrics).unwrap_or_default(),
        fitness: r.fitness,
        time_s: r.time_s,
    }
}
