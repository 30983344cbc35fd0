//! `sightline train classifier` driving the real binary on a tiny synthetic data set (8 images
//! of 64 px, image-folder labels, mobilenet_v3_small at 64 px): the experiment folder,
//! metrics.json, weights, the database record on SQLite and PostgreSQL, resume, refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support::redactions;
use crate::support::train_env::{Env, MANIFEST, done, metrics};

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
    // The events' shape; the values that vary between runs (losses, metrics, the experiment id)
    // are checked above and below.
    insta::assert_json_snapshot!(
        "train_classifier_events",
        redactions(&env.home)
            .floats("[float]")
            .replace(&id, "[experiment]")
            .replace(&version, "[dataset-version]")
            .apply(&serde_json::Value::from(ev.clone()))
    );
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
    fs_err::write(
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
    let env = Env::new(tmp.path(), None, "classifier");
    scenario(&env).await;
    // a COCO version without image labels is refused (the generator writes image labels into
    // its COCO files: strip them)
    let (src, dst) = (env.home.join("data"), env.home.join("coco-only"));
    for split in ["train", "val"] {
        let images = dst.join("images").join(split);
        fs_err::create_dir_all(&images).unwrap();
        for f in fs_err::read_dir(src.join("images").join(split)).unwrap() {
            let f = f.unwrap().path();
            fs_err::copy(&f, images.join(f.file_name().unwrap())).unwrap();
        }
        let json = format!("annotations/instances_{split}.json");
        let mut coco: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(src.join(&json)).unwrap()).unwrap();
        for im in coco["images"].as_array_mut().unwrap() {
            im.as_object_mut().unwrap().remove("label");
        }
        fs_err::create_dir_all(dst.join("annotations")).unwrap();
        fs_err::write(dst.join(&json), coco.to_string()).unwrap();
    }
    env.ok(&[
        "dataset",
        "ingest",
        "coco-only",
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
    scenario(&Env::new(tmp.path(), Some(t.url.clone()), "classifier")).await;
}
