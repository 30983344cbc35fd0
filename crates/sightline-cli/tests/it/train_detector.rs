//! `sightline train detector` driving the real binary on a tiny synthetic data set (8 images of
//! 64 px, yolov8n-seg, imgsz 64): project apply → demo generate → dataset ingest → train; the
//! experiment folder, metrics.json, weights and the database record, on SQLite and PostgreSQL;
//! determinism (same seed, same losses); resume after a run; refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use crate::support::train_env::{Env, MANIFEST, done, metrics};

fn total_loss(epoch: &serde_json::Value) -> f64 {
    epoch["losses"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum()
}

fn losses(dir: &Path) -> Vec<serde_json::Value> {
    metrics(dir)
        .into_iter()
        .map(|m| m["losses"].clone())
        .collect()
}

async fn db_checks(env: &Env, id: &str, version: &str, epochs: i64) {
    let db = sightline_db::Db::connect(&env.database_url).await.unwrap();
    let row = sightline_db::experiments::get(&db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, sightline_db::experiments::Status::Completed);
    assert_eq!(row.project, "tiny");
    assert_eq!(row.task, "segment");
    assert_eq!(row.dataset_version_id, version);
    assert_eq!(row.epochs_completed, epochs);
    assert!(row.best_epoch.is_some() && row.best_fitness.is_some());
    assert!(row.best_metrics.get("mask_map").is_some(), "{row:?}");
    assert_eq!(row.config["hyperparameters"]["imgsz"], 64);
    let eps = sightline_db::experiments::epochs(&db, id).await.unwrap();
    assert_eq!(eps.len() as i64, epochs);
    let listed = sightline_db::experiments::list(&db, "tiny").await.unwrap();
    assert!(listed.iter().any(|r| r.id == id));
}

/// The whole story on one database.
async fn scenario(env: &Env) {
    // refused before data exists
    let e = env.fail(&["train", "detector", "--config", "tiny.yaml"]);
    assert!(e.contains("dataset version"), "{e}");
    let version = env.tiny_data();

    // 3 epochs (loss must fall), events, artifacts, DB
    let ev = env.train(&["--config", "tiny.yaml", "--epochs", "3"]);
    assert_eq!(ev[0]["event"], "start");
    assert_eq!(ev[0]["names"], serde_json::json!(["ng", "scratch", "dent"]));
    assert!(ev.iter().any(|e| e["event"] == "batch"));
    assert_eq!(ev.iter().filter(|e| e["event"] == "epoch").count(), 3);
    let d = done(&ev);
    assert_eq!(d["status"], "completed");
    let id = d["experiment"].as_str().unwrap().to_string();
    let dir = env.experiments().join(&id);
    let m = metrics(&dir);
    assert_eq!(m.len(), 3);
    assert!(
        total_loss(&m[2]) < total_loss(&m[0]),
        "loss did not fall: {:?}",
        m.iter().map(total_loss).collect::<Vec<_>>()
    );
    for f in [
        "weights/last.safetensors",
        "weights/best.safetensors",
        "weights/last.optim.safetensors",
        "weights/last.ema.safetensors",
        "config.json",
        "summary.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let conf: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(conf["dataset_version"], version.as_str());
    db_checks(env, &id, &version, 3).await;
    // the checkpoint predicts with the trained class names
    let out = env.ok(&[
        "--json",
        "predict",
        "--weights",
        dir.join("weights/best.safetensors").to_str().unwrap(),
        "--imgsz",
        "64",
        "data/images/val/val_00000.jpg",
    ]);
    assert!(out.contains("\"detections\""), "{out}");

    // resume: 1 epoch, then continue to 2; equals a straight 2-epoch run, which is itself
    // reproducible (same seed, same losses)
    let a = done(&env.train(&["--config", "tiny.yaml"]))["experiment"]
        .as_str()
        .unwrap()
        .to_string();
    let b = done(&env.train(&["--config", "tiny.yaml"]))["experiment"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        losses(&env.experiments().join(&a)),
        losses(&env.experiments().join(&b)),
        "same seed, different losses"
    );
    let c = done(&env.train(&["--config", "tiny.yaml", "--epochs", "1"]))["experiment"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(metrics(&env.experiments().join(&c)).len(), 1);
    let ev = env.train(&["--resume", &c, "--epochs", "2"]);
    assert_eq!(ev[0]["resume_from_epoch"], 1);
    assert_eq!(done(&ev)["experiment"], c.as_str());
    let (la, lc) = (
        losses(&env.experiments().join(&a)),
        losses(&env.experiments().join(&c)),
    );
    assert_eq!(lc.len(), 2);
    for (x, y) in la.iter().zip(&lc) {
        for (k, v) in x.as_object().unwrap() {
            let (p, q) = (v.as_f64().unwrap(), y[k].as_f64().unwrap());
            assert!((p - q).abs() <= 1e-4 * p.abs().max(1.0), "{la:?} vs {lc:?}");
        }
    }
    db_checks(env, &c, &version, 2).await;

    // a classification-only version is refused, and leaves no experiment behind
    let before = fs_err::read_dir(env.experiments()).unwrap().count();
    env.ok(&[
        "dataset",
        "ingest",
        "data/classify",
        "--project",
        "tiny",
        "--format",
        "folder",
    ]);
    let e = env.fail(&["train", "detector", "--config", "tiny.yaml"]);
    assert!(e.contains("no object instances"), "{e}");
    assert_eq!(fs_err::read_dir(env.experiments()).unwrap().count(), before);
    let e = env.fail(&["train", "detector", "--resume", "nope"]);
    assert!(e.contains("not found"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn train_detector_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    scenario(&Env::new(tmp.path(), None, "detector")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn train_detector_on_postgres() {
    let t = sightline_db::testing::fresh_postgres().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), Some(t.url.clone()), "detector");
    // the short version of the story: one run, its record
    let version = env.tiny_data();
    let d = env.train(&["--config", "tiny.yaml"]);
    let id = done(&d)["experiment"].as_str().unwrap().to_string();
    assert_eq!(metrics(&env.experiments().join(&id)).len(), 2);
    db_checks(&env, &id, &version, 2).await;
}

#[test]
fn project_must_be_applied() {
    let tmp = tempfile::tempdir().unwrap();
    fs_err::write(
        tmp.path().join("other.yaml"),
        MANIFEST.replace("tiny", "other"),
    )
    .unwrap();
    let env = Env {
        home: tmp.path().to_path_buf(),
        database_url: format!("sqlite://{}", tmp.path().join("s.db").display()),
        pipeline: "detector",
    };
    let e = env.fail(&["train", "detector", "--config", "other.yaml"]);
    assert!(e.contains("sightline project apply"), "{e}");
}
