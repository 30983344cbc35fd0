//! `sightline eval-coco`.

use crate::ctx::Ctx;

/// Arguments of `sightline eval-coco`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline eval-coco` is not implemented yet")
}
