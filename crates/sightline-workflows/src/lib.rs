//! Workflows: the product's multi-step pipelines, each one entry point shared by the `sightline`
//! binary and the server, so a rule lives in one place whichever way a user starts the work.
//!
//! Every entry point takes plain option structs (never clap arguments or HTTP bodies), the
//! database and artifact store it records into, and reports progress through typed events;
//! the CLI turns those into progress bars and tables, the server into job state.
//!
//! - [`ingest`]: a folder, archive or URL → a validated, label-mapped dataset version recorded
//!   in the database (`sightline dataset ingest`, `POST /projects/{p}/datasets`).
//! - [`corrections`]: operator corrections of production inspections → a dataset version whose
//!   parent is the project's latest (`sightline dataset ingest --from-corrections`,
//!   `POST /projects/{p}/datasets/from-corrections`).
//! - [`evaluate`]: a checkpoint over an evaluation split → metrics (sightline-eval), the
//!   `report.json` and `report.html` of sightline-report, and a recorded evaluation whose numbers
//!   promotion gates read (`sightline evaluate`).
//! - [`train`]: a manifest (or an experiment to resume) and a dataset version → an experiment
//!   folder and its database record, with typed progress events ([`train::TrainEvent`]) and
//!   the trainer's typed command line ([`train::TrainInvocation`]) (`sightline train`, the
//!   server's training jobs).

pub mod corrections;
pub mod evaluate;
pub mod ingest;
pub mod train;

pub use corrections::dataset_repo;
