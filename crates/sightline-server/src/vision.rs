//! The product model loader: deployment bundles into `sightline-vision` models (YOLOv8-seg
//! [`Segmenter`], MobileNetV3 [`Classifier`]) with the bundle's label map and preprocessing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::DynamicImage;
use sightline_core::Task;
use sightline_onnx::attach::OrtRuntime;
use sightline_onnx::bundle::{BundleModel, CheckImages, MAX_CHECK_IMAGES};
use sightline_registry::bundle::OnnxExport;
use sightline_registry::service::{OnnxInput, OnnxPrepareError, OnnxPreparer, PreparedOnnx};
use sightline_registry::{Bundle, BundleManifest, Preprocessing};
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
        match bundle_model(m).map_err(InferError::Load)? {
            BundleModel::Segment { imgsz } => {
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
                    imgsz,
                    ..SegmentSettings::default()
                };
                // Keep every detection some label's threshold could accept; the verdict applies
                // the per-label thresholds afterwards.
                settings.nms.conf = sightline_core::inspection::serving_floor(
                    settings.nms.conf,
                    m.thresholds.values().copied(),
                );
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
            BundleModel::Classify { preprocess } => {
                let classifier = Classifier::load_on(&path, labels, self.device.clone())
                    .map_err(load_err)?
                    .with_preprocess(preprocess);
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
        }
    }
}

/// How a registration checks the ONNX export it adds to a bundle.
#[derive(Debug, Clone)]
pub struct OnnxCheck {
    /// ONNX Runtime that runs the check (and later serves the bundle).
    pub runtime: OrtRuntime,
    /// Largest accepted difference ([`sightline_onnx::bundle::DEFAULT_TOLERANCE`]).
    pub tolerance: f64,
    /// Sightline home (dataset versions live under `<home>/projects/<p>/datasets`).
    pub home: PathBuf,
    /// An image to check on instead of the dataset version's (`--onnx-check-image`).
    pub image: Option<PathBuf>,
}

/// Why the check images could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckImageError {
    /// An image could not be decoded.
    #[error("reading the ONNX check image {path}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: sightline_imageio::DecodeError,
    },
}

impl OnnxCheck {
    /// The registry step that adds this bundle's `model.onnx`: the checkpoint loaded with the
    /// bundle's class map and preprocessing (as [`VisionLoader`] loads it), exported, run on
    /// ONNX Runtime and compared with the native model on the check images
    /// ([`OnnxCheck::check_images`]); refused above the tolerance.
    pub fn preparer(self) -> OnnxPreparer {
        OnnxPreparer::new(move |input: OnnxInput<'_>| self.prepare(input))
    }

    fn prepare(&self, input: OnnxInput<'_>) -> Result<PreparedOnnx, OnnxPrepareError> {
        let m = input.manifest;
        let model = bundle_model(m).map_err(OnnxPrepareError::from)?;
        let check = self.check_images(&m.project, input.dataset_version)?;
        let out = sightline_onnx::bundle::prepare_bundle_onnx(
            input.checkpoint,
            &model,
            &m.labels,
            &check,
            &self.runtime,
            self.tolerance,
        )?;
        Ok(PreparedOnnx {
            export: OnnxExport {
                file: sightline_registry::bundle::BUNDLE_ONNX.to_string(),
                opset: out.opset,
                dynamic: out.dynamic,
                max_abs_diff: out.max_abs_diff,
                tolerance: out.tolerance,
                checked_images: out.checked_images,
                checked_on: out.checked_on,
                runtime: out.runtime,
            },
            bytes: out.bytes,
        })
    }

    /// The images a registration checks on: the given image (`--onnx-check-image`), else up to
    /// [`MAX_CHECK_IMAGES`] images of the dataset version (file order), else the synthetic one.
    pub fn check_images(
        &self,
        project: &str,
        dataset_version: Option<&str>,
    ) -> Result<CheckImages, CheckImageError> {
        if let Some(path) = &self.image {
            return Ok(CheckImages {
                images: vec![load_check_image(path)?],
                source: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string()),
            });
        }
        let Some(version) = dataset_version else {
            return Ok(CheckImages::synthetic());
        };
        let paths = sightline_workflows::dataset_repo(&self.home, project)
            .map_err(|e| e.to_string())
            .and_then(|repo| {
                let v = repo.get(version).map_err(|e| e.to_string())?;
                repo.image_paths(&v.id).map_err(|e| e.to_string())
            });
        let paths = match paths {
            Ok(p) => p,
            Err(reason) => {
                // Registered from another home, or the version's files were removed: the
                // synthetic image still checks the export.
                tracing::warn!(project, dataset = version, %reason, "dataset images not found; checking ONNX on a synthetic image");
                let synthetic = CheckImages::synthetic();
                return Ok(CheckImages {
                    source: format!("{} (dataset {version} images not found)", synthetic.source),
                    ..synthetic
                });
            }
        };
        let images = paths
            .values()
            .take(MAX_CHECK_IMAGES)
            .map(|p| load_check_image(p))
            .collect::<Result<Vec<_>, _>>()?;
        if images.is_empty() {
            return Ok(CheckImages::synthetic());
        }
        Ok(CheckImages {
            source: format!("dataset {version}"),
            images,
        })
    }
}

fn load_check_image(path: &Path) -> Result<sightline_vision::image::RgbImage, CheckImageError> {
    sightline_imageio::load_rgb(path).map_err(|source| CheckImageError::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// The model a bundle describes: its task with its preprocessing. The one reading of a bundle's
/// preprocessing, used by [`VisionLoader`] and by the registration's ONNX check.
fn bundle_model(m: &BundleManifest) -> Result<BundleModel, String> {
    match (m.task, &m.preprocessing) {
        (Task::Segment, Preprocessing::Letterbox { imgsz, .. }) => Ok(BundleModel::Segment {
            imgsz: *imgsz as usize,
        }),
        (
            Task::Classify,
            Preprocessing::ResizeCrop {
                resize,
                crop,
                mean,
                std,
            },
        ) => Ok(BundleModel::Classify {
            preprocess: ClassifyPreprocess {
                resize: *resize as usize,
                crop: *crop as usize,
                mean: *mean,
                std: *std,
            },
        }),
        (task, pre) => Err(format!(
            "bundle preprocessing {pre:?} does not fit a {task} model"
        )),
    }
}
