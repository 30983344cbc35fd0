//! `sightline register`: register a checkpoint as an immutable model version with a deployment
//! bundle (weights + checksummed `bundle.json`) in the artifact store.

use std::path::PathBuf;

use anyhow::Context;
use sightline_core::{Manifest, Task};
use sightline_registry::from_experiment;
use sightline_registry::{RegisterOverrides, RegisterRequest, Registry};

use crate::ctx::Ctx;

/// Arguments of `sightline register`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Project manifest (models/configs/X.yaml); the project must have been applied. Default
    /// with `--experiment`: the experiment's project as stored in the database.
    #[arg(long, required_unless_present = "experiment")]
    pub config: Option<PathBuf>,
    /// Checkpoint file, e.g. artifacts/experiments/<ts>/weights/best.safetensors. Default with
    /// `--experiment`: that run's `weights/best.safetensors` in the artifact store.
    #[arg(long, required_unless_present = "experiment")]
    pub checkpoint: Option<PathBuf>,
    /// `segment` (detector) or `classify`; needed when the manifest has both models.
    #[arg(long)]
    pub task: Option<Task>,
    /// Point this alias at the new version (no gates; use `model promote` for production).
    #[arg(long)]
    pub alias: Option<String>,
    /// Free-form note.
    #[arg(long)]
    pub note: Option<String>,
    /// Experiment id (default: from an `experiments/<id>/…` checkpoint path). A recorded
    /// experiment gives the project, task and dataset version.
    #[arg(long)]
    pub experiment: Option<String>,
    /// Dataset version the model was trained on (default: the experiment's; if both are given
    /// they must agree).
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
    /// Inference image size recorded in the bundle (detector letterbox side, a multiple of 32;
    /// classifier crop). Default: the size the checkpoint was trained at (Ultralytics
    /// `train_args.imgsz`, or ours), else the manifest's `imgsz`.
    #[arg(long)]
    pub imgsz: Option<u32>,
    /// Runtime flags: with ONNX Runtime (resolved as for `serve`), the bundle gets the model's
    /// ONNX export as `model.onnx`, checked against the native model; without it the bundle
    /// serves on Burn.
    #[command(flatten)]
    pub runtime: crate::inference::RuntimeArgs,
    /// Largest accepted difference between ONNX Runtime's and the native model's outputs
    /// (absolute up to 1, relative above); a larger one refuses the registration.
    #[arg(long, value_name = "TOL", default_value_t = sightline_onnx::bundle::DEFAULT_TOLERANCE)]
    pub onnx_tolerance: f64,
    /// Image to check the ONNX export on. Default: up to 4 images of the dataset version, else a
    /// synthetic image.
    #[arg(long, value_name = "FILE")]
    pub onnx_check_image: Option<PathBuf>,
    /// Register without `model.onnx` (the bundle serves on Burn).
    #[arg(long)]
    pub no_onnx: bool,
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

/// Project manifest, checkpoint, task and dataset version of a registration: from the
/// experiment record when the run is known (`--experiment`, or an `experiments/<id>/…`
/// checkpoint path), checked against what the flags say.
struct Resolved {
    manifest: Manifest,
    checkpoint: PathBuf,
    task: Option<Task>,
    experiment: Option<String>,
    dataset: Option<String>,
}

async fn resolve(args: &Args, registry: &Registry) -> anyhow::Result<Resolved> {
    let experiment = args.experiment.clone().or_else(|| {
        args.checkpoint
            .as_deref()
            .and_then(sightline_registry::service::experiment_from_path)
    });
    let run = match &experiment {
        Some(id) => match from_experiment::experiment_record(registry.db(), id).await {
            Ok(run) => Some(run),
            // A checkpoint path that only looks like an experiment folder, or an explicit
            // `--experiment` naming a run outside this database (e.g. trained with Ultralytics)
            // with `--config` and `--checkpoint` given: the id is kept as lineage, nothing read.
            Err(sightline_registry::RegistryError::NotFound(_))
                if args.experiment.is_none()
                    || (args.config.is_some() && args.checkpoint.is_some()) =>
            {
                None
            }
            Err(sightline_registry::RegistryError::NotFound(msg)) => {
                anyhow::bail!(
                    "{msg} not found; to register a checkpoint from a run outside this database, \
                     also pass --config and --checkpoint"
                );
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("experiment `{id}`")));
            }
        },
        None => None,
    };
    let manifest = match &args.config {
        Some(path) => Manifest::load(path)
            .with_context(|| format!("cannot load manifest {}", path.display()))?,
        None => {
            let project = run
                .as_ref()
                .map(|r| r.project.clone())
                .context("--config is needed when the experiment is not recorded")?;
            sightline_db::projects::get(registry.db(), &project)
                .await
                .with_context(|| format!("project `{project}`"))?
                .manifest
        }
    };
    let Some(run) = run else {
        let checkpoint = args
            .checkpoint
            .clone()
            .context("--checkpoint is needed when the experiment is not recorded")?;
        return Ok(Resolved {
            manifest,
            checkpoint,
            task: args.task,
            experiment,
            dataset: args.dataset.clone(),
        });
    };
    anyhow::ensure!(
        run.project == manifest.project,
        "experiment `{}` belongs to project `{}`, but the manifest is project `{}`",
        run.id,
        run.project,
        manifest.project
    );
    let task: Task = run.task.parse().map_err(anyhow::Error::msg)?;
    if let Some(t) = args.task {
        anyhow::ensure!(
            t == task,
            "experiment `{}` trained a {task} model, not {t}",
            run.id
        );
    }
    let dataset = from_experiment::dataset_of(&run, args.dataset.as_deref())?;
    let checkpoint = match &args.checkpoint {
        Some(c) => c.clone(),
        None => {
            from_experiment::check_finished(&run)?;
            from_experiment::experiment_checkpoint(
                registry.artifacts(),
                &run,
                from_experiment::CheckpointChoice::Best,
            )?
        }
    };
    Ok(Resolved {
        manifest,
        checkpoint,
        task: Some(task),
        experiment: Some(run.id),
        dataset: Some(dataset),
    })
}

/// The registration's ONNX step: a checked `model.onnx` when ONNX Runtime resolves, else
/// `None` with a one-line notice (the bundle serves on Burn).
fn onnx_preparer(
    args: &Args,
    ctx: &Ctx,
) -> anyhow::Result<Option<sightline_registry::service::OnnxPreparer>> {
    if args.no_onnx {
        return Ok(None);
    }
    anyhow::ensure!(
        args.onnx_tolerance.is_finite() && args.onnx_tolerance >= 0.0,
        "--onnx-tolerance must be a finite number >= 0, not {}",
        args.onnx_tolerance
    );
    let runtime = crate::inference::InferenceRuntime::resolve(ctx, &args.runtime)?;
    let Some(ort) = runtime.ort() else {
        eprintln!(
            "notice: the bundle gets no model.onnx and will serve on Burn ({}); {}",
            runtime.resolved.reason,
            sightline_onnx::runtime::INSTALL_HINT
        );
        return Ok(None);
    };
    let image = match &args.onnx_check_image {
        Some(p) => {
            anyhow::ensure!(
                p.is_file(),
                "--onnx-check-image {} is not a file",
                p.display()
            );
            Some(p.clone())
        }
        None => None,
    };
    Ok(Some(
        sightline_server::vision::OnnxCheck {
            runtime: ort,
            tolerance: args.onnx_tolerance,
            home: ctx.home.clone(),
            image,
        }
        .preparer(),
    ))
}

/// One line on the bundle's ONNX export.
fn onnx_line(onnx: &sightline_registry::bundle::OnnxExport) -> String {
    let diffs: Vec<String> = onnx
        .max_abs_diff
        .iter()
        .map(|(k, v)| format!("{k} {v:.2e}"))
        .collect();
    format!(
        "onnx: {} (opset {}{}), checked on {} image(s) from {} with ONNX Runtime {}: max diff {} (tolerance {:.1e})",
        onnx.file,
        onnx.opset,
        if onnx.dynamic { ", dynamic" } else { "" },
        onnx.checked_images,
        onnx.checked_on,
        onnx.runtime,
        diffs.join(", "),
        onnx.tolerance
    )
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let onnx = onnx_preparer(&args, ctx)?;
    let registry = open_registry(ctx).await?;
    let r = resolve(&args, &registry).await?;
    let class_labels = args
        .labels
        .as_deref()
        .map(sightline_registry::labels::parse_label_list);
    let overrides = RegisterOverrides {
        class_labels,
        imgsz: args.imgsz,
    };
    let model = registry
        .register_with_overrides(
            RegisterRequest {
                manifest: r.manifest,
                task: r.task,
                checkpoint: r.checkpoint.clone(),
                experiment_id: r.experiment,
                dataset_version: r.dataset,
                evaluation_report: args.report,
                note: args.note,
                alias: args.alias.clone(),
                actor: "cli".into(),
                onnx,
            },
            overrides,
        )
        .await
        .with_context(|| format!("cannot register {}", r.checkpoint.display()))?;
    let bundle = registry
        .bundles()
        .open_version(&model)
        .await
        .with_context(|| format!("opening the bundle of {}", model.display_name()))?;
    let onnx = bundle.manifest.onnx;
    if ctx.json {
        let mut out = serde_json::to_value(&model)?;
        out["onnx"] = serde_json::to_value(&onnx)?;
        println!("{}", serde_json::to_string_pretty(&out)?);
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
        if let Some(onnx) = &onnx {
            println!("{}", onnx_line(onnx));
        }
    }
    registry.db().close().await;
    Ok(())
}
