//! Image classification inference with MobileNetV3: torchvision's evaluation preprocessing
//! (`Resize(256)` with PIL bilinear, `CenterCrop(224)`, `ToTensor`, ImageNet `Normalize`),
//! softmax, top-k, and [`Classifier`], a thread-safe (`Send + Sync`) handle that loads a
//! checkpoint once and classifies batches of images.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, RgbImage};

use crate::checkpoint::{Task, into_tensor_map, read_checkpoint, task_of};
use crate::error::{Result, VisionError};
use crate::mobilenet::{HeadPolicy, LoadReport, MobileNetV3, MobileNetV3Config};
use crate::network::{Engine, ExternalNetwork};
use crate::preprocess::resize_pil_bilinear;
use crate::weights::{TensorMap, tensor_to_vec};

/// ImageNet channel means (RGB), as torchvision's `Normalize`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// torchvision's classification evaluation transform.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyPreprocess {
    /// `Resize(resize)`: the shorter side becomes this many pixels (aspect kept).
    pub resize: usize,
    /// `CenterCrop(crop)`: side of the square fed to the network.
    pub crop: usize,
    /// Per-channel mean subtracted after scaling to `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f32; 3],
}

impl Default for ClassifyPreprocess {
    /// Resize 256, crop 224, ImageNet mean/std.
    fn default() -> Self {
        Self {
            resize: 256,
            crop: 224,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

impl ClassifyPreprocess {
    /// torchvision `Resize(size)` on a PIL image: the shorter side becomes `size`, the longer
    /// `int(size · long / short)`, resampled with PIL's bilinear filter (which antialiases when
    /// shrinking). An image already at that size is returned unchanged.
    pub fn resize_shorter(&self, img: &RgbImage) -> RgbImage {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        if short == 0 {
            return img.clone();
        }
        let new_short = self.resize;
        let new_long = (self.resize as f64 * long as f64 / short as f64) as usize;
        let (nw, nh) = if w <= h {
            (new_short, new_long)
        } else {
            (new_long, new_short)
        };
        if (nw, nh) == (w, h) {
            return img.clone();
        }
        resize_pil_bilinear(img, nw, nh)
    }

    /// torchvision `CenterCrop(crop)`: offsets `round((size − crop) / 2)` (Python rounding);
    /// an image smaller than the crop is first padded with zeros as torchvision does.
    pub fn center_crop(&self, img: &RgbImage) -> RgbImage {
        let c = self.crop;
        let (w, h) = (img.width() as usize, img.height() as usize);
        let padded;
        let (src, w, h) = if w < c || h < c {
            let (pl, pt) = (c.saturating_sub(w) / 2, c.saturating_sub(h) / 2);
            let (nw, nh) = (w.max(c), h.max(c));
            let mut p = RgbImage::new(nw as u32, nh as u32);
            image::imageops::replace(&mut p, img, pl as i64, pt as i64);
            padded = p;
            (&padded, nw, nh)
        } else {
            (img, w, h)
        };
        let top = py_round_half_even((h - c) as f64 / 2.0);
        let left = py_round_half_even((w - c) as f64 / 2.0);
        image::imageops::crop_imm(src, left as u32, top as u32, c as u32, c as u32).to_image()
    }

    /// The whole transform: `[3, crop, crop]` values (CHW, RGB) appended to `out`. Equal to
    /// normalising `center_crop(resize_shorter(img))`, without copying the image when no
    /// resize is needed and reading the crop in place.
    pub fn apply_into(&self, img: &RgbImage, out: &mut Vec<f32>) {
        let resized;
        let src = if self.needs_resize(img) {
            resized = self.resize_shorter(img);
            &resized
        } else {
            img
        };
        let c = self.crop;
        let (w, h) = (src.width() as usize, src.height() as usize);
        if w < c || h < c {
            // torchvision pads first; rare, take the general path
            let cropped = self.center_crop(src);
            self.normalise_into(cropped.as_raw(), c, 0, 0, out);
            return;
        }
        let top = py_round_half_even((h - c) as f64 / 2.0);
        let left = py_round_half_even((w - c) as f64 / 2.0);
        self.normalise_into(src.as_raw(), w, left, top, out);
    }

    /// Whether [`ClassifyPreprocess::resize_shorter`] would change the image's size.
    fn needs_resize(&self, img: &RgbImage) -> bool {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        if short == 0 {
            return false;
        }
        let new_long = (self.resize as f64 * long as f64 / short as f64) as usize;
        (short, long) != (self.resize, new_long)
    }

    /// Appends the normalised CHW values of the `crop × crop` window at (`left`, `top`) of an
    /// RGB buffer `stride` pixels wide.
    fn normalise_into(
        &self,
        raw: &[u8],
        stride: usize,
        left: usize,
        top: usize,
        out: &mut Vec<f32>,
    ) {
        let c = self.crop;
        out.reserve(3 * c * c);
        for ch in 0..3 {
            // same arithmetic as before: (v / 255 − mean) / std
            let (mean, std) = (self.mean[ch], self.std[ch]);
            for y in 0..c {
                let row =
                    &raw[((top + y) * stride + left) * 3..((top + y) * stride + left + c) * 3];
                out.extend(
                    row.chunks_exact(3)
                        .map(|px| (f32::from(px[ch]) / 255.0 - mean) / std),
                );
            }
        }
    }

    /// The whole transform of one image: `[3, crop, crop]` values (CHW, RGB).
    pub fn apply(&self, img: &RgbImage) -> Vec<f32> {
        let mut out = Vec::with_capacity(3 * self.crop * self.crop);
        self.apply_into(img, &mut out);
        out
    }
}

/// Python's `round` (half to even).
fn py_round_half_even(x: f64) -> usize {
    x.round_ties_even().max(0.0) as usize
}

/// Softmax of one row of logits (max-subtracted, as torch).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The `k` largest probabilities as `(class_id, probability)`, highest first (ties: lower id
/// first).
pub fn top_k(probabilities: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    idx.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    idx.truncate(k);
    idx
}

/// The classification of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Name of the most probable class.
    pub label: String,
    /// Its index.
    pub class_id: usize,
    /// Its probability.
    pub confidence: f32,
    /// Probability of every class, by class id.
    pub probabilities: Vec<f32>,
}

impl Classification {
    fn from_logits(logits: &[f32], labels: &[String]) -> Self {
        let probabilities = softmax(logits);
        let (class_id, confidence) = top_k(&probabilities, 1)
            .first()
            .copied()
            .unwrap_or((0, 0.0));
        Self {
            label: labels.get(class_id).cloned().unwrap_or_default(),
            class_id,
            confidence,
            probabilities,
        }
    }

    /// The `k` most probable classes as `(class_id, probability)`.
    pub fn top_k(&self, k: usize) -> Vec<(usize, f32)> {
        top_k(&self.probabilities, k)
    }
}

/// A loaded MobileNetV3 classifier ready for inference (batch norms folded once at load).
/// `Send + Sync`: share one handle between threads.
#[derive(Debug)]
pub struct Classifier {
    model: MobileNetV3,
    external: Option<Box<dyn ExternalNetwork>>,
    config: MobileNetV3Config,
    labels: Vec<String>,
    device: Device,
    preprocess: ClassifyPreprocess,
    max_batch: usize,
}

impl Classifier {
    /// Wraps a network (folding its batch norms); `labels` must have one name per class.
    pub fn new(
        model: MobileNetV3,
        config: MobileNetV3Config,
        labels: Vec<String>,
        device: Device,
    ) -> Result<Self> {
        if labels.len() != config.num_classes {
            return Err(VisionError::InvalidArgument(format!(
                "the model has {} classes but {} labels were given",
                config.num_classes,
                labels.len()
            )));
        }
        Ok(Self {
            model: model.fuse(),
            external: None,
            config,
            labels,
            device,
            preprocess: ClassifyPreprocess::default(),
            max_batch: 16,
        })
    }

    /// Loads a MobileNetV3 checkpoint (torchvision `.pth` state dict or safetensors with
    /// torchvision names) on the default device. Labels: `labels` if given, else the names
    /// stored in the checkpoint, else `class0`, `class1`, ….
    pub fn load(path: impl AsRef<Path>, labels: Option<Vec<String>>) -> Result<Self> {
        Self::load_on(path, labels, crate::backend::default_device())
    }

    /// [`Classifier::load`] on a given device.
    pub fn load_on(
        path: impl AsRef<Path>,
        labels: Option<Vec<String>>,
        device: Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        let ckpt = read_checkpoint(path)?;
        if task_of(&ckpt) == Some(Task::Segment) {
            return Err(VisionError::Unsupported(format!(
                "{} holds a segmentation model, not a classifier",
                path.display()
            )));
        }
        let stored = ckpt.meta.names.clone();
        let weights = into_tensor_map(ckpt);
        let config = MobileNetV3Config::infer(&weights).map_err(|e| in_file(path, e))?;
        let labels = labels.or(stored).unwrap_or_else(|| {
            (0..config.num_classes)
                .map(|i| format!("class{i}"))
                .collect()
        });
        Self::from_weights(&weights, labels, device).map_err(|e| in_file(path, e))
    }

    /// Builds the classifier from torchvision-named weights; the architecture is recognised
    /// from them and must have one class per label.
    pub fn from_weights(weights: &TensorMap, labels: Vec<String>, device: Device) -> Result<Self> {
        let config = MobileNetV3Config::infer(weights)?;
        if labels.len() != config.num_classes {
            return Err(VisionError::InvalidArgument(format!(
                "the checkpoint has {} classes but {} labels were given",
                config.num_classes,
                labels.len()
            )));
        }
        let model = MobileNetV3::load(&config, weights, &device)?;
        Self::new(model, config, labels, device)
    }

    /// Builds a classifier for `labels` from weights trained for any number of classes: the
    /// backbone is kept and, when the class counts differ, the final layer is re-initialised
    /// (reported). For fine-tuning starts, e.g. from ImageNet weights.
    pub fn from_backbone(
        weights: &TensorMap,
        labels: Vec<String>,
        device: Device,
    ) -> Result<(Self, LoadReport)> {
        let stored = MobileNetV3Config::infer(weights)?;
        let config = MobileNetV3Config::variant(stored.variant, labels.len());
        let (model, report) =
            MobileNetV3::load_with(&config, weights, HeadPolicy::ReplaceIfMismatch, &device)?;
        Ok((Self::new(model, config, labels, device)?, report))
    }

    /// Sets the preprocessing (default: resize 256, crop 224, ImageNet mean/std).
    pub fn with_preprocess(mut self, preprocess: ClassifyPreprocess) -> Self {
        self.preprocess = preprocess;
        self
    }

    /// Runs the forward pass of [`Classifier::logits`] and [`Classifier::predict`] on `network`
    /// instead of the Burn module (which [`Classifier::forward`] keeps using). The network must
    /// compute this model, e.g. its ONNX export.
    pub fn with_network(mut self, network: Box<dyn ExternalNetwork>) -> Self {
        self.external = Some(network);
        self
    }

    /// The Burn module (batch norms folded), e.g. to export it.
    pub fn model(&self) -> &MobileNetV3 {
        &self.model
    }

    /// What runs the forward pass of [`Classifier::predict`].
    pub fn engine(&self) -> Engine {
        match &self.external {
            Some(n) => Engine::External(n.describe()),
            None => Engine::Burn(format!("{:?}", self.device)),
        }
    }

    /// Sets how many images go through the network at once (at least 1).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Class names by class id.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The architecture.
    pub fn config(&self) -> &MobileNetV3Config {
        &self.config
    }

    /// The preprocessing.
    pub fn preprocess(&self) -> &ClassifyPreprocess {
        &self.preprocess
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Logits `[B, classes]` of an already preprocessed batch `[B, 3, crop, crop]`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        self.model.forward(input)
    }

    /// Logits of preprocessed CHW images (`n` images of `[3, h, w]` concatenated).
    pub fn logits(&self, chw: Vec<f32>, n: usize, h: usize, w: usize) -> Result<Vec<Vec<f32>>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if chw.len() != n * 3 * h * w {
            return Err(VisionError::InvalidArgument(format!(
                "{} values do not make {n} images of 3×{h}×{w}",
                chw.len()
            )));
        }
        let (shape, data) = match &self.external {
            Some(net) => {
                let out = net
                    .run(&chw, [n, 3, h, w])?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        VisionError::TensorData(format!("{} returned no output", net.describe()))
                    })?;
                (out.shape, out.data)
            }
            None => {
                let input = Tensor::from_data(TensorData::new(chw, [n, 3, h, w]), &self.device);
                tensor_to_vec(self.forward(input))?
            }
        };
        let classes = shape.get(1).copied().unwrap_or(0);
        if classes == 0 || shape.len() != 2 || shape[0] != n || data.len() != n * classes {
            return Err(VisionError::TensorData(format!(
                "logits of shape {shape:?}"
            )));
        }
        Ok(data.chunks(classes).map(<[f32]>::to_vec).collect())
    }

    /// Classifies images (any size; converted to RGB), `max_batch` at a time.
    pub fn predict(&self, images: &[DynamicImage]) -> Result<Vec<Classification>> {
        let mut out = Vec::with_capacity(images.len());
        let c = self.preprocess.crop;
        for chunk in images.chunks(self.max_batch) {
            let mut chw = Vec::with_capacity(chunk.len() * 3 * c * c);
            for img in chunk {
                match img.as_rgb8() {
                    Some(rgb) => self.preprocess.apply_into(rgb, &mut chw),
                    None => self.preprocess.apply_into(&img.to_rgb8(), &mut chw),
                }
            }
            for logits in self.logits(chw, chunk.len(), c, c)? {
                out.push(Classification::from_logits(&logits, &self.labels));
            }
        }
        Ok(out)
    }

    /// Reads and classifies image files.
    pub fn predict_paths(&self, paths: &[impl AsRef<Path>]) -> Result<Vec<Classification>> {
        let images = paths
            .iter()
            .map(|p| {
                // Content-sniffed (dataset store files have no extension), EXIF-oriented.
                crate::preprocess::load_rgb(p.as_ref()).map(DynamicImage::ImageRgb8)
            })
            .collect::<Result<Vec<_>>>()?;
        self.predict(&images)
    }
}

fn in_file(path: &Path, e: VisionError) -> VisionError {
    match e {
        VisionError::Checkpoint { .. }
        | VisionError::ReadCheckpoint { .. }
        | VisionError::InFile { .. } => e,
        other => VisionError::InFile {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_and_top_k() {
        let p = softmax(&[1.0, 3.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(top_k(&p, 2).iter().map(|x| x.0).collect::<Vec<_>>(), [1, 3]);
        let big = softmax(&[1000.0, 0.0]);
        assert!((big[0] - 1.0).abs() < 1e-6 && big[1] >= 0.0);
    }

    #[test]
    fn resize_and_crop_geometry_follow_torchvision() {
        let pre = ClassifyPreprocess::default();
        // 320×200: short side 200 → 256, long int(256·320/200) = 409
        let r = pre.resize_shorter(&RgbImage::new(320, 200));
        assert_eq!((r.width(), r.height()), (409, 256));
        let r = pre.resize_shorter(&RgbImage::new(100, 300));
        assert_eq!((r.width(), r.height()), (256, 768));
        // crop offsets: round((409 − 224) / 2) = round(92.5) = 92 (half to even)
        let mut img = RgbImage::new(409, 256);
        img.put_pixel(92, 16, image::Rgb([255, 0, 0]));
        let c = pre.center_crop(&img);
        assert_eq!((c.width(), c.height()), (224, 224));
        assert_eq!(c.get_pixel(0, 0).0, [255, 0, 0]);
        // smaller than the crop: zero padding, image centred
        let small = RgbImage::from_pixel(10, 10, image::Rgb([9, 9, 9]));
        let c = pre.center_crop(&small);
        assert_eq!((c.width(), c.height()), (224, 224));
        assert_eq!(c.get_pixel(107, 107).0, [9, 9, 9]);
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
    }

    #[test]
    fn in_place_crop_equals_resize_then_crop() {
        let pre = ClassifyPreprocess::default();
        for (w, h) in [
            (256u32, 256u32),
            (320, 200),
            (256, 300),
            (100, 80),
            (224, 224),
            (257, 256),
        ] {
            let img = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([
                    (x * 7 % 251) as u8,
                    (y * 5 % 253) as u8,
                    ((x + y) % 256) as u8,
                ])
            });
            let reference = pre.center_crop(&pre.resize_shorter(&img));
            let mut expected = Vec::new();
            for c in 0..3 {
                expected.extend(
                    reference
                        .pixels()
                        .map(|p| (f32::from(p.0[c]) / 255.0 - pre.mean[c]) / pre.std[c]),
                );
            }
            assert_eq!(pre.apply(&img), expected, "{w}×{h}");
        }
    }

    #[test]
    fn normalisation_is_imagenet() {
        let pre = ClassifyPreprocess::default();
        let img = RgbImage::from_pixel(256, 256, image::Rgb([255, 0, 128]));
        let v = pre.apply(&img);
        assert_eq!(v.len(), 3 * 224 * 224);
        assert!((v[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((v[224 * 224] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
        assert!((v[2 * 224 * 224] - (128.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    }

    #[test]
    fn classifier_is_send_sync_and_checks_labels() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Classifier>();
        let device = crate::backend::default_device();
        let cfg = MobileNetV3Config::small(2);
        let m = cfg.init(&device);
        assert!(Classifier::new(m, cfg, vec!["a".into()], device).is_err());
    }
}
