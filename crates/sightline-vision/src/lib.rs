//! Vision models in Burn (YOLOv8-seg, MobileNetV3) and the inference pipeline shared by CLI,
//! evaluation and server: preprocessing, decoding, NMS, masks.
//!
//! - [`backend`]: the compute backend seam (Burn `flex` CPU by default, CUDA with a feature).
//! - [`weights`]: named f32 tensors, the neutral form checkpoints are loaded into.
//! - [`yolo`]: the YOLOv8-seg network.
//! - [`preprocess`], [`postprocess`], [`segment`]: the segmentation inference pipeline
//!   ([`segment::Segmenter`]).
//! - [`network`]: the forward-pass seam (Burn module or an external engine such as ONNX
//!   Runtime).
//! - [`checkpoint`]: checkpoint files → tensors and task.
//! - [`record`]: Burn's own record format (Burnpack `.bpk`) for our models.
//! - [`imgsz`]: which image size inference runs at (flag, else checkpoint, else default).

pub mod backend;
pub mod checkpoint;
pub mod classify;
pub mod error;
pub mod imgsz;
pub mod mobilenet;
pub mod network;
pub mod overlay;
pub mod postprocess;
pub mod preprocess;
pub mod record;
pub mod segment;
pub mod weights;
pub mod yolo;

pub use error::{Result, VisionError};

/// The Burn version the models are written against, for callers that build tensors.
pub use burn;
/// The `image` crate version of the pipeline's image types.
pub use image;
