//! MobileNetV3 classifier training: [`loss`] (cross-entropy with label smoothing and class
//! weights), [`init`] (the starting network: scratch, torchvision `.pth`, our checkpoint) and
//! [`run`] (the epoch loop writing the experiment folder; fitness = validation top-1).

pub mod init;
pub mod loss;
pub mod run;

pub use init::{ClsInit, ClsInitError, ClsStart, init_classifier, init_from_path};
pub use run::{
    ClsImage, ClsRunConfig, ClsSample, ClsValMetrics, set_bn_momentum, train_classifier,
    validate_classifier,
};
