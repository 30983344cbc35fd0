//! Model and optimiser set-up from the resolved configuration, then the training crate's loop;
//! the Burn records written after a run.
//!
//! Optimiser (as Ultralytics): nominal batch 64, gradients accumulated over
//! `max(round(64 / batch), 1)` batches, weight decay scaled by `batch · accumulate / 64`;
//! `optimizer: auto` picks SGD (lr 0.01, momentum 0.9) for runs over 10 000 iterations, else
//! AdamW with `lr = 0.002 · 5 / (4 + classes)` (see `sightline_train::optim::auto_optimizer`).
//! Global gradient-norm clipping at 10.

use sightline_core::manifest::{Hyperparameters, ModelName, Optimizer, Task, YoloScale};
use sightline_train::augment::DetSample;
use sightline_train::augment::classify::ClsAugConfig;
use sightline_train::augment::detect::DetAugConfig;
use sightline_train::classify::init::{ClsInit, init_classifier};
use sightline_train::classify::run::{ClsImage, ClsRunConfig, ClsSample, train_classifier};
use sightline_train::control::TrainControl;
use sightline_train::experiment::{BestTracker, EpochRecord, Experiment};
use sightline_train::optim::{GroupedOptimizer, OptimConfig, OptimizerKind, auto_optimizer};
use sightline_train::run::{DetRunConfig, resume_detector, train_detector};
use sightline_vision::backend::BackendKind;
use sightline_vision::mobilenet::MobileNetV3Variant;
use sightline_vision::weights::TensorMap;
use sightline_vision::yolo::YoloV8SegConfig;
use std::path::PathBuf;

use super::error::RunError;
use super::{Ended, Resolved, TrainObserver, data};

/// Prepared samples of either task.
pub enum Prepared {
    /// Detector samples.
    Det(data::Prepared<DetSample>),
    /// Classifier samples (image path, class id).
    Cls(data::Prepared<(PathBuf, usize)>),
}

impl Prepared {
    /// Warnings and conversion notes.
    pub fn notes(&self) -> &[String] {
        match self {
            Prepared::Det(p) => &p.notes,
            Prepared::Cls(p) => &p.notes,
        }
    }
    /// Class names by class id.
    pub fn names(&self) -> &[String] {
        match self {
            Prepared::Det(p) => &p.names,
            Prepared::Cls(p) => &p.names,
        }
    }
    /// Training samples.
    pub fn train_len(&self) -> usize {
        match self {
            Prepared::Det(p) => p.train.len(),
            Prepared::Cls(p) => p.train.len(),
        }
    }
    /// Validation samples.
    pub fn val_len(&self) -> usize {
        match self {
            Prepared::Det(p) => p.val.len(),
            Prepared::Cls(p) => p.val.len(),
        }
    }
}

const NBS: f64 = 64.0;

/// The optimiser of a run (Ultralytics rules; see the module docs).
pub(crate) fn optim_config(
    h: &Hyperparameters,
    classes: usize,
    train_images: usize,
) -> OptimConfig {
    let batch = f64::from(h.batch_size.max(1));
    let accumulate = (NBS / batch).round().max(1.0);
    let weight_decay = h.weight_decay * batch * accumulate / NBS;
    let (kind, lr0, momentum) = match h.optimizer {
        Optimizer::Auto => {
            let per_epoch = (train_images as f64 / batch.max(NBS)).ceil() as u64;
            auto_optimizer(classes, per_epoch * u64::from(h.epochs))
        }
        Optimizer::Sgd => (OptimizerKind::Sgd, h.lr0, h.momentum),
        Optimizer::Adamw => (OptimizerKind::AdamW, h.lr0, h.momentum),
    };
    OptimConfig {
        kind,
        lr0,
        momentum,
        weight_decay,
        max_grad_norm: Some(10.0),
    }
}

/// The resolved optimiser, for `config.json`.
pub(crate) fn optimizer_summary(resolved: &Resolved, prepared: &Prepared) -> serde_json::Value {
    let h = &resolved.hyperparameters;
    let (nc, n) = (prepared.names().len(), prepared.train_len());
    let (kind, lr0, momentum, weight_decay, clip) = match resolved.task {
        Task::Segment => {
            let c = optim_config(h, nc, n);
            (c.kind, c.lr0, c.momentum, c.weight_decay, c.max_grad_norm)
        }
        Task::Classify => {
            let c = cls_run_config(h, n, nc);
            (c.optimizer, c.lr0, c.momentum, c.weight_decay, None)
        }
    };
    serde_json::json!({
        "kind": match kind { OptimizerKind::Sgd => "sgd", OptimizerKind::AdamW => "adamw" },
        "lr0": lr0,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "max_grad_norm": clip,
    })
}

fn det_run_config(h: &Hyperparameters, names: Vec<String>) -> DetRunConfig {
    let a = &h.augmentation;
    DetRunConfig {
        epochs: h.epochs as usize,
        batch: h.batch_size.max(1) as usize,
        aug: DetAugConfig {
            imgsz: h.imgsz,
            degrees: a.degrees,
            translate: a.translate,
            scale: a.scale,
            shear: a.shear,
            hsv_h: a.hsv_h,
            hsv_s: a.hsv_s,
            hsv_v: a.hsv_v,
            fliplr: a.fliplr,
            mosaic: a.mosaic,
        },
        close_mosaic: a.close_mosaic as usize,
        lrf: h.lrf,
        cos_lr: false,
        warmup_epochs: h.warmup_epochs,
        warmup_bias_lr: 0.1,
        warmup_momentum: 0.8,
        patience: h.patience as usize,
        seed: h.seed,
        names,
    }
}

/// The classifier loop's settings: the manifest's hyperparameters (lr, momentum, weight decay,
/// label smoothing, warm-up, cosine decay to `lrf`, flip and colour jitter, crop scale) with
/// the optimiser resolved as for the detector.
fn cls_run_config(h: &Hyperparameters, train_images: usize, classes: usize) -> ClsRunConfig {
    let o = optim_config(h, classes, train_images);
    let a = &h.augmentation;
    ClsRunConfig {
        epochs: h.epochs as usize,
        batch: h.batch_size.max(1) as usize,
        imgsz: h.imgsz,
        optimizer: o.kind,
        lr0: match h.optimizer {
            Optimizer::Auto => o.lr0,
            _ => h.lr0,
        },
        lrf: h.lrf,
        cosine: true,
        warmup_epochs: h.warmup_epochs,
        momentum: o.momentum,
        weight_decay: h.weight_decay,
        label_smoothing: h.label_smoothing as f32,
        class_weights: None,
        ema: false,
        patience: h.patience as usize,
        seed: h.seed,
        aug: ClsAugConfig {
            size: h.imgsz,
            crop_scale: (a.crop_scale_min, 1.0),
            fliplr: a.fliplr,
            brightness: a.hsv_v,
            contrast: a.hsv_v,
            saturation: a.hsv_s,
            ..ClsAugConfig::default()
        },
        workers: 0,
        ..ClsRunConfig::default()
    }
}

/// Run the task's loop on this (blocking) thread.
#[allow(clippy::too_many_arguments)]
pub(crate) fn train(
    task: Task,
    resolved: &Resolved,
    model_name: ModelName,
    prepared: Prepared,
    mut exp: Experiment,
    resuming: bool,
    control: &TrainControl,
    observer: &dyn TrainObserver,
    on_epoch: impl FnMut(&EpochRecord),
) -> Result<Ended, RunError> {
    let h = &resolved.hyperparameters;
    let backend: BackendKind = resolved.device.parse()?;
    let device = backend.device()?.autodiff();
    device.seed(h.seed);
    match (task, prepared) {
        (Task::Segment, Prepared::Det(p)) => {
            let nc = p.names.len();
            let opt_cfg = optim_config(h, nc, p.train.len());
            let (model, mut opt, ema) = if resuming {
                let last = exp.weights_path("last");
                let map = TensorMap::from_safetensors_file(&last)
                    .map_err(|e| RunError::ReadWeights(last.clone(), e))?;
                let cfg = YoloV8SegConfig::infer(&map)?;
                let (m, o, e) = resume_detector(&exp, &cfg, opt_cfg, &device)?;
                observer.note(&format!("resuming at epoch {}", exp.next_epoch() + 1));
                (m, o, Some(e))
            } else {
                let start = match &resolved.weights_file {
                    Some(f) => {
                        let ckpt = sightline_vision::checkpoint::read_checkpoint(f)?;
                        if let Some(t) = sightline_vision::checkpoint::task_of(&ckpt)
                            && t != sightline_vision::checkpoint::Task::Segment
                        {
                            return Err(RunError::NotADetector {
                                path: f.clone(),
                                task: format!("{t:?}"),
                            });
                        }
                        Some(sightline_vision::checkpoint::into_tensor_map(ckpt))
                    }
                    None => None,
                };
                let ckpt_scale = start
                    .as_ref()
                    .and_then(|m| YoloV8SegConfig::infer(m).ok())
                    .and_then(|c| c.scale)
                    .and_then(YoloScale::from_letter);
                let scale = model_name.resolve_scale(ckpt_scale).unwrap_or(YoloScale::N);
                let cfg = YoloV8SegConfig::scale(scale.letter(), nc)?;
                let (model, t) =
                    sightline_train::detector::start_detector(&cfg, start.as_ref(), &device)?;
                if let Some(f) = &resolved.weights_file {
                    observer.note(&format!(
                        "yolov8{}-seg from {}: {} of {} tensors loaded, {} re-initialised",
                        scale.letter(),
                        f.display(),
                        t.loaded,
                        t.total,
                        t.reinitialised.len()
                    ));
                }
                let opt = GroupedOptimizer::new(opt_cfg, &model);
                (model, opt, None)
            };
            let run = det_run_config(h, p.names);
            let out = train_detector(
                model, &mut opt, ema, &run, p.train, p.val, &mut exp, &device, control, on_epoch,
            )?;
            Ok(Ended {
                stopped: out.stopped,
                best_epoch: out.best_epoch,
                best_fitness: out.best_fitness,
            })
        }
        (Task::Classify, Prepared::Cls(p)) => {
            let variant = match model_name {
                ModelName::MobileNetV3Large => MobileNetV3Variant::Large,
                _ => MobileNetV3Variant::Small,
            };
            let nc = p.names.len();
            // a resumed run restores weights and optimiser inside the loop; the start only
            // has to have the right architecture
            let from = match (&resolved.weights_file, resuming) {
                (Some(f), false) => ClsInit::Checkpoint(f.clone()),
                _ => ClsInit::Scratch,
            };
            let start = init_classifier(Some(variant), nc, &from, &device)?;
            if let Some((theirs, ours)) = start.head_replaced {
                observer.note(&format!(
                    "classifier head re-initialised: the starting weights have {theirs} classes, \
                     this run {ours}"
                ));
            }
            let run = cls_run_config(h, p.train.len(), nc);
            let mut opt = run.optimizer(&start.model);
            let epochs = run.epochs;
            let train: Vec<ClsSample> = p
                .train
                .into_iter()
                .map(|(path, class)| ClsSample {
                    image: ClsImage::Path(path),
                    class,
                })
                .collect();
            let val: Vec<ClsSample> = p
                .val
                .into_iter()
                .map(|(path, class)| ClsSample {
                    image: ClsImage::Path(path),
                    class,
                })
                .collect();
            train_classifier(
                start.model,
                &mut opt,
                &run,
                train,
                val,
                &mut exp,
                &device,
                control,
                on_epoch,
            )?;
            let mut best = BestTracker::new(0);
            for r in exp.records() {
                best.update(r.epoch, r.fitness);
            }
            Ok(Ended {
                stopped: control.stop_requested() && exp.next_epoch() < epochs,
                best_epoch: best.best_epoch,
                best_fitness: best.best_fitness,
            })
        }
        _ => Err(RunError::TaskMismatch),
    }
}

/// Writes `weights/<name>.bpk` (Burn's Burnpack record, [`sightline_vision::record`]) beside
/// each `weights/<name>.safetensors` the experiment has (`last`, `best`). Returns the files.
pub(crate) fn save_records(
    task: Task,
    exp: &Experiment,
    names: &[String],
) -> Result<Vec<PathBuf>, RunError> {
    use sightline_vision::backend::Device;
    use sightline_vision::mobilenet::{MobileNetV3, MobileNetV3Config};
    use sightline_vision::record;
    use sightline_vision::yolo::YoloV8Seg;
    let device = Device::flex();
    let mut written = Vec::new();
    for name in ["last", "best"] {
        let from = exp.weights_path(name);
        if !from.is_file() {
            continue;
        }
        let to = from.with_extension(record::EXTENSION);
        let map = TensorMap::from_safetensors_file(&from)
            .map_err(|e| RunError::ReadWeights(from.clone(), e))?;
        // The training size the safetensors checkpoint records goes into the record too.
        let imgsz = sightline_vision::checkpoint::read_checkpoint(&from)
            .ok()
            .and_then(|c| {
                sightline_vision::imgsz::checkpoint_imgsz(&c.meta)
                    .ok()
                    .flatten()
            });
        match task {
            Task::Segment => {
                let cfg = YoloV8SegConfig::infer(&map)?;
                let model = YoloV8Seg::load(&cfg, &map, &device)?;
                record::save_detector(&model, &cfg, names, imgsz, &to)?;
            }
            Task::Classify => {
                let cfg = MobileNetV3Config::infer(&map)?;
                let model = MobileNetV3::load(&cfg, &map, &device)?;
                record::save_classifier(&model, &cfg, names, imgsz, &to)?;
            }
        }
        written.push(to);
    }
    Ok(written)
}
