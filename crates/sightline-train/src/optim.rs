//! Optimisation as Ultralytics does it: three parameter groups (weights with decay, norm-layer
//! weights and biases without), SGD with Nesterov momentum or AdamW, the "auto" choice,
//! warm-up (bias lr falling from `warmup_bias_lr`, others rising from 0, momentum rising from
//! `warmup_momentum`), linear or cosine decay, gradient accumulation, global-norm gradient
//! clipping (max norm 10) and a model EMA.
//!
//! The optimiser works on any Burn [`Module`]: it walks the parameters with a visitor to read
//! their gradients and with a mapper to write the updated values, keyed by [`ParamId`], with
//! its state (momentum buffers, Adam moments) kept flattened on the inner (non-autodiff) device.
//!
//! ## Saved state (`--resume`)
//!
//! [`GroupedOptimizer::save_state`] and [`ModelEma::save_state`] write safetensors files keyed by
//! each parameter's **path** in the module tree (`backbone.features.0.conv.weight`, the field
//! names Burn's visitors report), not by [`ParamId`], because ids change when a model is
//! reloaded from a file. File naming convention, beside the experiment's weights:
//!
//! - `weights/last.optim.safetensors` ([`optim_state_path`]): metadata `format` =
//!   `sightline-optim/1`, `kind` (`sgd`/`adamw`), `steps`, `lr_weight`, `lr_norm`, `lr_bias`,
//!   `momentum` (decimal strings that round-trip exactly); tensors `param/<path>` (the **live**
//!   training parameters, original shapes: `weights/last` may hold the EMA), `m/<path>` (SGD
//!   momentum buffer or Adam first moment) and `v/<path>` (Adam second moment), flattened.
//! - `weights/last.ema.safetensors` ([`ema_state_path`]): metadata `format` =
//!   `sightline-ema/1`, `updates`, `max_decay`, `tau`; tensors `ema/<path>` (flattened): every
//!   averaged float entry, parameters and batch-norm running statistics alike.
//!
//! ## Batch-norm running statistics
//!
//! Burn keeps a BatchNorm's running mean/var in a `RunningState`: a training forward pass
//! leaves its new value *pending* (per thread) and the next forward merges it, while module
//! visitors and mappers see the merged value only, one update behind. Everything here that
//! reads running statistics ([`ModelEma`], the saved live parameters) therefore reads a
//! [`Module::valid`] snapshot, which merges pending updates first; and [`ModelEma::apply`]
//! writes into such a snapshot, whose running states are its own (a `clone()` of a module
//! shares them with the original, so writing averages into it would overwrite the live
//! model's statistics).
//!
//! Gradients accumulated but not yet applied are not saved: save right after
//! [`GroupedOptimizer::step`] (the training loops save at the end of an epoch).

use crate::error::{Result, TrainError};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Gradients, Tensor, TensorData};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The three Ultralytics parameter groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamGroup {
    /// Convolution / linear weights: weight decay applies.
    Weight,
    /// Normalisation-layer weights (BatchNorm gamma): no decay.
    Norm,
    /// Biases (including BatchNorm beta): no decay; warm-up starts from `warmup_bias_lr`.
    Bias,
}

impl ParamGroup {
    /// Index 0, 1, 2 in [`GroupedOptimizer::lrs`].
    pub fn index(self) -> usize {
        match self {
            ParamGroup::Weight => 0,
            ParamGroup::Norm => 1,
            ParamGroup::Bias => 2,
        }
    }
}

#[derive(Default)]
struct Classifier {
    path: Vec<(String, String)>,
    out: HashMap<ParamId, ParamGroup>,
}

impl ModuleVisitor for Classifier {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self
            .path
            .last()
            .map(|p| p.0.to_ascii_lowercase())
            .unwrap_or_default();
        let in_norm = self
            .path
            .iter()
            .rev()
            .take(2)
            .any(|(_, t)| t.contains("Norm"));
        let g = if name.contains("bias") || name == "beta" {
            ParamGroup::Bias
        } else if in_norm || D == 1 {
            ParamGroup::Norm
        } else {
            ParamGroup::Weight
        };
        self.out.insert(param.id, g);
    }
}

/// Group of every float parameter of `module`: names containing `bias` (and `beta`) are
/// biases; other parameters of a `*Norm*` module, or any other 1-D parameter, are norm
/// weights; the rest are weights.
pub fn classify_params<M: Module>(module: &M) -> HashMap<ParamId, ParamGroup> {
    let mut c = Classifier::default();
    module.visit(&mut c);
    c.out
}

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    /// SGD with Nesterov momentum (PyTorch semantics, no dampening).
    Sgd,
    /// AdamW (decoupled weight decay), `beta1` = momentum, `beta2` = 0.999, eps 1e-8.
    AdamW,
}

/// Ultralytics `optimizer=auto`: SGD (lr 0.01, momentum 0.9) for runs longer than 10 000
/// iterations, else AdamW with `lr = 0.002·5 / (4 + nc)` rounded to 6 decimals and momentum 0.9.
/// (Ultralytics 8.4 picks its MuSGD for long runs; we use plain SGD there.) `iterations` is
/// `ceil(images / max(batch, 64)) · epochs`.
pub fn auto_optimizer(num_classes: usize, iterations: u64) -> (OptimizerKind, f64, f64) {
    if iterations > 10_000 {
        (OptimizerKind::Sgd, 0.01, 0.9)
    } else {
        let lr = (0.002 * 5.0 / (4.0 + num_classes as f64) * 1e6).round() / 1e6;
        (OptimizerKind::AdamW, lr, 0.9)
    }
}

/// Learning-rate factor of epoch `epoch` out of `epochs` ending at `lrf`: linear
/// `(1 − e/E)(1 − lrf) + lrf`, or cosine `((1 − cos(πe/E)) / 2)(lrf − 1) + 1`.
pub fn lr_factor(epoch: usize, epochs: usize, lrf: f64, cosine: bool) -> f64 {
    let x = epoch as f64;
    let e = epochs.max(1) as f64;
    if cosine {
        ((1.0 - (x * std::f64::consts::PI / e).cos()) / 2.0) * (lrf - 1.0) + 1.0
    } else {
        (1.0 - x / e).max(0.0) * (1.0 - lrf) + lrf
    }
}

/// Linear interpolation of `x` between `(0, y0)` and `(n, y1)`, clamped (NumPy `interp`).
pub fn interp(x: f64, n: f64, y0: f64, y1: f64) -> f64 {
    if n <= 0.0 || x >= n {
        y1
    } else if x <= 0.0 {
        y0
    } else {
        y0 + (y1 - y0) * x / n
    }
}

/// Warm-up iterations: `round(min(warmup_epochs, epochs − 1) · batches_per_epoch)`.
pub fn warmup_iterations(warmup_epochs: f64, epochs: usize, batches_per_epoch: usize) -> usize {
    let w = warmup_epochs.min(epochs.saturating_sub(1) as f64);
    if w > 0.0 {
        (w * batches_per_epoch as f64).round() as usize
    } else {
        0
    }
}

/// Optimiser hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimConfig {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Initial learning rate.
    pub lr0: f64,
    /// SGD momentum / Adam beta1.
    pub momentum: f64,
    /// Weight decay of the [`ParamGroup::Weight`] group (already scaled by the caller).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (Ultralytics: 10); `None` disables.
    pub max_grad_norm: Option<f64>,
}

/// Per-parameter optimiser state, flattened.
#[derive(Debug, Clone)]
struct State {
    m: Tensor<1>,
    v: Option<Tensor<1>>,
}

/// SGD/AdamW over the three parameter groups with accumulated gradients.
#[derive(Debug)]
pub struct GroupedOptimizer {
    config: OptimConfig,
    groups: HashMap<ParamId, ParamGroup>,
    state: HashMap<ParamId, State>,
    accum: HashMap<ParamId, Tensor<1>>,
    /// Current learning rate per group (weight, norm, bias).
    pub lrs: [f64; 3],
    /// Current momentum (SGD) / beta1 (AdamW).
    pub momentum: f64,
    steps: u64,
}

struct GradCollector<'a> {
    grads: &'a Gradients,
    accum: &'a mut HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for GradCollector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            let n = g.shape().num_elements();
            let g = g.reshape([n]);
            let entry = self.accum.remove(&param.id);
            self.accum.insert(
                param.id,
                match entry {
                    Some(prev) => prev + g,
                    None => g,
                },
            );
        }
    }
}

struct Updater<'a> {
    opt: &'a mut GroupedOptimizer,
    clip_scale: f32,
}

impl ModuleMapper for Updater<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.opt.accum.remove(&id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let n = shape.num_elements();
        let p = tensor.inner().reshape([n]);
        let grad = if self.clip_scale < 1.0 {
            grad * self.clip_scale
        } else {
            grad
        };
        let group = self
            .opt
            .groups
            .get(&id)
            .copied()
            .unwrap_or(ParamGroup::Weight);
        let lr = self.opt.lrs[group.index()];
        let wd = if group == ParamGroup::Weight {
            self.opt.config.weight_decay
        } else {
            0.0
        };
        let mom = self.opt.momentum;
        let t = self.opt.steps as i32;
        let updated = match self.opt.config.kind {
            OptimizerKind::Sgd => {
                let g = if wd > 0.0 {
                    grad + p.clone() * wd
                } else {
                    grad
                };
                let buf = match self.opt.state.remove(&id) {
                    Some(s) => s.m * mom + g.clone(),
                    None => g.clone(),
                };
                let step = g + buf.clone() * mom; // Nesterov
                self.opt.state.insert(id, State { m: buf, v: None });
                p - step * lr
            }
            OptimizerKind::AdamW => {
                let (b1, b2, eps) = (mom, 0.999f64, 1e-8f64);
                let p = if wd > 0.0 { p * (1.0 - lr * wd) } else { p };
                let (m, v) = match self.opt.state.remove(&id) {
                    Some(State { m, v: Some(v) }) => (
                        m * b1 + grad.clone() * (1.0 - b1),
                        v * b2 + grad.clone() * grad * (1.0 - b2),
                    ),
                    _ => (grad.clone() * (1.0 - b1), grad.clone() * grad * (1.0 - b2)),
                };
                let bc1 = 1.0 - b1.powi(t);
                let bc2 = 1.0 - b2.powi(t);
                let denom = (v.clone() / bc2).sqrt() + eps;
                let upd = (m.clone() / bc1) / denom * lr;
                self.opt.state.insert(id, State { m, v: Some(v) });
                p - upd
            }
        };
        let mut out = Tensor::from_inner(updated.reshape(shape));
        if require_grad {
            out = out.require_grad();
        }
        Param::from_mapped_value(id, out, mapper)
    }
}

impl GroupedOptimizer {
    /// A new optimiser for `module`'s parameters; all group learning rates start at `lr0`.
    pub fn new<M: Module>(config: OptimConfig, module: &M) -> Self {
        Self {
            config,
            groups: classify_params(module),
            state: HashMap::new(),
            accum: HashMap::new(),
            lrs: [config.lr0; 3],
            momentum: config.momentum,
            steps: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OptimConfig {
        &self.config
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Add the gradients of `module`'s parameters from a backward pass to the accumulator.
    pub fn accumulate<M: Module>(&mut self, module: &M, grads: &Gradients) {
        let mut c = GradCollector {
            grads,
            accum: &mut self.accum,
        };
        module.visit(&mut c);
    }

    /// Global L2 norm of the accumulated gradients.
    pub fn grad_norm(&self) -> f64 {
        let mut total = 0.0f64;
        for g in self.accum.values() {
            // a failed read-back (backend error) counts as NaN: no clipping rather than a panic
            let s = (g.clone() * g.clone())
                .sum()
                .try_into_scalar::<f32>()
                .unwrap_or(f32::NAN);
            total += f64::from(s);
        }
        total.sqrt()
    }

    /// Apply one update with the accumulated gradients (clipped to the configured global
    /// norm) and clear them. Returns the updated module.
    pub fn step<M: Module>(&mut self, module: M) -> M {
        if self.accum.is_empty() {
            return module;
        }
        let clip_scale = match self.config.max_grad_norm {
            Some(max) => {
                let norm = self.grad_norm();
                if norm > max {
                    (max / (norm + 1e-6)) as f32
                } else {
                    1.0
                }
            }
            None => 1.0,
        };
        self.steps += 1;
        let mut u = Updater {
            opt: self,
            clip_scale,
        };
        let out = module.map(&mut u);
        self.accum.clear();
        out
    }

    /// Set the learning rates and momentum for iteration `ni` of epoch `epoch`: during the
    /// `nw` warm-up iterations, bias lr goes from `warmup_bias_lr` and the others from 0 to
    /// `lr0·lf`, momentum from `warmup_momentum` to its target; afterwards all are `lr0·lf`.
    pub fn schedule(
        &mut self,
        ni: usize,
        nw: usize,
        lf: f64,
        warmup_bias_lr: f64,
        warmup_momentum: f64,
    ) {
        let target = self.config.lr0 * lf;
        if nw > 0 && ni <= nw {
            let (x, n) = (ni as f64, nw as f64);
            self.lrs = [
                interp(x, n, 0.0, target),
                interp(x, n, 0.0, target),
                interp(x, n, warmup_bias_lr, target),
            ];
            if self.config.kind == OptimizerKind::Sgd {
                self.momentum = interp(x, n, warmup_momentum, self.config.momentum);
            }
        } else {
            self.lrs = [target; 3];
            self.momentum = self.config.momentum;
        }
    }
}

struct EmaCollector<'a> {
    ema: &'a mut HashMap<ParamId, Tensor<1>>,
    decay: f64,
}

impl ModuleVisitor for EmaCollector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v = param.val().inner();
        let n = v.shape().num_elements();
        let v = v.reshape([n]);
        let e = match self.ema.remove(&param.id) {
            Some(prev) => prev * self.decay + v * (1.0 - self.decay),
            None => v,
        };
        self.ema.insert(param.id, e);
    }
}

struct EmaWriter<'a> {
    ema: &'a HashMap<ParamId, Tensor<1>>,
}

impl ModuleMapper for EmaWriter<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let out = match self.ema.get(&id) {
            Some(e) => {
                let v = e.clone().reshape(tensor.shape());
                if tensor.is_autodiff() {
                    Tensor::from_inner(v)
                } else {
                    v
                }
            }
            None => tensor,
        };
        Param::from_mapped_value(id, out, mapper)
    }
}

/// Exponential moving average of the model (Ultralytics `ModelEMA`): decay
/// `0.9999·(1 − exp(−updates / 2000))`, applied to every float entry of the model's state as
/// Ultralytics averages every floating-point `state_dict` entry: parameters and BatchNorm
/// running mean/var (read after merging their latest update, see the module docs).
#[derive(Debug, Default)]
pub struct ModelEma {
    ema: HashMap<ParamId, Tensor<1>>,
    /// Updates so far.
    pub updates: u64,
    /// Maximum decay (0.9999).
    pub max_decay: f64,
    /// Ramp time constant in updates (2000).
    pub tau: f64,
}

impl ModelEma {
    /// An EMA with Ultralytics' defaults, initialised from `module`.
    pub fn new<M: Module>(module: &M) -> Self {
        let mut e = Self {
            ema: HashMap::new(),
            updates: 0,
            max_decay: 0.9999,
            tau: 2000.0,
        };
        let mut c = EmaCollector {
            ema: &mut e.ema,
            decay: 0.0,
        };
        module.valid().visit(&mut c);
        e
    }

    /// Current decay for the next update.
    pub fn decay(&self) -> f64 {
        self.max_decay * (1.0 - (-(self.updates as f64) / self.tau).exp())
    }

    /// Fold the module's current parameters and running statistics (with their latest,
    /// still pending update) into the average.
    pub fn update<M: Module>(&mut self, module: &M) {
        self.updates += 1;
        let decay = self.decay();
        let mut c = EmaCollector {
            ema: &mut self.ema,
            decay,
        };
        module.valid().visit(&mut c);
    }

    /// A validation copy (no autodiff, see [`Module::valid`]) of `module` with the averaged
    /// parameters and running statistics. `module` itself is not changed.
    pub fn apply<M: Module>(&self, module: M) -> M {
        module.valid().map(&mut EmaWriter { ema: &self.ema })
    }
}

/// `weights/<name>.optim.safetensors` beside `weights/<name>.safetensors`: where the training
/// loops keep [`GroupedOptimizer::save_state`] output (`weights_path` is the weights file).
pub fn optim_state_path(weights_path: &Path) -> PathBuf {
    weights_path.with_extension("optim.safetensors")
}

/// `weights/<name>.ema.safetensors` beside `weights/<name>.safetensors`: where the training
/// loops keep [`ModelEma::save_state`] output.
pub fn ema_state_path(weights_path: &Path) -> PathBuf {
    weights_path.with_extension("ema.safetensors")
}

/// Path (`a.b.0.weight`) → id, shape and (optionally) value of every float parameter.
#[derive(Default)]
struct PathVisitor {
    stack: Vec<String>,
    ids: BTreeMap<String, (ParamId, Vec<usize>)>,
    values: Option<BTreeMap<String, Tensor<1>>>,
}

impl ModuleVisitor for PathVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.stack.join(".");
        let v = param.val();
        let shape = v.dims().to_vec();
        if let Some(values) = &mut self.values {
            let n = v.shape().num_elements();
            values.insert(path.clone(), v.inner().reshape([n]));
        }
        self.ids.insert(path, (param.id, shape));
    }
}

/// Visits a [`Module::valid`] snapshot (same ids and paths) so that running statistics are
/// read with their pending update merged.
fn param_paths<M: Module>(module: &M, with_values: bool) -> PathVisitor {
    let mut v = PathVisitor {
        values: with_values.then(BTreeMap::new),
        ..Default::default()
    };
    module.valid().visit(&mut v);
    v
}

/// Replaces parameters by path with saved values (same number of elements), on the
/// parameter's own device, keeping `require_grad`.
struct PathWriter<'a> {
    stack: Vec<String>,
    values: &'a BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl ModuleMapper for PathWriter<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some((_, data)) = self.values.get(&self.stack.join(".")) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let inner = tensor.inner();
        let device = inner.device();
        let fresh = Tensor::<1>::from_data(TensorData::new(data.clone(), [data.len()]), &device)
            .reshape(shape);
        let mut out = Tensor::from_inner(fresh);
        if require_grad {
            out = out.require_grad();
        }
        Param::from_mapped_value(id, out, mapper)
    }
}

fn to_vec(t: &Tensor<1>) -> Result<Vec<f32>> {
    t.clone()
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::Data(format!("{e:?}")))
}

fn state_io(path: &Path, source: impl Into<TrainError>) -> TrainError {
    TrainError::State {
        path: path.to_path_buf(),
        source: Box::new(source.into()),
    }
}

/// Serialises named f32 tensors plus string metadata as safetensors.
fn encode(
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    use safetensors::tensor::TensorView;
    let raw: Vec<(&String, Vec<u8>, &Vec<usize>)> = tensors
        .iter()
        .map(|(k, (shape, data))| {
            (
                k,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                shape,
            )
        })
        .collect();
    let mut views = Vec::with_capacity(raw.len());
    for (name, bytes, shape) in &raw {
        let view = TensorView::new(safetensors::Dtype::F32, (*shape).clone(), bytes).map_err(
            |source| TrainError::Safetensors {
                what: (*name).clone(),
                source,
            },
        )?;
        views.push(((*name).clone(), view));
    }
    safetensors::serialize(views, Some(metadata)).map_err(|source| TrainError::Safetensors {
        what: "cannot serialise state".into(),
        source,
    })
}

type Decoded = (
    BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    HashMap<String, String>,
);

/// Reads f32 tensors and metadata written by [`encode`].
fn decode(bytes: &[u8]) -> std::result::Result<Decoded, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(format!("tensor {name} is {:?}, expected F32", view.dtype()));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok((out, metadata))
}

fn meta_get<T: std::str::FromStr>(meta: &HashMap<String, String>, key: &str) -> Result<T> {
    meta.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| TrainError::Data(format!("saved state lacks a valid `{key}`")))
}

fn check_format(meta: &HashMap<String, String>, expected: &str) -> Result<()> {
    match meta.get("format") {
        Some(f) if f == expected => Ok(()),
        other => Err(TrainError::Data(format!(
            "saved state format is {other:?}, expected {expected}"
        ))),
    }
}

/// Splits `prefix/<path>` entries, checking each path exists in `ids` with `numel` elements.
fn by_prefix<'a>(
    tensors: &'a BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    prefix: &str,
    ids: &BTreeMap<String, (ParamId, Vec<usize>)>,
) -> Result<Vec<(ParamId, &'a str, &'a Vec<f32>)>> {
    let mut out = Vec::new();
    for (name, (_, data)) in tensors {
        let Some(path) = name.strip_prefix(prefix) else {
            continue;
        };
        let (id, shape) = ids.get(path).ok_or_else(|| {
            TrainError::Shape(format!(
                "saved state has `{path}`, which this model does not have"
            ))
        })?;
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            return Err(TrainError::Shape(format!(
                "saved state `{path}` has {} values, the model's parameter {shape:?} has {numel}",
                data.len()
            )));
        }
        out.push((*id, path, data));
    }
    Ok(out)
}

impl GroupedOptimizer {
    /// The optimiser state of `module` (the model being trained, so that parameters can be
    /// named by path) and its live parameter values, as safetensors bytes (see the module
    /// docs for the layout).
    pub fn state_to_bytes<M: Module>(&self, module: &M) -> Result<Vec<u8>> {
        let paths = param_paths(module, true);
        let mut tensors = BTreeMap::new();
        if let Some(values) = &paths.values {
            for (path, v) in values {
                let shape = paths.ids[path].1.clone();
                tensors.insert(format!("param/{path}"), (shape, to_vec(v)?));
            }
        }
        for (path, (id, _)) in &paths.ids {
            if let Some(s) = self.state.get(id) {
                let m = to_vec(&s.m)?;
                tensors.insert(format!("m/{path}"), (vec![m.len()], m));
                if let Some(v) = &s.v {
                    let v = to_vec(v)?;
                    tensors.insert(format!("v/{path}"), (vec![v.len()], v));
                }
            }
        }
        let kind = match self.config.kind {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::AdamW => "adamw",
        };
        let metadata: HashMap<String, String> = [
            ("format", "sightline-optim/1".to_string()),
            ("kind", kind.to_string()),
            ("steps", self.steps.to_string()),
            ("lr_weight", self.lrs[0].to_string()),
            ("lr_norm", self.lrs[1].to_string()),
            ("lr_bias", self.lrs[2].to_string()),
            ("momentum", self.momentum.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        encode(&tensors, metadata)
    }

    /// Restores state written by [`Self::state_to_bytes`] into this optimiser (built with
    /// [`GroupedOptimizer::new`] for `module`, same [`OptimizerKind`]) and returns `module` with
    /// the saved live parameters. Fails, changing nothing, on another format or kind, or a
    /// parameter path or size the model does not have.
    pub fn state_from_bytes<M: Module>(&mut self, module: M, bytes: &[u8]) -> Result<M> {
        let (tensors, meta) = decode(bytes).map_err(TrainError::Data)?;
        check_format(&meta, "sightline-optim/1")?;
        let kind = match meta.get("kind").map(String::as_str) {
            Some("sgd") => OptimizerKind::Sgd,
            Some("adamw") => OptimizerKind::AdamW,
            other => {
                return Err(TrainError::Data(format!(
                    "saved optimiser kind {other:?} is not sgd or adamw"
                )));
            }
        };
        if kind != self.config.kind {
            return Err(TrainError::Config(format!(
                "the saved optimiser is {kind:?}, this run uses {:?}",
                self.config.kind
            )));
        }
        let steps: u64 = meta_get(&meta, "steps")?;
        let lrs = [
            meta_get(&meta, "lr_weight")?,
            meta_get(&meta, "lr_norm")?,
            meta_get(&meta, "lr_bias")?,
        ];
        let momentum: f64 = meta_get(&meta, "momentum")?;
        let paths = param_paths(&module, true);
        let params = by_prefix(&tensors, "param/", &paths.ids)?;
        let ms = by_prefix(&tensors, "m/", &paths.ids)?;
        let vs: HashMap<ParamId, &Vec<f32>> = by_prefix(&tensors, "v/", &paths.ids)?
            .into_iter()
            .map(|(id, _, v)| (id, v))
            .collect();
        let device = |path: &str| {
            paths
                .values
                .as_ref()
                .and_then(|v| v.get(path))
                .map(|t| t.device())
        };
        let mut state = HashMap::new();
        for (id, path, m) in ms {
            let Some(d) = device(path) else { continue };
            let up =
                |x: &Vec<f32>| Tensor::<1>::from_data(TensorData::new(x.clone(), [x.len()]), &d);
            let v = vs.get(&id).map(|v| up(v));
            if kind == OptimizerKind::AdamW && v.is_none() {
                return Err(TrainError::Data(format!(
                    "saved AdamW state lacks the second moment of `{path}`"
                )));
            }
            state.insert(id, State { m: up(m), v });
        }
        let values: BTreeMap<String, (Vec<usize>, Vec<f32>)> = params
            .into_iter()
            .map(|(_, path, v)| (path.to_string(), (Vec::new(), v.clone())))
            .collect();
        let module = module.map(&mut PathWriter {
            stack: Vec::new(),
            values: &values,
        });
        self.groups = classify_params(&module);
        self.state = state;
        self.accum.clear();
        self.steps = steps;
        self.lrs = lrs;
        self.momentum = momentum;
        Ok(module)
    }

    /// Writes [`Self::state_to_bytes`] atomically to `path` (by convention
    /// [`optim_state_path`] of `weights/last.safetensors`).
    pub fn save_state<M: Module>(&self, module: &M, path: &Path) -> Result<()> {
        let bytes = self.state_to_bytes(module)?;
        crate::experiment::write_atomic(path, &bytes)
    }

    /// Reads a file written by [`Self::save_state`]; see [`Self::state_from_bytes`]. Returns
    /// `module` with the saved live parameters.
    pub fn load_state<M: Module>(&mut self, module: M, path: &Path) -> Result<M> {
        let bytes = fs_err::read(path).map_err(|e| state_io(path, e))?;
        self.state_from_bytes(module, &bytes)
            .map_err(|e| state_io(path, e))
    }
}

impl ModelEma {
    /// The averaged parameters (named by their path in `module`, the model being trained) and
    /// the update count, as safetensors bytes.
    pub fn state_to_bytes<M: Module>(&self, module: &M) -> Result<Vec<u8>> {
        let paths = param_paths(module, false);
        let mut tensors = BTreeMap::new();
        for (path, (id, _)) in &paths.ids {
            if let Some(e) = self.ema.get(id) {
                let e = to_vec(e)?;
                tensors.insert(format!("ema/{path}"), (vec![e.len()], e));
            }
        }
        let metadata: HashMap<String, String> = [
            ("format", "sightline-ema/1".to_string()),
            ("updates", self.updates.to_string()),
            ("max_decay", self.max_decay.to_string()),
            ("tau", self.tau.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        encode(&tensors, metadata)
    }

    /// Restores state written by [`Self::state_to_bytes`]; `module` is the model being trained
    /// (after its parameters were restored), used to map paths to parameters.
    pub fn state_from_bytes<M: Module>(&mut self, module: &M, bytes: &[u8]) -> Result<()> {
        let (tensors, meta) = decode(bytes).map_err(TrainError::Data)?;
        check_format(&meta, "sightline-ema/1")?;
        let updates = meta_get(&meta, "updates")?;
        let max_decay = meta_get(&meta, "max_decay")?;
        let tau = meta_get(&meta, "tau")?;
        let paths = param_paths(module, true);
        let mut ema = HashMap::new();
        for (id, path, e) in by_prefix(&tensors, "ema/", &paths.ids)? {
            let Some(d) = paths
                .values
                .as_ref()
                .and_then(|v| v.get(path))
                .map(|t| t.device())
            else {
                continue;
            };
            ema.insert(
                id,
                Tensor::<1>::from_data(TensorData::new(e.clone(), [e.len()]), &d),
            );
        }
        // parameters the file does not cover keep their current average
        for (id, t) in ema {
            self.ema.insert(id, t);
        }
        self.updates = updates;
        self.max_decay = max_decay;
        self.tau = tau;
        Ok(())
    }

    /// Writes [`Self::state_to_bytes`] atomically to `path` (by convention
    /// [`ema_state_path`] of `weights/last.safetensors`).
    pub fn save_state<M: Module>(&self, module: &M, path: &Path) -> Result<()> {
        let bytes = self.state_to_bytes(module)?;
        crate::experiment::write_atomic(path, &bytes)
    }

    /// Reads a file written by [`Self::save_state`]; see [`Self::state_from_bytes`].
    pub fn load_state<M: Module>(&mut self, module: &M, path: &Path) -> Result<()> {
        let bytes = fs_err::read(path).map_err(|e| state_io(path, e))?;
        self.state_from_bytes(module, &bytes)
            .map_err(|e| state_io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    #[derive(Module, Debug)]
    struct Net {
        fc: Linear,
        bn: BatchNorm,
    }

    fn t1(v: f32, d: &Device) -> Tensor<1> {
        Tensor::from_data(TensorData::new(vec![v], [1]), d)
    }

    /// A 1→1 linear layer `y = w·x + b` with given values.
    fn lin(w: f32, b: f32, d: &Device) -> Linear {
        Linear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(vec![w], [1, 1]), d))
                .set_require_grad(true),
            bias: Some(Param::from_tensor(t1(b, d)).set_require_grad(true)),
        }
    }

    fn wb(l: &Linear) -> (f32, f32) {
        let w = l
            .weight
            .val()
            .inner()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()[0];
        let b = l
            .bias
            .as_ref()
            .unwrap()
            .val()
            .inner()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()[0];
        (w, b)
    }

    /// loss = sum(w·x + b): dL/dw = x, dL/db = 1
    fn grads(l: &Linear, x: f32, d: &Device) -> Gradients {
        let input = Tensor::<2>::from_data(TensorData::new(vec![x], [1, 1]), d);
        l.forward(input).sum().backward()
    }

    #[test]
    fn groups_follow_ultralytics() {
        let d = Device::flex();
        let net = Net {
            fc: LinearConfig::new(3, 2).init(&d),
            bn: BatchNormConfig::new(2).init(&d),
        };
        let g = classify_params(&net);
        // (BatchNorm running statistics are visited too; they never have gradients)
        assert_eq!(g[&net.fc.weight.id], ParamGroup::Weight);
        assert_eq!(g[&net.fc.bias.as_ref().unwrap().id], ParamGroup::Bias);
        assert_eq!(g[&net.bn.gamma.id], ParamGroup::Norm);
        assert_eq!(g[&net.bn.beta.id], ParamGroup::Bias);
    }

    #[test]
    fn sgd_nesterov_two_steps_by_hand() {
        let d = Device::flex().autodiff();
        let (lr, mom, wd) = (0.1f64, 0.9f64, 0.01f64);
        let cfg = OptimConfig {
            kind: OptimizerKind::Sgd,
            lr0: lr,
            momentum: mom,
            weight_decay: wd,
            max_grad_norm: None,
        };
        let mut l = lin(1.0, 0.5, &d);
        let mut opt = GroupedOptimizer::new(cfg, &l);
        let (mut w, mut b) = (1.0f64, 0.5f64);
        let (mut bw, mut bb) = (0.0f64, 0.0f64);
        for step in 0..2 {
            let g = grads(&l, 2.0, &d);
            opt.accumulate(&l, &g);
            l = opt.step(l);
            // hand: weight decays, bias does not
            let gw = 2.0 + wd * w;
            let gb = 1.0;
            bw = if step == 0 { gw } else { mom * bw + gw };
            bb = if step == 0 { gb } else { mom * bb + gb };
            w -= lr * (gw + mom * bw);
            b -= lr * (gb + mom * bb);
            let (gw_, gb_) = wb(&l);
            assert!(
                (f64::from(gw_) - w).abs() < 1e-6,
                "step {step}: {gw_} vs {w}"
            );
            assert!(
                (f64::from(gb_) - b).abs() < 1e-6,
                "step {step}: {gb_} vs {b}"
            );
        }
        assert_eq!(opt.steps(), 2);
    }

    #[test]
    fn adamw_first_step_by_hand_and_accumulation() {
        let d = Device::flex().autodiff();
        let cfg = OptimConfig {
            kind: OptimizerKind::AdamW,
            lr0: 0.01,
            momentum: 0.9,
            weight_decay: 0.1,
            max_grad_norm: None,
        };
        let mut l = lin(2.0, -1.0, &d);
        let mut opt = GroupedOptimizer::new(cfg, &l);
        // two accumulated backward passes: grads 3 + 3 = 6 for w, 2 for b
        opt.accumulate(&l, &grads(&l, 3.0, &d));
        opt.accumulate(&l, &grads(&l, 3.0, &d));
        assert!((opt.grad_norm() - (36.0f64 + 4.0).sqrt()).abs() < 1e-4);
        l = opt.step(l);
        // first Adam step moves by lr·g/(|g| + eps) = lr; decoupled decay on the weight only
        let (w, b) = wb(&l);
        assert!(
            (f64::from(w) - (2.0 * (1.0 - 0.01 * 0.1) - 0.01)).abs() < 1e-6,
            "{w}"
        );
        assert!((f64::from(b) - (-1.0 - 0.01)).abs() < 1e-6, "{b}");
        assert_eq!(opt.grad_norm(), 0.0);
    }

    #[test]
    fn global_norm_clipping() {
        let d = Device::flex().autodiff();
        let cfg = OptimConfig {
            kind: OptimizerKind::Sgd,
            lr0: 1.0,
            momentum: 0.0,
            weight_decay: 0.0,
            max_grad_norm: Some(10.0),
        };
        let mut l = lin(0.0, 0.0, &d);
        let mut opt = GroupedOptimizer::new(cfg, &l);
        opt.accumulate(&l, &grads(&l, 300.0, &d));
        l = opt.step(l);
        let norm = (300.0f64 * 300.0 + 1.0).sqrt();
        let (w, b) = wb(&l);
        assert!((f64::from(w) + 300.0 * 10.0 / norm).abs() < 1e-3, "{w}");
        assert!((f64::from(b) + 10.0 / norm).abs() < 1e-5, "{b}");
    }

    #[test]
    fn schedules_and_auto_choice() {
        assert_eq!(lr_factor(0, 30, 0.01, false), 1.0);
        assert!((lr_factor(30, 30, 0.01, false) - 0.01).abs() < 1e-12);
        assert!((lr_factor(15, 30, 0.01, false) - 0.505).abs() < 1e-12);
        assert!((lr_factor(15, 30, 0.01, true) - 0.505).abs() < 1e-12);
        assert!((lr_factor(30, 30, 0.01, true) - 0.01).abs() < 1e-12);
        assert_eq!(warmup_iterations(3.0, 30, 15), 45);
        assert_eq!(warmup_iterations(3.0, 2, 15), 15);
        assert_eq!(warmup_iterations(3.0, 1, 15), 0);
        // widgets-a: 3 classes, 240 images, batch 16, 30 epochs -> ceil(240/64)·30 = 120 iterations
        assert_eq!(
            auto_optimizer(3, 120),
            (OptimizerKind::AdamW, 0.001429, 0.9)
        );
        assert_eq!(auto_optimizer(80, 20_000).0, OptimizerKind::Sgd);

        let d = Device::flex();
        let cfg = OptimConfig {
            kind: OptimizerKind::Sgd,
            lr0: 0.01,
            momentum: 0.937,
            weight_decay: 0.0,
            max_grad_norm: None,
        };
        let mut opt = GroupedOptimizer::new(cfg, &lin(0.0, 0.0, &d));
        opt.schedule(0, 100, 1.0, 0.1, 0.8);
        assert_eq!(opt.lrs, [0.0, 0.0, 0.1]);
        assert!((opt.momentum - 0.8).abs() < 1e-12);
        opt.schedule(50, 100, 1.0, 0.1, 0.8);
        assert!((opt.lrs[0] - 0.005).abs() < 1e-12 && (opt.lrs[2] - 0.055).abs() < 1e-12);
        assert!((opt.momentum - 0.8685).abs() < 1e-12);
        opt.schedule(150, 100, 0.5, 0.1, 0.8);
        assert_eq!(opt.lrs, [0.005; 3]);
        assert_eq!(opt.momentum, 0.937);
    }

    #[test]
    fn ema_follows_the_ramped_decay() {
        let d = Device::flex();
        let start = lin(1.0, 0.0, &d);
        let mut ema = ModelEma::new(&start);
        // the same parameters (same ids) after training moved them
        let moved = Linear {
            weight: Param::initialized(
                start.weight.id,
                Tensor::from_data(TensorData::new(vec![3.0f32], [1, 1]), &d),
            ),
            bias: Some(Param::initialized(
                start.bias.as_ref().unwrap().id,
                t1(2.0, &d),
            )),
        };
        ema.update(&moved);
        let dcy = 0.9999 * (1.0 - (-1.0f64 / 2000.0).exp());
        let out = ema.apply(moved);
        let (w, b) = wb(&out);
        assert!(
            (f64::from(w) - (dcy * 1.0 + (1.0 - dcy) * 3.0)).abs() < 1e-5,
            "{w}"
        );
        assert!((f64::from(b) - (1.0 - dcy) * 2.0).abs() < 1e-5, "{b}");
    }
}
