//! Deterministic synthetic inspection data for demos and tests.
//!
//! A scene is a metal part (a disc or a rounded plate with a centre hole) lying on a noisy bench,
//! with zero to three defects: **scratches** (thin bent strokes), **dents** (small dark blobs with a
//! highlight rim) and **stains** (irregular brownish blobs, labelled `ng`). Every defect is an
//! instance with an exact polygon; the image-level label follows the project convention:
//! `ok` = no defect, `scratch`/`dent` = only that kind, `ng` = stains or mixed defects.
//!
//! [`generate`] writes a data set in two common forms so that it also exercises ingestion:
//! COCO instance segmentation (`annotations/instances_<split>.json` + `images/<split>/`) and
//! image folders for classification (`classify/<split>/<label>/`). The same seed always gives the
//! same bytes: every image draws from its own random stream derived from (seed, split, index), so
//! rendering runs in parallel without changing the result.

mod raster;
mod rng;
mod scene;
mod write;

pub use rng::Rng;
pub use scene::{DefectKind, Instance, Scene, render};
pub use write::{GenerateOptions, Summary, generate};

/// Instance categories, in COCO category-id order (id = index + 1).
pub const INSTANCE_LABELS: [&str; 3] = ["scratch", "dent", "ng"];

/// Image-level labels in the demo project's label order.
pub const IMAGE_LABELS: [&str; 4] = ["ok", "ng", "scratch", "dent"];

/// Errors from writing a synthetic data set.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A file or folder could not be written (the path is in the message).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An image could not be encoded.
    #[error("cannot encode {path}: {source}")]
    Encode {
        /// Image path.
        path: std::path::PathBuf,
        /// Encoder error.
        source: image::ImageError,
    },
    /// JSON serialisation failed.
    #[error("cannot write {path}: {source}")]
    Json {
        /// File path.
        path: std::path::PathBuf,
        /// Serialiser error.
        source: serde_json::Error,
    },
    /// The options make no sense (size too small, nothing to generate, output exists…).
    #[error("{0}")]
    InvalidOptions(String),
}
