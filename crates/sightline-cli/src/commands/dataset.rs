//! `sightline dataset`: ingest, version, list, show, diff, export, checkout and stats.
//!
//! Versions live in `<home>/projects/<project>/datasets/` (a DVC 3 object store plus version
//! records) and are recorded in the metadata database; labels come from the project.

use std::path::PathBuf;

use anyhow::Context;
use sightline_datasets::version::{Repo, VersionMeta};
use sightline_datasets::{Format, source};
use sightline_workflows::ingest::{IngestOptions, Ingested};

use crate::ctx::Ctx;

/// Arguments of `sightline dataset`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Import a folder, archive (.zip/.tar/.tar.gz) or http(s) URL as a new version.
    #[command(visible_alias = "version")]
    Ingest(IngestArgs),
    /// List the versions of a project.
    List(ProjectArg),
    /// Show one version (id, prefix or `latest`).
    Show(IdArgs),
    /// Statistics of a version: images, instances per label, mask areas, class balance.
    Stats(IdArgs),
    /// Differences between two versions.
    Diff(DiffArgs),
    /// Write a version as COCO, VOC, YOLO or folders, or as a `.dvc` file + objects (`--dvc`).
    Export(ExportArgs),
    /// Materialize a version's tree (images/ + annotations.json) in a folder.
    Checkout(CheckoutArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ProjectArg {
    /// Project name.
    #[arg(long, short)]
    pub(crate) project: String,
}

#[derive(Debug, clap::Args)]
struct IdArgs {
    /// Version id, unique prefix, or `latest`.
    #[arg(default_value = "latest")]
    id: String,
    #[command(flatten)]
    project: ProjectArg,
}

#[derive(Debug, clap::Args)]
struct DiffArgs {
    /// Old version.
    old: String,
    /// New version.
    new: String,
    #[command(flatten)]
    project: ProjectArg,
}

#[derive(Debug, clap::Args)]
struct CheckoutArgs {
    /// Version id, prefix or `latest`.
    id: String,
    /// Destination folder (must not exist).
    #[arg(long, short)]
    out: PathBuf,
    #[command(flatten)]
    project: ProjectArg,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Version id, prefix or `latest`.
    id: String,
    /// Destination folder (for `--dvc`: the DVC repository folder).
    #[arg(long, short)]
    out: PathBuf,
    /// coco, voc, yolo or folder.
    #[arg(long, value_parser = parse_format, required_unless_present = "dvc")]
    format: Option<Format>,
    /// Write `<out>/<name>.dvc` and copy the objects to `--remote` (default `<out>/.dvc/cache`).
    #[arg(long)]
    dvc: bool,
    /// Name of the DVC output (folder created by `dvc checkout`/`dvc pull`).
    #[arg(long, default_value = "dataset")]
    name: String,
    /// DVC object store to fill (a local remote folder or a DVC cache).
    #[arg(long)]
    remote: Option<PathBuf>,
    #[command(flatten)]
    project: ProjectArg,
}

#[derive(Debug, clap::Args)]
pub(crate) struct IngestArgs {
    /// Folder, .zip/.tar/.tar.gz archive, or http(s) URL.
    #[arg(required_unless_present = "from_corrections")]
    src: Option<String>,
    /// Build the version from the project's operator corrections instead of a source: the
    /// latest version plus the corrected production images (`dataset version --from-corrections`).
    #[arg(long, conflicts_with = "src")]
    pub(crate) from_corrections: bool,
    #[command(flatten)]
    pub(crate) project: ProjectArg,
    /// Input format (default: auto-detect).
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Rename a category before matching project labels: `--map old=new` (repeatable).
    #[arg(long = "map")]
    maps: Vec<String>,
    /// Drop objects and image labels that are not project labels (reported).
    #[arg(long)]
    drop_unknown: bool,
    /// Treat warnings as errors.
    #[arg(long)]
    pub(crate) strict: bool,
    /// Version message.
    #[arg(long, short, default_value = "")]
    pub(crate) message: String,
    /// Author (default: $USER).
    #[arg(long, default_value = "")]
    pub(crate) author: String,
    /// Expected SHA-256 of a downloaded or local archive.
    #[arg(long)]
    sha256: Option<String>,
    /// Ratios for images without a split: train,val[,test].
    #[arg(long, default_value = "0.8,0.2,0")]
    split: String,
    /// Parent version (default: the project's latest).
    #[arg(long)]
    pub(crate) parent: Option<String>,
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("unknown format {s:?}: coco, voc, yolo or folder"))
}

fn repo(ctx: &Ctx, project: &str) -> anyhow::Result<Repo> {
    sightline_datasets::dvc::safe_relpath(project)
        .with_context(|| format!("invalid project name {project:?}"))?;
    Ok(Repo::open(
        ctx.home.join("projects").join(project).join("datasets"),
    ))
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    match args.command {
        Cmd::Ingest(a) if a.from_corrections => {
            crate::commands::corrections::version_from_corrections(&a, ctx).await
        }
        Cmd::Ingest(a) => ingest(a, ctx).await,
        Cmd::List(p) => {
            let db = ctx.db().await?;
            let rows = sightline_db::datasets::list(&db, &p.project).await?;
            if ctx.json {
                return ctx.print_json(&rows);
            }
            println!(
                "{:<12} {:<12} {:>7} {:>9} {:<20} MESSAGE",
                "ID", "PARENT", "IMAGES", "INSTANCES", "CREATED"
            );
            for r in rows {
                println!(
                    "{:<12} {:<12} {:>7} {:>9} {:<20} {}",
                    &r.id[..12.min(r.id.len())],
                    r.parent_id
                        .as_deref()
                        .map(|p| &p[..12.min(p.len())])
                        .unwrap_or("-"),
                    r.images,
                    r.instances,
                    r.created_at.format("%Y-%m-%d %H:%M:%S"),
                    r.message
                );
            }
            Ok(())
        }
        Cmd::Show(a) => {
            let v = repo(ctx, &a.project.project)?.get(&a.id)?;
            if ctx.json {
                return ctx.print_json(&v);
            }
            print_version(&v);
            Ok(())
        }
        Cmd::Stats(a) => {
            let r = repo(ctx, &a.project.project)?;
            let v = r.get(&a.id)?;
            let s = sightline_datasets::stats::stats(&r.dataset(&v.id)?);
            if ctx.json {
                return ctx.print_json(&s);
            }
            println!(
                "version {}: {} images ({} without instances), {} instances",
                &v.id[..12],
                s.images,
                s.images_without_instances,
                s.instances
            );
            for (split, n) in &s.images_per_split {
                println!("  split {split:<6} {n:>7} images");
            }
            for (label, n) in &s.instances_per_label {
                let a = &s.area_per_label[label];
                println!(
                    "  {label:<12} {n:>7} instances  area px: min {:.0} median {:.0} mean {:.1} max {:.0} (small {}, medium {}, large {})",
                    a.min, a.median, a.mean, a.max, a.small, a.medium, a.large
                );
            }
            for (label, share) in &s.class_balance {
                println!(
                    "  image label {label:<12} {:>7} ({:.1}%)",
                    s.image_labels[label],
                    share * 100.0
                );
            }
            Ok(())
        }
        Cmd::Diff(a) => {
            let r = repo(ctx, &a.project.project)?;
            let (old, new) = (r.get(&a.old)?, r.get(&a.new)?);
            let d = r.diff(&old.id, &new.id)?;
            if ctx.json {
                return ctx.print_json(&d);
            }
            println!("{} → {}", &old.id[..12], &new.id[..12]);
            println!(
                "  images added {}, removed {}, content changed {}, annotations changed {}",
                d.added.len(),
                d.removed.len(),
                d.changed_content.len(),
                d.changed_annotations.len()
            );
            for f in d.added.iter().take(20) {
                println!("  + {f}");
            }
            for f in d.removed.iter().take(20) {
                println!("  - {f}");
            }
            for (label, (add, del)) in &d.instances_per_label {
                println!("  {label:<12} instances +{add} -{del}");
            }
            for (label, (add, del)) in &d.image_labels {
                println!("  {label:<12} image labels +{add} -{del}");
            }
            Ok(())
        }
        Cmd::Export(a) => {
            let r = repo(ctx, &a.project.project)?;
            let v = r.get(&a.id)?;
            if a.dvc {
                let objects = a
                    .remote
                    .clone()
                    .unwrap_or_else(|| a.out.join(".dvc").join("cache"));
                let path = r.export_dvc(&v.id, &a.out, &a.name, &objects)?;
                if ctx.json {
                    return ctx.print_json(&serde_json::json!({"dvc_file": path, "objects": objects, "md5": v.dir_oid()}));
                }
                println!(
                    "wrote {} ({} files) and objects in {}",
                    path.display(),
                    v.nfiles,
                    objects.display()
                );
                println!(
                    "the project store {} is itself usable as a DVC remote",
                    r.store().root().display()
                );
                return Ok(());
            }
            let format = a.format.context("--format is required without --dvc")?;
            // Class ids and names follow the project's current label set; a version that uses
            // a label the project no longer has is refused before anything is written.
            let db = ctx.db().await?;
            let labels = sightline_db::projects::labels(&db, &a.project.project)
                .await
                .with_context(|| format!("labels of project {:?}", a.project.project))?;
            let notes = r.export(&v.id, format, &a.out, Some(&labels))?;
            if ctx.json {
                return ctx.print_json(
                    &serde_json::json!({"out": a.out, "format": format, "notes": notes}),
                );
            }
            println!(
                "exported {} as {format} to {}",
                &v.id[..12],
                a.out.display()
            );
            for n in notes {
                println!("  note: {n}");
            }
            Ok(())
        }
        Cmd::Checkout(a) => {
            let r = repo(ctx, &a.project.project)?;
            let v = r.get(&a.id)?;
            r.checkout(&v.id, &a.out)?;
            if ctx.json {
                return ctx.print_json(&serde_json::json!({"id": v.id, "out": a.out}));
            }
            println!(
                "checked out {} ({} files) to {}",
                &v.id[..12],
                v.nfiles,
                a.out.display()
            );
            Ok(())
        }
    }
}

fn print_version(v: &VersionMeta) {
    println!("id        {}", v.id);
    println!("parent    {}", v.parent.as_deref().unwrap_or("-"));
    println!("message   {}", v.message);
    println!("author    {}", v.author);
    println!("created   {}", v.created_at);
    println!(
        "source    {} ({})",
        v.source,
        v.format.map(|f| f.to_string()).unwrap_or_default()
    );
    println!("files     {} ({} bytes)", v.nfiles, v.size);
    println!(
        "images    {} ({} instances)",
        v.stats.images, v.stats.instances
    );
    for n in &v.notes {
        println!("note      {n}");
    }
}

async fn ingest(a: IngestArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let Some(src) = a.src.clone() else {
        anyhow::bail!("give a folder, archive or URL to ingest (or --from-corrections)");
    };
    let project = a.project.project.clone();
    let db = ctx.db().await?;
    let bar = indicatif::ProgressBar::hidden();
    if source::is_url(&src) && !ctx.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    }
    let progress = {
        let bar = bar.clone();
        Box::new(move |done, total: Option<u64>| {
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(done);
        })
    };
    let done = sightline_workflows::ingest::ingest(
        &db,
        &ctx.home,
        &project,
        IngestOptions {
            src,
            source_label: None,
            format: a.format,
            maps: a.maps.clone(),
            drop_unknown: a.drop_unknown,
            strict: a.strict,
            message: a.message.clone(),
            author: a.author.clone(),
            sha256: a.sha256.clone(),
            split: a.split.clone(),
            parent: a.parent.clone(),
        },
        progress,
    )
    .await;
    bar.finish_and_clear();
    let Ingested {
        version: v,
        created,
        format,
        notes,
    } = done?;
    if ctx.json {
        return ctx
            .print_json(&serde_json::json!({"created": created, "version": v, "notes": notes}));
    }
    if !created {
        println!("unchanged: identical to existing version {}", v.id);
    } else {
        println!(
            "created dataset version {} ({format}, {} images, {} instances)",
            v.id, v.stats.images, v.stats.instances
        );
    }
    for n in &notes {
        eprintln!("  {n}");
    }
    Ok(())
}
