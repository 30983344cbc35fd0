//! `sightline dataset`.

use crate::ctx::Ctx;

/// Arguments of `sightline dataset`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline dataset` is not implemented yet")
}
