//! Training pipelines: YOLOv8-seg detector and MobileNetV3 classifier, data loading and
//! augmentation, losses, optimisers, experiments.
//!
//! - [`control`]: stop flag (Ctrl-C) and per-batch progress shared with the caller.
//! - [`rng`]: the fixed, seedable generator behind every random choice (reproducible runs).
//! - [`augment`]: image + instance augmentations that keep masks aligned (detector and classifier).
//! - [`yolo`]: YOLOv8-seg assigner and losses.
//! - [`classify`]: classifier loss (label smoothing, class weights).
//! - [`detector`]: YOLOv8-seg batches, head bias init, forward/backward step.
//! - [`experiment`]: experiment folders, metrics.json, fitness, early stopping.
//! - [`loader`]: deterministic epoch order, parallel batch augmentation over a decode cache.
//! - [`validate`]: box and mask mAP of a detector during training.
//! - [`run`]: the detector epoch loop writing the experiment folder.
//! - [`optim`]: parameter groups, SGD/AdamW, warm-up and decay schedules, EMA, clipping.

pub mod augment;
pub mod classify;
pub mod control;
pub mod detector;
pub mod error;
pub mod experiment;
pub mod loader;
pub mod optim;
pub mod rng;
pub mod run;
pub mod validate;
pub mod yolo;
