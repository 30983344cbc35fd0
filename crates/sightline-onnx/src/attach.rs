//! Putting a model on ONNX Runtime: export the loaded Burn module (dynamic batch and sides, so
//! every letterbox shape runs) or take a given ONNX file, open it in an [`OrtNetwork`] and hand
//! it to the pipeline ([`Segmenter::with_network`], [`Classifier::with_network`]). Also the
//! numeric check registration runs: the largest difference between ONNX Runtime's and Burn's
//! outputs on real inputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sightline_vision::burn::tensor::{Tensor, TensorData};
use sightline_vision::classify::Classifier;
use sightline_vision::image::RgbImage;
use sightline_vision::segment::{MAX_STRIDE, SegmentSettings, Segmenter};
use sightline_vision::weights::tensor_to_vec;

use crate::export::{self, ExportError, ExportOptions};
use crate::runtime::{OrtNetwork, RuntimeError, SessionOptions};

/// Why a model could not be put on ONNX Runtime or checked.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Export of the loaded module failed.
    #[error("exporting the model to ONNX")]
    Export(#[from] ExportError),
    /// ONNX Runtime could not load or run it.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The Burn side of a comparison failed.
    #[error("running the native model")]
    Vision(#[from] sightline_vision::VisionError),
    /// An ONNX output differs from the native one by more than the tolerance.
    #[error(
        "ONNX Runtime's output `{output}` differs from the native model's by {diff:.3e} (relative above 1; tolerance {tolerance:.1e})"
    )]
    Mismatch {
        /// The output name.
        output: String,
        /// The largest absolute difference.
        diff: f64,
        /// The tolerance.
        tolerance: f64,
    },
}

/// ONNX Runtime: which library and how to run sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtRuntime {
    /// The shared library.
    pub library: PathBuf,
    /// Session options.
    pub options: SessionOptions,
}

/// The ONNX export a pipeline runs on: the module's own dynamic export at `imgsz`.
pub fn export_segmenter_of(seg: &Segmenter, imgsz: usize) -> Result<Vec<u8>, AttachError> {
    let weights = seg.model().to_tensor_map()?;
    Ok(export::export_segmenter(
        &weights,
        seg.config(),
        seg.labels(),
        &ExportOptions::dynamic(imgsz.div_ceil(MAX_STRIDE).max(1) * MAX_STRIDE),
    )?)
}

/// The classifier's own dynamic export (crop size from its preprocessing).
pub fn export_classifier_of(cls: &Classifier) -> Result<Vec<u8>, AttachError> {
    let weights = cls.model().to_tensor_map()?;
    let opts = ExportOptions {
        preprocess: Some(cls.preprocess().clone()),
        ..ExportOptions::dynamic(cls.preprocess().crop)
    };
    Ok(export::export_classifier(
        &weights,
        cls.config(),
        cls.labels(),
        &opts,
    )?)
}

/// Runs `seg`'s forward pass on ONNX Runtime: `onnx` (e.g. a bundle's `model.onnx`), else the
/// module's own export. The ONNX file must be dynamic in its sides or match every input shape.
pub fn segmenter_on_ort(
    seg: Segmenter,
    rt: &OrtRuntime,
    onnx: Option<&[u8]>,
    imgsz: usize,
) -> Result<Segmenter, AttachError> {
    let exported;
    let bytes = match onnx {
        Some(b) => b,
        None => {
            exported = export_segmenter_of(&seg, imgsz)?;
            &exported
        }
    };
    let net = OrtNetwork::from_bytes(&rt.library, bytes, &rt.options)?;
    Ok(seg.with_network(Box::new(net)))
}

/// Runs `cls`'s forward pass on ONNX Runtime (`onnx`, else the module's own export).
pub fn classifier_on_ort(
    cls: Classifier,
    rt: &OrtRuntime,
    onnx: Option<&[u8]>,
) -> Result<Classifier, AttachError> {
    let exported;
    let bytes = match onnx {
        Some(b) => b,
        None => {
            exported = export_classifier_of(&cls)?;
            &exported
        }
    };
    let net = OrtNetwork::from_bytes(&rt.library, bytes, &rt.options)?;
    Ok(cls.with_network(Box::new(net)))
}

/// The largest difference between `a` (ONNX Runtime) and `b` (native), absolute for values up
/// to 1 and relative above: `|a − b| / max(1, |b|)`. Box coordinates are in input pixels (up to
/// the image size), where float32 rounding alone is ~1e-5 per unit; scores, mask coefficients
/// and logits are compared absolutely.
pub fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from((x - y).abs()) / f64::from(y.abs()).max(1.0);
            if d.is_nan() { f64::INFINITY } else { d }
        })
        .fold(0.0, f64::max)
}

/// Largest difference ([`max_diff`]) per output (`output0` boxes/scores/coefficients,
/// `output1` prototypes) between `net` and the Burn module of `seg`, over `images` letterboxed as
/// `settings` says. A shape mismatch counts as infinite.
pub fn compare_segmenter(
    seg: &Segmenter,
    net: &OrtNetwork,
    images: &[RgbImage],
    settings: &SegmentSettings,
) -> Result<BTreeMap<String, f64>, AttachError> {
    let settings = settings.validated()?;
    let names = ["output0", "output1"];
    let mut worst: BTreeMap<String, f64> = names.iter().map(|n| (n.to_string(), 0.0)).collect();
    for img in images {
        let (input, lb) = seg.prepare(img, &settings)?;
        let shape = [1, 3, lb.input.0, lb.input.1];
        let native = seg.forward(Tensor::<4>::from_data(
            TensorData::new(input.clone(), shape),
            seg.device(),
        ));
        let (ps, pred) = tensor_to_vec(native.pred)?;
        let (qs, proto) = tensor_to_vec(native.proto)?;
        let ort = net.run_batch(&input, shape)?;
        for (i, (name, (s, v))) in names.iter().zip([(ps, pred), (qs, proto)]).enumerate() {
            let d = match ort.get(i) {
                Some(o) if o.shape == s => max_diff(&o.data, &v),
                _ => f64::INFINITY,
            };
            let e = worst.entry(name.to_string()).or_insert(0.0);
            *e = e.max(d);
        }
    }
    Ok(worst)
}

/// Largest difference ([`max_diff`]) of the logits between `net` and the Burn module of `cls` over
/// `images` (preprocessed as `cls` does).
pub fn compare_classifier(
    cls: &Classifier,
    net: &OrtNetwork,
    images: &[RgbImage],
) -> Result<BTreeMap<String, f64>, AttachError> {
    let crop = cls.preprocess().crop;
    let mut worst = 0.0f64;
    for img in images {
        let input = cls.preprocess().apply(img);
        let shape = [1, 3, crop, crop];
        let native = cls.forward(Tensor::<4>::from_data(
            TensorData::new(input.clone(), shape),
            cls.device(),
        ));
        let (s, v) = tensor_to_vec(native)?;
        let ort = net.run_batch(&input, shape)?;
        let d = match ort.first() {
            Some(o) if o.shape == s => max_diff(&o.data, &v),
            _ => f64::INFINITY,
        };
        worst = worst.max(d);
    }
    Ok(BTreeMap::from([("logits".to_string(), worst)]))
}

/// The first output whose difference exceeds `tolerance`, as an error.
pub fn check_tolerance(diffs: &BTreeMap<String, f64>, tolerance: f64) -> Result<(), AttachError> {
    // NaN counts as a mismatch.
    let within = |d: f64| {
        matches!(
            d.partial_cmp(&tolerance),
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        )
    };
    match diffs.iter().find(|(_, d)| !within(**d)) {
        Some((name, d)) => Err(AttachError::Mismatch {
            output: name.clone(),
            diff: *d,
            tolerance,
        }),
        None => Ok(()),
    }
}
