//! Corrections → dataset version: turn operator corrections of production inspections into a new dataset version.
//!
//! [`version_from_corrections`] takes the newest not-yet-used correction of each corrected
//! request of a project, fetches each request's image from the artifact store by content hash
//! ([`image_key`]), builds its annotation (rejected → left out; accept → the model's logged
//! predictions; relabel → the corrected image label and/or instances), and creates a dataset
//! version whose parent is the project's latest, containing the parent's images plus the
//! corrected ones as `corrections/<request id>.<ext>`. The version's notes name every request it
//! came from, the version is recorded in the database, and the corrections are stamped with its
//! id so each is used once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use sightline_datasets::version::{CreateOptions, Repo, VersionMeta};
use sightline_datasets::{ImageRecord, Imported, Instance, Segmentation};
use sightline_db::Db;
use sightline_db::corrections::{Action, CorrectedInstance, Correction};
use sightline_store::{ArtifactStore, Key};

/// Folder (inside the version's image tree) of images that came from corrections.
pub const CORRECTIONS_DIR: &str = "corrections";

/// Errors of building a dataset version from corrections.
#[derive(Debug, thiserror::Error)]
pub enum CorrectionsError {
    /// Nothing to build from.
    #[error(
        "project `{0}` has no unused corrections: correct some inspections first (review queue or POST /history/<request id>/corrections)"
    )]
    NoCorrections(String),
    /// The project has no dataset version to build upon.
    #[error(
        "project `{0}` has no dataset version yet: ingest one first (`sightline dataset ingest`); corrections are added on top of the latest version"
    )]
    NoParent(String),
    /// A corrected request is not in the request log any more.
    #[error("request `{0}` is corrected but not in the request log")]
    MissingRequest(String),
    /// The stored image of a request is missing.
    #[error("the image of request `{request_id}` (sha256 {sha256}) is not in the artifact store")]
    MissingImage {
        /// Request.
        request_id: String,
        /// Content hash.
        sha256: String,
    },
    /// A correction names a label the project does not have.
    #[error(
        "the correction of request `{request_id}` uses label `{label}`, which is not a label of the project"
    )]
    UnknownLabel {
        /// Request.
        request_id: String,
        /// Label.
        label: String,
    },
    /// A value that cannot be used (project name, request id, hash).
    #[error("{0}")]
    Invalid(String),
    /// Database error.
    #[error(transparent)]
    Db(#[from] sightline_db::DbError),
    /// Dataset error.
    #[error(transparent)]
    Dataset(#[from] sightline_datasets::DatasetError),
    /// Artifact store error.
    #[error(transparent)]
    Store(#[from] sightline_store::StoreError),
    /// File-system error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A background task failed.
    #[error("background task failed: {0}")]
    Task(String),
}

/// Result of [`version_from_corrections`].
#[derive(Debug, Clone, Serialize)]
pub struct FromCorrections {
    /// The version (the parent itself when nothing new was added: only rejections).
    pub version: VersionMeta,
    /// Whether a new version was created.
    pub created: bool,
    /// Parent version id.
    pub parent: String,
    /// Corrected images added (or replaced).
    pub images_added: usize,
    /// Requests whose corrections were used (rejections included).
    pub request_ids: Vec<String>,
    /// Corrections used (the newest per request).
    pub corrections_used: usize,
    /// Of which rejections (images left out).
    pub rejected: usize,
}

/// Store key of an inspected image: `images/sha256/<2 hex>/<62 hex>.<ext>` (what the server's
/// request logger writes). Only a 64-hex hash and `png`/`jpg` are accepted, so no request value
/// can name another path.
pub fn image_key(sha256: &str, ext: &str) -> Result<Key, CorrectionsError> {
    if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CorrectionsError::Invalid(format!(
            "`{sha256}` is not a SHA-256 hex digest"
        )));
    }
    if !matches!(ext, "png" | "jpg") {
        return Err(CorrectionsError::Invalid(format!(
            "unsupported image extension `{ext}`"
        )));
    }
    let sha = sha256.to_ascii_lowercase();
    Key::new(format!("images/sha256/{}/{}.{ext}", &sha[..2], &sha[2..]))
        .map_err(|e| CorrectionsError::Invalid(e.to_string()))
}

/// The stored image with content hash `sha256` and its extension, if present.
pub async fn fetch_image(
    store: &ArtifactStore,
    sha256: &str,
) -> Result<Option<(Vec<u8>, &'static str)>, CorrectionsError> {
    for ext in ["png", "jpg"] {
        let key = image_key(sha256, ext)?;
        if store.exists(&key).await? {
            return Ok(Some((store.get(&key).await?, ext)));
        }
    }
    Ok(None)
}

/// The data area of a project's dataset versions: `<home>/projects/<project>/datasets`.
pub fn dataset_repo(home: &Path, project: &str) -> Result<Repo, CorrectionsError> {
    sightline_datasets::dvc::safe_relpath(project)
        .map_err(|_| CorrectionsError::Invalid(format!("invalid project name `{project}`")))?;
    if project.contains('/') {
        return Err(CorrectionsError::Invalid(format!(
            "invalid project name `{project}`"
        )));
    }
    Ok(Repo::open(
        home.join("projects").join(project).join("datasets"),
    ))
}

/// Instances of the model's logged predictions (those that passed their threshold).
pub fn logged_instances(response: &Value) -> Vec<Instance> {
    let mut out = Vec::new();
    for d in response["detections"].as_array().into_iter().flatten() {
        if d["above_threshold"].as_bool() == Some(false) {
            continue;
        }
        let Some(label) = d["label"].as_str() else {
            continue;
        };
        let mut inst = Instance::new(label);
        let polygons: Vec<Vec<f64>> =
            serde_json::from_value(d["polygons"].clone()).unwrap_or_default();
        let polygons: Vec<Vec<f64>> = polygons.into_iter().filter(|p| p.len() >= 6).collect();
        if !polygons.is_empty() {
            inst.segmentation = Some(Segmentation::Polygons { polygons });
        } else if let (Some(size), Some(counts)) = (
            serde_json::from_value::<[u32; 2]>(d["mask_rle"]["size"].clone()).ok(),
            serde_json::from_value::<Vec<u32>>(d["mask_rle"]["counts"].clone()).ok(),
        ) {
            inst.segmentation = Some(Segmentation::Rle {
                height: size[0],
                width: size[1],
                counts,
            });
        }
        if let Ok([x1, y1, x2, y2]) = serde_json::from_value::<[f64; 4]>(d["box_xyxy"].clone()) {
            inst.bbox = Some([x1, y1, x2 - x1, y2 - y1]);
        }
        out.push(inst);
    }
    out
}

/// A corrected instance in the dataset model (box `[x, y, w, h]`, from the polygons when no box
/// was given).
pub fn corrected_instance(c: &CorrectedInstance) -> Instance {
    let mut inst = Instance::new(c.label.clone());
    if !c.polygons.is_empty() {
        inst.segmentation = Some(Segmentation::Polygons {
            polygons: c.polygons.clone(),
        });
    }
    inst.bbox = match c.box_xyxy {
        Some([x1, y1, x2, y2]) => Some([x1, y1, x2 - x1, y2 - y1]),
        None => sightline_datasets::model::polygons_bbox(&c.polygons),
    };
    inst
}

/// The annotation of one corrected request; `None` for a rejection.
pub fn annotation_of(
    correction: &Correction,
    file: &str,
    width: u32,
    height: u32,
    response: &Value,
) -> Option<ImageRecord> {
    let logged_label = response["classification"]["label"]
        .as_str()
        .map(str::to_string);
    let mut rec = ImageRecord::new(file, width, height);
    match correction.action {
        Action::Reject => return None,
        Action::Accept => {
            rec.label = logged_label;
            rec.instances = logged_instances(response);
        }
        Action::Relabel => {
            rec.label = correction.image_label.clone().or(logged_label);
            rec.instances = match &correction.instances {
                Some(list) => list.iter().map(corrected_instance).collect(),
                None => logged_instances(response),
            };
        }
    }
    Some(rec)
}

fn safe_request_id(id: &str) -> Result<&str, CorrectionsError> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(CorrectionsError::Invalid(format!(
            "request id `{id}` cannot name a file"
        )));
    }
    Ok(id)
}

/// Create a dataset version of `project` from its unused corrections (see the crate docs).
/// `home` is the Sightline home (data areas under `<home>/projects/<p>/datasets`); `store` is the
/// artifact store holding the logged images.
pub async fn version_from_corrections(
    db: &Db,
    store: &ArtifactStore,
    home: &Path,
    project: &str,
    message: &str,
    author: &str,
) -> Result<FromCorrections, CorrectionsError> {
    let repo = dataset_repo(home, project)?;
    let labels = sightline_db::projects::labels(db, project).await?;
    let corrections = sightline_db::corrections::unused_latest(db, project).await?;
    if corrections.is_empty() {
        return Err(CorrectionsError::NoCorrections(project.to_string()));
    }
    let parent = {
        let r = repo.clone();
        blocking(move || Ok(r.latest()?)).await?
    }
    .ok_or_else(|| CorrectionsError::NoParent(project.to_string()))?;

    let work = repo.work_dir();
    fs_err::create_dir_all(&work)?;
    let staging = tempfile::Builder::new()
        .prefix("corrections-")
        .tempdir_in(&work)?;
    let mut records = Vec::new();
    let mut sources: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut request_ids = Vec::new();
    let mut rejected = 0;
    let mut notes = Vec::new();
    for c in &corrections {
        let rid = safe_request_id(&c.request_id)?.to_string();
        request_ids.push(rid.clone());
        notes.push(format!(
            "request {rid}: {} by {} at {}",
            c.action.as_str(),
            c.author,
            c.created_at.to_rfc3339()
        ));
        if c.action == Action::Reject {
            rejected += 1;
            continue;
        }
        let row = sightline_db::inference_log::get(db, &rid)
            .await?
            .ok_or_else(|| CorrectionsError::MissingRequest(rid.clone()))?;
        let (bytes, ext) = fetch_image(store, &row.image_sha256)
            .await?
            .ok_or_else(|| CorrectionsError::MissingImage {
                request_id: rid.clone(),
                sha256: row.image_sha256.clone(),
            })?;
        let file = format!("{CORRECTIONS_DIR}/{rid}.{ext}");
        let local = staging.path().join(format!("{rid}.{ext}"));
        fs_err::write(&local, &bytes)?;
        let (w, h) = (
            u32::try_from(row.width).unwrap_or(0),
            u32::try_from(row.height).unwrap_or(0),
        );
        let Some(rec) = annotation_of(c, &file, w, h, &row.response.0) else {
            continue;
        };
        for l in rec
            .label
            .iter()
            .chain(rec.instances.iter().map(|i| &i.label))
        {
            if !labels.contains(l) {
                return Err(CorrectionsError::UnknownLabel {
                    request_id: rid.clone(),
                    label: l.clone(),
                });
            }
        }
        sources.insert(file, local);
        records.push(rec);
    }
    let images_added = records.len();
    let message = if message.is_empty() {
        format!(
            "{} correction(s) of production inspections ({images_added} image(s) added, {rejected} rejected)",
            corrections.len()
        )
    } else {
        message.to_string()
    };
    let author = author.to_string();
    let (version, created) = {
        let repo = repo.clone();
        let parent_id = parent.id.clone();
        let notes = notes.clone();
        blocking(move || {
            let mut dataset = repo.dataset(&parent_id)?;
            let mut all_sources = repo.image_paths(&parent_id)?;
            let new_files: Vec<String> = records.iter().map(|r| r.file.clone()).collect();
            dataset.images.retain(|i| !new_files.contains(&i.file));
            dataset.images.extend(records);
            all_sources.extend(sources);
            let imported = Imported {
                dataset,
                sources: all_sources,
                issues: Vec::new(),
                notes: Vec::new(),
            };
            Ok(repo.create(
                imported,
                CreateOptions {
                    parent: Some(parent_id),
                    message,
                    author,
                    source: "corrections".into(),
                    notes,
                    ..CreateOptions::default()
                },
            )?)
        })
        .await?
    };
    drop(staging);
    if created {
        let stats = serde_json::to_value(&version.stats)
            .map_err(|e| CorrectionsError::Invalid(format!("cannot encode stats: {e}")))?;
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sightline_db::datasets::insert(
            db,
            project,
            &sightline_db::datasets::NewDatasetVersion {
                id: &version.id,
                parent_id: version.parent.as_deref(),
                message: &version.message,
                author: &version.author,
                stats,
                source: &version.source,
                format: None,
                nfiles: to_i64(version.nfiles as u64),
                size_bytes: to_i64(version.size),
                images: to_i64(version.stats.images as u64),
                instances: to_i64(version.stats.instances as u64),
                notes: &version.notes,
            },
        )
        .await?;
    }
    sightline_db::corrections::mark_used(db, &request_ids, &version.id).await?;
    Ok(FromCorrections {
        version,
        created,
        parent: parent.id,
        images_added,
        request_ids,
        corrections_used: corrections.len(),
        rejected,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CorrectionsError> + Send + 'static,
) -> Result<T, CorrectionsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CorrectionsError::Task(e.to_string()))?
}
