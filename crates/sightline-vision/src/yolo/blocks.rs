//! YOLOv8 building blocks: Conv(BN, SiLU), Bottleneck, C2f, SPPF and plain convolutions, each
//! with Ultralytics' state-dict names for loading/saving and batch-norm folding for inference.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::weights::{NamedTensor, TensorMap, tensor_to_vec, to_tensor};

/// Ultralytics' batch-norm epsilon.
pub const BN_EPS: f64 = 1e-3;
/// Ultralytics' batch-norm momentum (PyTorch convention: weight of the new batch statistics).
pub const BN_MOMENTUM: f64 = 0.03;

/// Reads a parameter back as a [`NamedTensor`].
fn export<const D: usize>(t: Tensor<D>) -> Result<NamedTensor> {
    let (shape, data) = tensor_to_vec(t)?;
    NamedTensor::new(shape, data)
}

/// Loads `name` with the exact shape of `like` onto `device`.
fn load_like<const D: usize>(
    w: &TensorMap,
    name: &str,
    like: [usize; D],
    device: &Device,
) -> Result<Tensor<D>> {
    to_tensor(w.require_shape(name, &like)?, device)
}

/// A 2-D convolution with bias and no normalisation (the last layer of each head branch).
#[derive(Module, Debug)]
pub struct PlainConv {
    /// The convolution.
    pub conv: Conv2d,
}

impl PlainConv {
    /// A `k`×`k` convolution with bias, stride 1, "same" padding.
    pub fn new(c1: usize, c2: usize, k: usize, device: &Device) -> Self {
        let conv = Conv2dConfig::new([c1, c2], [k, k])
            .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
            .with_bias(true)
            .init(device);
        Self { conv }
    }

    /// Applies the convolution.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }

    /// Loads `<prefix>.weight` and `<prefix>.bias`.
    pub fn load(&mut self, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
        let shape = self.conv.weight.lazy_shape().dims::<4>();
        let weight = load_like(w, &format!("{prefix}.weight"), shape, device)?;
        let bias = load_like(w, &format!("{prefix}.bias"), [shape[0]], device)?;
        self.conv.weight = Param::from_tensor(weight);
        self.conv.bias = Some(Param::from_tensor(bias));
        Ok(())
    }

    /// Writes `<prefix>.weight` and `<prefix>.bias`.
    pub fn save(&self, out: &mut TensorMap, prefix: &str) -> Result<()> {
        out.insert(format!("{prefix}.weight"), export(self.conv.weight.val())?);
        if let Some(bias) = &self.conv.bias {
            out.insert(format!("{prefix}.bias"), export(bias.val())?);
        }
        Ok(())
    }
}

/// Ultralytics `Conv`: convolution without bias, batch norm, SiLU (or identity).
///
/// After [`ConvBnAct::fuse`] the batch norm is folded into the convolution's weight and bias,
/// once, and `bn` is `None`.
#[derive(Module, Debug)]
pub struct ConvBnAct {
    /// The convolution (bias only after folding).
    pub conv: Conv2d,
    /// Batch norm, `None` once folded.
    pub bn: Option<BatchNorm>,
    /// SiLU activation when true, identity otherwise.
    pub act: bool,
}

impl ConvBnAct {
    /// `Conv(c1, c2, k, s)` with "same" padding `k / 2`.
    pub fn new(c1: usize, c2: usize, k: usize, s: usize, act: bool, device: &Device) -> Self {
        let p = k / 2;
        let conv = Conv2dConfig::new([c1, c2], [k, k])
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(false)
            .init(device);
        let bn = BatchNormConfig::new(c2)
            .with_epsilon(BN_EPS)
            .with_momentum(BN_MOMENTUM)
            .init(device);
        Self {
            conv,
            bn: Some(bn),
            act,
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.conv.weight.lazy_shape().dims::<4>()[0]
    }

    /// conv → (bn) → SiLU.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        let x = match &self.bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        if self.act { silu(x) } else { x }
    }

    /// Loads `<prefix>.conv.weight` and `<prefix>.bn.{weight,bias,running_mean,running_var}`.
    /// A checkpoint that was saved already folded (`<prefix>.conv.bias`, no `bn`) loads too.
    pub fn load(&mut self, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
        let shape = self.conv.weight.lazy_shape().dims::<4>();
        let c2 = shape[0];
        let weight = load_like(w, &format!("{prefix}.conv.weight"), shape, device)?;
        self.conv.weight = Param::from_tensor(weight);
        let folded_bias = format!("{prefix}.conv.bias");
        if w.get(&folded_bias).is_some() && w.get(&format!("{prefix}.bn.weight")).is_none() {
            self.conv.bias = Some(Param::from_tensor(load_like(
                w,
                &folded_bias,
                [c2],
                device,
            )?));
            self.bn = None;
            return Ok(());
        }
        let mut bn = BatchNormConfig::new(c2)
            .with_epsilon(BN_EPS)
            .with_momentum(BN_MOMENTUM)
            .init(device);
        bn.gamma = Param::from_tensor(load_like(w, &format!("{prefix}.bn.weight"), [c2], device)?);
        bn.beta = Param::from_tensor(load_like(w, &format!("{prefix}.bn.bias"), [c2], device)?);
        bn.running_mean = RunningState::new(load_like(
            w,
            &format!("{prefix}.bn.running_mean"),
            [c2],
            device,
        )?);
        bn.running_var = RunningState::new(load_like(
            w,
            &format!("{prefix}.bn.running_var"),
            [c2],
            device,
        )?);
        self.bn = Some(bn);
        Ok(())
    }

    /// Writes the parameters under Ultralytics' names.
    pub fn save(&self, out: &mut TensorMap, prefix: &str) -> Result<()> {
        out.insert(
            format!("{prefix}.conv.weight"),
            export(self.conv.weight.val())?,
        );
        if let Some(bias) = &self.conv.bias {
            out.insert(format!("{prefix}.conv.bias"), export(bias.val())?);
        }
        if let Some(bn) = &self.bn {
            out.insert(format!("{prefix}.bn.weight"), export(bn.gamma.val())?);
            out.insert(format!("{prefix}.bn.bias"), export(bn.beta.val())?);
            out.insert(
                format!("{prefix}.bn.running_mean"),
                export(bn.running_mean.value())?,
            );
            out.insert(
                format!("{prefix}.bn.running_var"),
                export(bn.running_var.value())?,
            );
        }
        Ok(())
    }

    /// Folds the batch norm into the convolution: `w' = w·γ/√(σ²+ε)`,
    /// `b' = β + (b − μ)·γ/√(σ²+ε)`. Done once; the forward pass then runs conv + activation.
    pub fn fuse(mut self) -> Self {
        let Some(bn) = self.bn.take() else {
            return self;
        };
        let c2 = self.out_channels();
        let scale = bn
            .gamma
            .val()
            .div(bn.running_var.value().add_scalar(bn.epsilon).sqrt());
        let weight = self
            .conv
            .weight
            .val()
            .mul(scale.clone().reshape([c2, 1, 1, 1]));
        let mean = bn.running_mean.value();
        let centred = match &self.conv.bias {
            Some(b) => b.val().sub(mean),
            None => mean.neg(),
        };
        let bias = bn.beta.val().add(centred.mul(scale));
        self.conv.weight = Param::from_tensor(weight);
        self.conv.bias = Some(Param::from_tensor(bias));
        self
    }
}

/// Ultralytics `Bottleneck` (two 3×3 `Conv`, optional residual).
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// First 3×3 conv.
    pub cv1: ConvBnAct,
    /// Second 3×3 conv.
    pub cv2: ConvBnAct,
    /// Residual connection.
    pub add: bool,
}

impl Bottleneck {
    /// `Bottleneck(c, c, shortcut, k=(3,3), e=1.0)` as C2f uses it.
    pub fn new(c: usize, shortcut: bool, device: &Device) -> Self {
        Self {
            cv1: ConvBnAct::new(c, c, 3, 1, true, device),
            cv2: ConvBnAct::new(c, c, 3, 1, true, device),
            add: shortcut,
        }
    }

    /// Forward pass.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.cv2.forward(self.cv1.forward(x.clone()));
        if self.add { x.add(y) } else { y }
    }

    fn load(&mut self, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
        self.cv1.load(w, &format!("{prefix}.cv1"), device)?;
        self.cv2.load(w, &format!("{prefix}.cv2"), device)
    }

    fn save(&self, out: &mut TensorMap, prefix: &str) -> Result<()> {
        self.cv1.save(out, &format!("{prefix}.cv1"))?;
        self.cv2.save(out, &format!("{prefix}.cv2"))
    }

    fn fuse(self) -> Self {
        Self {
            cv1: self.cv1.fuse(),
            cv2: self.cv2.fuse(),
            add: self.add,
        }
    }
}

/// Ultralytics `C2f`: split, a chain of bottlenecks, concatenate everything, 1×1 conv.
#[derive(Module, Debug)]
pub struct C2f {
    /// 1×1 conv to `2·c` channels.
    pub cv1: ConvBnAct,
    /// 1×1 conv from `(2 + n)·c` channels.
    pub cv2: ConvBnAct,
    /// The bottlenecks.
    pub m: Vec<Bottleneck>,
}

impl C2f {
    /// `C2f(c1, c2, n, shortcut, e=0.5)`.
    pub fn new(c1: usize, c2: usize, n: usize, shortcut: bool, device: &Device) -> Self {
        let c = c2 / 2;
        Self {
            cv1: ConvBnAct::new(c1, 2 * c, 1, 1, true, device),
            cv2: ConvBnAct::new((2 + n) * c, c2, 1, 1, true, device),
            m: (0..n)
                .map(|_| Bottleneck::new(c, shortcut, device))
                .collect(),
        }
    }

    /// Forward pass.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.cv1.forward(x);
        let mut parts = y.chunk(2, 1);
        for b in &self.m {
            let last = parts[parts.len() - 1].clone();
            parts.push(b.forward(last));
        }
        self.cv2.forward(Tensor::cat(parts, 1))
    }

    /// Loads `<prefix>.cv1`, `<prefix>.cv2`, `<prefix>.m.<i>`.
    pub fn load(&mut self, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
        self.cv1.load(w, &format!("{prefix}.cv1"), device)?;
        self.cv2.load(w, &format!("{prefix}.cv2"), device)?;
        for (i, b) in self.m.iter_mut().enumerate() {
            b.load(w, &format!("{prefix}.m.{i}"), device)?;
        }
        Ok(())
    }

    /// Writes the parameters under Ultralytics' names.
    pub fn save(&self, out: &mut TensorMap, prefix: &str) -> Result<()> {
        self.cv1.save(out, &format!("{prefix}.cv1"))?;
        self.cv2.save(out, &format!("{prefix}.cv2"))?;
        for (i, b) in self.m.iter().enumerate() {
            b.save(out, &format!("{prefix}.m.{i}"))?;
        }
        Ok(())
    }

    /// Folds every batch norm.
    pub fn fuse(self) -> Self {
        Self {
            cv1: self.cv1.fuse(),
            cv2: self.cv2.fuse(),
            m: self.m.into_iter().map(Bottleneck::fuse).collect(),
        }
    }
}

/// Ultralytics `SPPF`: 1×1 conv, three chained k×k max-pools (stride 1), concat, 1×1 conv.
#[derive(Module, Debug)]
pub struct Sppf {
    /// 1×1 conv to `c1 / 2` channels.
    pub cv1: ConvBnAct,
    /// 1×1 conv from `4 · c1 / 2` channels.
    pub cv2: ConvBnAct,
    /// Pooling kernel size.
    pub k: usize,
}

impl Sppf {
    /// `SPPF(c1, c2, k)`; `cv1_act` selects SiLU (YOLOv8 checkpoints) or identity after `cv1`.
    pub fn new(c1: usize, c2: usize, k: usize, cv1_act: bool, device: &Device) -> Self {
        let c = c1 / 2;
        Self {
            cv1: ConvBnAct::new(c1, c, 1, 1, cv1_act, device),
            cv2: ConvBnAct::new(4 * c, c2, 1, 1, true, device),
            k,
        }
    }

    /// Forward pass.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let opts = MaxPoolOptions::new([self.k, self.k])
            .with_stride([1, 1])
            .with_padding([self.k / 2, self.k / 2]);
        let y0 = self.cv1.forward(x);
        let y1 = max_pool2d(y0.clone(), opts.clone());
        let y2 = max_pool2d(y1.clone(), opts.clone());
        let y3 = max_pool2d(y2.clone(), opts);
        self.cv2.forward(Tensor::cat(vec![y0, y1, y2, y3], 1))
    }

    /// Loads `<prefix>.cv1`, `<prefix>.cv2`.
    pub fn load(&mut self, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
        self.cv1.load(w, &format!("{prefix}.cv1"), device)?;
        self.cv2.load(w, &format!("{prefix}.cv2"), device)
    }

    /// Writes the parameters under Ultralytics' names.
    pub fn save(&self, out: &mut TensorMap, prefix: &str) -> Result<()> {
        self.cv1.save(out, &format!("{prefix}.cv1"))?;
        self.cv2.save(out, &format!("{prefix}.cv2"))
    }

    /// Folds every batch norm.
    pub fn fuse(self) -> Self {
        Self {
            cv1: self.cv1.fuse(),
            cv2: self.cv2.fuse(),
            k: self.k,
        }
    }
}
