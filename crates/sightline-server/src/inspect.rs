//! The inspect service: decode an upload, run the deployed detector and/or classifier, decide
//! the verdict, and build the response (shared by the HTTP handler and anything else that
//! inspects).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use image::{DynamicImage, ImageFormat};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sightline_core::Task;

use crate::engine::{Deployed, Engine};
use crate::error::ApiError;
use crate::infer::ModelOutput;
use crate::verdict::{self, ClassDecision, DetectionView, NgRatio, NgTracker, Verdict};

/// Largest accepted image side, in pixels (decompression-bomb guard).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Where an image came from (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InspectMeta {
    /// Production line.
    pub line: Option<String>,
    /// Lot / batch.
    pub lot: Option<String>,
    /// Camera.
    pub camera: Option<String>,
    /// Part identifier.
    pub part_id: Option<String>,
}

impl InspectMeta {
    /// Reject over-long or control-character values.
    pub fn validate(&self) -> Result<(), ApiError> {
        for (name, v) in [
            ("line", &self.line),
            ("lot", &self.lot),
            ("camera", &self.camera),
            ("part_id", &self.part_id),
        ] {
            if let Some(v) = v
                && (v.len() > 200 || v.chars().any(char::is_control))
            {
                return Err(ApiError::BadRequest(format!(
                    "`{name}` must be at most 200 characters without control characters"
                )));
            }
        }
        Ok(())
    }
}

/// COCO uncompressed RLE (column-major).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RleJson {
    /// `[height, width]`.
    pub size: [u32; 2],
    /// Run lengths, starting with background.
    pub counts: Vec<u32>,
}

/// One detection in a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DetectionJson {
    /// Label.
    pub label: String,
    /// Class id.
    pub class_id: usize,
    /// Confidence.
    pub confidence: f64,
    /// `[x1, y1, x2, y2]` pixels.
    pub box_xyxy: [f64; 4],
    /// Mask as COCO RLE.
    pub mask_rle: Option<RleJson>,
    /// Mask outlines `[x0, y0, x1, y1, …]`.
    pub polygons: Vec<Vec<f64>>,
    /// Whether it reached its label's threshold.
    pub above_threshold: bool,
}

/// Classification in a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClassificationJson {
    /// Decided label (`null`: unknown).
    pub label: Option<String>,
    /// Arg-max label.
    pub top_label: String,
    /// Its probability.
    pub confidence: f64,
    /// Probability per label.
    pub probabilities: BTreeMap<String, f64>,
}

/// A model that took part in an inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsedModel {
    /// Task.
    #[schema(value_type = String)]
    pub task: Task,
    /// Model version id.
    pub model_version_id: i64,
    /// Version number.
    pub version: i64,
    /// Architecture.
    pub model_name: String,
}

/// Timings in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timing {
    /// Image decoding.
    pub decode_ms: f64,
    /// Queueing + inference (both models concurrently).
    pub inference_ms: f64,
    /// Whole request on the server.
    pub total_ms: f64,
}

/// The response of `POST /projects/{p}/inspect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InspectResponse {
    /// Request id (also in history).
    pub request_id: String,
    /// Project.
    pub project: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Why.
    pub reasons: Vec<String>,
    /// Detections (empty without a detector).
    pub detections: Vec<DetectionJson>,
    /// Classification (absent without a classifier).
    pub classification: Option<ClassificationJson>,
    /// NG ratio over the lot or rolling window.
    pub ng_ratio: NgRatio,
    /// Models used.
    pub models: Vec<UsedModel>,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// SHA-256 of the uploaded bytes.
    pub image_sha256: String,
    /// Metadata as sent.
    pub meta: InspectMeta,
    /// Timings.
    pub timing: Timing,
    /// Time (RFC 3339).
    pub created_at: String,
}

/// Decode JPEG or PNG bytes with size limits; errors are client errors with a clear message.
pub fn decode_image(bytes: &[u8]) -> Result<DynamicImage, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest(
            "the request carries no image (empty body or empty `image` field)".into(),
        ));
    }
    match sightline_imageio::sniff(bytes) {
        Ok(ImageFormat::Jpeg | ImageFormat::Png) => {}
        Ok(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "{other:?} images are not accepted; send JPEG or PNG"
            )));
        }
        Err(_) => {
            return Err(ApiError::UnsupportedMediaType(
                "the body is not a JPEG or PNG image".into(),
            ));
        }
    }
    // JPEG through libjpeg-turbo (pixels as PIL/OpenCV decode them), PNG through `image`
    let options = sightline_imageio::DecodeOptions {
        limits: sightline_imageio::Limits {
            max_width: Some(MAX_IMAGE_SIDE),
            max_height: Some(MAX_IMAGE_SIDE),
            max_alloc: Some(1 << 30),
        },
        apply_orientation: false,
    };
    options
        .decode(bytes)
        .map_err(|e| ApiError::UndecodableImage(format!("cannot decode the image: {e}")))
}

/// Run an inspection on decoded bytes. `project_exists` was checked by the caller.
pub async fn inspect(
    engine: &Engine,
    tracker: &NgTracker,
    project: &str,
    bytes: &[u8],
    meta: InspectMeta,
    started: Instant,
) -> Result<InspectResponse, ApiError> {
    meta.validate()?;
    let image_sha256 = hex::encode(Sha256::digest(bytes));
    let image = decode_image(bytes)?;
    let decoded = Instant::now();
    let has = |task| {
        engine
            .slot(project, task)
            .is_some_and(|s| s.current().is_some())
    };
    let (use_det, use_cls) = (has(Task::Segment), has(Task::Classify));
    if !use_det && !use_cls {
        return Err(ApiError::Unavailable(format!(
            "no model is deployed for project `{project}`: register one and set its `production` alias"
        )));
    }
    let shared = Arc::new(image);
    let det_fut = async {
        if use_det {
            Some(engine.infer(project, Task::Segment, shared.clone()).await)
        } else {
            None
        }
    };
    let cls_fut = async {
        if use_cls {
            Some(engine.infer(project, Task::Classify, shared.clone()).await)
        } else {
            None
        }
    };
    let (det, cls) = tokio::join!(det_fut, cls_fut);
    let inferred = Instant::now();
    let det = det.transpose()?;
    let cls = cls.transpose()?;

    let mut models = Vec::new();
    let mut detections = Vec::new();
    let mut rules = None;
    let mut det_thresholds = BTreeMap::new();
    if let Some((deployed, out)) = &det {
        models.push(used(deployed));
        rules = Some(deployed.version.business_rules.clone());
        det_thresholds = deployed.version.thresholds.clone();
        let ModelOutput::Segment(dets) = out else {
            return Err(ApiError::Internal(
                "the detector returned a classification".into(),
            ));
        };
        for d in dets {
            let label = label_of(deployed, d.class_id);
            let t = verdict::threshold(&deployed.version.thresholds, &label);
            detections.push(DetectionJson {
                above_threshold: f64::from(d.confidence) >= t,
                label,
                class_id: d.class_id,
                confidence: f64::from(d.confidence),
                box_xyxy: d.box_xyxy.map(f64::from),
                polygons: d
                    .mask
                    .as_ref()
                    .map(|m| sightline_mask::mask_to_polygons(m, 1.0))
                    .unwrap_or_default(),
                mask_rle: d.mask.as_ref().map(|m| RleJson {
                    size: [m.h(), m.w()],
                    counts: m.counts().to_vec(),
                }),
            });
        }
    }
    let mut classification = None;
    let mut decision: Option<ClassDecision> = None;
    if let Some((deployed, out)) = &cls {
        models.push(used(deployed));
        let r = rules.get_or_insert_with(|| deployed.version.business_rules.clone());
        let ModelOutput::Classify(c) = out else {
            return Err(ApiError::Internal(
                "the classifier returned detections".into(),
            ));
        };
        let (top, p) = c
            .top1()
            .ok_or_else(|| ApiError::Internal("the classifier returned no classes".into()))?;
        let top_label = label_of(deployed, top);
        let d =
            verdict::classify_decision(&top_label, f64::from(p), &deployed.version.thresholds, r);
        classification = Some(ClassificationJson {
            label: d.label.clone(),
            top_label,
            confidence: f64::from(p),
            probabilities: c
                .probabilities
                .iter()
                .enumerate()
                .map(|(i, p)| (label_of(deployed, i), f64::from(*p)))
                .collect(),
        });
        decision = Some(d);
    }
    let views: Vec<DetectionView<'_>> = detections
        .iter()
        .map(|d| DetectionView {
            label: &d.label,
            confidence: d.confidence,
        })
        .collect();
    let (verdict, mut reasons) = verdict::decide(
        det.as_ref().map(|_| (views.as_slice(), &det_thresholds)),
        decision.as_ref(),
    );
    let rules = rules.unwrap_or_default();
    let ng_ratio = tracker.record(project, meta.lot.as_deref(), verdict, rules.max_ng_ratio);
    if ng_ratio.exceeded {
        reasons.push(format!(
            "NG ratio {:.3} over the {} exceeds max_ng_ratio {:.3}",
            ng_ratio.ratio,
            if ng_ratio.scope == "lot" {
                "lot"
            } else {
                "rolling window"
            },
            rules.max_ng_ratio.unwrap_or_default()
        ));
    }
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
    let done = Instant::now();
    let (width, height) = (shared.width(), shared.height());
    let response = InspectResponse {
        request_id: uuid::Uuid::new_v4().to_string(),
        project: project.to_string(),
        verdict,
        reasons,
        detections,
        classification,
        ng_ratio,
        models,
        width,
        height,
        image_sha256,
        meta,
        timing: Timing {
            decode_ms: ms(started, decoded),
            inference_ms: ms(decoded, inferred),
            total_ms: ms(started, done),
        },
        created_at: sightline_registry::time::now_rfc3339(),
    };
    Ok(response)
}

fn used(d: &Deployed) -> UsedModel {
    UsedModel {
        task: d.version.task,
        model_version_id: d.version.id,
        version: d.version.version,
        model_name: d.version.model_name.clone(),
    }
}

fn label_of(d: &Deployed, class_id: usize) -> String {
    d.model
        .labels()
        .get(class_id)
        .cloned()
        .unwrap_or_else(|| format!("class{class_id}"))
}
