//! The live inference engine: one slot per (project, task) holding the deployed model behind an
//! atomic pointer, a dynamic batcher per slot, and background hot deployment.
//!
//! - **Batching**: requests queue on a bounded channel; a worker takes the first job, then waits
//!   at most `max_wait` for up to `max_batch` jobs, snapshots the current model and runs the batch
//!   on the blocking pool.
//! - **Hot swap**: [`Engine::deploy`] opens the bundle (verifying checksums), loads and warms the
//!   model off the request path, then stores it with one atomic pointer swap. A batch that already
//!   took its snapshot finishes on the old model; a failed load leaves the old model serving and
//!   is recorded in the slot status.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use image::DynamicImage;
use serde::Serialize;
use sightline_core::Task;
use sightline_registry::bundle::BundleStore;
use sightline_registry::{Bundle, ModelVersion};
use tokio::sync::{mpsc, oneshot};

use crate::infer::{InferError, InspectModel, ModelLoader, ModelOutput};
use crate::metrics::Metrics;

/// Batching parameters.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Largest batch per forward pass.
    pub max_batch: usize,
    /// Longest time the first request of a batch waits for company.
    pub max_wait: Duration,
    /// Capacity of each slot's queue; a full queue answers 503.
    pub queue_capacity: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch: 8,
            max_wait: Duration::from_millis(5),
            queue_capacity: 1024,
        }
    }
}

/// A model in service.
pub struct Deployed {
    /// Its registry record.
    pub version: ModelVersion,
    /// The runnable model.
    pub model: Arc<dyn InspectModel>,
    /// When it started serving (RFC 3339).
    pub deployed_at: String,
}

/// Deployment state of a slot, as reported by the API.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SlotStatus {
    /// Model version id being served.
    pub serving_id: Option<i64>,
    /// Version number being served.
    pub serving_version: Option<i64>,
    /// Model version id being loaded now.
    pub loading_id: Option<i64>,
    /// Last failed deployment: version id and message.
    pub last_error: Option<DeployFailure>,
}

/// A failed deployment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeployFailure {
    /// The version that failed to deploy.
    pub model_version_id: i64,
    /// Why.
    pub message: String,
    /// When (RFC 3339).
    pub at: String,
}

struct Job {
    image: Arc<DynamicImage>,
    reply: oneshot::Sender<Result<(Arc<Deployed>, ModelOutput), EngineError>>,
}

/// One (project, task) slot.
pub struct Slot {
    current: ArcSwapOption<Deployed>,
    tx: mpsc::Sender<Job>,
    status: Mutex<SlotStatus>,
}

impl Slot {
    /// The model serving now.
    pub fn current(&self) -> Option<Arc<Deployed>> {
        self.current.load_full()
    }

    /// Deployment status.
    pub fn status(&self) -> SlotStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Engine errors seen by request handlers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// No model is deployed for the project + task.
    #[error("no {task} model is deployed for project `{project}`")]
    NoModel {
        /// Project.
        project: String,
        /// Task.
        task: Task,
    },
    /// The batching queue is full.
    #[error("the inference queue is full; retry later")]
    Overloaded,
    /// The model failed.
    #[error("{0}")]
    Inference(String),
    /// Deployment failed (the previous model keeps serving).
    #[error("deployment of model version {id} failed: {message}")]
    Deploy {
        /// Model version id.
        id: i64,
        /// Why.
        message: String,
    },
}

/// Slots plus the loader and batching configuration.
pub struct Engine {
    slots: RwLock<HashMap<(String, Task), Arc<Slot>>>,
    loader: Arc<dyn ModelLoader>,
    batch: BatchConfig,
    bundles: BundleStore,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// A new engine; bundles are opened in place under the local folder `artifacts` (see
    /// [`Engine::with_bundle_store`] for another store).
    pub fn new(
        loader: Arc<dyn ModelLoader>,
        batch: BatchConfig,
        artifacts: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            slots: RwLock::new(HashMap::new()),
            loader,
            batch,
            bundles: BundleStore::local(artifacts),
            metrics,
        }
    }

    /// Take bundles from `bundles` (e.g. an S3 store with a local cache): each deployment
    /// fetches and verifies the bundle before the loader sees it.
    pub fn with_bundle_store(mut self, bundles: BundleStore) -> Self {
        self.bundles = bundles;
        self
    }

    /// The slot of a project + task, if one exists.
    pub fn slot(&self, project: &str, task: Task) -> Option<Arc<Slot>> {
        self.slots
            .read()
            .ok()
            .and_then(|s| s.get(&(project.to_string(), task)).cloned())
    }

    /// Every slot with its key.
    pub fn slots(&self) -> Vec<(String, Task, Arc<Slot>)> {
        let Ok(s) = self.slots.read() else {
            return Vec::new();
        };
        let mut v: Vec<_> = s
            .iter()
            .map(|((p, t), slot)| (p.clone(), *t, slot.clone()))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    }

    fn slot_or_create(&self, project: &str, task: Task) -> Arc<Slot> {
        if let Some(s) = self.slot(project, task) {
            return s;
        }
        let Ok(mut slots) = self.slots.write() else {
            // A poisoned lock means a panic elsewhere; build a detached slot so callers fail cleanly.
            let (tx, _rx) = mpsc::channel(1);
            return Arc::new(Slot {
                current: ArcSwapOption::empty(),
                tx,
                status: Mutex::new(SlotStatus::default()),
            });
        };
        slots
            .entry((project.to_string(), task))
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(self.batch.queue_capacity);
                let slot = Arc::new(Slot {
                    current: ArcSwapOption::empty(),
                    tx,
                    status: Mutex::new(SlotStatus::default()),
                });
                tokio::spawn(batch_worker(
                    Arc::downgrade(&slot),
                    rx,
                    self.batch,
                    self.metrics.clone(),
                ));
                slot
            })
            .clone()
    }

    /// Record that `id` is about to be deployed into `project` + `task` (so that periodic
    /// reconciliation does not start it twice).
    pub fn mark_loading(&self, project: &str, task: Task, id: i64) {
        let slot = self.slot_or_create(project, task);
        if let Ok(mut st) = slot.status.lock() {
            st.loading_id = Some(id);
        }
    }

    /// Run one image through the deployed model of `project` + `task` (batched with others).
    /// Returns the model that ran it and its output.
    pub async fn infer(
        &self,
        project: &str,
        task: Task,
        image: Arc<DynamicImage>,
    ) -> Result<(Arc<Deployed>, ModelOutput), EngineError> {
        let no_model = || EngineError::NoModel {
            project: project.to_string(),
            task,
        };
        let slot = self.slot(project, task).ok_or_else(no_model)?;
        if slot.current.load().is_none() {
            return Err(no_model());
        }
        let (reply, rx) = oneshot::channel();
        self.metrics
            .inference_queue_depth
            .fetch_add(1, Ordering::Relaxed);
        if slot.tx.try_send(Job { image, reply }).is_err() {
            self.metrics
                .inference_queue_depth
                .fetch_sub(1, Ordering::Relaxed);
            return Err(EngineError::Overloaded);
        }
        rx.await
            .map_err(|_| EngineError::Inference("the inference worker stopped".into()))?
    }

    /// Load `version`'s bundle, verify, warm up and swap it in. Blocks the calling task until
    /// done (spawn it to deploy in the background). On failure the previous model keeps serving
    /// and the failure is recorded in the slot status.
    pub async fn deploy(&self, version: ModelVersion) -> Result<(), EngineError> {
        let slot = self.slot_or_create(&version.project, version.task);
        if let Ok(mut st) = slot.status.lock() {
            st.loading_id = Some(version.id);
        }
        let loader = self.loader.clone();
        let v = version.clone();
        // Fetched (remote store) and verified against bundle.json before the loader sees it.
        let loaded = match self.bundles.open_version(&version).await {
            Ok(bundle) => tokio::task::spawn_blocking(move || load_and_warm(&*loader, &bundle, &v))
                .await
                .map_err(|e| format!("loader task failed: {e}"))
                .and_then(|r| r),
            Err(e) => Err(e.to_string()),
        };
        let mut st = slot.status.lock().ok();
        if let Some(st) = st.as_deref_mut() {
            st.loading_id = None;
        }
        match loaded {
            Ok(model) => {
                let deployed = Arc::new(Deployed {
                    version: version.clone(),
                    model,
                    deployed_at: sightline_registry::time::now_rfc3339(),
                });
                slot.current.store(Some(deployed));
                if let Some(st) = st.as_deref_mut() {
                    st.serving_id = Some(version.id);
                    st.serving_version = Some(version.version);
                }
                self.metrics.deploys_total.fetch_add(1, Ordering::Relaxed);
                self.metrics.set_model_version(
                    &version.project,
                    version.task.as_str(),
                    version.version,
                );
                tracing::info!(model = %version.display_name(), "model deployed");
                Ok(())
            }
            Err(message) => {
                if let Some(st) = st.as_deref_mut() {
                    st.last_error = Some(DeployFailure {
                        model_version_id: version.id,
                        message: message.clone(),
                        at: sightline_registry::time::now_rfc3339(),
                    });
                }
                self.metrics
                    .deploy_failures_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(model = %version.display_name(), %message, "deployment failed; previous model keeps serving");
                Err(EngineError::Deploy {
                    id: version.id,
                    message,
                })
            }
        }
    }
}

fn load_and_warm(
    loader: &dyn ModelLoader,
    bundle: &Bundle,
    version: &ModelVersion,
) -> Result<Arc<dyn InspectModel>, String> {
    if bundle.manifest.task != version.task || bundle.manifest.version != version.version {
        return Err(format!(
            "bundle {} holds {} v{}, not {}",
            bundle.dir.display(),
            bundle.manifest.task,
            bundle.manifest.version,
            version.display_name()
        ));
    }
    let model = loader.load(bundle).map_err(|e| e.to_string())?;
    if model.task() != version.task {
        return Err(format!(
            "the loaded model performs {}, the registry says {}",
            model.task(),
            version.task
        ));
    }
    let side = bundle.manifest.preprocessing.warmup_size().clamp(32, 2048);
    let warm = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        side,
        side,
        image::Rgb([114, 114, 114]),
    ));
    let out = model
        .infer(&[&warm])
        .map_err(|e| format!("warm-up failed: {e}"))?;
    if out.len() != 1 {
        return Err(format!(
            "warm-up returned {} outputs for 1 image",
            out.len()
        ));
    }
    Ok(model)
}

async fn batch_worker(
    slot: std::sync::Weak<Slot>,
    mut rx: mpsc::Receiver<Job>,
    cfg: BatchConfig,
    metrics: Arc<Metrics>,
) {
    let max_batch = cfg.max_batch.max(1);
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + cfg.max_wait;
        while jobs.len() < max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) | Err(_) => break,
            }
        }
        metrics
            .inference_queue_depth
            .fetch_sub(jobs.len() as i64, Ordering::Relaxed);
        let Some(slot) = slot.upgrade() else { break };
        // Snapshot: this batch runs on this model even if a swap happens meanwhile.
        let Some(deployed) = slot.current.load_full() else {
            for job in jobs {
                let _ = job.reply.send(Err(EngineError::Inference(
                    "no model is deployed".to_string(),
                )));
            }
            continue;
        };
        drop(slot);
        let images: Vec<Arc<DynamicImage>> = jobs.iter().map(|j| j.image.clone()).collect();
        let model = deployed.model.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let refs: Vec<&DynamicImage> = images.iter().map(|i| &**i).collect();
            model.infer(&refs)
        })
        .await;
        tracing::debug!(
            batch = jobs.len(),
            ms = started.elapsed().as_millis() as u64,
            "batch done"
        );
        match result {
            Ok(Ok(outputs)) if outputs.len() == jobs.len() => {
                for (job, out) in jobs.into_iter().zip(outputs) {
                    let _ = job.reply.send(Ok((deployed.clone(), out)));
                }
            }
            Ok(Ok(outputs)) => {
                let msg = format!(
                    "model returned {} outputs for {} images",
                    outputs.len(),
                    jobs.len()
                );
                for job in jobs {
                    let _ = job.reply.send(Err(EngineError::Inference(msg.clone())));
                }
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(EngineError::Inference(msg.clone())));
                }
            }
            Err(e) => {
                let msg = format!("inference task panicked: {e}");
                for job in jobs {
                    let _ = job.reply.send(Err(EngineError::Inference(msg.clone())));
                }
            }
        }
    }
}

impl From<InferError> for EngineError {
    fn from(e: InferError) -> Self {
        EngineError::Inference(e.to_string())
    }
}
