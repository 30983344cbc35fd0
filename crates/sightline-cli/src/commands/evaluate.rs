//! `sightline evaluate`.

use crate::ctx::Ctx;

/// Arguments of `sightline evaluate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline evaluate` is not implemented yet")
}
