//! The inspection policy: the rules that turn model outputs into what production serves, written
//! once so that evaluation (whose numbers the registry's promotion gates read) computes exactly
//! what the server does.
//!
//! - **Verdict** ([`verdict`]): a label named `ok` (any case, [`is_ok_label`]) is the good class,
//!   every other label a defect. A detection counts when its confidence reaches its label's
//!   threshold ([`detection_is_defect`]); any counted defect detection makes the image NG. The
//!   classifier's arg-max label counts when its probability reaches the label's threshold; below
//!   it the image is unknown when `allow_unknown` is true, otherwise the label is used anyway
//!   ([`ClassifierCall::answer`]). NG wins over unknown, unknown over OK.
//! - **Serving floor** ([`serving_floor`]): the served detector lowers its NMS confidence to the
//!   lowest label threshold and keeps detections scoring strictly above it, in `f32` as NMS
//!   compares ([`above_floor`]).
//! - **Confidence histograms** ([`HISTOGRAM_BINS`] equal bins over `[0, 1]`, [`histogram`]) and
//!   the evaluation's [`ConfidenceBaseline`] that production monitoring compares with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Image verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No defect.
    Ok,
    /// Defective.
    Ng,
    /// Not confident enough to decide (only with `allow_unknown: true`).
    Unknown,
}

/// Whether a label is the good class (`ok`, any case).
pub fn is_ok_label(label: &str) -> bool {
    label.eq_ignore_ascii_case("ok")
}

/// Whether a detection of `label` at `confidence` makes its image NG under `threshold`.
pub fn detection_is_defect(label: &str, confidence: f64, threshold: f64) -> bool {
    !is_ok_label(label) && confidence >= threshold
}

/// The classifier's arg-max answer for one image, against its label's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifierCall {
    /// The arg-max label is the good class ([`is_ok_label`]).
    pub ok: bool,
    /// Its probability reached the label's threshold.
    pub above_threshold: bool,
}

/// What the classifier's answer means for the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassifierAnswer {
    /// The good class.
    Ok,
    /// A defect label.
    Defect,
    /// Below its threshold with `allow_unknown: true`.
    Unknown,
}

impl ClassifierCall {
    /// The call of arg-max `label` with probability `confidence` under `threshold`.
    pub fn new(label: &str, confidence: f64, threshold: f64) -> Self {
        Self {
            ok: is_ok_label(label),
            above_threshold: confidence >= threshold,
        }
    }

    /// Whether the arg-max label is used: above its threshold, or forced when unknowns are not
    /// allowed.
    pub fn label_decided(self, allow_unknown: bool) -> bool {
        self.above_threshold || !allow_unknown
    }

    /// The answer under the business rule `allow_unknown`.
    pub fn answer(self, allow_unknown: bool) -> ClassifierAnswer {
        if !self.label_decided(allow_unknown) {
            ClassifierAnswer::Unknown
        } else if self.ok {
            ClassifierAnswer::Ok
        } else {
            ClassifierAnswer::Defect
        }
    }
}

/// The verdict of an image: NG when a defect was detected ([`detection_is_defect`]) or the
/// classifier answered a defect, else unknown when the classifier's answer is unknown, else OK.
pub fn verdict(defect_detected: bool, classifier: Option<ClassifierAnswer>) -> Verdict {
    match (defect_detected, classifier) {
        (true, _) | (false, Some(ClassifierAnswer::Defect)) => Verdict::Ng,
        (false, Some(ClassifierAnswer::Unknown)) => Verdict::Unknown,
        (false, Some(ClassifierAnswer::Ok) | None) => Verdict::Ok,
    }
}

/// The confidence floor of the served detector: its NMS confidence `nms_conf` (0.25 by default)
/// lowered to the lowest label threshold, so that every detection some label's threshold could
/// accept reaches the verdict.
pub fn serving_floor(nms_conf: f32, thresholds: impl IntoIterator<Item = f64>) -> f32 {
    let lowest = thresholds
        .into_iter()
        .fold(f64::from(nms_conf), |a, b| a.min(b));
    (lowest as f32).clamp(0.0, 1.0)
}

/// Whether the served detector keeps a detection of `confidence` at `floor` (strictly above, in
/// `f32` as NMS compares).
pub fn above_floor(confidence: f64, floor: f32) -> bool {
    confidence as f32 > floor
}

/// Bins of every confidence histogram (equal bins over `[0, 1]`).
pub const HISTOGRAM_BINS: usize = 10;

/// Bin index of a confidence (clamped to `[0, 1]`; 1 falls in the last bin).
pub fn histogram_bin(confidence: f64) -> usize {
    ((confidence.clamp(0.0, 1.0) * HISTOGRAM_BINS as f64) as usize).min(HISTOGRAM_BINS - 1)
}

/// Histogram of confidences in [`HISTOGRAM_BINS`] bins.
pub fn histogram(samples: &[f64]) -> Vec<u64> {
    let mut h = vec![0u64; HISTOGRAM_BINS];
    for &c in samples {
        h[histogram_bin(c)] += 1;
    }
    h
}

/// Per-label confidences of an evaluation, what production monitoring compares its own with.
///
/// Stored (evaluation `details`, `report.json`, the `--post` body) as top-level keys
/// `confidence_samples` (`{label: [confidence, …]}`) and `confidence_histograms`
/// (`{label: [10 counts]}`); either may be missing in stored data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceBaseline {
    /// Label → confidences.
    #[serde(
        rename = "confidence_samples",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub samples: Option<BTreeMap<String, Vec<f64>>>,
    /// Label → [`HISTOGRAM_BINS`] counts.
    #[serde(
        rename = "confidence_histograms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub histograms: Option<BTreeMap<String, Vec<u64>>>,
}

/// A label's baseline distribution as monitoring reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum BaselineDistribution {
    /// Every confidence (exact KS).
    Samples(Vec<f64>),
    /// Binned counts (KS on the bins).
    Histogram(Vec<u64>),
}

impl ConfidenceBaseline {
    /// An empty baseline with samples and a histogram for every label.
    pub fn new(labels: &[String]) -> Self {
        Self {
            samples: Some(labels.iter().map(|l| (l.clone(), Vec::new())).collect()),
            histograms: Some(
                labels
                    .iter()
                    .map(|l| (l.clone(), vec![0; HISTOGRAM_BINS]))
                    .collect(),
            ),
        }
    }

    /// Adds one confidence of `label` (to its samples and its histogram).
    pub fn push(&mut self, label: &str, confidence: f64) {
        self.samples
            .get_or_insert_default()
            .entry(label.to_string())
            .or_default()
            .push(confidence);
        self.histograms
            .get_or_insert_default()
            .entry(label.to_string())
            .or_insert_with(|| vec![0; HISTOGRAM_BINS])[histogram_bin(confidence)] += 1;
    }

    /// The baseline's keys as a JSON object.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        if let Some(s) = &self.samples {
            m.insert("confidence_samples".into(), serde_json::json!(s));
        }
        if let Some(h) = &self.histograms {
            m.insert("confidence_histograms".into(), serde_json::json!(h));
        }
        m
    }

    /// Adds the baseline's keys to a JSON object (`details` or `report.json`).
    pub fn add_to(&self, v: &mut serde_json::Value) {
        if let Some(o) = v.as_object_mut() {
            o.extend(self.to_json());
        }
    }

    /// Reads the baseline of stored evaluation `details`, leniently: `None` when neither key is
    /// there; a label whose samples do not read has none; a histogram that does not read or has
    /// not [`HISTOGRAM_BINS`] bins is left out.
    pub fn from_details(details: &serde_json::Value) -> Option<Self> {
        if details.get("confidence_samples").is_none()
            && details.get("confidence_histograms").is_none()
        {
            return None;
        }
        let samples = details["confidence_samples"].as_object().map(|m| {
            m.iter()
                .map(|(l, v)| {
                    (
                        l.clone(),
                        serde_json::from_value(v.clone()).unwrap_or_default(),
                    )
                })
                .collect()
        });
        let histograms = details["confidence_histograms"].as_object().map(|m| {
            m.iter()
                .filter_map(|(l, v)| {
                    serde_json::from_value::<Vec<u64>>(v.clone())
                        .ok()
                        .filter(|h| h.len() == HISTOGRAM_BINS)
                        .map(|h| (l.clone(), h))
                })
                .collect()
        });
        Some(Self {
            samples,
            histograms,
        })
    }

    /// Per label, what monitoring compares with: the samples when the baseline has them, else the
    /// histograms.
    pub fn distributions(&self) -> BTreeMap<String, BaselineDistribution> {
        match (&self.samples, &self.histograms) {
            (Some(s), _) => s
                .iter()
                .map(|(l, v)| (l.clone(), BaselineDistribution::Samples(v.clone())))
                .collect(),
            (None, Some(h)) => h
                .iter()
                .map(|(l, v)| (l.clone(), BaselineDistribution::Histogram(v.clone())))
                .collect(),
            (None, None) => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_label_is_any_case_and_ok_detections_never_count() {
        assert!(is_ok_label("ok") && is_ok_label("OK") && is_ok_label("Ok"));
        assert!(!is_ok_label("ng") && !is_ok_label("okay"));
        assert!(detection_is_defect("scratch", 0.5, 0.5));
        assert!(!detection_is_defect("scratch", 0.49, 0.5));
        assert!(!detection_is_defect("OK", 0.99, 0.1));
    }

    #[test]
    fn verdict_ng_beats_unknown_beats_ok() {
        let low_ok = ClassifierCall::new("ok", 0.5, 0.6);
        assert!(!low_ok.above_threshold && low_ok.ok);
        assert_eq!(low_ok.answer(true), ClassifierAnswer::Unknown);
        assert_eq!(low_ok.answer(false), ClassifierAnswer::Ok);
        assert!(!low_ok.label_decided(true) && low_ok.label_decided(false));
        assert_eq!(
            ClassifierCall::new("dent", 0.3, 0.25).answer(true),
            ClassifierAnswer::Defect
        );
        assert_eq!(verdict(false, None), Verdict::Ok);
        assert_eq!(verdict(true, Some(ClassifierAnswer::Unknown)), Verdict::Ng);
        assert_eq!(verdict(true, Some(ClassifierAnswer::Ok)), Verdict::Ng);
        assert_eq!(
            verdict(false, Some(ClassifierAnswer::Unknown)),
            Verdict::Unknown
        );
        assert_eq!(verdict(false, Some(ClassifierAnswer::Defect)), Verdict::Ng);
        assert_eq!(verdict(false, Some(ClassifierAnswer::Ok)), Verdict::Ok);
        assert_eq!(serde_json::json!(Verdict::Unknown), "unknown");
    }

    #[test]
    fn serving_floor_is_the_lowest_threshold_below_the_nms_default() {
        assert_eq!(serving_floor(0.25, [0.5, 0.3]), 0.25);
        assert_eq!(serving_floor(0.25, [0.5, 0.1]), 0.1);
        assert_eq!(serving_floor(0.25, []), 0.25);
        assert_eq!(serving_floor(0.25, [-1.0]), 0.0);
        assert!(above_floor(0.3, 0.25));
        assert!(!above_floor(f64::from(0.25f32), 0.25));
    }

    #[test]
    fn histogram_bins_clamp_and_close_the_last_bin() {
        assert_eq!(histogram_bin(-0.1), 0);
        assert_eq!(histogram_bin(0.1), 1);
        assert_eq!(histogram_bin(1.0), 9);
        assert_eq!(histogram_bin(7.0), 9);
        assert_eq!(
            histogram(&[0.05, 0.15, 1.0, 0.999]),
            vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
        );
    }

    #[test]
    fn baseline_json_has_samples_and_histograms() {
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
        // Typed and lenient readings of what is stored agree.
        let typed: ConfidenceBaseline = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(typed, b);
        assert_eq!(ConfidenceBaseline::from_details(&v), Some(b.clone()));
        assert_eq!(
            b.distributions()["a"],
            BaselineDistribution::Samples(vec![0.0, 0.05, 0.1, 0.95, 1.0])
        );
    }

    #[test]
    fn stored_baselines_read_leniently() {
        assert_eq!(
            ConfidenceBaseline::from_details(&serde_json::json!({"x": 1})),
            None
        );
        let v = serde_json::json!({"confidence_histograms": {"a": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0], "short": [1], "bad": "x"}});
        let b = ConfidenceBaseline::from_details(&v).unwrap();
        assert_eq!(b.samples, None);
        let d = b.distributions();
        assert_eq!(d.len(), 1);
        assert!(matches!(&d["a"], BaselineDistribution::Histogram(h) if h[0] == 1));
        let v = serde_json::json!({"confidence_samples": {"a": [0.5], "bad": "x"}});
        let d = ConfidenceBaseline::from_details(&v)
            .unwrap()
            .distributions();
        assert_eq!(d["a"], BaselineDistribution::Samples(vec![0.5]));
        assert_eq!(d["bad"], BaselineDistribution::Samples(Vec::new()));
        // Present but null: a baseline without distributions.
        let b = ConfidenceBaseline::from_details(&serde_json::json!({"confidence_samples": null}))
            .unwrap();
        assert!(b.distributions().is_empty());
    }
}
