//! [`ModelEma`] and the saved training state with batch-norm running statistics: the EMA
//! averages them (with the latest, still pending, update merged), applying the EMA leaves the
//! live model's statistics alone, and N steps straight equal N/2 steps + save + restore into
//! fresh objects + N/2 steps bit for bit (parameters, running statistics and EMA).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use sightline_train::optim::{GroupedOptimizer, ModelEma, OptimConfig, OptimizerKind};
use std::collections::BTreeMap;

#[derive(Module, Debug)]
struct Net {
    conv: Conv2d,
    bn: BatchNorm,
    fc: Linear,
}

impl Net {
    fn new(seed: u64, d: &Device) -> Self {
        d.seed(seed);
        Self {
            conv: Conv2dConfig::new([3, 4], [3, 3]).init(d),
            bn: BatchNormConfig::new(4).with_momentum(0.03).init(d),
            fc: LinearConfig::new(4, 2).init(d),
        }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let h = relu(self.bn.forward(self.conv.forward(x)));
        let [n, c, _, _] = h.dims();
        self.fc.forward(h.mean_dim(3).mean_dim(2).reshape([n, c]))
    }
}

/// A deterministic batch of 4 images of 3×5×5 for step `step`.
fn input(step: usize, d: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..4 * 3 * 5 * 5)
        .map(|i| ((i * 7 + step * 13) % 17) as f32 / 4.0 - 2.0 + step as f32 * 0.1)
        .collect();
    Tensor::from_data(TensorData::new(v, [4, 3, 5, 5]), d)
}

fn train_step(
    net: Net,
    opt: &mut GroupedOptimizer,
    ema: &mut ModelEma,
    step: usize,
    d: &Device,
) -> Net {
    let y = net.forward(input(step, d));
    let loss = (y.clone() * y).mean();
    let g = loss.backward();
    opt.accumulate(&net, &g);
    let net = opt.step(net);
    ema.update(&net);
    net
}

/// Every float entry (parameters and running statistics) by path, as bits.
#[derive(Default)]
struct Values {
    stack: Vec<String>,
    out: BTreeMap<String, Vec<u32>>,
}

impl ModuleVisitor for Values {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v = param
            .val()
            .inner()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        self.out.insert(
            self.stack.join("."),
            v.into_iter().map(f32::to_bits).collect(),
        );
    }
}

/// All entries of a module whose pending running-statistics updates are merged (`valid`).
fn values(net: &Net) -> BTreeMap<String, Vec<u32>> {
    let mut v = Values::default();
    net.valid().visit(&mut v);
    v.out
}

fn floats(bits: &[u32]) -> Vec<f32> {
    bits.iter().map(|b| f32::from_bits(*b)).collect()
}

fn cfg(kind: OptimizerKind) -> OptimConfig {
    OptimConfig {
        kind,
        lr0: 0.05,
        momentum: 0.9,
        weight_decay: 0.01,
        max_grad_norm: Some(10.0),
    }
}

#[test]
fn ema_averages_running_statistics_with_their_latest_update() {
    let d = Device::flex().autodiff();
    let net = Net::new(1, &d);
    let mut ema = ModelEma::new(&net);
    let mut opt = GroupedOptimizer::new(cfg(OptimizerKind::Sgd), &net);
    // one training forward: the new running mean/var are pending in the RunningStates
    let net = train_step(net, &mut opt, &mut ema, 0, &d);
    let live = values(&net);
    let mean = floats(&live["bn.running_mean"]);
    let var = floats(&live["bn.running_var"]);
    assert!(mean.iter().all(|m| *m != 0.0), "the forward moved the mean");
    let dcy = 0.9999 * (1.0 - (-1.0f64 / 2000.0).exp());
    let averaged = values(&ema.apply(net.clone()));
    for (name, init, now) in [
        ("bn.running_mean", 0.0f64, &mean),
        ("bn.running_var", 1.0f64, &var),
    ] {
        let got = floats(&averaged[name]);
        for (g, n) in got.iter().zip(now.iter()) {
            let want = dcy * init + (1.0 - dcy) * f64::from(*n);
            assert!(
                (f64::from(*g) - want).abs() < 1e-6,
                "{name}: EMA {g}, expected {want} (live {n})"
            );
        }
    }
    // applying the EMA did not touch the live model's statistics
    assert_eq!(values(&net)["bn.running_mean"], live["bn.running_mean"]);
    assert_eq!(values(&net)["bn.running_var"], live["bn.running_var"]);
}

fn straight_vs_resumed(kind: OptimizerKind) {
    let d = Device::flex().autodiff();
    let (n, half) = (8, 4);
    let run =
        |from: usize, to: usize, mut net: Net, opt: &mut GroupedOptimizer, ema: &mut ModelEma| {
            for step in from..to {
                net = train_step(net, opt, ema, step, &d);
            }
            net
        };
    // straight
    let net = Net::new(1, &d);
    let mut opt = GroupedOptimizer::new(cfg(kind), &net);
    let mut ema = ModelEma::new(&net);
    let net = run(0, half, net, &mut opt, &mut ema);
    // the state at N/2, saved exactly as the training loops do
    let opt_bytes = opt.state_to_bytes(&net).unwrap();
    let ema_bytes = ema.state_to_bytes(&net).unwrap();
    let net_a = run(half, n, net, &mut opt, &mut ema);
    let (live_a, ema_a) = (values(&net_a), values(&ema.apply(net_a.clone())));

    // resumed into fresh objects: other initial values, other ParamIds
    let fresh = Net::new(77, &d);
    let mut opt_b = GroupedOptimizer::new(cfg(kind), &fresh);
    let fresh = opt_b.state_from_bytes(fresh, &opt_bytes).unwrap();
    let mut ema_b = ModelEma::new(&fresh);
    ema_b.state_from_bytes(&fresh, &ema_bytes).unwrap();
    assert_eq!(ema_b.updates, half as u64);
    let net_b = run(half, n, fresh, &mut opt_b, &mut ema_b);
    let (live_b, ema_b) = (values(&net_b), values(&ema_b.apply(net_b.clone())));

    assert!(live_a.contains_key("bn.running_var") && ema_a.contains_key("bn.running_mean"));
    assert_eq!(
        live_a.keys().collect::<Vec<_>>(),
        live_b.keys().collect::<Vec<_>>()
    );
    for (name, a) in &live_a {
        assert_eq!(
            floats(a),
            floats(&live_b[name]),
            "{kind:?}: live `{name}` differs after resume"
        );
    }
    for (name, a) in &ema_a {
        assert_eq!(
            floats(a),
            floats(&ema_b[name]),
            "{kind:?}: EMA `{name}` differs after resume"
        );
    }
    // the EMA's statistics are an average, not a copy of the live ones
    assert_ne!(ema_a["bn.running_var"], live_a["bn.running_var"]);
}

#[test]
fn sgd_straight_equals_resumed_bit_for_bit_with_batch_norm() {
    straight_vs_resumed(OptimizerKind::Sgd);
}

#[test]
fn adamw_straight_equals_resumed_bit_for_bit_with_batch_norm() {
    straight_vs_resumed(OptimizerKind::AdamW);
}
