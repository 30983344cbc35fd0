//! YOLOv8-seg training step: batching augmented samples into tensors, Ultralytics' head bias
//! initialisation, starting weights with head re-initialisation ([`start_detector`]), and one
//! forward/backward/accumulate pass with the segmentation loss.

use crate::augment::detect::DetTargets;
use crate::error::{Result, TrainError};
use crate::optim::GroupedOptimizer;
use crate::yolo::boxes::Level;
use crate::yolo::loss::{SegLoss, SegLossConfig, seg_loss};
use burn::module::{ModuleMapper, Param};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use sightline_vision::weights::TensorMap;
use sightline_vision::yolo::{STRIDES, YoloV8Seg, YoloV8SegConfig};

/// Stack equally sized RGB images into a `[B, 3, H, W]` tensor with values in `[0, 1]`.
pub fn batch_tensor(images: &[RgbImage], device: &Device) -> Tensor<4> {
    let (w, h) = images.first().map_or((0, 0), |i| i.dimensions());
    let (w, h) = (w as usize, h as usize);
    let n = w * h;
    let mut data = vec![0.0f32; images.len() * 3 * n];
    for (b, img) in images.iter().enumerate() {
        for (i, p) in img.pixels().enumerate().take(n) {
            for c in 0..3 {
                data[b * 3 * n + c * n + i] = f32::from(p[c]) / 255.0;
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [images.len(), 3, h, w]), device)
}

struct BiasInit {
    path: Vec<String>,
    nc: usize,
}

impl ModuleMapper for BiasInit {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        // .../head/cv2|cv3/<level>/c2/.../bias
        let p = &self.path;
        let Some(h) = p.iter().position(|s| s == "head") else {
            return param;
        };
        let (Some(branch), Some(level), Some(last)) = (p.get(h + 1), p.get(h + 2), p.last()) else {
            return param;
        };
        let final_conv = p.get(h + 3).is_some_and(|s| s == "c2");
        if !(final_conv && last == "bias" && D == 1) {
            return param;
        }
        let Ok(level) = level.parse::<usize>() else {
            return param;
        };
        let stride = STRIDES.get(level).copied().unwrap_or(32) as f32;
        let value = match branch.as_str() {
            "cv2" => 1.0,
            "cv3" => (5.0 / self.nc.max(1) as f32 / (640.0 / stride).powi(2)).ln(),
            _ => return param,
        };
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let mut t = Tensor::<D>::full(tensor.shape(), value, &tensor.device());
        if require_grad {
            t = t.require_grad();
        }
        Param::from_mapped_value(id, t, mapper)
    }
}

/// Ultralytics `Detect.bias_init`: box-branch output biases 1.0, class-branch output biases
/// `ln(5 / nc / (640 / stride)²)` (about 1 % initial class probability per cell).
pub fn init_head_biases(model: YoloV8Seg) -> YoloV8Seg {
    let nc = model.num_classes();
    burn::module::Module::map(
        model,
        &mut BiasInit {
            path: Vec::new(),
            nc,
        },
    )
}

/// Detection levels of a square `imgsz` input.
pub fn levels(imgsz: usize) -> Vec<Level> {
    STRIDES
        .iter()
        .map(|&s| Level {
            h: imgsz / s,
            w: imgsz / s,
            stride: s as u32,
        })
        .collect()
}

/// Forward the batch, compute the loss, back-propagate and add the gradients to `opt`
/// (call [`GroupedOptimizer::step`] to apply them). `model` must live on an autodiff device
/// (batch norm then uses batch statistics).
pub fn forward_backward(
    model: &YoloV8Seg,
    opt: &mut GroupedOptimizer,
    cfg: &SegLossConfig,
    images: Tensor<4>,
    targets: &[DetTargets],
) -> Result<SegLoss> {
    let [_, _, h, _] = images.dims();
    let raw = model.forward_raw(images);
    let loss = seg_loss(
        cfg,
        raw.boxes,
        raw.scores,
        raw.mask_coefs,
        raw.proto,
        &levels(h),
        targets,
    )?;
    let grads = loss.total.backward();
    opt.accumulate(model, &grads);
    Ok(loss)
}

/// What [`start_detector`] took from the starting weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Tensors copied from the starting weights.
    pub loaded: usize,
    /// Tensors of the model in total.
    pub total: usize,
    /// Tensors left at their fresh initialisation because the starting weights lack them or
    /// shape them differently (the class branch of the head when the class count differs).
    pub reinitialised: Vec<String>,
}

/// A YOLOv8-seg to train: a fresh network of `config` (Ultralytics head bias initialisation),
/// then every tensor of `start` (Ultralytics state-dict names, e.g. from a `.pt` or one of our
/// checkpoints) whose name and shape match is copied in, as Ultralytics' `intersect_dicts`
/// does. With another class count, the head's class branch (`model.22.cv3.*`, whose hidden
/// width also depends on the class count) keeps its fresh initialisation; box, mask and
/// backbone weights are kept. The scale of `config` must match the weights' (checked:
/// a mismatch is an error, not a silent partial load).
pub fn start_detector(
    config: &YoloV8SegConfig,
    start: Option<&TensorMap>,
    device: &Device,
) -> Result<(YoloV8Seg, Transfer)> {
    let fresh = init_head_biases(YoloV8Seg::new(config, device));
    let Some(start) = start else {
        let total = fresh.to_tensor_map().map_err(TrainError::Weights)?.len();
        return Ok((
            fresh,
            Transfer {
                loaded: 0,
                total,
                reinitialised: Vec::new(),
            },
        ));
    };
    let theirs = YoloV8SegConfig::infer(start).map_err(|source| TrainError::StartWeights {
        what: "the starting weights are not a YOLOv8-seg model",
        source,
    })?;
    if theirs.scale != config.scale || theirs.num_masks != config.num_masks {
        return Err(TrainError::Config(format!(
            "the starting weights are YOLOv8{}-seg, the manifest asks for YOLOv8{}-seg",
            theirs.scale.unwrap_or('?'),
            config.scale.unwrap_or('?')
        )));
    }
    let mut merged = fresh.to_tensor_map().map_err(TrainError::Weights)?;
    let names: Vec<String> = merged.names().map(str::to_string).collect();
    let total = names.len();
    let mut loaded = 0;
    let mut reinitialised = Vec::new();
    for name in names {
        let ours = merged.get(&name).map(|t| t.shape.clone());
        match start.get(&name) {
            Some(t) if Some(&t.shape) == ours.as_ref() => {
                merged.insert(name, t.clone());
                loaded += 1;
            }
            _ => reinitialised.push(name),
        }
    }
    let model =
        YoloV8Seg::load(config, &merged, device).map_err(|source| TrainError::StartWeights {
            what: "loading the starting weights",
            source,
        })?;
    Ok((
        model,
        Transfer {
            loaded,
            total,
            reinitialised,
        },
    ))
}
