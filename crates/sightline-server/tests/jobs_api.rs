//! Training jobs over HTTP through `app(state)` with tower `oneshot` over a real SQLite or
//! PostgreSQL database: request validation (task, numbers, device, weights), unknown project /
//! dataset version / experiment, no dataset version at all, roles, 503 without a trainer, and
//! the job life cycle when the trainer cannot start or fails (the real trainer runs in the
//! `sightline` binary tests: crates/sightline-cli/tests/train_over_http.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sightline_db::testing::{TestDb, fresh_postgres, fresh_sqlite};
use sightline_server::{AppState, ServerConfig};

mod common;

const MANIFEST: &str = "project: line_j
labels: [ok, scratch]
models:
  classifier:
    name: mobilenet_v3_small
    weights: none
";

const VERSION: &str = "0123456789abcdef0123456789abcdef";

fn state(t: &TestDb, home: &Path, trainer: Option<PathBuf>) -> AppState {
    common::state(
        &t.db,
        &[
            "viewer1:viewer:viewer-secret",
            "op1:operator:operator-secret",
            "eng1:engineer:eng-secret-1",
        ],
        ServerConfig {
            artifacts: home.join("artifacts"),
            home: home.to_path_buf(),
            trainer,
            ..ServerConfig::default()
        },
    )
}

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let r = common::send(state, req).await;
    (r.status, r.location.clone(), r.json())
}

async fn post(state: &AppState, uri: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let (s, _, v) = post_loc(state, uri, token, body).await;
    (s, v)
}

async fn post_loc(
    state: &AppState,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Option<String>, Value) {
    let mut r = Request::post(uri).header("content-type", "application/json");
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    call(state, r.body(Body::from(body.to_string())).unwrap()).await
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    let (s, _, v) = call(state, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, v)
}

use common::error_message as message;

async fn add_version(t: &TestDb) {
    common::insert_version(&t.db, "line_j", VERSION).await;
}

/// Poll `GET /jobs/{id}` until the job has ended (bounded).
async fn wait_ended(state: &AppState, id: &str) -> Value {
    for _ in 0..200 {
        let (s, v) = get(state, &format!("/jobs/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if !matches!(v["status"].as_str(), Some("queued" | "running")) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not end");
}

const EP: &str = "/projects/line_j/experiments";
const ENG: Option<&str> = Some("eng-secret-1");

async fn scenario(t: TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let no_trainer = state(&t, &home, None);
    sightline_db::projects::apply(
        &t.db,
        &sightline_core::Manifest::parse(MANIFEST, "m").unwrap(),
        MANIFEST,
        false,
    )
    .await
    .unwrap();

    // roles: engineer to start or cancel; a viewer may read
    let body = r#"{"task": "classifier", "epochs": 1}"#;
    let (s, v) = post(&no_trainer, EP, None, body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = post(&no_trainer, EP, Some("operator-secret"), body).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(message(&v).contains("engineer"), "{v}");
    let (s, v) = post(&no_trainer, "/jobs/abc/cancel", Some("viewer-secret"), "").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = get(&no_trainer, "/jobs").await;
    assert_eq!((s, v), (StatusCode::OK, json!([])));
    let (s, _) = get(&no_trainer, "/jobs/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = post(&no_trainer, "/jobs/nope/cancel", ENG, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // malformed bodies, tasks and numbers → 400, each with its reason
    for (b, needle) in [
        ("", "JSON body"),
        ("{", "invalid request body"),
        (r#"{"epochs": 1}"#, "missing field `task`"),
        (
            r#"{"task": "classifier", "epoch": 1}"#,
            "unknown field `epoch`",
        ),
        (r#"{"task": "gan"}"#, "unknown task `gan`"),
        (r#"{"task": "classifier", "epochs": 0}"#, "epochs must be"),
        (
            r#"{"task": "classifier", "epochs": -3}"#,
            "invalid request body",
        ),
        (
            r#"{"task": "classifier", "epochs": 1.5}"#,
            "invalid request body",
        ),
        (r#"{"task": "classifier", "imgsz": 100}"#, "multiple of 32"),
        (r#"{"task": "classifier", "imgsz": 4096}"#, "multiple of 32"),
        (r#"{"task": "classifier", "batch_size": 0}"#, "batch_size"),
        (
            r#"{"task": "classifier", "device": "tpu"}"#,
            "device must be",
        ),
    ] {
        let (s, v) = post(&no_trainer, EP, ENG, b).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}: {v}");
        assert!(message(&v).contains(needle), "{b}: {v}");
    }

    // unknown project; a task the manifest has no model for; no dataset version yet
    let (s, v) = post(&no_trainer, "/projects/nope/experiments", ENG, body).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(message(&v).contains("nope"), "{v}");
    let (s, v) = post(&no_trainer, EP, ENG, r#"{"task": "detector"}"#).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(message(&v).contains("models.detector"), "{v}");
    let (s, v) = post(&no_trainer, EP, ENG, body).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(message(&v).contains("no dataset version"), "{v}");

    add_version(&t).await;
    // unknown dataset version; weights that are neither none/imagenet nor a known experiment
    let (s, v) = post(
        &no_trainer,
        EP,
        ENG,
        r#"{"task": "classifier", "dataset": "ffffffff"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(message(&v).contains("ffffffff"), "{v}");
    let (s, v) = post(
        &no_trainer,
        EP,
        ENG,
        r#"{"task": "classifier", "weights": "../../etc/passwd"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = post(
        &no_trainer,
        EP,
        ENG,
        r#"{"task": "classifier", "weights": "20261129-000000"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(message(&v).contains("no experiment"), "{v}");
    let (s, v) = post(
        &no_trainer,
        EP,
        ENG,
        r#"{"task": "classifier", "weights": "model:v1"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = post(
        &no_trainer,
        EP,
        ENG,
        r#"{"task": "classifier", "weights": "model:4242"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // a valid request on a server without a trainer executable → 503, nothing written
    let (s, v) = post(
        &no_trainer,
        EP,
        ENG,
        r#"{"task": "classifier", "dataset": "0123", "epochs": 1, "imgsz": 64}"#,
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(message(&v).contains("trainer"), "{v}");
    assert!(!home.join("jobs").exists());

    // the OpenAPI document lists the job endpoints next to the catalog's GET
    let (_, doc) = get(&no_trainer, "/openapi.json").await;
    let ops = &doc["paths"]["/projects/{project}/experiments"];
    assert!(ops["post"].is_object(), "{ops}");
    assert!(ops["get"].is_object(), "{ops}");
    for p in ["/jobs", "/jobs/{id}", "/jobs/{id}/cancel"] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }

    // a trainer that cannot be started: 202 + Location, then failed with the reason
    let missing = state(&t, &home, Some(tmp.path().join("no-such-sightline")));
    let (s, loc, v) = post_loc(&missing, EP, ENG, body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(loc.as_deref(), Some(format!("/jobs/{id}").as_str()));
    assert_eq!(v["project"], "line_j");
    assert_eq!(v["task"], "classify");
    assert_eq!(v["params"]["dataset_version"], VERSION);
    let v = wait_ended(&missing, &id).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert!(message_of(&v).contains("cannot start the trainer"), "{v}");
    assert!(v["finished_at"].is_string());
    // the job folder holds the project's stored manifest, nothing else from the request
    assert_eq!(
        fs_err::read_to_string(home.join("jobs").join(&id).join("config.yaml")).unwrap(),
        MANIFEST
    );
    let (s, v) = post(&missing, &format!("/jobs/{id}/cancel"), ENG, "").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // a trainer that exits non-zero: failed with its exit code and stderr
    #[cfg(unix)]
    {
        let script = tmp.path().join("bad-trainer.sh");
        fs_err::write(
            &script,
            "#!/bin/sh\necho \"$@\" >&2\necho 'error: out of luck' >&2\nexit 3\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bad = state(&t, &home, Some(script));
        let (s, v) = post(
            &bad,
            EP,
            ENG,
            r#"{"task": "classify", "epochs": 2, "imgsz": 64, "batch_size": 4, "seed": 7}"#,
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let v = wait_ended(&bad, &id).await;
        assert_eq!(v["status"], "failed", "{v}");
        assert_eq!(v["exit_code"], 3, "{v}");
        assert!(message_of(&v).contains("out of luck"), "{v}");
        let args = v["stderr_tail"][0].as_str().unwrap();
        let cfg = home.join("jobs").join(&id).join("config.yaml");
        for want in [
            "--json".to_string(),
            format!("train classifier --config {}", cfg.display()),
            format!("--dataset {VERSION}"),
            "--weights none".into(),
            "--epochs 2 --imgsz 64 --batch-size 4 --seed 7".into(),
        ] {
            assert!(args.contains(&want), "{want:?} not in {args:?}");
        }
        let (s, v) = get(&bad, "/jobs?project=line_j").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 1, "jobs are per server state");
        assert_eq!(v[0]["id"], id.as_str());
        let (_, v) = get(&bad, "/jobs?project=other").await;
        assert_eq!(v, json!([]));

        // one slot: jobs start in submission order, a queued one is cancelled at once, a
        // running one by SIGINT (this stand-in dies of it; the real trainer's clean stop is
        // tested in the sightline binary tests)
        let slow = tmp.path().join("slow-trainer.sh");
        fs_err::write(&slow, "#!/bin/sh\nexec sleep 60\n").unwrap();
        fs_err::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
        let st = state(&t, &home, Some(slow));
        let (_, a) = post(&st, EP, ENG, body).await;
        let (_, b) = post(&st, EP, ENG, body).await;
        assert_eq!(a["status"], "running", "{a}");
        assert_eq!(b["status"], "queued", "{b}");
        let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
        let (s, v) = post(&st, &format!("/jobs/{b}/cancel"), Some("viewer-secret"), "").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let (s, v) = post(&st, &format!("/jobs/{b}/cancel"), ENG, "").await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["status"], "cancelled", "{v}");
        assert_eq!(v["error"], "cancelled by eng1", "{v}");
        for _ in 0..100 {
            if get(&st, &format!("/jobs/{a}")).await.1["pid"].is_u64() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (s, v) = post(&st, &format!("/jobs/{a}/cancel"), ENG, "").await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["cancel_requested"], true, "{v}");
        let v = wait_ended(&st, a).await;
        assert_eq!(v["status"], "cancelled", "{v}");
        assert!(v["exit_code"].is_null(), "killed by the signal: {v}");
        assert_eq!(
            get(&st, &format!("/jobs/{b}")).await.1["status"],
            "cancelled"
        );
    }
}

fn message_of(job: &Value) -> String {
    job["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_api_sqlite() {
    scenario(fresh_sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_api_postgres() {
    scenario(
        fresh_postgres()
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 must be reachable"),
    )
    .await;
}
