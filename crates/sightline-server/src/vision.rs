//! The product model loader: deployment bundles into `sightline-vision` models (YOLOv8-seg
//! [`Segmenter`], MobileNetV3 [`Classifier`]) with the bundle's label map and preprocessing.

use std::sync::Arc;

use image::DynamicImage;
use sightline_core::Task;
use sightline_onnx::attach::OrtRuntime;
use sightline_registry::{Bundle, Preprocessing};
use sightline_vision::burn::tensor::Device;
use sightline_vision::classify::{Classifier, ClassifyPreprocess};
use sightline_vision::segment::{SegmentSettings, Segmenter};

use crate::infer::{Classification, Detection, InferError, InspectModel, ModelLoader, ModelOutput};

/// Loads bundles with `sightline-vision` on one device; with ONNX Runtime configured, a
/// bundle's `model.onnx` (checked against the native model at registration) runs the forward
/// pass, while bundles without one (older registrations) run on Burn.
#[derive(Debug, Clone)]
pub struct VisionLoader {
    device: Device,
    onnxruntime: Option<OrtRuntime>,
}

impl VisionLoader {
    /// A loader on the default (CPU) device, Burn only.
    pub fn new() -> Self {
        Self {
            device: sightline_vision::backend::default_device(),
            onnxruntime: None,
        }
    }

    /// Runs bundles that carry an ONNX export on ONNX Runtime.
    pub fn with_onnxruntime(mut self, runtime: Option<OrtRuntime>) -> Self {
        self.onnxruntime = runtime;
        self
    }

    /// The bundle's ONNX file, when this loader runs ONNX Runtime and the bundle has one.
    fn onnx_bytes(&self, bundle: &Bundle) -> Result<Option<(&OrtRuntime, Vec<u8>)>, InferError> {
        match (&self.onnxruntime, &bundle.manifest.onnx) {
            (Some(rt), Some(onnx)) => {
                let path = bundle.dir.join(&onnx.file);
                let bytes = fs_err::read(&path)
                    .map_err(|e| InferError::Load(format!("reading {}: {e}", onnx.file)))?;
                Ok(Some((rt, bytes)))
            }
            _ => Ok(None),
        }
    }
}

fn attach_err(e: sightline_onnx::attach::AttachError) -> InferError {
    InferError::Load(sightline_onnx::runtime::error_chain(&e))
}

impl Default for VisionLoader {
    fn default() -> Self {
        Self::new()
    }
}

struct SegmentModel {
    segmenter: Segmenter,
    settings: SegmentSettings,
}

impl InspectModel for SegmentModel {
    fn task(&self) -> Task {
        Task::Segment
    }

    fn labels(&self) -> &[String] {
        self.segmenter.labels()
    }

    fn infer(&self, images: &[&DynamicImage]) -> Result<Vec<ModelOutput>, InferError> {
        let rgb: Vec<_> = images.iter().map(|i| i.to_rgb8()).collect();
        let out = self
            .segmenter
            .predict(&rgb, &self.settings)
            .map_err(|e| InferError::Run(e.to_string()))?;
        out.into_iter()
            .map(|dets| {
                dets.into_iter()
                    .map(|d| {
                        let mask = sightline_mask::Rle::new(
                            d.mask.height as u32,
                            d.mask.width as u32,
                            d.mask.rle_counts(),
                        )
                        .map_err(|e| InferError::Run(format!("mask encoding: {e}")))?;
                        Ok(Detection {
                            class_id: d.class_id,
                            confidence: d.confidence,
                            box_xyxy: d.box_xyxy,
                            mask: Some(mask),
                        })
                    })
                    .collect::<Result<Vec<_>, InferError>>()
                    .map(ModelOutput::Segment)
            })
            .collect()
    }
}

struct ClassifyModel {
    classifier: Classifier,
}

impl InspectModel for ClassifyModel {
    fn task(&self) -> Task {
        Task::Classify
    }

    fn labels(&self) -> &[String] {
        self.classifier.labels()
    }

    fn infer(&self, images: &[&DynamicImage]) -> Result<Vec<ModelOutput>, InferError> {
        let owned: Vec<DynamicImage> = images.iter().map(|i| (*i).clone()).collect();
        let out = self
            .classifier
            .predict(&owned)
            .map_err(|e| InferError::Run(e.to_string()))?;
        Ok(out
            .into_iter()
            .map(|c| {
                ModelOutput::Classify(Classification {
                    probabilities: c.probabilities,
                })
            })
            .collect())
    }
}

impl ModelLoader for VisionLoader {
    fn load(&self, bundle: &Bundle) -> Result<Arc<dyn InspectModel>, InferError> {
        let m = &bundle.manifest;
        let path = bundle.weights_path();
        let labels = Some(m.labels.clone());
        let load_err = |e: sightline_vision::VisionError| InferError::Load(e.to_string());
        match (m.task, &m.preprocessing) {
            (Task::Segment, Preprocessing::Letterbox { imgsz, .. }) => {
                // Bundle format 2: `labels` is the class map resolved at registration
                // (`--labels`, else the checkpoint's names, else the project's labels).
                // Format 1: the checkpoint's class names win (each must be a project label);
                // without names the bundle's labels apply.
                let ckpt =
                    sightline_vision::checkpoint::read_checkpoint(&path).map_err(load_err)?;
                let labels = if m.format >= 2 {
                    labels
                } else {
                    match &ckpt.meta.names {
                        Some(names) => {
                            if let Some(bad) = names.iter().find(|n| !m.labels.contains(n)) {
                                return Err(InferError::Load(format!(
                                    "checkpoint class `{bad}` is not a label of project `{}` ({})",
                                    m.project,
                                    m.labels.join(", ")
                                )));
                            }
                            None
                        }
                        None => labels,
                    }
                };
                let segmenter =
                    Segmenter::from_loaded_checkpoint(ckpt, labels, self.device.clone())
                        .map_err(load_err)?;
                let classes = segmenter.config().num_classes;
                if segmenter.labels().len() != classes {
                    return Err(InferError::Load(format!(
                        "the detector has {classes} classes but its label map names {} ({}); \
                         register it with --labels naming one project label per class",
                        segmenter.labels().len(),
                        segmenter.labels().join(", ")
                    )));
                }
                let mut settings = SegmentSettings {
                    imgsz: *imgsz as usize,
                    ..SegmentSettings::default()
                };
                // Keep every detection some label's threshold could accept; the verdict applies
                // the per-label thresholds afterwards.
                let lowest = m
                    .thresholds
                    .values()
                    .fold(f64::from(settings.nms.conf), |a, b| a.min(*b));
                settings.nms.conf = (lowest as f32).clamp(0.0, 1.0);
                let settings = settings
                    .validated()
                    .map_err(|e| InferError::Load(e.to_string()))?;
                let segmenter = match self.onnx_bytes(bundle)? {
                    Some((rt, bytes)) => sightline_onnx::attach::segmenter_on_ort(
                        segmenter,
                        rt,
                        Some(&bytes),
                        settings.imgsz,
                    )
                    .map_err(attach_err)?,
                    None => segmenter,
                };
                tracing::info!(project = %m.project, version = m.version, engine = %segmenter.engine(), "detector loaded");
                Ok(Arc::new(SegmentModel {
                    segmenter,
                    settings,
                }))
            }
            (
                Task::Classify,
                Preprocessing::ResizeCrop {
                    resize,
                    crop,
                    mean,
                    std,
                },
            ) => {
                let classifier = Classifier::load_on(&path, labels, self.device.clone())
                    .map_err(load_err)?
                    .with_preprocess(ClassifyPreprocess {
                        resize: *resize as usize,
                        crop: *crop as usize,
                        mean: *mean,
                        std: *std,
                    });
                let classifier = match self.onnx_bytes(bundle)? {
                    Some((rt, bytes)) => {
                        sightline_onnx::attach::classifier_on_ort(classifier, rt, Some(&bytes))
                            .map_err(attach_err)?
                    }
                    None => classifier,
                };
                tracing::info!(project = %m.project, version = m.version, engine = %classifier.engine(), "classifier loaded");
                Ok(Arc::new(ClassifyModel { classifier }))
            }
            (task, pre) => Err(InferError::Load(format!(
                "bundle preprocessing {pre:?} does not fit a {task} model"
            ))),
        }
    }
}
