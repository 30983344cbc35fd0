//! Training jobs started over HTTP (`POST /projects/{p}/experiments`).
//!
//! Training is long and heavy, so each job runs as a child process of the `sightline` binary
//! itself ([`crate::ServerConfig::trainer`]):
//! `<exe> --json --home <home> train detector|classifier --config <home>/jobs/<job>/config.yaml
//! --dataset <version id> [--epochs …] [--imgsz …] [--batch-size …] [--seed …] [--weights …]`,
//! with the server's settings in its environment (database URL, artifact root, weights folder,
//! configuration file: [`crate::ServerConfig::trainer_env`]). Its stdout carries one JSON
//! progress event per line (`start`, `batch`, `epoch`, `done`); the job keeps the latest one.
//!
//! No value of a request names a file: the manifest is the project's stored manifest text,
//! written into the job folder inside the data dir; the dataset version is resolved against the
//! database; starting weights are `none`, `imagenet` (the trainer looks in its weights folder)
//! an experiment id of the same project and task, whose folder the database records, or
//! `model:<id>`, a registered model version whose bundle the registry verifies.
//!
//! Jobs live in memory ([`Jobs`]): at most [`crate::ServerConfig::max_jobs`] run at once, the
//! others wait `queued`. `POST /jobs/{id}/cancel` sends SIGINT to the trainer, which finishes
//! its batch, keeps the last completed epoch and records the experiment as `stopped`; the job
//! ends `cancelled`. On graceful server shutdown every running trainer gets SIGINT and is
//! waited for (bounded, then killed).
//!
//! The experiment itself is recorded in the database by the trainer, as for a CLI run; the job
//! points to it (`experiment`, `experiment_url`).

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sightline_core::Task;
use sightline_core::manifest::Weights;
use sightline_db::experiments::Status as ExperimentStatus;
use sightline_workflows::train::{Overrides, TrainEvent, TrainInvocation, TrainOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use utoipa::OpenApi;

use crate::AppState;
use crate::auth::{Engineer, Viewer};
use crate::error::ApiError;

mod progress;
mod request;
mod supervisor;

#[cfg(test)]
use progress::{apply_event, eta};
use request::{check, project_db_error, resolve_dataset, resolve_weights, trainer_invocation};
pub use supervisor::Jobs;
use supervisor::Launch;

/// Lines of the trainer's stderr kept with a job.
const STDERR_LINES: usize = 40;
/// Finished jobs kept in memory (oldest forgotten first).
const KEEP_FINISHED: usize = 500;

/// OpenAPI paths of this module (merged into `/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    paths(start_experiment, list_jobs, get_job, cancel_job),
    components(schemas(Job, JobStatus, JobProgress, JobParams, StartExperiment))
)]
pub struct JobsDoc;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{project}/experiments", post(start_experiment))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a free training slot.
    Queued,
    /// The trainer process is running.
    Running,
    /// The trainer completed every epoch (or stopped early by `patience`).
    Succeeded,
    /// The trainer failed (see `error` and `stderr_tail`).
    Failed,
    /// Cancelled: while queued, or the trainer stopped on SIGINT (last completed epoch kept).
    Cancelled,
}

impl JobStatus {
    fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// Body of `POST /projects/{project}/experiments`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartExperiment {
    /// `detector` (or `segment`) or `classifier` (or `classify`).
    pub task: String,
    /// Dataset version: id, unique prefix of at least 4 characters, or `latest` (default).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Epochs (1..=10000; default: the manifest's).
    #[serde(default)]
    pub epochs: Option<u32>,
    /// Input size, a multiple of 32 in 32..=2048 (default: the manifest's).
    #[serde(default)]
    pub imgsz: Option<u32>,
    /// Batch size (1..=1024; default: the manifest's).
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// Random seed (default: the manifest's).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Starting weights: `none`, `imagenet` (classifier; the file must be in the server's
    /// weights folder), the id of an experiment of this project and task (its best
    /// checkpoint), or `model:<id>` (a registered model version's bundle weights). Default:
    /// the manifest's `weights` when it is `none` or `imagenet`.
    #[serde(default)]
    pub weights: Option<String>,
    /// Compute device: `cpu` (default), `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: Option<String>,
    /// Worker threads of the trainer (0: one per core, default).
    #[serde(default)]
    pub workers: Option<u32>,
}

/// The parameters a job runs with (after validation and resolution).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobParams {
    /// Dataset version id (resolved).
    pub dataset_version: String,
    /// Epochs override.
    pub epochs: Option<u32>,
    /// Input size override.
    pub imgsz: Option<u32>,
    /// Batch size override.
    pub batch_size: Option<u32>,
    /// Seed override.
    pub seed: Option<u64>,
    /// Starting weights as requested (`none`, `imagenet`, an experiment id or `model:<id>`); `None`: the
    /// manifest's.
    pub weights: Option<String>,
    /// Device.
    pub device: String,
    /// Worker threads (0: one per core).
    pub workers: u32,
}

/// Latest progress reported by the trainer.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct JobProgress {
    /// Current epoch (0-based).
    pub epoch: Option<u64>,
    /// Epochs of the run.
    pub epochs: Option<u64>,
    /// Current batch (0-based) of the current epoch.
    pub batch: Option<u64>,
    /// Batches per epoch.
    pub batches: Option<u64>,
    /// Epochs completed.
    pub epochs_completed: u64,
    /// Latest training losses by name.
    #[schema(value_type = Object)]
    pub losses: serde_json::Value,
    /// Validation metrics of the last completed epoch.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// Fitness of the last completed epoch.
    pub fitness: Option<f64>,
    /// Estimated seconds left (from the pace since the trainer's `start` event).
    pub eta_s: Option<f64>,
}

/// A training job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// Project name.
    pub project: String,
    /// `segment` or `classify`.
    #[schema(value_type = String)]
    pub task: Task,
    /// Status.
    pub status: JobStatus,
    /// What it runs with.
    pub params: JobParams,
    /// Experiment id, once the trainer has created it.
    pub experiment: Option<String>,
    /// `/experiments/{id}` of the experiment, once known.
    pub experiment_url: Option<String>,
    /// Latest progress.
    pub progress: JobProgress,
    /// The trainer's final `done` event (status, best epoch, best metrics, weights).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// A cancel was requested.
    pub cancel_requested: bool,
    /// Trainer process id while it runs.
    pub pid: Option<u32>,
    /// Exit code of the trainer (`None` while running, or when ended by a signal).
    pub exit_code: Option<i32>,
    /// Why the job failed or was cancelled.
    pub error: Option<String>,
    /// Last lines of the trainer's stderr (kept when it fails).
    pub stderr_tail: Vec<String>,
    /// When the job was accepted.
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    /// When the trainer started.
    #[schema(value_type = Option<String>)]
    pub started_at: Option<DateTime<Utc>>,
    /// When the job ended.
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<DateTime<Utc>>,
}

/// Start a training run (an experiment) of the project's detector or classifier, as
/// `sightline train` would, in a child process. Returns the job (`Location: /jobs/{id}`);
/// follow it with `GET /jobs/{id}` and the experiment with `GET /experiments/{id}`.
/// Role: engineer.
#[utoipa::path(post, path = "/projects/{project}/experiments",
    params(("project" = String, Path, description = "Project name")),
    request_body(content = StartExperiment, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted: the job (queued or running)", body = Job),
        (status = 400, description = "Invalid task, number, device or weights", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, description = "Unknown project, dataset version or experiment", body = crate::error::ErrorBody),
        (status = 409, description = "No dataset version, or the manifest lacks the task's model", body = crate::error::ErrorBody),
        (status = 503, description = "This server cannot run trainers, or is shutting down", body = crate::error::ErrorBody)))]
pub async fn start_experiment(
    State(state): State<AppState>,
    Path(project): Path<String>,
    _caller: Engineer,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "send a JSON body such as {\"task\": \"classifier\", \"epochs\": 10}".into(),
        ));
    }
    let req: StartExperiment = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?;
    let task = check(&req)?;
    let db = state.registry().db();
    let p = sightline_db::projects::get(db, &project)
        .await
        .map_err(project_db_error)?;
    let what = match task {
        Task::Segment => "detector",
        Task::Classify => "classifier",
    };
    let model = p.manifest.model(task).ok_or_else(|| {
        ApiError::Conflict(format!(
            "project `{project}` has no `models.{what}` in its manifest; apply one that has"
        ))
    })?;
    let list = sightline_db::datasets::list(db, &project)
        .await
        .map_err(project_db_error)?;
    let dataset_version =
        resolve_dataset(&list, &project, req.dataset.as_deref().unwrap_or("latest"))?;
    let weights = resolve_weights(
        &state,
        &project,
        task,
        req.weights.as_deref(),
        Some(&model.weights),
    )
    .await?;
    let config = state.config();
    let Some(exe) = config.trainer.clone() else {
        return Err(ApiError::Unavailable(
            "this server has no trainer executable configured, so it cannot start training \
             runs; run `sightline serve` (which trains in child processes) or `sightline train`"
                .into(),
        ));
    };
    let params = JobParams {
        dataset_version,
        epochs: req.epochs,
        imgsz: req.imgsz,
        batch_size: req.batch_size,
        seed: req.seed,
        weights: req.weights.clone(),
        device: req.device.clone().unwrap_or_else(|| "cpu".into()),
        workers: req.workers.unwrap_or(0),
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = config.home.join("jobs").join(&id);
    let manifest_file = dir.join("config.yaml");
    fs_err::create_dir_all(&dir)
        .and_then(|()| fs_err::write(&manifest_file, p.manifest_yaml.as_bytes()))
        .map_err(|e| ApiError::internal("cannot prepare the job folder", e))?;
    let mut env: Vec<(String, String)> = vec![
        ("SIGHTLINE_ARTIFACTS_BACKEND".into(), "local".into()),
        (
            "SIGHTLINE_ARTIFACTS_ROOT".into(),
            config.artifacts.display().to_string(),
        ),
        ("RUST_LOG".into(), "warn".into()),
    ];
    env.extend(config.trainer_env.iter().cloned());
    let launch = Launch {
        exe,
        args: trainer_invocation(&config.home, task, &manifest_file, &params, &weights).to_args(),
        env,
        dir,
    };
    let job = Job {
        id: id.clone(),
        project: project.clone(),
        task,
        status: JobStatus::Queued,
        params,
        experiment: None,
        experiment_url: None,
        progress: JobProgress {
            losses: serde_json::json!({}),
            metrics: serde_json::json!({}),
            ..JobProgress::default()
        },
        result: None,
        cancel_requested: false,
        pid: None,
        exit_code: None,
        error: None,
        stderr_tail: Vec::new(),
        created_at: Utc::now(),
        started_at: None,
        finished_at: None,
    };
    state.jobs().submit(job.clone(), launch)?;
    let location = HeaderValue::from_str(&format!("/jobs/{id}"))
        .map_err(|e| ApiError::internal("the job's Location header", e))?;
    let current = state.jobs().get(&id).unwrap_or(job);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(current),
    )
        .into_response())
}

/// Filter of `GET /jobs`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Only this project's jobs.
    pub project: Option<String>,
}

/// Training jobs of this server process, newest first (finished ones are kept in memory until
/// the server restarts; experiments stay in the database). Role: viewer.
#[utoipa::path(get, path = "/jobs", params(JobsQuery),
    responses((status = 200, description = "Jobs", body = Vec<Job>)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    Query(q): Query<JobsQuery>,
    _caller: Viewer,
) -> Result<Response, ApiError> {
    Ok(Json(state.jobs().list(q.project.as_deref())).into_response())
}

/// One training job with its latest progress. Role: viewer.
#[utoipa::path(get, path = "/jobs/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "The job", body = Job),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _caller: Viewer,
) -> Result<Response, ApiError> {
    let job = state
        .jobs()
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("job `{id}` not found")))?;
    Ok(Json(job).into_response())
}

/// Options of `POST /jobs/{id}/cancel`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CancelQuery {
    /// Kill the trainer (SIGKILL) instead of asking it to stop after its current batch.
    #[serde(default)]
    pub force: bool,
}

/// Cancel a job. A queued job ends at once; a running trainer gets SIGINT, finishes its current
/// batch, keeps the last completed epoch (the experiment is recorded `stopped` and can be
/// resumed with `sightline train … --resume`) and the job ends `cancelled`. Role: engineer.
#[utoipa::path(post, path = "/jobs/{id}/cancel", params(("id" = String, Path), CancelQuery),
    responses((status = 202, description = "Cancelled or cancelling: the job", body = Job),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "The job has already ended", body = crate::error::ErrorBody)))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CancelQuery>,
    Engineer(caller): Engineer,
) -> Result<Response, ApiError> {
    let job = state
        .jobs()
        .cancel(&id, q.force, &format!("cancelled by {}", caller.name))?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(task: &str) -> StartExperiment {
        StartExperiment {
            task: task.into(),
            dataset: None,
            epochs: None,
            imgsz: None,
            batch_size: None,
            seed: None,
            weights: None,
            device: None,
            workers: None,
        }
    }

    #[test]
    fn checks_tasks_numbers_and_devices() {
        assert_eq!(check(&req("classifier")).ok(), Some(Task::Classify));
        assert_eq!(check(&req("segment")).ok(), Some(Task::Segment));
        assert!(matches!(check(&req("gan")), Err(ApiError::BadRequest(_))));
        let mut r = req("detector");
        r.imgsz = Some(100);
        assert!(matches!(check(&r), Err(ApiError::BadRequest(_))));
        r.imgsz = Some(96);
        r.epochs = Some(0);
        assert!(matches!(check(&r), Err(ApiError::BadRequest(_))));
        r.epochs = Some(2);
        r.device = Some("cuda:x".into());
        assert!(matches!(check(&r), Err(ApiError::BadRequest(_))));
        r.device = Some("cuda:1".into());
        assert!(check(&r).is_ok());
    }

    #[test]
    fn trainer_lines_fold_into_the_job() {
        let mut j = Job {
            id: "j".into(),
            project: "p".into(),
            task: Task::Classify,
            status: JobStatus::Running,
            params: JobParams {
                dataset_version: "v".into(),
                epochs: None,
                imgsz: None,
                batch_size: None,
                seed: None,
                weights: None,
                device: "cpu".into(),
                workers: 0,
            },
            experiment: None,
            experiment_url: None,
            progress: JobProgress::default(),
            result: None,
            cancel_requested: false,
            pid: None,
            exit_code: None,
            error: None,
            stderr_tail: Vec::new(),
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
        };
        let lines = [
            r#"{"dataset_version":"v","dir":"/a/e1","epochs":2,"event":"start","experiment":"e1","names":["ok","ng"],"resume_from_epoch":0,"task":"classify","train_images":8,"val_images":2}"#,
            "not an event",
            r#"{"event":"warmup"}"#,
            r#"{"batch":3,"batches":4,"epoch":0,"epochs":2,"event":"batch","losses":{"ce":0.5}}"#,
            r#"{"epoch":0,"event":"epoch","fitness":0.75,"losses":{"ce":0.25},"lr":0.01,"metrics":{"top1":0.75},"time_s":1.5}"#,
        ];
        for line in lines {
            if let Some(ev) = TrainEvent::from_line(line) {
                apply_event(&mut j, &ev, None);
            }
        }
        assert_eq!(j.experiment.as_deref(), Some("e1"));
        assert_eq!(j.experiment_url.as_deref(), Some("/experiments/e1"));
        let p = &j.progress;
        assert_eq!(
            (p.epoch, p.epochs, p.batch, p.batches),
            (Some(0), Some(2), Some(3), Some(4))
        );
        assert_eq!(p.epochs_completed, 1);
        assert_eq!(p.losses, serde_json::json!({"ce": 0.25}));
        assert_eq!(p.metrics, serde_json::json!({"top1": 0.75}));
        assert_eq!(p.fitness, Some(0.75));
        let done = r#"{"best_epoch":0,"best_fitness":0.75,"best_metrics":{"top1":0.75},"dir":"/a/e1","event":"done","experiment":"e1","records":[],"status":"completed","weights":{"best":"/a/e1/weights/best.safetensors","last":"/a/e1/weights/last.safetensors"}}"#;
        let ev = TrainEvent::from_line(done).unwrap();
        apply_event(&mut j, &ev, None);
        // the result is the trainer's line as it was printed
        let result = j.result.unwrap();
        assert_eq!(result.to_string(), done);
    }

    #[test]
    fn eta_follows_the_pace_since_start() {
        let p = JobProgress {
            epoch: Some(1),
            epochs: Some(4),
            batch: Some(4),
            batches: Some(10),
            epochs_completed: 1,
            ..JobProgress::default()
        };
        // 1.5 of 4 epochs done → 2.5/1.5 of the elapsed time left
        let t0 = Instant::now() - Duration::from_secs(3);
        let e = eta(&p, Some((t0, 0))).unwrap();
        assert!((e - 5.0).abs() < 0.5, "{e}");
        assert_eq!(eta(&p, None), None);
        // resumed at epoch 1: only half an epoch done since start, 2.5 left
        let e = eta(&p, Some((t0, 1))).unwrap();
        assert!((e - 15.0).abs() < 1.5, "{e}");
    }
}
