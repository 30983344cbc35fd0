//! `sightline demo`: the demo project and its synthetic data.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::ctx::Ctx;

/// Arguments of `sightline demo`. Without a subcommand it sets up the demo project end to end,
/// reusing whatever a previous run already made.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<DemoCommand>,
    /// Project manifest of the demo project.
    #[arg(long, default_value = "models/configs/widget_line_a.yaml")]
    manifest: PathBuf,
    /// Training images of the synthetic demo data.
    #[arg(long, default_value_t = 48)]
    train: usize,
    /// Validation images of the synthetic demo data.
    #[arg(long, default_value_t = 16)]
    val: usize,
    /// Image side of the synthetic demo data.
    #[arg(long, default_value_t = 128)]
    size: u32,
}

#[derive(Debug, clap::Subcommand)]
enum DemoCommand {
    /// Generate a synthetic inspection data set (metal parts with scratches, dents and stains)
    /// as COCO instance segmentation plus classification image folders. Deterministic by seed.
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Output folder (must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Training images.
    #[arg(long, default_value_t = 240)]
    train: usize,
    /// Validation images.
    #[arg(long, default_value_t = 80)]
    val: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 256)]
    size: u32,
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    match args.command {
        Some(DemoCommand::Generate(g)) => generate(g, ctx),
        None => lifecycle(&args.manifest, args.train, args.val, args.size, ctx),
    }
}

/// The demo lifecycle, one real `sightline` command per step so that every step is exactly what
/// a user would run; each step is skipped when a previous run already did it.
fn lifecycle(
    manifest: &Path,
    train: usize,
    val: usize,
    size: u32,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let project = sightline_core::Manifest::load(manifest)
        .with_context(|| format!("reading the demo manifest {}", manifest.display()))?
        .project;
    let data = ctx.home.join("demo").join(format!("{project}-synthetic"));
    let steps = 4;

    step(
        1,
        steps,
        &format!("project {project} from {}", manifest.display()),
    );
    sub(ctx, &["project", "apply"], &[manifest.as_os_str()])?;

    step(
        2,
        steps,
        &format!("synthetic inspection data in {}", data.display()),
    );
    if data.join("annotations").exists() {
        println!("    reusing existing data");
    } else {
        let (t, v, s) = (train.to_string(), val.to_string(), size.to_string());
        sub(
            ctx,
            &[
                "demo", "generate", "--train", &t, "--val", &v, "--size", &s, "--out",
            ],
            &[data.as_os_str()],
        )?;
    }

    step(3, steps, "dataset version 1 (COCO ingestion)");
    let versions = sub_json(ctx, &["dataset", "list", "--project", &project])?;
    if versions.as_array().is_some_and(|v| !v.is_empty()) {
        println!("    reusing existing dataset version");
    } else {
        sub(
            ctx,
            &[
                "dataset",
                "ingest",
                "--project",
                &project,
                "--format",
                "coco",
                "-m",
                "demo: synthetic data v1",
            ],
            &[data.as_os_str()],
        )?;
    }

    step(4, steps, "summary");
    sub(ctx, &["project", "show", &project], &[])?;
    sub(ctx, &["dataset", "list", "--project", &project], &[])?;
    println!(
        "\nThe demo project is ready. Training, evaluation, registry and serving steps join this\n\
         command as those features land (see the README's status section)."
    );
    Ok(())
}

fn step(n: usize, of: usize, what: &str) {
    println!("[{n}/{of}] {what}");
}

/// Global flags forwarded to every step, so all steps use the same data dir and database.
fn global_flags(ctx: &Ctx) -> Vec<OsString> {
    vec![
        "--home".into(),
        ctx.home.clone().into_os_string(),
        "--database-url".into(),
        ctx.settings.database_url.clone().into(),
    ]
}

fn command(ctx: &Ctx, args: &[&str], paths: &[&OsStr]) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("cannot locate the sightline executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(global_flags(ctx)).args(args).args(paths);
    Ok(cmd)
}

fn sub(ctx: &Ctx, args: &[&str], paths: &[&OsStr]) -> anyhow::Result<()> {
    let status = command(ctx, args, paths)?
        .status()
        .with_context(|| format!("cannot run `sightline {}`", args.join(" ")))?;
    anyhow::ensure!(
        status.success(),
        "`sightline {}` failed ({status})",
        args.join(" ")
    );
    Ok(())
}

fn sub_json(ctx: &Ctx, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = command(ctx, args, &[])?
        .arg("--json")
        .output()
        .with_context(|| format!("cannot run `sightline {}`", args.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "`sightline {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("`sightline {}` printed invalid JSON", args.join(" ")))
}

fn generate(args: GenerateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let opts = sightline_synth::GenerateOptions {
        out: args.out.clone(),
        seed: args.seed,
        train: args.train,
        val: args.val,
        size: args.size,
    };
    let bar = if ctx.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new((args.train + args.val) as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("rendering");
    let summary = sightline_synth::generate(&opts, &|| bar.inc(1))
        .with_context(|| format!("generating synthetic data into {}", args.out.display()))?;
    bar.finish_and_clear();
    if ctx.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "wrote {} (seed {}, {}x{} px)",
            args.out.display(),
            args.seed,
            args.size,
            args.size
        );
        for (split, n) in &summary.images {
            println!("  {split:<6} {n} images");
        }
        let fmt = |m: &std::collections::BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  instances:    {}", fmt(&summary.instances));
        println!("  image labels: {}", fmt(&summary.image_labels));
    }
    Ok(())
}
