//! `sightline register`: register a checkpoint as an immutable model version with a deployment
//! bundle (weights + checksummed `bundle.json`) in the artifact store.

use std::path::PathBuf;

use anyhow::Context;
use sightline_core::{Manifest, Task};
use sightline_registry::{RegisterRequest, Registry};

use crate::ctx::Ctx;

/// Arguments of `sightline register`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Project manifest (models/configs/X.yaml); the project must have been applied.
    #[arg(long)]
    pub config: PathBuf,
    /// Checkpoint file, e.g. artifacts/experiments/<ts>/weights/best.safetensors.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// `segment` (detector) or `classify`; needed when the manifest has both models.
    #[arg(long)]
    pub task: Option<Task>,
    /// Point this alias at the new version (no gates; use `model promote` for production).
    #[arg(long)]
    pub alias: Option<String>,
    /// Free-form note.
    #[arg(long)]
    pub note: Option<String>,
    /// Experiment id (default: from an `experiments/<id>/…` checkpoint path).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Dataset version the model was trained on.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Evaluation report reference.
    #[arg(long)]
    pub report: Option<String>,
    /// Class map `a,b,c`: the model's class 0 is project label `a`, class 1 `b`, … Overrides the
    /// checkpoint's own class names (needed when they are not project labels); the count must
    /// match the checkpoint's classes. Default: the checkpoint's names, else the project labels.
    #[arg(long, value_name = "LABELS")]
    pub labels: Option<String>,
}

/// The database URL and the (local) artifact root of the context.
pub fn locations(ctx: &Ctx) -> anyhow::Result<(String, PathBuf)> {
    match &ctx.settings.artifacts {
        sightline_core::ArtifactSettings::Local { root } => {
            let url = ctx
                .database_url
                .clone()
                .unwrap_or_else(|| ctx.settings.database_url.clone());
            Ok((url, root.clone()))
        }
        sightline_core::ArtifactSettings::S3(_) => anyhow::bail!(
            "the registry and the server keep deployment bundles in a local artifact folder; \
             configure a local artifact store for them"
        ),
    }
}

/// Open the registry of the context.
pub async fn open_registry(ctx: &Ctx) -> anyhow::Result<Registry> {
    ctx.registry().await
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.config)
        .with_context(|| format!("cannot load manifest {}", args.config.display()))?;
    let registry = open_registry(ctx).await?;
    let class_labels = args
        .labels
        .as_deref()
        .map(sightline_registry::labels::parse_label_list);
    let model = registry
        .register_with_labels(
            RegisterRequest {
                manifest,
                task: args.task,
                checkpoint: args.checkpoint.clone(),
                experiment_id: args.experiment,
                dataset_version: args.dataset,
                evaluation_report: args.report,
                note: args.note,
                alias: args.alias.clone(),
                actor: "cli".into(),
            },
            class_labels,
        )
        .await
        .with_context(|| format!("cannot register {}", args.checkpoint.display()))?;
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&model)?);
    } else {
        println!(
            "registered {} (id {}, sha256 {}, bundle {}, classes {}){}",
            model.display_name(),
            model.id,
            &model.checkpoint_sha256[..12.min(model.checkpoint_sha256.len())],
            model.bundle_dir,
            model.labels.join(","),
            args.alias
                .map(|a| format!(", alias `{a}`"))
                .unwrap_or_default()
        );
    }
    registry.db().close().await;
    Ok(())
}
