//! Shared by the server's `oneshot` tests: an [`AppState`] over a test database (vision loader,
//! default batching, no request log), one request through [`app`], and small helpers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sightline_db::Db;
use sightline_registry::Registry;
use sightline_server::engine::{BatchConfig, Engine};
use sightline_server::metrics::Metrics;
use sightline_server::vision::VisionLoader;
use sightline_server::{AppState, ServerConfig, Tokens, app};
use tower::ServiceExt;

/// The state a server over `db` would have: registry and engine on `config.artifacts`, the given
/// `NAME:ROLE:SECRET` tokens (none: open mode), no request log.
pub fn state(db: &Db, tokens: &[&str], config: ServerConfig) -> AppState {
    let artifacts: PathBuf = config.artifacts.clone();
    let metrics = Arc::new(Metrics::default());
    let engine = Arc::new(Engine::new(
        Arc::new(VisionLoader::new()),
        BatchConfig::default(),
        artifacts.clone(),
        metrics.clone(),
    ));
    let tokens = Tokens::parse(&tokens.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    AppState::new(
        Registry::new(db.clone(), artifacts),
        None,
        engine,
        metrics,
        tokens,
        config,
    )
}

/// A response, read whole.
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// `Location` header.
    pub location: Option<String>,
    /// `Content-Type` header ("" when absent).
    pub content_type: String,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON, or as a JSON string holding the text when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }

    /// The body as JSON, `null` when it is not JSON.
    pub fn json_or_null(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send one request through a fresh router over `state`.
pub async fn send(state: &AppState, req: Request<Body>) -> Reply {
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let status = resp.status();
    let location = header("location");
    let content_type = header("content-type").unwrap_or_default();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        location,
        content_type,
        body,
    }
}

/// The `error.message` of an API error body ("" when absent).
pub fn error_message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Record dataset version `id` (one image, no instances) for `project` directly in the database.
pub async fn insert_version(db: &Db, project: &str, id: &str) {
    sightline_db::datasets::insert(
        db,
        project,
        &sightline_db::datasets::NewDatasetVersion {
            id,
            parent_id: None,
            message: "v1",
            author: "t",
            stats: json!({}),
            source: "t",
            format: None,
            nfiles: 1,
            size_bytes: 1,
            images: 1,
            instances: 0,
            notes: &[],
        },
    )
    .await
    .unwrap();
}
