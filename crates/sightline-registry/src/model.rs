//! Registry records: model versions, evaluations, aliases and lineage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sightline_core::{BusinessRules, Task};

use crate::bundle::Preprocessing;

/// An immutable, registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Database id.
    pub id: i64,
    /// Project name.
    pub project: String,
    /// Task (`segment` = detector, `classify` = classifier).
    pub task: Task,
    /// Version number, 1, 2, ... per project + task.
    pub version: i64,
    /// Architecture (`yolov8n-seg`, `mobilenet_v3_small`, ...).
    pub model_name: String,
    /// SHA-256 of the registered checkpoint.
    pub checkpoint_sha256: String,
    /// The checkpoint path as given at registration (provenance only).
    pub checkpoint_path: String,
    /// Bundle folder, relative to the artifact root.
    pub bundle_dir: String,
    /// Label map: class id = index.
    pub labels: Vec<String>,
    /// Input preprocessing.
    pub preprocessing: Preprocessing,
    /// Per-label confidence thresholds.
    pub thresholds: BTreeMap<String, f64>,
    /// Business rules at registration.
    pub business_rules: BusinessRules,
    /// Training run (experiment) the checkpoint came from, if known.
    pub experiment_id: Option<String>,
    /// Dataset version the run trained on, if known.
    pub dataset_version: Option<String>,
    /// Evaluation report reference (path under the artifact root), if known.
    pub evaluation_report: Option<String>,
    /// Free-form note.
    pub note: Option<String>,
    /// Registration time (RFC 3339, UTC).
    pub created_at: String,
}

impl ModelVersion {
    /// `project/task vN`, for messages.
    pub fn display_name(&self) -> String {
        format!("{}/{} v{}", self.project, self.task, self.version)
    }
}

/// What registration needs besides the numbering the registry assigns.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModelVersion {
    /// Project name (must exist).
    pub project: String,
    /// Task.
    pub task: Task,
    /// Architecture.
    pub model_name: String,
    /// Label map.
    pub labels: Vec<String>,
    /// Preprocessing.
    pub preprocessing: Preprocessing,
    /// Thresholds.
    pub thresholds: BTreeMap<String, f64>,
    /// Business rules.
    pub business_rules: BusinessRules,
    /// Experiment id, if known.
    pub experiment_id: Option<String>,
    /// Dataset version, if known.
    pub dataset_version: Option<String>,
    /// Evaluation report, if known.
    pub evaluation_report: Option<String>,
    /// Note.
    pub note: Option<String>,
}

/// The numbers of an evaluation that gates and dashboards use. Every field is optional: a
/// detector evaluation has mAPs, a classifier evaluation an accuracy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EvaluationSummary {
    /// Box mAP@[.50:.95].
    pub box_map50_95: Option<f64>,
    /// Box mAP@.50.
    pub box_map50: Option<f64>,
    /// Mask mAP@[.50:.95].
    pub mask_map50_95: Option<f64>,
    /// Mask mAP@.50.
    pub mask_map50: Option<f64>,
    /// Top-1 accuracy.
    pub accuracy: Option<f64>,
    /// Predicted NG ratio at the operating point.
    pub ng_ratio: Option<f64>,
    /// Unknown rate at the operating point.
    pub unknown_rate: Option<f64>,
    /// The evaluator's own verdict on the business rules, if it gave one.
    pub business_rules_passed: Option<bool>,
    /// The evaluator's reasons when the business rules failed.
    pub business_rule_failures: Vec<String>,
}

impl EvaluationSummary {
    /// The mAP `--min-map` compares: mask mAP@[.50:.95] when present, else box mAP@[.50:.95].
    pub fn gate_map(&self) -> Option<f64> {
        self.mask_map50_95.or(self.box_map50_95)
    }
}

/// An evaluation recorded against a model version (and/or an experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Database id.
    pub id: i64,
    /// The model version evaluated, if known.
    pub model_version_id: Option<i64>,
    /// The experiment evaluated, if known.
    pub experiment_id: Option<String>,
    /// Dataset version evaluated on, if known.
    pub dataset_version: Option<String>,
    /// Split (`val`, `test`), if known.
    pub split: Option<String>,
    /// The gate-relevant numbers.
    pub summary: EvaluationSummary,
    /// The full payload as received.
    pub details: serde_json::Value,
    /// Report folder/file under the artifact root, if any.
    pub report_path: Option<String>,
    /// Time recorded (RFC 3339, UTC).
    pub created_at: String,
}

/// An alias pointing at a model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    /// Project.
    pub project: String,
    /// Task.
    pub task: Task,
    /// Alias name (`production`, `staging`, any).
    pub alias: String,
    /// Model version id.
    pub model_version_id: i64,
    /// Version number it points at.
    pub version: i64,
    /// When it was set.
    pub updated_at: String,
}

/// One change of an alias, kept forever (audit trail of promotions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasEvent {
    /// Project.
    pub project: String,
    /// Task.
    pub task: Task,
    /// Alias.
    pub alias: String,
    /// Version id before (None: alias was new).
    pub from_model_version_id: Option<i64>,
    /// Version id after.
    pub to_model_version_id: i64,
    /// Whether gates were bypassed with `--force`.
    pub forced: bool,
    /// Gate failures that `--force` overrode (empty otherwise).
    pub overridden: Vec<String>,
    /// Who made the change (token name or `cli`).
    pub actor: String,
    /// When.
    pub at: String,
}

/// Lineage of a model version: where it came from and where it is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The model version.
    pub model: ModelVersion,
    /// Experiment it was trained in.
    pub experiment_id: Option<String>,
    /// Dataset version of that experiment.
    pub dataset_version: Option<String>,
    /// Evaluations recorded for it, newest first.
    pub evaluations: Vec<Evaluation>,
    /// Aliases pointing at it now.
    pub aliases: Vec<String>,
}
