//! MobileNetV3-small and -large in Burn, exactly as torchvision defines them
//! (`torchvision.models.mobilenet_v3_{small,large}`): a 3×3 stride-2 stem with hardswish,
//! inverted-residual blocks (1×1 expansion, depthwise k×k, optional squeeze-excitation with
//! hardsigmoid `relu6(x + 3) / 6`, 1×1 projection, residual when shapes allow), a 1×1 conv
//! to `6 × last` channels, global average pooling and the classifier
//! `Linear → Hardswish → Dropout(0.2) → Linear`. Batch norms use eps 0.001, momentum 0.01.
//!
//! Weights are named as in torchvision's state dict, so loading is a walk over names:
//! `features.0.{0,1}` (stem conv, bn), `features.<i>.block.<j>.{0,1}` (block convs),
//! `features.<i>.block.<j>.fc{1,2}` (squeeze-excitation), `features.<last>.{0,1}`,
//! `classifier.{0,3}`. [`MobileNetV3::load`] reports the first missing or mis-shaped tensor;
//! [`HeadPolicy::ReplaceIfMismatch`] keeps the backbone of a checkpoint trained for another
//! number of classes (e.g. ImageNet's 1000) and re-initialises the final linear layer.
//! [`MobileNetV3::fuse`] folds every batch norm into its convolution for inference.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::{Device, Tensor};

use crate::error::{Result, VisionError};
use crate::weights::{NamedTensor, TensorMap, tensor_to_vec, to_tensor};

/// torchvision's batch-norm epsilon for MobileNetV3.
pub const BN_EPS: f64 = 1e-3;
/// torchvision's batch-norm momentum for MobileNetV3 (PyTorch convention).
pub const BN_MOMENTUM: f64 = 0.01;

/// `torchvision.models._utils._make_divisible(v, 8)`: round to the nearest multiple of 8,
/// never below 8 nor more than 10% below `v`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = (((v + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

/// The two torchvision variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MobileNetV3Variant {
    /// `mobilenet_v3_small`.
    Small,
    /// `mobilenet_v3_large`.
    Large,
}

impl MobileNetV3Variant {
    /// torchvision's model name.
    pub fn name(self) -> &'static str {
        match self {
            MobileNetV3Variant::Small => "mobilenet_v3_small",
            MobileNetV3Variant::Large => "mobilenet_v3_large",
        }
    }
}

/// Activation of a conv block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// No activation.
    Identity,
    /// ReLU.
    Relu,
    /// Hardswish `x · relu6(x + 3) / 6`.
    Hardswish,
}

/// One inverted-residual block (torchvision's `InvertedResidualConfig`, channels already
/// scaled by the width multiplier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockConfig {
    /// Input channels.
    pub input_channels: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Expanded (hidden) channels.
    pub expanded_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Squeeze-excitation after the depthwise conv.
    pub use_se: bool,
    /// Hardswish (true) or ReLU (false).
    pub use_hs: bool,
    /// Depthwise stride.
    pub stride: usize,
    /// Depthwise dilation.
    pub dilation: usize,
}

impl BlockConfig {
    /// Residual connection: stride 1 and same channels.
    pub fn use_residual(&self) -> bool {
        self.stride == 1 && self.input_channels == self.out_channels
    }

    /// Squeeze channels of the SE layer: `_make_divisible(expanded // 4, 8)`.
    pub fn squeeze_channels(&self) -> usize {
        make_divisible((self.expanded_channels / 4) as f64, 8)
    }
}

/// Architecture of a MobileNetV3 network.
#[derive(Debug, Clone, PartialEq)]
pub struct MobileNetV3Config {
    /// Which variant the block table is.
    pub variant: MobileNetV3Variant,
    /// Number of output classes.
    pub num_classes: usize,
    /// Inverted-residual blocks, in order (`features.1` …).
    pub blocks: Vec<BlockConfig>,
    /// Hidden width of the classifier (1024 small, 1280 large).
    pub last_channel: usize,
    /// Dropout probability in the classifier (torchvision: 0.2).
    pub dropout: f64,
}

/// `(input, kernel, expanded, out, use_se, use_hs, stride)` rows of torchvision's tables.
type Row = (usize, usize, usize, usize, bool, bool, usize);

const SMALL: [Row; 11] = [
    (16, 3, 16, 16, true, false, 2),
    (16, 3, 72, 24, false, false, 2),
    (24, 3, 88, 24, false, false, 1),
    (24, 5, 96, 40, true, true, 2),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 120, 48, true, true, 1),
    (48, 5, 144, 48, true, true, 1),
    (48, 5, 288, 96, true, true, 2),
    (96, 5, 576, 96, true, true, 1),
    (96, 5, 576, 96, true, true, 1),
];

const LARGE: [Row; 15] = [
    (16, 3, 16, 16, false, false, 1),
    (16, 3, 64, 24, false, false, 2),
    (24, 3, 72, 24, false, false, 1),
    (24, 5, 72, 40, true, false, 2),
    (40, 5, 120, 40, true, false, 1),
    (40, 5, 120, 40, true, false, 1),
    (40, 3, 240, 80, false, true, 2),
    (80, 3, 200, 80, false, true, 1),
    (80, 3, 184, 80, false, true, 1),
    (80, 3, 184, 80, false, true, 1),
    (80, 3, 480, 112, true, true, 1),
    (112, 3, 672, 112, true, true, 1),
    (112, 5, 672, 160, true, true, 2),
    (160, 5, 960, 160, true, true, 1),
    (160, 5, 960, 160, true, true, 1),
];

impl MobileNetV3Config {
    fn from_table(
        variant: MobileNetV3Variant,
        rows: &[Row],
        last: usize,
        num_classes: usize,
        width_mult: f64,
    ) -> Self {
        let adjust = |c: usize| make_divisible(c as f64 * width_mult, 8);
        let blocks = rows
            .iter()
            .map(|&(i, k, e, o, se, hs, s)| BlockConfig {
                input_channels: adjust(i),
                kernel: k,
                expanded_channels: adjust(e),
                out_channels: adjust(o),
                use_se: se,
                use_hs: hs,
                stride: s,
                dilation: 1,
            })
            .collect();
        Self {
            variant,
            num_classes,
            blocks,
            last_channel: adjust(last),
            dropout: 0.2,
        }
    }

    /// torchvision `mobilenet_v3_small(num_classes=…)`.
    pub fn small(num_classes: usize) -> Self {
        Self::from_table(MobileNetV3Variant::Small, &SMALL, 1024, num_classes, 1.0)
    }

    /// torchvision `mobilenet_v3_large(num_classes=…)`.
    pub fn large(num_classes: usize) -> Self {
        Self::from_table(MobileNetV3Variant::Large, &LARGE, 1280, num_classes, 1.0)
    }

    /// The configuration of a variant.
    pub fn variant(variant: MobileNetV3Variant, num_classes: usize) -> Self {
        match variant {
            MobileNetV3Variant::Small => Self::small(num_classes),
            MobileNetV3Variant::Large => Self::large(num_classes),
        }
    }

    /// The same architecture with a width multiplier (torchvision's `width_mult`).
    pub fn with_width_mult(self, width_mult: f64) -> Self {
        let (rows, last): (&[Row], usize) = match self.variant {
            MobileNetV3Variant::Small => (&SMALL, 1024),
            MobileNetV3Variant::Large => (&LARGE, 1280),
        };
        Self {
            dropout: self.dropout,
            ..Self::from_table(self.variant, rows, last, self.num_classes, width_mult)
        }
    }

    /// The same architecture with another classifier dropout.
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// Channels of the stem (input of the first block).
    pub fn stem_channels(&self) -> usize {
        self.blocks.first().map_or(16, |b| b.input_channels)
    }

    /// Channels after the last 1×1 conv: `6 × out_channels` of the last block.
    pub fn features_channels(&self) -> usize {
        6 * self.blocks.last().map_or(16, |b| b.out_channels)
    }

    /// Recognises the variant and class count of torchvision-named weights (number of
    /// `features.<i>` entries and the shape of `classifier.3.weight`).
    pub fn infer(weights: &TensorMap) -> Result<Self> {
        let n_features = (0..)
            .take_while(|i| {
                weights
                    .names()
                    .any(|n| n.starts_with(&format!("features.{i}.")))
            })
            .count();
        let variant = match n_features {
            13 => MobileNetV3Variant::Small,
            17 => MobileNetV3Variant::Large,
            0 => {
                return Err(VisionError::Unsupported(
                    "no `features.*` tensors: not a torchvision MobileNetV3 state dict".into(),
                ));
            }
            n => {
                return Err(VisionError::Unsupported(format!(
                    "{n} `features.*` layers: MobileNetV3-small has 13 and -large 17"
                )));
            }
        };
        let head = weights.require("classifier.3.weight")?;
        let num_classes = match head.shape.as_slice() {
            [n, _] if *n > 0 => *n,
            other => {
                return Err(VisionError::Unsupported(format!(
                    "`classifier.3.weight` has shape {other:?}, expected [classes, hidden]"
                )));
            }
        };
        Ok(Self::variant(variant, num_classes))
    }

    /// A randomly initialised network with torchvision's initialisation (Kaiming-normal
    /// fan-out convolutions, unit batch norms, N(0, 0.01) linear layers, zero biases).
    pub fn init(&self, device: &Device) -> MobileNetV3 {
        MobileNetV3::new(self, device)
    }
}

/// What [`MobileNetV3::load`] should do when the checkpoint's classifier has another number
/// of classes than the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadPolicy {
    /// Every tensor must match (error names the mis-shaped one).
    #[default]
    Strict,
    /// Keep the backbone and the first classifier layer; re-initialise `classifier.3`.
    ReplaceIfMismatch,
}

/// What loading did beyond copying tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadReport {
    /// `Some((checkpoint classes, model classes))` when the final linear layer was
    /// re-initialised because the class counts differ.
    pub head_replaced: Option<(usize, usize)>,
}

/// A convolution initialised as torchvision does; `(stride, dilation)` and `groups` as in
/// `nn.Conv2d`, padding `(k − 1) / 2 · dilation`.
#[allow(clippy::too_many_arguments)] // mirrors nn.Conv2d's own argument list
fn conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    (stride, dilation): (usize, usize),
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let p = (k - 1) / 2 * dilation;
    let mut conv = Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_dilation([dilation, dilation])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(bias)
        .init(device);
    // torch's kaiming_normal_(mode="fan_out"): std = √2 / √(c_out · k · k) (groups ignored)
    let std = (2.0 / (c_out * k * k) as f64).sqrt();
    conv.weight = Initializer::Normal { mean: 0.0, std }.init([c_out, c_in / groups, k, k], device);
    if bias {
        conv.bias = Some(Initializer::Zeros.init([c_out], device));
    }
    conv
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    let mut l = LinearConfig::new(d_in, d_out).init(device);
    l.weight = Initializer::Normal {
        mean: 0.0,
        std: 0.01,
    }
    .init([d_in, d_out], device);
    l.bias = Some(Initializer::Zeros.init([d_out], device));
    l
}

fn load_tensor<const D: usize>(
    w: &TensorMap,
    name: &str,
    shape: [usize; D],
    device: &Device,
) -> Result<Tensor<D>> {
    to_tensor(w.require_shape(name, &shape)?, device)
}

fn export<const D: usize>(t: Tensor<D>) -> Result<NamedTensor> {
    let (shape, data) = tensor_to_vec(t)?;
    NamedTensor::new(shape, data)
}

/// `x · relu6(x + 3) / 6`, as `torch.nn.Hardswish`.
pub fn hardswish<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * hardsigmoid(x)
}

/// `relu6(x + 3) / 6`, as `torch.nn.Hardsigmoid` (not Burn's default slope 0.2).
pub fn hardsigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.add_scalar(3.0).clamp(0.0, 6.0).div_scalar(6.0)
}

/// torchvision `Conv2dNormActivation`: conv (no bias) → batch norm → activation. After
/// [`ConvBnAct::fuse`] the batch norm lives in the conv's weight and bias.
#[derive(Module, Debug)]
pub struct ConvBnAct {
    /// Convolution (`.0`).
    pub conv: Conv2d,
    /// Batch norm (`.1`), `None` once folded.
    pub bn: Option<BatchNorm>,
    /// Activation.
    #[module(skip)]
    pub act: Act,
}

impl ConvBnAct {
    fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        groups: usize,
        act: Act,
        device: &Device,
    ) -> Self {
        Self {
            conv: conv(c_in, c_out, k, (stride, 1), groups, false, device),
            bn: Some(
                BatchNormConfig::new(c_out)
                    .with_epsilon(BN_EPS)
                    .with_momentum(BN_MOMENTUM)
                    .init(device),
            ),
            act,
        }
    }

    /// `[B, c_in, H, W]` → `[B, c_out, H / stride, W / stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        let x = match &self.bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        match self.act {
            Act::Identity => x,
            Act::Relu => burn::tensor::activation::relu(x),
            Act::Hardswish => hardswish(x),
        }
    }

    fn out_channels(&self) -> usize {
        self.conv.weight.lazy_shape().dims::<4>()[0]
    }

    /// Loads `<prefix>.0.weight` and `<prefix>.1.{weight,bias,running_mean,running_var}`
    /// (or an already folded `<prefix>.0.bias` without `<prefix>.1`).
    fn load(&mut self, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
        let shape = self.conv.weight.lazy_shape().dims::<4>();
        let c = shape[0];
        self.conv.weight = Param::from_tensor(load_tensor(
            w,
            &format!("{prefix}.0.weight"),
            shape,
            device,
        )?);
        let folded = format!("{prefix}.0.bias");
        if w.get(&folded).is_some() && w.get(&format!("{prefix}.1.weight")).is_none() {
            self.conv.bias = Some(Param::from_tensor(load_tensor(w, &folded, [c], device)?));
            self.bn = None;
            return Ok(());
        }
        let mut bn = BatchNormConfig::new(c)
            .with_epsilon(BN_EPS)
            .with_momentum(BN_MOMENTUM)
            .init(device);
        bn.gamma = Param::from_tensor(load_tensor(w, &format!("{prefix}.1.weight"), [c], device)?);
        bn.beta = Param::from_tensor(load_tensor(w, &format!("{prefix}.1.bias"), [c], device)?);
        bn.running_mean = RunningState::new(load_tensor(
            w,
            &format!("{prefix}.1.running_mean"),
            [c],
            device,
        )?);
        bn.running_var = RunningState::new(load_tensor(
            w,
            &format!("{prefix}.1.running_var"),
            [c],
            device,
        )?);
        self.conv.bias = None;
        self.bn = Some(bn);
        Ok(())
    }

    fn save(&self, out: &mut TensorMap, prefix: &str) -> Result<()> {
        out.insert(
            format!("{prefix}.0.weight"),
            export(self.conv.weight.val())?,
        );
        if let Some(b) = &self.conv.bias {
            out.insert(format!("{prefix}.0.bias"), export(b.val())?);
        }
        if let Some(bn) = &self.bn {
            out.insert(format!("{prefix}.1.weight"), export(bn.gamma.val())?);
            out.insert(format!("{prefix}.1.bias"), export(bn.beta.val())?);
            out.insert(
                format!("{prefix}.1.running_mean"),
                export(bn.running_mean.value())?,
            );
            out.insert(
                format!("{prefix}.1.running_var"),
                export(bn.running_var.value())?,
            );
        }
        Ok(())
    }

    /// Folds the batch norm into the convolution: `w' = w·γ/√(σ²+ε)`,
    /// `b' = β + (b − μ)·γ/√(σ²+ε)`.
    pub fn fuse(mut self) -> Self {
        let Some(bn) = self.bn.take() else {
            return self;
        };
        let c = self.out_channels();
        let scale = bn.gamma.val() / bn.running_var.value().add_scalar(bn.epsilon).sqrt();
        let weight = self.conv.weight.val() * scale.clone().reshape([c, 1, 1, 1]);
        let bias = match &self.conv.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([c], &scale.device()),
        };
        let bias = bn.beta.val() + (bias - bn.running_mean.value()) * scale;
        self.conv.weight = Param::from_tensor(weight);
        self.conv.bias = Some(Param::from_tensor(bias));
        self
    }
}

/// torchvision `SqueezeExcitation` with ReLU and hardsigmoid: `x · hσ(fc2(relu(fc1(avg(x)))))`.
#[derive(Module, Debug)]
pub struct SqueezeExcitation {
    /// 1×1 conv with bias, channels → squeeze (`fc1`).
    pub fc1: Conv2d,
    /// 1×1 conv with bias, squeeze → channels (`fc2`).
    pub fc2: Conv2d,
}

impl SqueezeExcitation {
    fn new(channels: usize, squeeze: usize, device: &Device) -> Self {
        Self {
            fc1: conv(channels, squeeze, 1, (1, 1), 1, true, device),
            fc2: conv(squeeze, channels, 1, (1, 1), 1, true, device),
        }
    }

    /// `[B, C, H, W]` → `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = adaptive_avg_pool2d(x.clone(), [1, 1]);
        let s = burn::tensor::activation::relu(self.fc1.forward(s));
        let s = hardsigmoid(self.fc2.forward(s));
        x * s
    }

    fn load(&mut self, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
        for (name, c) in [("fc1", &mut self.fc1), ("fc2", &mut self.fc2)] {
            let shape = c.weight.lazy_shape().dims::<4>();
            c.weight = Param::from_tensor(load_tensor(
                w,
                &format!("{prefix}.{name}.weight"),
                shape,
                device,
            )?);
            c.bias = Some(Param::from_tensor(load_tensor(
                w,
                &format!("{prefix}.{name}.bias"),
                [shape[0]],
                device,
            )?));
        }
        Ok(())
    }

    fn save(&self, out: &mut TensorMap, prefix: &str) -> Result<()> {
        for (name, c) in [("fc1", &self.fc1), ("fc2", &self.fc2)] {
            out.insert(format!("{prefix}.{name}.weight"), export(c.weight.val())?);
            if let Some(b) = &c.bias {
                out.insert(format!("{prefix}.{name}.bias"), export(b.val())?);
            }
        }
        Ok(())
    }
}

/// torchvision `InvertedResidual`: optional 1×1 expansion, depthwise conv, optional SE,
/// 1×1 projection (no activation), plus the input when [`BlockConfig::use_residual`].
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1×1 expansion (absent when expanded == input channels).
    pub expand: Option<ConvBnAct>,
    /// Depthwise k×k conv.
    pub depthwise: ConvBnAct,
    /// Squeeze-excitation.
    pub se: Option<SqueezeExcitation>,
    /// 1×1 projection.
    pub project: ConvBnAct,
    /// Residual connection.
    #[module(skip)]
    pub residual: bool,
}

impl InvertedResidual {
    fn new(cfg: &BlockConfig, device: &Device) -> Self {
        let act = if cfg.use_hs {
            Act::Hardswish
        } else {
            Act::Relu
        };
        let e = cfg.expanded_channels;
        let stride = if cfg.dilation > 1 { 1 } else { cfg.stride };
        let expand = (e != cfg.input_channels)
            .then(|| ConvBnAct::new(cfg.input_channels, e, 1, 1, 1, act, device));
        let mut depthwise = ConvBnAct::new(e, e, cfg.kernel, stride, e, act, device);
        if cfg.dilation > 1 {
            depthwise.conv = conv(e, e, cfg.kernel, (stride, cfg.dilation), e, false, device);
        }
        Self {
            expand,
            depthwise,
            se: cfg
                .use_se
                .then(|| SqueezeExcitation::new(e, cfg.squeeze_channels(), device)),
            project: ConvBnAct::new(e, cfg.out_channels, 1, 1, 1, Act::Identity, device),
            residual: cfg.use_residual(),
        }
    }

    /// `[B, C_in, H, W]` → `[B, C_out, H / stride, W / stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = match &self.expand {
            Some(e) => e.forward(x.clone()),
            None => x.clone(),
        };
        y = self.depthwise.forward(y);
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        y = self.project.forward(y);
        if self.residual { y + x } else { y }
    }

    /// Sub-layer names in torchvision's `block` Sequential order.
    fn walk(
        &mut self,
        mut f: impl FnMut(Layer<'_>, String) -> Result<()>,
        prefix: &str,
    ) -> Result<()> {
        let mut j = 0;
        if let Some(e) = &mut self.expand {
            f(Layer::Conv(e), format!("{prefix}.block.{j}"))?;
            j += 1;
        }
        f(
            Layer::Conv(&mut self.depthwise),
            format!("{prefix}.block.{j}"),
        )?;
        j += 1;
        if let Some(se) = &mut self.se {
            f(Layer::Se(se), format!("{prefix}.block.{j}"))?;
            j += 1;
        }
        f(
            Layer::Conv(&mut self.project),
            format!("{prefix}.block.{j}"),
        )
    }

    fn fuse(self) -> Self {
        Self {
            expand: self.expand.map(ConvBnAct::fuse),
            depthwise: self.depthwise.fuse(),
            se: self.se,
            project: self.project.fuse(),
            residual: self.residual,
        }
    }
}

enum Layer<'a> {
    Conv(&'a mut ConvBnAct),
    Se(&'a mut SqueezeExcitation),
}

/// MobileNetV3 (small or large, any number of classes).
#[derive(Module, Debug)]
pub struct MobileNetV3 {
    /// 3×3 stride-2 stem with hardswish (`features.0`).
    pub stem: ConvBnAct,
    /// Inverted-residual blocks (`features.1` …).
    pub blocks: Vec<InvertedResidual>,
    /// 1×1 conv to `6 × last` channels with hardswish (`features.<n+1>`).
    pub last_conv: ConvBnAct,
    /// First classifier layer (`classifier.0`).
    pub fc1: Linear,
    /// Classifier dropout (`classifier.2`), active only when training on an autodiff device.
    pub dropout: Dropout,
    /// Final classifier layer (`classifier.3`).
    pub fc2: Linear,
}

impl MobileNetV3 {
    /// A randomly initialised network (torchvision's initialisation).
    pub fn new(config: &MobileNetV3Config, device: &Device) -> Self {
        let stem_c = config.stem_channels();
        let last_in = config.blocks.last().map_or(stem_c, |b| b.out_channels);
        let feat = config.features_channels();
        Self {
            stem: ConvBnAct::new(3, stem_c, 3, 2, 1, Act::Hardswish, device),
            blocks: config
                .blocks
                .iter()
                .map(|b| InvertedResidual::new(b, device))
                .collect(),
            last_conv: ConvBnAct::new(last_in, feat, 1, 1, 1, Act::Hardswish, device),
            fc1: linear(feat, config.last_channel, device),
            dropout: DropoutConfig::new(config.dropout).init(),
            fc2: linear(config.last_channel, config.num_classes.max(1), device),
        }
    }

    /// Builds the network of `config` and loads torchvision-named weights; every tensor must
    /// match. Batch norms stay separate (call [`MobileNetV3::fuse`] for inference).
    pub fn load(config: &MobileNetV3Config, weights: &TensorMap, device: &Device) -> Result<Self> {
        Self::load_with(config, weights, HeadPolicy::Strict, device).map(|(m, _)| m)
    }

    /// Like [`MobileNetV3::load`], with a policy for a checkpoint whose final layer has
    /// another number of classes; the report says whether the head was replaced.
    pub fn load_with(
        config: &MobileNetV3Config,
        weights: &TensorMap,
        policy: HeadPolicy,
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        if config.num_classes == 0 {
            return Err(VisionError::InvalidArgument(
                "a classifier needs at least one class".into(),
            ));
        }
        let mut m = Self::new(config, device);
        m.stem.load(weights, "features.0", device)?;
        for (i, block) in m.blocks.iter_mut().enumerate() {
            block.walk(
                |layer, prefix| match layer {
                    Layer::Conv(c) => c.load(weights, &prefix, device),
                    Layer::Se(se) => se.load(weights, &prefix, device),
                },
                &format!("features.{}", i + 1),
            )?;
        }
        let last = format!("features.{}", config.blocks.len() + 1);
        m.last_conv.load(weights, &last, device)?;
        load_linear(&mut m.fc1, weights, "classifier.0", device)?;
        let mut report = LoadReport::default();
        let found = weights.get("classifier.3.weight").map(|t| t.shape.clone());
        let expected = vec![config.num_classes, config.last_channel];
        match (policy, found) {
            (HeadPolicy::ReplaceIfMismatch, Some(shape))
                if shape.len() == 2 && shape[1] == config.last_channel && shape != expected =>
            {
                // fc2 keeps its fresh torchvision initialisation
                report.head_replaced = Some((shape[0], config.num_classes));
            }
            _ => load_linear(&mut m.fc2, weights, "classifier.3", device)?,
        }
        Ok((m, report))
    }

    /// The parameters under torchvision's state-dict names (inverse of [`MobileNetV3::load`]).
    pub fn to_tensor_map(&self) -> Result<TensorMap> {
        let mut out = TensorMap::new();
        self.stem.save(&mut out, "features.0")?;
        for (i, block) in self.blocks.iter().enumerate() {
            let prefix = format!("features.{}", i + 1);
            let mut j = 0;
            if let Some(e) = &block.expand {
                e.save(&mut out, &format!("{prefix}.block.{j}"))?;
                j += 1;
            }
            block
                .depthwise
                .save(&mut out, &format!("{prefix}.block.{j}"))?;
            j += 1;
            if let Some(se) = &block.se {
                se.save(&mut out, &format!("{prefix}.block.{j}"))?;
                j += 1;
            }
            block
                .project
                .save(&mut out, &format!("{prefix}.block.{j}"))?;
        }
        let last = format!("features.{}", self.blocks.len() + 1);
        self.last_conv.save(&mut out, &last)?;
        save_linear(&self.fc1, &mut out, "classifier.0")?;
        save_linear(&self.fc2, &mut out, "classifier.3")?;
        Ok(out)
    }

    /// Folds every batch norm into its convolution (for inference; done once).
    pub fn fuse(self) -> Self {
        Self {
            stem: self.stem.fuse(),
            blocks: self
                .blocks
                .into_iter()
                .map(InvertedResidual::fuse)
                .collect(),
            last_conv: self.last_conv.fuse(),
            fc1: self.fc1,
            dropout: self.dropout,
            fc2: self.fc2,
        }
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        self.fc2.weight.lazy_shape().dims::<2>()[1]
    }

    /// Backbone and global average pooling: `[B, 3, H, W]` (ImageNet-normalised RGB) →
    /// `[B, 6 × last block channels]` (576 small, 960 large).
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward(x);
        for b in &self.blocks {
            x = b.forward(x);
        }
        let x = self.last_conv.forward(x);
        let [b, c, _, _] = x.dims();
        adaptive_avg_pool2d(x, [1, 1]).reshape([b, c])
    }

    /// `[B, 3, H, W]` (ImageNet-normalised RGB, typically 224×224) → logits `[B, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = hardswish(self.fc1.forward(self.features(x)));
        self.fc2.forward(self.dropout.forward(x))
    }
}

/// torch `Linear.weight` is `[out, in]`; Burn's is `[in, out]`.
fn load_linear(l: &mut Linear, w: &TensorMap, prefix: &str, device: &Device) -> Result<()> {
    let [d_in, d_out] = l.weight.lazy_shape().dims::<2>();
    let weight: Tensor<2> = load_tensor(w, &format!("{prefix}.weight"), [d_out, d_in], device)?;
    l.weight = Param::from_tensor(weight.transpose());
    l.bias = Some(Param::from_tensor(load_tensor(
        w,
        &format!("{prefix}.bias"),
        [d_out],
        device,
    )?));
    Ok(())
}

fn save_linear(l: &Linear, out: &mut TensorMap, prefix: &str) -> Result<()> {
    out.insert(
        format!("{prefix}.weight"),
        export(l.weight.val().transpose())?,
    );
    if let Some(b) = &l.bias {
        out.insert(format!("{prefix}.bias"), export(b.val())?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_torchvision() {
        assert_eq!(make_divisible(16.0 / 4.0, 8), 8);
        assert_eq!(make_divisible(96.0 / 4.0, 8), 24);
        assert_eq!(make_divisible(240.0 / 4.0, 8), 64);
        assert_eq!(make_divisible(120.0 / 4.0, 8), 32);
        assert_eq!(make_divisible(144.0 / 4.0, 8), 40);
        assert_eq!(make_divisible(576.0 / 4.0, 8), 144);
        assert_eq!(make_divisible(13.0, 8), 16);
        // more than 10% below: bumped to the next multiple
        assert_eq!(make_divisible(9.0, 8), 16);
    }

    #[test]
    fn configs_match_torchvision_tables() {
        let s = MobileNetV3Config::small(4);
        assert_eq!(
            (s.blocks.len(), s.features_channels(), s.last_channel),
            (11, 576, 1024)
        );
        let l = MobileNetV3Config::large(1000);
        assert_eq!(
            (l.blocks.len(), l.features_channels(), l.last_channel),
            (15, 960, 1280)
        );
        assert!(!s.blocks[0].use_residual() && s.blocks[2].use_residual());
    }

    #[test]
    fn forward_shapes_and_state_dict_names() {
        let device = crate::backend::default_device();
        let cfg = MobileNetV3Config::small(3);
        let m = cfg.init(&device);
        let y = m.forward(Tensor::zeros([2, 3, 64, 64], &device));
        assert_eq!(y.dims(), [2, 3]);
        let map = m.to_tensor_map().unwrap();
        // torchvision's mobilenet_v3_small state dict has 244 entries, 34 of them the batch
        // norms' num_batches_tracked, which we do not keep
        assert_eq!(map.len(), 244 - 34);
        assert_eq!(
            map.require("features.1.block.1.fc1.weight").unwrap().shape,
            [8, 16, 1, 1]
        );
        assert_eq!(map.require("classifier.3.weight").unwrap().shape, [3, 1024]);
        let l = MobileNetV3Config::large(5)
            .init(&device)
            .to_tensor_map()
            .unwrap();
        assert_eq!(
            l.require("features.16.0.weight").unwrap().shape,
            [960, 160, 1, 1]
        );
        assert_eq!(
            MobileNetV3Config::infer(&l).unwrap(),
            MobileNetV3Config::large(5)
        );
    }

    #[test]
    fn fusing_keeps_the_function() {
        let device = crate::backend::default_device();
        let cfg = MobileNetV3Config::small(2);
        let mut weights = cfg.init(&device).to_tensor_map().unwrap();
        // non-trivial batch-norm statistics
        let names: Vec<String> = weights.names().map(str::to_string).collect();
        for (k, name) in names.iter().enumerate() {
            let Some(t) = weights.get(name).cloned() else {
                continue;
            };
            let bump = |i: usize| ((i * 7 + k) % 13) as f32 / 13.0;
            let data: Vec<f32> = if name.ends_with("running_var") {
                t.data
                    .iter()
                    .enumerate()
                    .map(|(i, _)| 0.5 + bump(i))
                    .collect()
            } else if name.ends_with("running_mean") || name.ends_with(".1.bias") {
                t.data
                    .iter()
                    .enumerate()
                    .map(|(i, _)| bump(i) - 0.5)
                    .collect()
            } else {
                continue;
            };
            weights.insert(name.clone(), NamedTensor::new(t.shape, data).unwrap());
        }
        let m = MobileNetV3::load(&cfg, &weights, &device).unwrap();
        let x = Tensor::<4>::random(
            [1, 3, 48, 48],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let (_, a) = tensor_to_vec(m.forward(x.clone())).unwrap();
        let m = m.fuse();
        let (_, b) = tensor_to_vec(m.forward(x)).unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-4 * (1.0 + p.abs()), "{p} vs {q}");
        }
    }
}
