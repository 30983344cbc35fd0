//! Evaluation: a checkpoint runs over an evaluation split, sightline-eval computes the metrics and
//! sightline-report writes `report.json` + `report.html`; the evaluation is recorded in the
//! database, where the registry's promotion gates read it (`sightline evaluate`).
//!
//! - **Task**: given, else the checkpoint's own (Ultralytics/safetensors metadata or tensor
//!   names), else the manifest's only model ([`pick_task`]).
//! - **Data** ([`data`]): a folder (a class-per-folder tree for classifiers; any ingestible
//!   COCO/VOC/YOLO/folder tree for detectors), else the project's dataset version (id, prefix or
//!   `latest`), read straight from the content-addressed store. Only the split's images are used.
//! - **Classes of a detector** (see [`detect`]): the checkpoint's class names (or the given
//!   labels, in class-id order) must be project labels; ground-truth objects whose label is not a
//!   model class are left out of the metrics (reported). Thresholds come from the manifest.
//! - **Database** ([`record`]): a `model_evaluations` row is written when the checkpoint is a
//!   registered model version (same sha256, same project and task) and/or lies under
//!   `experiments/<id>/`. The registry summary uses the COCO numbers.
//! - **Monitoring baseline**: the evaluation's `details` and `report.json` carry the typed
//!   [`ConfidenceBaseline`] of the inspection policy, meaning what production logs: for a
//!   detector every detection the served model would return (above
//!   [`sightline_core::inspection::serving_floor`]) under its label; for a classifier the arg-max
//!   label and its probability, one per image.
//! - **Runtime**: with an ONNX Runtime in the options, the checkpoint's own dynamic ONNX export
//!   runs with the same pre- and post-processing; `report.json` names what ran in `runtime`.
//!
//! Entry points, in the order the CLI calls them: [`resolve_checkpoint`], [`pick_task`],
//! [`evaluate`] (blocking: runs the model, reports [`EvaluateEvent`]s),
//! [`Evaluation::write`], [`record`].

mod classify;
pub mod data;
pub mod detect;
mod error;
mod gallery;
pub mod record;

use std::path::{Path, PathBuf};

use sightline_core::Task;
use sightline_core::inspection::ConfidenceBaseline;
use sightline_core::manifest::Manifest;
use sightline_registry::EvaluationSummary;
use sightline_report::Report;

pub use data::{EvalData, load_data};
pub use error::EvaluateError;
pub use record::{Recorded, Target, record, registry_summary};

/// What an evaluation needs, resolved by the caller (no command-line types).
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// The project manifest's path, as recorded in the report.
    pub config_path: PathBuf,
    /// The project manifest.
    pub manifest: Manifest,
    /// The checkpoint file ([`resolve_checkpoint`]).
    pub checkpoint: PathBuf,
    /// The model evaluated ([`pick_task`]).
    pub task: Task,
    /// Evaluation data folder instead of a dataset version.
    pub data: Option<PathBuf>,
    /// Dataset version (id, unique prefix or `latest`, the default without `data`); with `data`
    /// only a label recorded in the report.
    pub dataset: Option<String>,
    /// Sightline home (dataset versions live under `<home>/projects/<p>/datasets`).
    pub home: PathBuf,
    /// Split evaluated.
    pub split: String,
    /// Detector class names in class-id order, when the checkpoint's are missing or other.
    pub labels: Option<Vec<String>>,
    /// Inference image size (default: the checkpoint's training size, else the manifest's).
    pub imgsz: Option<u32>,
    /// Minimum confidence kept for threshold-free metrics (detector).
    pub conf: f64,
    /// NMS IoU (detector).
    pub iou: f64,
    /// Images per forward pass (at least 1).
    pub batch: usize,
    /// Compute device: cpu, cuda, cuda:N.
    pub device: String,
    /// Thumbnails in the report's gallery of worst mistakes (0 = none).
    pub gallery: usize,
    /// ONNX Runtime to run the model on (`None`: Burn).
    pub ort: Option<sightline_onnx::attach::OrtRuntime>,
    /// When the evaluation started (the report's `started_at`).
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// Progress of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvaluateEvent {
    /// The model starts on `images` images; `stage` names the model (`segment`, `classify`).
    InferenceStarted {
        /// `segment` or `classify`.
        stage: &'static str,
        /// Images to run.
        images: usize,
    },
    /// `images` more images went through the model.
    ImagesDone {
        /// Images in this step.
        images: usize,
    },
    /// The model has run on every image.
    InferenceFinished,
}

/// What an evaluation produced.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The report.
    pub report: Report,
    /// Notes for the user.
    pub notes: Vec<String>,
    /// Per-class confidences for production monitoring.
    pub baseline: ConfidenceBaseline,
    /// What ran the model (e.g. `onnxruntime 1.32.0 (cpu)`).
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

/// The checkpoint path, accepting `…/weights/best` for `…/weights/best.safetensors` (or `.pt`).
pub fn resolve_checkpoint(p: &Path) -> Result<PathBuf, EvaluateError> {
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
    Err(EvaluateError::CheckpointMissing(p.to_path_buf()))
}

/// Which model to evaluate: `task`, else the checkpoint's task, else the manifest's only model.
pub fn pick_task(
    task: Option<Task>,
    ckpt: &Path,
    manifest: &Manifest,
) -> Result<Task, EvaluateError> {
    if let Some(t) = task {
        return Ok(t);
    }
    let c = sightline_vision::checkpoint::read_checkpoint(ckpt)?;
    match sightline_vision::checkpoint::task_of(&c) {
        Some(t) => Ok(t),
        None => match (&manifest.detector, &manifest.classifier) {
            (Some(_), None) => Ok(Task::Segment),
            (None, Some(_)) => Ok(Task::Classify),
            _ => Err(EvaluateError::UnknownTask(ckpt.to_path_buf())),
        },
    }
}

/// RFC 3339 UTC time of an instant.
pub fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Evaluates the checkpoint (blocking: run it on a blocking thread): hashes it, reads the data,
/// runs the model, computes every metric and the report, reporting progress to `on_event`.
pub fn evaluate(
    opts: &EvaluateOptions,
    on_event: &dyn Fn(EvaluateEvent),
) -> Result<Evaluation, EvaluateError> {
    if opts.batch == 0 {
        return Err(EvaluateError::ZeroBatch);
    }
    let ckpt = &opts.checkpoint;
    let sha = sightline_store::sha256_file(ckpt).map_err(|source| EvaluateError::Hash {
        path: ckpt.clone(),
        source,
    })?;
    // A classifier's data folder is a class-per-folder tree read by the classifier path itself.
    let data = if opts.task == Task::Classify && opts.data.is_some() {
        None
    } else {
        Some(load_data(
            opts.data.as_deref(),
            opts.dataset.as_deref(),
            &opts.manifest,
            &opts.home,
        )?)
    };
    let base = ReportBase {
        config_path: opts.config_path.display().to_string(),
        config: serde_json::to_value(&opts.manifest)?,
        checkpoint: ckpt.display().to_string(),
        checkpoint_sha256: sha,
        started_at: rfc3339(opts.started_at),
    };
    match (opts.task, &data) {
        (Task::Segment, Some(d)) => detect::evaluate(opts, d, base, on_event),
        (Task::Segment, None) => Err(EvaluateError::NoData),
        (Task::Classify, d) => classify::evaluate(opts, d.as_ref(), base, on_event),
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

impl Evaluation {
    /// The default output folder: `<artifacts>/reports/<model>-<dataset>-<timestamp>`.
    pub fn default_out_dir(&self, artifacts_root: &Path) -> Result<PathBuf, EvaluateError> {
        let ds = self
            .report
            .dataset
            .version
            .as_deref()
            .map_or_else(|| "data".to_string(), slug);
        let name = format!(
            "{}-{ds}-{}",
            self.report.model,
            sightline_store::layout::timestamp(chrono::Utc::now())
        );
        Ok(artifacts_root.join(sightline_store::layout::report(&name)?.as_str()))
    }

    /// Writes `report.json` (with the confidence baseline and the runtime that ran the model at
    /// its top level) and `report.html` into `out`; returns both paths.
    pub fn write(&self, out: &Path) -> Result<(PathBuf, PathBuf), EvaluateError> {
        let (json_path, html_path) = self.report.write(out)?;
        let mut v: serde_json::Value =
            serde_json::from_slice(&fs_err::read(&json_path)?).map_err(|source| {
                EvaluateError::ReReadReport {
                    path: json_path.clone(),
                    source,
                }
            })?;
        self.baseline.add_to(&mut v);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "runtime".into(),
                serde_json::Value::String(self.runtime.clone()),
            );
        }
        fs_err::write(&json_path, serde_json::to_vec_pretty(&v)?)?;
        Ok((json_path, html_path))
    }

    /// The evaluation's `details`: the report's summary with the confidence baseline.
    pub fn details(&self) -> serde_json::Value {
        let mut details = self.report.summary();
        self.baseline.add_to(&mut details);
        details
    }

    /// The registry's view of the report (the numbers promotion gates read).
    pub fn registry_summary(&self) -> EvaluationSummary {
        registry_summary(&self.report)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
    fn slugs_shorten_version_ids() {
        assert_eq!(slug("0123456789abcdef0123"), "0123456789ab");
        assert_eq!(slug("widgets a/v1"), "widgets_a_v1");
    }

    #[test]
    fn checkpoint_without_extension_finds_safetensors() {
        let d = tempfile::tempdir().unwrap();
        let best = d.path().join("best.safetensors");
        fs_err::write(&best, b"x").unwrap();
        assert_eq!(resolve_checkpoint(&d.path().join("best")).unwrap(), best);
        assert!(resolve_checkpoint(&d.path().join("last")).is_err());
    }
}
