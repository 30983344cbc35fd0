//! Promotion gates: the checks `model promote` runs before moving an alias.

use serde::{Deserialize, Serialize};
use sightline_core::Task;

use crate::model::{Evaluation, ModelVersion};

/// Thresholds a promotion must meet, on top of the business rules.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Gates {
    /// Minimum mAP@[.50:.95] (mask when available, else box) for detectors.
    pub min_map: Option<f64>,
    /// Minimum top-1 accuracy for classifiers.
    pub min_accuracy: Option<f64>,
}

/// Check `model` against its latest evaluation: returns every failed gate (empty = pass).
///
/// Fails when there is no evaluation; when the evaluator reported failed business rules; when
/// the evaluated NG ratio exceeds the model's `max_ng_ratio`; when unknowns occurred while
/// `allow_unknown` is false; when `min_map` / `min_accuracy` is not reached or the evaluation
/// lacks that number; and when a gate does not apply to the model's task.
pub fn check(model: &ModelVersion, latest: Option<&Evaluation>, gates: &Gates) -> Vec<String> {
    let mut failures = Vec::new();
    if gates.min_map.is_some() && model.task != Task::Segment {
        failures.push("--min-map applies to detectors (segment), not classifiers".to_string());
    }
    if gates.min_accuracy.is_some() && model.task != Task::Classify {
        failures.push("--min-accuracy applies to classifiers, not detectors".to_string());
    }
    let Some(eval) = latest else {
        failures.push(format!(
            "{} has no recorded evaluation (run `sightline evaluate … --post` or POST /models/metrics)",
            model.display_name()
        ));
        return failures;
    };
    let s = &eval.summary;
    if s.business_rules_passed == Some(false) {
        if s.business_rule_failures.is_empty() {
            failures.push("the latest evaluation failed the business rules".to_string());
        }
        for f in &s.business_rule_failures {
            failures.push(format!("business rule: {f}"));
        }
    }
    if let (Some(max), Some(ratio)) = (model.business_rules.max_ng_ratio, s.ng_ratio)
        && ratio > max
    {
        failures.push(format!("NG ratio {ratio:.4} exceeds max_ng_ratio {max:.4}"));
    }
    if !model.business_rules.allow_unknown
        && let Some(rate) = s.unknown_rate
        && rate > 0.0
    {
        failures.push(format!(
            "unknown rate {rate:.4} > 0 while allow_unknown is false"
        ));
    }
    if let Some(min) = gates.min_map
        && model.task == Task::Segment
    {
        match s.gate_map() {
            Some(m) if m >= min => {}
            Some(m) => failures.push(format!("mAP50-95 {m:.4} < --min-map {min:.4}")),
            None => failures.push("the latest evaluation has no mAP50-95".to_string()),
        }
    }
    if let Some(min) = gates.min_accuracy
        && model.task == Task::Classify
    {
        match s.accuracy {
            Some(a) if a >= min => {}
            Some(a) => failures.push(format!("accuracy {a:.4} < --min-accuracy {min:.4}")),
            None => failures.push("the latest evaluation has no accuracy".to_string()),
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Preprocessing;
    use crate::model::EvaluationSummary;
    use sightline_core::BusinessRules;

    fn model(task: Task, max_ng: Option<f64>, allow_unknown: bool) -> ModelVersion {
        ModelVersion {
            id: 1,
            project: "p".into(),
            task,
            version: 3,
            model_name: "m".into(),
            checkpoint_sha256: String::new(),
            checkpoint_path: String::new(),
            bundle_dir: String::new(),
            labels: vec![],
            preprocessing: Preprocessing::for_task(task, 224),
            thresholds: Default::default(),
            business_rules: BusinessRules {
                max_ng_ratio: max_ng,
                allow_unknown,
            },
            experiment_id: None,
            dataset_version: None,
            evaluation_report: None,
            note: None,
            created_at: String::new(),
        }
    }

    fn eval(summary: EvaluationSummary) -> Evaluation {
        Evaluation {
            id: 1,
            model_version_id: Some(1),
            experiment_id: None,
            dataset_version: None,
            split: None,
            summary,
            details: serde_json::Value::Null,
            report_path: None,
            created_at: String::new(),
        }
    }

    #[test]
    fn no_evaluation_fails() {
        let f = check(&model(Task::Segment, None, false), None, &Gates::default());
        assert_eq!(f.len(), 1);
        assert!(f[0].contains("no recorded evaluation"));
    }

    #[test]
    fn min_map_uses_mask_map_then_box_map() {
        let m = model(Task::Segment, None, false);
        let gates = Gates {
            min_map: Some(0.5),
            min_accuracy: None,
        };
        let both = eval(EvaluationSummary {
            box_map50_95: Some(0.9),
            mask_map50_95: Some(0.4),
            ..Default::default()
        });
        assert_eq!(check(&m, Some(&both), &gates).len(), 1);
        let box_only = eval(EvaluationSummary {
            box_map50_95: Some(0.5),
            ..Default::default()
        });
        assert!(check(&m, Some(&box_only), &gates).is_empty());
        let none = eval(EvaluationSummary::default());
        assert!(check(&m, Some(&none), &gates)[0].contains("no mAP50-95"));
    }

    #[test]
    fn business_rules_ng_ratio_and_unknowns() {
        let m = model(Task::Classify, Some(0.1), false);
        let e = eval(EvaluationSummary {
            accuracy: Some(0.95),
            ng_ratio: Some(0.2),
            unknown_rate: Some(0.01),
            business_rules_passed: Some(false),
            business_rule_failures: vec!["ng ratio too high".into()],
            ..Default::default()
        });
        let f = check(&m, Some(&e), &Gates::default());
        assert_eq!(f.len(), 3, "{f:?}");
        let ok = eval(EvaluationSummary {
            accuracy: Some(0.95),
            ng_ratio: Some(0.1),
            unknown_rate: Some(0.0),
            business_rules_passed: Some(true),
            ..Default::default()
        });
        let gates = Gates {
            min_map: None,
            min_accuracy: Some(0.95),
        };
        assert!(check(&m, Some(&ok), &gates).is_empty());
        let gates = Gates {
            min_map: None,
            min_accuracy: Some(0.96),
        };
        assert_eq!(check(&m, Some(&ok), &gates).len(), 1);
    }

    #[test]
    fn gate_for_the_wrong_task_is_reported() {
        let m = model(Task::Classify, None, true);
        let e = eval(EvaluationSummary {
            accuracy: Some(1.0),
            ..Default::default()
        });
        let gates = Gates {
            min_map: Some(0.1),
            min_accuracy: None,
        };
        assert!(check(&m, Some(&e), &gates)[0].contains("--min-map applies"));
    }
}
