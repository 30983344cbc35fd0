//! Creating things over HTTP: labels, dataset versions (archive upload + ingest) and model
//! versions (register an experiment's checkpoint).
//!
//! - `POST /projects/{p}/labels`: append labels ([`sightline_db::labels::append`]).
//! - `POST /projects/{p}/datasets`: an archive (raw body or multipart `archive` field) is streamed
//!   into a temporary file inside the project's data area (its name is ours, never the
//!   request's), limited to [`AppState::max_dataset_upload_bytes`], then ingested on a blocking
//!   thread exactly like `sightline dataset ingest` ([`sightline_workflows::ingest`]). The
//!   temporary file and the unpacked folder are removed whatever happens.
//! - `POST /models`: register an experiment's checkpoint; lineage from the experiment record
//!   ([`sightline_registry::from_experiment`]). With ONNX Runtime configured
//!   ([`crate::ServerConfig::onnxruntime`]) the bundle gets a checked `model.onnx`
//!   ([`crate::vision::OnnxCheck`], on a blocking thread); a failed check refuses the
//!   registration (400, naming the output).

use std::io::Write;
use std::pin::Pin;

use axum::Json;
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sightline_registry::from_experiment::{CheckpointChoice, ExperimentRegistration};
use sightline_workflows::ingest::{IngestError, IngestOptions};
use utoipa::OpenApi;

use crate::AppState;
use crate::auth::Engineer;
use crate::error::ApiError;

/// OpenAPI paths of this module (merged into `/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    paths(post_labels, post_dataset, post_model),
    components(schemas(LabelsBody, ModelBody))
)]
pub struct UploadsDoc;

/// Routes of this module; `limit` is the server's upload size limit in bytes (JSON bodies).
/// The dataset route enforces its own, larger limit while streaming.
pub fn router(limit: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{project}/labels",
            post(post_labels).layer(DefaultBodyLimit::max(limit)),
        )
        .route(
            "/projects/{project}/datasets",
            post(post_dataset).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/models",
            post(post_model).layer(DefaultBodyLimit::max(limit)),
        )
}

fn encode<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal("cannot encode the response", e))
}

// ---------------------------------------------------------------------------------------------
// Labels

/// Body of `POST /projects/{project}/labels`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelsBody {
    /// Labels to append, in order (new class ids follow the existing ones).
    pub labels: Vec<String>,
}

/// Append labels to a project's ordered label set; existing class ids never change. Names follow
/// the manifest rules (same messages); a name the project already has is a conflict. Returns
/// the whole label list and the appended labels with their class ids. Role: engineer.
#[utoipa::path(post, path = "/projects/{project}/labels", params(("project" = String, Path)),
    request_body = LabelsBody,
    responses((status = 201, description = "{labels: [..], appended: [{name, position}]}"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn post_labels(
    State(state): State<AppState>,
    Path(project): Path<String>,
    _caller: Engineer,
    body: Result<Json<LabelsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    use sightline_db::labels::AppendLabelsError as E;
    let report = sightline_db::labels::append(state.registry().db(), &project, &b.labels)
        .await
        .map_err(|e| match e {
            E::Invalid(_) => ApiError::BadRequest(e.to_string()),
            E::Exists { .. } => ApiError::Conflict(e.to_string()),
            E::Db(d) => d.into(),
            E::Rewrite(..) => ApiError::internal("cannot append the labels", e),
        })?;
    let appended: Vec<serde_json::Value> = report
        .label_changes
        .iter()
        .filter_map(|c| match c {
            sightline_db::projects::LabelChange::Appended { name, position } => {
                Some(serde_json::json!({"name": name, "position": position}))
            }
            _ => None,
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "project": project,
            "labels": report.project.label_names(),
            "appended": appended,
        })),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Dataset versions

/// Options of `POST /projects/{project}/datasets` (query parameters, or multipart text fields
/// of the same names).
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestQuery {
    /// `coco`, `voc`, `yolo`, `folder` or `auto` (default: detect).
    pub format: Option<String>,
    /// Version message.
    pub message: Option<String>,
    /// Rename a category before matching project labels: `old=new` (repeatable, or a comma list).
    pub map: Option<String>,
    /// Drop objects and image labels that are not project labels (reported in the notes).
    pub drop_unknown: Option<bool>,
    /// Treat warnings as errors.
    pub strict: Option<bool>,
    /// Ratios for images without a split: `train,val[,test]` (default `0.8,0.2,0`).
    pub split: Option<String>,
    /// Expected SHA-256 of the archive.
    pub sha256: Option<String>,
}

/// Archive kinds by content type / file name, as the file suffix the unpacker knows.
fn archive_suffix(content_type: &str, file_name: Option<&str>) -> Option<&'static str> {
    if let Some(n) = file_name.map(str::to_ascii_lowercase) {
        if n.ends_with(".zip") {
            return Some(".zip");
        }
        if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            return Some(".tar.gz");
        }
        if n.ends_with(".tar") {
            return Some(".tar");
        }
    }
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/zip" | "application/x-zip-compressed" | "application/x-zip" => Some(".zip"),
        "application/x-tar" | "application/tar" => Some(".tar"),
        "application/gzip"
        | "application/x-gzip"
        | "application/x-gtar"
        | "application/x-compressed-tar"
        | "application/tar+gzip" => Some(".tar.gz"),
        _ => None,
    }
}

fn not_an_archive(what: &str) -> ApiError {
    ApiError::UnsupportedMediaType(format!(
        "{what} is not a dataset archive: send a .zip, .tar or .tar.gz body with Content-Type \
         application/zip, application/x-tar or application/gzip, or a multipart body with an \
         `archive` file field"
    ))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the dataset archive exceeds the limit of {limit} bytes"
    ))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ApiError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "`{key}` must be true or false, got `{v}`"
        ))),
    }
}

/// Fold one option (query pair or multipart field) into `opts`.
fn set_option(opts: &mut IngestOptions, key: &str, value: &str) -> Result<(), ApiError> {
    match key {
        "format" => {
            opts.format = match value.trim() {
                "" | "auto" => None,
                f => Some(sightline_datasets::Format::parse(f).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "unknown format \"{f}\": coco, voc, yolo, folder or auto"
                    ))
                })?),
            }
        }
        "message" => opts.message = value.to_string(),
        "map" => opts.maps.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string),
        ),
        "drop_unknown" => opts.drop_unknown = parse_bool(key, value)?,
        "strict" => opts.strict = parse_bool(key, value)?,
        "split" => opts.split = value.to_string(),
        "sha256" => opts.sha256 = Some(value.trim().to_string()),
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown option `{other}`; expected format, message, map, drop_unknown, strict, split, sha256"
            )));
        }
    }
    Ok(())
}

/// Where an upload is written: a file named by us (`upload-<uuid><suffix>`, the archive's
/// suffix) in the project's data area, removed on drop; plus the byte count against the limit.
struct Upload {
    path: std::path::PathBuf,
    file: Option<fs_err::File>,
    written: usize,
    limit: usize,
}

impl Upload {
    fn new(dir: &std::path::Path, suffix: &str, limit: usize) -> Result<Self, ApiError> {
        let internal = |e: std::io::Error| ApiError::internal("cannot create the upload file", e);
        fs_err::create_dir_all(dir).map_err(internal)?;
        let path = dir.join(format!("upload-{}{suffix}", uuid::Uuid::new_v4().simple()));
        let file = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(internal)?;
        Ok(Self {
            path,
            file: Some(file),
            written: 0,
            limit,
        })
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.written = self.written.saturating_add(chunk.len());
        if self.written > self.limit {
            return Err(too_large(self.limit));
        }
        match self.file.as_mut() {
            Some(f) => f
                .write_all(chunk)
                .map_err(|e| ApiError::internal("cannot write the upload file", e)),
            None => Err(ApiError::Internal("the upload file is closed".into())),
        }
    }

    /// Flush and close the file; the path stays valid until drop.
    fn finish(&mut self) -> Result<&std::path::Path, ApiError> {
        if let Some(f) = self.file.take() {
            f.sync_all()
                .map_err(|e| ApiError::internal("cannot write the upload file", e))?;
        }
        Ok(&self.path)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.file = None;
        let _ = fs_err::remove_file(&self.path);
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn body_read_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("cannot read the request body: {e}"))
}

/// Stream a raw body into `up`.
async fn stream_raw(mut body: Body, up: &mut Upload) -> Result<(), ApiError> {
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(body_read_error)?;
        if let Ok(data) = frame.into_data() {
            up.write(&data)?;
        }
    }
    Ok(())
}

/// Read a multipart body: the `archive` file field streamed into an upload file, the other
/// fields as options.
async fn stream_multipart(
    req: Request,
    state: &AppState,
    dir: &std::path::Path,
    limit: usize,
    opts: &mut IngestOptions,
) -> Result<(Upload, String), ApiError> {
    let mut mp = Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::BadRequest(format!("invalid multipart body: {}", e.body_text())))?;
    let mut upload = None;
    let mut name_seen = String::new();
    loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(ApiError::BadRequest(format!("invalid multipart body: {e}"))),
        };
        let name = field.name().unwrap_or("").to_string();
        if name == "archive" || name == "file" {
            if upload.is_some() {
                return Err(ApiError::BadRequest(
                    "send one `archive` file per request".into(),
                ));
            }
            let file_name = field.file_name().map(str::to_string);
            let ct = field.content_type().unwrap_or("").to_string();
            let suffix = archive_suffix(&ct, file_name.as_deref()).ok_or_else(|| {
                not_an_archive(&format!(
                    "the `archive` field ({})",
                    file_name.clone().unwrap_or_else(|| ct.clone())
                ))
            })?;
            let mut up = Upload::new(dir, suffix, limit)?;
            loop {
                match field.chunk().await {
                    Ok(Some(c)) => up.write(&c)?,
                    Ok(None) => break,
                    Err(e) => return Err(body_read_error(e)),
                }
            }
            name_seen = file_name.unwrap_or_else(|| format!("archive{suffix}"));
            upload = Some(up);
        } else {
            let text = field.text().await.map_err(body_read_error)?;
            set_option(opts, &name, &text)?;
        }
    }
    let up = upload
        .ok_or_else(|| ApiError::BadRequest("the multipart body has no `archive` field".into()))?;
    Ok((up, name_seen))
}

fn ingest_error(e: IngestError) -> ApiError {
    let message = e.full_message();
    match e {
        IngestError::Project(_, sightline_db::DbError::ProjectNotFound(p)) => ApiError::NotFound(
            format!("project `{p}` does not exist (create it with POST /projects)"),
        ),
        IngestError::Options(_) | IngestError::Source(..) => ApiError::BadRequest(message),
        IngestError::Read(..) | IngestError::Validation(_) | IngestError::Labels(_) => {
            ApiError::BadRequest(message)
        }
        IngestError::Project(..)
        | IngestError::Store(_)
        | IngestError::Db(_)
        | IngestError::Task(_) => ApiError::internal("dataset ingest failed", e),
    }
}

/// Upload a dataset archive and ingest it as a new version of the project, like `sightline
/// dataset ingest` (same validation and messages, same DVC-compatible version, same database
/// record, parent = the project's latest). Raw body (`Content-Type: application/zip`,
/// `application/x-tar` or `application/gzip`) with options as query parameters, or multipart
/// with an `archive` file field and options as fields. Limit: the server's dataset upload limit.
/// Role: engineer.
#[utoipa::path(post, path = "/projects/{project}/datasets",
    params(("project" = String, Path), IngestQuery),
    request_body(content = Vec<u8>, description = "The archive (.zip, .tar, .tar.gz), or multipart with an `archive` field", content_type = "application/zip"),
    responses((status = 201, description = "Created: {created, version, notes}"),
        (status = 200, description = "Identical content: the existing version"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn post_dataset(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    Engineer(caller): Engineer,
    req: Request,
) -> Result<Response, ApiError> {
    let repo = sightline_workflows::dataset_repo(&state.config().home, &project)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    sightline_db::projects::id_of(state.registry().db(), &project).await?;
    let limit = state.max_dataset_upload_bytes();
    if content_length(&headers).is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut opts = IngestOptions {
        author: caller.name.clone(),
        ..IngestOptions::default()
    };
    for (k, v) in &pairs {
        set_option(&mut opts, k, v)?;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let dir = repo.work_dir().join("uploads");
    let (upload, name) = if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        stream_multipart(req, &state, &dir, limit, &mut opts).await?
    } else {
        let suffix = archive_suffix(&content_type, None).ok_or_else(|| {
            not_an_archive(&if content_type.is_empty() {
                "a body without Content-Type".to_string()
            } else {
                format!("`{content_type}`")
            })
        })?;
        let mut up = Upload::new(&dir, suffix, limit)?;
        stream_raw(req.into_body(), &mut up).await?;
        (up, format!("archive{suffix}"))
    };
    if upload.written == 0 {
        return Err(ApiError::BadRequest("the dataset archive is empty".into()));
    }
    let mut upload = upload;
    opts.src = upload.finish()?.display().to_string();
    opts.source_label = Some(format!("upload:{name}"));
    let done = sightline_workflows::ingest::ingest(
        state.registry().db(),
        &state.config().home,
        &project,
        opts,
        Box::new(|_, _| {}),
    )
    .await;
    drop(upload); // the upload is removed whatever the outcome
    let done = done.map_err(ingest_error)?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(encode(&done)?)).into_response())
}

// ---------------------------------------------------------------------------------------------
// Model versions

/// Body of `POST /models`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelBody {
    /// Project (must be the experiment's).
    pub project: String,
    /// `segment` (or `detect`/`detector`) or `classify`; must be the experiment's task.
    pub task: Option<String>,
    /// Experiment id (`GET /projects/{p}/experiments`).
    pub experiment: String,
    /// `best` (default) or `last`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub checkpoint: CheckpointChoice,
    /// Alias to point at the new version; `production` goes through the promotion gates.
    pub alias: Option<String>,
    /// Free-form note.
    pub note: Option<String>,
}

/// Register an experiment's checkpoint as a model version with its deployment bundle. Project,
/// task and dataset version come from the experiment record. With `alias`, the alias is set
/// (`production` through the promotion gates, as `POST /aliases`). Role: engineer.
#[utoipa::path(post, path = "/models", request_body = ModelBody,
    responses((status = 201, description = "The model version"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn post_model(
    State(state): State<AppState>,
    Engineer(caller): Engineer,
    body: Result<Json<ModelBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let task = match b.task.as_deref() {
        None => None,
        Some("detect") => Some(sightline_core::Task::Segment),
        Some(t) => Some(t.parse().map_err(ApiError::BadRequest)?),
    };
    let production = b.alias.as_deref() == Some(sightline_registry::PRODUCTION);
    if let Some(a) = &b.alias {
        sightline_registry::service::check_alias(a)?;
    }
    let onnx = state.config().onnxruntime.clone().map(|runtime| {
        crate::vision::OnnxCheck {
            runtime,
            tolerance: sightline_onnx::bundle::DEFAULT_TOLERANCE,
            home: state.config().home.clone(),
            image: None,
        }
        .preparer()
    });
    let model = state
        .registry()
        .register_experiment(ExperimentRegistration {
            experiment: b.experiment,
            project: Some(b.project),
            task,
            checkpoint: b.checkpoint,
            alias: if production { None } else { b.alias.clone() },
            note: b.note,
            actor: caller.name.clone(),
            onnx,
        })
        .await?;
    let mut out = encode(&model)?;
    // The bundle's ONNX export and how it was checked (`null`: it serves on Burn).
    let bundle = state.registry().bundles().open_version(&model).await?;
    out["onnx"] = encode(&bundle.manifest.onnx)?;
    if production {
        let promoted = state
            .registry()
            .promote(
                model.id,
                sightline_registry::PRODUCTION,
                &sightline_registry::Gates::default(),
                false,
                &caller.name,
            )
            .await;
        match promoted {
            Ok(p) => {
                out["promotion"] = encode(&p)?;
                crate::reconcile(&state).await?;
            }
            Err(sightline_registry::RegistryError::GateFailed { failures, .. }) => {
                return Err(ApiError::GateFailed {
                    message: format!(
                        "registered {} (id {}), but its promotion to production was refused by the gates; promote it later with POST /aliases (force: admin)",
                        model.display_name(),
                        model.id
                    ),
                    failures,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}
