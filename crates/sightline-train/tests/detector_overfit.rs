//! Does YOLOv8n-seg training actually learn? A fresh model (random init, Ultralytics head
//! biases) overfits three 64×64 images with large, high-contrast objects (no augmentation, no
//! warm-up, AdamW at a high lr); validation on the same images must then find the objects.
//! Catches bugs anywhere between targets, loss, optimiser, EMA and validation decoding
//! (coordinate systems, head bias init, DFL decoding, class sigmoid).
//!
//! What it also pins down: after a few dozen steps the network is good with *batch*
//! statistics (training-mode batch norm, box mAP50 ≈ 1) but an eval-mode model scores 0,
//! because the batch-norm running statistics (initialised to mean 0 / variance 1, momentum
//! 0.03 as in Ultralytics/PyTorch) still carry `0.97^n` of their initial variance of 1, which
//! swamps the tiny true variances of many channels; activations then shrink layer after layer
//! and every image gets the same near-bias prediction. This is the reason short runs (a few
//! epochs of a few batches) validate at mAP 0, not a decoding bug: once the running statistics
//! have converged (here: a few hundred forward passes over the same batch) the eval-mode
//! model, through the EMA as the training loop applies it, scores like the training-mode one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use image::RgbImage;
use sightline_train::augment::detect::{to_targets, val_sample};
use sightline_train::augment::{DetSample, Instance};
use sightline_train::detector::{batch_tensor, forward_backward, init_head_biases};
use sightline_train::optim::{GroupedOptimizer, ModelEma, OptimConfig, OptimizerKind};
use sightline_train::validate::validate_detector;
use sightline_train::yolo::loss::SegLossConfig;
use sightline_vision::burn::module::Module;
use sightline_vision::burn::tensor::Device;
use sightline_vision::yolo::{YoloV8Seg, YoloV8SegConfig};

/// A filled axis-aligned rectangle (class 0) as a polygon.
fn rect(img: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, colour: [u8; 3]) -> Instance {
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            img.put_pixel(x, y, image::Rgb(colour));
        }
    }
    let (x0, y0, x1, y1) = (x0 as f32, y0 as f32, (x0 + w) as f32, (y0 + h) as f32);
    Instance {
        class: 0,
        polygons: vec![vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]]],
    }
}

/// A filled ellipse (class 1) with its 24-gon outline.
fn ellipse(img: &mut RgbImage, cx: f32, cy: f32, rx: f32, ry: f32, colour: [u8; 3]) -> Instance {
    for y in 0..img.height() {
        for x in 0..img.width() {
            let (dx, dy) = ((x as f32 + 0.5 - cx) / rx, (y as f32 + 0.5 - cy) / ry);
            if dx * dx + dy * dy <= 1.0 {
                img.put_pixel(x, y, image::Rgb(colour));
            }
        }
    }
    let poly = (0..24)
        .map(|k| {
            let a = k as f32 / 24.0 * std::f32::consts::TAU;
            [cx + rx * a.cos(), cy + ry * a.sin()]
        })
        .collect();
    Instance {
        class: 1,
        polygons: vec![poly],
    }
}

fn scene(i: usize) -> DetSample {
    let mut img = RgbImage::from_pixel(64, 64, image::Rgb([30, 30, 30]));
    let instances = match i {
        0 => vec![rect(&mut img, 6, 8, 26, 30, [240, 40, 40])],
        1 => vec![ellipse(&mut img, 40.0, 34.0, 16.0, 13.0, [40, 80, 240])],
        _ => vec![
            rect(&mut img, 4, 34, 24, 24, [240, 40, 40]),
            ellipse(&mut img, 46.0, 20.0, 13.0, 15.0, [40, 80, 240]),
        ],
    };
    DetSample {
        image: img,
        instances,
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn yolov8n_seg_overfits_three_images_and_validation_finds_the_objects() {
    let steps: usize = env_or("OVERFIT_STEPS", 40);
    let calib: usize = env_or("OVERFIT_CALIB", 300);
    let device = Device::flex().autodiff();
    device.seed(11);
    let mut model = init_head_biases(YoloV8Seg::new(&YoloV8SegConfig::n(2), &device));
    let mut opt = GroupedOptimizer::new(
        OptimConfig {
            kind: OptimizerKind::AdamW,
            lr0: env_or("OVERFIT_LR", 0.002),
            momentum: 0.9,
            weight_decay: 0.0,
            max_grad_norm: Some(10.0),
        },
        &model,
    );
    let mut ema = ModelEma::new(&model);
    let loss_cfg = SegLossConfig::yolov8(2);
    // the validation transform (a no-op letterbox at 64 px): train and validate on the same data
    let samples: Vec<DetSample> = (0..3).map(|i| val_sample(scene(i), 64).0).collect();
    let images: Vec<RgbImage> = samples.iter().map(|s| s.image.clone()).collect();
    let targets: Vec<_> = samples.iter().map(|s| to_targets(s, 4)).collect();
    assert_eq!(targets.iter().map(|t| t.boxes.len()).sum::<usize>(), 4);
    let t0 = std::time::Instant::now();
    let mut losses = Vec::new();
    for step in 0..steps {
        let x = batch_tensor(&images, &device);
        let l = forward_backward(&model, &mut opt, &loss_cfg, x, &targets).unwrap();
        assert!(l.num_fg > 0, "no positives assigned at step {step}");
        let total = l.box_loss + l.seg_loss + l.cls_loss + l.dfl_loss;
        assert!(total.is_finite(), "step {step}: {l:?}");
        losses.push(total);
        if step % 10 == 0 || step + 1 == steps {
            eprintln!(
                "step {step}: box {:.3} seg {:.3} cls {:.3} dfl {:.3} fg {}",
                l.box_loss, l.seg_loss, l.cls_loss, l.dfl_loss, l.num_fg
            );
        }
        model = opt.step(model);
        ema.update(&model);
    }
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.5 * first, "loss did not fall: {losses:?}");

    // training mode (batch statistics): the network has learnt the objects
    let train_mode = validate_detector(&model, &images, &targets, 3, &device).unwrap();
    eprintln!("training-mode batch norm after {steps} steps: {train_mode:?}");
    assert!(
        train_mode.box_map50 > 0.5,
        "training did not learn: {train_mode:?}"
    );
    assert!(
        train_mode.mask_map50 > 0.5,
        "masks did not learn: {train_mode:?}"
    );
    // eval mode right away: running statistics still far from the batch statistics (see above)
    let raw = validate_detector(&model.valid(), &images, &targets, 3, &device).unwrap();
    eprintln!("eval mode, unconverged running statistics: {raw:?}");

    // converge the running statistics (training-mode forwards, no optimiser step), then the
    // EMA model in eval mode, as the training loop validates it, finds the objects too
    // The EMA averages the running statistics too (Ultralytics' ModelEMA), so each calibration
    // forward is folded into it as the training loop does after a step (the parameters do not
    // change): a single update would keep ≈ 2 % of the unconverged variances, enough to swamp
    // channels whose variance is far smaller.
    for _ in 0..calib {
        let _ = model.forward(batch_tensor(&images, &device));
        ema.update(&model);
    }
    let eval = ema.apply(model.clone()).valid();
    let m = validate_detector(&eval, &images, &targets, 3, &device).unwrap();
    eprintln!(
        "EMA, eval mode after {calib} calibration forwards: {m:?} ({:.1} s)",
        t0.elapsed().as_secs_f32()
    );
    assert!(
        m.box_map50 > 0.5,
        "eval-mode model did not find the objects: {m:?}"
    );
    assert!(m.mask_map50 > 0.3, "eval-mode masks: {m:?}");
}
