//! `sightline train` from each fixture checkpoint kind through the real binary, one epoch on the
//! tiny data: Ultralytics `.pt` for the detector (the widgets checkpoint, and the 80-class
//! yolov8s one, whose scale comes from the file and whose class head is re-initialised) and
//! torchvision `.pth` for the classifier (the widgets state dict, and the ImageNet-shaped
//! 1000-class one, whose head is replaced).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use crate::support::train_env::{Env, MANIFEST, done, metrics};
use serde_json::Value;
use sightline_testkit::fixtures;

/// One epoch from `weights`; returns the done event and the run's stderr.
fn train_from(env: &Env, config: &str, weights: &Path) -> (Value, String) {
    assert!(
        weights.is_file(),
        "fixture {} is missing",
        weights.display()
    );
    let out = env.run(&[
        "--json",
        "train",
        env.pipeline,
        "--config",
        config,
        "--epochs",
        "1",
        "--weights",
        weights.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "train from {}: {stderr}",
        weights.display()
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let d = done(&events).clone();
    assert_eq!(d["status"], "completed", "{d}");
    let dir = env.experiments().join(d["experiment"].as_str().unwrap());
    assert_eq!(metrics(&dir).len(), 1);
    assert!(dir.join("weights/best.safetensors").is_file());
    (d, stderr)
}

fn best(env: &Env, done: &Value) -> String {
    env.experiments()
        .join(done["experiment"].as_str().unwrap())
        .join("weights/best.safetensors")
        .display()
        .to_string()
}

/// The first file (by name) in the first non-empty class folder under `dir`.
fn first_file(dir: &Path) -> std::path::PathBuf {
    let mut classes: Vec<_> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    classes.sort();
    classes
        .iter()
        .find_map(|c| {
            let mut files: Vec<_> = fs_err::read_dir(c)
                .ok()?
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files.into_iter().next()
        })
        .unwrap()
}

#[test]
fn detector_from_ultralytics_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), None, "detector");
    env.tiny_data();
    // `yolov8-seg` without a scale: the scale comes from the starting checkpoint
    fs_err::write(
        env.home.join("any_scale.yaml"),
        MANIFEST.replace("name: yolov8n-seg", "name: yolov8-seg"),
    )
    .unwrap();
    env.ok(&["project", "apply", "any_scale.yaml"]);
    let fx = fixtures().join("ultralytics");

    let (_, err) = train_from(&env, "any_scale.yaml", &fx.join("yolov8n-seg-widgets.pt"));
    assert!(err.contains("yolov8n-seg from"), "{err}");

    let (d, err) = train_from(
        &env,
        "any_scale.yaml",
        &fx.join("yolov8s-seg-80class-random.pt"),
    );
    assert!(err.contains("yolov8s-seg from"), "{err}");
    assert!(err.contains("re-initialised"), "{err}");
    // the result is a yolov8s detector with this run's classes, usable for prediction
    let out = env.ok(&[
        "--json",
        "predict",
        "--weights",
        &best(&env, &d),
        "--imgsz",
        "64",
        "data/images/val/val_00000.jpg",
    ]);
    assert!(out.contains("\"detections\""), "{out}");
}

#[test]
fn classifier_from_torchvision_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), None, "classifier");
    env.tiny_data();
    let fx = fixtures().join("torchvision");

    let (_, err) = train_from(
        &env,
        "tiny.yaml",
        &fx.join("mobilenet_v3_small-widgets.pth"),
    );
    assert!(!err.contains("head re-initialised"), "{err}");

    let (d, err) = train_from(
        &env,
        "tiny.yaml",
        &fx.join("mobilenet_v3_small-1000class-random.pth"),
    );
    assert!(
        err.contains("classifier head re-initialised: the starting weights have 1000 classes"),
        "{err}"
    );
    let image = first_file(&env.home.join("data/classify/val"));
    let out = env.ok(&[
        "--json",
        "predict",
        "--weights",
        &best(&env, &d),
        image.to_str().unwrap(),
    ]);
    assert!(out.contains("\"probabilities\""), "{out}");
}
