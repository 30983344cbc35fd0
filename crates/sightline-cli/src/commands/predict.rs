//! `sightline predict`.

use crate::ctx::Ctx;

/// Arguments of `sightline predict`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline predict` is not implemented yet")
}
