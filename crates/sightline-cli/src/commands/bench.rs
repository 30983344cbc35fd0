//! `sightline bench`.

use crate::ctx::Ctx;

/// Arguments of `sightline bench`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline bench` is not implemented yet")
}
