//! Test support for the Sightline workspace's integration tests; a dev-dependency only, never
//! a dependency of a library or binary.
//!
//! - [`fixtures`]: the shared fixtures folder (`$SIGHTLINE_FIXTURES`) and paths in the repository.
//! - [`bin`]: the `sightline` binary run in a chosen home and environment, with its output
//!   captured. The binary's path comes from the test (`env!("CARGO_BIN_EXE_sightline")`): this
//!   crate does not depend on `sightline-cli`.
//! - [`server`]: child processes killed on drop, `sightline serve` started on a free port, and a
//!   minimal HTTP/1.1 client.
//! - [`db`]: a fresh SQLite file or PostgreSQL database per test (over
//!   [`sightline_db::testing`]).
//! - [`redact`]: redactions of ids, timestamps, durations and paths for deterministic snapshots.
//!
//! Helpers panic with a clear message when something is missing: they only run in tests, where
//! a panic is a failed test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bin;
pub mod db;
pub mod fixtures;
pub mod redact;
pub mod server;

pub use bin::{Run, Sightline};
pub use db::{Backend, TestDatabase};
pub use fixtures::{fixture, fixtures, onnxruntime_library, seed_manifest, workspace_root};
pub use redact::Redactions;
pub use server::{KillOnDrop, free_port, http, http_with, spawn_server, wait_until};
