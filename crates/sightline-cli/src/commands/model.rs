//! `sightline model`: list, show, alias and promote registered model versions.

use anyhow::Context;
use sightline_core::Task;
use sightline_registry::{Gates, ModelVersion, Registry};

use super::register::open_registry;
use crate::ctx::Ctx;

/// Arguments of `sightline model`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List model versions.
    List {
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
        /// Only this task (`segment` or `classify`).
        #[arg(long)]
        task: Option<Task>,
        /// Only models trained on this dataset version (lineage dataset → models).
        #[arg(long, value_name = "VERSION")]
        dataset: Option<String>,
    },
    /// Show a version (number or alias) with its lineage.
    Show {
        /// Project.
        #[arg(long)]
        project: String,
        /// Task (default: the project's only registered task).
        #[arg(long)]
        task: Option<Task>,
        /// Version number (`3` or `v3`) or alias.
        #[arg(value_name = "VERSION")]
        reference: String,
    },
    /// Manage aliases.
    Alias {
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// Move an alias (default `production`) to a version, if it passes its gates.
    Promote {
        /// Project.
        #[arg(long)]
        project: String,
        /// Task (default: the project's only registered task).
        #[arg(long)]
        task: Option<Task>,
        /// Version number or alias.
        #[arg(value_name = "VERSION")]
        reference: String,
        /// Alias to move.
        #[arg(long, default_value = "production")]
        to: String,
        /// Minimum mAP50-95 (mask, else box) of the latest evaluation (detectors).
        #[arg(long)]
        min_map: Option<f64>,
        /// Minimum top-1 accuracy of the latest evaluation (classifiers).
        #[arg(long)]
        min_accuracy: Option<f64>,
        /// Promote even if gates fail (recorded with the failures).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
enum AliasCommand {
    /// Point an alias at a version (no gates).
    Set {
        /// Project.
        #[arg(long)]
        project: String,
        /// Task (default: the project's only registered task).
        #[arg(long)]
        task: Option<Task>,
        /// Alias name.
        alias: String,
        /// Version number.
        #[arg(value_name = "VERSION")]
        reference: String,
    },
    /// List aliases.
    List {
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
        /// Only this task.
        #[arg(long)]
        task: Option<Task>,
    },
}

async fn pick_task(reg: &Registry, project: &str, task: Option<Task>) -> anyhow::Result<Task> {
    if let Some(t) = task {
        return Ok(t);
    }
    let mut tasks: Vec<Task> = reg
        .list(Some(project), None)
        .await?
        .into_iter()
        .map(|m| m.task)
        .collect();
    tasks.dedup();
    match tasks.as_slice() {
        [t] => Ok(*t),
        [] => anyhow::bail!("project `{project}` has no registered model"),
        _ => anyhow::bail!(
            "project `{project}` has detector and classifier versions: pass --task segment|classify"
        ),
    }
}

fn print_models(models: &[ModelVersion]) {
    println!(
        "{:<20} {:<9} {:>4} {:>5} {:<20} {:<14} {:<24}",
        "PROJECT", "TASK", "VER", "ID", "MODEL", "SHA256", "CREATED"
    );
    for m in models {
        println!(
            "{:<20} {:<9} {:>4} {:>5} {:<20} {:<14} {:<24}",
            m.project,
            m.task.as_str(),
            m.version,
            m.id,
            m.model_name,
            &m.checkpoint_sha256[..12.min(m.checkpoint_sha256.len())],
            m.created_at
        );
    }
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let reg = open_registry(ctx).await?;
    let result = run_with(args, ctx, &reg).await;
    reg.db().close().await;
    result
}

async fn run_with(args: Args, ctx: &Ctx, reg: &Registry) -> anyhow::Result<()> {
    match args.command {
        Command::List {
            project,
            task,
            dataset,
        } => {
            let models = match &dataset {
                Some(ds) => reg
                    .models_for_dataset(ds)
                    .await?
                    .into_iter()
                    .filter(|m| project.as_ref().is_none_or(|p| &m.project == p))
                    .filter(|m| task.is_none_or(|t| m.task == t))
                    .collect(),
                None => reg.list(project.as_deref(), task).await?,
            };
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&models)?);
            } else {
                print_models(&models);
            }
        }
        Command::Show {
            project,
            task,
            reference: version,
        } => {
            let task = pick_task(reg, &project, task).await?;
            let m = reg.resolve(&project, task, &version).await?;
            let lineage = reg.lineage(m.id).await?;
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&lineage)?);
            } else {
                print_models(std::slice::from_ref(&m));
                println!(
                    "experiment:      {}",
                    m.experiment_id.as_deref().unwrap_or("-")
                );
                println!(
                    "dataset version: {}",
                    m.dataset_version.as_deref().unwrap_or("-")
                );
                println!("aliases:         {}", lineage.aliases.join(", "));
                println!("bundle:          {}", m.bundle_dir);
                println!("labels:          {}", m.labels.join(", "));
                println!("note:            {}", m.note.as_deref().unwrap_or("-"));
                for e in &lineage.evaluations {
                    println!(
                        "evaluation {} ({}): {}",
                        e.id,
                        e.created_at,
                        serde_json::to_string(&e.summary)?
                    );
                }
            }
        }
        Command::Alias {
            command:
                AliasCommand::Set {
                    project,
                    task,
                    alias,
                    reference: version,
                },
        } => {
            let task = pick_task(reg, &project, task).await?;
            let m = reg.resolve(&project, task, &version).await?;
            let previous = reg.set_alias(m.id, &alias, "cli").await?;
            if ctx.json {
                println!(
                    "{}",
                    serde_json::json!({"alias": alias, "model": m, "previous_model_version_id": previous})
                );
            } else {
                println!("{alias} -> {}", m.display_name());
            }
        }
        Command::Alias {
            command: AliasCommand::List { project, task },
        } => {
            let aliases = reg.aliases(project.as_deref(), task).await?;
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&aliases)?);
            } else {
                println!(
                    "{:<20} {:<9} {:<16} {:>4} {:<24}",
                    "PROJECT", "TASK", "ALIAS", "VER", "UPDATED"
                );
                for a in aliases {
                    println!(
                        "{:<20} {:<9} {:<16} {:>4} {:<24}",
                        a.project,
                        a.task.as_str(),
                        a.alias,
                        a.version,
                        a.updated_at
                    );
                }
            }
        }
        Command::Promote {
            project,
            task,
            reference: version,
            to,
            min_map,
            min_accuracy,
            force,
        } => {
            let task = pick_task(reg, &project, task).await?;
            let m = reg.resolve(&project, task, &version).await?;
            let p = reg
                .promote(
                    m.id,
                    &to,
                    &Gates {
                        min_map,
                        min_accuracy,
                    },
                    force,
                    "cli",
                )
                .await
                .with_context(|| format!("cannot promote {}", m.display_name()))?;
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else if p.forced {
                println!(
                    "{to} -> {} (FORCED past: {})",
                    m.display_name(),
                    p.overridden.join("; ")
                );
            } else {
                println!("{to} -> {}", m.display_name());
            }
        }
    }
    Ok(())
}
