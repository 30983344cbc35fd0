//! The segmentation inference pipeline shared by the CLI, evaluation and the server:
//! letterbox → batched YOLOv8-seg forward → NMS → boxes and masks at the original resolution.
//!
//! [`Segmenter`] is a thread-safe handle (`Send + Sync`): load it once, share it (e.g. in an
//! `Arc`) and call [`Segmenter::predict`] from any thread.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use sightline_mask::Rle;
use sightline_torch::Checkpoint;

use crate::checkpoint::{Task, into_tensor_map, read_checkpoint, task_of};
use crate::error::{Result, VisionError};
use crate::network::{Engine, ExternalNetwork, FlatTensor};
use crate::postprocess::{InstanceMask, NmsSettings, masks_native, non_max_suppression, scale_box};
use crate::preprocess::{Letterbox, Resample, push_chw};
use crate::weights::{TensorMap, tensor_to_vec};
use crate::yolo::{YoloOutput, YoloV8Seg, YoloV8SegConfig};

/// Largest stride of the network: input sides are multiples of it.
pub const MAX_STRIDE: usize = 32;

/// Inference settings (Ultralytics `predict` arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentSettings {
    /// Letterbox size (rounded up to a multiple of 32).
    pub imgsz: usize,
    /// Thresholds and limits of NMS.
    pub nms: NmsSettings,
    /// Resampling used by the letterbox.
    pub resample: Resample,
}

impl Default for SegmentSettings {
    fn default() -> Self {
        Self {
            imgsz: 640,
            nms: NmsSettings::default(),
            resample: Resample::Cv2Linear,
        }
    }
}

impl SegmentSettings {
    /// Checks thresholds and rounds `imgsz` up to a multiple of the stride (as Ultralytics'
    /// `check_imgsz`).
    pub fn validated(mut self) -> Result<Self> {
        let unit = |name: &str, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(VisionError::InvalidArgument(format!(
                    "{name} must be between 0 and 1, got {v}"
                )))
            }
        };
        unit("conf", self.nms.conf)?;
        unit("iou", self.nms.iou)?;
        if self.imgsz == 0 {
            return Err(VisionError::InvalidArgument(
                "imgsz must be positive".into(),
            ));
        }
        self.imgsz = self.imgsz.div_ceil(MAX_STRIDE) * MAX_STRIDE;
        Ok(self)
    }
}

/// One detected instance, in original image coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Class index.
    pub class_id: usize,
    /// Class name.
    pub label: String,
    /// Class score.
    pub confidence: f32,
    /// `[x1, y1, x2, y2]` in original pixels, clipped to the image.
    pub box_xyxy: [f32; 4],
    /// Binary mask at the original resolution.
    pub mask: InstanceMask,
}

impl Detection {
    /// The mask as COCO RLE (column-major runs starting with background), the type the
    /// evaluation code works on.
    pub fn mask_rle(&self) -> Result<Rle> {
        let dim = |v: usize| {
            u32::try_from(v)
                .map_err(|_| VisionError::InvalidArgument(format!("image side {v} is too large")))
        };
        Rle::new(
            dim(self.mask.height)?,
            dim(self.mask.width)?,
            self.mask.rle_counts(),
        )
        .map_err(VisionError::MaskRle)
    }
}

/// A loaded YOLOv8-seg model ready for inference (batch norms folded once at load). The
/// forward pass runs on the Burn module, or on an [`ExternalNetwork`] set with
/// [`Segmenter::with_network`]; everything around it is the same code.
#[derive(Debug)]
pub struct Segmenter {
    model: YoloV8Seg,
    external: Option<Box<dyn ExternalNetwork>>,
    config: YoloV8SegConfig,
    labels: Vec<String>,
    device: Device,
}

impl Segmenter {
    /// Wraps a network; `labels` must have one name per class.
    pub fn new(
        model: YoloV8Seg,
        config: YoloV8SegConfig,
        labels: Vec<String>,
        device: Device,
    ) -> Result<Self> {
        if labels.len() != model.num_classes() {
            return Err(VisionError::InvalidArgument(format!(
                "the model has {} classes but {} labels were given",
                model.num_classes(),
                labels.len()
            )));
        }
        Ok(Self {
            model: model.fuse(),
            external: None,
            config,
            labels,
            device,
        })
    }

    /// Runs the forward pass on `network` instead of the Burn module (which stays as the
    /// reference: [`Segmenter::forward`] still uses it). The network must compute this model
    /// (same classes, same outputs), e.g. its ONNX export.
    pub fn with_network(mut self, network: Box<dyn ExternalNetwork>) -> Self {
        self.external = Some(network);
        self
    }

    /// The Burn module (batch norms folded), e.g. to export it.
    pub fn model(&self) -> &YoloV8Seg {
        &self.model
    }

    /// What runs the forward pass of [`Segmenter::predict`].
    pub fn engine(&self) -> Engine {
        match &self.external {
            Some(n) => Engine::External(n.describe()),
            None => Engine::Burn(format!("{:?}", self.device)),
        }
    }

    /// Builds the network from Ultralytics-named weights, recognising the scale and class count.
    pub fn from_weights(weights: &TensorMap, labels: Vec<String>, device: Device) -> Result<Self> {
        let config = YoloV8SegConfig::infer(weights)?;
        let model = YoloV8Seg::load(&config, weights, &device)?;
        Self::new(model, config, labels, device)
    }

    /// Loads a YOLOv8-seg checkpoint file (Ultralytics `.pt` or safetensors). Class names come
    /// from `labels` when given (their count must match the model), else from the checkpoint,
    /// else `class0`, `class1`, ….
    pub fn from_checkpoint(
        path: &Path,
        labels: Option<Vec<String>>,
        device: Device,
    ) -> Result<Self> {
        Self::from_loaded_checkpoint(read_checkpoint(path)?, labels, device)
    }

    /// Like [`Segmenter::from_checkpoint`] for a checkpoint already read.
    pub fn from_loaded_checkpoint(
        ckpt: Checkpoint,
        labels: Option<Vec<String>>,
        device: Device,
    ) -> Result<Self> {
        if let Some(task) = task_of(&ckpt)
            && task != Task::Segment
        {
            return Err(VisionError::Unsupported(format!(
                "{} holds a {task:?} model, not a segmentation model",
                ckpt.path.display()
            )));
        }
        let names = ckpt.meta.names.clone();
        let weights = into_tensor_map(ckpt);
        let config = YoloV8SegConfig::infer(&weights)?;
        let labels = match (labels, names) {
            (Some(l), _) => l,
            (None, Some(n)) if n.len() == config.num_classes => n,
            _ => (0..config.num_classes)
                .map(|i| format!("class{i}"))
                .collect(),
        };
        let model = YoloV8Seg::load(&config, &weights, &device)?;
        Self::new(model, config, labels, device)
    }

    /// Class names.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The architecture.
    pub fn config(&self) -> &YoloV8SegConfig {
        &self.config
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Raw eval-mode forward of the Burn module on an already letterboxed batch
    /// `[B, 3, H, W]` in `[0, 1]`.
    pub fn forward(&self, input: Tensor<4>) -> YoloOutput {
        self.model.forward(input)
    }

    /// The forward pass [`Segmenter::predict`] uses (external network when set, else Burn) on a
    /// letterboxed batch given as NCHW values: `[pred, proto]`.
    pub fn forward_flat(&self, input: Vec<f32>, shape: [usize; 4]) -> Result<[FlatTensor; 2]> {
        if input.len() != shape.iter().product::<usize>() {
            return Err(VisionError::InvalidArgument(format!(
                "{} values do not make a batch of shape {shape:?}",
                input.len()
            )));
        }
        if let Some(net) = &self.external {
            let mut outs = net.run(&input, shape)?.into_iter();
            return match (outs.next(), outs.next()) {
                (Some(pred), Some(proto)) => Ok([pred, proto]),
                _ => Err(VisionError::TensorData(format!(
                    "{} returned fewer than 2 outputs (pred, proto)",
                    net.describe()
                ))),
            };
        }
        let out = self.forward(Tensor::<4>::from_data(
            TensorData::new(input, shape),
            &self.device,
        ));
        let (pshape, pred) = tensor_to_vec(out.pred)?;
        let (qshape, proto) = tensor_to_vec(out.proto)?;
        Ok([
            FlatTensor {
                shape: pshape,
                data: pred,
            },
            FlatTensor {
                shape: qshape,
                data: proto,
            },
        ])
    }

    /// Letterboxes `image` and returns the network input `[3, H, W]` values with its geometry.
    pub fn prepare(
        &self,
        image: &RgbImage,
        settings: &SegmentSettings,
    ) -> Result<(Vec<f32>, Letterbox)> {
        let lb = Letterbox::new(
            image.height() as usize,
            image.width() as usize,
            settings.imgsz,
            MAX_STRIDE,
        )?;
        let boxed = lb.apply(image, settings.resample);
        let mut v = Vec::new();
        push_chw(&boxed, &mut v);
        Ok((v, lb))
    }

    /// Detects instances in every image. Images whose letterboxes share a shape go through the
    /// network as one batch; results do not depend on how images are grouped.
    pub fn predict(
        &self,
        images: &[RgbImage],
        settings: &SegmentSettings,
    ) -> Result<Vec<Vec<Detection>>> {
        let settings = settings.validated()?;
        let mut prepared = Vec::with_capacity(images.len());
        for img in images {
            prepared.push(self.prepare(img, &settings)?);
        }
        let mut results: Vec<Option<Vec<Detection>>> = vec![None; images.len()];
        let mut todo: Vec<usize> = (0..images.len()).collect();
        while let Some(&first) = todo.first() {
            let shape = prepared[first].1.input;
            let (group, rest): (Vec<usize>, Vec<usize>) =
                todo.iter().partition(|&&i| prepared[i].1.input == shape);
            todo = rest;
            let mut batch = Vec::with_capacity(group.len() * 3 * shape.0 * shape.1);
            for &i in &group {
                batch.extend_from_slice(&prepared[i].0);
            }
            let [pred, proto] = self.forward_flat(batch, [group.len(), 3, shape.0, shape.1])?;
            let dets = self.postprocess_flat(
                &pred,
                &proto,
                &group.iter().map(|&i| prepared[i].1).collect::<Vec<_>>(),
                &settings.nms,
            )?;
            for (&i, d) in group.iter().zip(dets) {
                results[i] = Some(d);
            }
        }
        Ok(results.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// NMS, box scaling and masks for a forwarded batch; `letterboxes[b]` describes image `b`.
    pub fn postprocess(
        &self,
        out: YoloOutput,
        letterboxes: &[Letterbox],
        nms: &NmsSettings,
    ) -> Result<Vec<Vec<Detection>>> {
        let (shape, data) = tensor_to_vec(out.pred)?;
        let pred = FlatTensor { shape, data };
        let (shape, data) = tensor_to_vec(out.proto)?;
        let proto = FlatTensor { shape, data };
        self.postprocess_flat(&pred, &proto, letterboxes, nms)
    }

    /// [`Segmenter::postprocess`] on flat outputs (`pred`, `proto` as from
    /// [`Segmenter::forward_flat`]).
    pub fn postprocess_flat(
        &self,
        pred: &FlatTensor,
        proto: &FlatTensor,
        letterboxes: &[Letterbox],
        nms: &NmsSettings,
    ) -> Result<Vec<Vec<Detection>>> {
        let nc = self.model.num_classes();
        let nm = self.model.num_masks();
        let (pshape, pred) = (&pred.shape, &pred.data);
        let (qshape, proto) = (&proto.shape, &proto.data);
        if pshape.len() != 3 || qshape.len() != 4 {
            return Err(VisionError::TensorData(format!(
                "unexpected network output shapes {pshape:?} / {qshape:?}"
            )));
        }
        let (b, c, a) = (pshape[0], pshape[1], pshape[2]);
        let (mh, mw) = (qshape[2], qshape[3]);
        if b != letterboxes.len()
            || c != 4 + nc + nm
            || qshape[0] != b
            || qshape[1] != nm
            || pred.len() != b * c * a
            || proto.len() != b * nm * mh * mw
        {
            return Err(VisionError::TensorData(format!(
                "unexpected network output shapes {pshape:?} / {qshape:?}"
            )));
        }
        let mut all = Vec::with_capacity(b);
        for (i, lb) in letterboxes.iter().enumerate() {
            let p = &pred[i * c * a..(i + 1) * c * a];
            let q = &proto[i * nm * mh * mw..(i + 1) * nm * mh * mw];
            let cands = non_max_suppression(p, a, nc, nm, nms);
            let boxes: Vec<[f32; 4]> = cands.iter().map(|k| scale_box(k.xyxy, lb)).collect();
            let coefs: Vec<&[f32]> = cands.iter().map(|k| k.coefs.as_slice()).collect();
            let masks = masks_native(q, nm, mh, mw, &coefs, &boxes, lb.orig);
            let dets = cands
                .iter()
                .zip(boxes)
                .zip(masks)
                .filter(|(_, m)| m.bits.iter().any(|&v| v != 0))
                .map(|((k, box_xyxy), mask)| Detection {
                    class_id: k.class_id,
                    label: self
                        .labels
                        .get(k.class_id)
                        .cloned()
                        .unwrap_or_else(|| format!("class{}", k.class_id)),
                    confidence: k.score,
                    box_xyxy,
                    mask,
                })
                .collect();
            all.push(dets);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn segmenter_is_thread_safe() {
        assert_send_sync::<Segmenter>();
    }

    #[test]
    fn settings_are_validated() {
        let s = SegmentSettings {
            imgsz: 250,
            ..SegmentSettings::default()
        };
        assert_eq!(s.validated().unwrap().imgsz, 256);
        let mut bad = SegmentSettings::default();
        bad.nms.conf = 1.5;
        assert!(bad.validated().is_err());
    }

    #[test]
    fn label_count_must_match() {
        let device = crate::backend::default_device();
        let config = YoloV8SegConfig::n(2);
        let model = YoloV8Seg::new(&config, &device);
        assert!(Segmenter::new(model, config, vec!["a".into()], device).is_err());
    }

    #[test]
    fn batched_and_single_predictions_agree() {
        let device = crate::backend::default_device();
        let config = YoloV8SegConfig::n(2);
        let model = YoloV8Seg::new(&config, &device);
        let seg = Segmenter::new(model, config, vec!["a".into(), "b".into()], device).unwrap();
        let imgs: Vec<RgbImage> = [(40u32, 60u32), (64, 64), (60, 40)]
            .iter()
            .map(|&(w, h)| {
                RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 90]))
            })
            .collect();
        let mut settings = SegmentSettings {
            imgsz: 64,
            ..SegmentSettings::default()
        };
        settings.nms.conf = 0.0; // random weights: keep whatever comes out
        let together = seg.predict(&imgs, &settings).unwrap();
        assert_eq!(together.len(), 3);
        for (img, dets) in imgs.iter().zip(&together) {
            let alone = seg.predict(std::slice::from_ref(img), &settings).unwrap();
            assert_eq!(&alone[0], dets);
            for d in dets {
                assert!(
                    d.box_xyxy[2] <= img.width() as f32 && d.box_xyxy[3] <= img.height() as f32
                );
                assert_eq!(d.mask.width, img.width() as usize);
                let rle = d.mask_rle().unwrap();
                assert_eq!((rle.h(), rle.w()), (img.height(), img.width()));
                assert_eq!(rle.area() as usize, d.mask.area());
                assert_eq!(rle.decode_row_major(), d.mask.to_dense());
            }
        }
    }
}
