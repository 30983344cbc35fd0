//! `sightline train detector|classifier --config X.yaml`: one experiment per run.
//!
//! Inputs: the manifest (`--config`: project name, model name, starting weights,
//! hyperparameters), the project's labels from the database (the project must have been
//! applied), a dataset version (`--dataset`, default the project's latest), and CLI overrides.
//! Output: `<artifacts>/experiments/<timestamp>/` (`config.json`, `metrics.json`,
//! `weights/{last,best}.safetensors` + optimiser/EMA state, `summary.json`; with
//! `--save-record` also `weights/{last,best}.bpk`, Burn's Burnpack records) and the
//! `experiments` / `experiment_epochs` rows in the database.
//!
//! Progress: an indicatif bar on stderr; with `--json`, one JSON event per line on stdout
//! (`start`, `batch` every [`BATCH_EVERY`] batches and at the end of each epoch, `epoch`,
//! `done`).
//!
//! Ctrl-C (SIGINT): the run finishes the current batch, keeps the last completed epoch's
//! checkpoint (`weights/last.safetensors` with the optimiser and EMA state, so `--resume`
//! continues from the next epoch), records the experiment as `stopped` in the database, emits
//! the `done` event (`"status": "stopped"`), prints the `--resume` command on stderr and exits
//! with status [`EXIT_INTERRUPTED`] (130, the shell convention for SIGINT). A Ctrl-C before
//! the experiment exists (while the data is being prepared) exits 130 with nothing written; a
//! second Ctrl-C aborts at once (130) without recording the end (the experiment stays
//! `running`, its last completed epoch still resumable). A Ctrl-C that arrives after the last
//! batch of the last epoch does not undo the run: it completes and exits 0.

mod data;
mod detect;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use sightline_core::manifest::{Hyperparameters, Manifest, ModelName, Task, Weights};
use sightline_db::experiments as dbx;
use sightline_train::control::{BatchProgress, TrainControl};
use sightline_train::experiment::{EpochRecord, Experiment};

use crate::ctx::Ctx;

/// A `batch` JSON event every this many batches (and at the last batch of each epoch).
pub const BATCH_EVERY: usize = 10;

/// Exit status of a run stopped by Ctrl-C (SIGINT): 128 + 2, as shells report a SIGINT death.
pub const EXIT_INTERRUPTED: i32 = 130;

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

/// Everything a run was configured with, stored as `config.json`'s `config` and in the
/// database; `--resume` reads it back.
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

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let (task, a) = match args.command {
        Cmd::Detector(a) => (Task::Segment, a),
        Cmd::Classifier(a) => (Task::Classify, a),
    };
    let db = ctx.db().await?;
    let plan = match &a.resume {
        Some(r) => resume_plan(ctx, &db, task, &a, r).await?,
        None => new_plan(ctx, &db, task, &a).await?,
    };
    execute(ctx, &db, plan, &a).await
}

/// What to run.
pub(crate) struct Plan {
    task: Task,
    resolved: Resolved,
    model_name: ModelName,
    /// Folder of an experiment to resume.
    resume_dir: Option<PathBuf>,
    /// Where experiments go (`<artifacts root>`).
    root: PathBuf,
}

fn artifacts_root(ctx: &Ctx) -> anyhow::Result<PathBuf> {
    match &ctx.settings.artifacts {
        sightline_core::settings::ArtifactSettings::Local { root } => Ok(root.clone()),
        sightline_core::settings::ArtifactSettings::S3(_) => bail!(
            "training writes its experiment folder to a local artifact store; set \
             artifacts.backend = \"local\" (S3 is not supported for training yet)"
        ),
    }
}

fn apply_overrides(h: &mut Hyperparameters, a: &TrainArgs) -> anyhow::Result<()> {
    if let Some(e) = a.epochs {
        anyhow::ensure!(e >= 1, "--epochs must be at least 1");
        h.epochs = e;
    }
    if let Some(s) = a.imgsz {
        anyhow::ensure!(
            s >= 32 && s % 32 == 0,
            "--imgsz must be a multiple of 32, at least 32 (got {s})"
        );
        h.imgsz = s;
    }
    if let Some(b) = a.batch_size {
        anyhow::ensure!(b >= 1, "--batch-size must be at least 1");
        h.batch_size = b;
    }
    if let Some(s) = a.seed {
        h.seed = s;
    }
    Ok(())
}

async fn new_plan(
    ctx: &Ctx,
    db: &sightline_db::Db,
    task: Task,
    a: &TrainArgs,
) -> anyhow::Result<Plan> {
    let config = a
        .config
        .as_ref()
        .context("--config <manifest> is required (or --resume)")?;
    let manifest = Manifest::load(config)
        .with_context(|| format!("reading the manifest {}", config.display()))?;
    let what = match task {
        Task::Segment => "detector",
        Task::Classify => "classifier",
    };
    let mut mc = manifest
        .model(task)
        .with_context(|| format!("{} has no `models.{what}` section", config.display()))?
        .clone();
    if let Some(w) = &a.weights {
        mc.weights = match w.as_str() {
            "none" => Weights::None,
            "imagenet" => Weights::ImageNet,
            path => Weights::Path(PathBuf::from(path)),
        };
    }
    let labels = sightline_db::projects::labels(db, &manifest.project)
        .await
        .with_context(|| {
            format!(
                "project {} is not in the database: run `sightline project apply {}` first",
                manifest.project,
                config.display()
            )
        })?;
    anyhow::ensure!(
        !labels.is_empty(),
        "project {} has no labels",
        manifest.project
    );
    let mut h = mc.hyperparameters.clone();
    apply_overrides(&mut h, a)?;
    let repo = repo(ctx, &manifest.project)?;
    let version = repo.get(&a.dataset).with_context(|| {
        format!(
            "dataset version {:?} of project {} (ingest one with `sightline dataset ingest`)",
            a.dataset, manifest.project
        )
    })?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let weights_file = match &mc.weights {
        Weights::Path(_) => mc.weights.resolve_path(&cwd, config.parent()),
        Weights::ImageNet => Some(imagenet_file(ctx, mc.name)?),
        Weights::None => None,
    };
    if let Some(f) = &weights_file {
        anyhow::ensure!(
            f.is_file(),
            "starting weights {} (manifest `weights: {}`) not found",
            f.display(),
            mc.weights
        );
    }
    Ok(Plan {
        task,
        model_name: mc.name,
        resolved: Resolved {
            project: manifest.project.clone(),
            task,
            model: mc.name.to_string(),
            weights: mc.weights.to_string(),
            weights_file,
            names: labels,
            dataset_version: version.id,
            hyperparameters: h,
            optimizer: serde_json::Value::Null,
            device: a.device.clone(),
            manifest: Some(config.clone()),
        },
        resume_dir: None,
        root: artifacts_root(ctx)?,
    })
}

/// `weights: imagenet`: the torchvision file in the configured weights folder.
fn imagenet_file(ctx: &Ctx, name: ModelName) -> anyhow::Result<PathBuf> {
    let file = match name {
        ModelName::MobileNetV3Small => "mobilenet_v3_small-imagenet.pth",
        ModelName::MobileNetV3Large => "mobilenet_v3_large-imagenet.pth",
        ModelName::Yolov8Seg(_) => bail!(
            "`weights: imagenet` is for the classifier; give the detector an Ultralytics .pt \
             path or `none`"
        ),
    };
    let path = ctx.settings.weights_dir.join(file);
    anyhow::ensure!(
        path.is_file(),
        "`weights: imagenet` needs torchvision's ImageNet weights at {} (nothing is downloaded): \
         save torchvision's {} state dict there, or set `weights_dir` / SIGHTLINE_WEIGHTS_DIR",
        path.display(),
        name
    );
    Ok(path)
}

fn repo(ctx: &Ctx, project: &str) -> anyhow::Result<sightline_datasets::version::Repo> {
    sightline_datasets::dvc::safe_relpath(project)
        .with_context(|| format!("invalid project name {project:?}"))?;
    Ok(sightline_datasets::version::Repo::open(
        ctx.home.join("projects").join(project).join("datasets"),
    ))
}

async fn resume_plan(
    ctx: &Ctx,
    db: &sightline_db::Db,
    task: Task,
    a: &TrainArgs,
    what: &str,
) -> anyhow::Result<Plan> {
    let root = artifacts_root(ctx)?;
    let as_path = PathBuf::from(what);
    let dir = if as_path.join("config.json").is_file() {
        as_path
    } else {
        root.join("experiments").join(what)
    };
    let text = fs_err::read_to_string(dir.join("config.json")).with_context(|| {
        format!("experiment {what:?} not found (give its id, e.g. 20261129-001500, or its folder)")
    })?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}", dir.join("config.json").display()))?;
    let mut resolved: Resolved = serde_json::from_value(doc["config"].clone())
        .with_context(|| format!("{} is not a training configuration", dir.display()))?;
    anyhow::ensure!(
        resolved.task == task,
        "experiment {what} trained a {} model, not a {}",
        resolved.task,
        task
    );
    let id = exp_id(&dir)?;
    anyhow::ensure!(
        dbx::get(db, &id).await?.is_some(),
        "experiment {id} is not recorded in this database"
    );
    if let Some(e) = a.epochs {
        resolved.hyperparameters.epochs = e;
    }
    if a.imgsz.is_some() || a.batch_size.is_some() || a.seed.is_some() || a.config.is_some() {
        eprintln!(
            "note: --resume continues with the experiment's own configuration; only --epochs, \
             --device and --workers apply"
        );
    }
    resolved.device = a.device.clone();
    let model_name: ModelName = resolved
        .model
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    Ok(Plan {
        task,
        resolved,
        model_name,
        resume_dir: Some(dir),
        root,
    })
}

fn exp_id(dir: &Path) -> anyhow::Result<String> {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no folder name", dir.display()))
}

/// Progress output shared by both pipelines.
pub(crate) struct Progress {
    json: bool,
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(json: bool) -> Self {
        let bar = if json {
            indicatif::ProgressBar::hidden()
        } else {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} [{bar:25}] {pos}/{len} batches {msg} (ETA {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        };
        Self { json, bar }
    }

    fn event(&self, v: serde_json::Value) {
        if self.json {
            println!("{v}");
        }
    }

    fn batch(&self, p: &BatchProgress) {
        let losses: String = p
            .losses
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect::<Vec<_>>()
            .join(" ");
        if self.json {
            if (p.batch + 1).is_multiple_of(BATCH_EVERY) || p.batch + 1 == p.batches {
                self.event(serde_json::json!({
                    "event": "batch",
                    "epoch": p.epoch,
                    "epochs": p.epochs,
                    "batch": p.batch,
                    "batches": p.batches,
                    "losses": p
                        .losses
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                        .collect::<serde_json::Map<_, _>>(),
                }));
            }
            return;
        }
        if p.batch == 0 {
            self.bar.reset();
            self.bar.set_length(p.batches as u64);
            self.bar.set_prefix(format!("{}/{}", p.epoch + 1, p.epochs));
        }
        self.bar.set_position((p.batch + 1) as u64);
        self.bar.set_message(losses);
    }

    fn epoch(&self, r: &EpochRecord) {
        if self.json {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("event".into(), "epoch".into());
            }
            self.event(v);
            return;
        }
        let metrics: String = r
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.bar.println(format!(
            "epoch {}: loss {:.4}  {metrics}  fitness {:.4}  {:.1}s",
            r.epoch + 1,
            r.losses.values().sum::<f64>(),
            r.fitness,
            r.time_s
        ));
    }
}

/// Convert an epoch record for the database.
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

/// The end of a pipeline run.
pub(crate) struct Ended {
    stopped: bool,
    best_epoch: Option<usize>,
    best_fitness: Option<f64>,
}

async fn execute(
    ctx: &Ctx,
    db: &sightline_db::Db,
    mut plan: Plan,
    a: &TrainArgs,
) -> anyhow::Result<()> {
    let project = plan.resolved.project.clone();
    let repo = repo(ctx, &project)?;
    let version = plan.resolved.dataset_version.clone();
    let ds = repo
        .dataset(&version)
        .with_context(|| format!("reading dataset version {version}"))?;
    let images = repo.image_paths(&version)?;
    let progress = Arc::new(Progress::new(ctx.json));
    let control = TrainControl::new().with_batch_callback({
        let p = progress.clone();
        move |b| p.batch(b)
    });
    // Ctrl-C → stop after the current batch (installed before the data is prepared, so an
    // early Ctrl-C is not the default SIGINT death)
    let stopper = on_interrupt(control.clone())?;
    // prepare the task's data (decoding happens here, before the experiment exists, so a
    // refused dataset leaves nothing behind)
    let prepared = match plan.task {
        Task::Segment => {
            let labels = plan.resolved.names.clone();
            let (ds2, images2) = (ds, images);
            let p = tokio::task::spawn_blocking(move || {
                data::detector_samples(&ds2, &images2, &labels)
            })
            .await??;
            detect::Prepared::Det(p)
        }
        Task::Classify => {
            let p = data::classifier_samples(&ds, &images, &plan.resolved.names)?;
            detect::Prepared::Cls(p)
        }
    };
    for n in prepared.notes() {
        eprintln!("{n}");
    }
    if plan.resume_dir.is_none() {
        plan.resolved.names = prepared.names().to_vec();
    } else {
        anyhow::ensure!(
            prepared.names() == plan.resolved.names.as_slice(),
            "the classes of dataset version {version} ({}) differ from the experiment's ({})",
            prepared.names().join(", "),
            plan.resolved.names.join(", ")
        );
    }
    plan.resolved.optimizer = detect::optimizer_summary(&plan, &prepared);
    if control.stop_requested() {
        eprintln!("interrupted before training started; no experiment was created or changed");
        exit_interrupted(db).await;
    }
    // the experiment folder and its record
    let (exp, id) = match &plan.resume_dir {
        Some(dir) => {
            let exp = Experiment::open(dir)?;
            let id = exp_id(dir)?;
            dbx::set_running(db, &id).await?;
            (exp, id)
        }
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let config = serde_json::to_value(&plan.resolved)?;
            let exp = Experiment::create(&plan.root, now, &config, &version)?;
            let id = exp_id(exp.dir())?;
            dbx::insert(
                db,
                &project,
                &dbx::NewExperiment {
                    id: &id,
                    task: plan.task.as_str(),
                    dataset_version_id: &version,
                    config,
                    dir: &exp.dir().display().to_string(),
                },
            )
            .await?;
            (exp, id)
        }
    };
    progress.event(serde_json::json!({
        "event": "start",
        "experiment": id,
        "dir": exp.dir(),
        "task": plan.task,
        "resume_from_epoch": exp.next_epoch(),
        "epochs": plan.resolved.hyperparameters.epochs,
        "dataset_version": version,
        "names": plan.resolved.names,
        "train_images": prepared.train_len(),
        "val_images": prepared.val_len(),
    }));
    if !ctx.json {
        eprintln!(
            "experiment {id} ({}): {} train / {} val images, classes {}",
            exp.dir().display(),
            prepared.train_len(),
            prepared.val_len(),
            plan.resolved.names.join(", ")
        );
    }
    let dir = exp.dir().to_path_buf();
    let handle = tokio::runtime::Handle::current();
    let result = {
        let db = db.clone();
        let id = id.clone();
        let progress = progress.clone();
        let workers = a.workers;
        let plan_task = plan.task;
        let resolved = plan.resolved.clone();
        let model_name = plan.model_name;
        let resuming = plan.resume_dir.is_some();
        let control = control.clone();
        tokio::task::spawn_blocking(move || {
            let on_epoch = |r: &EpochRecord| {
                progress.epoch(r);
                if let Err(e) = handle.block_on(dbx::append_epoch(&db, &id, &epoch_row(r))) {
                    eprintln!("warning: recording epoch {} in the database: {e}", r.epoch);
                }
            };
            sightline_train::loader::with_workers(workers, move || {
                detect::train(
                    plan_task, &resolved, model_name, prepared, exp, resuming, &control, on_epoch,
                )
            })
            .map_err(|e| anyhow::anyhow!("starting {workers} worker threads: {e}"))?
        })
        .await
        .context("the training thread panicked")?
    };
    stopper.abort();
    progress.bar.finish_and_clear();
    let finish = |status, ended: Option<&Ended>, error: Option<String>| {
        let exp = Experiment::open(&dir).ok();
        let best_metrics = ended
            .and_then(|e| e.best_epoch)
            .and_then(|b| {
                exp.as_ref()
                    .and_then(|x| x.records().iter().find(|r| r.epoch == b).cloned())
            })
            .map(|r| serde_json::to_value(r.metrics).unwrap_or_default())
            .unwrap_or_else(|| serde_json::json!({}));
        (
            status,
            ended.and_then(|e| e.best_epoch),
            ended.and_then(|e| e.best_fitness),
            best_metrics,
            error,
        )
    };
    let (status, best_epoch, best_fitness, best_metrics, error) = match &result {
        Ok(e) if e.stopped => finish(dbx::Status::Stopped, Some(e), None),
        Ok(e) => finish(dbx::Status::Completed, Some(e), None),
        Err(e) => finish(dbx::Status::Failed, None, Some(format!("{e:#}"))),
    };
    dbx::finish(
        db,
        &id,
        &dbx::Finish {
            status,
            best_epoch: best_epoch.map(|b| b as i64),
            best_fitness,
            best_metrics: best_metrics.clone(),
            error: error.as_deref(),
        },
    )
    .await?;
    let ended = result.with_context(|| format!("experiment {id} failed"))?;
    let records = if a.save_record {
        let exp = Experiment::open(&dir)?;
        let names = plan.resolved.names.clone();
        let task = plan.task;
        tokio::task::spawn_blocking(move || detect::save_records(task, &exp, &names))
            .await
            .context("the record writer panicked")?
            .context("writing the Burn records")?
    } else {
        Vec::new()
    };
    let _ = ended.best_fitness;
    let sub = match plan.task {
        Task::Segment => "detector",
        Task::Classify => "classifier",
    };
    progress.event(serde_json::json!({
        "event": "done",
        "experiment": id,
        "status": status,
        "dir": dir,
        "best_epoch": best_epoch,
        "best_fitness": best_fitness,
        "best_metrics": best_metrics,
        "weights": {
            "last": dir.join("weights/last.safetensors"),
            "best": dir.join("weights/best.safetensors"),
        },
        "records": records,
    }));
    if status == dbx::Status::Stopped {
        let completed = Experiment::open(&dir).map(|e| e.next_epoch()).unwrap_or(0);
        eprintln!(
            "interrupted: experiment {id} stopped after {completed} of {} epochs and recorded as \
             `stopped`; the checkpoint of epoch {completed} is kept in {} (with the optimiser and \
             EMA state). Resume with:\n  sightline train {sub} --resume {id}",
            plan.resolved.hyperparameters.epochs,
            dir.join("weights").display()
        );
        exit_interrupted(db).await;
    } else if !ctx.json {
        println!(
            "experiment {id} {status}: best epoch {} (fitness {}), weights in {}",
            best_epoch.map_or("-".to_string(), |b| (b + 1).to_string()),
            best_fitness.map_or("-".to_string(), |f| format!("{f:.4}")),
            dir.join("weights").display()
        );
    }
    Ok(())
}

/// Listens for SIGINT: the first one asks the training loop to stop after the current batch,
/// a second one exits at once with [`EXIT_INTERRUPTED`]. On Unix the listener is registered
/// before this returns (no window in which SIGINT still kills the process by default).
fn on_interrupt(control: TrainControl) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    fn first(control: &TrainControl) {
        eprintln!(
            "interrupt: stopping after the current batch (the last completed epoch is kept); \
             Ctrl-C again to abort at once"
        );
        control.request_stop();
    }
    fn second() -> ! {
        eprintln!(
            "second interrupt: aborting now; the experiment's end is not recorded (its last \
             completed epoch can still be resumed)"
        );
        std::process::exit(EXIT_INTERRUPTED)
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigint =
            signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
        Ok(tokio::spawn(async move {
            if sigint.recv().await.is_some() {
                first(&control);
                if sigint.recv().await.is_some() {
                    second();
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                first(&control);
                if tokio::signal::ctrl_c().await.is_ok() {
                    second();
                }
            }
        }))
    }
}

/// Ends the process with [`EXIT_INTERRUPTED`] after flushing stdout (the `--json` events) and
/// closing the database connections (every write has been committed by then).
async fn exit_interrupted(db: &sightline_db::Db) -> ! {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    db.close().await;
    std::process::exit(EXIT_INTERRUPTED)
}
