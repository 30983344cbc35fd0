//! `sightline register`.

use crate::ctx::Ctx;

/// Arguments of `sightline register`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the command.
pub async fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`sightline register` is not implemented yet")
}
