//! Evaluation reports: `report.json` (every number of an evaluation, with its provenance) and a self-contained,
//! offline `report.html` whose plots (PR curves, F1 vs confidence, confusion matrices, per-class bars, reliability
//! diagram) are inline SVG drawn here. All text that reaches HTML/SVG is escaped.

pub mod html;
pub mod svg;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors of report writing and reading.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// File-system error (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON (de)serialisation error.
    #[error("report JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Which kind of model was evaluated: the one [`sightline_core::Task`], written `detect` (for
/// [`Task::Segment`]) or `classify` in `report.json`.
pub use sightline_core::Task;

/// The report's name of a task (`detect`, `classify`).
pub fn task_name(task: Task) -> &'static str {
    match task {
        Task::Segment => "detect",
        Task::Classify => "classify",
    }
}

/// `report.json`'s spelling of [`Task`].
mod task_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Task, task_name};

    pub fn serialize<S: Serializer>(t: &Task, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(task_name(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Task, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Name {
            Detect,
            Classify,
        }
        Ok(match Name::deserialize(d)? {
            Name::Detect => Task::Segment,
            Name::Classify => Task::Classify,
        })
    }
}

/// Where the evaluated images came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Dataset version identifier, if the data came from a versioned dataset.
    pub version: Option<String>,
    /// The path or URI the data was read from.
    pub source: String,
    /// Split (`val`, `test`).
    pub split: String,
    /// Number of evaluated images.
    pub images: usize,
}

/// Names of the 12 pycocotools summary statistics, in order.
pub const COCO_STAT_NAMES: [&str; 12] = [
    "AP@[.50:.95]",
    "AP50",
    "AP75",
    "AP small",
    "AP medium",
    "AP large",
    "AR@1",
    "AR@10",
    "AR@100",
    "AR small",
    "AR medium",
    "AR large",
];

/// Ultralytics-style metrics of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetClassRow {
    /// Class name.
    pub name: String,
    /// Ground-truth instances.
    pub labels: usize,
    /// Precision at the best-F1 confidence.
    pub precision: f64,
    /// Recall at the best-F1 confidence.
    pub recall: f64,
    /// F1 at the best-F1 confidence.
    pub f1: f64,
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// AP at IoU .50:.95.
    pub ap50_95: f64,
}

/// Curves of one class for the plots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassCurves {
    /// Class name.
    pub name: String,
    /// Precision-recall curve as `(recall, precision)` points.
    pub pr: Vec<(f64, f64)>,
    /// F1 vs confidence as `(confidence, f1)` points.
    pub f1_conf: Vec<(f64, f64)>,
}

/// Detection / segmentation metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionSection {
    /// The 12 COCO stats for boxes (see [`COCO_STAT_NAMES`]).
    pub coco_box: Option<Vec<f64>>,
    /// The 12 COCO stats for masks.
    pub coco_mask: Option<Vec<f64>>,
    /// Ultralytics-style per-class metrics (boxes).
    pub per_class: Vec<DetClassRow>,
    /// Mean precision.
    pub mp: f64,
    /// Mean recall.
    pub mr: f64,
    /// mAP at IoU 0.5.
    pub map50: f64,
    /// mAP at IoU .50:.95.
    pub map50_95: f64,
    /// Confidence where mean F1 peaks.
    pub best_conf: f64,
    /// Per-class curves.
    pub curves: Vec<ClassCurves>,
    /// Ultralytics-style per-class metrics of the masks (empty for box-only models).
    #[serde(default)]
    pub mask_per_class: Vec<DetClassRow>,
    /// Mask mAP at IoU 0.5 (Ultralytics style).
    #[serde(default)]
    pub mask_map50: Option<f64>,
    /// Mask mAP at IoU .50:.95 (Ultralytics style).
    #[serde(default)]
    pub mask_map50_95: Option<f64>,
    /// Instance confusion matrix at the operating point, `confusion[truth][predicted]` over the
    /// class names followed by `background` (a missed object is `[class][background]`, a false
    /// detection `[background][class]`).
    #[serde(default)]
    pub confusion: Vec<Vec<usize>>,
}

/// Per-class classification scores: the class name and sightline-eval's scores
/// (`precision`, `recall`, `f1`, `support`, at the same level in `report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClsClassRow {
    /// Class name.
    pub name: String,
    /// Its scores.
    #[serde(flatten)]
    pub scores: ClassScores,
}

/// sightline-eval's per-class classification scores.
pub use sightline_eval::classification::ClassScores;
/// One reliability-diagram bin (sightline-eval's).
pub use sightline_eval::classification::ReliabilityBin;
/// sightline-eval's numbers of one class at one threshold.
pub use sightline_eval::operating::ThresholdPoint;

/// Classification metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationSection {
    /// Samples.
    pub samples: usize,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy.
    pub top5: f64,
    /// Macro F1.
    pub macro_f1: f64,
    /// Expected calibration error.
    pub ece: f64,
    /// Per class.
    pub per_class: Vec<ClsClassRow>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// Reliability diagram.
    pub reliability: Vec<ReliabilityBin>,
}

/// Per-class numbers at the configured thresholds: the class name, sightline-eval's point
/// (`threshold`, `tp`, `fp`, `fn_`, `precision`, `recall`, `f1`, at the same level in
/// `report.json`) and the sweep's suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdRow {
    /// Class name.
    pub name: String,
    /// The numbers at the threshold used.
    #[serde(flatten)]
    pub point: ThresholdPoint,
    /// Threshold suggested by the sweep (best F1), if any.
    pub suggested_threshold: Option<f64>,
}

/// Outcome of one business rule (sightline-eval's).
pub use sightline_eval::operating::RuleCheck as RuleResult;

/// Metrics at the operating point (what ships).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingSection {
    /// Per-class numbers at the thresholds (detectors).
    pub per_class: Vec<ThresholdRow>,
    /// Images decided.
    pub images: usize,
    /// Image-level confusion: rows truth (OK, NG), columns decision (OK, NG, Unknown).
    pub ok_ng_confusion: [[usize; 3]; 2],
    /// Predicted NG ratio.
    pub ng_rate: f64,
    /// Unknown ratio.
    pub unknown_rate: f64,
    /// Image-level accuracy.
    pub accuracy: f64,
    /// Escape rate (NG passed as OK).
    pub escape_rate: f64,
    /// Overkill rate (OK rejected).
    pub overkill_rate: f64,
    /// Business-rule outcomes.
    pub rules: Vec<RuleResult>,
}

impl OperatingSection {
    /// The section of image-level metrics `il` at the operating point, with the per-class rows
    /// (detectors; empty for classifiers) and the business-rule outcomes.
    pub fn new(
        per_class: Vec<ThresholdRow>,
        il: &sightline_eval::operating::ImageLevelMetrics,
        rules: Vec<RuleResult>,
    ) -> Self {
        let c = &il.confusion;
        Self {
            per_class,
            images: il.images,
            ok_ng_confusion: [
                [c.ok_as_ok, c.ok_as_ng, c.ok_as_unknown],
                [c.ng_as_ok, c.ng_as_ng, c.ng_as_unknown],
            ],
            ng_rate: il.ng_rate,
            unknown_rate: il.unknown_rate,
            accuracy: il.accuracy,
            escape_rate: il.escape_rate,
            overkill_rate: il.overkill_rate,
            rules,
        }
    }
}

/// Everything one evaluation produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Model name (from the manifest).
    pub model: String,
    /// Task evaluated.
    #[serde(with = "task_serde")]
    pub task: Task,
    /// Path of the manifest used.
    pub config_path: String,
    /// The manifest's content, as JSON.
    pub config: serde_json::Value,
    /// Path of the checkpoint.
    pub checkpoint: String,
    /// SHA-256 (hex) of the checkpoint file.
    pub checkpoint_sha256: String,
    /// Data evaluated.
    pub dataset: DatasetInfo,
    /// Class names, in index order.
    pub class_names: Vec<String>,
    /// Evaluation start (RFC 3339, UTC).
    pub started_at: String,
    /// Evaluation end (RFC 3339, UTC).
    pub finished_at: String,
    /// Detector metrics.
    pub detection: Option<DetectionSection>,
    /// Classifier metrics.
    pub classification: Option<ClassificationSection>,
    /// Operating-point metrics.
    pub operating: Option<OperatingSection>,
    /// The worst mistakes, as small inline thumbnails.
    #[serde(default)]
    pub gallery: Vec<GalleryItem>,
}

/// Kind of a gallery entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GalleryKind {
    /// A detection that matches no ground-truth object (the most confident first).
    FalsePositive,
    /// A ground-truth object no detection above its threshold found.
    FalseNegative,
    /// A classifier answer that is wrong (the most confident first).
    Misclassified,
}

/// One thumbnail of the gallery of worst mistakes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryItem {
    /// What went wrong.
    pub kind: GalleryKind,
    /// Image file (as in the data set).
    pub image: String,
    /// Class concerned (predicted class for false positives / misclassifications, true class
    /// for false negatives).
    pub class: String,
    /// Confidence of the prediction, if there is one.
    pub score: Option<f64>,
    /// One line of explanation.
    pub detail: String,
    /// The thumbnail as a `data:` URI (PNG or JPEG, at most 256 px a side).
    pub data_uri: String,
}

/// A `data:` URI of `bytes` with media type `mime` (base64), for thumbnails inlined in HTML.
pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    use base64::Engine;
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

impl Report {
    /// Writes `report.json` and `report.html` into `dir` (created if needed); returns both paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), ReportError> {
        fs_err::create_dir_all(dir)?;
        let json = dir.join("report.json");
        fs_err::write(&json, serde_json::to_vec_pretty(self)?)?;
        let html_path = dir.join("report.html");
        fs_err::write(&html_path, html::render(self))?;
        Ok((json, html_path))
    }

    /// Reads a `report.json`.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        Ok(serde_json::from_slice(&fs_err::read(path)?)?)
    }

    /// A short summary (headline numbers), e.g. for `POST /models/metrics`.
    pub fn summary(&self) -> serde_json::Value {
        let mut metrics = serde_json::Map::new();
        if let Some(d) = &self.detection {
            metrics.insert("map50".into(), d.map50.into());
            metrics.insert("map50_95".into(), d.map50_95.into());
            metrics.insert("precision".into(), d.mp.into());
            metrics.insert("recall".into(), d.mr.into());
            if let Some(b) = &d.coco_box {
                metrics.insert("coco_box_ap".into(), b.first().copied().into());
            }
            if let Some(m) = &d.coco_mask {
                metrics.insert("coco_mask_ap".into(), m.first().copied().into());
            }
            if let Some(v) = d.mask_map50 {
                metrics.insert("mask_map50".into(), v.into());
            }
            if let Some(v) = d.mask_map50_95 {
                metrics.insert("mask_map50_95".into(), v.into());
            }
        }
        if let Some(c) = &self.classification {
            metrics.insert("top1".into(), c.top1.into());
            metrics.insert("top5".into(), c.top5.into());
            metrics.insert("macro_f1".into(), c.macro_f1.into());
            metrics.insert("ece".into(), c.ece.into());
        }
        if let Some(o) = &self.operating {
            metrics.insert("ng_rate".into(), o.ng_rate.into());
            metrics.insert("unknown_rate".into(), o.unknown_rate.into());
            metrics.insert(
                "business_rules_passed".into(),
                o.rules.iter().all(|r| r.passed).into(),
            );
        }
        serde_json::json!({
            "model": self.model,
            "task": self.task,
            "checkpoint_sha256": self.checkpoint_sha256,
            "dataset_version": self.dataset.version,
            "dataset_source": self.dataset.source,
            "split": self.dataset.split,
            "images": self.dataset.images,
            "finished_at": self.finished_at,
            "metrics": metrics,
        })
    }
}

/// Escapes text for HTML/SVG element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report with every section filled and a hostile class name.
    pub fn sample() -> Report {
        let names = vec!["scratch".to_string(), "<dent>&\"x\"".to_string()];
        Report {
            model: "widget-seg".into(),
            task: Task::Segment,
            config_path: "models/configs/w.yaml".into(),
            config: serde_json::json!({"name": "widget-seg"}),
            checkpoint: "best.pt".into(),
            checkpoint_sha256: "ab".repeat(32),
            dataset: DatasetInfo {
                version: Some("v1".into()),
                source: "/data".into(),
                split: "val".into(),
                images: 6,
            },
            class_names: names.clone(),
            started_at: "2026-11-28T22:00:00Z".into(),
            finished_at: "2026-11-28T22:00:05Z".into(),
            detection: Some(DetectionSection {
                coco_box: Some((0..12).map(|i| 0.5 + i as f64 / 100.0).collect()),
                coco_mask: Some(vec![0.4321; 12]),
                per_class: names
                    .iter()
                    .map(|n| DetClassRow {
                        name: n.clone(),
                        labels: 3,
                        precision: 0.75,
                        recall: 0.6667,
                        f1: 0.7059,
                        ap50: 0.8123,
                        ap50_95: 0.5432,
                    })
                    .collect(),
                mp: 0.75,
                mr: 0.6667,
                map50: 0.8123,
                map50_95: 0.5432,
                best_conf: 0.3,
                curves: names
                    .iter()
                    .map(|n| ClassCurves {
                        name: n.clone(),
                        pr: vec![(0.0, 1.0), (0.5, 0.9), (1.0, 0.2)],
                        f1_conf: vec![(0.0, 0.3), (0.5, 0.7), (1.0, 0.0)],
                    })
                    .collect(),
                mask_per_class: Vec::new(),
                mask_map50: Some(0.7001),
                mask_map50_95: Some(0.4002),
                confusion: vec![vec![2, 0, 1], vec![0, 3, 0], vec![1, 0, 0]],
            }),
            classification: Some(ClassificationSection {
                samples: 4,
                top1: 0.75,
                top5: 1.0,
                macro_f1: 0.7333,
                ece: 0.1234,
                per_class: names
                    .iter()
                    .map(|n| ClsClassRow {
                        name: n.clone(),
                        scores: ClassScores {
                            precision: 1.0,
                            recall: 0.5,
                            f1: 0.6667,
                            support: 2,
                        },
                    })
                    .collect(),
                confusion: vec![vec![2, 0], vec![1, 1]],
                reliability: vec![
                    ReliabilityBin {
                        lo: 0.0,
                        hi: 0.5,
                        count: 1,
                        confidence: 0.4,
                        accuracy: 0.0,
                    },
                    ReliabilityBin {
                        lo: 0.5,
                        hi: 1.0,
                        count: 3,
                        confidence: 0.9,
                        accuracy: 1.0,
                    },
                ],
            }),
            operating: Some(OperatingSection {
                per_class: vec![ThresholdRow {
                    name: names[1].clone(),
                    point: ThresholdPoint {
                        threshold: 0.25,
                        tp: 2,
                        fp: 1,
                        fn_: 1,
                        precision: 0.6667,
                        recall: 0.6667,
                        f1: 0.6667,
                    },
                    suggested_threshold: Some(0.41),
                }],
                images: 6,
                ok_ng_confusion: [[2, 1, 0], [1, 2, 0]],
                ng_rate: 0.5,
                unknown_rate: 0.0,
                accuracy: 0.6667,
                escape_rate: 0.3333,
                overkill_rate: 0.3333,
                rules: vec![RuleResult {
                    rule: "max_ng_ratio".into(),
                    passed: false,
                    detail: "0.5 > 0.1 <b>".into(),
                }],
            }),
            gallery: vec![GalleryItem {
                kind: GalleryKind::FalsePositive,
                image: "val/<x>.jpg".into(),
                class: names[0].clone(),
                score: Some(0.91),
                detail: "no ground truth with IoU >= 0.5".into(),
                data_uri: data_uri("image/png", b"\x89PNG"),
            }],
        }
    }

    /// `report.json` keeps its shape: the task as `detect`/`classify`, eval's rows flattened.
    #[test]
    fn report_json_spelling_is_stable() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["task"], "detect");
        let row = &v["operating"]["per_class"][0];
        let mut keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        keys.sort_unstable();
        let mut want = [
            "name",
            "threshold",
            "tp",
            "fp",
            "fn_",
            "precision",
            "recall",
            "f1",
            "suggested_threshold",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(row["fn_"], 1);
        let cls = &v["classification"]["per_class"][0];
        assert_eq!(cls["support"], 2);
        assert_eq!(cls["precision"], 1.0);
        let mut c = sample();
        c.task = Task::Classify;
        assert_eq!(serde_json::to_value(&c).unwrap()["task"], "classify");
        let text = serde_json::to_string_pretty(&sample()).unwrap();
        assert!(
            text.contains(
                "\"name\": \"<dent>&\\\"x\\\"\",\n        \"threshold\": 0.25,\n        \"tp\": 2,\n        \"fp\": 1,\n        \"fn_\": 1,"
            ),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<Report>(&text).unwrap(),
            sample(),
            "round trip"
        );
    }

    #[test]
    fn data_uri_is_base64() {
        assert_eq!(data_uri("image/png", b"abc"), "data:image/png;base64,YWJj");
    }

    #[test]
    fn old_reports_without_new_fields_still_read() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v.as_object_mut().unwrap().remove("gallery");
        let d = v["detection"].as_object_mut().unwrap();
        for k in ["mask_per_class", "mask_map50", "mask_map50_95", "confusion"] {
            d.remove(k);
        }
        let r: Report = serde_json::from_value(v).unwrap();
        assert!(r.gallery.is_empty());
        assert_eq!(r.detection.unwrap().mask_map50, None);
    }

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn write_and_read_round_trip() {
        let dir = std::env::temp_dir().join(format!("sightline-report-{}", std::process::id()));
        let r = sample();
        let (j, h) = r.write(&dir).unwrap();
        assert_eq!(Report::read(&j).unwrap(), r);
        let html = fs_err::read_to_string(&h).unwrap();
        assert!(html.contains("0.8123"));
        let _ = fs_err::remove_dir_all(&dir);
    }

    #[test]
    fn summary_has_headline_numbers() {
        let s = sample().summary();
        assert_eq!(s["metrics"]["map50"], 0.8123);
        assert_eq!(s["metrics"]["top1"], 0.75);
        assert_eq!(s["metrics"]["business_rules_passed"], false);
        assert_eq!(s["dataset_version"], "v1");
    }
}
