//! The detector loop's run control and resume, on tiny generated images: a stop request ends
//! the run after the current batch keeping the last completed epoch, and resuming from the
//! saved weights + optimiser + EMA state gives the same losses as an uninterrupted run.
//! Also: starting weights from an Ultralytics checkpoint with another class count.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use image::RgbImage;
use sightline_train::augment::detect::DetAugConfig;
use sightline_train::augment::{DetSample, Instance};
use sightline_train::control::TrainControl;
use sightline_train::detector::{init_head_biases, start_detector};
use sightline_train::experiment::Experiment;
use sightline_train::optim::{GroupedOptimizer, OptimConfig, OptimizerKind};
use sightline_train::run::{DetRunConfig, resume_detector, train_detector};
use sightline_vision::burn::tensor::Device;
use sightline_vision::yolo::{YoloV8Seg, YoloV8SegConfig};
use std::path::PathBuf;

fn scene(i: usize) -> DetSample {
    let mut img = RgbImage::from_pixel(64, 64, image::Rgb([40, 40, 40]));
    let (x0, y0, class, colour) = if i.is_multiple_of(2) {
        (8u32 + i as u32, 10u32, 0, [230, 30, 30])
    } else {
        (30, 24 - i as u32, 1, [30, 30, 230])
    };
    for y in y0..y0 + 20 {
        for x in x0..x0 + 20 {
            img.put_pixel(x, y, image::Rgb(colour));
        }
    }
    let (x0, y0) = (x0 as f32, y0 as f32);
    DetSample {
        image: img,
        instances: vec![Instance {
            class,
            polygons: vec![vec![
                [x0, y0],
                [x0 + 20.0, y0],
                [x0 + 20.0, y0 + 20.0],
                [x0, y0 + 20.0],
            ]],
        }],
    }
}

fn opt_cfg() -> OptimConfig {
    OptimConfig {
        kind: OptimizerKind::AdamW,
        lr0: 0.002,
        momentum: 0.9,
        weight_decay: 0.0005,
        max_grad_norm: Some(10.0),
    }
}

fn run_cfg(epochs: usize) -> DetRunConfig {
    DetRunConfig {
        epochs,
        batch: 2,
        aug: DetAugConfig {
            imgsz: 64,
            ..Default::default()
        },
        close_mosaic: 1,
        lrf: 0.01,
        cos_lr: false,
        warmup_epochs: 1.0,
        warmup_bias_lr: 0.1,
        warmup_momentum: 0.8,
        patience: 0,
        seed: 5,
        names: vec!["a".into(), "b".into()],
    }
}

fn data() -> (Vec<DetSample>, Vec<DetSample>) {
    ((0..4).map(scene).collect(), (4..6).map(scene).collect())
}

/// Train `epochs` from scratch in a fresh experiment, stopping when `stop_at` (epoch, batch)
/// is reached. Returns the experiment folder and whether it stopped.
fn fresh_run(
    root: &std::path::Path,
    epochs: usize,
    stop_at: Option<(usize, usize)>,
) -> (PathBuf, bool) {
    let device = Device::flex().autodiff();
    device.seed(11);
    let model = init_head_biases(YoloV8Seg::new(&YoloV8SegConfig::n(2), &device));
    let mut opt = GroupedOptimizer::new(opt_cfg(), &model);
    let mut exp = Experiment::create(root, 0, &serde_json::json!({}), "v").unwrap();
    let control = TrainControl::new();
    let control = match stop_at {
        Some((e, b)) => {
            let c2 = control.clone();
            control.with_batch_callback(move |p| {
                if (p.epoch, p.batch) == (e, b) {
                    c2.request_stop();
                }
            })
        }
        None => control,
    };
    let (train, val) = data();
    let out = train_detector(
        model,
        &mut opt,
        None,
        &run_cfg(epochs),
        train,
        val,
        &mut exp,
        &device,
        &control,
        |_| {},
    )
    .unwrap();
    (exp.dir().to_path_buf(), out.stopped)
}

fn losses(dir: &std::path::Path) -> Vec<Vec<f64>> {
    Experiment::open(dir)
        .unwrap()
        .records()
        .iter()
        .map(|r| r.losses.values().copied().collect())
        .collect()
}

#[test]
fn stop_keeps_last_epoch_and_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    // uninterrupted: 2 epochs
    let (full, stopped) = fresh_run(tmp.path(), 2, None);
    assert!(!stopped);
    // stopped during epoch 1 (second epoch), after its first batch
    let (part, stopped) = fresh_run(tmp.path(), 2, Some((1, 0)));
    assert!(stopped);
    let exp = Experiment::open(&part).unwrap();
    assert_eq!(
        exp.records().len(),
        1,
        "the unfinished epoch is not recorded"
    );
    assert!(exp.weights_path("last").exists() && exp.weights_path("best").exists());
    let summary: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(part.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "stopped");
    assert_eq!(summary["epochs_completed"], 1);

    // resume from the saved state
    let device = Device::flex().autodiff();
    let mut exp = Experiment::open(&part).unwrap();
    let (model, mut opt, ema) =
        resume_detector(&exp, &YoloV8SegConfig::n(2), opt_cfg(), &device).unwrap();
    assert!(opt.steps() > 0);
    let (train, val) = data();
    let mut seen = Vec::new();
    let out = train_detector(
        model,
        &mut opt,
        Some(ema),
        &run_cfg(2),
        train,
        val,
        &mut exp,
        &device,
        &TrainControl::new(),
        |r| seen.push(r.epoch),
    )
    .unwrap();
    assert!(!out.stopped);
    assert_eq!(seen, vec![1], "resumes at the first unfinished epoch");
    let (a, b) = (losses(&full), losses(&part));
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1.0),
            "resumed losses differ: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn nothing_to_resume_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = Experiment::create(tmp.path(), 0, &serde_json::json!({}), "v").unwrap();
    let e = resume_detector(
        &exp,
        &YoloV8SegConfig::n(2),
        opt_cfg(),
        &Device::flex().autodiff(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no completed epoch"), "{e}");
}

fn fixtures() -> PathBuf {
    std::env::var_os("SIGHTLINE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
}

#[test]
fn ultralytics_start_weights_reinitialise_the_class_head_only() {
    let ckpt = sightline_vision::checkpoint::read_checkpoint(
        &fixtures().join("ultralytics/yolov8n-seg-widgets.pt"),
    )
    .unwrap();
    let map = sightline_vision::checkpoint::into_tensor_map(ckpt);
    let device = Device::flex();
    // same class count (3): everything transfers
    let (_, t) = start_detector(&YoloV8SegConfig::n(3), Some(&map), &device).unwrap();
    assert_eq!(t.loaded, t.total);
    assert!(t.reinitialised.is_empty());
    // 2 classes: only the class branch of the head is fresh
    let (m, t) = start_detector(&YoloV8SegConfig::n(2), Some(&map), &device).unwrap();
    assert_eq!(m.num_classes(), 2);
    assert!(!t.reinitialised.is_empty());
    assert!(
        t.reinitialised
            .iter()
            .all(|n| n.starts_with("model.22.cv3.")),
        "{:?}",
        t.reinitialised
    );
    let kept = m.to_tensor_map().unwrap();
    assert_eq!(
        kept.get("model.0.conv.weight").unwrap().data,
        map.get("model.0.conv.weight").unwrap().data
    );
    // another scale is refused
    let e = start_detector(&YoloV8SegConfig::s(3), Some(&map), &device).unwrap_err();
    assert!(e.to_string().contains("YOLOv8n-seg"), "{e}");
}
