//! `/openapi.json` lists exactly the operations (method, path, tags) and schemas it listed
//! before the route table was split into one module per endpoint family: each family merges its
//! own doc, and the merged whole must not gain, lose or re-tag anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use sightline_db::testing::fresh_sqlite;
use sightline_server::ServerConfig;

mod common;

/// `METHOD path [tags]` of every operation, sorted.
fn operations(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let tags: Vec<&str> = op["tags"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            out.push(format!(
                "{} {path} [{}]",
                method.to_uppercase(),
                tags.join(",")
            ));
        }
    }
    out.sort();
    out
}

const OPERATIONS: &[&str] = &[
    "GET /aliases []",
    "GET /deployments []",
    "GET /experiments/{id} [crate::catalog]",
    "GET /health []",
    "GET /history [crate::history]",
    "GET /history.csv [crate::history]",
    "GET /history/{request_id} [crate::history]",
    "GET /history/{request_id}/corrections [crate::corrections]",
    "GET /history/{request_id}/image [crate::history]",
    "GET /jobs []",
    "GET /jobs/{id} []",
    "GET /models []",
    "GET /models/{id} []",
    "GET /projects []",
    "GET /projects/{project} []",
    "GET /projects/{project}/datasets [crate::catalog]",
    "GET /projects/{project}/datasets/{a}/diff/{b} [crate::catalog]",
    "GET /projects/{project}/datasets/{id} [crate::catalog]",
    "GET /projects/{project}/experiments [crate::catalog]",
    "GET /projects/{project}/labels []",
    "GET /projects/{project}/monitoring [crate::monitoring]",
    "GET /projects/{project}/review [crate::history]",
    "POST /aliases []",
    "POST /history/{request_id}/corrections [crate::corrections]",
    "POST /jobs/{id}/cancel []",
    "POST /models []",
    "POST /models/metrics []",
    "POST /models/{id}/deploy []",
    "POST /projects [crate::catalog]",
    "POST /projects/{project}/datasets []",
    "POST /projects/{project}/datasets/from-corrections [crate::corrections]",
    "POST /projects/{project}/experiments []",
    "POST /projects/{project}/inspect []",
    "POST /projects/{project}/labels []",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_the_same_operations_and_schemas() {
    let t = fresh_sqlite().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        artifacts: dir.path().join("artifacts"),
        home: dir.path().join("home"),
        ..ServerConfig::default()
    };
    let state = common::state(&t.db, &[], config);
    let reply = common::send(
        &state,
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();

    assert_eq!(doc["info"]["title"], "Sightline API");
    assert_eq!(operations(&doc), OPERATIONS, "operations changed");

    let mut schemas: Vec<&str> = doc["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .keys()
        .map(String::as_str)
        .collect();
    schemas.sort_unstable();
    assert_eq!(schemas, SCHEMAS, "schemas changed");
}

const SCHEMAS: &[&str] = &[
    "AliasBody",
    "BaselineRef",
    "ClassStats",
    "ClassificationJson",
    "CorrectionBody",
    "DeployFailure",
    "DeploymentStatus",
    "DetectionJson",
    "Distribution",
    "ErrorBody",
    "ErrorDetail",
    "FromCorrectionsBody",
    "Health",
    "HistoryPage",
    "InspectMeta",
    "InspectResponse",
    "Job",
    "JobParams",
    "JobProgress",
    "JobStatus",
    "LabelsBody",
    "Latency",
    "MetricsBody",
    "ModelBody",
    "Monitoring",
    "NgAlarm",
    "NgRatio",
    "PromoteBody",
    "RleJson",
    "SlotStatus",
    "StartExperiment",
    "Timing",
    "UnknownAlarm",
    "UsedModel",
    "Verdict",
];
