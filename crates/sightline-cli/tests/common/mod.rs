//! Helpers shared by several integration-test files (not a test target itself).

pub mod server;
pub mod train_env;
