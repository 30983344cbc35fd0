//! Thumbnails for the report's gallery of worst mistakes: the instance's mask tinted and its box outlined on the
//! image, cropped around the object, at most [`MAX_SIDE`] pixels a side, JPEG-encoded into a `data:` URI.

use std::path::Path;

use sightline_mask::Rle;
use sightline_report::{GalleryItem, GalleryKind, data_uri};
use sightline_vision::image::{RgbImage, imageops};
use sightline_vision::overlay::draw_tag;
use sightline_vision::preprocess::load_rgb;

use super::EvaluateError;

/// Largest thumbnail side in pixels.
pub const MAX_SIDE: u32 = 256;
/// Thumbnails smaller than this are enlarged to it (tiny crops are unreadable).
const MIN_SIDE: u32 = 128;

const FP_COLOR: [u8; 3] = [220, 40, 40];
const FN_COLOR: [u8; 3] = [240, 150, 0];
const CLS_COLOR: [u8; 3] = [160, 30, 160];

fn blend(p: &mut [u8; 3], c: [u8; 3]) {
    for (v, &k) in p.iter_mut().zip(&c) {
        *v = ((u16::from(*v) * 50 + u16::from(k) * 50) / 100) as u8;
    }
}

/// Tints the mask and outlines the box `[x1, y1, x2, y2]` in place.
fn draw_instance(img: &mut RgbImage, rle: Option<&Rle>, b: [f64; 4], color: [u8; 3]) {
    let (w, h) = (img.width(), img.height());
    if let Some(rle) = rle
        && rle.w() == w
        && rle.h() == h
    {
        let bits = rle.decode_row_major();
        for (i, &on) in bits.iter().enumerate() {
            if on != 0 {
                let (x, y) = (i as u32 % w, i as u32 / w);
                blend(&mut img.get_pixel_mut(x, y).0, color);
            }
        }
    }
    let clamp = |v: f64, hi: u32| (v.round().max(0.0) as u32).min(hi.saturating_sub(1));
    let (x1, y1, x2, y2) = (
        clamp(b[0], w),
        clamp(b[1], h),
        clamp(b[2], w),
        clamp(b[3], h),
    );
    for x in x1..=x2 {
        img.put_pixel(x, y1, color.into());
        img.put_pixel(x, y2, color.into());
    }
    for y in y1..=y2 {
        img.put_pixel(x1, y, color.into());
        img.put_pixel(x2, y, color.into());
    }
}

/// Crops around the box (one box size of context each side, at least 24 px) and scales to fit
/// [`MIN_SIDE`]..=[`MAX_SIDE`].
fn crop_and_fit(img: &RgbImage, b: Option<[f64; 4]>) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let crop = match b {
        Some([x1, y1, x2, y2]) => {
            let mx = (x2 - x1).max(24.0);
            let my = (y2 - y1).max(24.0);
            let cx1 = (x1 - mx).max(0.0) as u32;
            let cy1 = (y1 - my).max(0.0) as u32;
            let cx2 = ((x2 + mx).ceil() as u32).min(w);
            let cy2 = ((y2 + my).ceil() as u32).min(h);
            if cx2 > cx1 && cy2 > cy1 {
                imageops::crop_imm(img, cx1, cy1, cx2 - cx1, cy2 - cy1).to_image()
            } else {
                img.clone()
            }
        }
        None => img.clone(),
    };
    let side = crop.width().max(crop.height()).max(1);
    let target = side.clamp(MIN_SIDE, MAX_SIDE);
    if target == side {
        return crop;
    }
    let s = f64::from(target) / f64::from(side);
    let nw = ((f64::from(crop.width()) * s).round() as u32).clamp(1, MAX_SIDE);
    let nh = ((f64::from(crop.height()) * s).round() as u32).clamp(1, MAX_SIDE);
    imageops::resize(&crop, nw, nh, imageops::FilterType::Triangle)
}

fn jpeg_uri(img: &RgbImage) -> Result<String, EvaluateError> {
    let mut buf = Vec::new();
    sightline_vision::image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 85)
        .encode_image(img)
        .map_err(EvaluateError::Thumbnail)?;
    Ok(data_uri("image/jpeg", &buf))
}

fn read_error(path: &Path, source: sightline_vision::VisionError) -> EvaluateError {
    EvaluateError::ReadImage {
        what: path.display().to_string(),
        source: Box::new(source),
    }
}

/// A detector mistake: a false positive (`score` given) or a missed ground-truth object.
#[allow(clippy::too_many_arguments)] // one thumbnail = one image + one instance's fields
pub fn instance(
    kind: GalleryKind,
    path: &Path,
    file: &str,
    class: &str,
    score: Option<f64>,
    rle: Option<&Rle>,
    box_xyxy: [f64; 4],
    detail: String,
) -> Result<GalleryItem, EvaluateError> {
    let mut img = load_rgb(path).map_err(|source| read_error(path, source))?;
    let color = if kind == GalleryKind::FalseNegative {
        FN_COLOR
    } else {
        FP_COLOR
    };
    draw_instance(&mut img, rle, box_xyxy, color);
    let thumb = crop_and_fit(&img, Some(box_xyxy));
    let tag = match (kind, score) {
        (GalleryKind::FalseNegative, _) => format!("missed {class}"),
        (_, Some(s)) => format!("{class} {s:.2}"),
        (_, None) => class.to_string(),
    };
    Ok(GalleryItem {
        kind,
        image: file.to_string(),
        class: class.to_string(),
        score,
        detail,
        data_uri: jpeg_uri(&draw_tag(&thumb, &tag, color))?,
    })
}

/// A classifier mistake: the whole image with its wrong answer.
pub fn misclassified(
    path: &Path,
    file: &str,
    predicted: &str,
    confidence: f64,
    truth: &str,
) -> Result<GalleryItem, EvaluateError> {
    let img = load_rgb(path).map_err(|source| read_error(path, source))?;
    let thumb = crop_and_fit(&img, None);
    let tag = format!("{predicted} {confidence:.2} (true {truth})");
    Ok(GalleryItem {
        kind: GalleryKind::Misclassified,
        image: file.to_string(),
        class: predicted.to_string(),
        score: Some(confidence),
        detail: format!("predicted {predicted} with confidence {confidence:.3}, truth {truth}"),
        data_uri: jpeg_uri(&draw_tag(&thumb, &tag, CLS_COLOR))?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_fit_the_size_limits() {
        let img = RgbImage::new(640, 480);
        let t = crop_and_fit(&img, None);
        assert_eq!((t.width(), t.height()), (256, 192));
        let t = crop_and_fit(&img, Some([300.0, 200.0, 310.0, 205.0]));
        assert!(t.width().max(t.height()) >= MIN_SIDE && t.width().max(t.height()) <= MAX_SIDE);
    }

    #[test]
    fn instance_drawing_tints_the_mask_and_stays_inside() {
        let mut img = RgbImage::new(8, 6);
        let mut bits = vec![0u8; 48];
        bits[2 * 8 + 3] = 1;
        let rle = Rle::encode_row_major(&bits, 6, 8).unwrap();
        draw_instance(&mut img, Some(&rle), [1.0, 1.0, 20.0, 20.0], [200, 0, 0]);
        assert_eq!(img.get_pixel(3, 2).0, [100, 0, 0]);
        assert_eq!(img.get_pixel(7, 5).0, [200, 0, 0]); // clamped box corner
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
    }
}
