//! MobileNetV3 classifier training pieces.

pub mod loss;
