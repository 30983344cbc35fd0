//! The ONNX Runtime backend against the Burn models on the fixtures: the same detections and
//! classifications through the same pipeline, raw outputs within 1e-4, every letterbox shape
//! (the wide fixture image is not square). Needs the ONNX Runtime library:
//! `$SIGHTLINE_ONNXRUNTIME_LIBRARY` or `$ORT_DYLIB_PATH` (`.ci/run` points it at the
//! `onnxruntime` wheel); the tests fail without it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use sightline_onnx::attach::{self, OrtRuntime};
use sightline_onnx::runtime::{self, OrtNetwork, SessionOptions};
use sightline_vision::backend::default_device;
use sightline_vision::classify::Classifier;
use sightline_vision::image::{DynamicImage, RgbImage};
use sightline_vision::network::Engine;
use sightline_vision::preprocess::load_rgb;
use sightline_vision::segment::{SegmentSettings, Segmenter};

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("SIGHTLINE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        });
    assert!(
        dir.join("README.md").is_file(),
        "fixtures not found at {} (set SIGHTLINE_FIXTURES)",
        dir.display()
    );
    dir
}

fn library() -> PathBuf {
    let lookup = runtime::locate_library(
        std::env::var_os("SIGHTLINE_ONNXRUNTIME_LIBRARY")
            .map(PathBuf::from)
            .as_deref(),
        Path::new("/nonexistent-home"),
        &|k| std::env::var(k).ok(),
    );
    lookup.path.unwrap_or_else(|| {
        panic!(
            "ONNX Runtime library not found ({}): set SIGHTLINE_ONNXRUNTIME_LIBRARY",
            lookup.origin
        )
    })
}

fn ort() -> OrtRuntime {
    OrtRuntime {
        library: library(),
        options: SessionOptions::default(),
    }
}

fn images() -> Vec<RgbImage> {
    let dir = fixtures().join("images");
    let mut names: Vec<_> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.iter().map(|p| load_rgb(p).unwrap()).collect()
}

#[test]
fn segmenter_on_onnxruntime_matches_burn() {
    let ckpt = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    let burn = Segmenter::from_checkpoint(&ckpt, None, default_device()).unwrap();
    let on_ort = attach::segmenter_on_ort(
        Segmenter::from_checkpoint(&ckpt, None, default_device()).unwrap(),
        &ort(),
        None,
        256,
    )
    .unwrap();
    assert!(matches!(on_ort.engine(), Engine::External(d) if d.starts_with("onnxruntime")));
    let imgs = images();
    assert!(
        imgs.iter().any(|i| i.width() != i.height()),
        "a non-square image is covered"
    );
    let mut settings = SegmentSettings {
        imgsz: 256,
        ..SegmentSettings::default()
    };
    // Raw outputs on every image (each its own letterbox shape).
    let net = OrtNetwork::from_bytes(
        &library(),
        &attach::export_segmenter_of(&burn, 256).unwrap(),
        &SessionOptions::default(),
    )
    .unwrap();
    let diffs = attach::compare_segmenter(&burn, &net, &imgs, &settings).unwrap();
    eprintln!("max diff onnxruntime vs burn: {diffs:?}");
    attach::check_tolerance(&diffs, 1e-4).unwrap();
    // Same detections (also at a low threshold, where near-ties would show).
    for conf in [0.25, 0.01] {
        settings.nms.conf = conf;
        let a = burn.predict(&imgs, &settings).unwrap();
        let b = on_ort.predict(&imgs, &settings).unwrap();
        assert_eq!(a.len(), b.len());
        let mut n = 0;
        for (da, db) in a.iter().zip(&b) {
            assert_eq!(da.len(), db.len(), "detection count at conf {conf}");
            for (x, y) in da.iter().zip(db) {
                assert_eq!(x.class_id, y.class_id);
                assert!((x.confidence - y.confidence).abs() < 1e-4);
                for k in 0..4 {
                    assert!(
                        (x.box_xyxy[k] - y.box_xyxy[k]).abs() < 1e-2,
                        "{x:?} vs {y:?}"
                    );
                }
                let differ = x
                    .mask
                    .to_dense()
                    .iter()
                    .zip(y.mask.to_dense())
                    .filter(|(p, q)| **p != *q)
                    .count();
                assert!(
                    differ * 1000 <= x.mask.area().max(1),
                    "mask pixels differ: {differ}"
                );
                n += 1;
            }
        }
        assert!(n > 0, "the fixture model finds something at conf {conf}");
    }
}

#[test]
fn classifier_on_onnxruntime_matches_burn() {
    let ckpt = fixtures().join("torchvision/mobilenet_v3_small-widgets.pth");
    let labels = Some(vec![
        "ok".into(),
        "ng".into(),
        "scratch".into(),
        "dent".into(),
    ]);
    let burn = Classifier::load(&ckpt, labels.clone()).unwrap();
    let on_ort =
        attach::classifier_on_ort(Classifier::load(&ckpt, labels).unwrap(), &ort(), None).unwrap();
    let imgs = images();
    let net = OrtNetwork::from_bytes(
        &library(),
        &attach::export_classifier_of(&burn).unwrap(),
        &SessionOptions::default(),
    )
    .unwrap();
    let diffs = attach::compare_classifier(&burn, &net, &imgs).unwrap();
    eprintln!("max diff onnxruntime vs burn, logits: {diffs:?}");
    attach::check_tolerance(&diffs, 1e-4).unwrap();
    let dyn_imgs: Vec<DynamicImage> = imgs.into_iter().map(DynamicImage::ImageRgb8).collect();
    let a = burn.predict(&dyn_imgs).unwrap();
    let b = on_ort.predict(&dyn_imgs).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.class_id, y.class_id);
        for (p, q) in x.probabilities.iter().zip(&y.probabilities) {
            assert!((p - q).abs() < 1e-5);
        }
    }
}

#[test]
fn a_mismatched_network_is_reported_not_served() {
    // A detector's ONNX file given to the classifier: its outputs do not fit.
    let det = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    let seg = Segmenter::from_checkpoint(&det, None, default_device()).unwrap();
    let onnx = attach::export_segmenter_of(&seg, 64).unwrap();
    let ckpt = fixtures().join("torchvision/mobilenet_v3_small-widgets.pth");
    let cls =
        attach::classifier_on_ort(Classifier::load(&ckpt, None).unwrap(), &ort(), Some(&onnx))
            .unwrap();
    let img = DynamicImage::ImageRgb8(RgbImage::new(64, 64));
    assert!(cls.predict(&[img]).is_err());
}
