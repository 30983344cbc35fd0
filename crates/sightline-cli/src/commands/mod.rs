//! One module per subcommand.

pub mod bench;
pub mod config;
pub mod dataset;
pub mod eval_coco;
pub mod predict;
pub mod project;
pub mod train;
