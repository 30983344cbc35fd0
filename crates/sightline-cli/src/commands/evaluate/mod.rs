//! `sightline evaluate`: runs a checkpoint over an evaluation split, computes metrics with sightline-eval and
//! writes `report.json` + `report.html` (sightline-report) under
//! `<artifacts>/reports/<model>-<dataset-version>-<timestamp>/`, records the evaluation in the database and
//! optionally POSTs it to a backend's `/models/metrics`.
//!
//! - **Task**: `--task`, else the checkpoint's own (Ultralytics/safetensors metadata or tensor names), else the
//!   manifest's only model.
//! - **Data**: `--data <folder>` (a class-per-folder tree for classifiers; any ingestible COCO/VOC/YOLO/folder
//!   tree for detectors), else the project's dataset version `--dataset <id|prefix|latest>` (default `latest`),
//!   read straight from the content-addressed store (no checkout needed). Only the `--split` images are used.
//! - **Classes of a detector** (see [`detect`]): the checkpoint's class names (or `--labels a,b,c`, in class-id
//!   order, when the checkpoint has none or other names) must be project labels; ground-truth objects whose label
//!   is not a model class are left out of the metrics (reported). Thresholds come from the manifest by name.
//! - **Database**: a `model_evaluations` row is written when the checkpoint is a registered model version (same
//!   sha256, same project and task) and/or lies under `experiments/<id>/`; the registry's promotion gates read it.
//!   The registry summary uses the COCO numbers: `box_map50_95`/`mask_map50_95` are COCO AP@[.50:.95].
//! - **Monitoring baseline**: the evaluation's `details` (database row, `--post` body) and `report.json` carry
//!   `confidence_samples` (`{label: [confidence, …]}`) and `confidence_histograms` (`{label: [10 counts]}` over
//!   `[0, 1]`), what the server's monitoring compares production confidences with (KS statistic). They mean what
//!   production logs: for a detector every detection the served model would return (confidence above
//!   `min(0.25, lowest class threshold)`, the server's NMS floor) under its label; for a classifier the arg-max
//!   label and its probability, one per image.
//! - **Runtime**: `--runtime auto|burn|onnxruntime` (and the other [`RuntimeArgs`] flags) as for `predict`: on
//!   ONNX Runtime the checkpoint's own dynamic ONNX export runs with the same pre- and post-processing, so the
//!   metrics are the same up to float noise. `report.json` names what ran in `runtime` (e.g.
//!   `"onnxruntime 1.32.0 (cpu)"` or `"burn (Device<Flex(Cpu)>)"`).

mod classify;
mod detect;
mod gallery;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sightline_core::manifest::Manifest;
use sightline_registry::{EvaluationSummary, NewEvaluation};
use sightline_report::Report;
use sightline_vision::checkpoint::{Task, read_checkpoint, task_of};

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

/// Evaluation data resolved from `--data` or a dataset version.
pub(crate) struct EvalData {
    /// Annotations.
    pub dataset: sightline_datasets::model::Dataset,
    /// Image file → path on disk.
    pub images: std::collections::BTreeMap<String, PathBuf>,
    /// Dataset version id, when the data is a version.
    pub version: Option<String>,
    /// Where the data came from.
    pub source: String,
}

impl EvalData {
    /// The images of `split` (all images when none has a split), in file order.
    pub fn split_records(
        &self,
        split: &str,
    ) -> anyhow::Result<Vec<&sightline_datasets::model::ImageRecord>> {
        let want = sightline_datasets::model::Split::parse(split)
            .with_context(|| format!("unknown split {split:?} (train, val or test)"))?;
        let recs: Vec<_> = self
            .dataset
            .images
            .iter()
            .filter(|r| r.split == Some(want))
            .collect();
        if !recs.is_empty() {
            return Ok(recs);
        }
        if self.dataset.images.iter().all(|r| r.split.is_none()) && !self.dataset.images.is_empty()
        {
            return Ok(self.dataset.images.iter().collect());
        }
        let mut have: Vec<&str> = self
            .dataset
            .images
            .iter()
            .filter_map(|r| r.split.map(|s| s.as_str()))
            .collect();
        have.sort_unstable();
        have.dedup();
        bail!(
            "{} has no {split} images (splits present: {})",
            self.source,
            if have.is_empty() {
                "none".into()
            } else {
                have.join(", ")
            }
        )
    }

    /// Path of an image file.
    pub fn path(&self, file: &str) -> anyhow::Result<&PathBuf> {
        self.images
            .get(file)
            .with_context(|| format!("{}: image {file} has no stored file", self.source))
    }
}

/// Reads `--data` (any ingestible format) or the project's dataset version.
pub(crate) fn load_data(args: &Args, manifest: &Manifest, ctx: &Ctx) -> anyhow::Result<EvalData> {
    if let Some(dir) = &args.data {
        let format = sightline_datasets::detect_format(dir)?;
        let imp = sightline_datasets::read(dir, format)
            .with_context(|| format!("reading {} as {format}", dir.display()))?;
        return Ok(EvalData {
            dataset: imp.dataset,
            images: imp.sources,
            version: args.dataset.clone(),
            source: dir.display().to_string(),
        });
    }
    sightline_datasets::dvc::safe_relpath(&manifest.project)
        .with_context(|| format!("invalid project name {:?}", manifest.project))?;
    let root = ctx
        .home
        .join("projects")
        .join(&manifest.project)
        .join("datasets");
    let repo = sightline_datasets::version::Repo::open(&root);
    let want = args.dataset.as_deref().unwrap_or("latest");
    let v = repo.get(want).with_context(|| {
        format!(
            "dataset version {want:?} of project {} (ingest one with `sightline dataset ingest`, or pass --data)",
            manifest.project
        )
    })?;
    Ok(EvalData {
        dataset: repo.dataset(&v.id)?,
        images: repo.image_paths(&v.id)?,
        source: format!("{} (version {})", root.display(), v.id),
        version: Some(v.id),
    })
}

/// The checkpoint path, accepting `…/weights/best` for `…/weights/best.safetensors` (or `.pt`).
fn resolve_checkpoint(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    if p.extension().is_none() {
        for ext in ["safetensors", "pt", "pth"] {
            let c = p.with_extension(ext);
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    bail!("checkpoint {} does not exist", p.display())
}

/// Which model to evaluate: `--task`, else the checkpoint's task, else the manifest's only model.
fn pick_task(args: &Args, ckpt: &Path, manifest: &Manifest) -> anyhow::Result<TaskArg> {
    if let Some(t) = args.task {
        return Ok(t);
    }
    let c = read_checkpoint(ckpt)?;
    match task_of(&c) {
        Some(Task::Segment) => Ok(TaskArg::Detect),
        Some(Task::Classify) => Ok(TaskArg::Classify),
        None => match (&manifest.detector, &manifest.classifier) {
            (Some(_), None) => Ok(TaskArg::Detect),
            (None, Some(_)) => Ok(TaskArg::Classify),
            _ => bail!(
                "cannot tell whether {} is a detector or a classifier: pass --task detect|classify",
                ckpt.display()
            ),
        },
    }
}

/// Histogram bins of `confidence_histograms` (the server's monitoring bins).
pub(crate) const BASELINE_BINS: usize = 10;

/// Per-class confidences of an evaluation, as production monitoring reads them (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ConfidenceBaseline {
    /// Label → confidences (every model class, possibly empty).
    pub samples: std::collections::BTreeMap<String, Vec<f64>>,
}

impl ConfidenceBaseline {
    /// An empty baseline with a key for every label.
    pub fn new(labels: &[String]) -> Self {
        Self {
            samples: labels.iter().map(|l| (l.clone(), Vec::new())).collect(),
        }
    }

    /// Adds one confidence of `label`.
    pub fn push(&mut self, label: &str, confidence: f64) {
        self.samples
            .entry(label.to_string())
            .or_default()
            .push(confidence);
    }

    /// `{"confidence_samples": {label: […]}, "confidence_histograms": {label: [10 counts]}}`.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let hist = |v: &[f64]| {
            let mut h = vec![0u64; BASELINE_BINS];
            for &c in v {
                let b = (c.clamp(0.0, 1.0) * BASELINE_BINS as f64) as usize;
                h[b.min(BASELINE_BINS - 1)] += 1;
            }
            h
        };
        let mut m = serde_json::Map::new();
        m.insert("confidence_samples".into(), serde_json::json!(self.samples));
        m.insert(
            "confidence_histograms".into(),
            serde_json::Value::Object(
                self.samples
                    .iter()
                    .map(|(l, v)| (l.clone(), serde_json::json!(hist(v))))
                    .collect(),
            ),
        );
        m
    }

    /// Adds the baseline's keys to a JSON object (`details` or `report.json`).
    pub fn add_to(&self, v: &mut serde_json::Value) {
        if let Some(o) = v.as_object_mut() {
            o.extend(self.to_json());
        }
    }
}

/// Rewrites `report.json` with the confidence baseline and the runtime that ran the model
/// (`runtime`) added at its top level.
fn add_baseline_to_report(
    path: &Path,
    b: &ConfidenceBaseline,
    runtime: &str,
) -> anyhow::Result<()> {
    let mut v: serde_json::Value = serde_json::from_slice(&fs_err::read(path)?)
        .with_context(|| format!("re-reading {}", path.display()))?;
    b.add_to(&mut v);
    if let Some(o) = v.as_object_mut() {
        o.insert("runtime".into(), serde_json::Value::String(runtime.into()));
    }
    fs_err::write(path, serde_json::to_vec_pretty(&v)?)?;
    Ok(())
}

/// RFC 3339 UTC time of an instant.
pub(crate) fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Minimal HTTP/1.1 POST of a JSON body to an `http://host[:port]/path` URL; returns the status code
/// and the response body.
pub fn post_json(
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("--post {url}: only http:// URLs are supported"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let payload = serde_json::to_vec(body)?;
    let mut s =
        std::net::TcpStream::connect(&addr).with_context(|| format!("cannot connect to {addr}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let auth = token.map_or_else(String::new, |t| {
        format!("Authorization: Bearer {}\r\n", t.trim())
    });
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    s.write_all(&payload)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .with_context(|| format!("reading the response of {url}"))?;
    let resp = String::from_utf8_lossy(&resp);
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| format!("malformed HTTP response from {url}"))?;
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    if !(200..300).contains(&status) {
        bail!("POST {url} answered {status}: {}", body.trim());
    }
    Ok((status, body))
}

/// The registry's view of a report (the numbers promotion gates read).
pub fn registry_summary(r: &Report) -> EvaluationSummary {
    let stat = |v: &Option<Vec<f64>>, i: usize| {
        v.as_ref()
            .and_then(|s| s.get(i).copied())
            .filter(|x| *x >= 0.0)
    };
    let mut s = EvaluationSummary::default();
    if let Some(d) = &r.detection {
        s.box_map50_95 = stat(&d.coco_box, 0);
        s.box_map50 = stat(&d.coco_box, 1);
        s.mask_map50_95 = stat(&d.coco_mask, 0);
        s.mask_map50 = stat(&d.coco_mask, 1);
    }
    if let Some(c) = &r.classification {
        s.accuracy = Some(c.top1);
    }
    if let Some(o) = &r.operating {
        s.ng_ratio = Some(o.ng_rate);
        s.unknown_rate = Some(o.unknown_rate);
        s.business_rules_passed = Some(o.rules.iter().all(|x| x.passed));
        s.business_rule_failures = o
            .rules
            .iter()
            .filter(|x| !x.passed)
            .map(|x| format!("{}: {}", x.rule, x.detail))
            .collect();
    }
    s
}

/// Where the evaluation is recorded: the model version whose checkpoint has the same hash, and
/// the experiment the checkpoint lies in.
struct Target {
    model_version_id: Option<i64>,
    model_display: Option<String>,
    experiment_id: Option<String>,
}

async fn find_target(
    reg: &sightline_registry::Registry,
    project: &str,
    task: TaskArg,
    sha: &str,
    ckpt: &Path,
) -> anyhow::Result<Target> {
    let t = match task {
        TaskArg::Detect => sightline_core::Task::Segment,
        TaskArg::Classify => sightline_core::Task::Classify,
    };
    let mv = reg
        .list(Some(project), Some(t))
        .await
        .context("listing registered model versions")?
        .into_iter()
        .filter(|m| m.checkpoint_sha256 == sha)
        .max_by_key(|m| m.version);
    let abs = std::path::absolute(ckpt).unwrap_or_else(|_| ckpt.to_path_buf());
    let experiment_id = sightline_registry::service::experiment_from_path(&abs)
        .or_else(|| mv.as_ref().and_then(|m| m.experiment_id.clone()));
    Ok(Target {
        model_version_id: mv.as_ref().map(|m| m.id),
        model_display: mv.as_ref().map(|m| m.display_name()),
        experiment_id,
    })
}

fn artifacts_root(ctx: &Ctx) -> PathBuf {
    match &ctx.settings.artifacts {
        sightline_core::settings::ArtifactSettings::Local { root } => root.clone(),
        sightline_core::settings::ArtifactSettings::S3(_) => PathBuf::from("artifacts"),
    }
}

/// File-name-safe short form of a dataset label.
fn slug(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.len() > 12 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        s[..12].to_string()
    } else {
        s
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
    let ckpt = resolve_checkpoint(&args.checkpoint)?;
    let task = pick_task(&args, &ckpt, &manifest)?;
    let runtime = InferenceRuntime::resolve(ctx, &args.runtime)?;
    runtime.notice();
    let sha = sightline_store::sha256_file(&ckpt)
        .with_context(|| format!("cannot hash {}", ckpt.display()))?;
    // A classifier's `--data` is a class-per-folder tree read by the classifier path itself.
    let data = if task == TaskArg::Classify && args.data.is_some() {
        None
    } else {
        Some(load_data(&args, &manifest, ctx)?)
    };
    let dir = args.data.clone();
    let dataset_label = args.dataset.clone();
    let json = ctx.json;
    let job = {
        let (manifest, ckpt, sha) = (manifest.clone(), ckpt.clone(), sha.clone());
        let args_cfg = args.config.clone();
        let opts = RunOpts::from_args(&args, &runtime);
        tokio::task::spawn_blocking(move || -> anyhow::Result<Evaluated> {
            let base = ReportBase {
                config_path: args_cfg.display().to_string(),
                config: serde_json::to_value(&manifest)?,
                checkpoint: ckpt.display().to_string(),
                checkpoint_sha256: sha,
                started_at: rfc3339(started),
            };
            match (task, &data) {
                (TaskArg::Detect, Some(d)) => detect::evaluate(&manifest, &ckpt, d, &opts, base),
                (TaskArg::Detect, None) => bail!("no evaluation data"),
                (TaskArg::Classify, d) => classify::evaluate(
                    &manifest,
                    &ckpt,
                    d.as_ref(),
                    dir.as_deref(),
                    dataset_label,
                    &opts,
                    base,
                ),
            }
        })
    };
    let Evaluated {
        report,
        notes,
        baseline,
        runtime,
    } = job.await.context("evaluation worker stopped")??;

    let root = artifacts_root(ctx);
    let out = match &args.out {
        Some(o) => o.clone(),
        None => {
            let ds = report
                .dataset
                .version
                .as_deref()
                .map_or_else(|| "data".to_string(), slug);
            let name = format!(
                "{}-{ds}-{}",
                report.model,
                sightline_store::layout::timestamp(chrono::Utc::now())
            );
            root.join(sightline_store::layout::report(&name)?.as_str())
        }
    };
    let (json_path, html_path) = report.write(&out)?;
    add_baseline_to_report(&json_path, &baseline, &runtime)?;
    let report_path = out
        .strip_prefix(&root)
        .map_or_else(|_| out.display().to_string(), |p| p.display().to_string());
    let summary = registry_summary(&report);
    let mut details = report.summary();
    baseline.add_to(&mut details);

    let reg = crate::commands::register::open_registry(ctx).await?;
    let target = find_target(&reg, &manifest.project, task, &sha, &ckpt).await?;
    let recorded = if target.model_version_id.is_some() || target.experiment_id.is_some() {
        let e = reg
            .record_evaluation(NewEvaluation {
                model_version_id: target.model_version_id,
                experiment_id: target.experiment_id.clone(),
                dataset_version: report.dataset.version.clone(),
                split: Some(report.dataset.split.clone()),
                summary: summary.clone(),
                details: details.clone(),
                report_path: Some(report_path.clone()),
            })
            .await
            .context("recording the evaluation in the database")?;
        Some(e.id)
    } else {
        None
    };
    reg.db().close().await;

    let body = serde_json::json!({
        "model_version_id": target.model_version_id,
        "experiment_id": target.experiment_id,
        "dataset_version": report.dataset.version,
        "split": report.dataset.split,
        "summary": summary,
        "details": details,
        "report_path": report_path,
    });
    let posted = match &args.post {
        Some(url) => {
            let (status, resp) = post_json(url, &body, args.token.as_deref())?;
            Some(
                serde_json::json!({"url": url, "status": status, "response": serde_json::from_str::<serde_json::Value>(&resp).unwrap_or(serde_json::Value::String(resp))}),
            )
        }
        None => None,
    };
    if json {
        ctx.print_json(&serde_json::json!({
            "summary": details,
            "registry_summary": summary,
            "report_json": json_path,
            "report_html": html_path,
            "evaluation_id": recorded,
            "model_version_id": target.model_version_id,
            "experiment_id": target.experiment_id,
            "posted": posted,
            "notes": notes,
            "runtime": runtime,
        }))?;
    } else {
        print_human(&report, &notes, &runtime);
        match (recorded, &target.model_display, &target.experiment_id) {
            (Some(id), m, e) => println!(
                "{:<14} evaluation {id}{}{}",
                "recorded",
                m.as_ref().map(|m| format!(" for {m}")).unwrap_or_default(),
                e.as_ref()
                    .map(|e| format!(" (experiment {e})"))
                    .unwrap_or_default()
            ),
            (None, _, _) => println!(
                "{:<14} not recorded: the checkpoint is neither a registered model version nor under experiments/<id>/",
                "database"
            ),
        }
        println!("{:<14} {}", "report", json_path.display());
        println!("{:<14} {}", "html", html_path.display());
    }
    Ok(())
}

fn print_human(r: &Report, notes: &[String], runtime: &str) {
    println!("{:<14} {}", "model", r.model);
    println!("{:<14} {runtime}", "runtime");
    println!(
        "{:<14} {} ({} images, split {})",
        "data",
        r.dataset.version.as_deref().unwrap_or(&r.dataset.source),
        r.dataset.images,
        r.dataset.split
    );
    let mut rows: Vec<(&str, f64)> = Vec::new();
    if let Some(d) = &r.detection {
        if let Some(b) = &d.coco_box {
            rows.push(("box mAP50-95", b[0]));
            rows.push(("box mAP50", b[1]));
        }
        if let Some(m) = &d.coco_mask {
            rows.push(("mask mAP50-95", m[0]));
            rows.push(("mask mAP50", m[1]));
        }
        rows.push(("P (best F1)", d.mp));
        rows.push(("R (best F1)", d.mr));
    }
    if let Some(c) = &r.classification {
        rows.extend([
            ("top-1", c.top1),
            ("top-5", c.top5),
            ("macro F1", c.macro_f1),
            ("ECE", c.ece),
        ]);
    }
    if let Some(o) = &r.operating {
        rows.push(("NG rate", o.ng_rate));
        rows.push(("unknown rate", o.unknown_rate));
    }
    for (k, v) in rows {
        println!("{k:<14} {v:.4}");
    }
    if let Some(o) = &r.operating {
        for p in &o.per_class {
            println!(
                "{:<14} thr {:.2}: P {:.3} R {:.3} F1 {:.3}{}",
                p.name,
                p.threshold,
                p.precision,
                p.recall,
                p.f1,
                p.suggested_threshold
                    .map(|s| format!(" (suggested thr {s:.3})"))
                    .unwrap_or_default()
            );
        }
        for rule in &o.rules {
            println!(
                "{:<14} {} {}",
                rule.rule,
                if rule.passed { "PASS" } else { "FAIL" },
                rule.detail
            );
        }
    }
    for n in notes {
        println!("{:<14} {n}", "note");
    }
}

/// Options the evaluators need, copied out of [`Args`].
#[derive(Debug, Clone)]
pub(crate) struct RunOpts {
    pub split: String,
    pub labels: Option<Vec<String>>,
    pub imgsz: Option<u32>,
    pub conf: f64,
    pub iou: f64,
    pub batch: usize,
    pub device: String,
    pub gallery: usize,
    pub show_progress: bool,
    /// ONNX Runtime to run the model on (`None`: Burn).
    pub ort: Option<sightline_onnx::attach::OrtRuntime>,
}

impl RunOpts {
    fn from_args(a: &Args, runtime: &InferenceRuntime) -> Self {
        Self {
            split: a.split.clone(),
            labels: a.labels.as_ref().map(|l| {
                l.iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
            imgsz: a.imgsz,
            conf: a.conf,
            iou: a.iou,
            batch: a.batch,
            device: a.device.clone(),
            gallery: a.gallery,
            show_progress: true,
            ort: runtime.ort(),
        }
    }
}

/// What an evaluator produced.
pub(crate) struct Evaluated {
    /// The report.
    pub report: Report,
    /// Notes for the user.
    pub notes: Vec<String>,
    /// Per-class confidences for production monitoring.
    pub baseline: ConfidenceBaseline,
    /// What ran the model (`engine()` of the pipeline, e.g. `onnxruntime 1.32.0 (cpu)`).
    pub runtime: String,
}

/// Report fields common to every task.
pub(crate) struct ReportBase {
    pub config_path: String,
    pub config: serde_json::Value,
    pub checkpoint: String,
    pub checkpoint_sha256: String,
    pub started_at: String,
}

/// A progress bar over `n` images on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress(n: usize, what: &str, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>10} [{bar:30}] {pos}/{len} images ({elapsed}, eta {eta})",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        let at = |s| chrono::DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_796_000_000)), "2026-11-30T00:53:20Z");
    }

    #[test]
    fn baseline_json_has_samples_and_monitoring_bins() {
        let mut b = ConfidenceBaseline::new(&["a".into(), "b".into()]);
        for c in [0.0, 0.05, 0.1, 0.95, 1.0] {
            b.push("a", c);
        }
        let mut v = serde_json::json!({"metrics": {}});
        b.add_to(&mut v);
        assert_eq!(
            v["confidence_samples"],
            serde_json::json!({"a": [0.0, 0.05, 0.1, 0.95, 1.0], "b": []})
        );
        assert_eq!(
            v["confidence_histograms"],
            serde_json::json!({"a": [2, 1, 0, 0, 0, 0, 0, 0, 0, 2], "b": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]})
        );
        assert!(v["metrics"].is_object());
    }

    #[test]
    fn slugs_shorten_version_ids() {
        assert_eq!(slug("0123456789abcdef0123"), "0123456789ab");
        assert_eq!(slug("widgets a/v1"), "widgets_a_v1");
    }

    #[test]
    fn checkpoint_without_extension_finds_safetensors() {
        let d = tempfile::tempdir().unwrap();
        let best = d.path().join("best.safetensors");
        std::fs::write(&best, b"x").unwrap();
        assert_eq!(resolve_checkpoint(&d.path().join("best")).unwrap(), best);
        assert!(resolve_checkpoint(&d.path().join("last")).is_err());
    }
}
