//! YOLOv8-seg training math: anchors and box geometry, the task-aligned assigner and the
//! losses (BCE class, CIoU box, DFL, prototype-mask BCE) of Ultralytics `v8SegmentationLoss`.

pub mod assign;
pub mod boxes;
pub mod loss;
