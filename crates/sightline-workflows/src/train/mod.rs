//! Training: a manifest (or an experiment to resume) and a dataset version → an experiment
//! folder `<artifacts>/experiments/<timestamp>/` and its `experiments` / `experiment_epochs`
//! rows; what `sightline train` runs (and, through it, the server's training jobs).
//!
//! Two steps, so a caller can install its stop control (Ctrl-C) in between:
//! - [`plan`]: [`TrainOptions`] → a [`TrainPlan`]. New run: the manifest's model section, the
//!   `--weights` override, the project's labels from the database, the hyperparameter
//!   overrides, the dataset version (`latest` by default), the starting weights (a path
//!   relative to the working directory or the manifest, or `imagenet`: a file in the weights
//!   folder). Resume: the experiment's `config.json` (its own configuration; only the epochs,
//!   device and workers change).
//! - [`execute`]: the dataset version → samples ([`data`]: class selection, val hold-out), the
//!   optimiser summary, then the experiment is created (or reopened) and recorded
//!   ([`ExperimentRecorder`]), the loop runs ([`model`]) with one row per epoch, and the end
//!   is recorded (`completed`, `stopped` or `failed`); with `save_record` the Burn records are
//!   written. A stop requested before the experiment exists ends with
//!   [`TrainOutcome::NotStarted`] and nothing written.
//!
//! Progress reaches the caller as [`TrainEvent`]s (start, every batch, every epoch, done) and
//! human notes through a [`TrainObserver`]; the stop control is
//! [`sightline_train::control::TrainControl`]. The child process command line of a run is a
//! [`TrainInvocation`].

pub mod data;
pub mod error;
pub mod events;
pub mod invocation;
pub mod model;
mod plan;
mod recorder;
mod run;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sightline_core::Task;
use sightline_core::manifest::{Hyperparameters, ModelName};

pub use error::{RunError, TrainWorkflowError};
pub use events::{BatchEvent, DoneEvent, DoneWeights, EpochEvent, Losses, StartEvent, TrainEvent};
pub use invocation::{TrainInvocation, subcommand};
pub use plan::plan;
pub use recorder::ExperimentRecorder;
pub use run::execute;

/// Hyperparameter overrides of a new run (`--epochs` also extends a resumed one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Epochs (at least 1).
    pub epochs: Option<u32>,
    /// Input size in pixels (a multiple of 32, at least 32).
    pub imgsz: Option<u32>,
    /// Batch size (at least 1).
    pub batch_size: Option<u32>,
    /// Random seed.
    pub seed: Option<u64>,
}

impl Overrides {
    /// Whether any override besides `epochs` is given (they do not apply when resuming).
    pub fn beyond_epochs(&self) -> bool {
        self.imgsz.is_some() || self.batch_size.is_some() || self.seed.is_some()
    }
}

/// What to train and how (the options of `sightline train detector|classifier`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Detector (`segment`) or classifier (`classify`).
    pub task: Task,
    /// Project manifest (required unless resuming).
    pub config: Option<PathBuf>,
    /// Dataset version: id, unique prefix or `latest`.
    pub dataset: String,
    /// Hyperparameter overrides.
    pub overrides: Overrides,
    /// Compute device: `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// Worker threads for data loading and the CPU backend (0: one per core).
    pub workers: usize,
    /// Starting weights overriding the manifest's: `none`, `imagenet` or a checkpoint path.
    pub weights: Option<String>,
    /// Experiment to continue: its id (folder name) or folder.
    pub resume: Option<String>,
    /// Also write the Burn records (`weights/{last,best}.bpk`) at the end.
    pub save_record: bool,
}

impl TrainOptions {
    /// The defaults of the command line: dataset `latest`, device `cpu`, workers 0.
    pub fn new(task: Task) -> Self {
        Self {
            task,
            config: None,
            dataset: "latest".into(),
            overrides: Overrides::default(),
            device: "cpu".into(),
            workers: 0,
            weights: None,
            resume: None,
            save_record: false,
        }
    }
}

/// Everything a run was configured with, stored as `config.json`'s `config` and in the
/// database; resuming reads it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resolved {
    /// Project name.
    pub project: String,
    /// `segment` or `classify`.
    pub task: Task,
    /// Architecture as built (scale resolved).
    pub model: String,
    /// Starting weights as written in the manifest.
    pub weights: String,
    /// The resolved starting-weights file, if any.
    pub weights_file: Option<PathBuf>,
    /// Class names by class id.
    pub names: Vec<String>,
    /// Dataset version id.
    pub dataset_version: String,
    /// Hyperparameters after CLI overrides.
    pub hyperparameters: Hyperparameters,
    /// Optimiser actually used (`auto` resolved), lr0 and momentum.
    pub optimizer: serde_json::Value,
    /// Device.
    pub device: String,
    /// The manifest file.
    pub manifest: Option<PathBuf>,
}

/// What to run: the result of [`plan`].
#[derive(Debug, Clone)]
pub struct TrainPlan {
    /// What is trained.
    pub task: Task,
    /// The run's configuration.
    pub resolved: Resolved,
    /// The architecture.
    pub model_name: ModelName,
    /// Folder of an experiment to resume.
    pub resume_dir: Option<PathBuf>,
    /// Where experiments go (the local artifact root).
    pub root: PathBuf,
    /// Worker threads (0: one per core).
    pub workers: usize,
    /// Write the Burn records at the end.
    pub save_record: bool,
}

/// Receives a run's progress. Called from the caller's task and from the training thread.
pub trait TrainObserver: Send + Sync {
    /// A progress event (every batch, every epoch, start and done).
    fn event(&self, event: &TrainEvent);
    /// A human note (warnings, what was loaded), one line or a few.
    fn note(&self, note: &str);
}

/// How [`execute`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainOutcome {
    /// A stop was requested before the experiment existed: nothing was created or changed.
    NotStarted,
    /// The run ended (completed or stopped) and its end is recorded.
    Ended(Box<TrainEnd>),
}

/// A run that ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainEnd {
    /// The `done` event (also sent to the observer).
    pub done: DoneEvent,
    /// Epochs of the run.
    pub epochs: u32,
    /// Epochs completed (the next epoch a resume starts from).
    pub completed_epochs: usize,
}

/// The end of a pipeline run.
pub(crate) struct Ended {
    pub(crate) stopped: bool,
    pub(crate) best_epoch: Option<usize>,
    pub(crate) best_fitness: Option<f64>,
}
