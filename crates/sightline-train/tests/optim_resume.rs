//! Optimiser + EMA state saved after `k` steps and restored into freshly built objects (new
//! parameter ids, different initial values) continue exactly like the uninterrupted run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use sightline_train::optim::{
    GroupedOptimizer, ModelEma, OptimConfig, OptimizerKind, ema_state_path, optim_state_path,
};

#[derive(Module, Debug)]
struct Net {
    layers: Vec<Linear>,
}

impl Net {
    fn new(seed: u64, d: &Device) -> Self {
        d.seed(seed);
        Self {
            layers: vec![
                LinearConfig::new(4, 8).init(d),
                LinearConfig::new(8, 3).init(d),
            ],
        }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = relu(self.layers[0].forward(x));
        self.layers[1].forward(h)
    }
}

fn input(step: usize, d: &Device) -> Tensor<2> {
    let v: Vec<f32> = (0..8)
        .map(|i| ((i * 7 + step * 3) % 11) as f32 / 5.0 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(v, [2, 4]), d)
}

fn train_step(
    net: Net,
    opt: &mut GroupedOptimizer,
    ema: &mut ModelEma,
    step: usize,
    d: &Device,
) -> Net {
    let y = net.forward(input(step, d));
    let loss = (y.clone() * y).sum();
    let g = loss.backward();
    opt.accumulate(&net, &g);
    let net = opt.step(net);
    ema.update(&net);
    net
}

fn values(net: &Net) -> Vec<f32> {
    let mut out = Vec::new();
    for l in &net.layers {
        out.extend(
            l.weight
                .val()
                .inner()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap(),
        );
        if let Some(b) = &l.bias {
            out.extend(b.val().inner().into_data().try_into_vec::<f32>().unwrap());
        }
    }
    out
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-6, "{what}[{i}]: {x} vs {y}");
    }
}

fn check(kind: OptimizerKind) {
    let d = Device::flex().autodiff();
    let cfg = OptimConfig {
        kind,
        lr0: 0.05,
        momentum: 0.9,
        weight_decay: 0.01,
        max_grad_norm: Some(10.0),
    };
    let k = 3;
    let mut net = Net::new(1, &d);
    let mut opt = GroupedOptimizer::new(cfg, &net);
    opt.lrs = [0.04, 0.03, 0.02];
    opt.momentum = 0.85;
    let mut ema = ModelEma::new(&net);
    for step in 0..k {
        net = train_step(net, &mut opt, &mut ema, step, &d);
    }
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("weights").join("last.safetensors");
    let (opath, epath) = (optim_state_path(&weights), ema_state_path(&weights));
    assert!(opath.ends_with("weights/last.optim.safetensors"));
    assert!(epath.ends_with("weights/last.ema.safetensors"));
    opt.save_state(&net, &opath).unwrap();
    ema.save_state(&net, &epath).unwrap();

    // uninterrupted
    let net_a = train_step(net, &mut opt, &mut ema, k, &d);
    let ema_a = values(&ema.apply(net_a.clone()));

    // fresh objects: other initial values, other ParamIds
    let fresh = Net::new(99, &d);
    let mut opt_b = GroupedOptimizer::new(cfg, &fresh);
    let fresh = opt_b.load_state(fresh, &opath).unwrap();
    assert_eq!(opt_b.steps(), k as u64);
    assert_eq!(opt_b.lrs, [0.04, 0.03, 0.02]);
    assert_eq!(opt_b.momentum, 0.85);
    let mut ema_b = ModelEma::new(&fresh);
    ema_b.load_state(&fresh, &epath).unwrap();
    assert_eq!(ema_b.updates, k as u64);
    let net_b = train_step(fresh, &mut opt_b, &mut ema_b, k, &d);

    assert_close(&values(&net_b), &values(&net_a), "params");
    assert_close(&values(&ema_b.apply(net_b)), &ema_a, "ema");
}

#[test]
fn sgd_state_round_trip_continues_exactly() {
    check(OptimizerKind::Sgd);
}

#[test]
fn adamw_state_round_trip_continues_exactly() {
    check(OptimizerKind::AdamW);
}

#[test]
fn mismatched_state_is_refused() {
    let d = Device::flex().autodiff();
    let cfg = OptimConfig {
        kind: OptimizerKind::Sgd,
        lr0: 0.01,
        momentum: 0.9,
        weight_decay: 0.0,
        max_grad_norm: None,
    };
    let net = Net::new(1, &d);
    let opt = GroupedOptimizer::new(cfg, &net);
    let bytes = opt.state_to_bytes(&net).unwrap();
    // another kind
    let mut adam = GroupedOptimizer::new(
        OptimConfig {
            kind: OptimizerKind::AdamW,
            ..cfg
        },
        &net,
    );
    assert!(adam.state_from_bytes(Net::new(2, &d), &bytes).is_err());
    // another architecture (a layer's shape differs)
    let other = Net {
        layers: vec![
            LinearConfig::new(4, 5).init(&d),
            LinearConfig::new(5, 3).init(&d),
        ],
    };
    let mut o2 = GroupedOptimizer::new(cfg, &other);
    let err = o2.state_from_bytes(other, &bytes).unwrap_err().to_string();
    assert!(err.contains("layers.0."), "{err}");
    // not a state file
    let mut o3 = GroupedOptimizer::new(cfg, &net);
    assert!(o3.state_from_bytes(Net::new(3, &d), b"nonsense").is_err());
    let missing = tempfile::tempdir()
        .unwrap()
        .path()
        .join("none.optim.safetensors");
    let err = o3
        .load_state(Net::new(3, &d), &missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("none.optim.safetensors"), "{err}");
}
