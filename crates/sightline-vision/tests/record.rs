//! Burnpack records (`sightline_vision::record`): save → load gives identical outputs for
//! YOLOv8-seg (the fixture checkpoint, with real batch-norm statistics) and MobileNetV3; a
//! record is recognised by `read_checkpoint` whatever its extension, so the pipelines load it
//! like any checkpoint; a record missing a tensor or with a mis-shaped one fails naming it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use burn_store::{BurnpackStore, ModuleSnapshot, PathFilter};
use sightline_vision::VisionError;
use sightline_vision::burn::tensor::{Device, Tensor, TensorData};
use sightline_vision::checkpoint::{Task, into_tensor_map, read_checkpoint, task_of};
use sightline_vision::classify::Classifier;
use sightline_vision::mobilenet::{MobileNetV3, MobileNetV3Config};
use sightline_vision::record;
use sightline_vision::segment::Segmenter;
use sightline_vision::weights::tensor_to_vec;
use sightline_vision::yolo::{YoloV8Seg, YoloV8SegConfig};

fn fixtures() -> PathBuf {
    let p = std::env::var_os("SIGHTLINE_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
        PathBuf::from,
    );
    assert!(p.is_dir(), "fixtures folder {} is missing", p.display());
    p
}

/// A deterministic image batch `[1, 3, s, s]` in [0, 1].
fn input(s: usize, d: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..3 * s * s)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect();
    Tensor::from_data(TensorData::new(v, [1, 3, s, s]), d)
}

fn yolo() -> (YoloV8Seg, YoloV8SegConfig, Vec<String>) {
    let ckpt = read_checkpoint(&fixtures().join("ultralytics/yolov8n-seg-widgets.pt")).unwrap();
    let names = ckpt.meta.names.clone().unwrap();
    let map = into_tensor_map(ckpt);
    let config = YoloV8SegConfig::infer(&map).unwrap();
    let model = YoloV8Seg::load(&config, &map, &Device::flex()).unwrap();
    (model, config, names)
}

#[test]
fn yolo_record_round_trip_gives_identical_outputs() {
    let d = Device::flex();
    let (model, config, names) = yolo();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("best.bpk");
    record::save_detector(&model, &config, &names, Some(256), &path).unwrap();
    assert!(record::is_record_file(&path));

    let (back, back_config, back_names) = record::load_detector(&path, &d).unwrap();
    assert_eq!(back_config, config);
    assert_eq!(back_names.as_deref(), Some(names.as_slice()));
    let (a, b) = (model.forward(input(64, &d)), back.forward(input(64, &d)));
    assert_eq!(
        tensor_to_vec(a.pred).unwrap(),
        tensor_to_vec(b.pred).unwrap()
    );
    assert_eq!(
        tensor_to_vec(a.proto).unwrap(),
        tensor_to_vec(b.proto).unwrap()
    );

    // any extension: recognised by its magic bytes, loaded by the inference pipeline
    let renamed = tmp.path().join("weights.last");
    fs_err::copy(&path, &renamed).unwrap();
    let ckpt = read_checkpoint(&renamed).unwrap();
    assert_eq!(task_of(&ckpt), Some(Task::Segment));
    // the training size travels with the record
    assert_eq!(
        sightline_vision::imgsz::checkpoint_imgsz(&ckpt.meta).unwrap(),
        Some(256)
    );
    let from_record = Segmenter::from_loaded_checkpoint(ckpt, None, d.clone()).unwrap();
    assert_eq!(from_record.labels(), names.as_slice());
    let reference =
        Segmenter::from_weights(&model.to_tensor_map().unwrap(), names.clone(), d.clone()).unwrap();
    let (a, b) = (
        reference.forward(input(96, &d)),
        from_record.forward(input(96, &d)),
    );
    assert_eq!(
        tensor_to_vec(a.pred).unwrap(),
        tensor_to_vec(b.pred).unwrap()
    );
    // a classifier refuses it
    let e = Classifier::load_on(&renamed, None, d)
        .unwrap_err()
        .to_string();
    assert!(e.contains("segmentation"), "{e}");
}

#[test]
fn mobilenet_record_round_trip_gives_identical_outputs() {
    let d = Device::flex();
    d.seed(7);
    let config = MobileNetV3Config::small(4);
    let model = MobileNetV3::new(&config, &d);
    let names: Vec<String> = ["ok", "ng", "scratch", "dent"].map(String::from).to_vec();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("clf.bpk");
    record::save_classifier(&model, &config, &names, None, &path).unwrap();
    let (back, back_config, back_names) = record::load_classifier(&path, &d).unwrap();
    assert_eq!(back_config, config);
    assert_eq!(back_names, Some(names.clone()));
    let a = tensor_to_vec(model.forward(input(64, &d))).unwrap();
    let b = tensor_to_vec(back.forward(input(64, &d))).unwrap();
    assert_eq!(a, b);
    // through the classification pipeline, as `sightline predict --weights clf.bpk` loads it
    let clf = Classifier::load_on(&path, None, d.clone()).unwrap();
    let reference =
        Classifier::from_weights(&model.to_tensor_map().unwrap(), names.clone(), d.clone())
            .unwrap();
    assert_eq!(
        tensor_to_vec(clf.forward(input(64, &d))).unwrap(),
        tensor_to_vec(reference.forward(input(64, &d))).unwrap()
    );
    let e = Segmenter::from_checkpoint(&path, None, d)
        .unwrap_err()
        .to_string()
        .to_lowercase();
    assert!(e.contains("classif"), "{e}");
}

#[test]
fn a_missing_tensor_is_named() {
    let d = Device::flex();
    d.seed(1);
    let config = MobileNetV3Config::small(3);
    let model = MobileNetV3::new(&config, &d);
    let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full.bpk");
    record::save_classifier(&model, &config, &names, None, &full).unwrap();
    // the same record without one batch-norm buffer, written with burn-store's own filter
    let partial = tmp.path().join("partial.bpk");
    let mut store = BurnpackStore::from_file(&partial)
        .auto_extension(false)
        .with_filter(PathFilter::new().with_predicate(|path, _| {
            !(path.starts_with("blocks.1.") && path.ends_with("running_var"))
        }));
    for (k, v) in record::classifier_metadata(&config, &names).unwrap() {
        store = store.metadata(k, v);
    }
    model.save_into(&mut store).unwrap();
    let Err(e) = record::load_classifier(&partial, &d) else {
        panic!("a record without a tensor loaded");
    };
    let msg = e.to_string();
    assert!(
        matches!(&e, VisionError::MissingTensor { name } if name.starts_with("blocks.1.") && name.ends_with("running_var")),
        "{msg}"
    );
    // the same error through the pipeline's loader, naming the file too
    let e = read_checkpoint(&partial).unwrap_err().to_string();
    assert!(
        e.contains("partial.bpk") && e.contains("running_var"),
        "{e}"
    );
}

#[test]
fn a_mis_shaped_tensor_is_named() {
    let d = Device::flex();
    let three = YoloV8SegConfig::n(3);
    let model = YoloV8Seg::new(&three, &d);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("wrong.bpk");
    // the metadata says 2 classes, the tensors are those of a 3-class head
    let two = YoloV8SegConfig::n(2);
    let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
    record::save_detector(&model, &two, &names, None, &path).unwrap();
    let Err(e) = record::load_detector(&path, &d) else {
        panic!("a record with a mis-shaped tensor loaded");
    };
    match &e {
        VisionError::ShapeMismatch {
            name,
            expected,
            found,
        } => {
            assert!(name.starts_with("head."), "{e}");
            assert!(expected.contains(&2) && found.contains(&3), "{e}");
        }
        other => panic!("expected a shape mismatch, got {other}"),
    }
    assert!(e.to_string().contains("head."), "{e}");
}
