//! The ONNX export a deployment bundle carries: made at registration from the checkpoint loaded
//! exactly as the server's bundle loader loads it (the bundle's class map and preprocessing),
//! exported dynamic (any letterbox shape runs), run on ONNX Runtime and compared with the
//! native (Burn) model on check images. A difference above the tolerance refuses it, naming the
//! output. The CLI's `sightline register` and the server's `POST /models` both call
//! [`prepare_bundle_onnx`].

use std::collections::BTreeMap;
use std::path::Path;

use sightline_vision::classify::{Classifier, ClassifyPreprocess};
use sightline_vision::image::RgbImage;
use sightline_vision::segment::{SegmentSettings, Segmenter};

use crate::attach::{self, AttachError, OrtRuntime};
use crate::export;
use crate::runtime::{self, OrtNetwork};

/// Default largest accepted difference between ONNX Runtime's and Burn's outputs
/// ([`attach::max_diff`]: absolute up to 1, relative above).
pub const DEFAULT_TOLERANCE: f64 = 1e-4;

/// Most images a registration checks.
pub const MAX_CHECK_IMAGES: usize = 4;

/// Sides of the synthetic check image: not square, so the letterbox pads.
pub const SYNTHETIC_CHECK_SIZE: (u32, u32) = (320, 200);

/// The model of a bundle as its loader builds it.
#[derive(Debug, Clone, PartialEq)]
pub enum BundleModel {
    /// A YOLOv8-seg detector letterboxed to `imgsz`.
    Segment {
        /// Letterbox long side.
        imgsz: usize,
    },
    /// A MobileNetV3 classifier with this preprocessing.
    Classify {
        /// Resize, crop and normalisation.
        preprocess: ClassifyPreprocess,
    },
}

/// The images a check runs on and where they came from.
#[derive(Debug, Clone)]
pub struct CheckImages {
    /// The images (at most [`MAX_CHECK_IMAGES`] are used).
    pub images: Vec<RgbImage>,
    /// Where they came from (`dataset v3`, a file name, `synthetic 320x200`).
    pub source: String,
}

impl CheckImages {
    /// One deterministic synthetic image ([`sightline_vision::preprocess::synthetic_image`]).
    pub fn synthetic() -> Self {
        let (w, h) = SYNTHETIC_CHECK_SIZE;
        Self {
            images: vec![sightline_vision::preprocess::synthetic_image(w, h)],
            source: format!("synthetic {w}x{h}"),
        }
    }
}

/// A checked ONNX export for a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleOnnx {
    /// The ONNX file.
    pub bytes: Vec<u8>,
    /// Its default-domain opset.
    pub opset: i64,
    /// Whether batch and sides are symbolic.
    pub dynamic: bool,
    /// Largest difference per output ([`attach::max_diff`]).
    pub max_abs_diff: BTreeMap<String, f64>,
    /// The tolerance held to.
    pub tolerance: f64,
    /// How many images were checked.
    pub checked_images: usize,
    /// Where they came from.
    pub checked_on: String,
    /// The ONNX Runtime version that ran the check.
    pub runtime: String,
}

/// Loads `checkpoint` as the bundle loader will (`labels` is the bundle's class map, one per
/// class), exports it dynamic, runs it on ONNX Runtime `rt` and compares with the native model
/// on `check` (the synthetic image when it holds none). Fails with
/// [`AttachError::Mismatch`] naming the first output whose difference exceeds `tolerance`.
pub fn prepare_bundle_onnx(
    checkpoint: &Path,
    model: &BundleModel,
    labels: &[String],
    check: &CheckImages,
    rt: &OrtRuntime,
    tolerance: f64,
) -> Result<BundleOnnx, AttachError> {
    let fallback;
    let check = if check.images.is_empty() {
        fallback = CheckImages::synthetic();
        &fallback
    } else {
        check
    };
    let images = &check.images[..check.images.len().min(MAX_CHECK_IMAGES)];
    let device = sightline_vision::backend::default_device();
    let (bytes, diffs) = match model {
        BundleModel::Segment { imgsz } => {
            let ckpt = sightline_vision::checkpoint::read_checkpoint(checkpoint)?;
            let seg = Segmenter::from_loaded_checkpoint(ckpt, Some(labels.to_vec()), device)?;
            let settings = SegmentSettings {
                imgsz: *imgsz,
                ..SegmentSettings::default()
            };
            let bytes = attach::export_segmenter_of(&seg, settings.imgsz)?;
            let net = OrtNetwork::from_bytes(&rt.library, &bytes, &rt.options)?;
            let diffs = attach::compare_segmenter(&seg, &net, images, &settings)?;
            (bytes, diffs)
        }
        BundleModel::Classify { preprocess } => {
            let cls = Classifier::load_on(checkpoint, Some(labels.to_vec()), device)?
                .with_preprocess(preprocess.clone());
            let bytes = attach::export_classifier_of(&cls)?;
            let net = OrtNetwork::from_bytes(&rt.library, &bytes, &rt.options)?;
            let diffs = attach::compare_classifier(&cls, &net, images)?;
            (bytes, diffs)
        }
    };
    attach::check_tolerance(&diffs, tolerance)?;
    let opset = export::describe(&bytes)?.opset;
    Ok(BundleOnnx {
        bytes,
        opset,
        dynamic: true,
        max_abs_diff: diffs,
        tolerance,
        checked_images: images.len(),
        checked_on: check.source.clone(),
        runtime: runtime::version(),
    })
}
