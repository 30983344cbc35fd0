//! `sightline serve`.

use crate::ctx::Ctx;

/// Arguments of `sightline serve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline serve` is not implemented yet")
}
