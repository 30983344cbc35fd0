//! ONNX for our models.
//!
//! - [`export`]: writes ONNX files from our Burn module trees (YOLOv8-seg, MobileNetV3), with
//!   batch norms folded, as drop-ins for Ultralytics' and torchvision's own exports.
//! - [`runtime`]: an ONNX Runtime backend (the `ort` crate, library loaded at run time) that runs
//!   those files behind the same pipeline as the Burn models.
//! - [`attach`]: puts a loaded model on ONNX Runtime (its own export or a given file) and
//!   measures how far ONNX Runtime's outputs are from Burn's.
//! - [`bundle`]: the checked ONNX export a registration adds to a deployment bundle.

pub mod attach;
pub mod bundle;
pub mod export;
pub mod runtime;
