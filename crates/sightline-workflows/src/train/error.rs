//! Errors of the training workflow.
//!
//! Each variant's message is only its own context (which file, which step); the error it wraps
//! is its `#[source]`, so the CLI's `{:#}` prints `context: cause: cause…` and
//! [`chain`] gives the same text for the database.

use std::path::PathBuf;

use sightline_core::Task;
use sightline_core::manifest::{ManifestError, ModelName};
use sightline_datasets::DatasetError;
use sightline_db::DbError;
use sightline_train::error::TrainError;
use sightline_vision::VisionError;

use super::data::SamplesError;

/// Why a training run could not be planned, run or recorded.
#[derive(Debug, thiserror::Error)]
pub enum TrainWorkflowError {
    /// Neither a manifest nor an experiment to resume.
    #[error("--config <manifest> is required (or --resume)")]
    ConfigRequired,
    /// The manifest could not be read or is invalid.
    #[error("reading the manifest {}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Its error.
        #[source]
        source: Box<ManifestError>,
    },
    /// The manifest has no model of the task.
    #[error("{} has no `models.{what}` section", path.display())]
    NoModelSection {
        /// The manifest file.
        path: PathBuf,
        /// `detector` or `classifier`.
        what: &'static str,
    },
    /// The project has not been applied to the database.
    #[error(
        "project {project} is not in the database: run `sightline project apply {}` first",
        config.display()
    )]
    ProjectNotApplied {
        /// Project name.
        project: String,
        /// The manifest file.
        config: PathBuf,
        /// The database's error.
        #[source]
        source: Box<DbError>,
    },
    /// The project has no labels.
    #[error("project {0} has no labels")]
    NoLabels(String),
    /// `--epochs 0`.
    #[error("--epochs must be at least 1")]
    ZeroEpochs,
    /// `--imgsz` not a positive multiple of 32.
    #[error("--imgsz must be a multiple of 32, at least 32 (got {0})")]
    Imgsz(u32),
    /// `--batch-size 0`.
    #[error("--batch-size must be at least 1")]
    ZeroBatch,
    /// A project name that is not a safe folder name.
    #[error("invalid project name {0:?}")]
    InvalidProject(String, #[source] Box<DatasetError>),
    /// The dataset version reference does not resolve.
    #[error(
        "dataset version {reference:?} of project {project} (ingest one with `sightline dataset \
         ingest`)"
    )]
    DatasetVersion {
        /// What was asked for (id, prefix or `latest`).
        reference: String,
        /// Project name.
        project: String,
        /// The repository's error.
        #[source]
        source: Box<DatasetError>,
    },
    /// The working directory cannot be read (relative weight paths resolve against it).
    #[error("cannot read the current directory")]
    CurrentDir(#[source] std::io::Error),
    /// `weights: imagenet` for a detector.
    #[error(
        "`weights: imagenet` is for the classifier; give the detector an Ultralytics .pt \
         path or `none`"
    )]
    ImagenetForDetector,
    /// The ImageNet weights file is missing.
    #[error(
        "`weights: imagenet` needs torchvision's ImageNet weights at {} (nothing is downloaded): \
         save torchvision's {name} state dict there, or set `weights_dir` / SIGHTLINE_WEIGHTS_DIR",
        path.display()
    )]
    ImagenetMissing {
        /// Where the file was looked for.
        path: PathBuf,
        /// The model.
        name: ModelName,
    },
    /// The starting weights file does not exist.
    #[error("starting weights {} (manifest `weights: {weights}`) not found", path.display())]
    WeightsNotFound {
        /// The resolved file.
        path: PathBuf,
        /// The `weights` value.
        weights: String,
    },
    /// Training needs a local artifact store.
    #[error(
        "training writes its experiment folder to a local artifact store; set \
         artifacts.backend = \"local\" (S3 is not supported for training yet)"
    )]
    S3Artifacts,
    /// The experiment to resume has no readable `config.json`.
    #[error("experiment {0:?} not found (give its id, e.g. 20261129-001500, or its folder)")]
    ExperimentNotFound(String, #[source] std::io::Error),
    /// A JSON file that does not parse (the message names it).
    #[error("{}", .0.display())]
    Json(PathBuf, #[source] serde_json::Error),
    /// `config.json` does not hold a training configuration.
    #[error("{} is not a training configuration", .0.display())]
    NotATrainingConfig(PathBuf, #[source] serde_json::Error),
    /// The experiment trained the other task.
    #[error("experiment {what} trained a {trained} model, not a {wanted}")]
    ResumeTask {
        /// The experiment as given.
        what: String,
        /// Its task.
        trained: Task,
        /// The task asked for.
        wanted: Task,
    },
    /// The experiment is not in this database.
    #[error("experiment {0} is not recorded in this database")]
    NotRecorded(String),
    /// The recorded architecture name does not parse.
    #[error("{0}")]
    ModelName(String),
    /// A folder without a name (an experiment id is its folder name).
    #[error("{} has no folder name", .0.display())]
    NoFolderName(PathBuf),
    /// The dataset version's annotations could not be read.
    #[error("reading dataset version {0}")]
    ReadDataset(String, #[source] Box<DatasetError>),
    /// The resumed experiment was trained on other classes.
    #[error(
        "the classes of dataset version {version} ({prepared}) differ from the experiment's \
         ({experiment})"
    )]
    ClassesDiffer {
        /// Dataset version id.
        version: String,
        /// Its classes, comma-separated.
        prepared: String,
        /// The experiment's classes, comma-separated.
        experiment: String,
    },
    /// The training loop failed (the experiment is recorded `failed`).
    #[error("experiment {id} failed")]
    Failed {
        /// Experiment id.
        id: String,
        /// Why.
        #[source]
        source: Box<RunError>,
    },
    /// The training thread panicked.
    #[error("the training thread panicked")]
    TrainingPanicked(#[source] tokio::task::JoinError),
    /// The record writer panicked.
    #[error("the record writer panicked")]
    RecordWriterPanicked(#[source] tokio::task::JoinError),
    /// Writing the Burn records failed.
    #[error("writing the Burn records")]
    Records(#[source] Box<RunError>),
    /// The dataset version cannot be trained on.
    #[error(transparent)]
    Samples(Box<SamplesError>),
    /// A dataset repository operation failed.
    #[error(transparent)]
    Dataset(Box<DatasetError>),
    /// A database operation failed.
    #[error(transparent)]
    Db(Box<DbError>),
    /// The experiment folder could not be created or read.
    #[error(transparent)]
    Train(Box<TrainError>),
    /// Serialising the configuration failed.
    #[error(transparent)]
    Serialize(#[from] serde_json::Error),
    /// A blocking task (data preparation) panicked.
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
}

impl From<SamplesError> for TrainWorkflowError {
    fn from(e: SamplesError) -> Self {
        Self::Samples(Box::new(e))
    }
}

impl From<DatasetError> for TrainWorkflowError {
    fn from(e: DatasetError) -> Self {
        Self::Dataset(Box::new(e))
    }
}

impl From<DbError> for TrainWorkflowError {
    fn from(e: DbError) -> Self {
        Self::Db(Box::new(e))
    }
}

impl From<TrainError> for TrainWorkflowError {
    fn from(e: TrainError) -> Self {
        Self::Train(Box::new(e))
    }
}

/// Why the model set-up or the loop of a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The model crate (device, configuration, checkpoint).
    #[error(transparent)]
    Vision(#[from] VisionError),
    /// The training crate.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The classifier's starting model.
    #[error(transparent)]
    ClsInit(#[from] sightline_train::classify::ClsInitError),
    /// A weights file could not be read.
    #[error("reading {}", .0.display())]
    ReadWeights(PathBuf, #[source] VisionError),
    /// The starting weights are not a detector.
    #[error("{} holds a {task} model, not a YOLOv8-seg detector", path.display())]
    NotADetector {
        /// The file.
        path: PathBuf,
        /// What it holds (`Debug` of the checkpoint task).
        task: String,
    },
    /// Prepared data of the other task (a programming error).
    #[error("internal error: prepared data of another task")]
    TaskMismatch,
}
