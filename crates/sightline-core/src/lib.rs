//! Domain types shared by every Sightline crate: project manifests (schema, validation with
//! file/line/column), labels, tasks and layered settings.
//!
//! - [`Manifest`]: a validated `models/configs/*.yaml` ([`Manifest::load`], [`Manifest::parse`]).
//! - [`Settings`]: defaults < `sightline.toml` < `SIGHTLINE_*` environment < flags.
//! - [`Diagnostics`]: `file:line:column: message` errors.
//! - [`error_chain`]: an error and its causes on one line, each cause once.
//! - [`inspection`]: the inspection policy shared by the server and evaluation (OK/NG verdict,
//!   the served detector's confidence floor, confidence histograms, the typed confidence
//!   baseline).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod diagnostics;
pub mod errors;
pub mod inspection;
pub mod manifest;
pub mod settings;

pub use diagnostics::{Diagnostic, Diagnostics, Position};
pub use errors::error_chain;
pub use manifest::{
    Augmentation, BusinessRules, DEFAULT_THRESHOLD, Hyperparameters, Manifest, ManifestError,
    ModelConfig, ModelName, Optimizer, Task, Thresholds, Weights, YoloScale,
};
pub use settings::{
    ArtifactSettings, InferenceSettings, S3Settings, Settings, SettingsError, SettingsLayer,
};
