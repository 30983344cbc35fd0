//! `sightline project`: create/update a project and its ordered label set from a manifest, list
//! projects, show one.

use std::path::PathBuf;

use anyhow::Context as _;
use sightline_core::Manifest;
use sightline_db::{ApplyOutcome, projects};

use crate::ctx::Ctx;

/// Arguments of `sightline project`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create or update the project described by a manifest, with its labels.
    ///
    /// New labels may be appended at the end. Removing, renaming or reordering labels of a project
    /// that has dataset or model versions is refused unless --allow-label-change.
    Apply {
        /// The manifest (models/configs/NAME.yaml).
        manifest: PathBuf,
        /// Accept label changes that alter existing class ids.
        #[arg(long)]
        allow_label_change: bool,
    },
    /// List projects.
    List,
    /// Show a project: labels (class ids), models, business rules, versions.
    Show {
        /// Project name.
        name: String,
    },
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    match args.command {
        Command::Apply {
            manifest,
            allow_label_change,
        } => apply(&manifest, allow_label_change, ctx).await,
        Command::List => list(ctx).await,
        Command::Show { name } => show(&name, ctx).await,
    }
}

async fn apply(path: &PathBuf, allow_label_change: bool, ctx: &Ctx) -> anyhow::Result<()> {
    let yaml = fs_err::read_to_string(path)?;
    let manifest = Manifest::parse(&yaml, &path.display().to_string())
        .with_context(|| format!("{} is not a valid manifest", path.display()))?;
    let db = ctx.db().await?;
    let report = projects::apply(&db, &manifest, &yaml, allow_label_change)
        .await
        .with_context(|| format!("applying {}", path.display()))?;
    db.close().await;
    if ctx.json {
        return ctx.print_json(&report);
    }
    let verb = match report.outcome {
        ApplyOutcome::Created => "created",
        ApplyOutcome::Updated => "updated",
        ApplyOutcome::Unchanged => "unchanged",
    };
    println!(
        "project {} {verb} ({} labels)",
        report.project.name,
        report.project.labels.len()
    );
    for change in &report.label_changes {
        println!("  {change}");
    }
    Ok(())
}

async fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let db = ctx.db().await?;
    let rows = projects::list(&db).await?;
    db.close().await;
    if ctx.json {
        return ctx.print_json(&rows);
    }
    if rows.is_empty() {
        println!("no projects (create one with `sightline project apply <manifest>`)");
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.labels.to_string(),
                p.dataset_versions.to_string(),
                p.model_versions.to_string(),
                p.updated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            ]
        })
        .collect();
    print_table(
        &["PROJECT", "LABELS", "DATASETS", "MODELS", "UPDATED"],
        &table,
    );
    Ok(())
}

async fn show(name: &str, ctx: &Ctx) -> anyhow::Result<()> {
    let db = ctx.db().await?;
    let p = projects::get(&db, name).await?;
    db.close().await;
    if ctx.json {
        return ctx.print_json(&p);
    }
    let m = &p.manifest;
    println!("project   {}", p.name);
    println!("created   {}", p.created_at.format("%Y-%m-%d %H:%M:%S UTC"));
    println!("updated   {}", p.updated_at.format("%Y-%m-%d %H:%M:%S UTC"));
    println!();
    let det_t = m.detector.as_ref().map(|d| &d.thresholds);
    let cls_t = m.classifier.as_ref().map(|c| &c.thresholds);
    let rows: Vec<Vec<String>> = p
        .labels
        .iter()
        .map(|l| {
            vec![
                l.position.to_string(),
                l.name.clone(),
                det_t.map_or("-".into(), |t| format!("{:.2}", t.for_label(&l.name))),
                cls_t.map_or("-".into(), |t| format!("{:.2}", t.for_label(&l.name))),
            ]
        })
        .collect();
    print_table(
        &["CLASS", "LABEL", "DETECTOR CONF", "CLASSIFIER CONF"],
        &rows,
    );
    println!();
    for (role, model) in [("detector", &m.detector), ("classifier", &m.classifier)] {
        if let Some(model) = model {
            let h = &model.hyperparameters;
            println!(
                "{role:<10} {} (weights: {}; epochs {}, batch {}, imgsz {})",
                model.name, model.weights, h.epochs, h.batch_size, h.imgsz
            );
        }
    }
    let rules = &m.business_rules;
    println!(
        "rules      max_ng_ratio {}, allow_unknown {}",
        rules
            .max_ng_ratio
            .map_or("none".to_string(), |r| r.to_string()),
        rules.allow_unknown
    );
    println!(
        "datasets   {}",
        if p.dataset_versions.is_empty() {
            "none".to_string()
        } else {
            p.dataset_versions.join(", ")
        }
    );
    println!(
        "models     {}",
        if p.model_versions.is_empty() {
            "none".to_string()
        } else {
            p.model_versions.join(", ")
        }
    );
    Ok(())
}

/// Print left-aligned columns.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
