//! `sightline`: one binary for the whole life of industrial visual-inspection models.
//!
//! Each subcommand lives in its own module under `commands/` and is a thin layer over the
//! library crates: parse arguments, call a service function, print a human table or `--json`.

mod commands;
mod ctx;
mod inference;

use clap::{Parser, Subcommand};

/// Sightline: datasets, training, evaluation, registry and serving for inspection models.
#[derive(Debug, Parser)]
#[command(name = "sightline", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: ctx::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate project manifests (models/configs/*.yaml).
    Config(commands::config::Args),
    /// Create, update and inspect projects and their label sets.
    Project(commands::project::Args),
    /// Ingest, version, diff and export datasets.
    Dataset(commands::dataset::Args),
    /// Train a detector (YOLOv8-seg) or classifier (MobileNetV3) from a manifest.
    Train(commands::train::Args),
    /// Run a checkpoint on images (segmentation or classification).
    Predict(commands::predict::Args),
    /// Evaluate a checkpoint on a dataset version and write a report to artifacts/reports/.
    Evaluate(commands::evaluate::Args),
    /// COCO box/mask evaluation of a detections file: a drop-in for pycocotools.
    EvalCoco(commands::eval_coco::Args),
    /// Export a checkpoint or model version to ONNX (Ultralytics/torchvision-compatible).
    Export(commands::export::Args),
    /// Register a checkpoint as an immutable model version with a deployment bundle.
    Register(commands::register::Args),
    /// List, inspect, alias and promote model versions.
    Model(commands::model::Args),
    /// Start the HTTP API, inference service and web UI.
    Serve(commands::serve::Args),
    /// The demo project: synthetic data and the whole lifecycle.
    Demo(commands::demo::Args),
    /// Benchmarks that print figures and ratios (see docs/perf.md).
    Bench(commands::bench::Args),
    /// The inference runtime (Burn or ONNX Runtime): show which is active, install ONNX Runtime.
    Runtime(commands::runtime::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    ctx::init_tracing(&cli.global);
    // reqwest is built without a default TLS provider (see sightline-store): every HTTP client
    // of the binary (demo, bench serve, evaluate --post, S3) uses ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let ctx = ctx::Ctx::from_global(&cli.global)?;
        match cli.command {
            Command::Config(args) => commands::config::run(args, &ctx).await,
            Command::Project(args) => commands::project::run(args, &ctx).await,
            Command::Dataset(args) => commands::dataset::run(args, &ctx).await,
            Command::Train(args) => commands::train::run(args, &ctx).await,
            Command::Predict(args) => commands::predict::run(args, &ctx).await,
            Command::Evaluate(args) => commands::evaluate::run(args, &ctx).await,
            Command::EvalCoco(args) => commands::eval_coco::run(args, &ctx).await,
            Command::Export(args) => commands::export::run(args, &ctx).await,
            Command::Register(args) => commands::register::run(args, &ctx).await,
            Command::Model(args) => commands::model::run(args, &ctx).await,
            Command::Serve(args) => commands::serve::run(args, &ctx).await,
            Command::Demo(args) => commands::demo::run(args, &ctx).await,
            Command::Bench(args) => commands::bench::run(args, &ctx).await,
            Command::Runtime(args) => commands::runtime::run(args, &ctx).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", sightline_core::error_chain(err.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks over every subcommand (duplicate argument names, a flag
    /// clashing with the propagated `--version`, …), which otherwise only fire when that
    /// subcommand is first parsed.
    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
