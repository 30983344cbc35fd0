//! A real YOLOv8n-seg (random init) overfits two generated 64×64 images for a few steps:
//! the loss must fall. Exercises augment → targets → model → loss → optimiser end to end.

use image::RgbImage;
use sightline_train::augment::detect::{DetAugConfig, letterbox, to_targets, train_sample};
use sightline_train::augment::{DetSample, Instance};
use sightline_train::detector::{batch_tensor, forward_backward, init_head_biases};
use sightline_train::optim::{GroupedOptimizer, OptimConfig, OptimizerKind};
use sightline_train::rng::Rng;
use sightline_train::validate::validate_detector;
use sightline_train::yolo::loss::SegLossConfig;
use sightline_vision::burn::module::Module;
use sightline_vision::burn::tensor::Device;
use sightline_vision::yolo::{YoloV8Seg, YoloV8SegConfig};

fn scene(i: usize) -> DetSample {
    let mut img = RgbImage::from_pixel(64, 64, image::Rgb([40, 40, 40]));
    let (x0, y0, class, colour) = if i == 0 {
        (8u32, 10u32, 0, [230, 30, 30])
    } else {
        (30, 24, 1, [30, 30, 230])
    };
    for y in y0..y0 + 24 {
        for x in x0..x0 + 24 {
            img.put_pixel(x, y, image::Rgb(colour));
        }
    }
    let (x0, y0) = (x0 as f32, y0 as f32);
    let poly = vec![
        [x0, y0],
        [x0 + 24.0, y0],
        [x0 + 24.0, y0 + 24.0],
        [x0, y0 + 24.0],
    ];
    DetSample {
        image: img,
        instances: vec![Instance {
            class,
            polygons: vec![poly],
        }],
    }
}

#[test]
fn loss_falls_when_overfitting_two_images() {
    let device = Device::flex().autodiff();
    device.seed(7);
    let model = init_head_biases(YoloV8Seg::new(&YoloV8SegConfig::n(2), &device));
    let cfg = OptimConfig {
        kind: OptimizerKind::AdamW,
        lr0: 0.001,
        momentum: 0.9,
        weight_decay: 0.0,
        max_grad_norm: Some(10.0),
    };
    let mut opt = GroupedOptimizer::new(cfg, &model);
    let loss_cfg = SegLossConfig::yolov8(2);
    // one light augmentation pass (no mosaic) so the path is exercised, then fixed batches
    let aug = DetAugConfig {
        imgsz: 64,
        mosaic: 0.0,
        translate: 0.0,
        scale: 0.0,
        fliplr: 0.0,
        ..Default::default()
    };
    let load = |i: usize| scene(i);
    let samples: Vec<DetSample> = (0..2)
        .map(|i| train_sample(i, 2, &load, &aug, &mut Rng::for_sample(1, 0, i as u64)))
        .collect();
    assert!(samples.iter().all(|s| s.instances.len() == 1));
    let (boxed, _) = letterbox(samples[0].clone(), 64, 64, false);
    assert_eq!(boxed.image.dimensions(), (64, 64));
    let targets: Vec<_> = samples.iter().map(|s| to_targets(s, 4)).collect();
    let images: Vec<RgbImage> = samples.iter().map(|s| s.image.clone()).collect();
    let mut model = model;
    let mut losses = Vec::new();
    for _ in 0..12 {
        let x = batch_tensor(&images, &device);
        let l = forward_backward(&model, &mut opt, &loss_cfg, x, &targets).unwrap();
        assert!(l.num_fg > 0);
        losses.push(l.box_loss + l.seg_loss + l.cls_loss + l.dfl_loss);
        model = opt.step(model);
    }
    let first = losses[0];
    let tail = losses[losses.len() - 3..].iter().sum::<f32>() / 3.0;
    assert!(losses.iter().all(|v| v.is_finite()), "{losses:?}");
    eprintln!("losses: {losses:?}");
    assert!(tail < 0.75 * first, "loss did not fall: {losses:?}");

    // validation runs in eval mode (batch norm on running statistics) and yields metrics in [0, 1]
    let eval = model.valid();
    let m = validate_detector(&eval, &images, &targets, 2, &device).unwrap();
    for v in [m.box_map50, m.box_map, m.mask_map50, m.mask_map] {
        assert!((0.0..=1.0).contains(&v), "{m:?}");
    }
    assert!(
        m.box_map <= m.box_map50 && m.mask_map <= m.mask_map50,
        "{m:?}"
    );
}

#[test]
fn two_epochs_write_metrics_and_weights() {
    use sightline_train::experiment::Experiment;
    use sightline_train::run::{DetRunConfig, train_detector};
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = init_head_biases(YoloV8Seg::new(&YoloV8SegConfig::n(2), &device));
    let cfg = OptimConfig {
        kind: OptimizerKind::AdamW,
        lr0: 0.001,
        momentum: 0.9,
        weight_decay: 0.0005,
        max_grad_norm: Some(10.0),
    };
    let mut opt = GroupedOptimizer::new(cfg, &model);
    let run = DetRunConfig {
        epochs: 2,
        batch: 2,
        aug: DetAugConfig {
            imgsz: 64,
            ..Default::default()
        },
        close_mosaic: 1,
        lrf: 0.01,
        cos_lr: false,
        warmup_epochs: 3.0,
        warmup_bias_lr: 0.0,
        warmup_momentum: 0.8,
        patience: 0,
        seed: 1,
        names: vec!["a".into(), "b".into()],
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut exp =
        Experiment::create(tmp.path(), 0, &serde_json::json!({"epochs": 2}), "test").unwrap();
    let train: Vec<DetSample> = (0..4).map(|i| scene(i % 2)).collect();
    let val: Vec<DetSample> = (0..2).map(scene).collect();
    let mut seen = Vec::new();
    let control = sightline_train::control::TrainControl::new();
    let out = train_detector(
        model,
        &mut opt,
        None,
        &run,
        train,
        val,
        &mut exp,
        &device,
        &control,
        |r| seen.push(r.epoch),
    )
    .unwrap();
    assert!(!out.stopped && out.best_epoch.is_some());
    assert_eq!(seen, vec![0, 1]);
    let back = Experiment::open(exp.dir()).unwrap();
    assert_eq!(back.records().len(), 2);
    assert!(
        back.records()
            .iter()
            .all(|r| r.losses.len() == 4 && r.metrics.len() == 4 && r.fitness.is_finite())
    );
    assert!(exp.weights_path("last").exists() && exp.weights_path("best").exists());
    assert!(exp.dir().join("summary.json").exists());
    // the saved weights load back into a model of the same shape
    let map =
        sightline_vision::weights::TensorMap::from_safetensors_file(&exp.weights_path("last"))
            .unwrap();
    YoloV8Seg::load(&YoloV8SegConfig::n(2), &map, &Device::flex()).unwrap();
    // with class names, task and scale for `sightline predict`
    let ckpt = sightline_vision::checkpoint::read_checkpoint(&exp.weights_path("best")).unwrap();
    assert_eq!(
        ckpt.meta.names,
        Some(vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(ckpt.meta.task.as_deref(), Some("segment"));
}
