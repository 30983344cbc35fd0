//! Classifier transforms (torchvision conventions): RandomResizedCrop, horizontal flip, colour
//! jitter for training; resize of the shorter side + centre crop for evaluation; ImageNet
//! normalisation into a CHW float buffer.

use super::warp::{Affine, warp_affine};
use crate::rng::Rng;
use image::RgbImage;

/// ImageNet channel means (RGB, 0–1 scale).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Classifier augmentation hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ClsAugConfig {
    /// Output side length (224 for MobileNetV3).
    pub size: u32,
    /// RandomResizedCrop area fraction range.
    pub crop_scale: (f64, f64),
    /// RandomResizedCrop aspect-ratio range.
    pub crop_ratio: (f64, f64),
    /// Horizontal flip probability.
    pub fliplr: f64,
    /// Brightness jitter (factor drawn from `[1-b, 1+b]`).
    pub brightness: f64,
    /// Contrast jitter.
    pub contrast: f64,
    /// Saturation jitter.
    pub saturation: f64,
}

impl Default for ClsAugConfig {
    fn default() -> Self {
        Self {
            size: 224,
            crop_scale: (0.08, 1.0),
            crop_ratio: (3.0 / 4.0, 4.0 / 3.0),
            fliplr: 0.5,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
        }
    }
}

/// A crop rectangle `(x, y, w, h)` in source pixels.
pub type CropRect = (f64, f64, f64, f64);

/// torchvision `RandomResizedCrop.get_params`: ten tries at a random area fraction and log-uniform
/// aspect ratio that fits, else a centre crop clamped to the ratio range.
pub fn random_resized_crop_params(
    w: u32,
    h: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut Rng,
) -> CropRect {
    let (wf, hf) = (f64::from(w), f64::from(h));
    let area = wf * hf;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.uniform(scale.0, scale.1);
        let ar = rng.uniform(lr0, lr1).exp();
        let cw = (target * ar).sqrt().round();
        let ch = (target / ar).sqrt().round();
        if cw > 0.0 && ch > 0.0 && cw <= wf && ch <= hf {
            let x = (rng.f64() * (wf - cw + 1.0)).floor();
            let y = (rng.f64() * (hf - ch + 1.0)).floor();
            return (x, y, cw, ch);
        }
    }
    let in_ratio = wf / hf.max(1.0);
    let (cw, ch) = if in_ratio < ratio.0 {
        (wf, (wf / ratio.0).round())
    } else if in_ratio > ratio.1 {
        ((hf * ratio.1).round(), hf)
    } else {
        (wf, hf)
    };
    (((wf - cw) / 2.0).floor(), ((hf - ch) / 2.0).floor(), cw, ch)
}

/// Crop `rect` from `img` and resize it to `size × size` (bilinear).
pub fn crop_resize(img: &RgbImage, rect: CropRect, size: u32) -> RgbImage {
    let (x, y, w, h) = rect;
    let s = f64::from(size);
    let m = Affine::scale(s / w.max(1e-9), s / h.max(1e-9)).then_after(&Affine::translate(-x, -y));
    warp_affine(img, &m, size, size, [0, 0, 0]).unwrap_or_else(|| RgbImage::new(size, size))
}

fn blend(a: f32, b: f32, factor: f32) -> f32 {
    (factor * a + (1.0 - factor) * b).clamp(0.0, 255.0)
}

/// torchvision-style colour jitter: brightness, contrast and saturation factors drawn from
/// `[1-x, 1+x]`, applied in a random order.
pub fn color_jitter(
    img: &mut RgbImage,
    brightness: f64,
    contrast: f64,
    saturation: f64,
    rng: &mut Rng,
) {
    let mut order = [0usize, 1, 2];
    rng.shuffle(&mut order);
    let fb = rng.uniform((1.0 - brightness).max(0.0), 1.0 + brightness) as f32;
    let fc = rng.uniform((1.0 - contrast).max(0.0), 1.0 + contrast) as f32;
    let fs = rng.uniform((1.0 - saturation).max(0.0), 1.0 + saturation) as f32;
    let grey = |p: &image::Rgb<u8>| {
        0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
    };
    for op in order {
        match op {
            0 if brightness > 0.0 => {
                for p in img.pixels_mut() {
                    p.0 = p.0.map(|c| blend(f32::from(c), 0.0, fb).round() as u8);
                }
            }
            1 if contrast > 0.0 => {
                let n = (img.width() * img.height()).max(1) as f32;
                let mean = img.pixels().map(grey).sum::<f32>() / n;
                for p in img.pixels_mut() {
                    p.0 = p.0.map(|c| blend(f32::from(c), mean, fc).round() as u8);
                }
            }
            2 if saturation > 0.0 => {
                for p in img.pixels_mut() {
                    let g = grey(p);
                    p.0 = p.0.map(|c| blend(f32::from(c), g, fs).round() as u8);
                }
            }
            _ => {}
        }
    }
}

/// Training transform: RandomResizedCrop, flip, colour jitter.
pub fn train_image(img: &RgbImage, cfg: &ClsAugConfig, rng: &mut Rng) -> RgbImage {
    let rect = random_resized_crop_params(
        img.width(),
        img.height(),
        cfg.crop_scale,
        cfg.crop_ratio,
        rng,
    );
    let mut out = crop_resize(img, rect, cfg.size);
    if rng.chance(cfg.fliplr) {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    color_jitter(&mut out, cfg.brightness, cfg.contrast, cfg.saturation, rng);
    out
}

/// Evaluation transform: resize the shorter side to `size / 0.875` (256 for 224), centre-crop `size`.
pub fn eval_image(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let short = (f64::from(size) / 0.875).floor();
    let r = short / w.min(h).max(1.0);
    let (nw, nh) = ((w * r).round().max(1.0), (h * r).round().max(1.0));
    let left = ((nw - f64::from(size)) / 2.0).round();
    let top = ((nh - f64::from(size)) / 2.0).round();
    let m =
        Affine::translate(-left, -top).then_after(&Affine::scale(nw / w.max(1.0), nh / h.max(1.0)));
    warp_affine(img, &m, size, size, [0, 0, 0]).unwrap_or_else(|| RgbImage::new(size, size))
}

/// RGB image → CHW floats normalised with ImageNet mean/std, appended to `out`.
pub fn normalize_into(img: &RgbImage, out: &mut Vec<f32>) {
    let n = (img.width() * img.height()) as usize;
    let start = out.len();
    out.resize(start + 3 * n, 0.0);
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[start + c * n + i] = (f32::from(p[c]) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_resized_crop_stays_inside_and_respects_ranges() {
        let mut rng = Rng::new(5);
        for _ in 0..500 {
            let (x, y, w, h) =
                random_resized_crop_params(300, 200, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
            assert!(x >= 0.0 && y >= 0.0 && x + w <= 300.0 && y + h <= 200.0);
            let frac = w * h / 60000.0;
            assert!((0.07..=1.01).contains(&frac), "{frac}");
        }
        // impossible ranges fall back to a centre crop clamped to the ratio
        let (x, y, w, h) =
            random_resized_crop_params(400, 100, (0.99, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        assert_eq!((w, h), (133.0, 100.0));
        assert_eq!((x, y), (133.0, 0.0));
    }

    #[test]
    fn crop_resize_picks_the_requested_region() {
        // left half red, right half blue: cropping the right half gives all blue
        let img = RgbImage::from_fn(64, 32, |x, _| {
            image::Rgb(if x < 32 { [255, 0, 0] } else { [0, 0, 255] })
        });
        let out = crop_resize(&img, (32.0, 0.0, 32.0, 32.0), 16);
        assert!(out.pixels().all(|p| p.0 == [0, 0, 255]));
        let e = eval_image(&img, 28);
        assert_eq!(e.dimensions(), (28, 28));
        // centre crop of a 2:1 image keeps the middle: left columns red, right blue
        assert_eq!(e.get_pixel(0, 14).0, [255, 0, 0]);
        assert_eq!(e.get_pixel(27, 14).0, [0, 0, 255]);
    }

    #[test]
    fn jitter_and_normalisation() {
        let mut img = RgbImage::from_pixel(8, 8, image::Rgb([128, 128, 128]));
        color_jitter(&mut img, 0.0, 0.0, 0.9, &mut Rng::new(2));
        // saturation of grey is a no-op
        assert!(img.pixels().all(|p| p.0 == [128, 128, 128]));
        let mut v = Vec::new();
        normalize_into(&img, &mut v);
        assert_eq!(v.len(), 3 * 64);
        assert!((v[0] - (128.0 / 255.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((v[64] - (128.0 / 255.0 - 0.456) / 0.224).abs() < 1e-6);
        let t = train_image(
            &img,
            &ClsAugConfig {
                size: 16,
                ..Default::default()
            },
            &mut Rng::new(1),
        );
        assert_eq!(t.dimensions(), (16, 16));
    }
}
