//! The inference seam: what a deployed model must do, and how bundles become models.
//!
//! The product path loads real models from deployment bundles through a [`ModelLoader`]; the
//! server only needs [`InspectModel::infer`] on a batch of decoded images.

use std::sync::Arc;

use image::DynamicImage;
use sightline_core::Task;
use sightline_mask::Rle;
use sightline_registry::Bundle;

/// Why inference or model loading failed.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The model could not be loaded from its bundle.
    #[error("cannot load model: {0}")]
    Load(String),
    /// The forward pass or post-processing failed.
    #[error("inference failed: {0}")]
    Run(String),
}

/// One detected instance, in original image coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Class id (index into the model version's label map).
    pub class_id: usize,
    /// Confidence in [0, 1].
    pub confidence: f32,
    /// Box `[x1, y1, x2, y2]` in pixels.
    pub box_xyxy: [f32; 4],
    /// Instance mask at the original resolution, if the model predicts masks.
    pub mask: Option<Rle>,
}

/// An image-level classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Probability per class id (sums to 1).
    pub probabilities: Vec<f32>,
}

impl Classification {
    /// Arg-max class id and its probability; `None` when there are no classes.
    pub fn top1(&self) -> Option<(usize, f32)> {
        self.probabilities
            .iter()
            .copied()
            .enumerate()
            .fold(None, |best, (i, p)| match best {
                Some((_, bp)) if bp >= p => best,
                _ => Some((i, p)),
            })
    }
}

/// What a model returns for one image.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelOutput {
    /// Instance segmentation result.
    Segment(Vec<Detection>),
    /// Classification result.
    Classify(Classification),
}

/// A loaded, thread-safe model that runs on batches of images.
pub trait InspectModel: Send + Sync {
    /// The task this model performs.
    fn task(&self) -> Task;
    /// Label name of each class id, as the model was trained.
    fn labels(&self) -> &[String];
    /// Run on a batch; returns one output per image, in order.
    fn infer(&self, images: &[&DynamicImage]) -> Result<Vec<ModelOutput>, InferError>;
}

/// Turns a verified deployment bundle into a runnable model.
pub trait ModelLoader: Send + Sync {
    /// Load the bundle's weights (the bundle's checksums are already verified).
    fn load(&self, bundle: &Bundle) -> Result<Arc<dyn InspectModel>, InferError>;
}
