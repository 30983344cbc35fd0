//! Manifest validation against files: the seed example validates, every broken manifest under
//! `tests/manifests/` gives precise `file:line:column` messages (snapshot-tested).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use sightline_core::{Manifest, ManifestError, ModelName, Optimizer, Task, Weights, YoloScale};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Load a manifest under `tests/manifests/`, naming it relative to the crate in messages.
fn load(name: &str) -> Result<Manifest, String> {
    let rel = Path::new("tests/manifests").join(name);
    let text = fs_err::read_to_string(crate_dir().join(&rel)).unwrap();
    Manifest::parse(&text, &rel.display().to_string()).map_err(|d| d.to_string())
}

#[test]
fn seed_manifest_validates() {
    let path = crate_dir().join("../../models/configs/widget_line_a.yaml");
    let m = Manifest::load(&path).unwrap();
    assert_eq!(m.project, "widget_line_a");
    assert_eq!(m.labels, ["ok", "ng", "scratch", "dent"]);
    let det = m.detector.as_ref().unwrap();
    assert_eq!(det.name, ModelName::Yolov8Seg(None));
    assert_eq!(det.name.resolve_scale(None), Some(YoloScale::N));
    assert_eq!(
        det.weights,
        Weights::Path("pretrained/yolov8s-seg.pt".into())
    );
    assert_eq!(det.hyperparameters.epochs, 100);
    assert_eq!(det.hyperparameters.batch_size, 16);
    // unspecified hyperparameters take the detector (Ultralytics) defaults
    assert_eq!(det.hyperparameters.imgsz, 640);
    assert_eq!(det.hyperparameters.lr0, 0.01);
    assert_eq!(det.hyperparameters.optimizer, Optimizer::Auto);
    assert_eq!(det.thresholds.for_label("scratch"), 0.25);
    let cls = m.classifier.as_ref().unwrap();
    assert_eq!(cls.name, ModelName::MobileNetV3Small);
    assert_eq!(cls.name.task(), Task::Classify);
    assert_eq!(cls.weights, Weights::ImageNet);
    assert_eq!(cls.hyperparameters.epochs, 50);
    assert_eq!(cls.hyperparameters.batch_size, 64);
    assert_eq!(cls.hyperparameters.imgsz, 224);
    assert_eq!(m.business_rules.max_ng_ratio, Some(0.1));
    assert!(!m.business_rules.allow_unknown);
}

#[test]
fn full_manifest_validates_with_every_option() {
    let m = load("valid_full.yaml").unwrap();
    let det = m.detector.as_ref().unwrap();
    assert_eq!(det.name, ModelName::Yolov8Seg(Some(YoloScale::M)));
    assert_eq!(det.weights, Weights::None);
    let h = &det.hyperparameters;
    assert_eq!(
        (h.epochs, h.batch_size, h.imgsz, h.patience, h.seed),
        (30, 8, 256, 20, 42)
    );
    assert_eq!(h.optimizer, Optimizer::Adamw);
    assert_eq!(
        (h.lr0, h.lrf, h.warmup_epochs, h.label_smoothing),
        (0.005, 0.1, 1.5, 0.1)
    );
    assert_eq!(h.augmentation.mosaic, 0.5);
    assert_eq!(h.augmentation.close_mosaic, 5);
    // untouched augmentation fields keep their defaults
    assert_eq!(h.augmentation.hsv_s, 0.7);
    assert_eq!(det.thresholds.for_label("scratch"), 0.4);
    assert_eq!(det.thresholds.for_label("stain"), 0.25);
    let cls = m.classifier.as_ref().unwrap();
    assert_eq!(cls.weights, Weights::Path("/abs/path/mobilenet.pth".into()));
    assert_eq!(m.business_rules.max_ng_ratio, Some(0.05));
    assert!(m.business_rules.allow_unknown);
    // the resolved manifest round-trips through JSON (as stored in the database)
    let json = serde_json::to_string(&m).unwrap();
    let back: Manifest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
}

#[test]
fn load_names_missing_file() {
    let err = Manifest::load(Path::new("/nonexistent/x.yaml")).unwrap_err();
    assert!(matches!(err, ManifestError::Io(_)));
    assert!(err.to_string().contains("/nonexistent/x.yaml"), "{err}");
}

#[test]
fn broken_manifests_give_precise_errors() {
    let dir = crate_dir().join("tests/manifests");
    let mut names: Vec<String> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && !n.starts_with("valid_"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 10,
        "expected 10+ broken manifests, found {}",
        names.len()
    );
    for name in names {
        let err = match load(&name) {
            Ok(_) => panic!("{name} should not validate"),
            Err(e) => e,
        };
        // every line is `file:line:column: message`
        for line in err.lines() {
            let prefix = format!("tests/manifests/{name}:");
            assert!(line.starts_with(&prefix), "{line}");
            let mut parts = line[prefix.len()..].splitn(3, ':');
            let l: u64 = parts.next().unwrap().parse().unwrap();
            let c: u64 = parts.next().unwrap().parse().unwrap();
            assert!(l >= 1 && c >= 1, "{line}");
        }
        insta::assert_snapshot!(name.trim_end_matches(".yaml"), err);
    }
}
