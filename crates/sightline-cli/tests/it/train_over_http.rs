//! Training started over HTTP against the real `sightline serve`: `POST
//! /projects/tiny/experiments` runs `sightline --json train …` as a child of the server on the
//! tiny synthetic data set (64 px, 1 epoch; the classifier, the detector, and the classifier
//! again from the first run's best checkpoint by experiment id and as a registered model
//! version), `GET /jobs/{id}` follows it to
//! `succeeded`, and the experiment with its per-epoch metrics is read back through
//! `GET /experiments/{id}`.
//! Cancelling: a second job waits `queued` behind the first (one slot) and is cancelled at once;
//! the running one gets SIGINT, ends `cancelled` with its process gone and the experiment
//! `stopped` with the last completed epoch's checkpoint kept; SIGTERM to the server stops a
//! running trainer the same way before the server exits.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::train_env::Env;
use serde_json::Value;
use sightline_testkit::{KillOnDrop, http_with, spawn_server};

const TOKEN: &str = "eng:engineer:eng-secret-1";
const AUTH: &str = "Authorization: Bearer eng-secret-1\r\n";

fn start_server(env: &Env) -> (KillOnDrop, String) {
    let mut cmd = env.command(&["serve", "--addr", "127.0.0.1:0", "--poll-ms", "60000"]);
    cmd.env_remove("SIGHTLINE_API_TOKENS")
        .args(["--no-request-log", "--token", TOKEN]);
    spawn_server(cmd)
}

fn post(addr: &str, path: &str, body: &str) -> (u16, Value) {
    http_with(
        addr,
        "POST",
        path,
        "application/json",
        AUTH,
        body.as_bytes(),
    )
}

fn get(addr: &str, path: &str) -> Value {
    let (s, v) = http_with(addr, "GET", path, "application/json", "", b"");
    assert_eq!(s, 200, "GET {path}: {v}");
    v
}

/// Poll `GET /jobs/{id}` until `done(job)` holds (bounded wait).
fn wait_for(addr: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let v = get(addr, &format!("/jobs/{id}"));
        if done(&v) {
            return v;
        }
        assert!(
            matches!(v["status"].as_str(), Some("queued" | "running")),
            "job {id} ended before {what}: {v:#}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "job {id}: no {what} within 120 s: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ended(v: &Value) -> bool {
    !matches!(v["status"].as_str(), Some("queued" | "running"))
}

fn process_gone(pid: u64) -> bool {
    // reaped by the server: no /proc entry (or a zombie would still show as Z)
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Train one epoch of `env.pipeline` over HTTP and check the job and the experiment; returns
/// the server (still running), its address and the experiment id.
fn train_once(env: &Env) -> (KillOnDrop, String, String) {
    let version = env.tiny_data();
    let (server, addr) = start_server(env);
    let (task, db_task) = match env.pipeline {
        "detector" => ("detector", "segment"),
        _ => ("classifier", "classify"),
    };
    let (s, job) = post(
        &addr,
        "/projects/tiny/experiments",
        &format!(r#"{{"task": "{task}", "epochs": 1, "imgsz": 64, "batch_size": 4, "seed": 1}}"#),
    );
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["params"]["dataset_version"], version.as_str());
    let id = job["id"].as_str().unwrap().to_string();
    let job = wait_for(&addr, &id, "end", ended);
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(job["exit_code"], 0);
    assert_eq!(job["progress"]["epochs_completed"], 1, "{job:#}");
    assert!(
        job["progress"]["metrics"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(job["result"]["status"], "completed");
    let exp = job["experiment"].as_str().unwrap().to_string();
    assert_eq!(job["experiment_url"], format!("/experiments/{exp}"));
    assert!(job["pid"].is_null());

    // the trainer recorded the experiment as a CLI run does: listed, with its epoch metrics
    let e = get(&addr, &format!("/experiments/{exp}"));
    assert_eq!(e["status"], "completed", "{e:#}");
    assert_eq!(e["task"], db_task);
    assert_eq!(e["dataset_version_id"], version.as_str());
    assert_eq!(e["config"]["hyperparameters"]["imgsz"], 64);
    let epochs = e["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 1, "{e:#}");
    assert_eq!(epochs[0]["metrics"], job["progress"]["metrics"]);
    assert!(
        epochs[0]["losses"]
            .as_object()
            .is_some_and(|l| !l.is_empty())
    );
    let list = get(&addr, "/projects/tiny/experiments");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == exp.as_str())
    );
    assert!(
        env.experiments()
            .join(&exp)
            .join("weights/best.safetensors")
            .is_file()
    );
    let jobs = get(&addr, "/jobs?project=tiny");
    assert_eq!(jobs[0]["id"], id.as_str());
    (server, addr, exp)
}

#[test]
fn detector_trained_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), None, "detector");
    let (_server, addr, exp) = train_once(&env);
    let e = get(&addr, &format!("/experiments/{exp}"));
    let metrics = e["epochs"][0]["metrics"].as_object().unwrap();
    assert!(
        metrics.keys().any(|k| k.contains("map")),
        "detector metrics: {metrics:?}"
    );
}

#[test]
fn classifier_trained_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), None, "classifier");
    let (_server, addr, exp) = train_once(&env);

    // fine-tuning from that experiment's best checkpoint: the server resolves the id itself
    let (s, job) = post(
        &addr,
        "/projects/tiny/experiments",
        &format!(r#"{{"task": "classifier", "epochs": 1, "imgsz": 64, "weights": "{exp}"}}"#),
    );
    assert_eq!(s, 202, "{job}");
    let job = wait_for(&addr, job["id"].as_str().unwrap(), "end", ended);
    assert_eq!(job["status"], "succeeded", "{job:#}");
    let e = get(&addr, job["experiment_url"].as_str().unwrap());
    assert!(
        e["config"]["weights_file"]
            .as_str()
            .is_some_and(|w| w.ends_with(&format!("{exp}/weights/best.safetensors"))),
        "{e:#}"
    );

    // ... and from a registered model version (`model:<id>`): the registry's verified bundle
    let best = env
        .experiments()
        .join(&exp)
        .join("weights/best.safetensors");
    let mv: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "register",
        "--config",
        "tiny.yaml",
        "--checkpoint",
        best.to_str().unwrap(),
    ]))
    .unwrap();
    let mv_id = mv["id"].as_i64().unwrap();
    let (s, job) = post(
        &addr,
        "/projects/tiny/experiments",
        &format!(
            r#"{{"task": "classifier", "epochs": 1, "imgsz": 64, "weights": "model:{mv_id}"}}"#
        ),
    );
    assert_eq!(s, 202, "{job}");
    let job = wait_for(&addr, job["id"].as_str().unwrap(), "end", ended);
    assert_eq!(job["status"], "succeeded", "{job:#}");
    let e = get(&addr, job["experiment_url"].as_str().unwrap());
    let file = e["config"]["weights_file"].as_str().unwrap();
    assert!(
        file.contains(mv["bundle_dir"].as_str().unwrap()),
        "{file} vs {mv:#}"
    );
    let (s, v) = post(
        &addr,
        "/projects/tiny/experiments",
        &format!(r#"{{"task": "detector", "weights": "model:{mv_id}"}}"#),
    );
    assert_eq!(s, 400, "a classifier version for the detector: {v}");
}

/// The server and its trainer child share a PostgreSQL database (the URL reaches the child
/// through SIGHTLINE_DATABASE_URL).
#[tokio::test(flavor = "multi_thread")]
async fn classifier_trained_over_http_on_postgres() {
    let t = sightline_db::testing::fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 must be reachable");
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), Some(t.url.clone()), "classifier");
    let (_server, _addr, exp) = tokio::task::spawn_blocking(move || {
        let r = train_once(&env);
        drop(env);
        r
    })
    .await
    .unwrap();
    let row = sightline_db::experiments::get(&t.db, &exp).await.unwrap();
    assert_eq!(row.map(|r| r.status.as_str()), Some("completed"));
}

#[test]
fn cancel_and_shutdown_stop_the_trainer() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), None, "classifier");
    env.tiny_data();
    let (mut server, addr) = start_server(&env);
    let long = r#"{"task": "classifier", "epochs": 500, "imgsz": 64, "batch_size": 4}"#;

    let (s, first) = post(&addr, "/projects/tiny/experiments", long);
    assert_eq!(s, 202, "{first}");
    let first = first["id"].as_str().unwrap().to_string();
    // one training slot: the second waits, and a queued job is cancelled at once
    let (s, second) = post(&addr, "/projects/tiny/experiments", long);
    assert_eq!(s, 202, "{second}");
    assert_eq!(second["status"], "queued", "{second}");
    let (s, v) = post(
        &addr,
        &format!("/jobs/{}/cancel", second["id"].as_str().unwrap()),
        "",
    );
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "cancelled", "{:#}", get(&addr, "/jobs"));

    // the running one: SIGINT after its first epoch; it keeps that epoch and stops
    let job = wait_for(&addr, &first, "first epoch", |v| {
        v["progress"]["epochs_completed"].as_u64() >= Some(1)
    });
    let pid = job["pid"].as_u64().unwrap();
    let exp = job["experiment"].as_str().unwrap().to_string();
    assert!(job["progress"]["eta_s"].as_f64().is_some(), "{job:#}");
    let (s, v) = post(&addr, &format!("/jobs/{first}/cancel"), "");
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["cancel_requested"], true);
    let job = wait_for(&addr, &first, "end", ended);
    assert_eq!(job["status"], "cancelled", "{job:#}");
    assert_eq!(job["result"]["status"], "stopped", "{job:#}");
    assert!(process_gone(pid), "trainer {pid} still there");
    let e = get(&addr, &format!("/experiments/{exp}"));
    assert_eq!(e["status"], "stopped", "{e:#}");
    let kept = e["epochs_completed"].as_i64().unwrap();
    assert!((1..500).contains(&kept), "{e:#}");
    assert!(
        env.experiments()
            .join(&exp)
            .join("weights/last.safetensors")
            .is_file()
    );
    let (s, v) = post(&addr, &format!("/jobs/{first}/cancel"), "");
    assert_eq!(s, 409, "{v}");

    // graceful server shutdown (SIGTERM) stops a running trainer before the server exits
    let (s, third) = post(&addr, "/projects/tiny/experiments", long);
    assert_eq!(s, 202, "{third}");
    let job = wait_for(&addr, third["id"].as_str().unwrap(), "start", |v| {
        v["experiment"].is_string()
    });
    let pid = job["pid"].as_u64().unwrap();
    let exp = job["experiment"].as_str().unwrap().to_string();
    let st = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "server did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "server exit: {status:?}");
    assert!(process_gone(pid), "trainer {pid} outlived the server");
    let db_status = experiment_status(&env, &exp);
    assert_eq!(db_status, "stopped", "experiment {exp}");
}

/// An experiment's status from the database, read with a fresh server (the first one is gone).
fn experiment_status(env: &Env, exp: &str) -> String {
    let (_server, addr) = start_server(env);
    get(&addr, &format!("/experiments/{exp}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}
