//! Verdicts: turning detector and classifier outputs into `ok | ng | unknown` with reasons, and
//! tracking the NG ratio over a lot or a rolling window against `max_ng_ratio`.
//!
//! The rules are the one inspection policy, [`sightline_core::inspection`], which evaluation
//! applies too; this module adds the reasons and the NG-ratio tracking. Conventions (also in the
//! API documentation):
//! - a label named `ok` (any case) is the good class; every other label is a defect;
//! - a detection counts when its confidence reaches its label's threshold (default 0.25);
//!   any counted defect detection makes the image NG;
//! - the classifier's arg-max label counts when its probability reaches the label's threshold;
//!   below it the image is `unknown` if `allow_unknown` is true, otherwise the arg-max label is
//!   used anyway (a known label is forced);
//! - NG wins over unknown, unknown over OK.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sightline_core::inspection::{self, ClassifierAnswer, ClassifierCall};
use sightline_core::{BusinessRules, DEFAULT_THRESHOLD};

/// Image verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No defect.
    Ok,
    /// Defective.
    Ng,
    /// Not confident enough to decide (only with `allow_unknown: true`).
    Unknown,
}

impl Verdict {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Ng => "ng",
            Verdict::Unknown => "unknown",
        }
    }
}

/// Whether a label is the good class (the one rule: [`inspection::is_ok_label`]).
pub use sightline_core::inspection::is_ok_label;

impl From<inspection::Verdict> for Verdict {
    fn from(v: inspection::Verdict) -> Self {
        match v {
            inspection::Verdict::Ok => Verdict::Ok,
            inspection::Verdict::Ng => Verdict::Ng,
            inspection::Verdict::Unknown => Verdict::Unknown,
        }
    }
}

/// Threshold of a label in a threshold map.
pub fn threshold(thresholds: &BTreeMap<String, f64>, label: &str) -> f64 {
    thresholds.get(label).copied().unwrap_or(DEFAULT_THRESHOLD)
}

/// A detection as the verdict sees it.
#[derive(Debug, Clone)]
pub struct DetectionView<'a> {
    /// Label name.
    pub label: &'a str,
    /// Confidence.
    pub confidence: f64,
}

/// The classifier's decision for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClassDecision {
    /// Decided label, or `None` for unknown.
    pub label: Option<String>,
    /// Arg-max label.
    pub top_label: String,
    /// Its probability.
    pub confidence: f64,
    /// Whether the probability reached the threshold.
    pub above_threshold: bool,
}

/// Decide the classifier's label for an image.
pub fn classify_decision(
    top_label: &str,
    confidence: f64,
    thresholds: &BTreeMap<String, f64>,
    rules: &BusinessRules,
) -> ClassDecision {
    let call = ClassifierCall::new(top_label, confidence, threshold(thresholds, top_label));
    ClassDecision {
        label: call
            .label_decided(rules.allow_unknown)
            .then(|| top_label.to_string()),
        top_label: top_label.to_string(),
        confidence,
        above_threshold: call.above_threshold,
    }
}

/// Combine the detector's detections and the classifier's decision into a verdict with reasons.
pub fn decide(
    detections: Option<(&[DetectionView<'_>], &BTreeMap<String, f64>)>,
    class: Option<&ClassDecision>,
) -> (Verdict, Vec<String>) {
    let mut reasons = Vec::new();
    let mut defect_detected = false;
    if let Some((dets, thresholds)) = detections {
        for d in dets {
            let t = threshold(thresholds, d.label);
            if inspection::detection_is_defect(d.label, d.confidence, t) {
                defect_detected = true;
                reasons.push(format!(
                    "detector: {} {:.3} >= threshold {t:.3}",
                    d.label, d.confidence
                ));
            }
        }
    }
    // The decided label (`None`: unknown) as the policy's answer.
    let answer = class.map(|c| match &c.label {
        Some(l) if !is_ok_label(l) => ClassifierAnswer::Defect,
        Some(_) => ClassifierAnswer::Ok,
        None => ClassifierAnswer::Unknown,
    });
    if let Some(c) = class {
        match &c.label {
            Some(l) if !is_ok_label(l) => {
                if c.above_threshold {
                    reasons.push(format!("classifier: {l} {:.3}", c.confidence));
                } else {
                    reasons.push(format!(
                        "classifier: {l} {:.3} below threshold, known label forced (allow_unknown: false)",
                        c.confidence
                    ));
                }
            }
            Some(l) => {
                if !c.above_threshold {
                    reasons.push(format!(
                        "classifier: {l} {:.3} below threshold, known label forced (allow_unknown: false)",
                        c.confidence
                    ));
                }
            }
            None => {
                reasons.push(format!(
                    "classifier: top label {} {:.3} is below its threshold (allow_unknown: true)",
                    c.top_label, c.confidence
                ));
            }
        }
    }
    (inspection::verdict(defect_detected, answer).into(), reasons)
}

/// NG ratio over a lot or the rolling window, compared to `max_ng_ratio`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NgRatio {
    /// `lot` when the request named a lot, else `window` (the last N inspections of the project).
    pub scope: String,
    /// The lot name, when `scope` is `lot`.
    pub lot: Option<String>,
    /// NG verdicts in scope (this one included).
    pub ng: u64,
    /// Inspections in scope (this one included).
    pub total: u64,
    /// `ng / total`.
    pub ratio: f64,
    /// The business rule's limit, if any.
    pub max_ng_ratio: Option<f64>,
    /// Whether the ratio is above the limit.
    pub exceeded: bool,
}

/// Tracks NG ratios per project (rolling window) and per (project, lot).
#[derive(Debug)]
pub struct NgTracker {
    window: usize,
    max_lots: usize,
    inner: Mutex<TrackerState>,
}

#[derive(Debug, Default)]
struct TrackerState {
    windows: HashMap<String, VecDeque<bool>>,
    lots: HashMap<(String, String), (u64, u64, u64)>,
    tick: u64,
}

impl NgTracker {
    /// Rolling window of `window` inspections per project; at most `max_lots` lots remembered
    /// (least recently used forgotten first).
    pub fn new(window: usize, max_lots: usize) -> Self {
        Self {
            window: window.max(1),
            max_lots: max_lots.max(1),
            inner: Mutex::new(TrackerState::default()),
        }
    }

    /// Record a verdict and return the ratio in scope.
    pub fn record(
        &self,
        project: &str,
        lot: Option<&str>,
        verdict: Verdict,
        max_ng_ratio: Option<f64>,
    ) -> NgRatio {
        let is_ng = verdict == Verdict::Ng;
        let Ok(mut st) = self.inner.lock() else {
            return NgRatio {
                scope: "window".into(),
                lot: None,
                ng: 0,
                total: 0,
                ratio: 0.0,
                max_ng_ratio,
                exceeded: false,
            };
        };
        st.tick += 1;
        let tick = st.tick;
        let w = st.windows.entry(project.to_string()).or_default();
        w.push_back(is_ng);
        while w.len() > self.window {
            w.pop_front();
        }
        let (scope, lot_name, ng, total) = if let Some(lot) = lot {
            let e = st
                .lots
                .entry((project.to_string(), lot.to_string()))
                .or_insert((0, 0, 0));
            e.0 += u64::from(is_ng);
            e.1 += 1;
            e.2 = tick;
            let (ng, total) = (e.0, e.1);
            if st.lots.len() > self.max_lots
                && let Some(oldest) = st
                    .lots
                    .iter()
                    .min_by_key(|(_, v)| v.2)
                    .map(|(k, _)| k.clone())
            {
                st.lots.remove(&oldest);
            }
            ("lot", Some(lot.to_string()), ng, total)
        } else {
            let w = &st.windows[project];
            let ng = w.iter().filter(|b| **b).count() as u64;
            ("window", None, ng, w.len() as u64)
        };
        let ratio = if total == 0 {
            0.0
        } else {
            ng as f64 / total as f64
        };
        NgRatio {
            scope: scope.into(),
            lot: lot_name,
            ng,
            total,
            ratio,
            max_ng_ratio,
            exceeded: max_ng_ratio.is_some_and(|m| ratio > m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn classifier_unknown_only_when_allowed() {
        let t = th(&[("ok", 0.6)]);
        let allow = BusinessRules {
            max_ng_ratio: None,
            allow_unknown: true,
        };
        let forbid = BusinessRules::default();
        let c = classify_decision("ok", 0.5, &t, &allow);
        assert_eq!(c.label, None);
        assert_eq!(decide(None, Some(&c)).0, Verdict::Unknown);
        let c = classify_decision("ok", 0.5, &t, &forbid);
        assert_eq!(c.label.as_deref(), Some("ok"));
        let (v, reasons) = decide(None, Some(&c));
        assert_eq!(v, Verdict::Ok);
        assert!(reasons[0].contains("forced"));
        let c = classify_decision("ng", 0.3, &t, &allow); // default threshold 0.25
        assert_eq!(decide(None, Some(&c)).0, Verdict::Ng);
    }

    #[test]
    fn detections_respect_per_label_thresholds_and_ng_beats_unknown() {
        let t = th(&[("scratch", 0.5)]);
        let below = [DetectionView {
            label: "scratch",
            confidence: 0.49,
        }];
        assert_eq!(decide(Some((&below, &t)), None).0, Verdict::Ok);
        let above = [
            DetectionView {
                label: "ok",
                confidence: 0.99,
            },
            DetectionView {
                label: "dent",
                confidence: 0.3,
            },
        ];
        let unknown = ClassDecision {
            label: None,
            top_label: "ok".into(),
            confidence: 0.1,
            above_threshold: false,
        };
        let (v, reasons) = decide(Some((&above, &t)), Some(&unknown));
        assert_eq!(v, Verdict::Ng);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].starts_with("detector: dent"));
    }

    #[test]
    fn ng_ratio_over_window_and_lot() {
        let tr = NgTracker::new(4, 2);
        for v in [Verdict::Ng, Verdict::Ok, Verdict::Ok, Verdict::Ok] {
            tr.record("p", None, v, Some(0.2));
        }
        // Window of 4: [ok, ok, ok, ng] after the first ng slides out -> 1/4.
        let r = tr.record("p", None, Verdict::Ng, Some(0.2));
        assert_eq!((r.ng, r.total), (1, 4));
        assert!(r.exceeded);
        let r = tr.record("p", Some("L1"), Verdict::Ok, Some(0.2));
        assert_eq!((r.scope.as_str(), r.ng, r.total), ("lot", 0, 1));
        let r = tr.record("p", Some("L1"), Verdict::Ng, Some(0.5));
        assert_eq!((r.ng, r.total, r.exceeded), (1, 2, false));
        tr.record("p", Some("L2"), Verdict::Ok, None);
        tr.record("p", Some("L3"), Verdict::Ok, None); // evicts L1 (least recent)
        let r = tr.record("p", Some("L1"), Verdict::Ok, None);
        assert_eq!(r.total, 1);
    }
}
