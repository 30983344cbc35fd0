//! Metrics at the operating point (what ships, not only threshold-free AP): per-class confidence thresholds,
//! per-class precision/recall at them, the image-level OK/NG decision and its confusion matrix, NG and unknown
//! rates, business-rule gates, and threshold sweeps that suggest per-class thresholds.
//!
//! Decision rule for one image: the server's, [`sightline_core::inspection`] (one policy, so promotion gates read
//! what production serves), in order:
//! 1. NG if any predicted instance of a defect class (not named `ok`, any case) scores at least its class
//!    threshold;
//! 2. otherwise, with a classifier: its top label is "low confidence" when its confidence is below that label's
//!    threshold; with `allow_unknown` such an image is **Unknown**; otherwise the top label decides:
//!    the `ok` label → OK, any other (defect) label → NG;
//! 3. otherwise OK.

use serde::{Deserialize, Serialize};
use sightline_core::inspection::{self, ClassifierCall, is_ok_label};

use crate::EvalError;

/// Default per-class threshold when none is configured (the manifest default).
pub const DEFAULT_THRESHOLD: f64 = 0.25;

/// Thresholds and unknown handling of a deployed model.
#[derive(Debug, Clone, Serialize)]
pub struct OperatingPoint {
    /// Per class index; classes beyond the list use [`DEFAULT_THRESHOLD`].
    pub thresholds: Vec<f64>,
    /// Class names by index: the one named `ok` (any case, [`is_ok_label`]) means "no defect"; classes beyond
    /// the list are defects.
    pub labels: Vec<String>,
    /// Whether a low-confidence classifier answer may be reported as "unknown".
    pub allow_unknown: bool,
}

impl OperatingPoint {
    /// Threshold of a class.
    pub fn threshold(&self, class: usize) -> f64 {
        self.thresholds
            .get(class)
            .copied()
            .unwrap_or(DEFAULT_THRESHOLD)
    }

    /// Whether a class is the good class.
    pub fn is_ok_class(&self, class: usize) -> bool {
        self.labels.get(class).is_some_and(|l| is_ok_label(l))
    }
}

/// A predicted defect instance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InstancePrediction {
    /// Class index.
    pub class: usize,
    /// Confidence.
    pub score: f64,
}

/// The top answer of an image classifier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassifierPrediction {
    /// Label index.
    pub label: usize,
    /// Its probability.
    pub confidence: f64,
}

/// Everything known about one evaluated image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageResult {
    /// Ground truth: the image has at least one defect (its label is not `ok`).
    pub truth_ng: bool,
    /// Predicted instances (detector / segmenter).
    pub instances: Vec<InstancePrediction>,
    /// Classifier answer, if any.
    pub classifier: Option<ClassifierPrediction>,
}

/// Image-level decision: the inspection policy's verdict.
pub use sightline_core::inspection::Verdict as Decision;

/// Decides one image; the flag tells whether the classifier answer was below its threshold.
pub fn decide(img: &ImageResult, op: &OperatingPoint) -> (Decision, bool) {
    let defect = img
        .instances
        .iter()
        .any(|i| !op.is_ok_class(i.class) && i.score >= op.threshold(i.class));
    let call = img.classifier.map(|c| ClassifierCall {
        ok: op.is_ok_class(c.label),
        above_threshold: c.confidence >= op.threshold(c.label),
    });
    let low = call.is_some_and(|c| !c.above_threshold);
    (
        inspection::verdict(defect, call.map(|c| c.answer(op.allow_unknown))),
        low,
    )
}

/// The image-level confusion matrix (rows: truth, columns: decision).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OkNgConfusion {
    /// Good images passed.
    pub ok_as_ok: usize,
    /// Good images rejected (overkill).
    pub ok_as_ng: usize,
    /// Good images left undecided.
    pub ok_as_unknown: usize,
    /// Defective images passed (escapes).
    pub ng_as_ok: usize,
    /// Defective images rejected.
    pub ng_as_ng: usize,
    /// Defective images left undecided.
    pub ng_as_unknown: usize,
}

/// Image-level metrics at an operating point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageLevelMetrics {
    /// Images.
    pub images: usize,
    /// Confusion matrix.
    pub confusion: OkNgConfusion,
    /// Predicted NG / images.
    pub ng_rate: f64,
    /// True NG / images.
    pub true_ng_rate: f64,
    /// Unknown decisions / images.
    pub unknown_rate: f64,
    /// Images whose classifier answer was below its threshold (whether or not unknowns are allowed).
    pub low_confidence: usize,
    /// Correct decisions / images (unknown counts as wrong).
    pub accuracy: f64,
    /// Defective images passed as OK / defective images (0 without defective images).
    pub escape_rate: f64,
    /// Good images rejected / good images (0 without good images).
    pub overkill_rate: f64,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Decides every image and summarises.
pub fn image_level(images: &[ImageResult], op: &OperatingPoint) -> ImageLevelMetrics {
    let mut c = OkNgConfusion::default();
    let mut low_confidence = 0;
    for img in images {
        let (d, low) = decide(img, op);
        low_confidence += usize::from(low);
        let cell = match (img.truth_ng, d) {
            (false, Decision::Ok) => &mut c.ok_as_ok,
            (false, Decision::Ng) => &mut c.ok_as_ng,
            (false, Decision::Unknown) => &mut c.ok_as_unknown,
            (true, Decision::Ok) => &mut c.ng_as_ok,
            (true, Decision::Ng) => &mut c.ng_as_ng,
            (true, Decision::Unknown) => &mut c.ng_as_unknown,
        };
        *cell += 1;
    }
    let n = images.len();
    let truth_ng = c.ng_as_ok + c.ng_as_ng + c.ng_as_unknown;
    let truth_ok = n - truth_ng;
    ImageLevelMetrics {
        images: n,
        ng_rate: ratio(c.ok_as_ng + c.ng_as_ng, n),
        true_ng_rate: ratio(truth_ng, n),
        unknown_rate: ratio(c.ok_as_unknown + c.ng_as_unknown, n),
        low_confidence,
        accuracy: ratio(c.ok_as_ok + c.ng_as_ng, n),
        escape_rate: ratio(c.ng_as_ok, truth_ng),
        overkill_rate: ratio(c.ok_as_ng, truth_ok),
        confusion: c,
    }
}

/// Business rules of a project manifest.
#[derive(Debug, Clone, Serialize)]
pub struct BusinessRules {
    /// Highest acceptable predicted NG ratio.
    pub max_ng_ratio: Option<f64>,
    /// Whether "unknown" answers are acceptable.
    pub allow_unknown: bool,
}

/// Outcome of one business rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleCheck {
    /// Rule name (`max_ng_ratio`, `no_unknowns`).
    pub rule: String,
    /// Whether it holds.
    pub passed: bool,
    /// Why (the numbers compared).
    pub detail: String,
}

/// Checks the business rules against image-level metrics; every rule is reported, failed or not.
pub fn check_business_rules(m: &ImageLevelMetrics, rules: &BusinessRules) -> Vec<RuleCheck> {
    let mut out = Vec::new();
    if let Some(max) = rules.max_ng_ratio {
        let passed = m.ng_rate <= max;
        out.push(RuleCheck {
            rule: "max_ng_ratio".into(),
            passed,
            detail: format!(
                "predicted NG ratio {:.4} ({} of {} images) {} max_ng_ratio {max:.4}",
                m.ng_rate,
                m.confusion.ok_as_ng + m.confusion.ng_as_ng,
                m.images,
                if passed { "<=" } else { ">" }
            ),
        });
    }
    if !rules.allow_unknown {
        let unknown = m.confusion.ok_as_unknown + m.confusion.ng_as_unknown;
        let passed = unknown == 0 && m.low_confidence == 0;
        out.push(RuleCheck {
            rule: "no_unknowns".into(),
            passed,
            detail: if passed {
                "no image answered below its confidence threshold".into()
            } else {
                format!(
                    "{} of {} images answered below the confidence threshold, but allow_unknown is false",
                    unknown.max(m.low_confidence),
                    m.images
                )
            },
        });
    }
    out
}

/// A predicted instance with its match outcome (true positive at the IoU used for the operating point).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoredInstance {
    /// Class index.
    pub class: usize,
    /// Confidence.
    pub score: f64,
    /// Matched a ground-truth instance of its class.
    pub tp: bool,
}

/// Precision and recall of one class at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdPoint {
    /// The threshold (instances with `score >= threshold` count).
    pub threshold: f64,
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// Missed ground truths.
    pub fn_: usize,
    /// `tp / (tp + fp)` (1 when nothing passes).
    pub precision: f64,
    /// `tp / ground truths` (0 without ground truth).
    pub recall: f64,
    /// Harmonic mean (0 when both are 0).
    pub f1: f64,
}

fn point(threshold: f64, tp: usize, fp: usize, n_gt: usize) -> ThresholdPoint {
    let precision = if tp + fp == 0 {
        1.0
    } else {
        tp as f64 / (tp + fp) as f64
    };
    let recall = ratio(tp, n_gt);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    ThresholdPoint {
        threshold,
        tp,
        fp,
        fn_: n_gt.saturating_sub(tp),
        precision,
        recall,
        f1,
    }
}

fn check_classes(dets: &[ScoredInstance], gt_per_class: &[usize]) -> Result<(), EvalError> {
    match dets.iter().find(|d| d.class >= gt_per_class.len()) {
        Some(d) => Err(EvalError::Input(format!(
            "instance of class {} but ground-truth counts cover {} classes",
            d.class,
            gt_per_class.len()
        ))),
        None => Ok(()),
    }
}

/// Per-class precision / recall at the operating point's thresholds (`gt_per_class[c]` = ground-truth
/// instances of class `c`).
pub fn per_class_at_thresholds(
    dets: &[ScoredInstance],
    gt_per_class: &[usize],
    op: &OperatingPoint,
) -> Result<Vec<ThresholdPoint>, EvalError> {
    check_classes(dets, gt_per_class)?;
    Ok((0..gt_per_class.len())
        .map(|c| {
            let thr = op.threshold(c);
            let pass = dets.iter().filter(|d| d.class == c && d.score >= thr);
            let (tp, fp) = pass.fold(
                (0, 0),
                |(tp, fp), d| if d.tp { (tp + 1, fp) } else { (tp, fp + 1) },
            );
            point(thr, tp, fp, gt_per_class[c])
        })
        .collect())
}

/// Threshold sweep of one class: the PR curve / F1-vs-confidence points and the suggested threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassSweep {
    /// Class index.
    pub class: usize,
    /// One point per distinct score, by descending threshold.
    pub points: Vec<ThresholdPoint>,
    /// The point with the best F1 (the highest threshold among ties); `None` without predictions.
    pub suggested: Option<ThresholdPoint>,
}

/// Sweeps every class's threshold over its predicted scores.
pub fn threshold_sweep(
    dets: &[ScoredInstance],
    gt_per_class: &[usize],
) -> Result<Vec<ClassSweep>, EvalError> {
    check_classes(dets, gt_per_class)?;
    Ok((0..gt_per_class.len())
        .map(|c| {
            let mut ds: Vec<&ScoredInstance> = dets.iter().filter(|d| d.class == c).collect();
            ds.sort_by(|a, b| b.score.total_cmp(&a.score));
            let mut points: Vec<ThresholdPoint> = Vec::new();
            let (mut tp, mut fp) = (0, 0);
            for (i, d) in ds.iter().enumerate() {
                if d.tp {
                    tp += 1;
                } else {
                    fp += 1;
                }
                if ds.get(i + 1).is_none_or(|n| n.score != d.score) {
                    points.push(point(d.score, tp, fp, gt_per_class[c]));
                }
            }
            let mut suggested: Option<ThresholdPoint> = None;
            for p in &points {
                if suggested.is_none_or(|s| p.f1 > s.f1) {
                    suggested = Some(*p);
                }
            }
            ClassSweep {
                class: c,
                points,
                suggested,
            }
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn inst(class: usize, score: f64) -> InstancePrediction {
        InstancePrediction { class, score }
    }

    #[test]
    fn image_decisions_and_rules() {
        // Detector: class 0 scratch (thr 0.5), class 1 dent (thr 0.3).
        let op = OperatingPoint {
            thresholds: vec![0.5, 0.3],
            labels: Vec::new(),
            allow_unknown: false,
        };
        let imgs = vec![
            ImageResult {
                truth_ng: true,
                instances: vec![inst(0, 0.6)],
                classifier: None,
            }, // NG, right
            ImageResult {
                truth_ng: true,
                instances: vec![inst(0, 0.4)],
                classifier: None,
            }, // OK, escape
            ImageResult {
                truth_ng: false,
                instances: vec![inst(1, 0.35)],
                classifier: None,
            }, // NG, overkill
            ImageResult {
                truth_ng: false,
                instances: vec![],
                classifier: None,
            }, // OK
            ImageResult {
                truth_ng: false,
                instances: vec![inst(1, 0.1), inst(2, 0.2)],
                classifier: None,
            }, // OK (class 2 default 0.25)
        ];
        let m = image_level(&imgs, &op);
        assert_eq!(
            m.confusion,
            OkNgConfusion {
                ok_as_ok: 2,
                ok_as_ng: 1,
                ok_as_unknown: 0,
                ng_as_ok: 1,
                ng_as_ng: 1,
                ng_as_unknown: 0
            }
        );
        assert_eq!(m.ng_rate, 0.4);
        assert_eq!(m.accuracy, 0.6);
        assert_eq!(m.escape_rate, 0.5);
        assert!((m.overkill_rate - 1.0 / 3.0).abs() < 1e-12);
        let rules = check_business_rules(
            &m,
            &BusinessRules {
                max_ng_ratio: Some(0.3),
                allow_unknown: false,
            },
        );
        assert_eq!(rules.len(), 2);
        assert!(!rules[0].passed);
        assert!(
            rules[0]
                .detail
                .contains("0.4000 (2 of 5 images) > max_ng_ratio 0.3000"),
            "{}",
            rules[0].detail
        );
        assert!(rules[1].passed);
    }

    #[test]
    fn classifier_unknowns() {
        // Labels: 0 ok, 1 ng, 2 scratch; thresholds 0.6 for all.
        let mut op = OperatingPoint {
            thresholds: vec![0.6; 3],
            labels: vec!["ok".into(), "ng".into(), "scratch".into()],
            allow_unknown: true,
        };
        let cls = |label, confidence| Some(ClassifierPrediction { label, confidence });
        let imgs = vec![
            ImageResult {
                truth_ng: false,
                instances: vec![],
                classifier: cls(0, 0.9),
            }, // OK
            ImageResult {
                truth_ng: true,
                instances: vec![],
                classifier: cls(2, 0.7),
            }, // NG
            ImageResult {
                truth_ng: true,
                instances: vec![],
                classifier: cls(1, 0.5),
            }, // unknown
            ImageResult {
                truth_ng: false,
                instances: vec![],
                classifier: cls(0, 0.4),
            }, // unknown
        ];
        let m = image_level(&imgs, &op);
        assert_eq!(
            (m.confusion.ok_as_unknown, m.confusion.ng_as_unknown),
            (1, 1)
        );
        assert_eq!(m.unknown_rate, 0.5);
        assert_eq!(m.ng_rate, 0.25);
        let r = check_business_rules(
            &m,
            &BusinessRules {
                max_ng_ratio: Some(0.25),
                allow_unknown: true,
            },
        );
        assert_eq!(r.len(), 1);
        assert!(r[0].passed);
        // Unknowns not allowed: low-confidence answers fall back to their label and the rule fails.
        op.allow_unknown = false;
        let m = image_level(&imgs, &op);
        assert_eq!(m.unknown_rate, 0.0);
        assert_eq!((m.confusion.ng_as_ng, m.confusion.ok_as_ok), (2, 2));
        assert_eq!(m.low_confidence, 2);
        let r = check_business_rules(
            &m,
            &BusinessRules {
                max_ng_ratio: None,
                allow_unknown: false,
            },
        );
        assert!(!r[0].passed);
        assert!(r[0].detail.contains("2 of 4"), "{}", r[0].detail);
    }

    /// The server's rule: the good class is named `ok` in any case, and its detections never make an image NG.
    #[test]
    fn ok_class_by_name_as_served() {
        let op = OperatingPoint {
            thresholds: vec![0.5, 0.5],
            labels: vec!["OK".into(), "scratch".into()],
            allow_unknown: false,
        };
        let img = |instances, classifier| ImageResult {
            truth_ng: false,
            instances,
            classifier,
        };
        assert_eq!(decide(&img(vec![inst(0, 0.9)], None), &op).0, Decision::Ok);
        assert_eq!(decide(&img(vec![inst(1, 0.9)], None), &op).0, Decision::Ng);
        let cls = |label| {
            Some(ClassifierPrediction {
                label,
                confidence: 0.9,
            })
        };
        assert_eq!(decide(&img(vec![], cls(0)), &op), (Decision::Ok, false));
        assert_eq!(decide(&img(vec![], cls(1)), &op), (Decision::Ng, false));
    }

    #[test]
    fn per_class_and_sweep() {
        let s = |class, score, tp| ScoredInstance { class, score, tp };
        let dets = [
            s(0, 0.9, true),
            s(0, 0.8, false),
            s(0, 0.6, true),
            s(0, 0.3, true),
            s(1, 0.7, false),
        ];
        let gt = [4, 1];
        let op = OperatingPoint {
            thresholds: vec![0.5, 0.5],
            labels: Vec::new(),
            allow_unknown: false,
        };
        let pc = per_class_at_thresholds(&dets, &gt, &op).unwrap();
        assert_eq!((pc[0].tp, pc[0].fp, pc[0].fn_), (2, 1, 2));
        assert!((pc[0].precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(pc[0].recall, 0.5);
        assert_eq!(
            (pc[1].tp, pc[1].fp, pc[1].fn_, pc[1].recall),
            (0, 1, 1, 0.0)
        );
        let sw = threshold_sweep(&dets, &gt).unwrap();
        let thr: Vec<f64> = sw[0].points.iter().map(|p| p.threshold).collect();
        assert_eq!(thr, vec![0.9, 0.8, 0.6, 0.3]);
        // F1: 0.9 -> p1 r.25 f.4; 0.8 -> p.5 r.25 f.333; 0.6 -> p.667 r.5 f.571; 0.3 -> p.75 r.75 f.75
        let best = sw[0].suggested.unwrap();
        assert_eq!(best.threshold, 0.3);
        assert!((best.f1 - 0.75).abs() < 1e-12);
        assert_eq!(sw[1].suggested.unwrap().f1, 0.0);
        assert!(threshold_sweep(&[s(5, 0.1, true)], &gt).is_err());
    }
}
