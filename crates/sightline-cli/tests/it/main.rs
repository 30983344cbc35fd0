//! The `sightline` binary's integration tests, in one test binary (one link of Burn, axum and
//! sqlx instead of one per file). One module per scenario file; shared helpers come from the
//! dev-only `sightline-testkit` crate and [`support`]. Snapshots live in `snapshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // tests: a failed unwrap is a failed test

mod support;

mod bench_serve;
mod browser_ui;
mod config_validate;
mod corrections_cli;
mod dataset_cli;
mod demo_generate;
mod demo_lifecycle;
mod eval_coco;
mod evaluate_classify;
mod evaluate_detect;
mod predict_classify;
mod predict_cli;
mod project_cli;
mod register_from_experiment;
mod register_labels;
mod serve_s3;
mod server_e2e;
mod train_classifier;
mod train_detector;
mod train_from_checkpoints;
mod train_interrupt;
mod train_over_http;
mod train_record;
