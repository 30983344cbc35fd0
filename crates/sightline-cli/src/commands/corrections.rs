//! `sightline dataset version --from-corrections`: a new dataset version from operator corrections.

use anyhow::Context;

use crate::commands::dataset::IngestArgs;
use crate::ctx::Ctx;

/// Create a dataset version whose parent is the project's latest, adding the corrected
/// production images (fetched from the artifact store by hash) with their corrected annotations
/// and recording which requests they came from (see `sightline_workflows::corrections`).
pub async fn version_from_corrections(a: &IngestArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let project = &a.project.project;
    if a.parent.is_some() {
        anyhow::bail!(
            "--parent cannot be used with --from-corrections: the parent is the project's latest version"
        );
    }
    let db = ctx.db().await?;
    let store = ctx.store()?;
    let author = if a.author.is_empty() {
        std::env::var("USER").unwrap_or_else(|_| "cli".into())
    } else {
        a.author.clone()
    };
    let out = sightline_workflows::corrections::version_from_corrections(
        &db, &store, &ctx.home, project, &a.message, &author,
    )
    .await
    .with_context(|| format!("project {project:?}: dataset version from corrections"))?;
    if ctx.json {
        return ctx.print_json(&out);
    }
    if out.created {
        println!(
            "created dataset version {} (parent {}): {} corrected image(s) added, {} rejected, from {} request(s)",
            out.version.id,
            out.parent,
            out.images_added,
            out.rejected,
            out.request_ids.len()
        );
    } else {
        println!(
            "no new images ({} rejected): corrections recorded against version {}",
            out.rejected, out.version.id
        );
    }
    for r in &out.request_ids {
        println!("request   {r}");
    }
    Ok(())
}
