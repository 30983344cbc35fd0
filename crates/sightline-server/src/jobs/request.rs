//! Request resolution: a `POST /projects/{p}/experiments` body is checked (task, numbers,
//! device), its dataset version and starting weights are resolved against the database and the
//! registry (no request value names a file), and the trainer's [`TrainInvocation`] is built.

use super::*;

/// The jobs API words a missing project as "project `x` not found" (not the database's
/// "does not exist (create it with ...)" text); every other database error maps as usual.
pub(super) fn project_db_error(e: sightline_db::DbError) -> ApiError {
    match e {
        sightline_db::DbError::ProjectNotFound(p) => {
            ApiError::NotFound(format!("project `{p}` not found"))
        }
        other => other.into(),
    }
}

/// Validate the numbers and names of a request.
pub(super) fn check(req: &StartExperiment) -> Result<Task, ApiError> {
    let task = match req.task.as_str() {
        "detector" | "segment" => Task::Segment,
        "classifier" | "classify" => Task::Classify,
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown task `{other}`; expected `detector` or `classifier`"
            )));
        }
    };
    if let Some(e) = req.epochs
        && !(1..=10_000).contains(&e)
    {
        return Err(ApiError::BadRequest(format!(
            "epochs must be between 1 and 10000 (got {e})"
        )));
    }
    if let Some(s) = req.imgsz
        && !((32..=2048).contains(&s) && s % 32 == 0)
    {
        return Err(ApiError::BadRequest(format!(
            "imgsz must be a multiple of 32 between 32 and 2048 (got {s})"
        )));
    }
    if let Some(b) = req.batch_size
        && !(1..=1024).contains(&b)
    {
        return Err(ApiError::BadRequest(format!(
            "batch_size must be between 1 and 1024 (got {b})"
        )));
    }
    if let Some(w) = req.workers
        && w > 1024
    {
        return Err(ApiError::BadRequest(format!(
            "workers must be at most 1024 (got {w})"
        )));
    }
    if let Some(d) = &req.device {
        let ok = d == "cpu"
            || d == "cuda"
            || d.strip_prefix("cuda:").is_some_and(|n| {
                !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit())
            });
        if !ok {
            return Err(ApiError::BadRequest(format!(
                "device must be cpu, cuda or cuda:N (got `{d}`)"
            )));
        }
    }
    Ok(task)
}

/// A dataset version id from `latest`, a full id or a unique prefix.
pub(super) fn resolve_dataset(
    list: &[sightline_db::datasets::DatasetVersionRow],
    project: &str,
    want: &str,
) -> Result<String, ApiError> {
    if list.is_empty() {
        return Err(ApiError::Conflict(format!(
            "project `{project}` has no dataset version yet: ingest one (`sightline dataset \
             ingest` or the dataset upload endpoint) before training"
        )));
    }
    if want == "latest" {
        return list
            .last()
            .map(|v| v.id.clone())
            .ok_or_else(|| ApiError::Internal("empty version list".into()));
    }
    let m: Vec<&str> = list
        .iter()
        .map(|v| v.id.as_str())
        .filter(|v| want.len() >= 4 && v.starts_with(want))
        .collect();
    match m.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err(ApiError::NotFound(format!(
            "project `{project}` has no dataset version `{want}`"
        ))),
        _ => Err(ApiError::BadRequest(format!(
            "dataset version prefix `{want}` is ambiguous"
        ))),
    }
}

/// The `--weights` value for the trainer: `none`, `imagenet`, the best checkpoint of an
/// experiment of the same project and task (a folder the database records, inside the
/// artifact root), or a registered model version's verified bundle weights (`model:<id>`).
pub(super) async fn resolve_weights(
    state: &AppState,
    project: &str,
    task: Task,
    requested: Option<&str>,
    manifest: Option<&Weights>,
) -> Result<String, ApiError> {
    let w = match (requested, manifest) {
        (Some(w), _) => w.to_string(),
        (None, Some(Weights::None) | None) => "none".to_string(),
        (None, Some(Weights::ImageNet)) => "imagenet".to_string(),
        (None, Some(Weights::Path(p))) => {
            return Err(ApiError::Conflict(format!(
                "the manifest's starting weights are a file path ({}), which the server does not \
                 open for runs started over HTTP; pass `weights`: none, imagenet, an experiment id or model:<id>",
                p.display()
            )));
        }
    };
    match w.as_str() {
        "none" => return Ok(w),
        "imagenet" if task == Task::Segment => {
            return Err(ApiError::BadRequest(
                "`imagenet` weights are for the classifier; give the detector `none` or an \
                 experiment id"
                    .into(),
            ));
        }
        "imagenet" => return Ok(w),
        _ => {}
    }
    if let Some(mv) = w.strip_prefix("model:") {
        let mv: i64 = mv.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "`model:<id>` takes a model version id (a number), got `{w}`"
            ))
        })?;
        let m = state.registry().get(mv).await?;
        if m.project != project {
            return Err(ApiError::NotFound(format!(
                "project `{project}` has no model version {mv}"
            )));
        }
        if m.task != task {
            return Err(ApiError::BadRequest(format!(
                "model version {mv} is a {} model, not a {}",
                m.task,
                task.as_str()
            )));
        }
        // the registry's own bundle (verified against its recorded checksums)
        let bundle = state.registry().fetch_bundle(&m).await?;
        return Ok(bundle.weights_path().display().to_string());
    }
    let valid_id = !w.is_empty()
        && w.len() <= 64
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_id {
        return Err(ApiError::BadRequest(format!(
            "weights must be `none`, `imagenet`, an experiment id or `model:<id>` (got `{w}`)"
        )));
    }
    let db = state.registry().db();
    let e = sightline_db::experiments::get(db, &w)
        .await?
        .filter(|e| e.project == project)
        .ok_or_else(|| {
            ApiError::NotFound(format!("project `{project}` has no experiment `{w}`"))
        })?;
    if e.task != task.as_str() {
        return Err(ApiError::BadRequest(format!(
            "experiment `{w}` trained a {} model, not a {}",
            e.task,
            task.as_str()
        )));
    }
    let file = PathBuf::from(&e.dir).join("weights/best.safetensors");
    let artifacts = &state.config().artifacts;
    let root = fs_err::canonicalize(artifacts).unwrap_or_else(|_| artifacts.clone());
    let inside = fs_err::canonicalize(&file).is_ok_and(|f| f.starts_with(&root));
    if !inside {
        return Err(ApiError::Conflict(format!(
            "experiment `{w}` has no best checkpoint in the artifact store"
        )));
    }
    Ok(file.display().to_string())
}

/// The trainer's command line: `--json --home <home> train <task> --config <job manifest>
/// --dataset <version> --device … --workers … --weights … [--epochs …] [--imgsz …]
/// [--batch-size …] [--seed …]`.
pub(super) fn trainer_invocation(
    home: &FsPath,
    task: Task,
    config: &FsPath,
    params: &JobParams,
    weights: &str,
) -> TrainInvocation {
    TrainInvocation {
        json: true,
        home: Some(home.to_path_buf()),
        options: TrainOptions {
            task,
            config: Some(config.to_path_buf()),
            dataset: params.dataset_version.clone(),
            overrides: Overrides {
                epochs: params.epochs,
                imgsz: params.imgsz,
                batch_size: params.batch_size,
                seed: params.seed,
            },
            device: params.device.clone(),
            workers: params.workers as usize,
            weights: Some(weights.to_string()),
            resume: None,
            save_record: false,
        },
    }
}
