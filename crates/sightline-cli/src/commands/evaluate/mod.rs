//! `sightline evaluate`: runs a checkpoint over an evaluation split through
//! [`sightline_workflows::evaluate`] (metrics with sightline-eval, `report.json` + `report.html`
//! with sightline-report under `<artifacts>/reports/<model>-<dataset-version>-<timestamp>/`,
//! the evaluation recorded in the database) and optionally POSTs it to a backend's
//! `/models/metrics` ([`post`]). This module parses the arguments and prints ([`print`]).
//!
//! - **Task**: `--task`, else the checkpoint's own, else the manifest's only model.
//! - **Data**: `--data <folder>`, else the project's dataset version `--dataset <id|prefix|latest>`
//!   (default `latest`). Only the `--split` images are used.
//! - **Runtime**: `--runtime auto|burn|onnxruntime` (and the other [`RuntimeArgs`] flags) as for
//!   `predict`.

mod post;
mod print;

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, bail};
use sightline_core::Task;
use sightline_core::manifest::Manifest;
use sightline_workflows::evaluate::{self as workflow, EvaluateEvent, EvaluateOptions};

use crate::ctx::Ctx;
use crate::inference::{InferenceRuntime, RuntimeArgs};

/// Which model of the manifest to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskArg {
    /// The detector / segmenter.
    Detect,
    /// The classifier.
    Classify,
}

impl From<TaskArg> for Task {
    fn from(t: TaskArg) -> Self {
        match t {
            TaskArg::Detect => Task::Segment,
            TaskArg::Classify => Task::Classify,
        }
    }
}

/// Arguments of `sightline evaluate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Project manifest (models/configs/X.yaml).
    #[arg(long)]
    pub config: PathBuf,
    /// Checkpoint to evaluate (.pt / .pth / .safetensors; `experiments/<ts>/weights/best` finds
    /// `best.safetensors`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Model to evaluate (default: what the checkpoint holds).
    #[arg(long, value_enum)]
    pub task: Option<TaskArg>,
    /// Evaluation data folder instead of a dataset version.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Dataset version of the project: id, unique prefix or `latest` (the default without
    /// `--data`). With `--data`, only a label recorded in the report.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Split evaluated.
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Detector class names in class-id order, comma-separated, when the checkpoint's names are
    /// missing or are not the project's labels.
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// Inference image size (detector letterbox / classifier crop). Default: the size the
    /// checkpoint was trained at, else the manifest's `imgsz`.
    #[arg(long)]
    pub imgsz: Option<u32>,
    /// Minimum confidence kept for threshold-free metrics (detector).
    #[arg(long, default_value_t = 0.001)]
    pub conf: f64,
    /// NMS IoU (detector).
    #[arg(long, default_value_t = 0.7)]
    pub iou: f64,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Compute device: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Thumbnails in the report's gallery of worst mistakes (0 = none).
    #[arg(long, default_value_t = 12)]
    pub gallery: usize,
    /// POST the evaluation to this http:// URL (the backend's /models/metrics).
    #[arg(long)]
    pub post: Option<String>,
    /// API token for `--post` (role engineer).
    #[arg(long, env = "SIGHTLINE_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output directory (default `<artifacts>/reports/<model>-<dataset>-<timestamp>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Inference runtime.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

fn artifacts_root(ctx: &Ctx) -> PathBuf {
    match &ctx.settings.artifacts {
        sightline_core::settings::ArtifactSettings::Local { root } => root.clone(),
        sightline_core::settings::ArtifactSettings::S3(_) => PathBuf::from("artifacts"),
    }
}

/// A progress bar over `n` images on stderr (hidden when stderr is not a terminal).
fn progress_bar(n: usize, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>10} [{bar:30}] {pos}/{len} images ({elapsed}, eta {eta})",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// The workflow's progress events as a progress bar.
fn show_progress(bar: &Mutex<Option<indicatif::ProgressBar>>, e: EvaluateEvent) {
    let Ok(mut bar) = bar.lock() else {
        return;
    };
    match e {
        EvaluateEvent::InferenceStarted { stage, images } => {
            *bar = Some(progress_bar(images, stage));
        }
        EvaluateEvent::ImagesDone { images } => {
            if let Some(pb) = bar.as_ref() {
                pb.inc(images as u64);
            }
        }
        EvaluateEvent::InferenceFinished => {
            if let Some(pb) = bar.take() {
                pb.finish_and_clear();
            }
        }
    }
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let started = chrono::Utc::now();
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let manifest = Manifest::load(&args.config)
        .with_context(|| format!("cannot load manifest {}", args.config.display()))?;
    let ckpt = workflow::resolve_checkpoint(&args.checkpoint)?;
    let task = workflow::pick_task(args.task.map(Task::from), &ckpt, &manifest)?;
    let runtime = InferenceRuntime::resolve(ctx, &args.runtime)?;
    runtime.notice();
    let opts = EvaluateOptions {
        config_path: args.config.clone(),
        manifest,
        checkpoint: ckpt,
        task,
        data: args.data.clone(),
        dataset: args.dataset.clone(),
        home: ctx.home.clone(),
        split: args.split.clone(),
        labels: args.labels.clone(),
        imgsz: args.imgsz,
        conf: args.conf,
        iou: args.iou,
        batch: args.batch,
        device: args.device.clone(),
        gallery: args.gallery,
        ort: runtime.ort(),
        started_at: started,
    };
    let (ev, opts) = tokio::task::spawn_blocking(move || {
        let bar = Mutex::new(None);
        let ev = workflow::evaluate(&opts, &|e| show_progress(&bar, e));
        (ev, opts)
    })
    .await
    .context("evaluation worker stopped")?;
    let ev = ev?;

    let root = artifacts_root(ctx);
    let out = match &args.out {
        Some(o) => o.clone(),
        None => ev.default_out_dir(&root)?,
    };
    let (json_path, html_path) = ev.write(&out)?;
    let report_path = out
        .strip_prefix(&root)
        .map_or_else(|_| out.display().to_string(), |p| p.display().to_string());

    let reg = crate::commands::register::open_registry(ctx).await?;
    let recorded = workflow::record(
        &reg,
        &opts.manifest.project,
        task,
        &opts.checkpoint,
        &ev,
        report_path,
    )
    .await;
    reg.db().close().await;
    let recorded = recorded?;

    let posted = match &args.post {
        Some(url) => {
            Some(post::post_metrics(url, &recorded.metrics_body(), args.token.as_deref()).await?)
        }
        None => None,
    };
    if ctx.json {
        ctx.print_json(&print::json_output(
            &ev, &recorded, &json_path, &html_path, posted,
        ))?;
    } else {
        print::human(&ev, &recorded, &json_path, &html_path);
    }
    Ok(())
}
