//! `sightline project`.

use crate::ctx::Ctx;

/// Arguments of `sightline project`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline project` is not implemented yet")
}
