//! `sightline register` class maps and lineage through the real binary, on SQLite and PostgreSQL.
//!
//! The rule (see `sightline_registry::labels`): `--labels` wins (each a project label, count equal
//! to the checkpoint's classes), else the checkpoint's own class names (each must be a project
//! label), else the project's labels. A detector whose checkpoint names its classes in another
//! vocabulary (`kratzer, delle, fleck`: the fixture checkpoint re-saved as safetensors with those
//! names) is refused without `--labels` and served with the mapped names with it. Lineage both
//! ways: `model show` prints the dataset version, `model list --dataset` lists the models trained
//! on it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::server::{fixtures, http, spawn_server};

const MANIFEST: &str = "project: widget_line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters: {imgsz: 256}
";

struct Env {
    home: tempfile::TempDir,
    db_url: String,
}

impl Env {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sightline"));
        c.args(args)
            .current_dir(self.home.path())
            .env("SIGHTLINE_HOME", self.home.path().join(".sightline"))
            .env("DATABASE_URL", &self.db_url)
            .env_remove("SIGHTLINE_DATABASE_URL")
            .env_remove("SIGHTLINE_API_TOKENS");
        c
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let (ok, out, err) = self.run(&full);
        assert!(ok, "sightline {args:?} failed:\n{out}\n{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn fail(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(!ok, "sightline {args:?} should fail:\n{out}");
        err
    }
}

/// The widget detector re-saved as safetensors whose class names are not project labels.
fn foreign_checkpoint(dir: &Path) -> PathBuf {
    let ckpt =
        sightline_torch::load(fixtures().join("ultralytics/yolov8n-seg-widgets.pt")).unwrap();
    assert_eq!(
        ckpt.meta.names.as_deref(),
        Some(&["scratch".to_string(), "dent".into(), "ng".into()][..])
    );
    let mut meta = ckpt.meta.clone();
    meta.names = Some(vec!["kratzer".into(), "delle".into(), "fleck".into()]);
    let out = dir.join("foreign.safetensors");
    sightline_torch::save_safetensors(
        &out,
        ckpt.tensors.iter().map(|(k, t)| (k.as_str(), t)),
        &meta,
    )
    .unwrap();
    out
}

/// A four-image classification folder ingested as a dataset version; returns its id.
fn dataset_version(env: &Env) -> String {
    let src = env.home.path().join("tiny");
    for label in ["ok", "ng"] {
        let from = fixtures().join("widgets-a/classify/train").join(label);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&from)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        std::fs::create_dir_all(src.join("train").join(label)).unwrap();
        for f in files.iter().take(2) {
            std::fs::copy(
                f,
                src.join("train").join(label).join(f.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    let v = env.json(&[
        "dataset",
        "ingest",
        src.to_str().unwrap(),
        "--project",
        "widget_line_a",
    ]);
    v["version"]["id"].as_str().unwrap().to_string()
}

fn labels_of(v: &Value) -> Vec<String> {
    v["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn scenario(db_url: String) {
    let env = Env {
        home: tempfile::tempdir().unwrap(),
        db_url,
    };
    let cfg = env.home.path().join("widget.yaml");
    std::fs::write(&cfg, MANIFEST).unwrap();
    let cfg = cfg.to_str().unwrap();
    env.json(&["project", "apply", cfg]);
    let foreign = foreign_checkpoint(env.home.path());
    let foreign = foreign.to_str().unwrap();
    let native = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    let native = native.to_str().unwrap();

    // Checkpoint names that are not project labels: refused, pointing at --labels.
    let err = env.fail(&["register", "--config", cfg, "--checkpoint", foreign]);
    assert!(err.contains("kratzer") && err.contains("--labels"), "{err}");
    // --labels must name one project label per checkpoint class.
    let err = env.fail(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        foreign,
        "--labels",
        "scratch,dent",
    ]);
    assert!(err.contains("3 classes"), "{err}");
    let err = env.fail(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        foreign,
        "--labels",
        "scratch,dent,rust",
    ]);
    assert!(err.contains("`rust` is not a label"), "{err}");

    let ds = dataset_version(&env);
    let v1 = env.json(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        foreign,
        "--labels",
        "dent, scratch, ng",
        "--dataset",
        &ds,
        "--experiment",
        "exp-42",
    ]);
    assert_eq!(labels_of(&v1), ["dent", "scratch", "ng"]);
    // Without --labels a detector takes its checkpoint's names (a subset of the project labels).
    let v2 = env.json(&["register", "--config", cfg, "--checkpoint", native]);
    assert_eq!(labels_of(&v2), ["scratch", "dent", "ng"]);
    let bundle: Value = serde_json::from_slice(
        &std::fs::read(
            env.home
                .path()
                .join("artifacts")
                .join(v1["bundle_dir"].as_str().unwrap())
                .join("bundle.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(labels_of(&bundle), ["dent", "scratch", "ng"]);
    assert_eq!(bundle["format"], 2);
    // The bundle records the checkpoint's training size (Ultralytics `train_args.imgsz`, 256);
    // `--imgsz` overrides it and is checked before anything is registered.
    let bundle_of = |v: &Value| -> Value {
        let path = env
            .home
            .path()
            .join("artifacts")
            .join(v["bundle_dir"].as_str().unwrap())
            .join("bundle.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    assert_eq!(bundle_of(&v2)["preprocessing"]["imgsz"], 256);
    let err = env.fail(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        native,
        "--imgsz",
        "300",
    ]);
    assert!(err.contains("multiple of 32"), "{err}");
    let v3 = env.json(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        native,
        "--imgsz",
        "320",
    ]);
    assert_eq!(v3["version"], 3);
    assert_eq!(bundle_of(&v3)["preprocessing"]["imgsz"], 320);

    // Lineage both ways.
    let (ok, show, err) = env.run(&["model", "show", "1", "--project", "widget_line_a"]);
    assert!(ok, "{err}");
    assert!(show.contains(&ds) && show.contains("exp-42"), "{show}");
    let trained = env.json(&["model", "list", "--dataset", &ds]);
    let versions: Vec<i64> = trained
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1]);
    assert_eq!(
        env.json(&["model", "list", "--dataset", &ds, "--project", "other"]),
        Value::Array(vec![])
    );

    // The served model speaks the mapped names: class 0 (`kratzer`, really scratch) is `dent`.
    env.json(&[
        "model",
        "promote",
        "1",
        "--project",
        "widget_line_a",
        "--to",
        "production",
        "--force",
    ]);
    let (server, addr) =
        spawn_server(env.cmd(&["serve", "--addr", "127.0.0.1:0", "--no-request-log"]));
    let image = std::fs::read(fixtures().join("images/val_00003.jpg")).unwrap();
    let start = Instant::now();
    let response = loop {
        let (status, v) = http(
            &addr,
            "POST",
            "/projects/widget_line_a/inspect",
            "image/jpeg",
            &image,
        );
        if status == 200 {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{status} {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let dets = response["detections"].as_array().unwrap();
    assert!(!dets.is_empty(), "{response}");
    for d in dets {
        let label = d["label"].as_str().unwrap();
        assert!(["dent", "scratch", "ng"].contains(&label), "{d}");
    }
    drop(server);
}

#[test]
fn register_class_map_and_lineage_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(format!("sqlite://{}", dir.path().join("r.db").display()));
}

#[test]
fn register_class_map_and_lineage_postgres() {
    let t = sightline_db::testing::PgTestDatabase::create().unwrap();
    scenario(t.url().to_string());
}
