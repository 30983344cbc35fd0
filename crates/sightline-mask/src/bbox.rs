//! Box IoU (pycocotools `bbIou`) on `[x, y, w, h]` boxes.

/// IoU of a detection box with a ground-truth box, both `[x, y, w, h]`. With `gt_crowd` the union is the
/// detection's own area (pycocotools' crowd convention). Boxes that do not overlap give `0.0`.
pub fn box_iou(dt: &[f64; 4], gt: &[f64; 4], gt_crowd: bool) -> f64 {
    let w = (dt[2] + dt[0]).min(gt[2] + gt[0]) - dt[0].max(gt[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dt[3] + dt[1]).min(gt[3] + gt[1]) - dt[1].max(gt[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = dt[2] * dt[3];
    let u = if gt_crowd { da } else { da + gt[2] * gt[3] - i };
    i / u
}

/// IoU of two `[x1, y1, x2, y2]` boxes (Ultralytics' `box_iou` convention, no crowd rule);
/// `0.0` when the union is empty. The NMS of `sightline-vision` keeps its own float32 copy of
/// this on purpose: it must round exactly as torchvision's float32 NMS does.
pub fn box_iou_xyxy(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// IoU of every detection box with every ground-truth box, row-major `dt.len() × gt.len()`.
pub fn box_iou_matrix(dt: &[[f64; 4]], gt: &[[f64; 4]], gt_crowd: &[bool]) -> Vec<f64> {
    let mut out = Vec::with_capacity(dt.len() * gt.len());
    for d in dt {
        for (g, gb) in gt.iter().enumerate() {
            out.push(box_iou(d, gb, gt_crowd.get(g).copied().unwrap_or(false)));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn simple_cases() {
        let a = [0.0, 0.0, 10.0, 10.0];
        let b = [5.0, 0.0, 10.0, 10.0];
        assert!((box_iou(&a, &b, false) - 50.0 / 150.0).abs() < 1e-12);
        assert!((box_iou(&a, &b, true) - 0.5).abs() < 1e-12);
        assert_eq!(box_iou(&a, &[10.0, 0.0, 5.0, 5.0], false), 0.0);
        assert_eq!(box_iou_matrix(&[a, b], &[a], &[]), vec![1.0, 50.0 / 150.0]);
    }
}
