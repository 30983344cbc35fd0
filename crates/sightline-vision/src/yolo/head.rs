//! The YOLOv8 segmentation head: box (DFL) and class branches per level, mask-coefficient
//! branches, the prototype network, and the decoding of raw outputs into boxes in input pixels.

use burn::module::{Module, Param};
use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use super::blocks::{ConvBnAct, PlainConv};
use crate::error::Result;
use crate::weights::{NamedTensor, TensorMap, tensor_to_vec, to_tensor};

/// One head branch: `Conv 3×3 → Conv 3×3 → Conv2d 1×1` (names `.0`, `.1`, `.2`).
#[derive(Module, Debug)]
pub struct Branch {
    /// First 3×3 Conv.
    pub c0: ConvBnAct,
    /// Second 3×3 Conv.
    pub c1: ConvBnAct,
    /// Final 1×1 convolution with bias.
    pub c2: PlainConv,
}

impl Branch {
    fn new(c_in: usize, c_mid: usize, c_out: usize, device: &Device) -> Self {
        Self {
            c0: ConvBnAct::new(c_in, c_mid, 3, 1, true, device),
            c1: ConvBnAct::new(c_mid, c_mid, 3, 1, true, device),
            c2: PlainConv::new(c_mid, c_out, 1, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.c2.forward(self.c1.forward(self.c0.forward(x)))
    }

    fn load(&mut self, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
        self.c0.load(w, &format!("{prefix}.0"), device)?;
        self.c1.load(w, &format!("{prefix}.1"), device)?;
        self.c2.load(w, &format!("{prefix}.2"), device)
    }

    fn save(&self, out: &mut TensorMap, prefix: &str) -> Result<()> {
        self.c0.save(out, &format!("{prefix}.0"))?;
        self.c1.save(out, &format!("{prefix}.1"))?;
        self.c2.save(out, &format!("{prefix}.2"))
    }

    fn fuse(self) -> Self {
        Self {
            c0: self.c0.fuse(),
            c1: self.c1.fuse(),
            c2: self.c2,
        }
    }
}

/// Ultralytics `Proto`: Conv 3×3, 2× transposed convolution, Conv 3×3, Conv 1×1 to `nm` masks.
#[derive(Module, Debug)]
pub struct Proto {
    /// 3×3 Conv.
    pub cv1: ConvBnAct,
    /// 2×2 stride-2 transposed convolution with bias.
    pub upsample: ConvTranspose2d,
    /// 3×3 Conv.
    pub cv2: ConvBnAct,
    /// 1×1 Conv to the prototypes.
    pub cv3: ConvBnAct,
}

impl Proto {
    fn new(c1: usize, hidden: usize, masks: usize, device: &Device) -> Self {
        Self {
            cv1: ConvBnAct::new(c1, hidden, 3, 1, true, device),
            upsample: ConvTranspose2dConfig::new([hidden, hidden], [2, 2])
                .with_stride([2, 2])
                .with_bias(true)
                .init(device),
            cv2: ConvBnAct::new(hidden, hidden, 3, 1, true, device),
            cv3: ConvBnAct::new(hidden, masks, 1, 1, true, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.upsample.forward(self.cv1.forward(x));
        self.cv3.forward(self.cv2.forward(x))
    }

    fn load(&mut self, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
        self.cv1.load(w, &format!("{prefix}.cv1"), device)?;
        self.cv2.load(w, &format!("{prefix}.cv2"), device)?;
        self.cv3.load(w, &format!("{prefix}.cv3"), device)?;
        let shape = self.upsample.weight.lazy_shape().dims::<4>();
        let name = format!("{prefix}.upsample.weight");
        self.upsample.weight =
            Param::from_tensor(to_tensor(w.require_shape(&name, &shape)?, device)?);
        let name = format!("{prefix}.upsample.bias");
        self.upsample.bias = Some(Param::from_tensor(to_tensor(
            w.require_shape(&name, &[shape[1]])?,
            device,
        )?));
        Ok(())
    }

    fn save(&self, out: &mut TensorMap, prefix: &str) -> Result<()> {
        self.cv1.save(out, &format!("{prefix}.cv1"))?;
        self.cv2.save(out, &format!("{prefix}.cv2"))?;
        self.cv3.save(out, &format!("{prefix}.cv3"))?;
        let (shape, data) = tensor_to_vec(self.upsample.weight.val())?;
        out.insert(
            format!("{prefix}.upsample.weight"),
            NamedTensor::new(shape, data)?,
        );
        if let Some(b) = &self.upsample.bias {
            let (shape, data) = tensor_to_vec(b.val())?;
            out.insert(
                format!("{prefix}.upsample.bias"),
                NamedTensor::new(shape, data)?,
            );
        }
        Ok(())
    }

    fn fuse(self) -> Self {
        Self {
            cv1: self.cv1.fuse(),
            upsample: self.upsample,
            cv2: self.cv2.fuse(),
            cv3: self.cv3.fuse(),
        }
    }
}

/// Undecoded head outputs (what a training loss consumes).
#[derive(Debug, Clone)]
pub struct RawHeadOutput {
    /// Box distributions `[B, 4·reg_max, A]` (logits over DFL bins).
    pub boxes: Tensor<3>,
    /// Class logits `[B, nc, A]`.
    pub scores: Tensor<3>,
    /// Mask coefficients `[B, nm, A]`.
    pub mask_coefs: Tensor<3>,
    /// Mask prototypes `[B, nm, H/4, W/4]`.
    pub proto: Tensor<4>,
    /// `(height, width)` of the three feature maps (strides 8, 16, 32).
    pub level_shapes: [(usize, usize); 3],
}

/// Ultralytics `Segment` head (legacy YOLOv8 layout) for three levels.
#[derive(Module, Debug)]
pub struct SegmentHead {
    /// Box branches (`cv2.<level>`).
    pub cv2: Vec<Branch>,
    /// Class branches (`cv3.<level>`).
    pub cv3: Vec<Branch>,
    /// Mask-coefficient branches (`cv4.<level>`).
    pub cv4: Vec<Branch>,
    /// Prototype network.
    pub proto: Proto,
    /// Number of classes.
    pub nc: usize,
    /// DFL bins per side.
    pub reg_max: usize,
    /// Number of masks.
    pub nm: usize,
}

/// Strides of the three detection levels.
pub const STRIDES: [usize; 3] = [8, 16, 32];

impl SegmentHead {
    /// The head for input channels `ch` (P3, P4, P5).
    pub fn new(
        nc: usize,
        nm: usize,
        proto_hidden: usize,
        reg_max: usize,
        ch: [usize; 3],
        device: &Device,
    ) -> Self {
        let c2 = 16usize.max(ch[0] / 4).max(reg_max * 4);
        let c3 = ch[0].max(nc.min(100));
        let c4 = (ch[0] / 4).max(nm);
        Self {
            cv2: ch
                .iter()
                .map(|&c| Branch::new(c, c2, 4 * reg_max, device))
                .collect(),
            cv3: ch.iter().map(|&c| Branch::new(c, c3, nc, device)).collect(),
            cv4: ch.iter().map(|&c| Branch::new(c, c4, nm, device)).collect(),
            proto: Proto::new(ch[0], proto_hidden, nm, device),
            nc,
            reg_max,
            nm,
        }
    }

    /// Runs the branches on the three feature maps.
    pub fn forward_raw(&self, feats: [Tensor<4>; 3]) -> RawHeadOutput {
        let proto = self.proto.forward(feats[0].clone());
        let mut boxes = Vec::with_capacity(3);
        let mut scores = Vec::with_capacity(3);
        let mut coefs = Vec::with_capacity(3);
        let mut level_shapes = [(0, 0); 3];
        for (i, x) in feats.into_iter().enumerate() {
            let [b, _, h, w] = x.dims();
            level_shapes[i] = (h, w);
            boxes.push(
                self.cv2[i]
                    .forward(x.clone())
                    .reshape([b, 4 * self.reg_max, h * w]),
            );
            scores.push(self.cv3[i].forward(x.clone()).reshape([b, self.nc, h * w]));
            coefs.push(self.cv4[i].forward(x).reshape([b, self.nm, h * w]));
        }
        RawHeadOutput {
            boxes: Tensor::cat(boxes, 2),
            scores: Tensor::cat(scores, 2),
            mask_coefs: Tensor::cat(coefs, 2),
            proto,
            level_shapes,
        }
    }

    /// Decodes raw outputs into `[B, 4 + nc + nm, A]`: boxes as centre-x, centre-y, width,
    /// height in input pixels, sigmoid class scores, mask coefficients.
    pub fn decode(&self, raw: &RawHeadOutput) -> Tensor<3> {
        let device = raw.boxes.device();
        let [b, _, a] = raw.boxes.dims();
        let (anchors, strides) = anchor_grid(&raw.level_shapes, &device);
        let dist = dfl(raw.boxes.clone(), self.reg_max);
        let lt = dist.clone().narrow(1, 0, 2);
        let rb = dist.narrow(1, 2, 2);
        let x1y1 = anchors.clone().sub(lt);
        let x2y2 = anchors.add(rb);
        let centre = x1y1.clone().add(x2y2.clone()).div_scalar(2.0);
        let wh = x2y2.sub(x1y1);
        let boxes = Tensor::cat(vec![centre, wh], 1).mul(strides);
        debug_assert_eq!(boxes.dims(), [b, 4, a]);
        Tensor::cat(
            vec![boxes, sigmoid(raw.scores.clone()), raw.mask_coefs.clone()],
            1,
        )
    }

    /// Loads every head tensor under `prefix` (e.g. `model.22`).
    pub fn load(&mut self, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
        for (i, br) in self.cv2.iter_mut().enumerate() {
            br.load(w, &format!("{prefix}.cv2.{i}"), device)?;
        }
        for (i, br) in self.cv3.iter_mut().enumerate() {
            br.load(w, &format!("{prefix}.cv3.{i}"), device)?;
        }
        for (i, br) in self.cv4.iter_mut().enumerate() {
            br.load(w, &format!("{prefix}.cv4.{i}"), device)?;
        }
        self.proto.load(w, &format!("{prefix}.proto"), device)
    }

    /// Writes every head tensor under `prefix`, including the fixed DFL weights
    /// (`<prefix>.dfl.conv.weight`) that Ultralytics' state dict carries.
    pub fn save(&self, out: &mut TensorMap, prefix: &str) -> Result<()> {
        for (i, br) in self.cv2.iter().enumerate() {
            br.save(out, &format!("{prefix}.cv2.{i}"))?;
        }
        for (i, br) in self.cv3.iter().enumerate() {
            br.save(out, &format!("{prefix}.cv3.{i}"))?;
        }
        for (i, br) in self.cv4.iter().enumerate() {
            br.save(out, &format!("{prefix}.cv4.{i}"))?;
        }
        self.proto.save(out, &format!("{prefix}.proto"))?;
        out.insert(
            format!("{prefix}.dfl.conv.weight"),
            NamedTensor::new(
                vec![1, self.reg_max, 1, 1],
                (0..self.reg_max).map(|v| v as f32).collect(),
            )?,
        );
        Ok(())
    }

    /// Folds every batch norm.
    pub fn fuse(self) -> Self {
        Self {
            cv2: self.cv2.into_iter().map(Branch::fuse).collect(),
            cv3: self.cv3.into_iter().map(Branch::fuse).collect(),
            cv4: self.cv4.into_iter().map(Branch::fuse).collect(),
            proto: self.proto.fuse(),
            nc: self.nc,
            reg_max: self.reg_max,
            nm: self.nm,
        }
    }
}

/// Distribution focal loss integral: softmax over the bins of each side, expectation of the
/// bin index. `[B, 4·reg_max, A]` → `[B, 4, A]`.
pub fn dfl(boxes: Tensor<3>, reg_max: usize) -> Tensor<3> {
    let device = boxes.device();
    let [b, _, a] = boxes.dims();
    let p = softmax(boxes.reshape([b, 4, reg_max, a]), 2);
    let bins = Tensor::<1>::from_data(
        TensorData::new((0..reg_max).map(|v| v as f32).collect(), [reg_max]),
        &device,
    )
    .reshape([1, 1, reg_max, 1]);
    p.mul(bins).sum_dim(2).reshape([b, 4, a])
}

/// Anchor centres `[1, 2, A]` (x, y in grid units, +0.5) and strides `[1, 1, A]` for the levels.
pub fn anchor_grid(level_shapes: &[(usize, usize); 3], device: &Device) -> (Tensor<3>, Tensor<3>) {
    let total: usize = level_shapes.iter().map(|(h, w)| h * w).sum();
    let mut xs = Vec::with_capacity(total);
    let mut ys = Vec::with_capacity(total);
    let mut st = Vec::with_capacity(total);
    for (&(h, w), &s) in level_shapes.iter().zip(&STRIDES) {
        for y in 0..h {
            for x in 0..w {
                xs.push(x as f32 + 0.5);
                ys.push(y as f32 + 0.5);
                st.push(s as f32);
            }
        }
    }
    xs.extend(ys);
    let anchors = Tensor::<3>::from_data(TensorData::new(xs, [1, 2, total]), device);
    let strides = Tensor::<3>::from_data(TensorData::new(st, [1, 1, total]), device);
    (anchors, strides)
}
