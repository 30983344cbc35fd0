//! `sightline train detector|classifier --config X.yaml`: one experiment per run.
//!
//! Inputs: the manifest (`--config`: project name, model name, starting weights,
//! hyperparameters), the project's labels from the database (the project must have been
//! applied), a dataset version (`--dataset`, default the project's latest), and CLI overrides.
//! Output: `<artifacts>/experiments/<timestamp>/` (`config.json`, `metrics.json`,
//! `weights/{last,best}.safetensors` + optimiser/EMA state, `summary.json`; with
//! `--save-record` also `weights/{last,best}.bpk`, Burn's Burnpack records) and the
//! `experiments` / `experiment_epochs` rows in the database. The pipeline is
//! [`sightline_workflows::train`]; this module parses the arguments, prints progress
//! ([`progress`]) and handles Ctrl-C ([`interrupt`]).
//!
//! Progress: an indicatif bar on stderr; with `--json`, one JSON event per line on stdout
//! (`start`, `batch` every [`progress::BATCH_EVERY`] batches and at the end of each epoch,
//! `epoch`, `done`: [`sightline_workflows::train::TrainEvent`]).
//!
//! Ctrl-C (SIGINT): the run finishes the current batch, keeps the last completed epoch's
//! checkpoint (`weights/last.safetensors` with the optimiser and EMA state, so `--resume`
//! continues from the next epoch), records the experiment as `stopped` in the database, emits
//! the `done` event (`"status": "stopped"`), prints the `--resume` command on stderr and exits
//! with status [`interrupt::EXIT_INTERRUPTED`] (130, the shell convention for SIGINT). A Ctrl-C
//! before the experiment exists (while the data is being prepared) exits 130 with nothing
//! written; a second Ctrl-C aborts at once (130) without recording the end (the experiment
//! stays `running`, its last completed epoch still resumable). A Ctrl-C that arrives after the
//! last batch of the last epoch does not undo the run: it completes and exits 0.

mod interrupt;
mod progress;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use sightline_core::manifest::Task;
use sightline_db::experiments::Status;
use sightline_train::control::TrainControl;
use sightline_workflows::train::{
    self as wf, ExperimentRecorder, Overrides, TrainObserver, TrainOptions, TrainOutcome,
};

use crate::ctx::Ctx;

/// Arguments of `sightline train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Train the manifest's detector (YOLOv8-seg) on a dataset version's instance masks.
    ///
    /// Classes: the project labels that occur as object labels in the version (others are
    /// reported). A version without a val split holds out 20% of its images, chosen by file
    /// name hash. Starting weights (`weights:`): an Ultralytics .pt or one of our checkpoints
    /// (head re-initialised when the class count differs), or none.
    Detector(TrainArgs),
    /// Train the manifest's classifier (MobileNetV3) on a dataset version's image labels.
    ///
    /// Classes: all project labels, in order. Starting weights: a torchvision .pth, one of our
    /// checkpoints, `imagenet` (a file in the configured weights folder), or none.
    Classifier(TrainArgs),
}

/// Options of both pipelines.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Project manifest (models/configs/X.yaml).
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Dataset version: id, unique prefix or `latest`.
    #[arg(long, default_value = "latest")]
    pub dataset: String,
    /// Epochs (overrides the manifest; with --resume: extends the run).
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Input size in pixels (overrides the manifest).
    #[arg(long)]
    pub imgsz: Option<u32>,
    /// Batch size (overrides the manifest).
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// Compute device: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Random seed (overrides the manifest): data order, augmentation, initialisation.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads for data loading and the CPU backend (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Starting weights (overrides the manifest's `weights`): `none` (from scratch), `imagenet`
    /// (classifier), or a checkpoint path.
    #[arg(long, value_name = "none|imagenet|PATH", conflicts_with = "resume")]
    pub weights: Option<String>,
    /// Continue a stopped or interrupted experiment: its id (folder name) or folder.
    #[arg(long, value_name = "EXPERIMENT")]
    pub resume: Option<String>,
    /// Also write `weights/last.bpk` and `weights/best.bpk`, Burn's own record format
    /// (Burnpack), when the run ends (completed or stopped); every command that takes a
    /// checkpoint loads them.
    #[arg(long)]
    pub save_record: bool,
}

impl Args {
    /// The workflow's options.
    pub fn options(&self) -> TrainOptions {
        match &self.command {
            Cmd::Detector(a) => a.options(Task::Segment),
            Cmd::Classifier(a) => a.options(Task::Classify),
        }
    }
}

impl TrainArgs {
    fn options(&self, task: Task) -> TrainOptions {
        TrainOptions {
            task,
            config: self.config.clone(),
            dataset: self.dataset.clone(),
            overrides: Overrides {
                epochs: self.epochs,
                imgsz: self.imgsz,
                batch_size: self.batch_size,
                seed: self.seed,
            },
            device: self.device.clone(),
            workers: self.workers,
            weights: self.weights.clone(),
            resume: self.resume.clone(),
            save_record: self.save_record,
        }
    }
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let options = args.options();
    let db = ctx.db().await?;
    let recorder = ExperimentRecorder::new(db.clone());
    let progress = Arc::new(progress::Progress::new(ctx.json));
    let plan = wf::plan(&options, &ctx.settings, &recorder, progress.as_ref()).await?;
    let control = TrainControl::new();
    // Ctrl-C → stop after the current batch (installed before the data is prepared, so an
    // early Ctrl-C is not the default SIGINT death)
    let stopper = interrupt::on_interrupt(control.clone())?;
    let observer: Arc<dyn TrainObserver> = progress.clone();
    let outcome = wf::execute(plan, &ctx.settings, &recorder, control, observer).await;
    stopper.abort();
    progress.finish();
    let end = match outcome? {
        TrainOutcome::NotStarted => {
            eprintln!("interrupted before training started; no experiment was created or changed");
            interrupt::exit_interrupted(&db).await
        }
        TrainOutcome::Ended(end) => end,
    };
    let done = &end.done;
    let id = &done.experiment;
    if done.status == Status::Stopped {
        eprintln!(
            "interrupted: experiment {id} stopped after {completed} of {} epochs and recorded as \
             `stopped`; the checkpoint of epoch {completed} is kept in {} (with the optimiser and \
             EMA state). Resume with:\n  sightline train {} --resume {id}",
            end.epochs,
            done.dir.join("weights").display(),
            wf::subcommand(options.task),
            completed = end.completed_epochs,
        );
        interrupt::exit_interrupted(&db).await;
    } else if !ctx.json {
        println!(
            "experiment {id} {}: best epoch {} (fitness {}), weights in {}",
            done.status.as_str(),
            done.best_epoch
                .map_or("-".to_string(), |b| (b + 1).to_string()),
            done.best_fitness
                .map_or("-".to_string(), |f| format!("{f:.4}")),
            done.dir.join("weights").display()
        );
    }
    Ok(())
}
