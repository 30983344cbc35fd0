//! Box geometry shared by the assigner and the losses (scalar, no autodiff): anchor grids,
//! distance ↔ box conversions and CIoU, following the Ultralytics conventions.

/// One detection level: feature map size and stride in input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Feature map height.
    pub h: usize,
    /// Feature map width.
    pub w: usize,
    /// Input pixels per feature cell (8, 16, 32 for YOLOv8).
    pub stride: u32,
}

/// The three YOLOv8 levels for a square `imgsz` input (strides 8, 16, 32).
pub fn yolo_levels(imgsz: u32) -> Vec<Level> {
    [8u32, 16, 32]
        .iter()
        .map(|&s| Level {
            h: (imgsz / s) as usize,
            w: (imgsz / s) as usize,
            stride: s,
        })
        .collect()
}

/// Anchor points (cell centres, `x + 0.5, y + 0.5`, in grid units of their level) and the
/// stride of each, level after level, row-major (Ultralytics `make_anchors`).
pub fn make_anchors(levels: &[Level]) -> (Vec<[f32; 2]>, Vec<f32>) {
    let mut pts = Vec::new();
    let mut strides = Vec::new();
    for l in levels {
        for y in 0..l.h {
            for x in 0..l.w {
                pts.push([x as f32 + 0.5, y as f32 + 0.5]);
                strides.push(l.stride as f32);
            }
        }
    }
    (pts, strides)
}

/// Distances `(l, t, r, b)` from an anchor to a box `[x1, y1, x2, y2]` → box.
pub fn dist2bbox(d: [f32; 4], anchor: [f32; 2]) -> [f32; 4] {
    [
        anchor[0] - d[0],
        anchor[1] - d[1],
        anchor[0] + d[2],
        anchor[1] + d[3],
    ]
}

/// Box `[x1, y1, x2, y2]` → distances `(l, t, r, b)` from the anchor, clamped to
/// `[0, reg_max - 0.01]` (Ultralytics `bbox2dist` with `reg_max = 15` for 16 bins).
pub fn bbox2dist(anchor: [f32; 2], b: [f32; 4], reg_max: f32) -> [f32; 4] {
    [
        anchor[0] - b[0],
        anchor[1] - b[1],
        b[2] - anchor[0],
        b[3] - anchor[1],
    ]
    .map(|v| v.clamp(0.0, reg_max - 0.01))
}

/// Complete IoU of two `xyxy` boxes with Ultralytics' `bbox_iou(..., CIoU=True)` conventions
/// (eps 1e-7 added to heights, union and diagonal).
pub fn ciou(b1: [f32; 4], b2: [f32; 4]) -> f32 {
    let eps = 1e-7f64;
    let [a1, a2, a3, a4] = b1.map(f64::from);
    let [c1, c2, c3, c4] = b2.map(f64::from);
    let (w1, h1) = (a3 - a1, a4 - a2 + eps);
    let (w2, h2) = (c3 - c1, c4 - c2 + eps);
    let inter = (a3.min(c3) - a1.max(c1)).max(0.0) * (a4.min(c4) - a2.max(c2)).max(0.0);
    let union = w1 * h1 + w2 * h2 - inter + eps;
    let iou = inter / union;
    let cw = a3.max(c3) - a1.min(c1);
    let ch = a4.max(c4) - a2.min(c2);
    let c2d = cw * cw + ch * ch + eps;
    let rho2 = ((c1 + c3 - a1 - a3).powi(2) + (c2 + c4 - a2 - a4).powi(2)) / 4.0;
    let v = (4.0 / std::f64::consts::PI.powi(2)) * ((w2 / h2).atan() - (w1 / h1).atan()).powi(2);
    let alpha = v / (1.0 - iou + v + eps);
    (iou - (rho2 / c2d + v * alpha)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_cover_every_level_in_order() {
        let (pts, strides) = make_anchors(&yolo_levels(64));
        assert_eq!(pts.len(), 64 + 16 + 4);
        assert_eq!(pts[0], [0.5, 0.5]);
        assert_eq!(pts[9], [1.5, 1.5]);
        assert_eq!(pts[64], [0.5, 0.5]);
        assert_eq!((strides[63], strides[64], strides[83]), (8.0, 16.0, 32.0));
    }

    #[test]
    fn dist_and_box_round_trip_and_clamp() {
        let a = [4.5, 3.5];
        let b = [2.0, 1.0, 9.0, 5.5];
        let d = bbox2dist(a, b, 15.0);
        assert_eq!(d, [2.5, 2.5, 4.5, 2.0]);
        assert_eq!(dist2bbox(d, a), b);
        assert_eq!(
            bbox2dist(a, [-30.0, 4.0, 5.0, 40.0], 15.0),
            [14.99, 0.0, 0.5, 14.99]
        );
    }

    #[test]
    fn ciou_by_hand() {
        // identical boxes: 1
        assert!((ciou([0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]) - 1.0).abs() < 1e-6);
        // same shape, shifted by 1 in x: IoU = 2/6, enclosing 3x2 -> c² = 13, rho² = 1, v = 0
        let v = ciou([0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]);
        assert!((v - (1.0 / 3.0 - 1.0 / 13.0)).abs() < 1e-6, "{v}");
        // nested 4x2 and 2x2 sharing the left edge: IoU 0.5, centres 1 apart, c² = 20,
        // v = 4/pi² (atan(1) - atan(2))², alpha = v / (0.5 + v)
        let v4 = 4.0 / std::f64::consts::PI.powi(2) * (1f64.atan() - 2f64.atan()).powi(2);
        let expect = 0.5 - (1.0 / 20.0 + v4 * v4 / (0.5 + v4));
        let got = ciou([0.0, 0.0, 4.0, 2.0], [0.0, 0.0, 2.0, 2.0]);
        assert!((f64::from(got) - expect).abs() < 1e-6, "{got} vs {expect}");
        // disjoint boxes go negative
        assert!(ciou([0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]) < 0.0);
    }
}
