//! The seam between the inference pipelines and what runs the network.
//!
//! [`crate::segment::Segmenter`] and [`crate::classify::Classifier`] own pre- and
//! post-processing (letterbox, NMS, masks; resize/crop, softmax). The forward pass itself runs
//! either on the Burn module they were built with, or on an [`ExternalNetwork`]: any engine that
//! maps a preprocessed `[B, 3, H, W]` batch to the same raw outputs (for ONNX Runtime,
//! `sightline-onnx`'s runtime). Swapping the engine therefore cannot change how images are
//! prepared or how outputs are read: both paths share every line outside the forward.

use std::fmt;

use crate::error::Result;

/// One output of a forward pass: its shape and its values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

/// A network run outside Burn.
///
/// Segmentation networks return `[pred (B, 4 + nc + nm, A), proto (B, nm, H/4, W/4)]` exactly
/// as Ultralytics' eval-mode `Segment` head (decoded xywh boxes in input pixels, sigmoid class
/// scores, mask coefficients); classification networks return `[logits (B, nc)]`.
pub trait ExternalNetwork: Send + Sync + fmt::Debug {
    /// Runs one batch; `input` holds `shape.iter().product()` values (NCHW).
    fn run(&self, input: &[f32], shape: [usize; 4]) -> Result<Vec<FlatTensor>>;

    /// A short description for notices and benchmarks, e.g. `onnxruntime 1.32 (CPU)`.
    fn describe(&self) -> String;
}

/// Which engine runs a pipeline's forward pass, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// The Burn module on its device (e.g. `cpu` for flex).
    Burn(String),
    /// An [`ExternalNetwork`], with its description.
    External(String),
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Engine::Burn(device) => write!(f, "burn ({device})"),
            Engine::External(d) => f.write_str(d),
        }
    }
}
