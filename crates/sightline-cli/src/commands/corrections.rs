//! `sightline dataset version --from-corrections`: a new dataset version from operator corrections.

use crate::commands::dataset::IngestArgs;
use crate::ctx::Ctx;

/// Create a dataset version whose parent is the project's latest, adding the corrected
/// production images with their corrected annotations.
pub async fn version_from_corrections(a: &IngestArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!(
        "project {:?}: `dataset version --from-corrections` is not implemented yet",
        a.project.project
    )
}
