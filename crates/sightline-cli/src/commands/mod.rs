//! One module per subcommand.

pub mod bench;
pub mod config;
pub mod corrections;
pub mod dataset;
pub mod demo;
pub mod eval_coco;
pub mod evaluate;
pub mod export;
pub mod model;
pub mod predict;
pub mod project;
pub mod register;
pub mod runtime;
pub mod serve;
pub mod train;
