//! `sightline config`.

use crate::ctx::Ctx;

/// Arguments of `sightline config`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline config` is not implemented yet")
}
