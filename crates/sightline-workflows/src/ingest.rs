//! Ingest a data set (folder, archive or URL) as a new dataset version of a project and record
//! it in the database: what `sightline dataset ingest` and `POST /projects/{p}/datasets` share.
//!
//! Steps, in order, each refusing before anything is written: the project's labels
//! (unknown project → [`IngestError::Project`]), the options (`--map`, `--split`), the source
//! (unpacked into a temporary folder under the project's data area), the reader of the format
//! (given or detected), validation ([`sightline_datasets::validate::check`]), label mapping
//! ([`sightline_datasets::labels::apply`]); then the content-addressed version is created
//! (parent: the given one, else the project's latest) and recorded in `dataset_versions`. If
//! recording fails, the new version's record is removed again so the data area and the database
//! agree (the stored objects are content-addressed and harmless).

use std::path::Path;

use serde::Serialize;
use sightline_datasets::labels::{self, LabelPolicy};
use sightline_datasets::source::{self, Progress};
use sightline_datasets::split::Ratios;
use sightline_datasets::version::{CreateOptions, Repo, VersionMeta};
use sightline_datasets::{DatasetError, Format, validate};
use sightline_db::{Db, DbError};

/// What to ingest and how.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Folder, `.zip`/`.tar`/`.tar.gz` archive or http(s) URL (a path of this machine).
    pub src: String,
    /// What to record as the version's source (default: `src`).
    pub source_label: Option<String>,
    /// Input format (`None`: detect).
    pub format: Option<Format>,
    /// `old=new` category renames.
    pub maps: Vec<String>,
    /// Drop objects and image labels that are not project labels (reported in the notes).
    pub drop_unknown: bool,
    /// Treat warnings as errors.
    pub strict: bool,
    /// Version message.
    pub message: String,
    /// Author (empty: `$USER`).
    pub author: String,
    /// Expected SHA-256 of a downloaded or local archive.
    pub sha256: Option<String>,
    /// Ratios for images without a split: `train,val[,test]`.
    pub split: String,
    /// Parent version (default: the project's latest).
    pub parent: Option<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            src: String::new(),
            source_label: None,
            format: None,
            maps: Vec::new(),
            drop_unknown: false,
            strict: false,
            message: String::new(),
            author: String::new(),
            sha256: None,
            split: "0.8,0.2,0".into(),
            parent: None,
        }
    }
}

/// The result of [`ingest`].
#[derive(Debug, Clone, Serialize)]
pub struct Ingested {
    /// The version (an existing one when the content was identical).
    pub version: VersionMeta,
    /// Whether a new version was created.
    pub created: bool,
    /// The format read.
    pub format: Format,
    /// Conversion notes, warnings, dropped and mapped labels.
    pub notes: Vec<String>,
}

/// Why an ingest failed. Nothing is written in any case.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The project does not exist (or its labels could not be read).
    #[error("project {0:?} (create it with `sightline project apply`)")]
    Project(String, #[source] DbError),
    /// A bad option (`--map`, `--split`, project name).
    #[error("{0}")]
    Options(String),
    /// The source could not be prepared (missing, not an archive, corrupt, checksum).
    #[error("source {0}")]
    Source(String, #[source] DatasetError),
    /// The format could not be detected or the files could not be read.
    #[error("reading {0}")]
    Read(String, #[source] DatasetError),
    /// Validation failed (every error, and every warning under `strict`).
    #[error("validation failed; nothing was written")]
    Validation(#[source] DatasetError),
    /// Labels that are not project labels (named with their files).
    #[error("label mapping failed; nothing was written")]
    Labels(#[source] DatasetError),
    /// Writing the version failed.
    #[error("cannot write the dataset version")]
    Store(#[source] DatasetError),
    /// Recording the version failed (its record was removed again).
    #[error("cannot record the dataset version")]
    Db(#[source] DbError),
    /// The background task failed.
    #[error("background task failed: {0}")]
    Task(String),
}

impl IngestError {
    /// The message with every cause, `: `-separated (for API responses).
    pub fn full_message(&self) -> String {
        sightline_core::error_chain(self)
    }

    /// Whether the request (the data or the options) is at fault, not the server.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            IngestError::Store(_) | IngestError::Db(_) | IngestError::Task(_)
        )
    }
}

/// The synchronous part: prepare, read, validate, map labels, create the version. Returns the
/// version, whether it is new, the format and the notes. `progress` reports download bytes.
pub fn create_version(
    repo: &Repo,
    project_labels: &[String],
    opts: &IngestOptions,
    progress: Progress<'_>,
) -> Result<Ingested, IngestError> {
    let policy = LabelPolicy {
        map: LabelPolicy::parse_maps(&opts.maps)
            .map_err(|e| IngestError::Options(e.to_string()))?,
        drop_unknown: opts.drop_unknown,
    };
    let ratios = Ratios::parse(&opts.split).map_err(|e| IngestError::Options(e.to_string()))?;
    let src = &opts.src;
    let shown = opts.source_label.clone().unwrap_or_else(|| src.clone());
    let prepared = source::prepare(src, &repo.work_dir(), opts.sha256.as_deref(), progress)
        .map_err(|e| IngestError::Source(shown.clone(), e))?;
    let format = match opts.format {
        Some(f) => f,
        None => sightline_datasets::detect_format(&prepared.root)
            .map_err(|e| IngestError::Read(shown.clone(), e))?,
    };
    let mut imported = sightline_datasets::read(&prepared.root, format)
        .map_err(|e| IngestError::Read(format!("{shown} as {format}"), e))?;
    let warnings =
        validate::check(&mut imported, opts.strict, true).map_err(IngestError::Validation)?;
    let report = labels::apply(&mut imported.dataset, project_labels, &policy)
        .map_err(IngestError::Labels)?;
    let mut notes = imported.notes.clone();
    notes.extend(warnings.iter().map(|w| w.to_string()));
    for (l, n) in &report.dropped_instances {
        notes.push(format!("dropped {n} instance(s) of unknown label {l:?}"));
    }
    for (l, n) in &report.dropped_image_labels {
        notes.push(format!("dropped {n} image label(s) {l:?}"));
    }
    for (m, n) in &report.renamed {
        notes.push(format!("mapped {m} ({n}x)"));
    }
    let (version, created) = repo
        .create(
            imported,
            CreateOptions {
                parent: opts.parent.clone(),
                message: opts.message.clone(),
                author: opts.author.clone(),
                ratios,
                source: shown,
                format: Some(format),
                notes: notes.clone(),
            },
        )
        .map_err(|e| match e {
            // A `parent` that does not exist is the caller's mistake.
            DatasetError::NotFound(m) => IngestError::Options(m),
            other => IngestError::Store(other),
        })?;
    drop(prepared);
    Ok(Ingested {
        version,
        created,
        format,
        notes,
    })
}

/// Ingest `opts.src` into `project` (data area under `home`) and record the version in `db`
/// (see the module docs). The heavy work runs on a blocking thread; `progress` reports
/// download bytes.
pub async fn ingest(
    db: &Db,
    home: &Path,
    project: &str,
    opts: IngestOptions,
    mut progress: Box<dyn FnMut(u64, Option<u64>) + Send>,
) -> Result<Ingested, IngestError> {
    let repo =
        crate::dataset_repo(home, project).map_err(|e| IngestError::Options(e.to_string()))?;
    let project_labels = sightline_db::projects::labels(db, project)
        .await
        .map_err(|e| IngestError::Project(project.to_string(), e))?;
    let r = repo.clone();
    let done = tokio::task::spawn_blocking(move || {
        create_version(&r, &project_labels, &opts, &mut |d, t| progress(d, t))
    })
    .await
    .map_err(|e| IngestError::Task(e.to_string()))??;
    let v = &done.version;
    let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let stats = serde_json::to_value(&v.stats)
        .map_err(|e| IngestError::Db(DbError::Corrupt(format!("cannot encode stats: {e}"))))?;
    let recorded = sightline_db::datasets::insert(
        db,
        project,
        &sightline_db::datasets::NewDatasetVersion {
            id: &v.id,
            parent_id: v.parent.as_deref(),
            message: &v.message,
            author: &v.author,
            stats,
            source: &v.source,
            format: v.format.map(|f| f.as_str()),
            nfiles: to_i64(v.nfiles as u64),
            size_bytes: to_i64(v.size),
            images: to_i64(v.stats.images as u64),
            instances: to_i64(v.stats.instances as u64),
            notes: &v.notes,
        },
    )
    .await;
    if let Err(e) = recorded {
        if done.created {
            // The record is what makes a version exist in the data area (see
            // `sightline_datasets::version`): without a database row it must go.
            let record = repo.root().join("versions").join(format!("{}.json", v.id));
            let _ = fs_err::remove_file(record);
        }
        return Err(IngestError::Db(e));
    }
    Ok(done)
}
