//! YOLOv8-seg training loss (Ultralytics `v8SegmentationLoss`).
//!
//! Inputs are the raw head outputs, level after level along the anchor axis:
//! box distributions `[B, 4·reg_max, A]` (DFL logits, sides l, t, r, b), class logits
//! `[B, nc, A]`, mask coefficients `[B, nm, A]` and prototypes `[B, nm, Hm, Wm]`.
//!
//! - boxes are decoded as the expectation of the softmax over `reg_max` bins, in grid units;
//! - the [task-aligned assigner](super::assign) picks positives (no gradient);
//! - **class**: BCE-with-logits against the soft targets, summed, divided by the sum of targets;
//! - **box**: `(1 − CIoU)` weighted by each positive's target score sum, same normaliser;
//! - **DFL**: cross-entropy to the two bins around each target distance, same weighting;
//! - **mask**: BCE of `coef · proto` against the instance mask, cropped to the target box and
//!   averaged over the prototype grid, divided by the normalised box area, averaged over
//!   positives (per-instance masks: Ultralytics `overlap_mask=False`);
//! - gains box 7.5, seg 7.5 (the box gain, as Ultralytics), cls 0.5, dfl 1.5; the total is
//!   multiplied by the batch size.

use super::assign::{AssignerConfig, GtBox, assign};
use super::boxes::{Level, bbox2dist, make_anchors};
use crate::augment::detect::DetTargets;
use crate::error::{Result, TrainError};
use burn::tensor::activation::{log_softmax, sigmoid, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

/// Loss hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegLossConfig {
    /// Box (CIoU) gain; also the mask gain.
    pub box_gain: f32,
    /// Class gain.
    pub cls_gain: f32,
    /// DFL gain.
    pub dfl_gain: f32,
    /// DFL bins per side.
    pub reg_max: usize,
    /// Assigner settings.
    pub assigner: AssignerConfig,
}

impl SegLossConfig {
    /// Ultralytics defaults for `num_classes`.
    pub fn yolov8(num_classes: usize) -> Self {
        Self {
            box_gain: 7.5,
            cls_gain: 0.5,
            dfl_gain: 1.5,
            reg_max: 16,
            assigner: AssignerConfig::yolov8(num_classes),
        }
    }
}

/// The loss of one batch.
#[derive(Debug, Clone)]
pub struct SegLoss {
    /// Scalar to back-propagate: gained components summed, times the batch size.
    pub total: Tensor<1>,
    /// Box loss after its gain (per image, as Ultralytics logs it).
    pub box_loss: f32,
    /// Mask loss after its gain.
    pub seg_loss: f32,
    /// Class loss after its gain.
    pub cls_loss: f32,
    /// DFL loss after its gain.
    pub dfl_loss: f32,
    /// Positive anchors in the batch.
    pub num_fg: usize,
}

fn to_vec(t: Tensor<3>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::Data(format!("{e:?}")))
}

fn scalar(t: &Tensor<1>) -> Result<f32> {
    let v = t
        .clone()
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::Data(format!("{e:?}")))?;
    v.first()
        .copied()
        .ok_or_else(|| TrainError::Data("empty scalar".into()))
}

fn constant<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn indices(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// Numerically stable BCE with logits, element-wise: `max(x, 0) − x·t + ln(1 + e^{−|x|})`.
pub fn bce_with_logits<const D: usize>(x: Tensor<D>, t: Tensor<D>) -> Tensor<D> {
    x.clone().clamp_min(0.0) - x.clone() * t + x.abs().neg().exp().log1p()
}

/// CIoU of matching rows of two `[N, 4]` xyxy tensors (Ultralytics `bbox_iou(CIoU=True)`,
/// the aspect-ratio weight `alpha` without gradient). Returns `[N, 1]`.
pub fn ciou_tensor(b1: Tensor<2>, b2: Tensor<2>) -> Tensor<2> {
    let eps = 1e-7;
    let col = |t: &Tensor<2>, i: usize| t.clone().narrow(1, i, 1);
    let (ax1, ay1, ax2, ay2) = (col(&b1, 0), col(&b1, 1), col(&b1, 2), col(&b1, 3));
    let (bx1, by1, bx2, by2) = (col(&b2, 0), col(&b2, 1), col(&b2, 2), col(&b2, 3));
    let w1 = ax2.clone() - ax1.clone();
    let h1 = ay2.clone() - ay1.clone() + eps;
    let w2 = bx2.clone() - bx1.clone();
    let h2 = by2.clone() - by1.clone() + eps;
    let iw = (ax2.clone().min_pair(bx2.clone()) - ax1.clone().max_pair(bx1.clone())).clamp_min(0.0);
    let ih = (ay2.clone().min_pair(by2.clone()) - ay1.clone().max_pair(by1.clone())).clamp_min(0.0);
    let inter = iw * ih;
    let union = w1.clone() * h1.clone() + w2.clone() * h2.clone() - inter.clone() + eps;
    let iou = inter / union;
    let cw = ax2.clone().max_pair(bx2.clone()) - ax1.clone().min_pair(bx1.clone());
    let ch = ay2.clone().max_pair(by2.clone()) - ay1.clone().min_pair(by1.clone());
    let c2 = cw.clone() * cw + ch.clone() * ch + eps;
    let dx = bx1 + bx2 - ax1 - ax2;
    let dy = by1 + by2 - ay1 - ay2;
    let rho2 = (dx.clone() * dx + dy.clone() * dy) / 4.0;
    let datan = (w2 / h2).atan() - (w1 / h1).atan();
    let v = datan.clone() * datan * (4.0 / (std::f32::consts::PI * std::f32::consts::PI));
    let alpha = (v.clone() / (iou.clone().neg() + 1.0 + v.clone() + eps)).detach();
    iou - (rho2 / c2 + v * alpha)
}

/// Distribution focal loss of `[N, reg_max]` logits against continuous targets in
/// `[0, reg_max − 1)`: cross-entropy to the two neighbouring bins weighted by proximity.
/// Returns `[N]` losses.
pub fn dfl_loss(logits: Tensor<2>, targets: &[f32]) -> Tensor<1> {
    let [n, bins] = logits.dims();
    let device = logits.device();
    let mut w = vec![0.0f32; n * bins];
    for (i, &t) in targets.iter().enumerate().take(n) {
        let t = t.clamp(0.0, bins as f32 - 1.0 - 0.01);
        let tl = t.floor() as usize;
        let wl = (tl + 1) as f32 - t;
        w[i * bins + tl] = wl;
        w[i * bins + tl + 1] = 1.0 - wl;
    }
    let w = constant(w, [n, bins], &device);
    (log_softmax(logits, 1) * w).sum_dim(1).neg().reshape([n])
}

/// Compute the segmentation loss of a batch. `targets[b]` holds image `b`'s boxes (input
/// pixels) and masks at the prototype resolution.
pub fn seg_loss(
    cfg: &SegLossConfig,
    boxes: Tensor<3>,
    scores: Tensor<3>,
    coefs: Tensor<3>,
    proto: Tensor<4>,
    levels: &[Level],
    targets: &[DetTargets],
) -> Result<SegLoss> {
    let device = boxes.device();
    let [bsz, c64, na] = boxes.dims();
    let [_, nc, _] = scores.dims();
    let [_, nm, _] = coefs.dims();
    let [_, _, mh, mw] = proto.dims();
    let reg_max = cfg.reg_max;
    if c64 != 4 * reg_max || nc != cfg.assigner.num_classes || targets.len() != bsz {
        return Err(TrainError::Shape(format!(
            "boxes {c64} channels (want {}), {nc} classes (want {}), {} targets for batch {bsz}",
            4 * reg_max,
            cfg.assigner.num_classes,
            targets.len()
        )));
    }
    let (anchors, strides) = make_anchors(levels);
    if anchors.len() != na {
        return Err(TrainError::Shape(format!(
            "{na} anchors in the outputs, levels give {}",
            anchors.len()
        )));
    }
    let first = levels
        .first()
        .ok_or_else(|| TrainError::Shape("no levels".into()))?;
    let (img_h, img_w) = (
        (first.h as u32 * first.stride) as f32,
        (first.w as u32 * first.stride) as f32,
    );

    // decode boxes (grid units): expectation over the bins
    let dist_logits = boxes.swap_dims(1, 2); // [B, A, 64]
    let proj = constant(
        (0..reg_max).map(|i| i as f32).collect(),
        [1, 1, 1, reg_max],
        &device,
    );
    let dist = (softmax(dist_logits.clone().reshape([bsz, na, 4, reg_max]), 3) * proj)
        .sum_dim(3)
        .reshape([bsz, na, 4]);
    let anc = constant(
        anchors.iter().flat_map(|p| [p[0], p[1]]).collect(),
        [1, na, 2],
        &device,
    );
    let pred_boxes = Tensor::cat(
        vec![
            anc.clone() - dist.clone().narrow(2, 0, 2),
            anc + dist.narrow(2, 2, 2),
        ],
        2,
    ); // [B, A, 4] xyxy, grid units

    // assignment on detached predictions
    let logits = scores.swap_dims(1, 2); // [B, A, nc]
    let probs = to_vec(sigmoid(logits.clone().detach()))?;
    let stride_t = constant(strides.clone(), [1, na, 1], &device);
    let px_boxes = to_vec(pred_boxes.clone().detach() * stride_t)?;
    let anchors_px: Vec<[f32; 2]> = anchors
        .iter()
        .zip(&strides)
        .map(|(p, s)| [p[0] * s, p[1] * s])
        .collect();
    let mut target_scores = vec![0.0f32; bsz * na * nc];
    let mut assignments = Vec::with_capacity(bsz);
    for (b, t) in targets.iter().enumerate() {
        let gts: Vec<GtBox> = t
            .classes
            .iter()
            .zip(&t.boxes)
            .map(|(&c, &xyxy)| GtBox { class: c, xyxy })
            .collect();
        let pb: Vec<[f32; 4]> = px_boxes[b * na * 4..(b + 1) * na * 4]
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect();
        let a = assign(
            &cfg.assigner,
            &probs[b * na * nc..(b + 1) * na * nc],
            &pb,
            &anchors_px,
            &gts,
        );
        target_scores[b * na * nc..(b + 1) * na * nc].copy_from_slice(&a.scores);
        assignments.push(a);
    }
    let tss = target_scores.iter().sum::<f32>().max(1.0);

    // class loss
    let ts = constant(target_scores.clone(), [bsz, na, nc], &device);
    let cls = bce_with_logits(logits, ts).sum() / tss;

    // positives
    let mut fg_flat: Vec<i64> = Vec::new();
    let mut tboxes: Vec<f32> = Vec::new(); // grid units
    let mut weights: Vec<f32> = Vec::new();
    let mut ltrb: Vec<f32> = Vec::new();
    for (b, a) in assignments.iter().enumerate() {
        for i in 0..na {
            if !a.fg[i] {
                continue;
            }
            fg_flat.push((b * na + i) as i64);
            let s = strides[i];
            let gb = targets[b].boxes[a.gt_index[i]];
            let g = [gb[0] / s, gb[1] / s, gb[2] / s, gb[3] / s];
            tboxes.extend_from_slice(&g);
            weights.push(a.scores[i * nc..(i + 1) * nc].iter().sum());
            ltrb.extend_from_slice(&bbox2dist(anchors[i], g, (reg_max - 1) as f32));
        }
    }
    let n_fg = fg_flat.len();
    let zero = || -> Tensor<1> { Tensor::zeros([1], &device) };
    let (box_l, dfl_l, seg_l) = if n_fg == 0 {
        // keep every output in the graph with a zero contribution
        let z = (pred_boxes.clone().sum() + coefs.clone().sum() + proto.clone().sum()) * 0.0;
        (z.clone(), z.clone(), z)
    } else {
        let idx = indices(fg_flat.clone(), &device);
        let w = constant(weights.clone(), [n_fg, 1], &device);
        let pb = pred_boxes.reshape([bsz * na, 4]).select(0, idx.clone());
        let tb = constant(tboxes, [n_fg, 4], &device);
        let iou = ciou_tensor(pb, tb);
        let box_l = ((iou.neg() + 1.0) * w.clone()).sum() / tss;
        let pd = dist_logits
            .reshape([bsz * na, 4 * reg_max])
            .select(0, idx)
            .reshape([n_fg * 4, reg_max]);
        let dfl = dfl_loss(pd, &ltrb).reshape([n_fg, 4]).mean_dim(1);
        let dfl_l = (dfl * w).sum() / tss;

        // mask loss, image by image
        let coefs_t = coefs.swap_dims(1, 2); // [B, A, nm]
        let mut seg_sum = zero();
        for (b, a) in assignments.iter().enumerate() {
            let local: Vec<usize> = (0..na).filter(|&i| a.fg[i]).collect();
            if local.is_empty() {
                continue;
            }
            let t = &targets[b];
            if t.mask_size != mh || mh != mw {
                return Err(TrainError::Shape(format!(
                    "target masks are {0}x{0}, prototypes {mh}x{mw}",
                    t.mask_size
                )));
            }
            let n = local.len();
            let hw = mh * mw;
            let mut gt = vec![0.0f32; n * hw];
            let mut wt = vec![0.0f32; n * hw];
            for (k, &i) in local.iter().enumerate() {
                let g = a.gt_index[i];
                let m = &t.masks[g];
                for (dst, &v) in gt[k * hw..(k + 1) * hw].iter_mut().zip(m.iter()) {
                    *dst = f32::from(v);
                }
                let bx = t.boxes[g];
                let (nx1, ny1, nx2, ny2) =
                    (bx[0] / img_w, bx[1] / img_h, bx[2] / img_w, bx[3] / img_h);
                let area = ((nx2 - nx1) * (ny2 - ny1)).max(1e-9);
                let (mx1, my1, mx2, my2) = (
                    nx1 * mw as f32,
                    ny1 * mh as f32,
                    nx2 * mw as f32,
                    ny2 * mh as f32,
                );
                let v = 1.0 / (hw as f32 * area);
                for y in 0..mh {
                    let yf = y as f32;
                    if !(yf >= my1 && yf < my2) {
                        continue;
                    }
                    for x in 0..mw {
                        let xf = x as f32;
                        if xf >= mx1 && xf < mx2 {
                            wt[k * hw + y * mw + x] = v;
                        }
                    }
                }
            }
            let lidx = indices(local.iter().map(|&i| i as i64).collect(), &device);
            let c = coefs_t
                .clone()
                .narrow(0, b, 1)
                .reshape([na, nm])
                .select(0, lidx);
            let p = proto.clone().narrow(0, b, 1).reshape([nm, hw]);
            let pred = c.matmul(p); // [n, hw]
            let bce = bce_with_logits(pred, constant(gt, [n, hw], &device));
            seg_sum = seg_sum + (bce * constant(wt, [n, hw], &device)).sum();
        }
        (box_l, dfl_l, seg_sum / n_fg as f32)
    };

    let box_g = box_l * cfg.box_gain;
    let seg_g = seg_l * cfg.box_gain;
    let cls_g = cls * cfg.cls_gain;
    let dfl_g = dfl_l * cfg.dfl_gain;
    let out = SegLoss {
        box_loss: scalar(&box_g)?,
        seg_loss: scalar(&seg_g)?,
        cls_loss: scalar(&cls_g)?,
        dfl_loss: scalar(&dfl_g)?,
        num_fg: n_fg,
        total: (box_g + seg_g + cls_g + dfl_g) * bsz as f32,
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::raster::rasterize;
    use crate::yolo::boxes::{ciou, yolo_levels};

    fn vec1(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn bce_with_logits_by_hand_and_stable() {
        let d = Device::flex();
        let x = constant(vec![0.0, 0.0, 50.0, -50.0, 2.0], [5], &d);
        let t = constant(vec![0.5, 1.0, 1.0, 1.0, 0.0], [5], &d);
        let v = vec1(bce_with_logits(x, t));
        let ln2 = std::f32::consts::LN_2;
        assert!((v[0] - ln2).abs() < 1e-6 && (v[1] - ln2).abs() < 1e-6);
        assert!(v[2].abs() < 1e-6);
        assert!((v[3] - 50.0).abs() < 1e-4);
        // -ln(1 - sigmoid(2)) = ln(1 + e^2)
        assert!((v[4] - (1.0 + 2f32.exp()).ln()).abs() < 1e-5);
    }

    #[test]
    fn dfl_by_hand() {
        let d = Device::flex();
        let mut row = vec![0.0f32; 16];
        row[3] = 9f32.ln();
        let mut data = row.clone();
        data.extend(vec![0.0f32; 16]);
        let v = vec1(dfl_loss(constant(data, [2, 16], &d), &[3.3, 7.25]));
        // softmax of the first row: p3 = 9/24, others 1/24
        let expect0 = -(0.7 * (9.0f32 / 24.0).ln() + 0.3 * (1.0f32 / 24.0).ln());
        assert!((v[0] - expect0).abs() < 1e-5, "{} vs {expect0}", v[0]);
        // uniform logits: ln 16 whatever the target
        assert!((v[1] - 16f32.ln()).abs() < 1e-5);
    }

    #[test]
    fn ciou_tensor_matches_the_scalar_reference() {
        let d = Device::flex();
        let a = [
            [0.0, 0.0, 4.0, 2.0],
            [1.0, 2.0, 5.0, 9.0],
            [0.0, 0.0, 1.0, 1.0],
        ];
        let b = [
            [0.0, 0.0, 2.0, 2.0],
            [2.0, 1.0, 6.0, 6.0],
            [5.0, 5.0, 6.0, 8.0],
        ];
        let t = ciou_tensor(
            constant(a.iter().flatten().copied().collect(), [3, 4], &d),
            constant(b.iter().flatten().copied().collect(), [3, 4], &d),
        );
        let v = t.into_data().try_into_vec::<f32>().unwrap();
        for i in 0..3 {
            assert!(
                (v[i] - ciou(a[i], b[i])).abs() < 1e-5,
                "{i}: {} vs {}",
                v[i],
                ciou(a[i], b[i])
            );
        }
    }

    /// One 64x64 image, one object (class 1, box [8,8,40,40]); all outputs zero, so every
    /// side decodes to 7.5 bins, every score to 0.5, every mask logit to 0.
    fn zero_case(d: &Device) -> (Vec<Level>, [Tensor<3>; 3], Tensor<4>, Vec<DetTargets>) {
        let levels = yolo_levels(64);
        let na = 84;
        let boxes = Tensor::zeros([1, 64, na], d);
        let scores = Tensor::zeros([1, 2, na], d);
        let coefs = Tensor::zeros([1, 4, na], d);
        let proto = Tensor::zeros([1, 4, 16, 16], d);
        let bx = [8.0, 8.0, 40.0, 40.0];
        let poly = vec![vec![[8.0, 8.0], [40.0, 8.0], [40.0, 40.0], [8.0, 40.0]]];
        let t = DetTargets {
            classes: vec![1],
            boxes: vec![bx],
            masks: vec![rasterize(&poly, 16, 16, 0.25)],
            mask_size: 16,
        };
        (levels, [boxes, scores, coefs], proto, vec![t])
    }

    #[test]
    fn loss_of_zero_outputs_by_hand() {
        let d = Device::flex();
        let (levels, [boxes, scores, coefs], proto, targets) = zero_case(&d);
        let cfg = SegLossConfig::yolov8(2);
        let l = seg_loss(&cfg, boxes, scores, coefs, proto, &levels, &targets).unwrap();
        // the expected assignment: predictions are anchor ± 7.5·stride squares
        let (anchors, strides) = make_anchors(&levels);
        let pd: Vec<[f32; 4]> = anchors
            .iter()
            .zip(&strides)
            .map(|(p, s)| {
                [
                    (p[0] - 7.5) * s,
                    (p[1] - 7.5) * s,
                    (p[0] + 7.5) * s,
                    (p[1] + 7.5) * s,
                ]
            })
            .collect();
        let apx: Vec<[f32; 2]> = anchors
            .iter()
            .zip(&strides)
            .map(|(p, s)| [p[0] * s, p[1] * s])
            .collect();
        let gt = [GtBox {
            class: 1,
            xyxy: [8.0, 8.0, 40.0, 40.0],
        }];
        let a = assign(&cfg.assigner, &vec![0.5; 84 * 2], &pd, &apx, &gt);
        assert!(a.num_fg() > 0);
        assert_eq!(l.num_fg, a.num_fg());
        let tss = a.scores.iter().sum::<f32>().max(1.0);
        let wsum: f32 = a.scores.iter().sum();
        let ln2 = std::f32::consts::LN_2;
        // BCE of logit 0 is ln 2 for any target
        let cls = 84.0 * 2.0 * ln2 / tss * 0.5;
        assert!(
            (l.cls_loss - cls).abs() < 1e-4 * cls,
            "{} vs {cls}",
            l.cls_loss
        );
        // uniform bins: DFL is ln 16 per side
        let dfl = 16f32.ln() * wsum / tss * 1.5;
        assert!(
            (l.dfl_loss - dfl).abs() < 1e-4 * dfl.max(1e-3),
            "{} vs {dfl}",
            l.dfl_loss
        );
        // mask: ln 2 on the 8x8 crop of a 16x16 grid, divided by the area fraction 1/4 -> ln 2
        assert!((l.seg_loss - ln2 * 7.5).abs() < 1e-4, "{}", l.seg_loss);
        let mut box_sum = 0.0;
        for (i, p) in pd.iter().enumerate() {
            if a.fg[i] {
                let w: f32 = a.scores[i * 2..i * 2 + 2].iter().sum();
                box_sum += (1.0 - ciou(*p, gt[0].xyxy)) * w;
            }
        }
        let box_l = box_sum / tss * 7.5;
        assert!(
            (l.box_loss - box_l).abs() < 1e-4 * box_l,
            "{} vs {box_l}",
            l.box_loss
        );
        let total = vec1(l.total)[0];
        assert!((total - (cls + dfl + box_l + ln2 * 7.5)).abs() < 1e-3);
    }

    /// Regression: a mosaic batch at imgsz 64 with few-pixel objects (as the demo data) reaches
    /// the loss with its objects, and they get positives and nonzero box, DFL and mask losses.
    /// With a freshly initialised head (uniform DFL bins: ±7.5-stride boxes, 120–480 px wide)
    /// the box and DFL terms are small but not zero: the task-aligned target scores that weight
    /// them are about the CIoU of those wide boxes with the objects (~1e-3 for 6 px objects),
    /// exactly as in Ultralytics.
    #[test]
    fn mosaic_batch_of_small_objects_has_box_dfl_and_mask_loss() {
        use crate::augment::detect::DetAugConfig;
        use crate::augment::{DetSample, Instance};
        use crate::loader::{DetCache, build_batch};
        let samples: Vec<DetSample> = (0..4)
            .map(|i| {
                let image = image::RgbImage::from_fn(64, 64, |x, y| {
                    image::Rgb([(x * 4) as u8, (y * 4) as u8, (i * 60) as u8])
                });
                let instances = (0..3)
                    .map(|k| {
                        let (x, y) = (10.0 + 15.0 * k as f32, 12.0 + 12.0 * k as f32);
                        let side = 6.0 + 2.0 * (i + k) as f32;
                        Instance {
                            class: k % 2,
                            polygons: vec![vec![
                                [x, y],
                                [x + side, y],
                                [x + side, y + side],
                                [x, y + side],
                            ]],
                        }
                    })
                    .collect();
                DetSample { image, instances }
            })
            .collect();
        let cfg = DetAugConfig {
            imgsz: 64,
            mosaic: 1.0,
            ..Default::default()
        };
        let cache = DetCache::new(samples, 64);
        let batch = build_batch(&cache, &[0, 1, 2, 3], 0, &cfg, 5, 0, 4);
        let n_obj: usize = batch.targets.iter().map(|t| t.boxes.len()).sum();
        assert!(n_obj >= 6, "{n_obj} objects in the mosaic batch");
        let d = Device::flex();
        let na = 84;
        let l = seg_loss(
            &SegLossConfig::yolov8(2),
            Tensor::zeros([4, 64, na], &d),
            Tensor::zeros([4, 2, na], &d),
            Tensor::zeros([4, 4, na], &d),
            Tensor::zeros([4, 4, 16, 16], &d),
            &yolo_levels(64),
            &batch.targets,
        )
        .unwrap();
        assert!(
            l.num_fg >= n_obj,
            "{} positives for {n_obj} objects",
            l.num_fg
        );
        for (name, v) in [
            ("box", l.box_loss),
            ("dfl", l.dfl_loss),
            ("mask", l.seg_loss),
        ] {
            assert!(v.is_finite() && v > 0.0, "{name} loss {v}");
        }
    }

    #[test]
    fn image_without_objects_only_has_class_loss() {
        let d = Device::flex();
        let (levels, [boxes, scores, coefs], proto, _) = zero_case(&d);
        let empty = vec![DetTargets {
            classes: vec![],
            boxes: vec![],
            masks: vec![],
            mask_size: 16,
        }];
        let l = seg_loss(
            &SegLossConfig::yolov8(2),
            boxes,
            scores,
            coefs,
            proto,
            &levels,
            &empty,
        )
        .unwrap();
        assert_eq!(l.num_fg, 0);
        assert_eq!((l.box_loss, l.dfl_loss, l.seg_loss), (0.0, 0.0, 0.0));
        assert!((l.cls_loss - 84.0 * 2.0 * std::f32::consts::LN_2 * 0.5).abs() < 1e-3);
    }

    #[test]
    fn gradient_steps_lower_the_loss() {
        let d = Device::flex().autodiff();
        let (levels, _, _, targets) = zero_case(&Device::flex());
        let mut rng = crate::rng::Rng::new(9);
        let mut rand =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-0.5, 0.5) as f32).collect() };
        let mut p_boxes: Tensor<3> = constant(rand(64 * 84), [1, 64, 84], &d);
        let mut p_scores: Tensor<3> = constant(rand(2 * 84), [1, 2, 84], &d);
        let mut p_coefs: Tensor<3> = constant(rand(4 * 84), [1, 4, 84], &d);
        let mut p_proto: Tensor<4> = constant(rand(4 * 256), [1, 4, 16, 16], &d);
        let cfg = SegLossConfig::yolov8(2);
        let mut losses = Vec::new();
        for _ in 0..4 {
            let (b, s, c, p) = (
                p_boxes.clone().detach().require_grad(),
                p_scores.clone().detach().require_grad(),
                p_coefs.clone().detach().require_grad(),
                p_proto.clone().detach().require_grad(),
            );
            let l = seg_loss(
                &cfg,
                b.clone(),
                s.clone(),
                c.clone(),
                p.clone(),
                &levels,
                &targets,
            )
            .unwrap();
            losses.push(vec1(l.total.clone())[0]);
            let g = l.total.backward();
            let lr = 0.05;
            p_boxes = b.clone() - b.grad(&g).unwrap() * lr;
            p_scores = s.clone() - s.grad(&g).unwrap() * lr;
            p_coefs = c.clone() - c.grad(&g).unwrap() * lr;
            p_proto = p.clone() - p.grad(&g).unwrap() * lr;
        }
        assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    }
}
