//! Recording an evaluation: the model version whose checkpoint has the same hash and the
//! experiment the checkpoint lies in get a `model_evaluations` row, with the registry summary
//! (the numbers promotion gates read) and the details (headline numbers + confidence baseline).

use std::path::Path;

use sightline_core::Task;
use sightline_registry::{EvaluationSummary, NewEvaluation, Registry};
use sightline_report::Report;

use super::{EvaluateError, Evaluation};

/// The registry's view of a report (the numbers promotion gates read): COCO AP for boxes and
/// masks, top-1 accuracy, NG and unknown rates, business rules.
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

/// Where an evaluation is recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The newest registered model version with the checkpoint's hash (same project and task).
    pub model_version_id: Option<i64>,
    /// Its display name.
    pub model_display: Option<String>,
    /// The experiment the checkpoint lies in (`experiments/<id>/`), else the model version's.
    pub experiment_id: Option<String>,
}

async fn find_target(
    reg: &Registry,
    project: &str,
    task: Task,
    sha: &str,
    ckpt: &Path,
) -> Result<Target, EvaluateError> {
    let mv = reg
        .list(Some(project), Some(task))
        .await
        .map_err(EvaluateError::ListModels)?
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

/// What was recorded (or would have been, when the checkpoint is neither a model version nor
/// under an experiment).
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Where.
    pub target: Target,
    /// The `model_evaluations` row, when one was written.
    pub evaluation_id: Option<i64>,
    /// The registry summary.
    pub summary: EvaluationSummary,
    /// The details (headline numbers + confidence baseline).
    pub details: serde_json::Value,
    /// Where the report lies (relative to the artifacts root when under it).
    pub report_path: String,
    /// Dataset version evaluated.
    pub dataset_version: Option<String>,
    /// Split evaluated.
    pub split: String,
}

impl Recorded {
    /// The body of `POST /models/metrics` (the backend records the same evaluation).
    pub fn metrics_body(&self) -> serde_json::Value {
        serde_json::json!({
            "model_version_id": self.target.model_version_id,
            "experiment_id": self.target.experiment_id,
            "dataset_version": self.dataset_version,
            "split": self.split,
            "summary": self.summary,
            "details": self.details,
            "report_path": self.report_path,
        })
    }
}

/// Records `ev` of checkpoint `ckpt` (project `project`, `task`, hash in the report) whose report
/// lies at `report_path`.
pub async fn record(
    reg: &Registry,
    project: &str,
    task: Task,
    ckpt: &Path,
    ev: &Evaluation,
    report_path: String,
) -> Result<Recorded, EvaluateError> {
    let report = &ev.report;
    let summary = ev.registry_summary();
    let details = ev.details();
    let target = find_target(reg, project, task, &report.checkpoint_sha256, ckpt).await?;
    let evaluation_id = if target.model_version_id.is_some() || target.experiment_id.is_some() {
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
            .map_err(EvaluateError::Record)?;
        Some(e.id)
    } else {
        None
    };
    Ok(Recorded {
        target,
        evaluation_id,
        summary,
        details,
        report_path,
        dataset_version: report.dataset.version.clone(),
        split: report.dataset.split.clone(),
    })
}
