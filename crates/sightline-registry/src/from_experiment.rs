//! Register an experiment's checkpoint: the lineage (project, task, dataset version) comes from
//! the experiment's database record (`sightline_db::experiments`), never from the caller.
//!
//! - [`experiment_record`] gives the record, or [`RegistryError::NotFound`].
//! - [`dataset_of`] gives the dataset version of a run, checked against one the caller also gave.
//! - [`experiment_checkpoint`] gives `<artifacts>/experiments/<id>/weights/<best|last>.safetensors`
//!   (the experiment id must be one plain folder name, so it cannot leave the artifact root).
//! - [`Registry::register_experiment`] does all of the above plus [`Registry::register`] with the
//!   project's stored manifest (what `POST /models` does).

use std::path::{Path, PathBuf};

use sightline_core::Task;
use sightline_db::experiments::{ExperimentRow, Status};

use crate::error::RegistryError;
use crate::model::ModelVersion;
use crate::service::{OnnxPreparer, RegisterRequest, Registry};

/// Which checkpoint of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointChoice {
    /// The epoch with the best fitness (`weights/best.safetensors`).
    #[default]
    Best,
    /// The last completed epoch (`weights/last.safetensors`).
    Last,
}

impl CheckpointChoice {
    /// `best` or `last`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointChoice::Best => "best",
            CheckpointChoice::Last => "last",
        }
    }
}

/// What [`Registry::register_experiment`] needs.
#[derive(Debug, Clone)]
pub struct ExperimentRegistration {
    /// Experiment id.
    pub experiment: String,
    /// If given, must be the experiment's project.
    pub project: Option<String>,
    /// If given, must be the experiment's task.
    pub task: Option<Task>,
    /// Which checkpoint.
    pub checkpoint: CheckpointChoice,
    /// Alias to point at the new version (not `production`: that goes through the gates).
    pub alias: Option<String>,
    /// Free-form note.
    pub note: Option<String>,
    /// Who registers.
    pub actor: String,
    /// Makes the bundle's checked `model.onnx` (see [`RegisterRequest::onnx`]).
    pub onnx: Option<OnnxPreparer>,
}

/// The experiment record of `id`; [`RegistryError::NotFound`] when there is none.
pub async fn experiment_record(
    db: &sightline_db::Db,
    id: &str,
) -> Result<ExperimentRow, RegistryError> {
    sightline_db::experiments::get(db, id)
        .await
        .map_err(|e| RegistryError::Db(e.to_string()))?
        .ok_or_else(|| RegistryError::NotFound(format!("experiment `{id}`")))
}

/// The dataset version a run trained on. When the caller also names one (`--dataset`), it must
/// be that version (its full id or a prefix of at least 4 characters).
pub fn dataset_of(run: &ExperimentRow, given: Option<&str>) -> Result<String, RegistryError> {
    let recorded = &run.dataset_version_id;
    if let Some(g) = given
        && g != recorded
        && !(g.len() >= 4 && recorded.starts_with(g))
    {
        return Err(RegistryError::Invalid(format!(
            "dataset version `{g}` disagrees with experiment `{}`, which trained on dataset version `{recorded}`; leave the dataset out to use the experiment's",
            run.id
        )));
    }
    Ok(recorded.clone())
}

/// A run whose weights can be registered: not running, not failed.
pub fn check_finished(run: &ExperimentRow) -> Result<(), RegistryError> {
    match run.status {
        Status::Completed | Status::Stopped => Ok(()),
        Status::Running => Err(RegistryError::Invalid(format!(
            "experiment `{}` is still running (or died without recording an end); register it when it has completed or was stopped",
            run.id
        ))),
        Status::Failed => Err(RegistryError::Invalid(format!(
            "experiment `{}` failed ({}); its weights are not registered",
            run.id,
            run.error.as_deref().unwrap_or("no error recorded")
        ))),
    }
}

/// `<artifacts>/experiments/<id>/weights/<choice>.safetensors`, if the file exists.
pub fn experiment_checkpoint(
    artifacts: &Path,
    run: &ExperimentRow,
    choice: CheckpointChoice,
) -> Result<PathBuf, RegistryError> {
    let id = run.id.as_str();
    let plain = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return Err(RegistryError::Invalid(format!(
            "experiment id `{id}` cannot name a folder"
        )));
    }
    let path = artifacts
        .join("experiments")
        .join(id)
        .join("weights")
        .join(format!("{}.safetensors", choice.as_str()));
    if !path.is_file() {
        return Err(RegistryError::Invalid(format!(
            "experiment `{id}` ({}) has no `{}` weights in the artifact store (expected experiments/{id}/weights/{}.safetensors)",
            run.status,
            choice.as_str(),
            choice.as_str()
        )));
    }
    Ok(path)
}

impl Registry {
    /// Register the chosen checkpoint of a finished experiment as a model version of its
    /// project and task, trained on its dataset version (module docs).
    pub async fn register_experiment(
        &self,
        req: ExperimentRegistration,
    ) -> Result<ModelVersion, RegistryError> {
        let run = experiment_record(self.db(), &req.experiment).await?;
        if let Some(p) = &req.project
            && p != &run.project
        {
            return Err(RegistryError::Invalid(format!(
                "experiment `{}` belongs to project `{}`, not `{p}`",
                run.id, run.project
            )));
        }
        let task: Task = run.task.parse().map_err(RegistryError::Db)?;
        if let Some(t) = req.task
            && t != task
        {
            return Err(RegistryError::Invalid(format!(
                "experiment `{}` trained a {task} model, not {t}",
                run.id
            )));
        }
        check_finished(&run)?;
        let checkpoint = experiment_checkpoint(self.artifacts(), &run, req.checkpoint)?;
        let project = sightline_db::projects::get(self.db(), &run.project)
            .await
            .map_err(|e| match e {
                sightline_db::DbError::ProjectNotFound(_) => RegistryError::NotFound(e.to_string()),
                other => RegistryError::Db(other.to_string()),
            })?;
        self.register(RegisterRequest {
            manifest: project.manifest,
            task: Some(task),
            checkpoint,
            experiment_id: Some(run.id.clone()),
            dataset_version: Some(run.dataset_version_id.clone()),
            evaluation_report: None,
            note: req.note,
            alias: req.alias,
            actor: req.actor,
            onnx: req.onnx,
        })
        .await
    }
}
