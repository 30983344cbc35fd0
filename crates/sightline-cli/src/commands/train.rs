//! `sightline train detector|classifier`.

use crate::ctx::Ctx;

/// Arguments of `sightline train`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline train` is not implemented yet")
}
