//! MobileNetV3 (small, large) → ONNX graph, laid out as `torch.onnx.export` writes torchvision's
//! model in eval mode: Conv+BN folded into `Conv`, `HardSwish` / `Relu`, squeeze-excitation as
//! `GlobalAveragePool` → `Conv` → `Relu` → `Conv` → `HardSigmoid` (α = 1/6, β = 0.5) → `Mul`,
//! residual `Add`, then `GlobalAveragePool`, `Flatten`, `Gemm` → `HardSwish` → `Gemm` (dropout is
//! the identity at inference and left out). Input `input` (ImageNet-normalised RGB), output
//! `logits`.

use sightline_vision::mobilenet::{BN_EPS, MobileNetV3Config};

use super::ExportError;
use super::fold::Weights;
use super::graph::{Attr, GraphBuilder};
use super::ops::{Activation, ConvGeometry, activation, conv};
use super::proto::Dim;

struct Net<'a> {
    g: GraphBuilder,
    w: Weights<'a>,
}

/// `features.3.block.1` → `/features/features.3/block/block.1` (torch's scope naming).
fn scope_of(prefix: &str) -> String {
    let mut s = String::new();
    let mut path = String::new();
    for p in prefix.split('.') {
        if p.chars().all(|c| c.is_ascii_digit()) {
            path.push('.');
            path.push_str(p);
            s.push('/');
            s.push_str(&path);
        } else {
            if !path.is_empty() && !s.ends_with(&path) {
                s.push('/');
                s.push_str(&path);
            }
            path = p.to_string();
            s.push('/');
            s.push_str(p);
        }
    }
    s
}

impl Net<'_> {
    /// torchvision `Conv2dNormActivation` at `prefix` (`.0` conv, `.1` bn).
    #[allow(clippy::too_many_arguments)] // nn.Conv2d's arguments plus where it is
    fn conv_bn(
        &mut self,
        x: &str,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        (stride, dilation): (usize, usize),
        groups: usize,
        act: Activation,
    ) -> Result<String, ExportError> {
        let p = self.w.conv_bn(
            &format!("{prefix}.0"),
            &format!("{prefix}.1"),
            [c_out, c_in / groups, k, k],
            BN_EPS,
        )?;
        let scope = scope_of(prefix);
        Ok(conv(
            &mut self.g,
            &format!("{scope}/{prefix}.0"),
            &format!("{scope}/{prefix}.2"),
            x,
            &format!("{prefix}.0"),
            &p,
            ConvGeometry {
                stride,
                pad: (k - 1) / 2 * dilation,
                groups,
                dilation,
            },
            act,
        ))
    }

    /// torchvision `SqueezeExcitation` with ReLU and hardsigmoid.
    fn se(
        &mut self,
        x: &str,
        prefix: &str,
        c: usize,
        squeeze: usize,
    ) -> Result<String, ExportError> {
        let scope = scope_of(prefix);
        let s = self.g.node(
            &format!("{scope}/avgpool"),
            "GlobalAveragePool",
            &[x],
            vec![],
        );
        let fc1 = self
            .w
            .plain_conv(&format!("{prefix}.fc1"), [squeeze, c, 1, 1])?;
        let s = conv(
            &mut self.g,
            &format!("{scope}/fc1"),
            &format!("{scope}/activation"),
            &s,
            &format!("{prefix}.fc1"),
            &fc1,
            ConvGeometry::same(1, 1),
            Activation::Relu,
        );
        let fc2 = self
            .w
            .plain_conv(&format!("{prefix}.fc2"), [c, squeeze, 1, 1])?;
        let s = conv(
            &mut self.g,
            &format!("{scope}/fc2"),
            &scope,
            &s,
            &format!("{prefix}.fc2"),
            &fc2,
            ConvGeometry::same(1, 1),
            Activation::Identity,
        );
        let s = self.g.node(
            &format!("{scope}/scale_activation"),
            "HardSigmoid",
            &[&s],
            vec![
                ("alpha", Attr::Float(1.0 / 6.0)),
                ("beta", Attr::Float(0.5)),
            ],
        );
        Ok(self.g.node(&scope, "Mul", &[&s, x], vec![]))
    }

    /// `Gemm(x, W, b)` with torch's `[out, in]` weight (`transB = 1`).
    fn linear(
        &mut self,
        x: &str,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        out: Option<&str>,
    ) -> Result<String, ExportError> {
        let w = self.w.get(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let b = self.w.get(&format!("{prefix}.bias"), &[d_out])?;
        let wn = self
            .g
            .weight(&format!("{prefix}.weight"), &[d_out, d_in], &w.data);
        let bn = self.g.weight(&format!("{prefix}.bias"), &[d_out], &b.data);
        let scope = scope_of(prefix);
        let attrs = vec![
            ("alpha", Attr::Float(1.0)),
            ("beta", Attr::Float(1.0)),
            ("transB", Attr::Int(1)),
        ];
        Ok(match out {
            Some(o) => self.g.node_into(&scope, "Gemm", &[x, &wn, &bn], attrs, o),
            None => self.g.node(&scope, "Gemm", &[x, &wn, &bn], attrs),
        })
    }
}

/// Builds the whole graph (input `input`, output `logits`). `fixed`: `(batch, height, width)`
/// for a static graph, `None` for symbolic `batch`, `height`, `width`.
pub(crate) fn build(
    weights: Weights<'_>,
    cfg: &MobileNetV3Config,
    fixed: Option<(usize, usize, usize)>,
) -> Result<GraphBuilder, ExportError> {
    let mut n = Net {
        g: GraphBuilder::new(),
        w: weights,
    };
    let nc = cfg.num_classes;
    let (in_dims, out_dims) = match fixed {
        Some((b, h, w)) => (
            vec![Dim::Fixed(b), Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)],
            vec![Dim::Fixed(b), Dim::Fixed(nc)],
        ),
        None => (
            vec![
                Dim::sym("batch"),
                Dim::Fixed(3),
                Dim::sym("height"),
                Dim::sym("width"),
            ],
            vec![Dim::sym("batch"), Dim::Fixed(nc)],
        ),
    };
    let x = n.g.input("input", &in_dims);
    let stem = cfg.stem_channels();
    let mut x = n.conv_bn(
        &x,
        "features.0",
        3,
        stem,
        3,
        (2, 1),
        1,
        Activation::Hardswish,
    )?;
    for (i, b) in cfg.blocks.iter().enumerate() {
        let prefix = format!("features.{}", i + 1);
        let act = if b.use_hs {
            Activation::Hardswish
        } else {
            Activation::Relu
        };
        let e = b.expanded_channels;
        let input = x.clone();
        let mut j = 0;
        if e != b.input_channels {
            x = n.conv_bn(
                &x,
                &format!("{prefix}.block.{j}"),
                b.input_channels,
                e,
                1,
                (1, 1),
                1,
                act,
            )?;
            j += 1;
        }
        let stride = if b.dilation > 1 { 1 } else { b.stride };
        x = n.conv_bn(
            &x,
            &format!("{prefix}.block.{j}"),
            e,
            e,
            b.kernel,
            (stride, b.dilation),
            e,
            act,
        )?;
        j += 1;
        if b.use_se {
            x = n.se(&x, &format!("{prefix}.block.{j}"), e, b.squeeze_channels())?;
            j += 1;
        }
        x = n.conv_bn(
            &x,
            &format!("{prefix}.block.{j}"),
            e,
            b.out_channels,
            1,
            (1, 1),
            1,
            Activation::Identity,
        )?;
        if b.use_residual() {
            x = n.g.node(&scope_of(&prefix), "Add", &[&x, &input], vec![]);
        }
    }
    let last_in = cfg.blocks.last().map_or(stem, |b| b.out_channels);
    let feat = cfg.features_channels();
    let last = format!("features.{}", cfg.blocks.len() + 1);
    let x = n.conv_bn(
        &x,
        &last,
        last_in,
        feat,
        1,
        (1, 1),
        1,
        Activation::Hardswish,
    )?;
    let x = n.g.node("/avgpool", "GlobalAveragePool", &[&x], vec![]);
    let x = n.g.node("", "Flatten", &[&x], vec![("axis", Attr::Int(1))]);
    let x = n.linear(&x, "classifier.0", feat, cfg.last_channel, None)?;
    let x = activation(
        &mut n.g,
        "/classifier/classifier.1",
        &x,
        Activation::Hardswish,
    );
    n.linear(&x, "classifier.3", cfg.last_channel, nc, Some("logits"))?;
    n.g.output("logits", &out_dims);
    Ok(n.g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_torch_module_paths() {
        assert_eq!(
            scope_of("features.3.block.1"),
            "/features/features.3/block/block.1"
        );
        assert_eq!(scope_of("classifier.0"), "/classifier/classifier.0");
    }
}
