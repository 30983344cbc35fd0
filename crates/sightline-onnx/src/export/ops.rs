//! Layer-level helpers shared by the exporters: a convolution node with its initializers, the
//! activations in the form PyTorch's ONNX exporter writes them, and shape-generic reshapes.

use super::fold::ConvParams;
use super::graph::{Attr, GraphBuilder};

/// Activation after a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None.
    Identity,
    /// `x · sigmoid(x)` as `Sigmoid` + `Mul` (how torch exports `nn.SiLU`).
    Silu,
    /// `Relu`.
    Relu,
    /// `HardSwish` (opset 14).
    Hardswish,
}

/// Geometry of a convolution node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Stride (both axes).
    pub stride: usize,
    /// Padding on every side.
    pub pad: usize,
    /// Groups.
    pub groups: usize,
    /// Dilation (both axes).
    pub dilation: usize,
}

impl ConvGeometry {
    /// Stride `s`, "same" padding `k / 2`, one group.
    pub fn same(k: usize, s: usize) -> Self {
        Self {
            stride: s,
            pad: k / 2,
            groups: 1,
            dilation: 1,
        }
    }
}

/// Emits `Conv(x, W, B)` with the weights stored as initializers `<wname>.weight` / `.bias`
/// under `scope` (`/model.0/conv`), then the activation under `act_scope`.
#[allow(clippy::too_many_arguments)] // one argument per part of the node
pub fn conv(
    g: &mut GraphBuilder,
    scope: &str,
    act_scope: &str,
    x: &str,
    wname: &str,
    p: &ConvParams,
    geo: ConvGeometry,
    act: Activation,
) -> String {
    let w = g.weight(&format!("{wname}.weight"), &p.shape, &p.weight);
    let b = g.weight(&format!("{wname}.bias"), &[p.shape[0]], &p.bias);
    let k = p.shape[2] as i64;
    let kw = p.shape[3] as i64;
    let pad = geo.pad as i64;
    let s = geo.stride as i64;
    let d = geo.dilation as i64;
    let y = g.node(
        scope,
        "Conv",
        &[x, &w, &b],
        vec![
            ("dilations", Attr::Ints(vec![d, d])),
            ("group", Attr::Int(geo.groups as i64)),
            ("kernel_shape", Attr::Ints(vec![k, kw])),
            ("pads", Attr::Ints(vec![pad, pad, pad, pad])),
            ("strides", Attr::Ints(vec![s, s])),
        ],
    );
    activation(g, act_scope, &y, act)
}

/// Applies an activation.
pub fn activation(g: &mut GraphBuilder, scope: &str, x: &str, act: Activation) -> String {
    match act {
        Activation::Identity => x.to_string(),
        Activation::Silu => {
            let s = g.node(scope, "Sigmoid", &[x], vec![]);
            g.node(scope, "Mul", &[x, &s], vec![])
        }
        Activation::Relu => g.node(scope, "Relu", &[x], vec![]),
        Activation::Hardswish => g.node(scope, "HardSwish", &[x], vec![]),
    }
}

/// `Reshape(x, shape)` with a constant int64 shape (`0` copies, `-1` infers).
pub fn reshape(g: &mut GraphBuilder, scope: &str, x: &str, shape: &[i64]) -> String {
    let s = g.const_i64(&[shape.len()], shape);
    g.node(scope, "Reshape", &[x, &s], vec![])
}

/// `Concat(xs, axis)`.
pub fn concat(g: &mut GraphBuilder, scope: &str, xs: &[&str], axis: i64) -> String {
    g.node(scope, "Concat", xs, vec![("axis", Attr::Int(axis))])
}

/// `Split(x, split, axis)` into parts of the given sizes.
pub fn split(g: &mut GraphBuilder, scope: &str, x: &str, sizes: &[i64], axis: i64) -> Vec<String> {
    let s = g.const_i64(&[sizes.len()], sizes);
    g.node_multi(
        scope,
        "Split",
        &[x, &s],
        vec![("axis", Attr::Int(axis))],
        sizes.len(),
        None,
    )
}
