//! Evaluation metrics: COCO-exact box/mask AP and AR (pycocotools conventions), classification metrics,
//! operating-point metrics and business-rule gates.
//!
//! - [`coco`]: a re-implementation of pycocotools' `COCOeval` (`bbox` and `segm`) that gives the same 12 summary
//!   numbers, parallelised with rayon;
//! - [`yolo`]: Ultralytics-style detection metrics (`ap_per_class`: P, R, F1 at the best-F1 confidence, AP50,
//!   AP50-95) from matched predictions, for validation during training;
//! - [`classification`]: top-k accuracy, per-class precision/recall/F1, confusion matrix, calibration (ECE);
//! - [`operating`]: metrics at the shipped per-class thresholds, image-level OK/NG decisions, business rules and
//!   threshold sweeps.

pub mod classification;
pub mod coco;
mod error;
pub mod operating;
pub mod yolo;

pub use error::EvalError;
