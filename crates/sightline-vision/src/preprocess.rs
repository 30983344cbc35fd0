//! Image input: decoding (EXIF orientation applied, like `cv2.imread`), letterboxing as
//! Ultralytics' predictor does it (`LetterBox(auto=True)`: scale to fit `imgsz`, pad to the
//! next multiple of the stride with gray 114, split the padding in two) and conversion to a
//! `[3, H, W]` float tensor in `[0, 1]`.
//!
//! Two resamplers are implemented: [`Resample::Cv2Linear`] reproduces OpenCV's
//! `INTER_LINEAR` 8-bit fixed-point arithmetic (what Ultralytics' predictor uses) and
//! [`Resample::PilBilinear`] reproduces Pillow's antialiased `BILINEAR` (what the reference
//! fixtures' raw-output inputs were made with).

use std::path::Path;

use image::RgbImage;

use crate::error::{Result, VisionError};
use crate::yolo::config::py_round;

/// Gray level of the letterbox padding.
pub const PAD_VALUE: u8 = 114;

/// Resampling used to scale an image into the letterbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resample {
    /// OpenCV `cv2.resize(..., INTER_LINEAR)` on 8-bit images (Ultralytics predict).
    #[default]
    Cv2Linear,
    /// Pillow `Image.resize(..., BILINEAR)` (antialiased when shrinking).
    PilBilinear,
}

/// Reads an image file as 8-bit RGB, applying its EXIF orientation. JPEGs decode through
/// libjpeg-turbo ([`sightline_imageio`]), bit-identical to PIL/OpenCV.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = fs_err::read(path)?;
    let options = sightline_imageio::DecodeOptions {
        apply_orientation: true,
        ..Default::default()
    };
    options.decode_rgb(&bytes).map_err(|e| VisionError::Image {
        path: path.to_path_buf(),
        source: e.into_image_error(),
    })
}

/// Geometry of one letterbox: where the resized image sits in the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Letterbox {
    /// Original `(height, width)`.
    pub orig: (usize, usize),
    /// Resized image `(height, width)` before padding.
    pub resized: (usize, usize),
    /// Padding rows above.
    pub top: usize,
    /// Padding columns on the left.
    pub left: usize,
    /// Network input `(height, width)`, multiples of the stride.
    pub input: (usize, usize),
}

impl Letterbox {
    /// Ultralytics `LetterBox(new_shape=imgsz, auto=True, stride)` geometry for an image of
    /// `height`×`width`.
    pub fn new(height: usize, width: usize, imgsz: usize, stride: usize) -> Result<Self> {
        if height == 0 || width == 0 {
            return Err(VisionError::InvalidArgument("empty image".into()));
        }
        if imgsz == 0 || stride == 0 || !imgsz.is_multiple_of(stride) {
            return Err(VisionError::InvalidArgument(format!(
                "image size {imgsz} must be a positive multiple of {stride}"
            )));
        }
        let (h, w) = (height as f64, width as f64);
        let r = (imgsz as f64 / h).min(imgsz as f64 / w);
        let new_w = (py_round(w * r) as usize).max(1);
        let new_h = (py_round(h * r) as usize).max(1);
        let dw = (imgsz as i64 - new_w as i64).rem_euclid(stride as i64) as f64 / 2.0;
        let dh = (imgsz as i64 - new_h as i64).rem_euclid(stride as i64) as f64 / 2.0;
        let top = py_round(dh - 0.1) as usize;
        let bottom = py_round(dh + 0.1) as usize;
        let left = py_round(dw - 0.1) as usize;
        let right = py_round(dw + 0.1) as usize;
        Ok(Self {
            orig: (height, width),
            resized: (new_h, new_w),
            top,
            left,
            input: (new_h + top + bottom, new_w + left + right),
        })
    }

    /// Applies the letterbox to `img` (which must be `orig`-sized).
    pub fn apply(&self, img: &RgbImage, resample: Resample) -> RgbImage {
        let (rh, rw) = self.resized;
        let resized;
        let src = if (img.height() as usize, img.width() as usize) == (rh, rw) {
            img
        } else {
            resized = match resample {
                Resample::Cv2Linear => resize_cv2_linear(img, rw, rh),
                Resample::PilBilinear => resize_pil_bilinear(img, rw, rh),
            };
            &resized
        };
        let (ih, iw) = self.input;
        let mut out = RgbImage::from_pixel(iw as u32, ih as u32, image::Rgb([PAD_VALUE; 3]));
        for y in 0..rh {
            let src_row = &src.as_raw()[y * rw * 3..(y + 1) * rw * 3];
            let start = ((y + self.top) * iw + self.left) * 3;
            out.as_mut()[start..start + rw * 3].copy_from_slice(src_row);
        }
        out
    }
}

/// Appends an RGB image as planar `[3, H, W]` floats in `[0, 1]`.
pub fn push_chw(img: &RgbImage, out: &mut Vec<f32>) {
    let n = (img.width() * img.height()) as usize;
    let raw = img.as_raw();
    out.reserve(3 * n);
    for c in 0..3 {
        out.extend(
            raw[c..]
                .iter()
                .step_by(3)
                .take(n)
                .map(|&v| f32::from(v) / 255.0),
        );
    }
}

/// A deterministic test/benchmark image: smooth colour gradients with a few bright disks.
pub fn synthetic_image(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let mut v = [60.0 + 120.0 * fx, 80.0 + 100.0 * fy, 140.0 - 60.0 * fx * fy];
        for (cx, cy, r) in [(0.3f32, 0.4f32, 0.1f32), (0.7, 0.6, 0.15), (0.5, 0.2, 0.05)] {
            if (fx - cx).powi(2) + (fy - cy).powi(2) < r * r {
                v = [230.0, 225.0, 210.0];
            }
        }
        image::Rgb(v.map(|c| c as u8))
    })
}

// ---------------------------------------------------------------------------------------------
// OpenCV INTER_LINEAR (8-bit): 11-bit fixed-point coefficients, horizontal pass into i32,
// vertical pass with the rounding of OpenCV's vectorised `VResizeLinearVec_32s8u`.
// ---------------------------------------------------------------------------------------------

const CV_COEF_BITS: u32 = 11;
const CV_COEF_SCALE: f32 = (1 << CV_COEF_BITS) as f32;

/// Source index and fixed-point weights per destination coordinate.
fn cv2_taps(src: usize, dst: usize) -> Vec<(usize, usize, i32, i32)> {
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if s < 0 {
                s = 0;
                frac = 0.0;
            }
            if s >= src as i64 - 1 {
                s = src as i64 - 1;
                frac = 0.0;
            }
            let s = s as usize;
            let s1 = (s + 1).min(src - 1);
            let a0 = ((1.0 - frac) * CV_COEF_SCALE).round_ties_even() as i32;
            let a1 = (frac * CV_COEF_SCALE).round_ties_even() as i32;
            (s, s1, a0, a1)
        })
        .collect()
}

/// `cv2.resize(img, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR)`.
pub fn resize_cv2_linear(img: &RgbImage, dst_w: usize, dst_h: usize) -> RgbImage {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let xs = cv2_taps(sw, dst_w);
    let ys = cv2_taps(sh, dst_h);
    let raw = img.as_raw();
    // horizontal pass for every source row (values scaled by 2^11)
    let hrow = |y: usize| -> Vec<i32> {
        let row = &raw[y * sw * 3..(y + 1) * sw * 3];
        let mut out = Vec::with_capacity(dst_w * 3);
        for &(s0, s1, a0, a1) in &xs {
            for c in 0..3 {
                out.push(i32::from(row[s0 * 3 + c]) * a0 + i32::from(row[s1 * 3 + c]) * a1);
            }
        }
        out
    };
    let rows: Vec<Vec<i32>> = (0..sh).map(hrow).collect();
    let mut out = RgbImage::new(dst_w as u32, dst_h as u32);
    let dst = out.as_mut();
    for (dy, &(s0, s1, b0, b1)) in ys.iter().enumerate() {
        let (r0, r1) = (&rows[s0], &rows[s1]);
        for x in 0..dst_w * 3 {
            // ((b0 * (S0 >> 4)) >> 16) + ((b1 * (S1 >> 4)) >> 16) + 2) >> 2, on 16-bit lanes
            let t0 = (b0 * ((r0[x] >> 4) as i16 as i32)) >> 16;
            let t1 = (b1 * ((r1[x] >> 4) as i16 as i32)) >> 16;
            dst[dy * dst_w * 3 + x] = ((t0 + t1 + 2) >> 2).clamp(0, 255) as u8;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pillow BILINEAR: triangle filter widened by the scale when shrinking, 22-bit fixed point,
// horizontal pass then vertical pass, each rounded and clipped to 8 bits.
// ---------------------------------------------------------------------------------------------

const PIL_PRECISION_BITS: u32 = 32 - 8 - 2;

/// `(first source index, fixed-point weights)` per destination coordinate.
fn pil_taps(src: usize, dst: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = src as f64 / dst as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0
    let ss = 1.0 / filterscale;
    (0..dst)
        .map(|d| {
            let center = (d as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(src as i64) as usize;
            let weights: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) * ss).abs();
                    if t < 1.0 { 1.0 - t } else { 0.0 }
                })
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|&w| {
                    let k = if total != 0.0 { w / total } else { w };
                    let v = k * f64::from(1u32 << PIL_PRECISION_BITS);
                    if k < 0.0 {
                        (v - 0.5) as i32
                    } else {
                        (v + 0.5) as i32
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn pil_clip8(acc: i64) -> u8 {
    (acc >> PIL_PRECISION_BITS).clamp(0, 255) as u8
}

/// `PIL.Image.resize((dst_w, dst_h), Image.BILINEAR)` on an RGB image.
pub fn resize_pil_bilinear(img: &RgbImage, dst_w: usize, dst_h: usize) -> RgbImage {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let half = 1i64 << (PIL_PRECISION_BITS - 1);
    // horizontal
    let tmp: Vec<u8> = if sw != dst_w {
        let xs = pil_taps(sw, dst_w);
        let mut tmp = vec![0u8; sh * dst_w * 3];
        for y in 0..sh {
            for (dx, (xmin, k)) in xs.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = half;
                    for (i, &w) in k.iter().enumerate() {
                        acc += i64::from(raw[(y * sw + xmin + i) * 3 + c]) * i64::from(w);
                    }
                    tmp[(y * dst_w + dx) * 3 + c] = pil_clip8(acc);
                }
            }
        }
        tmp
    } else {
        raw.clone()
    };
    // vertical
    let out: Vec<u8> = if sh != dst_h {
        let ys = pil_taps(sh, dst_h);
        let mut out = vec![0u8; dst_h * dst_w * 3];
        for (dy, (ymin, k)) in ys.iter().enumerate() {
            for x in 0..dst_w * 3 {
                let mut acc = half;
                for (i, &w) in k.iter().enumerate() {
                    acc += i64::from(tmp[(ymin + i) * dst_w * 3 + x]) * i64::from(w);
                }
                out[dy * dst_w * 3 + x] = pil_clip8(acc);
            }
        }
        out
    } else {
        tmp
    };
    RgbImage::from_raw(dst_w as u32, dst_h as u32, out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_geometry_matches_ultralytics() {
        // square image at its own size: nothing to do
        let lb = Letterbox::new(256, 256, 256, 32).unwrap();
        assert_eq!(
            (lb.resized, lb.top, lb.left, lb.input),
            ((256, 256), 0, 0, (256, 256))
        );
        // 320×200 at 256: scale 0.8 → 256×160, already a multiple of 32
        let lb = Letterbox::new(200, 320, 256, 32).unwrap();
        assert_eq!((lb.resized, lb.input), ((160, 256), (160, 256)));
        // 640×480 at 640: no resize, minimal padding 0; 500×375 at 640 → 640×480 (no pad)
        let lb = Letterbox::new(375, 500, 640, 32).unwrap();
        assert_eq!((lb.resized, lb.top, lb.input), ((480, 640), 0, (480, 640)));
        // 300×170 at 320: r = 1.0667 → 320×181, dh = 139 % 32 = 11 → top 5, bottom 6
        let lb = Letterbox::new(170, 300, 320, 32).unwrap();
        assert_eq!(lb.resized, (181, 320));
        assert_eq!((lb.top, lb.input), (5, (192, 320)));
        assert!(Letterbox::new(10, 10, 250, 32).is_err());
    }

    #[test]
    fn resizers_keep_flat_images_flat_and_identity_is_exact() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([10, 200, 114]));
        for r in [
            resize_cv2_linear(&img, 64, 40),
            resize_pil_bilinear(&img, 16, 9),
        ] {
            assert!(r.pixels().all(|p| p.0 == [10, 200, 114]));
        }
        let grad = RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 30) as u8, (y * 30) as u8, 0]));
        assert_eq!(resize_cv2_linear(&grad, 8, 8), grad);
        assert_eq!(resize_pil_bilinear(&grad, 8, 8), grad);
    }

    #[test]
    fn cv2_linear_upscale_interpolates_half_pixel_centres() {
        // 2 px → 4 px: cv2 gives [a, a*.75+b*.25, a*.25+b*.75, b]
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([if x == 0 { 0 } else { 200 }; 3]));
        let r = resize_cv2_linear(&img, 4, 1);
        let row: Vec<u8> = r.pixels().map(|p| p.0[0]).collect();
        assert_eq!(row, vec![0, 50, 150, 200]);
    }

    #[test]
    fn pil_bilinear_shrink_averages_neighbours() {
        // 4 px → 2 px with the widened triangle: weights (1/8, 3/8, 3/8, 1/8) around each centre
        let img = RgbImage::from_fn(4, 1, |x, _| image::Rgb([(x * 80) as u8; 3]));
        let r = resize_pil_bilinear(&img, 2, 1);
        let row: Vec<u8> = r.pixels().map(|p| p.0[0]).collect();
        // centre 1.0: taps x=0..2 weights (0.75, 0.75, 0.25)/1.75 → (0·.75+80·.75+160·.25)/1.75 = 57.1
        assert_eq!(row, vec![57, 183]);
    }

    #[test]
    fn unreadable_images_name_the_file() {
        let err = load_rgb(Path::new("/nonexistent/dir/img.jpg")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/dir/img.jpg"),
            "{err}"
        );
    }

    #[test]
    fn chw_layout_is_planar_and_normalised() {
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([x as u8 * 255, 0, 51]));
        let mut v = Vec::new();
        push_chw(&img, &mut v);
        assert_eq!(v, vec![0.0, 1.0, 0.0, 0.0, 0.2, 0.2]);
    }
}
