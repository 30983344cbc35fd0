//! The HTTP API through `app(state)` with tower `oneshot`, over a real SQLite or PostgreSQL
//! database and a real artifact store.
//!
//! Two kinds of models: the product path (`VisionLoader` on the real fixture checkpoints), and,
//! only for batching / hot-swap mechanics, `FixedLoader`, whose "weights" file is a JSON list of
//! class probabilities so that which version answered is visible in every response.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use image::DynamicImage;
use serde_json::Value;
use sightline_core::{Manifest, Task};
use sightline_db::testing::{TestDb, fresh_postgres, fresh_sqlite};
use sightline_registry::{Bundle, RegisterRequest, Registry};
use sightline_server::engine::{BatchConfig, Engine};
use sightline_server::infer::{Classification, InferError, InspectModel, ModelLoader, ModelOutput};
use sightline_server::log::LogQueue;
use sightline_server::metrics::Metrics;
use sightline_server::{AppState, ServerConfig, Tokens, app};
use tower::ServiceExt;

const MANIFEST: &str = "project: widget_line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters: {imgsz: 256}
  classifier:
    name: mobilenet_v3_small
    weights: none
  business_rules:
    max_ng_ratio: 0.5
    allow_unknown: false
";

fn fixtures() -> PathBuf {
    std::env::var_os("SIGHTLINE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
}

/// Test-only model: fixed probabilities read from the bundle, optional delay per batch.
struct FixedModel {
    labels: Vec<String>,
    probs: Vec<f32>,
    delay: Duration,
    batches: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl InspectModel for FixedModel {
    fn task(&self) -> Task {
        Task::Classify
    }
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn infer(&self, images: &[&DynamicImage]) -> Result<Vec<ModelOutput>, InferError> {
        self.batches.lock().unwrap().push(images.len());
        std::thread::sleep(self.delay);
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

#[derive(Default)]
struct FixedLoader {
    batches: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl ModelLoader for FixedLoader {
    fn load(&self, bundle: &Bundle) -> Result<Arc<dyn InspectModel>, InferError> {
        let v: Value = serde_json::from_slice(&fs_err::read(bundle.weights_path()).unwrap())
            .map_err(|e| InferError::Load(e.to_string()))?;
        Ok(Arc::new(FixedModel {
            labels: bundle.manifest.labels.clone(),
            probs: serde_json::from_value(v["probs"].clone()).unwrap(),
            delay: Duration::from_millis(v["delay_ms"].as_u64().unwrap_or(0)),
            batches: self.batches.clone(),
        }))
    }
}

struct Harness {
    _t: TestDb,
    _tmp: tempfile::TempDir,
    registry: Registry,
    state: AppState,
    log: LogQueue,
    writer: Option<sightline_server::log::LogWriter>,
    manifest: Manifest,
    tmp: PathBuf,
}

async fn harness(
    t: TestDb,
    loader: Arc<dyn ModelLoader>,
    tokens: &[&str],
    batch: BatchConfig,
) -> Harness {
    let manifest = Manifest::parse(MANIFEST, "m.yaml").unwrap();
    sightline_db::projects::apply(&t.db, &manifest, MANIFEST, false)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let artifacts = tmp.path().join("artifacts");
    let registry = Registry::new(t.db.clone(), artifacts.clone());
    let metrics = Arc::new(Metrics::default());
    let engine = Arc::new(Engine::new(
        loader,
        batch,
        artifacts.clone(),
        metrics.clone(),
    ));
    let (log, writer) = LogQueue::start(t.db.clone(), artifacts.clone(), 1000, metrics.clone());
    let tokens = Tokens::parse(&tokens.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let config = ServerConfig {
        max_upload_bytes: 2_000_000,
        artifacts,
        ng_window: 10,
        ..ServerConfig::default()
    };
    let state = AppState::new(
        registry.clone(),
        Some(log.clone()),
        engine,
        metrics,
        tokens,
        config,
    );
    Harness {
        _t: t,
        tmp: tmp.path().to_path_buf(),
        _tmp: tmp,
        registry,
        state,
        log,
        writer: Some(writer),
        manifest,
    }
}

impl Harness {
    async fn register(&self, task: Task, file: &Path) -> sightline_registry::ModelVersion {
        self.registry
            .register(RegisterRequest {
                manifest: self.manifest.clone(),
                task: Some(task),
                checkpoint: file.to_path_buf(),
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

    async fn fixed_version(
        &self,
        probs: [f32; 4],
        delay_ms: u64,
    ) -> sightline_registry::ModelVersion {
        let f = self.tmp.join(format!(
            "w{}.json",
            probs.iter().map(|p| p.to_string()).collect::<String>()
        ));
        fs_err::write(
            &f,
            serde_json::json!({"probs": probs, "delay_ms": delay_ms}).to_string(),
        )
        .unwrap();
        self.register(Task::Classify, &f).await
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = app(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    async fn wait_serving(&self, task: Task, id: i64) {
        for _ in 0..600 {
            let (_, h) = self.call(get("/health")).await;
            let ok = h["deployments"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["task"] == task.as_str() && d["serving_id"] == id);
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("version {id} never became the served {task} model");
    }

    async fn flush_log(&mut self) {
        self.log.close();
        self.writer.take().unwrap().finish().await;
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_json(uri: &str, v: Value, token: Option<&str>) -> Request<Body> {
    let mut b = Request::post(uri).header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(v.to_string())).unwrap()
}

fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn inspect_raw(bytes: Vec<u8>, query: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::post(format!("/projects/widget_line_a/inspect{query}"))
        .header("content-type", "image/png");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(bytes)).unwrap()
}

async fn api_errors_auth_hot_swap_and_history(t: TestDb) {
    let loader = Arc::new(FixedLoader::default());
    let batches = loader.batches.clone();
    let batch = BatchConfig {
        max_batch: 4,
        max_wait: Duration::from_millis(30),
        queue_capacity: 256,
    };
    let mut h = harness(
        t,
        loader,
        &[
            "op:operator:operator-secret",
            "eng:engineer:engineer-secret",
            "boss:admin:admin-secret-1",
        ],
        batch,
    )
    .await;
    let op = Some("operator-secret");
    let eng = Some("engineer-secret");

    // Health, OpenAPI, unknown route, projects and labels.
    let (s, v) = h.call(get("/health")).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (_, v) = h.call(get("/openapi.json")).await;
    for path in [
        "/projects/{project}/inspect",
        "/models/metrics",
        "/models/{id}/deploy",
        "/history",
        "/aliases",
    ] {
        assert!(
            v["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let (s, v) = h.call(get("/nope")).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (_, v) = h.call(get("/projects/widget_line_a/labels")).await;
    assert_eq!(v, serde_json::json!(["ok", "ng", "scratch", "dent"]));
    let (s, _) = h.call(get("/projects/other/labels")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // No model yet: 503 with a clear message; auth checked first.
    let (s, v) = h.call(inspect_raw(png_bytes(8, 8), "", None)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (s, v) = h.call(inspect_raw(png_bytes(8, 8), "", op)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no model is deployed")
    );

    let v1 = h.fixed_version([0.9, 0.05, 0.03, 0.02], 0).await; // says ok
    let v2 = h.fixed_version([0.1, 0.7, 0.1, 0.1], 40).await; // says ng, slower

    // Gated deployment: no evaluation -> 409 with the failed gates; operator may not deploy.
    let (s, _) = h
        .call(post_json(
            &format!("/models/{}/deploy", v1.id),
            serde_json::json!({}),
            op,
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = h
        .call(post_json(
            &format!("/models/{}/deploy", v1.id),
            serde_json::json!({}),
            eng,
        ))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("gate_failed")),
        "{v}"
    );
    assert!(
        v["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("no recorded evaluation")
    );
    // Seed endpoint: record metrics, then deploy passes.
    for m in [&v1, &v2] {
        let body = serde_json::json!({"project": "widget_line_a", "task": "classify", "version": m.version,
            "summary": {"accuracy": 0.9, "ng_ratio": 0.05, "unknown_rate": 0.0}, "details": {"source": "test"}});
        let (s, v) = h.call(post_json("/models/metrics", body, eng)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = h
        .call(post_json(
            "/models/metrics",
            serde_json::json!({"summary": 3}),
            eng,
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = h
        .call(post_json(
            &format!("/models/{}/deploy", v1.id),
            serde_json::json!({"min_accuracy": 0.8}),
            eng,
        ))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    h.wait_serving(Task::Classify, v1.id).await;

    // Decoding and size errors.
    let (s, v) = h.call(inspect_raw(b"GIF89a....".to_vec(), "", op)).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let mut broken = png_bytes(16, 16);
    broken.truncate(40);
    let (s, v) = h.call(inspect_raw(broken, "", op)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("undecodable_image")),
        "{v}"
    );
    let (s, v) = h.call(inspect_raw(vec![0u8; 2_100_000], "", op)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let (s, _) = h.call(inspect_raw(Vec::new(), "", op)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Raw body with metadata in the query; multipart with fields.
    let (s, v) = h
        .call(inspect_raw(
            png_bytes(20, 10),
            "?lot=L1&line=A&camera=c1&part_id=p-1",
            op,
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["classification"]["label"], "ok");
    assert_eq!(v["models"][0]["version"], 1);
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(20), Some(10))
    );
    assert_eq!(v["ng_ratio"]["scope"], "lot");
    let boundary = "XyZb0undary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"lot\"\r\n\r\nL2\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    body.extend_from_slice(&png_bytes(9, 9));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let req = Request::post("/projects/widget_line_a/inspect")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("authorization", "Bearer operator-secret")
        .body(Body::from(body))
        .unwrap();
    let (s, v) = h.call(req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["meta"]["lot"], "L2");

    // Hot swap under concurrent load: no request fails, answers switch from v1 to v2, and the
    // batcher groups concurrent requests.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let state = h.state.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 5)).await;
            let req = inspect_raw(png_bytes(8, 8), "", Some("operator-secret"));
            let resp = app(state).oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }));
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    let (s, v) = h.call(post_json("/aliases", serde_json::json!({"project": "widget_line_a", "task": "classify", "alias": "production", "version": 2}), eng)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut versions = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "request failed during the swap: {v}");
        let ver = v["models"][0]["version"].as_i64().unwrap();
        assert_eq!(
            v["verdict"],
            if ver == 1 { "ok" } else { "ng" },
            "verdict matches the answering version"
        );
        versions.push(ver);
    }
    h.wait_serving(Task::Classify, v2.id).await;
    let (_, v) = h.call(inspect_raw(png_bytes(8, 8), "", op)).await;
    assert_eq!(v["models"][0]["version"], 2);
    assert!(
        versions.contains(&1),
        "the swap happened before any request ran: {versions:?}"
    );
    assert!(
        batches.lock().unwrap().iter().any(|&n| n > 1),
        "no request was batched"
    );

    // A deployment that fails (tampered bundle) keeps the old model serving and is reported.
    let v3 = h.fixed_version([0.2, 0.2, 0.3, 0.3], 0).await;
    let bundle = h.registry.open_bundle(&v3).unwrap();
    fs_err::write(bundle.weights_path(), b"{\"probs\": [1, 0, 0, 0]}xx").unwrap();
    let (s, _) = h.call(post_json("/aliases", serde_json::json!({"project": "widget_line_a", "task": "classify", "alias": "production", "version": 3, "force": true}), eng)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "force needs admin");
    let (s, v) = h.call(post_json("/aliases", serde_json::json!({"project": "widget_line_a", "task": "classify", "alias": "production", "version": 3, "force": true}), Some("admin-secret-1"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut reported = false;
    for _ in 0..200 {
        let (_, d) = h.call(get("/deployments")).await;
        let slot = &d[0];
        if slot["last_error"]["model_version_id"] == v3.id {
            assert_eq!(slot["serving_id"], v2.id);
            assert!(
                slot["last_error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("checksum mismatch")
            );
            reported = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reported, "failed deployment not reported");
    let (s, v) = h.call(inspect_raw(png_bytes(8, 8), "", op)).await;
    assert_eq!(
        (s, v["models"][0]["version"].as_i64()),
        (StatusCode::OK, Some(2))
    );

    // Metrics.
    let resp = app(h.state.clone()).oneshot(get("/metrics")).await.unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("sightline_verdicts_total{project=\"widget_line_a\",verdict=\"ng\"}"),
        "{text}"
    );
    assert!(
        text.contains("sightline_model_version{project=\"widget_line_a\",task=\"classify\"} 2")
    );
    assert!(text.contains("sightline_deploy_failures_total 1"));
    assert!(
        text.contains("sightline_inspect_latency_seconds_count{project=\"widget_line_a\"} 44"),
        "{text}"
    );

    // History: every successful inspect is logged (44 = 1 + 1 + 40 + 1 + 1); filters and paging.
    h.flush_log().await;
    let (_, v) = h.call(get("/history?project=widget_line_a&limit=10")).await;
    assert_eq!(v["total"], 44, "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 10);
    let (_, v) = h.call(get("/history?lot=L1")).await;
    assert_eq!(v["total"], 1);
    let item = &v["items"][0];
    assert_eq!(
        (
            item["line"].as_str(),
            item["camera"].as_str(),
            item["part_id"].as_str()
        ),
        (Some("A"), Some("c1"), Some("p-1"))
    );
    let path = h
        .tmp
        .join("artifacts")
        .join(item["image_path"].as_str().unwrap());
    assert_eq!(
        fs_err::read(path).unwrap(),
        png_bytes(20, 10),
        "image stored by content hash"
    );
    let (_, v) = h
        .call(get(&format!(
            "/history?model_version_id={}&verdict=ok",
            v1.id
        )))
        .await;
    let n_v1 = versions.iter().filter(|&&x| x == 1).count() as i64 + 2;
    assert_eq!(v["total"], n_v1);
    let (s, _) = h.call(get("/history?verdict=maybe")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let rid = item["request_id"].as_str().unwrap();
    let (s, v) = h.call(get(&format!("/history/{rid}"))).await;
    assert_eq!(
        (s, v["response"]["request_id"].as_str()),
        (StatusCode::OK, Some(rid))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_sqlite() {
    api_errors_auth_hot_swap_and_history(fresh_sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_postgres() {
    api_errors_auth_hot_swap_and_history(fresh_postgres().await.unwrap()).await;
}

/// The product path: real YOLOv8-seg and MobileNetV3 fixture checkpoints through bundles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_models_inspect_fixture_image() {
    let fx = fixtures();
    let loader = Arc::new(sightline_server::vision::VisionLoader::new());
    let h = harness(
        fresh_sqlite().await.unwrap(),
        loader,
        &[],
        BatchConfig::default(),
    )
    .await;
    let det = h
        .register(
            Task::Segment,
            &fx.join("ultralytics/yolov8n-seg-widgets.pt"),
        )
        .await;
    let cls = h
        .register(
            Task::Classify,
            &fx.join("torchvision/mobilenet_v3_small-widgets.pth"),
        )
        .await;
    for m in [&det, &cls] {
        h.registry
            .promote(m.id, "production", &Default::default(), true, "test")
            .await
            .unwrap();
    }
    sightline_server::reconcile(&h.state).await.unwrap();
    h.wait_serving(Task::Segment, det.id).await;
    h.wait_serving(Task::Classify, cls.id).await;
    let bytes = fs_err::read(fx.join("images/val_00000.jpg")).unwrap();
    let req = Request::post("/projects/widget_line_a/inspect")
        .header("content-type", "image/jpeg")
        .body(Body::from(bytes))
        .unwrap();
    let (s, v) = h.call(req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let expected: Value =
        serde_json::from_slice(&fs_err::read(fx.join("expected/yolo/predictions.json")).unwrap())
            .unwrap();
    let exp_n = expected.to_string().matches("val_00000").count();
    assert!(exp_n >= 1, "fixture predictions name the image");
    let dets = v["detections"].as_array().unwrap();
    for d in dets {
        assert!(
            ["scratch", "dent", "ng"].contains(&d["label"].as_str().unwrap()),
            "{d}"
        );
        assert_eq!(d["mask_rle"]["size"], serde_json::json!([256, 256]));
        assert!(!d["polygons"].as_array().unwrap().is_empty());
    }
    let probs = v["classification"]["probabilities"].as_object().unwrap();
    assert_eq!(probs.len(), 4);
    let sum: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-3);
    let any_defect = dets.iter().any(|d| d["above_threshold"] == true)
        || v["classification"]["label"].as_str() != Some("ok");
    assert_eq!(v["verdict"] == "ng", any_defect, "{v}");
    assert_eq!(v["models"].as_array().unwrap().len(), 2);
}
