//! `sightline model`.

use crate::ctx::Ctx;

/// Arguments of `sightline model`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline model` is not implemented yet")
}
