//! Monitoring (per-class confidence histograms, KS vs the evaluation baseline, NG-ratio and
//! unknown-rate alarms, latency percentiles, `/metrics` gauges) and the catalog endpoints
//! (`POST /projects`, dataset and experiment reads), through `app(state)` with tower `oneshot`
//! over a real SQLite or PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sightline_core::Task;
use sightline_db::inference_log::{InferenceLogRow, JsonValue};
use sightline_db::testing::{TestDb, fresh_postgres, fresh_sqlite};
use sightline_registry::{NewEvaluation, RegisterRequest, Registry};
use sightline_server::{AppState, ServerConfig};

mod common;

const MANIFEST: &str = "project: line_m
labels: [ok, scratch]
models:
  classifier:
    name: mobilenet_v3_small
    weights: none
  business_rules:
    max_ng_ratio: 0.3
    allow_unknown: false
";

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, String) {
    let r = common::send(state, req).await;
    (r.status, r.text())
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    let (s, b) = call(state, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, serde_json::from_str(&b).unwrap_or(Value::Null))
}

async fn post_text(
    state: &AppState,
    uri: &str,
    token: &str,
    ct: &str,
    body: &str,
) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", ct)
        .body(Body::from(body.to_string()))
        .unwrap();
    let (s, b) = call(state, req).await;
    (s, serde_json::from_str(&b).unwrap_or(Value::Null))
}

fn row(id: &str, verdict: &str, top: &str, conf: f64, latency: f64) -> InferenceLogRow {
    InferenceLogRow {
        request_id: id.into(),
        project: "line_m".into(),
        created_at: sightline_db::now() - chrono::Duration::seconds(10),
        verdict: verdict.into(),
        detector_version_id: None,
        classifier_version_id: None,
        label: Some(top.into()),
        confidence: Some(conf),
        line: None,
        lot: None,
        camera: None,
        part_id: None,
        image_sha256: "cd".repeat(32),
        image_path: None,
        width: 8,
        height: 8,
        latency_ms: latency,
        response: JsonValue::from(json!({"detections": [],
            "classification": {"label": top, "top_label": top, "confidence": conf}})),
        corrected: false,
        disagreement: false,
    }
}

async fn scenario(t: TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    let artifacts = tmp.path().join("artifacts");
    let registry = Registry::new(t.db.clone(), artifacts.clone());
    let state = common::state(
        &t.db,
        &[
            "viewer1:viewer:viewer-secret",
            "eng1:engineer:eng-secret-1",
            "root:admin:admin-secret",
        ],
        ServerConfig {
            artifacts,
            home: tmp.path().join("home"),
            ..ServerConfig::default()
        },
    );

    // POST /projects: role, validation, YAML and JSON, created then unchanged.
    let (s, _) = post_text(
        &state,
        "/projects",
        "viewer-secret",
        "application/yaml",
        MANIFEST,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post_text(
        &state,
        "/projects",
        "eng-secret-1",
        "application/yaml",
        "project: x\n",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid manifest")
    );
    let (s, v) = post_text(
        &state,
        "/projects",
        "eng-secret-1",
        "application/yaml",
        MANIFEST,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["outcome"], "created");
    assert_eq!(v["project"]["name"], "line_m");
    let (s, v) = post_text(
        &state,
        "/projects",
        "eng-secret-1",
        "application/yaml",
        MANIFEST,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["outcome"], "unchanged");
    let as_json = json!({"project": "line_j", "labels": ["ok", "dent"],
        "models": {"classifier": {"name": "mobilenet_v3_small", "weights": "none"}}});
    let (s, v) = post_text(
        &state,
        "/projects",
        "eng-secret-1",
        "application/json",
        &as_json.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Label changes without dependent data are applied; naming the override needs admin.
    let relabel = as_json.to_string().replace("dent", "scratch");
    let (s, v) = post_text(
        &state,
        "/projects",
        "eng-secret-1",
        "application/json",
        &relabel,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "updated");
    let (s, _) = post_text(
        &state,
        "/projects?allow_label_change=true",
        "eng-secret-1",
        "application/yaml",
        MANIFEST,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "label changes need admin");
    let (s, _) = post_text(
        &state,
        "/projects?allow_label_change=true",
        "admin-secret",
        "application/yaml",
        MANIFEST,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Dataset reads.
    let (s, v) = get(&state, "/projects/line_m/datasets").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!([]));
    let (s, _) = get(&state, "/projects/nope/datasets").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = get(&state, "/projects/line_m/datasets/latest").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // Experiments with per-epoch metrics.
    let version = "0123456789abcdef0123456789abcdef";
    common::insert_version(&t.db, "line_m", version).await;
    sightline_db::experiments::insert(
        &t.db,
        "line_m",
        &sightline_db::experiments::NewExperiment {
            id: "20261129-010000",
            task: "classify",
            dataset_version_id: version,
            config: json!({"epochs": 2}),
            dir: "experiments/20261129-010000",
        },
    )
    .await
    .unwrap();
    for epoch in 0..2 {
        sightline_db::experiments::append_epoch(
            &t.db,
            "20261129-010000",
            &sightline_db::experiments::EpochRow {
                epoch,
                losses: json!({"ce": 1.0 / (epoch as f64 + 1.0)}),
                lr: 0.01,
                metrics: json!({"top1": 0.5 + 0.1 * epoch as f64}),
                fitness: 0.5 + 0.1 * epoch as f64,
                time_s: 1.0,
            },
        )
        .await
        .unwrap();
    }
    let (s, v) = get(&state, "/projects/line_m/experiments").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["id"], "20261129-010000");
    let (s, v) = get(&state, "/experiments/20261129-010000").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(v["epochs"][1]["metrics"]["top1"], 0.6);
    let (s, _) = get(&state, "/experiments/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Monitoring without a baseline.
    let rows = vec![
        row("m1", "ok", "ok", 0.95, 10.0),
        row("m2", "ok", "ok", 0.85, 20.0),
        row("m3", "ng", "scratch", 0.75, 30.0),
        row("m4", "ng", "scratch", 0.65, 40.0),
    ];
    sightline_db::inference_log::insert_batch(&t.db, &rows)
        .await
        .unwrap();
    let (s, v) = get(&state, "/projects/line_m/monitoring?window=3600").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["requests"], 4);
    assert_eq!(v["verdicts"], json!({"ok": 2, "ng": 2, "unknown": 0}));
    assert_eq!(v["ng_ratio"]["value"], 0.5);
    assert_eq!(v["ng_ratio"]["max_ng_ratio"], 0.3);
    assert_eq!(v["ng_ratio"]["alarm"], true);
    assert_eq!(v["unknown_rate"]["alarm"], false);
    assert_eq!(v["latency_ms"]["p50"], 20.0);
    assert_eq!(v["latency_ms"]["p99"], 40.0);
    assert!(v["baseline"].is_null());
    let ok = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == "ok")
        .unwrap();
    assert_eq!(ok["count"], 2);
    assert_eq!(ok["histogram"], json!([0, 0, 0, 0, 0, 0, 0, 0, 1, 1]));
    assert!((ok["mean"].as_f64().unwrap() - 0.9).abs() < 1e-9);
    assert!(ok["baseline"].is_null() && ok["ks"].is_null());
    for bad in [
        "/projects/line_m/monitoring?window=5",
        "/projects/line_m/monitoring?window=x",
    ] {
        let (s, _) = get(&state, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (s, _) = get(&state, "/projects/nope/monitoring").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Baseline from the production model's latest evaluation.
    let ckpt = tmp.path().join("w.bin");
    fs_err::write(&ckpt, b"weights").unwrap();
    let manifest = sightline_core::Manifest::parse(MANIFEST, "m.yaml").unwrap();
    let model = registry
        .register(RegisterRequest {
            manifest,
            task: Some(Task::Classify),
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
        .unwrap();
    registry
        .promote(
            model.id,
            sightline_registry::PRODUCTION,
            &Default::default(),
            true,
            "test",
        )
        .await
        .unwrap();
    registry
        .record_evaluation(NewEvaluation {
            model_version_id: Some(model.id),
            experiment_id: None,
            dataset_version: None,
            split: Some("val".into()),
            summary: Default::default(),
            details: json!({"confidence_samples": {"ok": [0.91, 0.89], "scratch": [0.95, 0.97]}}),
            report_path: None,
        })
        .await
        .unwrap();
    let (_, v) = get(&state, "/projects/line_m/monitoring").await;
    assert_eq!(v["baseline"]["model_version_id"], model.id);
    let classes = v["classes"].as_array().unwrap();
    let ok = classes.iter().find(|c| c["label"] == "ok").unwrap();
    // window {0.85, 0.95} vs baseline {0.89, 0.91}: CDF gap 0.5 at 0.85.
    assert!((ok["ks"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{ok}");
    assert_eq!(ok["baseline"]["count"], 2);
    let scratch = classes.iter().find(|c| c["label"] == "scratch").unwrap();
    assert!(
        (scratch["ks"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "drifted class: {scratch}"
    );

    // The same numbers as Prometheus gauges.
    let (s, text) = call(
        &state,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        text.contains("sightline_ng_ratio{project=\"line_m\"} 0.5"),
        "{text}"
    );
    assert!(text.contains("sightline_ng_ratio_alarm{project=\"line_m\"} 1"));
    assert!(text.contains("sightline_unknown_rate_alarm{project=\"line_m\"} 0"));
    assert!(text.contains("sightline_confidence_ks{project=\"line_m\",label=\"scratch\"} 1"));
    assert!(text.contains("# TYPE sightline_confidence_mean gauge"));

    let (_, doc) = get(&state, "/openapi.json").await;
    for p in [
        "/projects",
        "/projects/{project}/monitoring",
        "/projects/{project}/datasets",
        "/projects/{project}/datasets/{id}",
        "/projects/{project}/datasets/{a}/diff/{b}",
        "/projects/{project}/experiments",
        "/experiments/{id}",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from openapi");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_and_catalog_sqlite() {
    scenario(fresh_sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_and_catalog_postgres() {
    scenario(
        fresh_postgres()
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 must be reachable"),
    )
    .await;
}
