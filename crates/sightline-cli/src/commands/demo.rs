//! `sightline demo`: the demo project and its synthetic data.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::ctx::Ctx;

/// Arguments of `sightline demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DemoCommand,
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
        DemoCommand::Generate(g) => generate(g, ctx),
    }
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
        println!("wrote {} (seed {}, {}x{} px)", args.out.display(), args.seed, args.size, args.size);
        for (split, n) in &summary.images {
            println!("  {split:<6} {n} images");
        }
        let fmt = |m: &std::collections::BTreeMap<String, usize>| {
            m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        };
        println!("  instances:    {}", fmt(&summary.instances));
        println!("  image labels: {}", fmt(&summary.image_labels));
    }
    Ok(())
}
