//! The detector training loop: epochs of parallel-augmented batches, Ultralytics warm-up and
//! lr schedule, gradient accumulation to a nominal batch of 64, EMA, per-epoch validation,
//! `metrics.json`, `weights/last` and `weights/best` (by [`detector_fitness`]), patience.

use crate::augment::DetSample;
use crate::augment::detect::{DetAugConfig, to_targets, val_sample};
use crate::detector::{batch_tensor, forward_backward};
use crate::error::{Result, TrainError};
use crate::experiment::{BestTracker, EpochRecord, Experiment, detector_fitness, write_atomic};
use crate::loader::{DetCache, build_batch, epoch_batches};
use crate::optim::{GroupedOptimizer, ModelEma, lr_factor, warmup_iterations};
use crate::validate::validate_detector;
use crate::yolo::loss::SegLossConfig;
use burn::module::Module;
use burn::tensor::Device;
use sightline_vision::yolo::YoloV8Seg;
use std::collections::BTreeMap;
use std::time::Instant;

/// Loop settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DetRunConfig {
    /// Epochs to train in total.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Augmentation (its `imgsz` is the training size).
    pub aug: DetAugConfig,
    /// Epochs at the end trained without mosaic (Ultralytics `close_mosaic`, 10).
    pub close_mosaic: usize,
    /// Final lr fraction.
    pub lrf: f64,
    /// Cosine instead of linear decay.
    pub cos_lr: bool,
    /// Warm-up epochs.
    pub warmup_epochs: f64,
    /// Warm-up start lr of biases.
    pub warmup_bias_lr: f64,
    /// Warm-up start momentum.
    pub warmup_momentum: f64,
    /// Early-stopping patience (0 disables).
    pub patience: usize,
    /// Seed of data order and augmentation.
    pub seed: u64,
}

fn save(model: &YoloV8Seg, path: &std::path::Path) -> Result<()> {
    let map = model
        .to_tensor_map()
        .map_err(|e| TrainError::Io(e.to_string()))?;
    let bytes = map
        .to_safetensors_bytes()
        .map_err(|e| TrainError::Io(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Train `model` (on an autodiff `device`) from `exp.next_epoch()` to `cfg.epochs`.
/// Returns the trained (live, not EMA) model.
#[allow(clippy::too_many_arguments)]
pub fn train_detector(
    mut model: YoloV8Seg,
    opt: &mut GroupedOptimizer,
    cfg: &DetRunConfig,
    train: Vec<DetSample>,
    val: Vec<DetSample>,
    exp: &mut Experiment,
    device: &Device,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<YoloV8Seg> {
    if train.is_empty() || val.is_empty() {
        return Err(TrainError::Config(
            "the training and validation sets must not be empty".into(),
        ));
    }
    let imgsz = cfg.aug.imgsz;
    let loss_cfg = SegLossConfig::yolov8(model.num_classes());
    let cache = DetCache::new(train, imgsz);
    let (val_images, val_targets): (Vec<_>, Vec<_>) = val
        .into_iter()
        .map(|s| {
            let (b, _) = val_sample(s, imgsz);
            let t = to_targets(&b, 4);
            (b.image, t)
        })
        .unzip();
    let nb = cache.len().div_ceil(cfg.batch.max(1));
    let nw = warmup_iterations(cfg.warmup_epochs, cfg.epochs, nb);
    let acc0 = ((64.0 / cfg.batch.max(1) as f64).round() as usize).max(1);
    let mut ema = ModelEma::new(&model);
    let mut best = BestTracker::new(cfg.patience);
    for r in exp.records() {
        best.update(r.epoch, r.fitness);
    }
    for epoch in exp.next_epoch()..cfg.epochs {
        let t0 = Instant::now();
        let mut aug = cfg.aug.clone();
        if epoch + cfg.close_mosaic >= cfg.epochs {
            aug.mosaic = 0.0;
        }
        let lf = lr_factor(epoch, cfg.epochs, cfg.lrf, cfg.cos_lr);
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        let mut pos = 0;
        let mut pending = 0;
        for (i, idx) in epoch_batches(cache.len(), cfg.batch, cfg.seed, epoch as u64)
            .iter()
            .enumerate()
        {
            let ni = i + nb * epoch;
            opt.schedule(ni, nw, lf, cfg.warmup_bias_lr, cfg.warmup_momentum);
            let accumulate = if nw > 0 && ni <= nw {
                (1.0 + (acc0 as f64 - 1.0) * ni as f64 / nw as f64)
                    .round()
                    .max(1.0) as usize
            } else {
                acc0
            };
            let batch = build_batch(&cache, idx, pos, &aug, cfg.seed, epoch as u64, 4);
            pos += idx.len();
            let x = batch_tensor(&batch.images, device);
            let l = forward_backward(&model, opt, &loss_cfg, x, &batch.targets)?;
            for (k, v) in [
                ("box", l.box_loss),
                ("seg", l.seg_loss),
                ("cls", l.cls_loss),
                ("dfl", l.dfl_loss),
            ] {
                *sums.entry(k.to_string()).or_default() += f64::from(v);
            }
            pending += 1;
            if pending >= accumulate || i + 1 == nb {
                model = opt.step(model);
                ema.update(&model);
                pending = 0;
            }
        }
        let eval = ema.apply(model.clone()).valid();
        let m = validate_detector(&eval, &val_images, &val_targets, cfg.batch, device)?;
        let fitness = detector_fitness(m.box_map50, m.box_map, m.mask_map50, m.mask_map);
        let record = EpochRecord {
            epoch,
            losses: sums.into_iter().map(|(k, v)| (k, v / nb as f64)).collect(),
            lr: opt.lrs[0],
            metrics: [
                ("box_map50".to_string(), m.box_map50),
                ("box_map".to_string(), m.box_map),
                ("mask_map50".to_string(), m.mask_map50),
                ("mask_map".to_string(), m.mask_map),
            ]
            .into(),
            fitness,
            time_s: t0.elapsed().as_secs_f64(),
        };
        save(&eval, &exp.weights_path("last"))?;
        if best.update(epoch, fitness) || !exp.weights_path("best").exists() {
            save(&eval, &exp.weights_path("best"))?;
        }
        exp.append(record.clone())?;
        on_epoch(&record);
        if best.should_stop(epoch) {
            break;
        }
    }
    exp.write_summary(&serde_json::json!({
        "epochs_completed": exp.next_epoch(),
        "best_epoch": best.best_epoch,
        "best_fitness": best.best_fitness,
        "fitness": "0.1*mAP50 + 0.9*mAP50-95, box + mask",
    }))?;
    Ok(model)
}
