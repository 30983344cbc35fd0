//! From decoded network output to detections, as Ultralytics' segmentation predictor does it:
//! confidence filter, class-aware NMS (`non_max_suppression`), boxes scaled back to the original
//! image (`scale_boxes`) and masks computed at the original resolution
//! (`process_mask_native`, i.e. `retina_masks=True`).

use crate::preprocess::Letterbox;
use crate::yolo::config::py_round;

/// Post-processing thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NmsSettings {
    /// Minimum class score (strictly greater).
    pub conf: f32,
    /// IoU above which a lower-scored box of the same class is suppressed.
    pub iou: f32,
    /// Maximum detections kept per image.
    pub max_det: usize,
    /// Maximum boxes entering NMS (highest scores first).
    pub max_nms: usize,
}

impl Default for NmsSettings {
    fn default() -> Self {
        Self {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            max_nms: 30_000,
        }
    }
}

/// A detection after NMS, in network-input coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// `[x1, y1, x2, y2]` in input pixels.
    pub xyxy: [f32; 4],
    /// Best class score.
    pub score: f32,
    /// Best class.
    pub class_id: usize,
    /// Mask coefficients.
    pub coefs: Vec<f32>,
}

/// Per-class offset separating classes in class-aware NMS (Ultralytics `max_wh`).
const MAX_WH: f32 = 7680.0;

fn area(b: &[f32; 4]) -> f32 {
    (b[2] - b[0]) * (b[3] - b[1])
}

/// IoU of two xyxy boxes (torchvision convention).
pub fn box_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / (area(a) + area(b) - inter)
}

/// Confidence filter + class-aware NMS on one image's prediction, laid out channel-major
/// (`pred[c * anchors + a]`, `c` in `0..4 + nc + nm`) exactly like the network output.
pub fn non_max_suppression(
    pred: &[f32],
    anchors: usize,
    nc: usize,
    nm: usize,
    settings: &NmsSettings,
) -> Vec<Candidate> {
    let at = |c: usize, a: usize| pred[c * anchors + a];
    let mut cands: Vec<Candidate> = Vec::new();
    for a in 0..anchors {
        // best class, first index on ties (torch max)
        let mut best = 0usize;
        let mut score = f32::NEG_INFINITY;
        for c in 0..nc {
            let s = at(4 + c, a);
            if s > score {
                score = s;
                best = c;
            }
        }
        if score.is_nan() || score <= settings.conf {
            continue;
        }
        let (cx, cy, w, h) = (at(0, a), at(1, a), at(2, a) / 2.0, at(3, a) / 2.0);
        cands.push(Candidate {
            xyxy: [cx - w, cy - h, cx + w, cy + h],
            score,
            class_id: best,
            coefs: (0..nm).map(|m| at(4 + nc + m, a)).collect(),
        });
    }
    // highest score first; stable, so equal scores keep anchor order
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    cands.truncate(settings.max_nms);
    let offset = |c: &Candidate| {
        let o = c.class_id as f32 * MAX_WH;
        [c.xyxy[0] + o, c.xyxy[1] + o, c.xyxy[2] + o, c.xyxy[3] + o]
    };
    let shifted: Vec<[f32; 4]> = cands.iter().map(offset).collect();
    let mut suppressed = vec![false; cands.len()];
    let mut keep = Vec::new();
    for i in 0..cands.len() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        if keep.len() == settings.max_det {
            break;
        }
        for j in i + 1..cands.len() {
            if !suppressed[j] && box_iou(&shifted[i], &shifted[j]) > settings.iou {
                suppressed[j] = true;
            }
        }
    }
    let mut out: Vec<Option<Candidate>> = cands.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| out[i].take()).collect()
}

/// Ultralytics `scale_boxes` + `clip_boxes`: from letterboxed input pixels to original pixels.
pub fn scale_box(xyxy: [f32; 4], lb: &Letterbox) -> [f32; 4] {
    let (ih, iw) = (lb.input.0 as f64, lb.input.1 as f64);
    let (h0, w0) = (lb.orig.0 as f64, lb.orig.1 as f64);
    let gain = (ih / h0).min(iw / w0);
    let new_h = py_round(h0 * gain).max(1.0);
    let new_w = py_round(w0 * gain).max(1.0);
    let (gy, gx) = ((new_h / h0) as f32, (new_w / w0) as f32);
    let pad_x = py_round((iw - new_w) / 2.0 - 0.1) as f32;
    let pad_y = py_round((ih - new_h) / 2.0 - 0.1) as f32;
    let (w, h) = (w0 as f32, h0 as f32);
    [
        ((xyxy[0] - pad_x) / gx).clamp(0.0, w),
        ((xyxy[1] - pad_y) / gy).clamp(0.0, h),
        ((xyxy[2] - pad_x) / gx).clamp(0.0, w),
        ((xyxy[3] - pad_y) / gy).clamp(0.0, h),
    ]
}

/// A binary instance mask at the original image resolution, stored as the window that can hold
/// foreground (the detection box); everything outside the window is background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMask {
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// First column of the window.
    pub x0: usize,
    /// First row of the window.
    pub y0: usize,
    /// Window width.
    pub win_w: usize,
    /// Window height.
    pub win_h: usize,
    /// Row-major window pixels, 0 or 1.
    pub bits: Vec<u8>,
}

impl InstanceMask {
    /// Whether pixel `(x, y)` is foreground.
    pub fn get(&self, x: usize, y: usize) -> bool {
        x >= self.x0
            && y >= self.y0
            && x < self.x0 + self.win_w
            && y < self.y0 + self.win_h
            && self.bits[(y - self.y0) * self.win_w + (x - self.x0)] != 0
    }

    /// Foreground pixel count.
    pub fn area(&self) -> usize {
        self.bits.iter().filter(|&&b| b != 0).count()
    }

    /// The full-image mask, row-major.
    pub fn to_dense(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.height * self.width];
        for y in 0..self.win_h {
            let row = &self.bits[y * self.win_w..(y + 1) * self.win_w];
            let start = (self.y0 + y) * self.width + self.x0;
            out[start..start + self.win_w].copy_from_slice(row);
        }
        out
    }

    /// COCO uncompressed RLE counts: column-major runs, starting with a (possibly empty) run
    /// of zeros.
    pub fn rle_counts(&self) -> Vec<u32> {
        let mut counts = Vec::new();
        let mut prev = 0u8;
        let mut run = 0u32;
        for x in 0..self.width {
            for y in 0..self.height {
                let v = u8::from(self.get(x, y));
                if v != prev {
                    counts.push(run);
                    run = 0;
                    prev = v;
                }
                run += 1;
            }
        }
        counts.push(run);
        counts
    }
}

/// Bilinear source taps (PyTorch `align_corners=False`, float32 arithmetic) for resizing
/// `src` samples to `dst` with the given `scale` (= src / dst, or 1 / factor).
fn taps(
    src: usize,
    dst_range: std::ops::Range<usize>,
    scale: f32,
) -> Vec<(usize, usize, f32, f32)> {
    dst_range
        .map(|d| {
            let s = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (s as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            let l1 = s - i0 as f32;
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// Bilinear resize of a row-major `h`×`w` map to `oh`×`ow` (`F.interpolate(mode="bilinear")`).
fn upsample_full(src: &[f32], h: usize, w: usize, oh: usize, ow: usize, scale: f32) -> Vec<f32> {
    let ys = taps(h, 0..oh, scale);
    let xs = taps(w, 0..ow, scale);
    let mut out = Vec::with_capacity(oh * ow);
    for &(y0, y1, hy0, hy1) in &ys {
        for &(x0, x1, wx0, wx1) in &xs {
            let v = hy0 * (wx0 * src[y0 * w + x0] + wx1 * src[y0 * w + x1])
                + hy1 * (wx0 * src[y1 * w + x0] + wx1 * src[y1 * w + x1]);
            out.push(v);
        }
    }
    out
}

/// Ultralytics `process_mask_native` for one image: mask logits `coefs · protos` upsampled to the
/// original image size, thresholded at 0 (sigmoid 0.5) and cropped to each box (given in
/// original pixels). `proto` is `[nm, mh, mw]` row-major.
pub fn masks_native(
    proto: &[f32],
    nm: usize,
    mh: usize,
    mw: usize,
    coefs: &[&[f32]],
    boxes: &[[f32; 4]],
    orig: (usize, usize),
) -> Vec<InstanceMask> {
    let (h, w) = orig;
    let plane = mh * mw;
    // letterbox padding of the network input, in input pixels (input = 4 · proto size)
    let gain = (4.0 * mh as f64 / h as f64).min(4.0 * mw as f64 / w as f64);
    let pad_h = 4 * mh as i64 - (py_round(h as f64 * gain) as i64).max(1);
    let pad_w = 4 * mw as i64 - (py_round(w as f64 * gain) as i64).max(1);
    let pad = pad_h | pad_w;
    let g = gcd(4, (pad | (pad / 2)) as u64);
    let f = 4u64.checked_div(g).unwrap_or(1) as usize;
    // content window of the (upsampled) prototype plane, as Ultralytics `scale_masks`
    let (uh, uw) = (mh * f, mw * f);
    let gain2 = (uh as f64 / h as f64).min(uw as f64 / w as f64);
    let ch = (py_round(h as f64 * gain2) as usize).max(1);
    let cw = (py_round(w as f64 * gain2) as usize).max(1);
    let top = py_round((uh as f64 - ch as f64) / 2.0 - 0.1) as usize;
    let left = py_round((uw as f64 - cw as f64) / 2.0 - 0.1) as usize;
    let (sy, sx) = (ch as f32 / h as f32, cw as f32 / w as f32);

    coefs
        .iter()
        .zip(boxes)
        .map(|(c, b)| {
            let mut logits = vec![0f32; plane];
            for (k, &ck) in c.iter().enumerate().take(nm) {
                let p = &proto[k * plane..(k + 1) * plane];
                for (l, &pv) in logits.iter_mut().zip(p) {
                    *l += ck * pv;
                }
            }
            let up = if f > 1 {
                upsample_full(&logits, mh, mw, uh, uw, 1.0 / f as f32)
            } else {
                logits
            };
            // crop window: columns x with x1 <= x < x2, rows likewise
            let x0 = (b[0].max(0.0).ceil() as usize).min(w);
            let x1 = ((b[2].min(w as f32)).ceil() as usize).min(w).max(x0);
            let y0 = (b[1].max(0.0).ceil() as usize).min(h);
            let y1 = ((b[3].min(h as f32)).ceil() as usize).min(h).max(y0);
            let xs = taps(cw, x0..x1, sx);
            let ys = taps(ch, y0..y1, sy);
            let mut bits = Vec::with_capacity((x1 - x0) * (y1 - y0));
            for &(r0, r1, hy0, hy1) in &ys {
                let row0 = &up[(top + r0) * uw + left..];
                let row1 = &up[(top + r1) * uw + left..];
                for &(c0, c1, wx0, wx1) in &xs {
                    let v = hy0 * (wx0 * row0[c0] + wx1 * row0[c1])
                        + hy1 * (wx0 * row1[c0] + wx1 * row1[c1]);
                    bits.push(u8::from(v > 0.0));
                }
            }
            InstanceMask {
                height: h,
                width: w,
                x0,
                y0,
                win_w: x1 - x0,
                win_h: y1 - y0,
                bits,
            }
        })
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred_from(rows: &[[f32; 6]]) -> Vec<f32> {
        // rows: cx, cy, w, h, score class 0, score class 1 → channel-major, no masks
        let n = rows.len();
        let mut v = vec![0f32; 6 * n];
        for (a, r) in rows.iter().enumerate() {
            for c in 0..6 {
                v[c * n + a] = r[c];
            }
        }
        v
    }

    #[test]
    fn nms_is_class_aware_and_ordered() {
        let pred = pred_from(&[
            [50.0, 50.0, 20.0, 20.0, 0.9, 0.1],
            [51.0, 50.0, 20.0, 20.0, 0.8, 0.1], // overlaps the first, same class → suppressed
            [51.0, 50.0, 20.0, 20.0, 0.1, 0.7], // same place, other class → kept
            [10.0, 10.0, 4.0, 4.0, 0.3, 0.2],   // elsewhere → kept
            [90.0, 90.0, 4.0, 4.0, 0.25, 0.1],  // not above conf → dropped
        ]);
        let out = non_max_suppression(&pred, 5, 2, 0, &NmsSettings::default());
        let got: Vec<(usize, f32)> = out.iter().map(|c| (c.class_id, c.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (1, 0.7), (0, 0.3)]);
        assert_eq!(out[0].xyxy, [40.0, 40.0, 60.0, 60.0]);
        let limited = non_max_suppression(
            &pred,
            5,
            2,
            0,
            &NmsSettings {
                max_det: 2,
                ..NmsSettings::default()
            },
        );
        assert_eq!(limited.len(), 2);
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = [0.0, 0.0, 10.0, 10.0];
        let b = [5.0, 0.0, 15.0, 10.0];
        assert!((box_iou(&a, &b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(box_iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
    }

    #[test]
    fn boxes_scale_back_through_padding() {
        // 100×200 image (h×w) at 64: resized 32×64, padded to 32×64 (no pad); then at 96
        let lb = Letterbox::new(100, 200, 64, 32).unwrap();
        assert_eq!(
            scale_box([0.0, 0.0, 64.0, 32.0], &lb),
            [0.0, 0.0, 200.0, 100.0]
        );
        // 50×200 at 64 → 16×64, padded to 32×64 with 8 rows on top
        let lb = Letterbox::new(50, 200, 64, 32).unwrap();
        assert_eq!(lb.top, 8);
        let b = scale_box([-5.0, 8.0, 32.0, 16.0], &lb);
        assert_eq!(b, [0.0, 0.0, 100.0, 25.0]);
    }

    #[test]
    fn rle_is_column_major_and_starts_with_zeros() {
        // 3×2 image, foreground at (x=0,y=0) and (x=1,y=2)
        let m = InstanceMask {
            height: 3,
            width: 2,
            x0: 0,
            y0: 0,
            win_w: 2,
            win_h: 3,
            bits: vec![1, 0, 0, 0, 0, 1],
        };
        assert_eq!(m.rle_counts(), vec![0, 1, 4, 1]);
        assert_eq!(m.area(), 2);
        let empty = InstanceMask {
            bits: vec![0; 6],
            ..m.clone()
        };
        assert_eq!(empty.rle_counts(), vec![6]);
    }

    #[test]
    fn native_masks_are_cropped_to_the_box() {
        // one prototype that is +1 everywhere, coefficient 1 → foreground wherever the box is
        let (mh, mw) = (4, 4);
        let proto = vec![1.0f32; mh * mw];
        let c: &[f32] = &[1.0];
        let masks = masks_native(&proto, 1, mh, mw, &[c], &[[2.5, 1.0, 6.0, 3.2]], (16, 16));
        let m = &masks[0];
        let dense = m.to_dense();
        for y in 0..16 {
            for x in 0..16 {
                let inside =
                    (x as f32) >= 2.5 && (x as f32) < 6.0 && (y as f32) >= 1.0 && (y as f32) < 3.2;
                assert_eq!(dense[y * 16 + x] == 1, inside, "({x},{y})");
            }
        }
        assert_eq!(m.area(), 3 * 3);
    }

    #[test]
    fn bilinear_taps_follow_half_pixel_centres() {
        // 2 → 4: sources 0 (clamped), 0.25, 0.75, 1.25 (both taps on the last sample)
        let t = taps(2, 0..4, 0.5);
        let l1: Vec<f32> = t.iter().map(|x| x.3).collect();
        assert_eq!(l1, vec![0.0, 0.25, 0.75, 0.25]);
        assert_eq!((t[3].0, t[3].1), (1, 1));
        let up = upsample_full(&[0.0, 8.0], 1, 2, 1, 4, 0.5);
        assert_eq!(up, vec![0.0, 2.0, 6.0, 8.0]);
    }
}
