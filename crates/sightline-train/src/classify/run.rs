//! The classifier training loop: epochs of parallel-augmented batches (RandomResizedCrop, flip,
//! colour jitter) from a decoded-image cache, cross-entropy with label smoothing and optional
//! class weights, warm-up then cosine or linear lr decay, optional EMA, validation each epoch
//! (top-1, top-5, per-class precision/recall), `metrics.json`, `weights/last` and
//! `weights/best`, optimiser state beside `weights/last` for `--resume`, patience and a clean
//! stop on request.
//!
//! **Fitness** of a classifier epoch (what "best" means) is the validation top-1 accuracy.
//!
//! Reproducibility: the epoch order comes from [`epoch_batches`] and every sample's
//! augmentation from [`Rng::for_sample`]`(seed, epoch, position)`, so a run resumed after
//! epoch `k` (weights, optimiser and EMA state restored from `weights/last*`) continues exactly
//! like the uninterrupted run. The device's generator (dropout) is re-seeded at the start of
//! every epoch from the seed and the epoch.

use crate::augment::classify::{ClsAugConfig, eval_image, normalize_into, train_image};
use crate::classify::loss::cross_entropy;
use crate::control::{BatchProgress, TrainControl};
use crate::error::{Result, TrainError};
use crate::experiment::{BestTracker, EpochRecord, Experiment, write_atomic};
use crate::loader::{decode_images, epoch_batches};
use crate::optim::{
    GroupedOptimizer, ModelEma, OptimConfig, OptimizerKind, ema_state_path, lr_factor,
    optim_state_path, warmup_iterations,
};
use crate::rng::Rng;
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rayon::prelude::*;
use sightline_eval::classification::classification_metrics;
use sightline_vision::mobilenet::{ConvBnAct, MobileNetV3};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Loop settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClsRunConfig {
    /// Epochs to train in total.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Training and validation image side (overrides `aug.size`).
    pub imgsz: u32,
    /// Update rule (AdamW or SGD with Nesterov momentum).
    pub optimizer: OptimizerKind,
    /// Initial (peak) learning rate.
    pub lr0: f64,
    /// Final lr fraction.
    pub lrf: f64,
    /// Cosine instead of linear decay.
    pub cosine: bool,
    /// Warm-up epochs (lr rising linearly from 0).
    pub warmup_epochs: f64,
    /// SGD momentum / Adam beta1.
    pub momentum: f64,
    /// Weight decay of conv / linear weights (not norms, not biases).
    pub weight_decay: f64,
    /// Cross-entropy label smoothing.
    pub label_smoothing: f32,
    /// Per-class loss weights (for rare defects), one per class.
    pub class_weights: Option<Vec<f32>>,
    /// Keep an EMA of the weights; validation and the saved weights then use it.
    pub ema: bool,
    /// Override the batch-norm momentum (torchvision's MobileNetV3: 0.01, which needs a few
    /// hundred steps before the running statistics settle; timm's `--bn-momentum`). `None`
    /// keeps the model's.
    pub bn_momentum: Option<f64>,
    /// Early-stopping patience in epochs (0 disables).
    pub patience: usize,
    /// Seed of data order and augmentation.
    pub seed: u64,
    /// Augmentation.
    pub aug: ClsAugConfig,
    /// Data-loading threads (0: one per core).
    pub workers: usize,
}

impl Default for ClsRunConfig {
    /// 30 epochs, batch 16, 224 px, AdamW lr 1e-3 to 1 %, cosine, 1 warm-up epoch, weight
    /// decay 0.01, label smoothing 0.1, no EMA, no early stopping, seed 0.
    fn default() -> Self {
        Self {
            epochs: 30,
            batch: 16,
            imgsz: 224,
            optimizer: OptimizerKind::AdamW,
            lr0: 1e-3,
            lrf: 0.01,
            cosine: true,
            warmup_epochs: 1.0,
            momentum: 0.9,
            weight_decay: 0.01,
            label_smoothing: 0.1,
            class_weights: None,
            ema: false,
            bn_momentum: None,
            patience: 0,
            seed: 0,
            aug: ClsAugConfig::default(),
            workers: 0,
        }
    }
}

impl ClsRunConfig {
    /// The optimiser this configuration asks for, over `model`'s parameters (no gradient
    /// clipping).
    pub fn optimizer<M: Module>(&self, model: &M) -> GroupedOptimizer {
        GroupedOptimizer::new(
            OptimConfig {
                kind: self.optimizer,
                lr0: self.lr0,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                max_grad_norm: None,
            },
            model,
        )
    }
}

/// Where a sample's pixels come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ClsImage {
    /// Already decoded.
    Decoded(RgbImage),
    /// A file, decoded once (in parallel) into the loop's cache.
    Path(PathBuf),
}

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct ClsSample {
    /// The pixels.
    pub image: ClsImage,
    /// Class index (`0..num_classes`).
    pub class: usize,
}

/// Decode every sample (files in parallel) and shrink each so its shorter side is at most
/// `max_short` (the decode cache: RandomResizedCrop then works on small images).
fn decode_cache(samples: Vec<ClsSample>, max_short: u32) -> Result<Vec<(RgbImage, usize)>> {
    let paths: Vec<PathBuf> = samples
        .iter()
        .filter_map(|s| match &s.image {
            ClsImage::Path(p) => Some(p.clone()),
            ClsImage::Decoded(_) => None,
        })
        .collect();
    let mut decoded = decode_images(&paths).into_iter();
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        let img = match s.image {
            ClsImage::Decoded(i) => i,
            ClsImage::Path(_) => decoded
                .next()
                .ok_or_else(|| TrainError::Io("decode cache out of step".into()))??,
        };
        out.push((img, s.class));
    }
    Ok(out
        .into_par_iter()
        .map(|(img, c)| {
            let short = img.width().min(img.height());
            if short > max_short && max_short > 0 {
                let r = f64::from(max_short) / f64::from(short);
                let w = ((f64::from(img.width()) * r).round() as u32).max(1);
                let h = ((f64::from(img.height()) * r).round() as u32).max(1);
                (
                    image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle),
                    c,
                )
            } else {
                (img, c)
            }
        })
        .collect())
}

/// CHW floats of `images` as a `[B, 3, S, S]` tensor.
fn batch_tensor(data: Vec<f32>, b: usize, s: usize, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(data, [b, 3, s, s]), device)
}

/// Set the momentum of every batch norm of `model`.
pub fn set_bn_momentum(model: &mut MobileNetV3, momentum: f64) {
    let set = |c: &mut ConvBnAct| {
        if let Some(bn) = &mut c.bn {
            bn.momentum = momentum;
        }
    };
    set(&mut model.stem);
    for b in &mut model.blocks {
        if let Some(e) = &mut b.expand {
            set(e);
        }
        set(&mut b.depthwise);
        set(&mut b.project);
    }
    set(&mut model.last_conv);
}

/// Writes the classifier's weights (torchvision names) with the training image size (the
/// crop) as `train_args = {"imgsz": N}` in the metadata.
fn save(model: &MobileNetV3, imgsz: u32, path: &std::path::Path) -> Result<()> {
    let map = model.to_tensor_map().map_err(TrainError::Vision)?;
    let bytes =
        crate::run::checkpoint_bytes(&map, &[("train_args", crate::run::train_args_json(imgsz))])?;
    write_atomic(path, &bytes)
}

fn scalar(t: Tensor<1>) -> Result<f64> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::Data(format!("{e:?}")))?
        .first()
        .map(|v| f64::from(*v))
        .ok_or_else(|| TrainError::Data("empty loss tensor".into()))
}

/// Validation of a classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct ClsValMetrics {
    /// Mean cross-entropy (no smoothing, no weights).
    pub loss: f64,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy (`None` with fewer than 5 classes).
    pub top5: Option<f64>,
    /// Per-class precision.
    pub precision: Vec<f64>,
    /// Per-class recall.
    pub recall: Vec<f64>,
    /// Unweighted mean F1.
    pub macro_f1: f64,
}

/// Run `model` (eval mode) over already-normalised `[3, S, S]` images `batch` at a time.
pub fn validate_classifier(
    model: &MobileNetV3,
    images: &[Vec<f32>],
    labels: &[usize],
    imgsz: usize,
    batch: usize,
    device: &Device,
) -> Result<ClsValMetrics> {
    let nc = model.num_classes();
    let mut probs: Vec<Vec<f64>> = Vec::with_capacity(images.len());
    let mut loss = 0.0;
    for (chunk, lab) in images.chunks(batch.max(1)).zip(labels.chunks(batch.max(1))) {
        let data: Vec<f32> = chunk.concat();
        let logits = model.forward(batch_tensor(data, chunk.len(), imgsz, device));
        loss += scalar(cross_entropy(logits.clone(), lab, 0.0, None)?)? * lab.len() as f64;
        let p = softmax(logits, 1)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| TrainError::Data(format!("{e:?}")))?;
        probs.extend(
            p.chunks(nc)
                .map(|r| r.iter().map(|v| f64::from(*v)).collect()),
        );
    }
    let m = classification_metrics(&probs, labels, 10).map_err(TrainError::Eval)?;
    Ok(ClsValMetrics {
        loss: loss / labels.len().max(1) as f64,
        top1: m.top1,
        top5: (nc >= 5).then_some(m.top5),
        precision: m.per_class.iter().map(|c| c.precision).collect(),
        recall: m.per_class.iter().map(|c| c.recall).collect(),
        macro_f1: m.macro_f1,
    })
}

/// Train `model` (on an autodiff `device`) from `exp.next_epoch()` to `cfg.epochs` and return
/// the trained live (not EMA) model.
///
/// Resuming: when `exp` already has completed epochs, the live parameters, optimiser state and
/// EMA are restored from `weights/last.optim.safetensors` / `weights/last.ema.safetensors`
/// (written after every epoch), so `model` only has to have the right architecture.
///
/// Each epoch writes `weights/last.safetensors` (the EMA when enabled), `weights/best` when
/// the fitness (top-1) improved, the optimiser/EMA state, and appends to `metrics.json`: losses
/// `ce` (training, with smoothing and weights), metrics `val_loss`, `top1`, `top5` (≥ 5
/// classes), `precision/<class>`, `recall/<class>`, `macro_f1`. A stop requested through
/// `control` ends the run after the current batch without recording the unfinished epoch (the
/// last completed epoch's checkpoint stays).
#[allow(clippy::too_many_arguments)]
pub fn train_classifier(
    mut model: MobileNetV3,
    opt: &mut GroupedOptimizer,
    cfg: &ClsRunConfig,
    train: Vec<ClsSample>,
    val: Vec<ClsSample>,
    exp: &mut Experiment,
    device: &Device,
    control: &TrainControl,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<MobileNetV3> {
    if train.is_empty() || val.is_empty() {
        return Err(TrainError::Config(
            "the training and validation sets must not be empty".into(),
        ));
    }
    if cfg.batch == 0 || cfg.imgsz < 8 {
        return Err(TrainError::Config(format!(
            "batch {} and imgsz {} must be at least 1 and 8",
            cfg.batch, cfg.imgsz
        )));
    }
    let nc = model.num_classes();
    if let Some(w) = &cfg.class_weights
        && w.len() != nc
    {
        return Err(TrainError::Config(format!(
            "{} class weights for {nc} classes",
            w.len()
        )));
    }
    if let Some(s) = train.iter().chain(&val).find(|s| s.class >= nc) {
        return Err(TrainError::Config(format!(
            "class index {} out of range for a {nc}-class model",
            s.class
        )));
    }
    if let Some(m) = cfg.bn_momentum {
        if !(0.0..=1.0).contains(&m) {
            return Err(TrainError::Config(format!(
                "batch-norm momentum {m} is not in [0, 1]"
            )));
        }
        set_bn_momentum(&mut model, m);
    }
    let pool = if cfg.workers > 0 {
        Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(cfg.workers)
                .build()
                .map_err(TrainError::Pool)?,
        )
    } else {
        None
    };
    let run_pooled = |f: &(dyn Fn() -> Vec<(Vec<f32>, usize)> + Sync)| match &pool {
        Some(p) => p.install(f),
        None => f(),
    };
    let size = cfg.imgsz;
    let s = size as usize;
    let aug = ClsAugConfig {
        size,
        ..cfg.aug.clone()
    };
    let cache = decode_cache(train, size.saturating_mul(2))?;
    let val_cache = decode_cache(val, 0)?;
    let val_items = run_pooled(&|| {
        val_cache
            .par_iter()
            .map(|(img, c)| {
                let mut v = Vec::with_capacity(3 * s * s);
                normalize_into(&eval_image(img, size), &mut v);
                (v, *c)
            })
            .collect()
    });
    drop(val_cache);
    let (val_images, val_labels): (Vec<Vec<f32>>, Vec<usize>) = val_items.into_iter().unzip();

    let nb = cache.len().div_ceil(cfg.batch);
    let nw = warmup_iterations(cfg.warmup_epochs, cfg.epochs, nb);
    let last_path = exp.weights_path("last");
    let mut ema = cfg.ema.then(|| ModelEma::new(&model));
    let start = exp.next_epoch();
    if start > 0 {
        model = opt.load_state(model, &optim_state_path(&last_path))?;
        if let Some(e) = &mut ema {
            // the EMA starts from the restored live weights, then takes the saved averages
            *e = ModelEma::new(&model);
            e.load_state(&model, &ema_state_path(&last_path))?;
        }
    }
    let mut best = BestTracker::new(cfg.patience);
    for r in exp.records() {
        best.update(r.epoch, r.fitness);
    }
    if start > 0 && best.should_stop(start - 1) {
        return Ok(model);
    }
    let momentum = opt.config().momentum;
    let weights = cfg.class_weights.as_deref();
    let mut stopped = false;
    for epoch in start..cfg.epochs {
        let t0 = Instant::now();
        // dropout masks drawn from the device generator: seeded per epoch for resumability
        device.seed(
            cfg.seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(epoch as u64),
        );
        let lf = lr_factor(epoch, cfg.epochs, cfg.lrf, cfg.cosine);
        let mut sum = 0.0f64;
        let mut pos = 0usize;
        let batches = epoch_batches(cache.len(), cfg.batch, cfg.seed, epoch as u64);
        for (i, idx) in batches.iter().enumerate() {
            let ni = i + nb * epoch;
            opt.schedule(ni, nw, lf, 0.0, momentum);
            let items = run_pooled(&|| {
                idx.par_iter()
                    .enumerate()
                    .map(|(k, &j)| {
                        let mut rng = Rng::for_sample(cfg.seed, epoch as u64, (pos + k) as u64);
                        let (img, c) = &cache[j];
                        let mut v = Vec::with_capacity(3 * s * s);
                        normalize_into(&train_image(img, &aug, &mut rng), &mut v);
                        (v, *c)
                    })
                    .collect()
            });
            pos += idx.len();
            let labels: Vec<usize> = items.iter().map(|(_, c)| *c).collect();
            let data: Vec<f32> = items.into_iter().flat_map(|(v, _)| v).collect();
            let x = batch_tensor(data, labels.len(), s, device);
            let loss = cross_entropy(model.forward(x), &labels, cfg.label_smoothing, weights)?;
            sum += scalar(loss.clone().inner())?;
            let grads = loss.backward();
            opt.accumulate(&model, &grads);
            model = opt.step(model);
            if let Some(e) = &mut ema {
                e.update(&model);
            }
            control.batch(&BatchProgress {
                epoch,
                epochs: cfg.epochs,
                batch: i,
                batches: nb,
                losses: vec![("ce".to_string(), sum / (i + 1) as f64)],
            });
            if control.stop_requested() {
                stopped = true;
                break;
            }
        }
        if stopped {
            break;
        }
        let eval = match &ema {
            Some(e) => e.apply(model.clone()),
            None => model.clone(),
        };
        let eval_valid = eval.clone().valid();
        let m = validate_classifier(&eval_valid, &val_images, &val_labels, s, cfg.batch, device)?;
        let fitness = m.top1;
        let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
        metrics.insert("val_loss".into(), m.loss);
        metrics.insert("top1".into(), m.top1);
        if let Some(t5) = m.top5 {
            metrics.insert("top5".into(), t5);
        }
        metrics.insert("macro_f1".into(), m.macro_f1);
        for (c, (p, r)) in m.precision.iter().zip(&m.recall).enumerate() {
            metrics.insert(format!("precision/{c}"), *p);
            metrics.insert(format!("recall/{c}"), *r);
        }
        let record = EpochRecord {
            epoch,
            losses: [("ce".to_string(), sum / nb.max(1) as f64)].into(),
            lr: opt.lrs[0],
            metrics,
            fitness,
            time_s: t0.elapsed().as_secs_f64(),
        };
        save(&eval_valid, size, &last_path)?;
        opt.save_state(&model, &optim_state_path(&last_path))?;
        if let Some(e) = &ema {
            e.save_state(&model, &ema_state_path(&last_path))?;
        }
        if best.update(epoch, fitness) || !exp.weights_path("best").exists() {
            save(&eval_valid, size, &exp.weights_path("best"))?;
        }
        exp.append(record.clone())?;
        on_epoch(&record);
        if best.should_stop(epoch) || control.stop_requested() {
            stopped = control.stop_requested();
            break;
        }
    }
    exp.write_summary(&serde_json::json!({
        "epochs_completed": exp.next_epoch(),
        "stopped_early": stopped,
        "best_epoch": best.best_epoch,
        "best_fitness": best.best_fitness,
        "fitness": "validation top-1 accuracy",
    }))?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_classifier_records_its_training_size() {
        let device = Device::flex();
        let config = sightline_vision::mobilenet::MobileNetV3Config::small(3);
        let model = MobileNetV3::new(&config, &device);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("best.safetensors");
        save(&model, 64, &path).unwrap();
        let ckpt = sightline_vision::checkpoint::read_checkpoint(&path).unwrap();
        assert_eq!(
            sightline_vision::imgsz::checkpoint_imgsz(&ckpt.meta).unwrap(),
            Some(64)
        );
        // still loads as a classifier
        sightline_vision::classify::Classifier::load_on(&path, None, Device::flex()).unwrap();
    }
}
