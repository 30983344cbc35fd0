//! Task-aligned assigner (TOOD / Ultralytics `TaskAlignedAssigner`), one image at a time.
//!
//! For every ground-truth box, the candidate anchors are those whose centre lies strictly
//! inside the box (boxes thinner than `stride_val` are widened to it about their centre, as
//! Ultralytics 8.4 does). Each candidate gets the alignment metric `score^alpha · CIoU^beta`
//! (score = predicted probability of the gt's class, CIoU clamped at 0); the `topk` best
//! candidates are positives. They are ranked among the candidates only: a ground truth whose
//! candidates all have a zero metric (a few-pixel object against the wide boxes of a fresh
//! head) still gets positives, with zero target scores, instead of losing its top-k slots to
//! anchors outside it. An anchor positive for several boxes keeps the box it overlaps most.
//! Target scores are one-hot on the gt's class scaled by the normalised alignment
//! `metric · max_iou(gt) / max_metric(gt)`.
//!
//! The assigner runs without gradients on plain slices; the losses then use its output as
//! constants.

use super::boxes::ciou;

/// Assigner hyper-parameters (YOLOv8 detection loss: top-k 10, alpha 0.5, beta 6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AssignerConfig {
    /// Positives per ground truth.
    pub topk: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Exponent of the class score in the alignment metric.
    pub alpha: f32,
    /// Exponent of the IoU in the alignment metric.
    pub beta: f32,
    /// Minimum box side for candidate selection (the second stride, 16).
    pub stride_val: f32,
    /// Small value preventing division by zero.
    pub eps: f32,
}

impl AssignerConfig {
    /// YOLOv8 defaults for `num_classes` classes.
    pub fn yolov8(num_classes: usize) -> Self {
        Self {
            topk: 10,
            num_classes,
            alpha: 0.5,
            beta: 6.0,
            stride_val: 16.0,
            eps: 1e-9,
        }
    }
}

/// A ground-truth object: class and box `[x1, y1, x2, y2]` in input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GtBox {
    /// Class index.
    pub class: usize,
    /// Box in input pixels.
    pub xyxy: [f32; 4],
}

/// The assignment for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Whether each anchor is a positive.
    pub fg: Vec<bool>,
    /// Index of the assigned ground truth per anchor (0 for negatives, as Ultralytics).
    pub gt_index: Vec<usize>,
    /// Soft class targets, row-major `[anchors × classes]` (zero rows for negatives).
    pub scores: Vec<f32>,
}

impl Assignment {
    /// Number of positive anchors.
    pub fn num_fg(&self) -> usize {
        self.fg.iter().filter(|&&f| f).count()
    }
}

/// Assign anchors of one image.
///
/// - `pd_scores`: predicted class probabilities (after sigmoid), `[anchors × classes]`;
/// - `pd_boxes`: predicted boxes `xyxy` in input pixels, one per anchor;
/// - `anchors`: anchor centres in input pixels;
/// - `gts`: the image's ground truths.
pub fn assign(
    cfg: &AssignerConfig,
    pd_scores: &[f32],
    pd_boxes: &[[f32; 4]],
    anchors: &[[f32; 2]],
    gts: &[GtBox],
) -> Assignment {
    let na = anchors.len();
    let nc = cfg.num_classes;
    let ng = gts.len();
    let mut out = Assignment {
        fg: vec![false; na],
        gt_index: vec![0; na],
        scores: vec![0.0; na * nc],
    };
    if ng == 0 || na == 0 {
        return out;
    }
    // candidates, overlaps and alignment metric, (gt × anchor)
    let mut in_gt = vec![false; ng * na];
    let mut overlaps = vec![0.0f32; ng * na];
    let mut metric = vec![0.0f32; ng * na];
    for (g, gt) in gts.iter().enumerate() {
        let [x1, y1, x2, y2] = gt.xyxy;
        let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
        let w = (x2 - x1).max(cfg.stride_val);
        let h = (y2 - y1).max(cfg.stride_val);
        let (ex1, ey1, ex2, ey2) = (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0);
        let class = gt.class.min(nc.saturating_sub(1));
        for (a, p) in anchors.iter().enumerate() {
            let eps = 1e-9;
            let inside =
                p[0] - ex1 > eps && p[1] - ey1 > eps && ex2 - p[0] > eps && ey2 - p[1] > eps;
            if !inside {
                continue;
            }
            let i = g * na + a;
            in_gt[i] = true;
            let iou = ciou(gt.xyxy, pd_boxes[a]).max(0.0);
            overlaps[i] = iou;
            let score = pd_scores[a * nc + class];
            metric[i] = score.powf(cfg.alpha) * iou.powf(cfg.beta);
        }
    }
    // top-k per gt among its candidates (ties by lower anchor index). Ranking only candidates
    // matters when fewer than k of them have a nonzero metric (a small object against wide
    // initial predictions: CIoU clamps to 0): ranking all anchors would fill the top-k with
    // zero-metric anchors outside the box and leave the object without any positive.
    let mut pos = vec![false; ng * na];
    let mut order: Vec<usize> = Vec::with_capacity(na);
    for g in 0..ng {
        let row = &metric[g * na..(g + 1) * na];
        order.clear();
        order.extend((0..na).filter(|&a| in_gt[g * na + a]));
        let k = cfg.topk.min(order.len());
        if k == 0 {
            continue;
        }
        order.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for &a in &order[..k] {
            pos[g * na + a] = true;
        }
    }
    // resolve anchors claimed by several gts: keep the gt with the largest overlap
    for a in 0..na {
        let claims = (0..ng).filter(|&g| pos[g * na + a]).count();
        if claims > 1 {
            let mut best = 0;
            for g in 1..ng {
                if overlaps[g * na + a] > overlaps[best * na + a] {
                    best = g;
                }
            }
            for g in 0..ng {
                pos[g * na + a] = g == best;
            }
        }
    }
    // normalisation per gt over its positives
    let mut max_metric = vec![0.0f32; ng];
    let mut max_iou = vec![0.0f32; ng];
    for g in 0..ng {
        for a in 0..na {
            if pos[g * na + a] {
                max_metric[g] = max_metric[g].max(metric[g * na + a]);
                max_iou[g] = max_iou[g].max(overlaps[g * na + a]);
            }
        }
    }
    for a in 0..na {
        let Some(g) = (0..ng).find(|&g| pos[g * na + a]) else {
            continue;
        };
        out.fg[a] = true;
        out.gt_index[a] = g;
        let norm = metric[g * na + a] * max_iou[g] / (max_metric[g] + cfg.eps);
        let class = gts[g].class.min(nc.saturating_sub(1));
        out.scores[a * nc + class] = norm;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn cfg(topk: usize, nc: usize) -> AssignerConfig {
        AssignerConfig {
            topk,
            ..AssignerConfig::yolov8(nc)
        }
    }

    /// Hand formula for CIoU of gt [0,0,32,32] and prediction [0,0,32,16].
    fn ciou_half() -> f64 {
        let v = 4.0 / (PI * PI) * (2f64.atan() - 1f64.atan()).powi(2);
        0.5 - (64.0 / 2048.0 + v * v / (0.5 + v))
    }

    #[test]
    fn top_k_positives_inside_the_box_with_normalised_scores() {
        // anchors: three inside gt [0,0,32,32], one outside
        let anchors = [[8.0, 8.0], [24.0, 8.0], [8.0, 24.0], [40.0, 8.0]];
        let gt = [GtBox {
            class: 1,
            xyxy: [0.0, 0.0, 32.0, 32.0],
        }];
        let pd_boxes = [
            [0.0, 0.0, 32.0, 32.0],       // perfect
            [0.0, 0.0, 32.0, 16.0],       // half
            [100.0, 100.0, 110.0, 110.0], // far: CIoU < 0 -> 0
            [0.0, 0.0, 32.0, 32.0],       // perfect but outside the gt
        ];
        // scores (class 0, class 1) per anchor
        let scores = [0.3, 0.81, 0.1, 0.25, 0.2, 0.9, 0.0, 1.0];
        let a = assign(&cfg(2, 2), &scores, &pd_boxes, &anchors, &gt);
        assert_eq!(a.fg, vec![true, true, false, false]);
        assert_eq!(a.num_fg(), 2);
        // metric: anchor 0 = sqrt(0.81) * 1 = 0.9; anchor 1 = sqrt(0.25) * ciou^6
        let m1 = 0.5 * ciou_half().powi(6);
        // normalised: metric * max_iou (1) / max_metric (0.9)
        assert!(
            (f64::from(a.scores[1]) - 1.0).abs() < 1e-5,
            "{}",
            a.scores[1]
        );
        assert!((f64::from(a.scores[3]) - m1 / 0.9).abs() < 1e-6);
        assert_eq!((a.scores[0], a.scores[2]), (0.0, 0.0));
        assert!(a.scores[4..].iter().all(|&s| s == 0.0));
    }

    #[test]
    fn anchor_claimed_by_two_boxes_goes_to_the_larger_overlap() {
        let anchors = [[16.0, 16.0], [4.0, 4.0], [36.0, 36.0]];
        let gts = [
            GtBox {
                class: 0,
                xyxy: [0.0, 0.0, 24.0, 24.0],
            },
            GtBox {
                class: 1,
                xyxy: [8.0, 8.0, 40.0, 40.0],
            },
        ];
        // anchor 0 predicts something close to gt 1
        let pd = [
            [8.0, 8.0, 38.0, 38.0],
            [0.0, 0.0, 20.0, 20.0],
            [10.0, 10.0, 40.0, 40.0],
        ];
        let scores = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
        let a = assign(&cfg(10, 2), &scores, &pd, &anchors, &gts);
        assert_eq!(a.fg, vec![true, true, true]);
        assert_eq!(a.gt_index, vec![1, 0, 1]);
        assert!(ciou(gts[1].xyxy, pd[0]) > ciou(gts[0].xyxy, pd[0]));
        // each anchor's score row is one-hot on its gt's class
        assert!(a.scores[0] == 0.0 && a.scores[1] > 0.0);
        assert!(a.scores[2] > 0.0 && a.scores[3] == 0.0);
    }

    #[test]
    fn tiny_boxes_are_widened_to_the_stride_for_candidates() {
        // 4x4 box centred at (10,10): alone it contains no anchor centre at (4,4); widened to
        // 16x16 ([2,2,18,18]) it does
        let anchors = [[4.0, 4.0], [20.0, 20.0]];
        let gts = [GtBox {
            class: 0,
            xyxy: [8.0, 8.0, 12.0, 12.0],
        }];
        let pd = [[8.0, 8.0, 12.0, 12.0], [8.0, 8.0, 12.0, 12.0]];
        let a = assign(&cfg(10, 1), &[1.0, 1.0], &pd, &anchors, &gts);
        assert_eq!(a.fg, vec![true, false]);
        let no_widen = AssignerConfig {
            stride_val: 0.0,
            ..cfg(10, 1)
        };
        assert_eq!(
            assign(&no_widen, &[1.0, 1.0], &pd, &anchors, &gts).num_fg(),
            0
        );
    }

    #[test]
    fn a_small_object_against_wide_predictions_keeps_positives_inside_it() {
        // a thin 2x8 object centred at (56, 56) of a 64 px image, between four stride-8 anchors;
        // every prediction is the ±7.5-stride square of a freshly initialised head, so the
        // candidates' CIoU is negative (clamped to 0) and every metric is 0. The top-k must
        // still come from the candidates (inside the box widened to 16 px), not from the
        // lowest-index anchors in the top-left corner (which left the object without positives).
        let anchors: Vec<[f32; 2]> = (0..64)
            .map(|i| [4.0 + 8.0 * (i % 8) as f32, 4.0 + 8.0 * (i / 8) as f32])
            .collect();
        let pd: Vec<[f32; 4]> = anchors
            .iter()
            .map(|p| [p[0] - 60.0, p[1] - 60.0, p[0] + 60.0, p[1] + 60.0])
            .collect();
        let gts = [GtBox {
            class: 0,
            xyxy: [55.0, 52.0, 57.0, 60.0],
        }];
        let inside = |p: &[f32; 2]| (48.0..64.0).contains(&p[0]) && (48.0..64.0).contains(&p[1]);
        for (p, b) in anchors.iter().zip(&pd) {
            if inside(p) {
                assert!(ciou(gts[0].xyxy, *b) < 0.0, "{p:?}");
            }
        }
        let a = assign(
            &AssignerConfig::yolov8(1),
            &vec![0.01; 64],
            &pd,
            &anchors,
            &gts,
        );
        assert_eq!(a.num_fg(), 4);
        for (i, p) in anchors.iter().enumerate() {
            assert_eq!(a.fg[i], inside(p), "{p:?}");
        }
        // zero alignment: positives, but with zero class targets (and zero box weights)
        assert!(a.scores.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn at_most_top_k_and_nothing_without_ground_truth() {
        // 16 anchors inside one box with increasing scores: the 10 best are positive
        let anchors: Vec<[f32; 2]> = (0..16)
            .map(|i| [2.0 + 4.0 * (i % 4) as f32, 2.0 + 4.0 * (i / 4) as f32])
            .collect();
        let gts = [GtBox {
            class: 0,
            xyxy: [0.0, 0.0, 16.0, 16.0],
        }];
        let pd = vec![[0.0, 0.0, 16.0, 16.0]; 16];
        let scores: Vec<f32> = (0..16).map(|i| (i as f32 + 1.0) / 16.0).collect();
        let a = assign(&AssignerConfig::yolov8(1), &scores, &pd, &anchors, &gts);
        assert_eq!(a.num_fg(), 10);
        assert!(a.fg[6..].iter().all(|&f| f) && a.fg[..6].iter().all(|&f| !f));
        // best anchor gets target 1, the weakest positive sqrt(7/16)/1
        assert!((a.scores[15] - 1.0).abs() < 1e-6);
        assert!((a.scores[6] - (7.0f32 / 16.0).sqrt()).abs() < 1e-6);
        let none = assign(&AssignerConfig::yolov8(1), &scores, &pd, &anchors, &[]);
        assert_eq!(none.num_fg(), 0);
        assert!(none.scores.iter().all(|&s| s == 0.0));
    }
}
