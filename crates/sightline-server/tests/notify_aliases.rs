//! Cross-process alias convergence: two servers (`serve::start`, each with its own pool, engine
//! and alias watch) share one database. The alias poll is set to 60 s, so only PostgreSQL
//! LISTEN/NOTIFY can bring the second server onto a new version within 2 s; the listener's
//! connection is then killed from outside and convergence must still happen (reconnect). On
//! SQLite (no notifications) the poll alone converges.
//!
//! The loaded "model" is test-only (`TagLoader`: the weights file is JSON naming fixed class
//! probabilities), so that the measured time is the notification path, not model loading; the
//! real vision models are served in `server_api` and the CLI's `server_e2e`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::DynamicImage;
use sightline_core::{Manifest, Task};
use sightline_db::testing::{TestDb, fresh_postgres, fresh_sqlite};
use sightline_registry::{Bundle, ModelVersion, PRODUCTION, RegisterRequest, Registry};
use sightline_server::ServerConfig;
use sightline_server::engine::BatchConfig;
use sightline_server::infer::{Classification, InferError, InspectModel, ModelLoader, ModelOutput};
use sightline_server::serve::{Running, ServeOptions, start};

const MANIFEST: &str = "project: line_n
labels: [ok, ng]
models:
  classifier:
    name: mobilenet_v3_small
    weights: none
";

struct TagModel {
    labels: Vec<String>,
    probs: Vec<f32>,
}

impl InspectModel for TagModel {
    fn task(&self) -> Task {
        Task::Classify
    }
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn infer(&self, images: &[&DynamicImage]) -> Result<Vec<ModelOutput>, InferError> {
        Ok(images
            .iter()
            .map(|_| {
                ModelOutput::Classify(Classification {
                    probabilities: self.probs.clone(),
                })
            })
            .collect())
    }
}

struct TagLoader;

impl ModelLoader for TagLoader {
    fn load(&self, bundle: &Bundle) -> Result<Arc<dyn InspectModel>, InferError> {
        let bytes =
            fs_err::read(bundle.weights_path()).map_err(|e| InferError::Load(e.to_string()))?;
        let probs: Vec<f32> =
            serde_json::from_slice(&bytes).map_err(|e| InferError::Load(e.to_string()))?;
        Ok(Arc::new(TagModel {
            labels: bundle.manifest.labels.clone(),
            probs,
        }))
    }
}

async fn register(registry: &Registry, dir: &Path, n: usize) -> ModelVersion {
    let ckpt = dir.join(format!("w{n}.json"));
    fs_err::write(&ckpt, format!("[0.{n}, 0.5]")).unwrap();
    registry
        .register(RegisterRequest {
            manifest: Manifest::parse(MANIFEST, "m.yaml").unwrap(),
            task: None,
            checkpoint: ckpt,
            experiment_id: None,
            dataset_version: None,
            evaluation_report: None,
            note: None,
            alias: None,
            actor: "test".into(),
            onnx: None,
        })
        .await
        .unwrap()
}

async fn server(url: &str, artifacts: &Path, poll: Duration) -> Running {
    start(
        ServeOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            database_url: url.to_string(),
            config: ServerConfig {
                artifacts: artifacts.to_path_buf(),
                home: artifacts.to_path_buf(),
                ..ServerConfig::default()
            },
            tokens: Vec::new(),
            batch: BatchConfig::default(),
            log_queue: None,
            poll_interval: poll,
        },
        Arc::new(TagLoader),
    )
    .await
    .unwrap()
}

/// The version that answers an inference on `s` now (through the engine's request path).
async fn answering(s: &Running) -> Option<i64> {
    let img = Arc::new(DynamicImage::new_rgb8(8, 8));
    s.state()
        .engine()
        .infer("line_n", Task::Classify, img)
        .await
        .ok()
        .map(|(d, _)| d.version.version)
}

/// Seconds until `s` answers with `version` (panics after `limit`).
async fn converge(s: &Running, version: i64, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if answering(s).await == Some(version) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "server {} still answers with {:?}, not v{version}, after {limit:?}",
            s.addr(),
            answering(s).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Setup {
    t: TestDb,
    _tmp: tempfile::TempDir,
    artifacts: std::path::PathBuf,
    registry: Registry,
    v: Vec<ModelVersion>,
}

async fn setup(t: TestDb) -> Setup {
    sightline_db::projects::apply(
        &t.db,
        &Manifest::parse(MANIFEST, "m.yaml").unwrap(),
        MANIFEST,
        false,
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let artifacts = tmp.path().join("artifacts");
    let registry = Registry::new(t.db.clone(), artifacts.clone());
    let mut v = Vec::new();
    for n in 1..=3 {
        v.push(register(&registry, tmp.path(), n).await);
    }
    registry
        .set_alias(v[0].id, PRODUCTION, "test")
        .await
        .unwrap();
    Setup {
        t,
        _tmp: tmp,
        artifacts,
        registry,
        v,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_servers_converge_on_alias_change_through_notify() {
    let s = setup(fresh_postgres().await.unwrap()).await;
    let poll = Duration::from_secs(60);
    let a = server(&s.t.url, &s.artifacts, poll).await;
    let b = server(&s.t.url, &s.artifacts, poll).await;
    converge(&a, 1, Duration::from_secs(10)).await;
    converge(&b, 1, Duration::from_secs(10)).await;

    // The alias moves through server A's registry (as `POST /aliases` on A would do it).
    a.state()
        .registry()
        .set_alias(s.v[1].id, PRODUCTION, "test")
        .await
        .unwrap();
    let took = converge(&b, 2, Duration::from_secs(2)).await;
    converge(&a, 2, Duration::from_secs(2)).await;
    eprintln!("server B serves v2 {took:?} after the alias change");

    // Kill every LISTEN connection from outside; the listeners reconnect and still hear the next
    // change (from a third party: the test's own registry).
    let killed = std::process::Command::new("psql")
        .args([
            s.t.url.as_str(),
            "-At",
            "-c",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        ])
        .output()
        .expect("psql (the PostgreSQL client) is needed for this test");
    assert!(killed.status.success(), "{killed:?}");
    assert_eq!(
        String::from_utf8_lossy(&killed.stdout).trim(),
        "2",
        "{killed:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.registry
        .set_alias(s.v[2].id, PRODUCTION, "test")
        .await
        .unwrap();
    converge(&a, 3, Duration::from_secs(3)).await;
    converge(&b, 3, Duration::from_secs(3)).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_servers_converge_by_polling() {
    let s = setup(fresh_sqlite().await.unwrap()).await;
    let poll = Duration::from_millis(200);
    let a = server(&s.t.url, &s.artifacts, poll).await;
    let b = server(&s.t.url, &s.artifacts, poll).await;
    converge(&a, 1, Duration::from_secs(10)).await;
    converge(&b, 1, Duration::from_secs(10)).await;
    s.registry
        .set_alias(s.v[1].id, PRODUCTION, "test")
        .await
        .unwrap();
    converge(&a, 2, Duration::from_secs(5)).await;
    converge(&b, 2, Duration::from_secs(5)).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
