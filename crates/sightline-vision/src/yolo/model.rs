//! The YOLOv8-seg network: backbone, PAN neck and segmentation head, with Ultralytics' layer
//! numbering (`model.<i>.…`) for weights.

use burn::module::Module;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use super::blocks::{C2f, ConvBnAct, Sppf};
use super::config::YoloV8SegConfig;
use super::head::{RawHeadOutput, SegmentHead};
use crate::error::{Result, VisionError};
use crate::weights::TensorMap;

/// Decoded network output, as Ultralytics' eval-mode `Segment` returns it.
#[derive(Debug, Clone)]
pub struct YoloOutput {
    /// `[B, 4 + nc + nm, A]`: xywh boxes in input pixels, sigmoid class scores, mask coefficients.
    pub pred: Tensor<3>,
    /// `[B, nm, H/4, W/4]` mask prototypes.
    pub proto: Tensor<4>,
}

/// YOLOv8-seg (any scale, any number of classes).
#[derive(Module, Debug)]
pub struct YoloV8Seg {
    l0: ConvBnAct,
    l1: ConvBnAct,
    l2: C2f,
    l3: ConvBnAct,
    l4: C2f,
    l5: ConvBnAct,
    l6: C2f,
    l7: ConvBnAct,
    l8: C2f,
    l9: Sppf,
    l12: C2f,
    l15: C2f,
    l16: ConvBnAct,
    l18: C2f,
    l19: ConvBnAct,
    l21: C2f,
    head: SegmentHead,
}

fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]),
    )
}

impl YoloV8Seg {
    /// A randomly initialised network (lazy: parameters materialise on first use).
    pub fn new(config: &YoloV8SegConfig, device: &Device) -> Self {
        let c = config.widths();
        let d3 = config.depth(3);
        let d6 = config.depth(6);
        Self {
            l0: ConvBnAct::new(3, c.c64, 3, 2, true, device),
            l1: ConvBnAct::new(c.c64, c.c128, 3, 2, true, device),
            l2: C2f::new(c.c128, c.c128, d3, true, device),
            l3: ConvBnAct::new(c.c128, c.c256, 3, 2, true, device),
            l4: C2f::new(c.c256, c.c256, d6, true, device),
            l5: ConvBnAct::new(c.c256, c.c512, 3, 2, true, device),
            l6: C2f::new(c.c512, c.c512, d6, true, device),
            l7: ConvBnAct::new(c.c512, c.c1024, 3, 2, true, device),
            l8: C2f::new(c.c1024, c.c1024, d3, true, device),
            l9: Sppf::new(c.c1024, c.c1024, 5, config.sppf_cv1_act, device),
            l12: C2f::new(c.c1024 + c.c512, c.c512, d3, false, device),
            l15: C2f::new(c.c512 + c.c256, c.c256, d3, false, device),
            l16: ConvBnAct::new(c.c256, c.c256, 3, 2, true, device),
            l18: C2f::new(c.c256 + c.c512, c.c512, d3, false, device),
            l19: ConvBnAct::new(c.c512, c.c512, 3, 2, true, device),
            l21: C2f::new(c.c512 + c.c1024, c.c1024, d3, false, device),
            head: SegmentHead::new(
                config.num_classes,
                config.num_masks,
                config.proto_hidden(),
                config.reg_max,
                [c.c256, c.c512, c.c1024],
                device,
            ),
        }
    }

    /// Builds the network and loads Ultralytics-named weights (`model.<i>.…`, as in the state
    /// dict of a `.pt` checkpoint). Batch norms stay separate; call [`YoloV8Seg::fuse`] for
    /// inference. Errors name the first missing or mis-shaped tensor.
    pub fn load(config: &YoloV8SegConfig, weights: &TensorMap, device: &Device) -> Result<Self> {
        let mut m = Self::new(config, device);
        m.l0.load(weights, "model.0", device)?;
        m.l1.load(weights, "model.1", device)?;
        m.l2.load(weights, "model.2", device)?;
        m.l3.load(weights, "model.3", device)?;
        m.l4.load(weights, "model.4", device)?;
        m.l5.load(weights, "model.5", device)?;
        m.l6.load(weights, "model.6", device)?;
        m.l7.load(weights, "model.7", device)?;
        m.l8.load(weights, "model.8", device)?;
        m.l9.load(weights, "model.9", device)?;
        m.l12.load(weights, "model.12", device)?;
        m.l15.load(weights, "model.15", device)?;
        m.l16.load(weights, "model.16", device)?;
        m.l18.load(weights, "model.18", device)?;
        m.l19.load(weights, "model.19", device)?;
        m.l21.load(weights, "model.21", device)?;
        m.head.load(weights, "model.22", device)?;
        if let Some(dfl) = weights.get("model.22.dfl.conv.weight") {
            let fixed = dfl.data.iter().enumerate().all(|(i, &v)| v == i as f32);
            if !fixed || dfl.data.len() != config.reg_max {
                return Err(VisionError::Unsupported(
                    "`model.22.dfl.conv.weight` is not the fixed DFL integral 0..reg_max".into(),
                ));
            }
        }
        Ok(m)
    }

    /// The parameters under Ultralytics' state-dict names (inverse of [`YoloV8Seg::load`]).
    pub fn to_tensor_map(&self) -> Result<TensorMap> {
        let mut out = TensorMap::new();
        self.l0.save(&mut out, "model.0")?;
        self.l1.save(&mut out, "model.1")?;
        self.l2.save(&mut out, "model.2")?;
        self.l3.save(&mut out, "model.3")?;
        self.l4.save(&mut out, "model.4")?;
        self.l5.save(&mut out, "model.5")?;
        self.l6.save(&mut out, "model.6")?;
        self.l7.save(&mut out, "model.7")?;
        self.l8.save(&mut out, "model.8")?;
        self.l9.save(&mut out, "model.9")?;
        self.l12.save(&mut out, "model.12")?;
        self.l15.save(&mut out, "model.15")?;
        self.l16.save(&mut out, "model.16")?;
        self.l18.save(&mut out, "model.18")?;
        self.l19.save(&mut out, "model.19")?;
        self.l21.save(&mut out, "model.21")?;
        self.head.save(&mut out, "model.22")?;
        Ok(out)
    }

    /// Folds every batch norm into its convolution (once; for inference).
    pub fn fuse(self) -> Self {
        Self {
            l0: self.l0.fuse(),
            l1: self.l1.fuse(),
            l2: self.l2.fuse(),
            l3: self.l3.fuse(),
            l4: self.l4.fuse(),
            l5: self.l5.fuse(),
            l6: self.l6.fuse(),
            l7: self.l7.fuse(),
            l8: self.l8.fuse(),
            l9: self.l9.fuse(),
            l12: self.l12.fuse(),
            l15: self.l15.fuse(),
            l16: self.l16.fuse(),
            l18: self.l18.fuse(),
            l19: self.l19.fuse(),
            l21: self.l21.fuse(),
            head: self.head.fuse(),
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.head.nc
    }

    /// Number of mask coefficients / prototypes.
    pub fn num_masks(&self) -> usize {
        self.head.nm
    }

    /// The head, for decoding raw outputs.
    pub fn head(&self) -> &SegmentHead {
        &self.head
    }

    /// Backbone + neck + head without decoding. `x`: `[B, 3, H, W]` RGB in `[0, 1]`,
    /// `H` and `W` multiples of 32.
    pub fn forward_raw(&self, x: Tensor<4>) -> RawHeadOutput {
        let x = self.l0.forward(x);
        let x = self.l1.forward(x);
        let x = self.l2.forward(x);
        let x = self.l3.forward(x);
        let p4 = self.l4.forward(x); // 4
        let x = self.l5.forward(p4.clone());
        let p6 = self.l6.forward(x); // 6
        let x = self.l7.forward(p6.clone());
        let x = self.l8.forward(x);
        let p9 = self.l9.forward(x); // 9
        let x = Tensor::cat(vec![upsample2(p9.clone()), p6], 1);
        let p12 = self.l12.forward(x); // 12
        let x = Tensor::cat(vec![upsample2(p12.clone()), p4], 1);
        let p15 = self.l15.forward(x); // 15 (P3/8)
        let x = Tensor::cat(vec![self.l16.forward(p15.clone()), p12], 1);
        let p18 = self.l18.forward(x); // 18 (P4/16)
        let x = Tensor::cat(vec![self.l19.forward(p18.clone()), p9], 1);
        let p21 = self.l21.forward(x); // 21 (P5/32)
        self.head.forward_raw([p15, p18, p21])
    }

    /// Eval-mode forward: decoded predictions and prototypes.
    pub fn forward(&self, x: Tensor<4>) -> YoloOutput {
        let raw = self.forward_raw(x);
        let pred = self.head.decode(&raw);
        YoloOutput {
            pred,
            proto: raw.proto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::tensor_to_vec;

    fn input(b: usize, h: usize, w: usize, device: &Device) -> Tensor<4> {
        let n = b * 3 * h * w;
        let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
        Tensor::from_data(burn::tensor::TensorData::new(data, [b, 3, h, w]), device)
    }

    #[test]
    fn forward_shapes_follow_ultralytics() {
        let device = crate::backend::default_device();
        let model = YoloV8Seg::new(&YoloV8SegConfig::n(3), &device);
        let out = model.forward(input(2, 64, 96, &device));
        // anchors: 8×12 + 4×6 + 2×3 = 126
        assert_eq!(out.pred.dims(), [2, 4 + 3 + 32, 126]);
        assert_eq!(out.proto.dims(), [2, 32, 16, 24]);
    }

    #[test]
    fn save_load_round_trip_and_fusion_preserve_outputs() {
        let device = crate::backend::default_device();
        let config = YoloV8SegConfig::n(2);
        let model = YoloV8Seg::new(&config, &device);
        let weights = model.to_tensor_map().unwrap();
        assert!(weights.get("model.22.proto.upsample.weight").is_some());
        assert!(weights.get("model.2.m.0.cv2.bn.running_var").is_some());
        assert_eq!(YoloV8SegConfig::infer(&weights).unwrap(), config);
        let loaded = YoloV8Seg::load(&config, &weights, &device).unwrap();
        let x = input(1, 64, 64, &device);
        let (_, a) = tensor_to_vec(model.forward(x.clone()).pred).unwrap();
        let (_, b) = tensor_to_vec(loaded.forward(x.clone()).pred).unwrap();
        assert_eq!(a, b);
        let fused = loaded.fuse();
        let (_, c) = tensor_to_vec(fused.forward(x).pred).unwrap();
        let max = a
            .iter()
            .zip(&c)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(max < 1e-3, "fused differs by {max}");
    }

    #[test]
    fn loading_names_the_offending_tensor() {
        let device = crate::backend::default_device();
        let config = YoloV8SegConfig::n(2);
        let mut weights = YoloV8Seg::new(&config, &device).to_tensor_map().unwrap();
        // a 3-class head where 2 classes are expected
        let mut other = YoloV8Seg::new(&YoloV8SegConfig::n(3), &device)
            .to_tensor_map()
            .unwrap();
        let cls = other.get("model.22.cv3.1.2.weight").unwrap().clone();
        weights.insert("model.22.cv3.1.2.weight", cls);
        let err = YoloV8Seg::load(&config, &weights, &device).unwrap_err();
        assert!(err.to_string().contains("model.22.cv3.1.2.weight"), "{err}");
        other = TensorMap::from_iter(
            weights
                .iter()
                .filter(|(n, _)| *n != "model.9.cv1.bn.running_mean")
                .map(|(n, t)| (n.to_string(), t.clone())),
        );
        let err = YoloV8Seg::load(&config, &other, &device).unwrap_err();
        assert!(
            err.to_string().contains("model.9.cv1.bn.running_mean"),
            "{err}"
        );
    }
}
