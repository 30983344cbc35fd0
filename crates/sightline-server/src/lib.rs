//! HTTP API and live inference service (axum): inspect, hot deployment, dynamic batching,
//! request logging, history, metrics.
//!
//! [`app`] builds the router over an [`AppState`]: every endpoint family owns a `router()` and
//! an OpenAPI doc, merged in [`routes`]. Handlers are thin wrappers over service functions
//! ([`inspect::inspect`], the registry), state their role with an extractor ([`auth`]) and fail
//! with the one [`ApiError`] type.
//!
//! - [`routes`]: [`app`], the middleware, and the families without a module of their own
//!   (health, inspect, projects, models, aliases).
//! - [`engine`]: deployed models per (project, task), dynamic batching, atomic hot swap.
//! - [`infer`]: the model seam ([`InspectModel`], [`ModelLoader`]).
//! - [`verdict`]: ok/ng/unknown with reasons, NG ratio tracking.
//! - [`metrics`]: Prometheus text at `/metrics`.
//! - [`auth`]: API tokens with roles; the role extractors.
//! - [`history`]: history listing/export/images and the review queue.
//! - [`corrections`]: operator corrections and the corrections → dataset version endpoint.
//! - [`catalog`]: project manifests and dataset versions.
//! - [`monitoring`]: confidence drift (KS vs the evaluation baseline) and alarms.
//! - [`uploads`]: creating labels, dataset versions (archive upload + ingest) and model versions over HTTP.
//! - [`jobs`]: training jobs started over HTTP (`POST /projects/{p}/experiments`).

pub mod auth;
pub mod catalog;
pub mod corrections;
pub mod engine;
pub mod error;
pub mod history;
pub mod infer;
pub mod inspect;
pub mod jobs;
pub mod log;
pub mod metrics;
pub mod monitoring;
pub mod notify;
pub mod routes;
pub mod serve;
pub mod ui;
pub mod uploads;
pub mod verdict;
pub mod vision;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use auth::{Caller, Role, Tokens};
pub use engine::{BatchConfig, Engine};
pub use error::ApiError;
pub use infer::{InspectModel, ModelLoader};
pub use routes::app;

use sightline_registry::Registry;

use crate::log::LogQueue;
use crate::metrics::Metrics;
use crate::verdict::NgTracker;

/// Server configuration that handlers need.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body (bytes).
    pub max_upload_bytes: usize,
    /// Artifact root (bundles, stored images). No request path reaches outside it.
    pub artifacts: PathBuf,
    /// NG-ratio rolling window (inspections per project).
    pub ng_window: usize,
    /// Sightline home (project dataset repositories live under `<home>/projects/<p>/datasets`).
    pub home: PathBuf,
    /// The `sightline` executable that runs training jobs as child processes (`sightline
    /// serve` sets its own); `None`: `POST /projects/{p}/experiments` answers 503.
    pub trainer: Option<PathBuf>,
    /// Extra environment of the trainer: the server's settings it must share (database URL,
    /// weights folder, configuration file). Home and artifact root are always passed.
    pub trainer_env: Vec<(String, String)>,
    /// Training jobs running at once (others wait queued).
    pub max_jobs: usize,
    /// Largest dataset archive accepted by `POST /projects/{p}/datasets` (bytes), separate from
    /// the image limit since archives are much larger.
    pub max_dataset_upload_bytes: usize,
    /// ONNX Runtime of this server: `POST /models` adds a checked `model.onnx` to the bundles
    /// it registers ([`vision::OnnxCheck`]); `None`: bundles registered here serve on Burn.
    pub onnxruntime: Option<sightline_onnx::attach::OrtRuntime>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 20 * 1024 * 1024,
            artifacts: PathBuf::from(".sightline/artifacts"),
            ng_window: 100,
            home: PathBuf::from(".sightline"),
            trainer: None,
            trainer_env: Vec::new(),
            max_jobs: 1,
            max_dataset_upload_bytes: DEFAULT_MAX_DATASET_UPLOAD_BYTES,
            onnxruntime: None,
        }
    }
}

/// Default largest dataset archive accepted by `POST /projects/{p}/datasets` (1 GiB):
/// [`ServerConfig::max_dataset_upload_bytes`], adjustable at run time with
/// [`AppState::set_max_dataset_upload_bytes`].
pub const DEFAULT_MAX_DATASET_UPLOAD_BYTES: usize = 1024 * 1024 * 1024;

/// Shared state of every handler (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    log: Option<LogQueue>,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    tokens: Tokens,
    tracker: NgTracker,
    jobs: jobs::Jobs,
    config: ServerConfig,
    max_dataset_upload_bytes: AtomicUsize,
}

impl AppState {
    /// Assemble the state.
    pub fn new(
        registry: Registry,
        log: Option<LogQueue>,
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        tokens: Tokens,
        config: ServerConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                log,
                engine,
                metrics,
                tokens,
                tracker: NgTracker::new(config.ng_window, 10_000),
                jobs: jobs::Jobs::new(config.max_jobs),
                max_dataset_upload_bytes: AtomicUsize::new(config.max_dataset_upload_bytes),
                config,
            }),
        }
    }

    /// The registry (and through it the database).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The request-log queue (`None`: logging off).
    pub fn log(&self) -> Option<&LogQueue> {
        self.inner.log.as_ref()
    }

    /// The inference engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// Metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// API tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// NG-ratio tracker.
    pub fn tracker(&self) -> &NgTracker {
        &self.inner.tracker
    }

    /// Training jobs started over HTTP.
    pub fn jobs(&self) -> &jobs::Jobs {
        &self.inner.jobs
    }

    /// Configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Largest dataset archive accepted by `POST /projects/{p}/datasets` (bytes); separate from
    /// [`ServerConfig::max_upload_bytes`] (images), since archives are much larger.
    pub fn max_dataset_upload_bytes(&self) -> usize {
        self.inner.max_dataset_upload_bytes.load(Ordering::Relaxed)
    }

    /// Change the dataset archive limit while serving (initially
    /// [`ServerConfig::max_dataset_upload_bytes`]).
    pub fn set_max_dataset_upload_bytes(&self, bytes: usize) {
        self.inner
            .max_dataset_upload_bytes
            .store(bytes, Ordering::Relaxed);
    }
}

/// Bring every slot in line with the `production` aliases: deploy (in the background) each
/// aliased version that is neither serving nor loading. Called at start, after alias changes,
/// and periodically so that several processes sharing one database converge.
pub async fn reconcile(state: &AppState) -> Result<usize, ApiError> {
    let aliases = state
        .registry()
        .aliases(None, None)
        .await
        .map_err(ApiError::from)?;
    let mut started = 0;
    for a in aliases
        .into_iter()
        .filter(|a| a.alias == sightline_registry::PRODUCTION)
    {
        let status = state
            .engine()
            .slot(&a.project, a.task)
            .map(|s| s.status())
            .unwrap_or_default();
        let failed_same = status
            .last_error
            .as_ref()
            .is_some_and(|f| f.model_version_id == a.model_version_id);
        if status.serving_id == Some(a.model_version_id)
            || status.loading_id == Some(a.model_version_id)
            || failed_same
        {
            continue;
        }
        let version = state.registry().get(a.model_version_id).await?;
        let engine = state.engine().clone();
        engine.mark_loading(&a.project, a.task, a.model_version_id);
        started += 1;
        tokio::spawn(async move {
            let _ = engine.deploy(version).await;
        });
    }
    Ok(started)
}
