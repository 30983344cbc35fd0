//! `sightline train classifier` driving the real binary on a tiny synthetic data set (8 images
//! of 64 px, image-folder labels, mobilenet_v3_small at 64 px): the experiment folder,
//! metrics.json, weights, the database record on SQLite and PostgreSQL, resume, refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MANIFEST: &str = "project: tiny
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters:
      epochs: 2
      batch_size: 4
      imgsz: 64
      warmup_epochs: 0
      seed: 3
  classifier:
    name: mobilenet_v3_small
    weights: none
    hyperparameters:
      epochs: 2
      batch_size: 4
      imgsz: 64\n";

struct Env {
    home: PathBuf,
    database_url: String,
}

impl Env {
    fn new(home: &Path, database_url: Option<String>) -> Self {
        std::fs::create_dir_all(home).unwrap();
        let database_url = database_url
            .unwrap_or_else(|| format!("sqlite://{}", home.join("sightline.db").display()));
        let e = Env {
            home: home.to_path_buf(),
            database_url,
        };
        std::fs::write(home.join("tiny.yaml"), MANIFEST).unwrap();
        e.ok(&["project", "apply", "tiny.yaml"]);
        e
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sightline"));
        for var in [
            "SIGHTLINE_HOME",
            "SIGHTLINE_DATABASE_URL",
            "DATABASE_URL",
            "SIGHTLINE_CONFIG",
            "SIGHTLINE_ARTIFACTS_ROOT",
            "SIGHTLINE_ARTIFACTS_BACKEND",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd.arg("--home")
            .arg(&self.home)
            .args(["--database-url", &self.database_url]);
        cmd.current_dir(&self.home).args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fail(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    /// Generate the tiny set and ingest its class folders; returns the version id.
    fn tiny_data(&self) -> String {
        self.ok(&[
            "demo", "generate", "--train", "6", "--val", "2", "--size", "64", "--seed", "5",
            "--out", "data",
        ]);
        let v: serde_json::Value = serde_json::from_str(&self.ok(&[
            "--json",
            "dataset",
            "ingest",
            "data/classify",
            "--project",
            "tiny",
            "--format",
            "folder",
        ]))
        .unwrap();
        v["version"]["id"].as_str().unwrap().to_string()
    }

    /// `train classifier --json`; returns the events.
    fn train(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["--json", "train", "classifier"];
        args.extend_from_slice(extra);
        self.ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn experiments(&self) -> PathBuf {
        self.home.join("artifacts/experiments")
    }
}

fn done(events: &[serde_json::Value]) -> &serde_json::Value {
    let d = events.last().unwrap();
    assert_eq!(d["event"], "done", "{events:?}");
    d
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

async fn scenario(env: &Env) {
    let version = env.tiny_data();
    let ev = env.train(&["--config", "tiny.yaml", "--epochs", "1"]);
    assert_eq!(ev[0]["event"], "start");
    assert_eq!(
        ev[0]["names"],
        serde_json::json!(["ok", "ng", "scratch", "dent"])
    );
    let d = done(&ev);
    assert_eq!(d["status"], "completed");
    let id = d["experiment"].as_str().unwrap().to_string();
    let dir = env.experiments().join(&id);
    assert_eq!(metrics(&dir).len(), 1);
    for f in [
        "weights/last.safetensors",
        "weights/best.safetensors",
        "config.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // resume to 2 epochs
    let ev = env.train(&["--resume", &id, "--epochs", "2"]);
    assert_eq!(ev[0]["resume_from_epoch"], 1);
    let m = metrics(&dir);
    assert_eq!(m.len(), 2);
    assert!(m[1]["metrics"].get("top1").is_some(), "{m:?}");
    let db = sightline_db::Db::connect(&env.database_url).await.unwrap();
    let row = sightline_db::experiments::get(&db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, sightline_db::experiments::Status::Completed);
    assert_eq!(row.task, "classify");
    assert_eq!(row.dataset_version_id, version);
    assert_eq!(row.epochs_completed, 2);
    assert_eq!(
        sightline_db::experiments::epochs(&db, &id)
            .await
            .unwrap()
            .len(),
        2
    );
    // `imagenet` without the file names the expected file; nothing is downloaded
    std::fs::write(
        env.home.join("imagenet.yaml"),
        MANIFEST.replace(
            "    name: mobilenet_v3_small\n    weights: none",
            "    name: mobilenet_v3_small\n    weights: imagenet",
        ),
    )
    .unwrap();
    let e = env.fail(&["train", "classifier", "--config", "imagenet.yaml"]);
    assert!(e.contains("mobilenet_v3_small-imagenet.pth"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn train_classifier_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), None);
    scenario(&env).await;
    // a COCO-only version (no image labels) is refused
    env.ok(&[
        "dataset",
        "ingest",
        "data",
        "--project",
        "tiny",
        "--format",
        "coco",
    ]);
    let e = env.fail(&["train", "classifier", "--config", "tiny.yaml"]);
    assert!(e.contains("no image-level labels"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn train_classifier_on_postgres() {
    let t = sightline_db::testing::fresh_postgres().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    scenario(&Env::new(tmp.path(), Some(t.url.clone()))).await;
}
