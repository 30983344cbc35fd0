//! YOLOv8-seg → ONNX graph, laid out as Ultralytics' own `export(format="onnx")` writes it:
//! Conv+BN folded into `Conv` with SiLU as `Sigmoid`·`Mul`, C2f with `Split`/`Concat`, SPPF
//! with three `MaxPool` k5 s1 p2, nearest ×2 `Resize`, and the `Segment` head with DFL
//! (`Softmax` over the bins of each side, then `ReduceSum` of the probabilities times
//! `0..reg_max`: the same expectation as Ultralytics' fixed 1×1 conv),
//! anchor/stride decoding into xywh boxes in input pixels, sigmoid class scores, mask
//! coefficients and the `Proto` branch (`ConvTranspose` 2×2 stride 2).
//!
//! Static graphs carry the anchor grid as constants; dynamic graphs compute it from the feature
//! maps' shapes (`Shape`/`Gather`/`Range`/`Expand`), so any input whose sides are multiples of
//! 32 runs.

use sightline_vision::yolo::STRIDES;
use sightline_vision::yolo::YoloV8SegConfig;
use sightline_vision::yolo::blocks::BN_EPS;

use super::ExportError;
use super::fold::Weights;
use super::graph::{Attr, GraphBuilder};
use super::ops::{Activation, ConvGeometry, concat, conv, reshape, split};
use super::proto::Dim;

/// Input geometry of the exported graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputGeometry {
    /// `(batch, height, width)` when static; `None` for symbolic batch, height and width.
    pub fixed: Option<(usize, usize, usize)>,
}

/// torch-style scope of a state-dict prefix: `model.2.m.0.cv1` → `/model.2/m.0/cv1`.
fn scope_of(prefix: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for p in prefix.split('.') {
        match parts.last_mut() {
            Some(last) if p.chars().all(|c| c.is_ascii_digit()) => {
                last.push('.');
                last.push_str(p);
            }
            _ => parts.push(p.to_string()),
        }
    }
    let mut s = String::new();
    for p in parts {
        s.push('/');
        s.push_str(&p);
    }
    s
}

struct Yolo<'a> {
    g: GraphBuilder,
    w: Weights<'a>,
}

impl Yolo<'_> {
    /// Ultralytics `Conv` at `prefix` (`<prefix>.conv`, `<prefix>.bn`).
    #[allow(clippy::too_many_arguments)] // Conv(c1, c2, k, s, act) plus where it is
    fn conv(
        &mut self,
        x: &str,
        prefix: &str,
        c1: usize,
        c2: usize,
        k: usize,
        s: usize,
        act: bool,
    ) -> Result<String, ExportError> {
        let p = self.w.conv_bn(
            &format!("{prefix}.conv"),
            &format!("{prefix}.bn"),
            [c2, c1, k, k],
            BN_EPS,
        )?;
        let scope = scope_of(prefix);
        Ok(conv(
            &mut self.g,
            &format!("{scope}/conv"),
            &format!("{scope}/act"),
            x,
            &format!("{prefix}.conv"),
            &p,
            ConvGeometry::same(k, s),
            if act {
                Activation::Silu
            } else {
                Activation::Identity
            },
        ))
    }

    /// Ultralytics `C2f(c1, c2, n, shortcut)`.
    fn c2f(
        &mut self,
        x: &str,
        prefix: &str,
        c1: usize,
        c2: usize,
        n: usize,
        shortcut: bool,
    ) -> Result<String, ExportError> {
        let c = c2 / 2;
        let y = self.conv(x, &format!("{prefix}.cv1"), c1, 2 * c, 1, 1, true)?;
        let scope = scope_of(prefix);
        let mut parts = split(&mut self.g, &scope, &y, &[c as i64, c as i64], 1);
        for i in 0..n {
            let last = parts.last().cloned().unwrap_or_default();
            let m = format!("{prefix}.m.{i}");
            let h = self.conv(&last, &format!("{m}.cv1"), c, c, 3, 1, true)?;
            let h = self.conv(&h, &format!("{m}.cv2"), c, c, 3, 1, true)?;
            let out = if shortcut {
                self.g.node(&scope_of(&m), "Add", &[&last, &h], vec![])
            } else {
                h
            };
            parts.push(out);
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let cat = concat(&mut self.g, &scope, &refs, 1);
        self.conv(&cat, &format!("{prefix}.cv2"), (2 + n) * c, c2, 1, 1, true)
    }

    /// Ultralytics `SPPF(c1, c2, 5)`.
    fn sppf(
        &mut self,
        x: &str,
        prefix: &str,
        c1: usize,
        c2: usize,
        cv1_act: bool,
    ) -> Result<String, ExportError> {
        let c = c1 / 2;
        let y0 = self.conv(x, &format!("{prefix}.cv1"), c1, c, 1, 1, cv1_act)?;
        let scope = format!("{}/m", scope_of(prefix));
        let pool = |g: &mut GraphBuilder, x: &str| {
            g.node(
                &scope,
                "MaxPool",
                &[x],
                vec![
                    ("ceil_mode", Attr::Int(0)),
                    ("dilations", Attr::Ints(vec![1, 1])),
                    ("kernel_shape", Attr::Ints(vec![5, 5])),
                    ("pads", Attr::Ints(vec![2, 2, 2, 2])),
                    ("strides", Attr::Ints(vec![1, 1])),
                ],
            )
        };
        let y1 = pool(&mut self.g, &y0);
        let y2 = pool(&mut self.g, &y1);
        let y3 = pool(&mut self.g, &y2);
        let cat = concat(&mut self.g, &scope_of(prefix), &[&y0, &y1, &y2, &y3], 1);
        self.conv(&cat, &format!("{prefix}.cv2"), 4 * c, c2, 1, 1, true)
    }

    /// `nn.Upsample(scale_factor=2, mode="nearest")` as torch exports it.
    fn upsample(&mut self, x: &str, prefix: &str) -> String {
        let scales = self.g.const_f32(&[4], &[1.0, 1.0, 2.0, 2.0]);
        self.g.node(
            &scope_of(prefix),
            "Resize",
            &[x, "", &scales],
            vec![
                (
                    "coordinate_transformation_mode",
                    Attr::Str("asymmetric".into()),
                ),
                ("cubic_coeff_a", Attr::Float(-0.75)),
                ("mode", Attr::Str("nearest".into())),
                ("nearest_mode", Attr::Str("floor".into())),
            ],
        )
    }

    /// A head branch `Conv 3×3 → Conv 3×3 → Conv2d 1×1`, reshaped to `[B, c_out, h·w]`.
    fn branch(
        &mut self,
        x: &str,
        prefix: &str,
        c_in: usize,
        c_mid: usize,
        c_out: usize,
    ) -> Result<String, ExportError> {
        let y = self.conv(x, &format!("{prefix}.0"), c_in, c_mid, 3, 1, true)?;
        let y = self.conv(&y, &format!("{prefix}.1"), c_mid, c_mid, 3, 1, true)?;
        let last = format!("{prefix}.2");
        let p = self.w.plain_conv(&last, [c_out, c_mid, 1, 1])?;
        let scope = scope_of(&last);
        let y = conv(
            &mut self.g,
            &scope,
            &scope,
            &y,
            &last,
            &p,
            ConvGeometry::same(1, 1),
            Activation::Identity,
        );
        Ok(reshape(&mut self.g, &scope, &y, &[0, c_out as i64, -1]))
    }

    /// Anchor centres `[1, 2, A]` and strides `[1, 1, A]` computed in the graph from the
    /// feature maps' shapes.
    fn dynamic_anchors(&mut self, feats: &[String; 3]) -> (String, String) {
        let scope = "/model.22";
        let g = &mut self.g;
        let zero = g.const_i64(&[], &[0]);
        let one = g.const_i64(&[], &[1]);
        let half = g.scalar_f32(0.5);
        let ax0 = g.const_i64(&[1], &[0]);
        let ax1 = g.const_i64(&[1], &[1]);
        let mut anchors = Vec::new();
        let mut strides = Vec::new();
        for (f, &s) in feats.iter().zip(&STRIDES) {
            let hw = g.node(scope, "Shape", &[f], vec![("start", Attr::Int(2))]);
            let h = g.node(scope, "Gather", &[&hw, &zero], vec![("axis", Attr::Int(0))]);
            let w = g.node(scope, "Gather", &[&hw, &one], vec![("axis", Attr::Int(0))]);
            let centres = |g: &mut GraphBuilder, n: &str| {
                let r = g.node(scope, "Range", &[&zero, n, &one], vec![]);
                let r = g.node(scope, "Cast", &[&r], vec![("to", Attr::Int(1))]);
                g.node(scope, "Add", &[&r, &half], vec![])
            };
            let sx = centres(g, &w);
            let sy = centres(g, &h);
            let sx = g.node(scope, "Unsqueeze", &[&sx, &ax0], vec![]);
            let sy = g.node(scope, "Unsqueeze", &[&sy, &ax1], vec![]);
            let gx = g.node(scope, "Expand", &[&sx, &hw], vec![]);
            let gy = g.node(scope, "Expand", &[&sy, &hw], vec![]);
            let gx = reshape(g, scope, &gx, &[1, -1]);
            let gy = reshape(g, scope, &gy, &[1, -1]);
            anchors.push(concat(g, scope, &[&gx, &gy], 0));
            let stride = g.const_f32(&[1, 1], &[s as f32]);
            let n = g.node(scope, "Shape", &[&gx], vec![]);
            strides.push(g.node(scope, "Expand", &[&stride, &n], vec![]));
        }
        let a: Vec<&str> = anchors.iter().map(String::as_str).collect();
        let a = concat(g, scope, &a, 1);
        let a = reshape(g, scope, &a, &[1, 2, -1]);
        let s: Vec<&str> = strides.iter().map(String::as_str).collect();
        let s = concat(g, scope, &s, 1);
        let s = reshape(g, scope, &s, &[1, 1, -1]);
        (a, s)
    }

    /// Anchor centres and strides as constants for a fixed input size.
    fn static_anchors(&mut self, h: usize, w: usize) -> (String, String) {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        let mut st = Vec::new();
        for &s in &STRIDES {
            let (lh, lw) = (h.div_ceil(s), w.div_ceil(s));
            for y in 0..lh {
                for x in 0..lw {
                    xs.push(x as f32 + 0.5);
                    ys.push(y as f32 + 0.5);
                    st.push(s as f32);
                }
            }
        }
        let a = xs.len();
        xs.extend(ys);
        let anchors = self.g.weight("/model.22/anchors", &[1, 2, a], &xs);
        let strides = self.g.weight("/model.22/strides", &[1, 1, a], &st);
        (anchors, strides)
    }
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Builds the whole graph (inputs `images`, outputs `output0` and `output1`).
pub(crate) fn build(
    weights: Weights<'_>,
    cfg: &YoloV8SegConfig,
    geo: &InputGeometry,
) -> Result<GraphBuilder, ExportError> {
    let mut y = Yolo {
        g: GraphBuilder::new(),
        w: weights,
    };
    let c = cfg.widths();
    let (d3, d6) = (cfg.depth(3), cfg.depth(6));
    let nc = cfg.num_classes;
    let nm = cfg.num_masks;
    let reg_max = cfg.reg_max;
    let no = 4 + nc + nm;

    let (in_dims, out0, out1) = match geo.fixed {
        Some((b, h, w)) => {
            let a: usize = STRIDES
                .iter()
                .map(|s| h.div_ceil(*s) * w.div_ceil(*s))
                .sum();
            (
                vec![Dim::Fixed(b), Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)],
                vec![Dim::Fixed(b), Dim::Fixed(no), Dim::Fixed(a)],
                vec![
                    Dim::Fixed(b),
                    Dim::Fixed(nm),
                    Dim::Fixed(h.div_ceil(8) * 2),
                    Dim::Fixed(w.div_ceil(8) * 2),
                ],
            )
        }
        None => (
            vec![
                Dim::sym("batch"),
                Dim::Fixed(3),
                Dim::sym("height"),
                Dim::sym("width"),
            ],
            vec![Dim::sym("batch"), Dim::Fixed(no), Dim::sym("anchors")],
            vec![
                Dim::sym("batch"),
                Dim::Fixed(nm),
                Dim::sym("mask_height"),
                Dim::sym("mask_width"),
            ],
        ),
    };
    let x = y.g.input("images", &in_dims);

    // backbone
    let x = y.conv(&x, "model.0", 3, c.c64, 3, 2, true)?;
    let x = y.conv(&x, "model.1", c.c64, c.c128, 3, 2, true)?;
    let x = y.c2f(&x, "model.2", c.c128, c.c128, d3, true)?;
    let x = y.conv(&x, "model.3", c.c128, c.c256, 3, 2, true)?;
    let p4 = y.c2f(&x, "model.4", c.c256, c.c256, d6, true)?;
    let x = y.conv(&p4, "model.5", c.c256, c.c512, 3, 2, true)?;
    let p6 = y.c2f(&x, "model.6", c.c512, c.c512, d6, true)?;
    let x = y.conv(&p6, "model.7", c.c512, c.c1024, 3, 2, true)?;
    let x = y.c2f(&x, "model.8", c.c1024, c.c1024, d3, true)?;
    let p9 = y.sppf(&x, "model.9", c.c1024, c.c1024, cfg.sppf_cv1_act)?;
    // neck
    let up = y.upsample(&p9, "model.10");
    let x = concat(&mut y.g, "/model.11", &[&up, &p6], 1);
    let p12 = y.c2f(&x, "model.12", c.c1024 + c.c512, c.c512, d3, false)?;
    let up = y.upsample(&p12, "model.13");
    let x = concat(&mut y.g, "/model.14", &[&up, &p4], 1);
    let p15 = y.c2f(&x, "model.15", c.c512 + c.c256, c.c256, d3, false)?;
    let x = y.conv(&p15, "model.16", c.c256, c.c256, 3, 2, true)?;
    let x = concat(&mut y.g, "/model.17", &[&x, &p12], 1);
    let p18 = y.c2f(&x, "model.18", c.c256 + c.c512, c.c512, d3, false)?;
    let x = y.conv(&p18, "model.19", c.c512, c.c512, 3, 2, true)?;
    let x = concat(&mut y.g, "/model.20", &[&x, &p9], 1);
    let p21 = y.c2f(&x, "model.21", c.c512 + c.c1024, c.c1024, d3, false)?;

    // head
    let feats = [p15, p18, p21];
    let ch = [c.c256, c.c512, c.c1024];
    let c2 = 16usize.max(ch[0] / 4).max(reg_max * 4);
    let c3 = ch[0].max(nc.min(100));
    let c4 = (ch[0] / 4).max(nm);
    let (mut boxes, mut scores, mut coefs) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (f, &ci)) in feats.iter().zip(&ch).enumerate() {
        boxes.push(y.branch(f, &format!("model.22.cv2.{i}"), ci, c2, 4 * reg_max)?);
        scores.push(y.branch(f, &format!("model.22.cv3.{i}"), ci, c3, nc)?);
        coefs.push(y.branch(f, &format!("model.22.cv4.{i}"), ci, c4, nm)?);
    }
    let head = "/model.22";
    let boxes = concat(&mut y.g, head, &refs(&boxes), 2);
    let scores = concat(&mut y.g, head, &refs(&scores), 2);
    let coefs = concat(&mut y.g, head, &refs(&coefs), 2);

    // DFL: softmax over the bins of each side, then the expectation Σ p·bin (ReduceSum of
    // the probabilities times 0..reg_max, the order of the Burn model's own sum)
    let dfl = "/model.22/dfl";
    let b = reshape(&mut y.g, dfl, &boxes, &[0, 4, reg_max as i64, -1]);
    let b =
        y.g.node(dfl, "Softmax", &[&b], vec![("axis", Attr::Int(2))]);
    let bins: Vec<f32> = (0..reg_max).map(|v| v as f32).collect();
    let bins = y.g.weight("model.22.dfl.bins", &[1, 1, reg_max, 1], &bins);
    let b = y.g.node(dfl, "Mul", &[&b, &bins], vec![]);
    let axes = y.g.const_i64(&[1], &[2]);
    let dist = y.g.node(
        dfl,
        "ReduceSum",
        &[&b, &axes],
        vec![("keepdims", Attr::Int(0))],
    );

    // anchors and decoding (dist2bbox, xywh) in input pixels
    let (anchors, strides) = match geo.fixed {
        Some((_, h, w)) => y.static_anchors(h, w),
        None => y.dynamic_anchors(&feats),
    };
    let lr = split(&mut y.g, head, &dist, &[2, 2], 1);
    let (lt, rb) = (&lr[0], &lr[1]);
    let x1y1 = y.g.node(head, "Sub", &[&anchors, lt], vec![]);
    let x2y2 = y.g.node(head, "Add", &[&anchors, rb], vec![]);
    let sum = y.g.node(head, "Add", &[&x1y1, &x2y2], vec![]);
    let two = y.g.scalar_f32(2.0);
    let centre = y.g.node(head, "Div", &[&sum, &two], vec![]);
    let wh = y.g.node(head, "Sub", &[&x2y2, &x1y1], vec![]);
    let dbox = concat(&mut y.g, head, &[&centre, &wh], 1);
    let dbox = y.g.node(head, "Mul", &[&dbox, &strides], vec![]);
    let cls = y.g.node(head, "Sigmoid", &[&scores], vec![]);
    y.g.node_into(
        head,
        "Concat",
        &[&dbox, &cls, &coefs],
        vec![("axis", Attr::Int(1))],
        "output0",
    );

    // Proto
    let hidden = cfg.proto_hidden();
    let px = y.conv(&feats[0], "model.22.proto.cv1", ch[0], hidden, 3, 1, true)?;
    let up =
        y.w.plain_conv("model.22.proto.upsample", [hidden, hidden, 2, 2])?;
    let uw =
        y.g.weight("model.22.proto.upsample.weight", &up.shape, &up.weight);
    let ub =
        y.g.weight("model.22.proto.upsample.bias", &[hidden], &up.bias);
    let px = y.g.node(
        "/model.22/proto/upsample",
        "ConvTranspose",
        &[&px, &uw, &ub],
        vec![
            ("dilations", Attr::Ints(vec![1, 1])),
            ("group", Attr::Int(1)),
            ("kernel_shape", Attr::Ints(vec![2, 2])),
            ("pads", Attr::Ints(vec![0, 0, 0, 0])),
            ("strides", Attr::Ints(vec![2, 2])),
        ],
    );
    let px = y.conv(&px, "model.22.proto.cv2", hidden, hidden, 3, 1, true)?;
    let px = y.conv(&px, "model.22.proto.cv3", hidden, nm, 1, 1, false)?;
    let act = "/model.22/proto/cv3/act";
    let s = y.g.node(act, "Sigmoid", &[&px], vec![]);
    y.g.node_into(act, "Mul", &[&px, &s], vec![], "output1");

    y.g.output("output0", &out0);
    y.g.output("output1", &out1);
    Ok(y.g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_torch_module_paths() {
        assert_eq!(scope_of("model.2.m.0.cv1"), "/model.2/m.0/cv1");
        assert_eq!(scope_of("model.22.cv2.1.0"), "/model.22/cv2.1.0");
    }
}
