//! Model registry: immutable model versions, MLflow-style aliases with promotion gates,
//! checksummed deployment bundles, lineage.
//!
//! - [`bundle`]: the deployment bundle (weights + `bundle.json` with checksums), verified on load.
//! - [`model`]: registry records (model versions, evaluations, aliases, lineage).
//! - [`gates`]: promotion gates (business rules, `--min-map`, `--min-accuracy`).
//! - [`labels`]: the class map of a model version (`--labels`, checkpoint names, project labels).
//! - [`from_experiment`]: register an experiment's checkpoint with the lineage of its record.
//! - [`service`]: the workflow over the database and artifact store ([`Registry`]).

pub mod bundle;
pub mod error;
pub mod from_experiment;
pub mod gates;
pub mod labels;
pub mod model;
pub mod service;
pub mod time;

pub use bundle::{Bundle, BundleFile, BundleManifest, Preprocessing};
pub use error::RegistryError;
pub use gates::Gates;
pub use model::{
    Alias, AliasEvent, Evaluation, EvaluationSummary, Lineage, ModelVersion, NewModelVersion,
};
pub use service::{
    NewEvaluation, PRODUCTION, Promotion, RegisterOverrides, RegisterRequest, Registry,
};
