//! The detector training loop: epochs of parallel-augmented batches, Ultralytics warm-up and
//! lr schedule, gradient accumulation to a nominal batch of 64, EMA, per-epoch validation,
//! `metrics.json`, `weights/last` and `weights/best` (by [`detector_fitness`]), patience.
//!
//! After every completed epoch the loop writes, in this order: `weights/last.safetensors` (the
//! EMA weights, with class names, task and scale in the safetensors metadata, loadable by
//! `sightline predict`), `weights/best.safetensors` when the epoch is the best so far, the
//! optimiser state with the live parameters (`weights/last.optim.safetensors`) and the EMA state
//! (`weights/last.ema.safetensors`, see [`crate::optim`]), and finally `metrics.json`. A run
//! therefore resumes ([`resume_detector`]) from the last epoch listed in `metrics.json`, with the
//! same data order and augmentations (they depend only on seed, epoch and position).
//!
//! [`TrainControl`]: the stop flag is checked after every batch; a stop abandons the epoch in
//! progress (its checkpoint is not written), so the experiment stays at its last completed
//! epoch and can be resumed.

use crate::augment::DetSample;
use crate::augment::detect::{DetAugConfig, to_targets, val_sample};
use crate::control::{BatchProgress, TrainControl};
use crate::detector::{batch_tensor, forward_backward};
use crate::error::{Result, TrainError};
use crate::experiment::{BestTracker, EpochRecord, Experiment, detector_fitness, write_atomic};
use crate::loader::{DetCache, build_batch, epoch_batches};
use crate::optim::{
    GroupedOptimizer, ModelEma, OptimConfig, ema_state_path, lr_factor, optim_state_path,
    warmup_iterations,
};
use crate::validate::validate_detector;
use crate::yolo::loss::SegLossConfig;
use burn::module::Module;
use burn::tensor::Device;
use sightline_vision::weights::TensorMap;
use sightline_vision::yolo::{YoloV8Seg, YoloV8SegConfig};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
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
    /// Class names by class id (written into the checkpoints' metadata).
    pub names: Vec<String>,
}

/// Safetensors bytes of `map` with the metadata keys `sightline-torch` reads back (`task`,
/// `names` as a JSON list, `nc`, `scale`, `model_class`, `train_args` as JSON).
pub fn checkpoint_bytes(map: &TensorMap, meta: &[(&str, String)]) -> Result<Vec<u8>> {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = map
        .iter()
        .map(|(name, t)| {
            (
                name.to_string(),
                t.shape.clone(),
                t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let mut views = Vec::with_capacity(data.len());
    for (name, shape, bytes) in &data {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map_err(|source| TrainError::Safetensors {
                    what: name.clone(),
                    source,
                })?;
        views.push((name.as_str(), view));
    }
    let md: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    safetensors::serialize(views, Some(md)).map_err(TrainError::Serialize)
}

/// The `train_args` metadata value recording the training image size (`{"imgsz": N}`, the key
/// and shape of an Ultralytics checkpoint's `train_args`, read back by
/// `sightline_torch::Meta::imgsz` so that inference defaults to the trained size).
pub fn train_args_json(imgsz: u32) -> String {
    serde_json::json!({ "imgsz": imgsz }).to_string()
}

/// Write a YOLOv8-seg checkpoint (Ultralytics tensor names; class names and the training
/// image size `imgsz` in the metadata).
pub fn save_detector(model: &YoloV8Seg, names: &[String], imgsz: u32, path: &Path) -> Result<()> {
    let map = model.to_tensor_map().map_err(TrainError::Vision)?;
    let mut meta = vec![
        ("task", "segment".to_string()),
        ("train_args", train_args_json(imgsz)),
        ("nc", model.num_classes().to_string()),
        ("model_class", "SegmentationModel".to_string()),
        ("names", serde_json::to_string(names)?),
    ];
    if let Ok(cfg) = YoloV8SegConfig::infer(&map)
        && let Some(s) = cfg.scale
    {
        meta.push(("scale", s.to_string()));
    }
    write_atomic(path, &checkpoint_bytes(&map, &meta)?)
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome<M> {
    /// The trained (live, not EMA) model.
    pub model: M,
    /// True when [`TrainControl::request_stop`] ended the run before its last epoch.
    pub stopped: bool,
    /// True when early stopping (`patience`) ended the run.
    pub early_stopped: bool,
    /// Best epoch so far (0-based).
    pub best_epoch: Option<usize>,
    /// Its fitness.
    pub best_fitness: Option<f64>,
}

/// The model, optimiser and EMA of an experiment's last completed epoch, to continue training:
/// `weights/last.safetensors` (the EMA model: averaged parameters and batch-norm statistics),
/// then the live parameters and batch-norm statistics and the optimiser state from
/// `weights/last.optim.safetensors`, then the EMA from `weights/last.ema.safetensors`. `config` must describe the same architecture, `opt_cfg` the
/// same optimiser kind. `device` is the (autodiff) training device.
pub fn resume_detector(
    exp: &Experiment,
    config: &YoloV8SegConfig,
    opt_cfg: OptimConfig,
    device: &Device,
) -> Result<(YoloV8Seg, GroupedOptimizer, ModelEma)> {
    let last = exp.weights_path("last");
    if exp.records().is_empty() || !last.exists() {
        return Err(TrainError::Config(format!(
            "{} has no completed epoch to resume from",
            exp.dir().display()
        )));
    }
    let map = TensorMap::from_safetensors_file(&last).map_err(|source| TrainError::Model {
        path: last.clone(),
        source,
    })?;
    let model =
        YoloV8Seg::load(config, &map, device).map_err(|source| TrainError::ModelConfig {
            path: last.clone(),
            source,
        })?;
    let mut opt = GroupedOptimizer::new(opt_cfg, &model);
    let model = opt.load_state(model, &optim_state_path(&last))?;
    let mut ema = ModelEma::new(&model);
    ema.load_state(&model, &ema_state_path(&last))?;
    Ok((model, opt, ema))
}

/// Train `model` (on an autodiff `device`) from `exp.next_epoch()` to `cfg.epochs`. `ema` is
/// the average to continue (from [`resume_detector`]); `None` starts one from `model`.
/// `control` is polled after every batch and receives batch progress; `on_epoch` sees every
/// completed epoch after it was written.
#[allow(clippy::too_many_arguments)]
pub fn train_detector(
    mut model: YoloV8Seg,
    opt: &mut GroupedOptimizer,
    ema: Option<ModelEma>,
    cfg: &DetRunConfig,
    train: Vec<DetSample>,
    val: Vec<DetSample>,
    exp: &mut Experiment,
    device: &Device,
    control: &TrainControl,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<RunOutcome<YoloV8Seg>> {
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
    let mut ema = ema.unwrap_or_else(|| ModelEma::new(&model));
    let mut best = BestTracker::new(cfg.patience);
    for r in exp.records() {
        best.update(r.epoch, r.fitness);
    }
    let mut stopped = false;
    let mut early_stopped = false;
    'epochs: for epoch in exp.next_epoch()..cfg.epochs {
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
            let n = (i + 1) as f64;
            control.batch(&BatchProgress {
                epoch,
                epochs: cfg.epochs,
                batch: i,
                batches: nb,
                losses: sums.iter().map(|(k, v)| (k.clone(), v / n)).collect(),
            });
            if control.stop_requested() {
                stopped = true;
                break 'epochs;
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
        let last = exp.weights_path("last");
        save_detector(&eval, &cfg.names, imgsz, &last)?;
        if best.update(epoch, fitness) || !exp.weights_path("best").exists() {
            save_detector(&eval, &cfg.names, imgsz, &exp.weights_path("best"))?;
        }
        opt.save_state(&model, &optim_state_path(&last))?;
        ema.save_state(&model, &ema_state_path(&last))?;
        exp.append(record.clone())?;
        on_epoch(&record);
        if best.should_stop(epoch) {
            early_stopped = true;
            break;
        }
        if control.stop_requested() {
            stopped = epoch + 1 < cfg.epochs;
            break;
        }
    }
    let best_metrics = best
        .best_epoch
        .and_then(|b| exp.records().iter().find(|r| r.epoch == b))
        .map(|r| r.metrics.clone());
    exp.write_summary(&serde_json::json!({
        "task": "segment",
        "status": if stopped { "stopped" } else { "completed" },
        "epochs": cfg.epochs,
        "epochs_completed": exp.next_epoch(),
        "early_stopped": early_stopped,
        "best_epoch": best.best_epoch,
        "best_fitness": best.best_fitness,
        "best_metrics": best_metrics,
        "fitness": "0.1*mAP50 + 0.9*mAP50-95, box + mask",
        "names": cfg.names,
    }))?;
    Ok(RunOutcome {
        model,
        stopped,
        early_stopped,
        best_epoch: best.best_epoch,
        best_fitness: best.best_fitness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our checkpoints record the training size where Ultralytics keeps it, so `sightline
    /// predict`, `evaluate` and `register` default to it.
    #[test]
    fn saved_detector_records_its_training_size() {
        let device = Device::flex();
        let config = YoloV8SegConfig::n(2);
        let model = YoloV8Seg::new(&config, &device);
        let names = vec!["scratch".to_string(), "dent".to_string()];
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("last.safetensors");
        save_detector(&model, &names, 96, &path).unwrap();
        let ckpt = sightline_vision::checkpoint::read_checkpoint(&path).unwrap();
        assert_eq!(ckpt.meta.names.as_deref(), Some(names.as_slice()));
        assert_eq!(ckpt.meta.task.as_deref(), Some("segment"));
        assert_eq!(
            sightline_vision::imgsz::checkpoint_imgsz(&ckpt.meta).unwrap(),
            Some(96)
        );
    }
}
