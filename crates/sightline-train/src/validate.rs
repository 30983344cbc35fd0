//! Detector validation during training: box and mask mAP50 / mAP50-95 the Ultralytics way
//! (NMS at conf 0.001, IoU 0.7, 300 detections; greedy matching at IoU .50:.95; `ap_per_class`),
//! with masks compared at the prototype resolution (¼ of the input) as Ultralytics'
//! segmentation validator does. Everything is in letterboxed input coordinates.

use crate::augment::detect::DetTargets;
use crate::detector::batch_tensor;
use crate::error::{Result, TrainError};
use burn::tensor::Device;
use image::RgbImage;
use serde::Serialize;
use sightline_eval::yolo::{ap_per_class, iou_thresholds, match_predictions};
use sightline_vision::postprocess::{NmsSettings, box_iou, non_max_suppression};
use sightline_vision::yolo::YoloV8Seg;

/// Validation metrics of a detector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DetValMetrics {
    /// Box mAP at IoU 0.5.
    pub box_map50: f64,
    /// Box mAP at IoU .50:.95.
    pub box_map: f64,
    /// Mask mAP at IoU 0.5.
    pub mask_map50: f64,
    /// Mask mAP at IoU .50:.95.
    pub mask_map: f64,
}

/// Binary mask (prototype resolution) of one detection: `coefs · proto > 0` inside the box.
fn pred_mask(
    coefs: &[f32],
    proto: &[f32],
    hw: (usize, usize),
    xyxy: [f32; 4],
    ratio: f32,
) -> Vec<u8> {
    let (mh, mw) = hw;
    let n = mh * mw;
    let mut m = vec![0u8; n];
    let [x1, y1, x2, y2] = xyxy.map(|v| v / ratio);
    for y in 0..mh {
        let yf = y as f32;
        if !(yf >= y1 && yf < y2) {
            continue;
        }
        for x in 0..mw {
            let xf = x as f32;
            if !(xf >= x1 && xf < x2) {
                continue;
            }
            let i = y * mw + x;
            let v: f32 = coefs
                .iter()
                .enumerate()
                .map(|(c, k)| k * proto[c * n + i])
                .sum();
            m[i] = u8::from(v > 0.0);
        }
    }
    m
}

fn mask_iou(a: &[u8], b: &[u8]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        inter += usize::from(*x & *y);
        union += usize::from(*x | *y);
    }
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Run `model` (eval mode: a non-autodiff device) on `images` with `targets`, `batch` at a time.
pub fn validate_detector(
    model: &YoloV8Seg,
    images: &[RgbImage],
    targets: &[DetTargets],
    batch: usize,
    device: &Device,
) -> Result<DetValMetrics> {
    if images.len() != targets.len() {
        return Err(TrainError::Shape(format!(
            "{} images, {} targets",
            images.len(),
            targets.len()
        )));
    }
    let nc = model.num_classes();
    let nm = model.num_masks();
    let nms = NmsSettings {
        conf: 0.001,
        iou: 0.7,
        max_det: 300,
        ..Default::default()
    };
    let th = iou_thresholds();
    let (mut tp_box, mut tp_mask, mut conf, mut pcls, mut tcls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (chunk_i, chunk) in images.chunks(batch.max(1)).enumerate() {
        let x = batch_tensor(chunk, device);
        let [_, _, h, _] = x.dims();
        let out = model.forward(x);
        let [b, ch, anchors] = out.pred.dims();
        let [_, _, mh, mw] = out.proto.dims();
        let pred = out
            .pred
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| TrainError::Data(format!("{e:?}")))?;
        let proto = out
            .proto
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| TrainError::Data(format!("{e:?}")))?;
        let ratio = h as f32 / mh as f32;
        for k in 0..b {
            let t = &targets[chunk_i * batch.max(1) + k];
            let mut cands = non_max_suppression(
                &pred[k * ch * anchors..(k + 1) * ch * anchors],
                anchors,
                nc,
                nm,
                &nms,
            );
            cands.sort_by(|a, b| b.score.total_cmp(&a.score));
            let np = cands.len();
            let nt = t.boxes.len();
            let proto_k = &proto[k * nm * mh * mw..(k + 1) * nm * mh * mw];
            let masks: Vec<Vec<u8>> = cands
                .iter()
                .map(|c| pred_mask(&c.coefs, proto_k, (mh, mw), c.xyxy, ratio))
                .collect();
            let mut iou_b = vec![0.0f64; nt * np];
            let mut iou_m = vec![0.0f64; nt * np];
            for ti in 0..nt {
                for (p, c) in cands.iter().enumerate() {
                    iou_b[ti * np + p] = f64::from(box_iou(&t.boxes[ti], &c.xyxy));
                    if t.mask_size == mh && mh == mw {
                        iou_m[ti * np + p] = mask_iou(&t.masks[ti], &masks[p]);
                    }
                }
            }
            let pc: Vec<usize> = cands.iter().map(|c| c.class_id).collect();
            let err = TrainError::Eval;
            tp_box.extend(match_predictions(&pc, &t.classes, &iou_b, &th).map_err(err)?);
            tp_mask.extend(match_predictions(&pc, &t.classes, &iou_m, &th).map_err(err)?);
            conf.extend(cands.iter().map(|c| f64::from(c.score)));
            pcls.extend(pc);
            tcls.extend(t.classes.iter().copied());
        }
    }
    let err = TrainError::Eval;
    let b = ap_per_class(&tp_box, &conf, &pcls, &tcls).map_err(err)?;
    let m = ap_per_class(&tp_mask, &conf, &pcls, &tcls).map_err(err)?;
    Ok(DetValMetrics {
        box_map50: b.map50,
        box_map: b.map50_95,
        mask_map50: m.map50,
        mask_map: m.map50_95,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicted_mask_is_cropped_to_the_box() {
        // one prototype, positive everywhere; coefficient 1 -> mask = the box at 1/4 scale
        let proto = vec![1.0f32; 8 * 8];
        let m = pred_mask(&[1.0], &proto, (8, 8), [4.0, 8.0, 16.0, 20.0], 4.0);
        let on: Vec<usize> = (0..64).filter(|&i| m[i] == 1).collect();
        // x in [1, 4), y in [2, 5)
        assert_eq!(on.len(), 9);
        assert!(
            on.iter()
                .all(|&i| (1..4).contains(&(i % 8)) && (2..5).contains(&(i / 8)))
        );
        // negative coefficient: empty mask
        assert!(
            pred_mask(&[-1.0], &proto, (8, 8), [0.0, 0.0, 32.0, 32.0], 4.0)
                .iter()
                .all(|&v| v == 0)
        );
        assert_eq!(mask_iou(&[1, 1, 0, 0], &[1, 0, 1, 0]), 1.0 / 3.0);
        assert_eq!(mask_iou(&[0, 0], &[0, 0]), 0.0);
    }
}
