//! `sightline serve`: the HTTP API and live inference service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use sightline_server::serve::{ServeOptions, serve_with_bundles};
use sightline_server::{BatchConfig, ServerConfig};

use crate::ctx::Ctx;
use crate::inference::{InferenceRuntime, RuntimeArgs};

/// Arguments of `sightline serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen address (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Largest batch per forward pass.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Longest wait (ms) for a batch to fill.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Upload size limit in MiB.
    #[arg(long, default_value_t = 20)]
    pub max_upload_mb: usize,
    /// Dataset archive size limit in MiB (`POST /projects/{p}/datasets`).
    #[arg(long, default_value_t = 1024)]
    pub max_dataset_upload_mb: usize,
    /// API token `NAME:ROLE:SECRET` (roles: viewer, operator, engineer, admin); repeatable.
    /// Without any, the server runs in open mode.
    #[arg(long = "token", env = "SIGHTLINE_API_TOKENS", value_delimiter = ',')]
    pub tokens: Vec<String>,
    /// Request-log queue capacity.
    #[arg(long, default_value_t = 10_000)]
    pub log_queue: usize,
    /// Do not log requests to the database.
    #[arg(long)]
    pub no_request_log: bool,
    /// How often (ms) aliases are re-read from the database (SQLite; on PostgreSQL alias changes
    /// also arrive at once through LISTEN/NOTIFY and this poll is the fallback).
    #[arg(long, default_value_t = 2000)]
    pub poll_ms: u64,
    /// Inspections per project in the NG-ratio rolling window.
    #[arg(long, default_value_t = 100)]
    pub ng_window: usize,
    /// Training jobs (`POST /projects/{p}/experiments`) running at once; others wait queued.
    #[arg(long, default_value_t = 1)]
    pub max_jobs: usize,
    /// Inference runtime of the deployed models.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let database_url = ctx.settings.database_url.clone();
    let (artifacts, bundles) = ctx.bundle_store()?;
    fs_err::create_dir_all(&artifacts)
        .with_context(|| format!("cannot create the artifact folder {}", artifacts.display()))?;
    let runtime = InferenceRuntime::resolve(ctx, &args.runtime)?;
    runtime.notice();
    eprintln!("inference runtime: {}", runtime.resolved.reason);
    let opts = ServeOptions {
        addr: args.addr,
        database_url: database_url.clone(),
        config: ServerConfig {
            max_upload_bytes: args.max_upload_mb.saturating_mul(1024 * 1024),
            artifacts,
            ng_window: args.ng_window,
            home: ctx.home.clone(),
            // training jobs run this same binary (`sightline --json train …`) as children
            trainer: Some(
                std::env::current_exe()
                    .context("cannot locate the sightline executable for training jobs")?,
            ),
            trainer_env: trainer_env(ctx, &database_url),
            max_jobs: args.max_jobs.max(1),
            max_dataset_upload_bytes: args.max_dataset_upload_mb.saturating_mul(1024 * 1024),
            // `POST /models` adds a checked model.onnx to the bundles it registers
            onnxruntime: runtime.ort(),
        },
        tokens: args.tokens,
        batch: BatchConfig {
            max_batch: args.max_batch.max(1),
            max_wait: Duration::from_millis(args.max_wait_ms),
            queue_capacity: 1024,
        },
        log_queue: (!args.no_request_log).then_some(args.log_queue),
        poll_interval: Duration::from_millis(args.poll_ms),
    };
    let loader = sightline_server::vision::VisionLoader::new().with_onnxruntime(runtime.ort());
    serve_with_bundles(opts, Arc::new(loader), bundles).await?;
    Ok(())
}

/// The settings a training child must share with the server, as the environment variables the
/// CLI reads (the database URL stays out of the process list this way). Home and artifact
/// root are added by the server itself.
fn trainer_env(ctx: &Ctx, database_url: &str) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "SIGHTLINE_DATABASE_URL".to_string(),
            database_url.to_string(),
        ),
        (
            "SIGHTLINE_WEIGHTS_DIR".to_string(),
            ctx.settings.weights_dir.display().to_string(),
        ),
    ];
    if let Some(f) = &ctx.settings.config_file {
        env.push(("SIGHTLINE_CONFIG".to_string(), f.display().to_string()));
    }
    env
}
