//! The registry workflow over the metadata database and the artifact store: register a
//! checkpoint as an immutable model version with its bundle, list/show, aliases, promotion with
//! gates, evaluations, lineage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use sightline_core::{Manifest, Task};
use sightline_db::registry as repo;
use sightline_db::{Db, DbError};

use sightline_store::ArtifactStore;

use crate::bundle::{
    BUNDLE_ONNX, Bundle, BundleManifest, BundleStore, ExtraFile, OnnxExport, Preprocessing,
    hash_file,
};
use crate::error::RegistryError;
use crate::gates::{self, Gates};
use crate::model::{Alias, AliasEvent, Evaluation, EvaluationSummary, Lineage, ModelVersion};

/// The alias that serving follows.
pub const PRODUCTION: &str = "production";

/// What `sightline register` asks for.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    /// The project manifest (must match the project's labels in the database).
    pub manifest: Manifest,
    /// Task; `None` = the manifest's only model.
    pub task: Option<Task>,
    /// Checkpoint file.
    pub checkpoint: PathBuf,
    /// Experiment id; `None` = taken from an `experiments/<id>/…` checkpoint path.
    pub experiment_id: Option<String>,
    /// Dataset version the model was trained on (must exist).
    pub dataset_version: Option<String>,
    /// Evaluation report reference.
    pub evaluation_report: Option<String>,
    /// Free-form note.
    pub note: Option<String>,
    /// Alias to point at the new version (no gates: use promote for gated changes).
    pub alias: Option<String>,
    /// Who registers (recorded with the alias change).
    pub actor: String,
    /// Makes the bundle's `model.onnx` (checked against the native model); `None`: the bundle
    /// has no ONNX export and serves on Burn.
    pub onnx: Option<OnnxPreparer>,
}

/// What an [`OnnxPreparer`] is given: the bundle being registered, as resolved by the registry
/// (class map, preprocessing, thresholds), so the export is the model the server will load.
#[derive(Debug, Clone, Copy)]
pub struct OnnxInput<'a> {
    /// The bundle's manifest (`files`, `weights` and `onnx` not filled in yet).
    pub manifest: &'a BundleManifest,
    /// The checkpoint file being registered.
    pub checkpoint: &'a Path,
    /// The dataset version the model was trained on, when the registration names one.
    pub dataset_version: Option<&'a str>,
}

/// An ONNX export made for a bundle: its bytes (written as [`BUNDLE_ONNX`]) and how it was
/// checked (`export.file` is set by the registry).
#[derive(Debug, Clone)]
pub struct PreparedOnnx {
    /// How the export was checked.
    pub export: OnnxExport,
    /// The ONNX file.
    pub bytes: Vec<u8>,
}

/// Why an [`OnnxPreparer`] refused (the registration is refused with it).
pub type OnnxPrepareError = Box<dyn std::error::Error + Send + Sync>;

type OnnxPrepareFn = dyn Fn(OnnxInput<'_>) -> Result<PreparedOnnx, OnnxPrepareError> + Send + Sync;

/// Makes a bundle's ONNX export during registration. The registry does not know how models are
/// exported or run (that is `sightline-onnx`); the caller gives this function, which the
/// registry runs on a blocking thread after everything else was validated and before anything
/// is written. An error refuses the registration: no bundle, no model version.
#[derive(Clone)]
pub struct OnnxPreparer(Arc<OnnxPrepareFn>);

impl OnnxPreparer {
    /// Wraps the preparing function.
    pub fn new(
        f: impl Fn(OnnxInput<'_>) -> Result<PreparedOnnx, OnnxPrepareError> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }

    /// Runs it.
    pub fn prepare(&self, input: OnnxInput<'_>) -> Result<PreparedOnnx, OnnxPrepareError> {
        (self.0)(input)
    }
}

impl std::fmt::Debug for OnnxPreparer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnnxPreparer(..)")
    }
}

/// What a registration may set explicitly instead of reading it from the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOverrides {
    /// The class map (`--labels`; rule in [`crate::labels`]).
    pub class_labels: Option<Vec<String>>,
    /// The inference image size recorded in the bundle (`--imgsz`; rule in
    /// [`bundle_imgsz`]).
    pub imgsz: Option<u32>,
}

/// The image size a bundle records (`preprocessing.imgsz`, a classifier's crop): `explicit`
/// (`--imgsz`), else the size the checkpoint was trained at
/// ([`sightline_torch::Meta::imgsz`]: Ultralytics `train_args.imgsz`, or the one our trainer
/// records; its long side, rounded up to the detector stride 32 as Ultralytics'
/// `check_imgsz`), else the manifest's `hyperparameters.imgsz`. The same rule as inference
/// (`sightline_vision::imgsz`), so a served model runs at the size `sightline predict` uses.
pub fn bundle_imgsz(
    task: Task,
    explicit: Option<u32>,
    checkpoint: Option<&sightline_torch::Meta>,
    manifest_imgsz: u32,
) -> Result<u32, RegistryError> {
    if let Some(n) = explicit {
        let ok = match task {
            Task::Segment => n >= 32 && n % 32 == 0,
            Task::Classify => n >= 32,
        };
        if !ok || n as usize > sightline_torch::MAX_CHECKPOINT_IMGSZ {
            return Err(RegistryError::Invalid(format!(
                "--imgsz {n}: {}",
                if task == Task::Segment {
                    "a detector's size must be a multiple of 32 (its largest stride), at least 32"
                } else {
                    "a classifier's crop must be at least 32"
                }
            )));
        }
        return Ok(n);
    }
    let recorded = checkpoint
        .map(sightline_torch::Meta::imgsz)
        .transpose()
        .map_err(|e| RegistryError::Invalid(format!("{e}; pass --imgsz")))?
        .flatten();
    Ok(match recorded {
        // at most MAX_CHECKPOINT_IMGSZ, so it fits
        Some(size) => {
            let side = size.long_side() as u32;
            match task {
                Task::Segment => side.div_ceil(32) * 32,
                Task::Classify => side,
            }
        }
        None => manifest_imgsz,
    })
}

/// The checkpoint's metadata for registration. A detector checkpoint must be readable (its
/// class names are needed); a classifier's is read only for its training size, and one this
/// reader does not understand (e.g. a Burn record) registers with the manifest's size.
fn registration_meta(
    path: &Path,
    task: Task,
) -> Result<Option<sightline_torch::Meta>, RegistryError> {
    match sightline_torch::load(path) {
        Ok(ckpt) => Ok(Some(ckpt.meta)),
        Err(e) if crate::labels::reads_checkpoint_names(task) => Err(RegistryError::Invalid(
            format!("cannot read the checkpoint {}: {e}", path.display()),
        )),
        Err(_) => Ok(None),
    }
}

/// An evaluation to record (`POST /models/metrics`, `sightline evaluate --post`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NewEvaluation {
    /// Model version id.
    pub model_version_id: Option<i64>,
    /// Experiment id.
    pub experiment_id: Option<String>,
    /// Dataset version.
    pub dataset_version: Option<String>,
    /// Split.
    pub split: Option<String>,
    /// Gate-relevant numbers.
    pub summary: EvaluationSummary,
    /// Full payload.
    pub details: serde_json::Value,
    /// Report path.
    pub report_path: Option<String>,
}

/// Result of a promotion.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Promotion {
    /// The promoted version.
    pub model: ModelVersion,
    /// Alias moved.
    pub alias: String,
    /// Previous target id.
    pub previous_model_version_id: Option<i64>,
    /// Whether gates were overridden.
    pub forced: bool,
    /// The gate failures `force` overrode.
    pub overridden: Vec<String>,
}

/// The registry: metadata database plus the artifact store that holds deployment bundles.
#[derive(Debug, Clone)]
pub struct Registry {
    db: Db,
    artifacts: PathBuf,
    bundles: BundleStore,
}

fn db_err(e: DbError) -> RegistryError {
    match e {
        DbError::ProjectNotFound(_) => RegistryError::NotFound(e.to_string()),
        other => RegistryError::Db(other.to_string()),
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Check an alias name: 1–64 of `a-z A-Z 0-9 _ - .`, not purely digits (those are versions).
pub fn check_alias(alias: &str) -> Result<(), RegistryError> {
    let ok = !alias.is_empty()
        && alias.len() <= 64
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !alias.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "invalid alias `{alias}`: use 1-64 letters, digits, `_`, `-`, `.`, not only digits"
        )))
    }
}

/// The experiment id in a checkpoint path `…/experiments/<id>/…`.
pub fn experiment_from_path(path: &Path) -> Option<String> {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts
        .windows(2)
        .rev()
        .find(|w| w[0] == "experiments")
        .map(|w| w[1].clone())
}

impl Registry {
    /// A registry over `db`, with bundles in the local artifact folder `artifacts`.
    pub fn new(db: Db, artifacts: PathBuf) -> Self {
        Self {
            db,
            bundles: BundleStore::local(artifacts.clone()),
            artifacts,
        }
    }

    /// Keep bundles in `store` instead (an S3 bucket, or another folder); bundles fetched from a
    /// remote store are verified and cached under `cache` (see [`BundleStore`]).
    pub fn with_store(mut self, store: ArtifactStore, cache: PathBuf) -> Self {
        self.bundles = BundleStore::new(store, cache);
        self
    }

    /// Keep bundles as `bundles` says (see [`BundleStore::fetching`]).
    pub fn with_bundle_store(mut self, bundles: BundleStore) -> Self {
        self.bundles = bundles;
        self
    }

    /// Where bundles are stored and cached.
    pub fn bundles(&self) -> &BundleStore {
        &self.bundles
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The local artifact folder given to [`Registry::new`] (with a remote store, bundles are
    /// not kept there: see [`Registry::bundles`]).
    pub fn artifacts(&self) -> &Path {
        &self.artifacts
    }

    fn to_model(row: repo::ModelVersionRow) -> Result<ModelVersion, RegistryError> {
        let corrupt = |what: &str, e: serde_json::Error| {
            RegistryError::Db(format!(
                "model version {}: stored {what} is invalid: {e}",
                row.id
            ))
        };
        Ok(ModelVersion {
            id: row.id,
            task: row.task.parse().map_err(|e: String| RegistryError::Db(e))?,
            labels: serde_json::from_value(row.labels.0.clone())
                .map_err(|e| corrupt("labels", e))?,
            preprocessing: serde_json::from_value(row.preprocessing.0.clone())
                .map_err(|e| corrupt("preprocessing", e))?,
            thresholds: serde_json::from_value(row.thresholds.0.clone())
                .map_err(|e| corrupt("thresholds", e))?,
            business_rules: serde_json::from_value(row.business_rules.0.clone())
                .map_err(|e| corrupt("business rules", e))?,
            project: row.project,
            version: row.version,
            model_name: row.model_name,
            checkpoint_sha256: row.checkpoint_sha256,
            checkpoint_path: row.checkpoint_path,
            bundle_dir: row.bundle_dir,
            experiment_id: row.experiment_id,
            dataset_version: row.dataset_version_id,
            evaluation_report: row.evaluation_report,
            note: row.note,
            created_at: ts(row.created_at),
        })
    }

    fn to_eval(row: repo::EvaluationRow) -> Result<Evaluation, RegistryError> {
        Ok(Evaluation {
            id: row.id,
            model_version_id: row.model_version_id,
            experiment_id: row.experiment_id,
            dataset_version: row.dataset_version_id,
            split: row.split,
            summary: serde_json::from_value(row.summary.0).map_err(|e| {
                RegistryError::Db(format!(
                    "evaluation {}: stored summary is invalid: {e}",
                    row.id
                ))
            })?,
            details: row.details.0,
            report_path: row.report_path,
            created_at: ts(row.created_at),
        })
    }

    /// Register a checkpoint: validate, write the bundle, insert the immutable version, and
    /// optionally set an alias. The class map comes from the checkpoint or the project (see
    /// [`crate::labels`]); [`Registry::register_with_labels`] gives it explicitly.
    pub async fn register(&self, req: RegisterRequest) -> Result<ModelVersion, RegistryError> {
        self.register_with_labels(req, None).await
    }

    /// [`Registry::register`] with an explicit class map (`--labels`): class id `i` of the model
    /// means project label `class_labels[i]` (rule in [`crate::labels`]).
    pub async fn register_with_labels(
        &self,
        req: RegisterRequest,
        class_labels: Option<Vec<String>>,
    ) -> Result<ModelVersion, RegistryError> {
        let overrides = RegisterOverrides {
            class_labels,
            ..RegisterOverrides::default()
        };
        self.register_with_overrides(req, overrides).await
    }

    /// [`Registry::register`] with explicit values instead of the checkpoint's: the class map
    /// (`--labels`) and the bundle's image size (`--imgsz`, see [`bundle_imgsz`]).
    pub async fn register_with_overrides(
        &self,
        req: RegisterRequest,
        overrides: RegisterOverrides,
    ) -> Result<ModelVersion, RegistryError> {
        let RegisterOverrides {
            class_labels,
            imgsz,
        } = overrides;
        let m = &req.manifest;
        let task = match req.task {
            Some(t) => t,
            None => match (&m.detector, &m.classifier) {
                (Some(_), None) => Task::Segment,
                (None, Some(_)) => Task::Classify,
                (Some(_), Some(_)) => {
                    return Err(RegistryError::Invalid(
                        "the manifest configures a detector and a classifier: say which this checkpoint is with --task segment|classify".into(),
                    ));
                }
                (None, None) => {
                    return Err(RegistryError::Invalid(
                        "the manifest configures no model".into(),
                    ));
                }
            },
        };
        let config = m.model(task).ok_or_else(|| {
            RegistryError::Invalid(format!(
                "the manifest of `{}` has no {} model",
                m.project,
                if task == Task::Segment {
                    "detector"
                } else {
                    "classifier"
                }
            ))
        })?;
        if let Some(a) = &req.alias {
            check_alias(a)?;
        }
        if !req.checkpoint.is_file() {
            return Err(RegistryError::Invalid(format!(
                "checkpoint {} does not exist or is not a file",
                req.checkpoint.display()
            )));
        }
        let project = sightline_db::projects::get(&self.db, &m.project)
            .await
            .map_err(db_err)?;
        let labels = project.label_names();
        if labels != m.labels {
            return Err(RegistryError::Invalid(format!(
                "the manifest's labels {:?} differ from project `{}`'s labels {:?} in the database; run `sightline project apply` first",
                m.labels, m.project, labels
            )));
        }
        let meta = {
            let path = req.checkpoint.clone();
            tokio::task::spawn_blocking(move || registration_meta(&path, task))
                .await
                .map_err(|e| RegistryError::Invalid(format!("checkpoint reader failed: {e}")))??
        };
        let checkpoint_names = if crate::labels::reads_checkpoint_names(task) {
            meta.as_ref().and_then(|m| m.names.clone())
        } else {
            None
        };
        let imgsz = bundle_imgsz(task, imgsz, meta.as_ref(), config.hyperparameters.imgsz)?;
        let (class_map, _source) = crate::labels::resolve_class_labels(
            &m.project,
            &labels,
            class_labels.as_deref(),
            checkpoint_names.as_deref(),
        )?;
        if let Some(ds) = &req.dataset_version
            && !repo::dataset_version_exists(&self.db, project.id, ds)
                .await
                .map_err(db_err)?
        {
            return Err(RegistryError::NotFound(format!("dataset version `{ds}`")));
        }
        let experiment_id = req
            .experiment_id
            .clone()
            .or_else(|| experiment_from_path(&req.checkpoint));
        let version = repo::next_version(&self.db, project.id, task.as_str())
            .await
            .map_err(db_err)?;
        let rel_dir = Bundle::relative_dir(&m.project, task, version);
        let rel_dir_s = rel_dir.to_string_lossy().replace('\\', "/");
        let thresholds: BTreeMap<String, f64> = labels
            .iter()
            .map(|l| (l.clone(), config.thresholds.for_label(l)))
            .collect();
        let preprocessing = Preprocessing::for_task(task, imgsz);
        let mut bundle_manifest = BundleManifest {
            format: 0,
            project: m.project.clone(),
            task,
            version,
            model_name: config.name.to_string(),
            labels: class_map.clone(),
            preprocessing: preprocessing.clone(),
            thresholds: thresholds.clone(),
            business_rules: m.business_rules.clone(),
            weights: String::new(),
            files: Vec::new(),
            onnx: None,
            created_at: crate::time::now_rfc3339(),
        };
        let mut extra = Vec::new();
        if let Some(preparer) = req.onnx.clone() {
            let prepared = {
                let manifest = bundle_manifest.clone();
                let checkpoint = req.checkpoint.clone();
                let dataset = req.dataset_version.clone();
                tokio::task::spawn_blocking(move || {
                    preparer.prepare(OnnxInput {
                        manifest: &manifest,
                        checkpoint: &checkpoint,
                        dataset_version: dataset.as_deref(),
                    })
                })
                .await
                .map_err(|e| RegistryError::Invalid(format!("ONNX export task failed: {e}")))?
                .map_err(|e| {
                    RegistryError::Invalid(format!(
                        "the ONNX export refused the registration: {}",
                        sightline_core::error_chain(e.as_ref())
                    ))
                })?
            };
            let PreparedOnnx { mut export, bytes } = prepared;
            export.file = BUNDLE_ONNX.to_string();
            bundle_manifest.onnx = Some(export);
            extra.push(ExtraFile {
                path: BUNDLE_ONNX.to_string(),
                bytes,
            });
        }
        // A bundle folder without a database row is left over from an interrupted registration:
        // move it aside rather than trusting or deleting it.
        if self.bundles.exists(&rel_dir_s).await? {
            let suffix = chrono::Utc::now().timestamp_millis().to_string();
            self.bundles.set_aside(&rel_dir_s, &suffix).await?;
        }
        let written = self
            .bundles
            .write_with(&rel_dir_s, &req.checkpoint, bundle_manifest, &extra)
            .await?;
        let sha = written
            .files
            .iter()
            .find(|f| f.path == written.weights)
            .map(|f| f.sha256.clone())
            .unwrap_or_default();
        let checkpoint_s = req.checkpoint.display().to_string();
        let row = repo::NewModelVersionRow {
            project_id: project.id,
            task: task.as_str(),
            version,
            model_name: &written.model_name,
            checkpoint_sha256: &sha,
            checkpoint_path: &checkpoint_s,
            bundle_dir: &rel_dir_s,
            labels: serde_json::to_value(&class_map)?,
            preprocessing: serde_json::to_value(&preprocessing)?,
            thresholds: serde_json::to_value(&thresholds)?,
            business_rules: serde_json::to_value(&m.business_rules)?,
            experiment_id: experiment_id.as_deref(),
            dataset_version_id: req.dataset_version.as_deref(),
            evaluation_report: req.evaluation_report.as_deref(),
            note: req.note.as_deref(),
        };
        let inserted = match repo::insert_model_version(&self.db, &row).await {
            Ok(r) => r,
            Err(e) => {
                if let Err(cleanup) = self.bundles.remove(&rel_dir_s).await {
                    tracing::warn!(bundle = %rel_dir_s, error = %cleanup, "cannot remove the bundle of a failed registration");
                }
                return Err(RegistryError::Db(format!(
                    "cannot record {}/{task} v{version} (registered concurrently? retry): {e}",
                    m.project
                )));
            }
        };
        let model = Self::to_model(inserted)?;
        if let Some(alias) = &req.alias {
            repo::set_alias(&self.db, model.id, alias, false, &[], &req.actor)
                .await
                .map_err(db_err)?;
        }
        Ok(model)
    }

    /// A model version by id.
    pub async fn get(&self, id: i64) -> Result<ModelVersion, RegistryError> {
        let row = repo::get_model_version(&self.db, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| RegistryError::NotFound(format!("model version id {id}")))?;
        Self::to_model(row)
    }

    /// Resolve `<version number | alias>` of a project + task.
    pub async fn resolve(
        &self,
        project: &str,
        task: Task,
        version_or_alias: &str,
    ) -> Result<ModelVersion, RegistryError> {
        let row = if let Ok(n) = version_or_alias.trim_start_matches('v').parse::<i64>() {
            repo::find_model_version(&self.db, project, task.as_str(), n)
                .await
                .map_err(db_err)?
        } else {
            let aliases = repo::list_aliases(&self.db, Some(project), Some(task.as_str()))
                .await
                .map_err(db_err)?;
            match aliases.into_iter().find(|a| a.alias == version_or_alias) {
                Some(a) => repo::get_model_version(&self.db, a.model_version_id)
                    .await
                    .map_err(db_err)?,
                None => None,
            }
        };
        let row = row.ok_or_else(|| {
            RegistryError::NotFound(format!("{project}/{task} model `{version_or_alias}`"))
        })?;
        Self::to_model(row)
    }

    /// Model versions, optionally filtered.
    pub async fn list(
        &self,
        project: Option<&str>,
        task: Option<Task>,
    ) -> Result<Vec<ModelVersion>, RegistryError> {
        repo::list_model_versions(&self.db, project, task.map(Task::as_str))
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Self::to_model)
            .collect()
    }

    /// Aliases, optionally filtered.
    pub async fn aliases(
        &self,
        project: Option<&str>,
        task: Option<Task>,
    ) -> Result<Vec<Alias>, RegistryError> {
        repo::list_aliases(&self.db, project, task.map(Task::as_str))
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|a| {
                Ok(Alias {
                    task: a.task.parse().map_err(RegistryError::Db)?,
                    project: a.project,
                    alias: a.alias,
                    model_version_id: a.model_version_id,
                    version: a.version,
                    updated_at: ts(a.updated_at),
                })
            })
            .collect()
    }

    /// Alias changes of a project, oldest first.
    pub async fn alias_events(
        &self,
        project: &str,
        task: Option<Task>,
    ) -> Result<Vec<AliasEvent>, RegistryError> {
        repo::alias_events(&self.db, project, task.map(Task::as_str))
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|e| {
                Ok(AliasEvent {
                    task: e.task.parse().map_err(RegistryError::Db)?,
                    project: e.project,
                    alias: e.alias,
                    from_model_version_id: e.from_model_version_id,
                    to_model_version_id: e.to_model_version_id,
                    forced: e.forced,
                    overridden: e.overridden.0,
                    actor: e.actor,
                    at: ts(e.at),
                })
            })
            .collect()
    }

    /// Point an alias at a version without gates (`model alias set`). Returns the previous id.
    pub async fn set_alias(
        &self,
        model_version_id: i64,
        alias: &str,
        actor: &str,
    ) -> Result<Option<i64>, RegistryError> {
        check_alias(alias)?;
        self.get(model_version_id).await?;
        repo::set_alias(&self.db, model_version_id, alias, false, &[], actor)
            .await
            .map_err(db_err)
    }

    /// Evaluations of a model version (direct, or recorded against its experiment), newest first.
    pub async fn evaluations(
        &self,
        model: &ModelVersion,
    ) -> Result<Vec<Evaluation>, RegistryError> {
        repo::evaluations_for_model(&self.db, model.id, model.experiment_id.as_deref())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Self::to_eval)
            .collect()
    }

    /// Promote a version to `alias` if it passes its gates, or with `force` (recorded with the
    /// gate failures it overrode).
    pub async fn promote(
        &self,
        model_version_id: i64,
        alias: &str,
        gates: &Gates,
        force: bool,
        actor: &str,
    ) -> Result<Promotion, RegistryError> {
        check_alias(alias)?;
        let model = self.get(model_version_id).await?;
        let evals = self.evaluations(&model).await?;
        let failures = gates::check(&model, evals.first(), gates);
        if !failures.is_empty() && !force {
            return Err(RegistryError::GateFailed {
                what: model.display_name(),
                failures,
            });
        }
        let previous = repo::set_alias(&self.db, model.id, alias, force, &failures, actor)
            .await
            .map_err(db_err)?;
        Ok(Promotion {
            model,
            alias: alias.to_string(),
            previous_model_version_id: previous,
            forced: force && !failures.is_empty(),
            overridden: failures,
        })
    }

    /// Record an evaluation against a model version and/or an experiment.
    pub async fn record_evaluation(&self, e: NewEvaluation) -> Result<Evaluation, RegistryError> {
        if e.model_version_id.is_none() && e.experiment_id.is_none() {
            return Err(RegistryError::Invalid(
                "an evaluation needs a model_version_id or an experiment_id".into(),
            ));
        }
        if let Some(id) = e.model_version_id {
            self.get(id).await?;
        }
        let row = repo::NewEvaluationRow {
            model_version_id: e.model_version_id,
            experiment_id: e.experiment_id.as_deref(),
            dataset_version_id: e.dataset_version.as_deref(),
            split: e.split.as_deref(),
            summary: serde_json::to_value(&e.summary)?,
            details: e.details.clone(),
            report_path: e.report_path.as_deref(),
        };
        Self::to_eval(
            repo::insert_evaluation(&self.db, &row)
                .await
                .map_err(db_err)?,
        )
    }

    /// Lineage of a model version (model → experiment → dataset version; evaluations; aliases).
    pub async fn lineage(&self, model_version_id: i64) -> Result<Lineage, RegistryError> {
        let model = self.get(model_version_id).await?;
        let evaluations = self.evaluations(&model).await?;
        let aliases = self
            .aliases(Some(&model.project), Some(model.task))
            .await?
            .into_iter()
            .filter(|a| a.model_version_id == model.id)
            .map(|a| a.alias)
            .collect();
        Ok(Lineage {
            experiment_id: model.experiment_id.clone(),
            dataset_version: model.dataset_version.clone(),
            model,
            evaluations,
            aliases,
        })
    }

    /// Model versions trained on a dataset version (dataset → models).
    pub async fn models_for_dataset(
        &self,
        dataset_version: &str,
    ) -> Result<Vec<ModelVersion>, RegistryError> {
        repo::models_for_dataset(&self.db, dataset_version)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Self::to_model)
            .collect()
    }

    /// Open a version's bundle from local disk and verify it: in place for a local store, the
    /// cached copy for a remote one ([`RegistryError::BundleIncomplete`] when it was never
    /// fetched: use [`Registry::fetch_bundle`]).
    pub fn open_bundle(&self, model: &ModelVersion) -> Result<Bundle, RegistryError> {
        crate::bundle::check_version(self.bundles.open_local(&model.bundle_dir)?, model)
    }

    /// A version's bundle ready for a model loader: opened in place from a local store, or
    /// fetched from a remote store into the cache (a cached copy is reused while it verifies),
    /// every file checked against `bundle.json` and the weights against the registered hash.
    pub async fn fetch_bundle(&self, model: &ModelVersion) -> Result<Bundle, RegistryError> {
        self.bundles.open_version(model).await
    }

    /// SHA-256 of a file (for callers comparing checkpoints).
    pub fn checksum(path: &Path) -> Result<String, RegistryError> {
        Ok(hash_file(path)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_id_from_checkpoint_path() {
        assert_eq!(
            experiment_from_path(Path::new(
                "artifacts/experiments/20260101-120000/weights/best.safetensors"
            )),
            Some("20260101-120000".to_string())
        );
        assert_eq!(
            experiment_from_path(Path::new("pretrained/yolov8s-seg.pt")),
            None
        );
    }

    #[test]
    fn alias_names() {
        assert!(check_alias("production").is_ok());
        assert!(check_alias("canary-2.b").is_ok());
        assert!(check_alias("12").is_err());
        assert!(check_alias("a b").is_err());
        assert!(check_alias("").is_err());
    }

    #[test]
    fn bundle_imgsz_flag_then_checkpoint_then_manifest() {
        let meta = |v: serde_json::Value| sightline_torch::Meta {
            train_args: Some(serde_json::json!({ "imgsz": v })),
            ..sightline_torch::Meta::default()
        };
        let seg = Task::Segment;
        let at256 = meta(serde_json::json!(256));
        assert_eq!(
            bundle_imgsz(seg, Some(320), Some(&at256), 640).unwrap(),
            320
        );
        assert_eq!(bundle_imgsz(seg, None, Some(&at256), 640).unwrap(), 256);
        assert_eq!(
            bundle_imgsz(seg, None, Some(&sightline_torch::Meta::default()), 640).unwrap(),
            640
        );
        assert_eq!(bundle_imgsz(seg, None, None, 640).unwrap(), 640);
        // long side of [h, w], rounded up to the stride for a detector only
        let odd = meta(serde_json::json!([200, 250]));
        assert_eq!(bundle_imgsz(seg, None, Some(&odd), 640).unwrap(), 256);
        assert_eq!(
            bundle_imgsz(Task::Classify, None, Some(&odd), 224).unwrap(),
            250
        );
        // nonsense in the checkpoint: a clear error, which --imgsz overrides
        let bad = meta(serde_json::json!("wide"));
        let e = bundle_imgsz(seg, None, Some(&bad), 640).unwrap_err();
        assert!(e.to_string().contains("--imgsz"), "{e}");
        assert_eq!(bundle_imgsz(seg, Some(256), Some(&bad), 640).unwrap(), 256);
        // the flag is checked like the manifest's value
        assert!(bundle_imgsz(seg, Some(100), None, 640).is_err());
        assert!(bundle_imgsz(Task::Classify, Some(16), None, 224).is_err());
        assert_eq!(
            bundle_imgsz(Task::Classify, Some(96), None, 224).unwrap(),
            96
        );
    }
}
