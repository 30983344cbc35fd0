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

/// What a job task needs to start its trainer.
struct Launch {
    exe: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    dir: PathBuf,
}

struct Table {
    jobs: HashMap<String, Job>,
    /// Ids, oldest first.
    order: VecDeque<String>,
    /// Jobs waiting for a slot, in submission order (cancelled ones are skipped).
    queue: VecDeque<(String, Launch)>,
    /// Trainers running now.
    running: usize,
    /// Most trainers at once.
    max: usize,
    shutting_down: bool,
}

struct JobsInner {
    table: Mutex<Table>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The in-memory job registry (cheap to clone).
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<JobsInner>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl Jobs {
    /// A registry running at most `max_concurrent` trainers at once (at least one).
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            inner: Arc::new(JobsInner {
                table: Mutex::new(Table {
                    jobs: HashMap::new(),
                    order: VecDeque::new(),
                    queue: VecDeque::new(),
                    running: 0,
                    max: max_concurrent.max(1),
                    shutting_down: false,
                }),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // a panic while holding the lock leaves plain data behind: keep using it
        self.inner
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        if let Some(j) = self.table().jobs.get_mut(id) {
            f(j);
        }
    }

    /// One job.
    pub fn get(&self, id: &str) -> Option<Job> {
        self.table().jobs.get(id).cloned()
    }

    /// Jobs, newest first, optionally of one project.
    pub fn list(&self, project: Option<&str>) -> Vec<Job> {
        let t = self.table();
        t.order
            .iter()
            .rev()
            .filter_map(|id| t.jobs.get(id))
            .filter(|j| project.is_none_or(|p| j.project == p))
            .cloned()
            .collect()
    }

    /// Accept a job: queued, then started in submission order as slots free up.
    fn submit(&self, job: Job, launch: Launch) -> Result<(), ApiError> {
        self.insert(job, launch)?;
        self.pump();
        Ok(())
    }

    fn insert(&self, job: Job, launch: Launch) -> Result<(), ApiError> {
        let mut t = self.table();
        if t.shutting_down {
            return Err(ApiError::Unavailable(
                "the server is shutting down and accepts no training job".into(),
            ));
        }
        // forget the oldest finished jobs beyond the limit
        let finished = t
            .order
            .iter()
            .filter(|id| t.jobs.get(*id).is_some_and(|j| j.status.is_final()))
            .count();
        if finished >= KEEP_FINISHED {
            let drop_id = t
                .order
                .iter()
                .find(|id| t.jobs.get(*id).is_some_and(|j| j.status.is_final()))
                .cloned();
            if let Some(d) = drop_id {
                t.jobs.remove(&d);
                t.order.retain(|i| i != &d);
            }
        }
        t.order.push_back(job.id.clone());
        t.queue.push_back((job.id.clone(), launch));
        t.jobs.insert(job.id.clone(), job);
        Ok(())
    }

    /// Start queued jobs (oldest first) while slots are free.
    fn pump(&self) {
        let mut start = Vec::new();
        {
            let mut t = self.table();
            while t.running < t.max && !t.shutting_down {
                let Some((id, launch)) = t.queue.pop_front() else {
                    break;
                };
                let Some(j) = t.jobs.get_mut(&id) else {
                    continue;
                };
                if j.status != JobStatus::Queued {
                    continue;
                }
                j.status = JobStatus::Running;
                j.started_at = Some(Utc::now());
                t.running += 1;
                start.push((id, launch));
            }
        }
        for (id, launch) in start {
            let jobs = self.clone();
            let handle = tokio::spawn(async move {
                jobs.run(id, launch).await;
                {
                    let mut t = jobs.table();
                    t.running = t.running.saturating_sub(1);
                }
                jobs.pump();
            });
            let mut tasks = self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            tasks.retain(|h| !h.is_finished());
            tasks.push(handle);
        }
    }

    async fn run(&self, id: String, launch: Launch) {
        let mut cmd = tokio::process::Command::new(&launch.exe);
        cmd.args(&launch.args)
            .current_dir(&launch.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        // its own process group: a Ctrl-C at the server's terminal reaches the server, which
        // then stops the trainer itself (SIGINT, bounded wait)
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.update(&id, |j| {
                    finish(
                        j,
                        JobStatus::Failed,
                        Some(format!(
                            "cannot start the trainer {}: {e}",
                            launch.exe.display()
                        )),
                    );
                });
                return;
            }
        };
        let pid = child.id();
        self.update(&id, |j| {
            j.pid = pid;
            // a cancel that arrived between the slot and the spawn
            if j.cancel_requested
                && let Some(p) = pid
            {
                let _ = signal(p, false);
            }
        });
        tracing::info!(job = %id, pid = ?pid, "training job started");
        let stderr_task = child.stderr.take().map(|err| {
            tokio::spawn(async move {
                let mut tail: VecDeque<String> = VecDeque::new();
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "sightline_server::jobs::trainer", "{line}");
                    if tail.len() == STDERR_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                tail
            })
        });
        let mut started: Option<(Instant, u64)> = None;
        let mut done_status: Option<ExperimentStatus> = None;
        if let Some(out) = child.stdout.take() {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // anything that is not an event (a stray print, a garbled line) is skipped
                let Some(ev) = TrainEvent::from_line(&line) else {
                    tracing::debug!(
                        target: "sightline_server::jobs::trainer",
                        "not a progress event: {line}"
                    );
                    continue;
                };
                match &ev {
                    TrainEvent::Start(s) => {
                        started = Some((Instant::now(), s.resume_from_epoch as u64));
                    }
                    TrainEvent::Done(d) => done_status = Some(d.status),
                    TrainEvent::Batch(_) | TrainEvent::Epoch(_) => {}
                }
                self.update(&id, |j| apply_event(j, &ev, started));
            }
        }
        let waited = child.wait().await;
        let tail: Vec<String> = match stderr_task {
            Some(t) => t.await.map(Vec::from).unwrap_or_default(),
            None => Vec::new(),
        };
        self.update(&id, |j| {
            j.pid = None;
            let (code, signal) = match &waited {
                Ok(s) => (s.code(), exit_signal(s)),
                Err(_) => (None, None),
            };
            j.exit_code = code;
            let status = if j.cancel_requested {
                JobStatus::Cancelled
            } else if code == Some(0) && done_status == Some(ExperimentStatus::Completed) {
                JobStatus::Succeeded
            } else if done_status == Some(ExperimentStatus::Stopped) {
                // stopped by a SIGINT from outside the server (the trainer exits 130)
                JobStatus::Cancelled
            } else {
                JobStatus::Failed
            };
            let error = match status {
                JobStatus::Failed => Some(match (&waited, code, signal) {
                    (Err(e), _, _) => format!("waiting for the trainer: {e}"),
                    (_, Some(c), _) => format!(
                        "the trainer exited with code {c}: {}",
                        tail.last().map_or("(no message)", String::as_str)
                    ),
                    (_, None, Some(s)) => format!("the trainer was killed by signal {s}"),
                    _ => "the trainer ended without reporting".to_string(),
                }),
                JobStatus::Cancelled => Some(match j.error.take() {
                    Some(e) => e,
                    None => "cancelled".to_string(),
                }),
                _ => None,
            };
            if status == JobStatus::Failed {
                j.stderr_tail = tail.clone();
            }
            finish(j, status, error);
        });
        tracing::info!(job = %id, "training job ended");
    }

    /// Cancel a job: a queued one ends at once, a running trainer gets SIGINT (`force`:
    /// SIGKILL). Refused for a finished job.
    pub fn cancel(&self, id: &str, force: bool, reason: &str) -> Result<Job, ApiError> {
        let mut t = self.table();
        let j = t
            .jobs
            .get_mut(id)
            .ok_or_else(|| ApiError::NotFound(format!("job `{id}` not found")))?;
        match j.status {
            JobStatus::Queued => {
                finish(j, JobStatus::Cancelled, Some(reason.to_string()));
            }
            JobStatus::Running => {
                // a second SIGINT would make the trainer abort without recording the end:
                // only the first cancel (or a forced one) signals
                let first = !j.cancel_requested;
                if first {
                    j.error = Some(reason.to_string());
                }
                j.cancel_requested = true;
                if let Some(pid) = j.pid
                    && (first || force)
                {
                    signal(pid, force).map_err(|e| {
                        ApiError::internal(format!("cannot signal the trainer (pid {pid})"), e)
                    })?;
                }
            }
            s => {
                return Err(ApiError::Conflict(format!(
                    "job `{id}` has already ended ({})",
                    s.as_str()
                )));
            }
        }
        Ok(j.clone())
    }

    /// Graceful shutdown: accept no new job, cancel the queued ones, send SIGINT to every
    /// running trainer and wait up to `grace` for them (then SIGKILL and a short wait).
    pub async fn shutdown(&self, grace: Duration) {
        let running: Vec<String> = {
            let mut t = self.table();
            t.shutting_down = true;
            t.queue.clear();
            t.jobs
                .values()
                .filter(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running))
                .map(|j| j.id.clone())
                .collect()
        };
        for id in &running {
            let _ = self.cancel(id, false, "the server shut down");
        }
        let handles: Vec<_> = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if handles.is_empty() {
            return;
        }
        tracing::info!(jobs = running.len(), "waiting for training jobs to stop");
        let deadline = tokio::time::Instant::now() + grace;
        let mut left = Vec::new();
        for mut h in handles {
            if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                left.push(h);
            }
        }
        if left.is_empty() {
            return;
        }
        tracing::warn!(
            jobs = left.len(),
            "training jobs did not stop within {grace:?}; killing them"
        );
        let pids: Vec<u32> = self.table().jobs.values().filter_map(|j| j.pid).collect();
        for pid in pids {
            let _ = signal(pid, true);
        }
        for h in left {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
    }
}

fn finish(j: &mut Job, status: JobStatus, error: Option<String>) {
    j.status = status;
    j.error = error;
    j.finished_at = Some(Utc::now());
    j.progress.eta_s = None;
}

#[cfg(unix)]
fn exit_signal(s: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.signal()
}

#[cfg(not(unix))]
fn exit_signal(_: &std::process::ExitStatus) -> Option<i32> {
    None
}

#[cfg(unix)]
fn signal(pid: u32, kill: bool) -> std::io::Result<()> {
    use rustix::process::{Pid, Signal, kill_process};
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("invalid pid {pid}")))?;
    kill_process(pid, if kill { Signal::KILL } else { Signal::INT }).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn signal(_pid: u32, _kill: bool) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "cancelling a training job needs a Unix signal (SIGINT)",
    ))
}

/// Fold one progress event of the trainer into the job.
fn apply_event(j: &mut Job, ev: &TrainEvent, started: Option<(Instant, u64)>) {
    let p = &mut j.progress;
    match ev {
        TrainEvent::Start(s) => {
            j.experiment = Some(s.experiment.clone());
            j.experiment_url = Some(format!("/experiments/{}", s.experiment));
            p.epochs = Some(u64::from(s.epochs));
            p.epochs_completed = s.resume_from_epoch as u64;
        }
        TrainEvent::Batch(b) => {
            p.epoch = Some(b.epoch as u64);
            p.epochs = Some(b.epochs as u64);
            p.batch = Some(b.batch as u64);
            p.batches = Some(b.batches as u64);
            p.losses = serde_json::to_value(&b.losses).unwrap_or_default();
        }
        TrainEvent::Epoch(r) => {
            p.epoch = Some(r.epoch as u64);
            p.epochs_completed = r.epoch as u64 + 1;
            p.losses = serde_json::to_value(&r.losses).unwrap_or_default();
            p.metrics = serde_json::to_value(&r.metrics).unwrap_or_default();
            p.fitness = Some(r.fitness);
        }
        TrainEvent::Done(d) => {
            j.experiment = Some(d.experiment.clone());
            j.experiment_url = Some(format!("/experiments/{}", d.experiment));
            // the event as the trainer printed it (keys sorted, with its `event` tag)
            j.result = Some(ev.to_value());
            return;
        }
    }
    p.eta_s = eta(p, started);
}

/// Seconds left, from the fraction of the run done since the trainer's `start` event.
fn eta(p: &JobProgress, started: Option<(Instant, u64)>) -> Option<f64> {
    let (t0, first) = started?;
    let epochs = p.epochs? as f64;
    let first = first as f64;
    let pos = match (p.batch, p.batches, p.epoch) {
        (Some(b), Some(n), Some(e)) if n > 0 && e + 1 > p.epochs_completed => {
            e as f64 + (b + 1) as f64 / n as f64
        }
        _ => p.epochs_completed as f64,
    };
    let done = (pos - first) / (epochs - first);
    if !(done > 0.0 && done.is_finite()) {
        return None;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    Some((elapsed * (1.0 - done) / done).max(0.0))
}

/// The jobs API words a missing project as "project `x` not found" (not the database's
/// "does not exist (create it with ...)" text); every other database error maps as usual.
fn project_db_error(e: sightline_db::DbError) -> ApiError {
    match e {
        sightline_db::DbError::ProjectNotFound(p) => {
            ApiError::NotFound(format!("project `{p}` not found"))
        }
        other => other.into(),
    }
}

/// Validate the numbers and names of a request.
fn check(req: &StartExperiment) -> Result<Task, ApiError> {
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
fn resolve_dataset(
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
async fn resolve_weights(
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
fn trainer_invocation(
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
