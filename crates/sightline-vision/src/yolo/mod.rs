//! YOLOv8-seg in Burn: configuration (all scales), building blocks, segmentation head, network.

pub mod blocks;
pub mod config;
pub mod head;
pub mod model;

pub use config::YoloV8SegConfig;
pub use head::{RawHeadOutput, STRIDES};
pub use model::{YoloOutput, YoloV8Seg};
