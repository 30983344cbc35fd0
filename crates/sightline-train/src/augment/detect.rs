//! Detector augmentations (the Ultralytics YOLOv8 training recipe) and target building.
//!
//! Training pipeline for one sample ([`train_sample`]): with probability `mosaic`, four images
//! (the sample and three random others, each resized so its long side is `imgsz`) are tiled on a
//! `2·imgsz` canvas around a random centre, then [`random_affine`] (translate ±10 %, scale
//! ±50 %, optional rotation and shear) crops it back to `imgsz`; otherwise the image is
//! letterboxed to `imgsz` (no upscaling) and the same affine is applied. Then HSV jitter and a
//! horizontal flip. Polygons follow every geometric step; instances whose box shrinks below 2
//! px, keeps under 10 % of its (scaled) area or gets an aspect ratio over 100 are dropped, as
//! Ultralytics does. [`val_sample`] only resizes and letterboxes.

use super::warp::{Affine, resize, warp_affine};
use super::{DetSample, Instance, PAD_VALUE, raster};
use crate::rng::Rng;
use image::RgbImage;

/// Augmentation hyper-parameters (defaults: Ultralytics `default.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct DetAugConfig {
    /// Square training image size in pixels (a multiple of 32).
    pub imgsz: u32,
    /// Rotation range, degrees (±).
    pub degrees: f64,
    /// Translation range as a fraction of the image size (±).
    pub translate: f64,
    /// Scale gain range (±): scale is drawn from `[1 - scale, 1 + scale]`.
    pub scale: f64,
    /// Shear range, degrees (±).
    pub shear: f64,
    /// Hue jitter as a fraction of the hue circle (±).
    pub hsv_h: f64,
    /// Saturation gain (±).
    pub hsv_s: f64,
    /// Value (brightness) gain (±).
    pub hsv_v: f64,
    /// Horizontal flip probability.
    pub fliplr: f64,
    /// Mosaic probability (set to 0 for the last `close_mosaic` epochs).
    pub mosaic: f64,
}

impl Default for DetAugConfig {
    fn default() -> Self {
        Self {
            imgsz: 640,
            degrees: 0.0,
            translate: 0.1,
            scale: 0.5,
            shear: 0.0,
            hsv_h: 0.015,
            hsv_s: 0.7,
            hsv_v: 0.4,
            fliplr: 0.5,
            mosaic: 1.0,
        }
    }
}

/// How [`letterbox`] mapped the original image: `new = old * ratio + (pad_x, pad_y)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LetterboxInfo {
    /// Scale factor applied to both axes.
    pub ratio: f64,
    /// Left padding in pixels.
    pub pad_x: f64,
    /// Top padding in pixels.
    pub pad_y: f64,
}

/// Resize so that the long side equals `imgsz` (Ultralytics `load_image`), keeping instances aligned.
pub fn resize_long_side(sample: DetSample, imgsz: u32) -> DetSample {
    let (w, h) = sample.image.dimensions();
    let r = f64::from(imgsz) / f64::from(w.max(h).max(1));
    if (r - 1.0).abs() < 1e-12 {
        return sample;
    }
    let nw = ((f64::from(w) * r).round() as u32).clamp(1, imgsz);
    let nh = ((f64::from(h) * r).round() as u32).clamp(1, imgsz);
    let image = resize(&sample.image, nw, nh);
    let m = Affine::scale(f64::from(nw) / f64::from(w), f64::from(nh) / f64::from(h));
    let mut instances = sample.instances;
    for inst in &mut instances {
        inst.transform(&m);
    }
    DetSample { image, instances }
}

/// Letterbox to `width × height`: scale to fit keeping the aspect ratio (never up when
/// `scaleup` is false), centre, pad with grey 114.
pub fn letterbox(
    sample: DetSample,
    width: u32,
    height: u32,
    scaleup: bool,
) -> (DetSample, LetterboxInfo) {
    let (w, h) = sample.image.dimensions();
    let mut r =
        (f64::from(width) / f64::from(w.max(1))).min(f64::from(height) / f64::from(h.max(1)));
    if !scaleup {
        r = r.min(1.0);
    }
    let nw = ((f64::from(w) * r).round() as u32).clamp(1, width);
    let nh = ((f64::from(h) * r).round() as u32).clamp(1, height);
    let pad_x = f64::from(width - nw) / 2.0;
    let pad_y = f64::from(height - nh) / 2.0;
    // integer offsets as Ultralytics rounds them (left = round(dw - 0.1))
    let left = (pad_x - 0.1).round().max(0.0);
    let top = (pad_y - 0.1).round().max(0.0);
    let m = Affine::translate(left, top).then_after(&Affine::scale(
        f64::from(nw) / f64::from(w.max(1)),
        f64::from(nh) / f64::from(h.max(1)),
    ));
    let fill = [PAD_VALUE; 3];
    let image = warp_affine(&sample.image, &m, width, height, fill)
        .unwrap_or_else(|| RgbImage::from_pixel(width, height, image::Rgb(fill)));
    let mut instances = sample.instances;
    for inst in &mut instances {
        inst.transform(&m);
        inst.clip(width as f32, height as f32);
    }
    instances.retain(|i| !i.polygons.is_empty());
    (
        DetSample { image, instances },
        LetterboxInfo {
            ratio: r,
            pad_x: left,
            pad_y: top,
        },
    )
}

/// Tile four samples (each already resized to long side `imgsz`) on a `2·imgsz` square canvas
/// around a random centre in `[imgsz/2, 3·imgsz/2)`: first top-left, then top-right,
/// bottom-left, bottom-right. Instances are shifted and clipped to the canvas.
pub fn mosaic4(tiles: [DetSample; 4], imgsz: u32, rng: &mut Rng) -> DetSample {
    let s = i64::from(imgsz);
    let xc = rng.uniform(s as f64 / 2.0, 1.5 * s as f64) as i64;
    let yc = rng.uniform(s as f64 / 2.0, 1.5 * s as f64) as i64;
    let cs = (2 * s) as u32;
    let mut canvas = RgbImage::from_pixel(cs, cs, image::Rgb([PAD_VALUE; 3]));
    let mut instances = Vec::new();
    for (i, tile) in tiles.into_iter().enumerate() {
        let (w, h) = (
            i64::from(tile.image.width()),
            i64::from(tile.image.height()),
        );
        // destination (a) and source (b) rectangles
        let (x1a, y1a, x2a, y2a, x1b, y1b) = match i {
            0 => {
                let (x1a, y1a) = ((xc - w).max(0), (yc - h).max(0));
                (x1a, y1a, xc, yc, w - (xc - x1a), h - (yc - y1a))
            }
            1 => {
                let (y1a, x2a) = ((yc - h).max(0), (xc + w).min(2 * s));
                (xc, y1a, x2a, yc, 0, h - (yc - y1a))
            }
            2 => {
                let (x1a, y2a) = ((xc - w).max(0), (yc + h).min(2 * s));
                (x1a, yc, xc, y2a, w - (xc - x1a), 0)
            }
            _ => {
                let (x2a, y2a) = ((xc + w).min(2 * s), (yc + h).min(2 * s));
                (xc, yc, x2a, y2a, 0, 0)
            }
        };
        let (cw, ch) = (x2a - x1a, y2a - y1a);
        for dy in 0..ch.max(0) {
            for dx in 0..cw.max(0) {
                let p = *tile.image.get_pixel((x1b + dx) as u32, (y1b + dy) as u32);
                canvas.put_pixel((x1a + dx) as u32, (y1a + dy) as u32, p);
            }
        }
        let shift = Affine::translate((x1a - x1b) as f64, (y1a - y1b) as f64);
        for mut inst in tile.instances {
            inst.transform(&shift);
            inst.clip(cs as f32, cs as f32);
            if !inst.polygons.is_empty() {
                instances.push(inst);
            }
        }
    }
    DetSample {
        image: canvas,
        instances,
    }
}

/// Random affine (Ultralytics `RandomPerspective` without perspective): centre the input,
/// rotate by ±`degrees` and scale by `1 ± scale`, shear by ±`shear`, then translate so the centre
/// lands at `(0.5 ± translate)·out_size`. Output is `out_size` square.
pub fn random_affine(
    sample: DetSample,
    cfg: &DetAugConfig,
    out_size: u32,
    rng: &mut Rng,
) -> DetSample {
    let (w, h) = sample.image.dimensions();
    let c = Affine::translate(-f64::from(w) / 2.0, -f64::from(h) / 2.0);
    let a = rng.uniform(-cfg.degrees, cfg.degrees).to_radians();
    let s = rng.uniform(1.0 - cfg.scale, 1.0 + cfg.scale);
    // cv2.getRotationMatrix2D(angle=a, scale=s): [[s cos, s sin], [-s sin, s cos]]
    let (sin, cos) = a.sin_cos();
    let r = Affine([s * cos, s * sin, 0.0, -s * sin, s * cos, 0.0]);
    let shx = rng.uniform(-cfg.shear, cfg.shear).to_radians().tan();
    let shy = rng.uniform(-cfg.shear, cfg.shear).to_radians().tan();
    let sh = Affine([1.0, shx, 0.0, shy, 1.0, 0.0]);
    let size = f64::from(out_size);
    let tx = rng.uniform(0.5 - cfg.translate, 0.5 + cfg.translate) * size;
    let ty = rng.uniform(0.5 - cfg.translate, 0.5 + cfg.translate) * size;
    let m = Affine::translate(tx, ty).then_after(&sh.then_after(&r.then_after(&c)));
    apply_affine(sample, &m, out_size, s)
}

/// Warp a sample through `m` into an `out_size` square, transform and clip the instances, and
/// drop the ones that [`box_candidate`] rejects. `scale` is the isotropic scale in `m`.
pub fn apply_affine(sample: DetSample, m: &Affine, out_size: u32, scale: f64) -> DetSample {
    let fill = [PAD_VALUE; 3];
    let image = warp_affine(&sample.image, m, out_size, out_size, fill)
        .unwrap_or_else(|| RgbImage::from_pixel(out_size, out_size, image::Rgb(fill)));
    let mut instances = Vec::with_capacity(sample.instances.len());
    for mut inst in sample.instances {
        let Some(before) = inst.bbox() else { continue };
        inst.transform(m);
        inst.clip(out_size as f32, out_size as f32);
        let Some(after) = inst.bbox() else { continue };
        if box_candidate(before, after, scale) {
            instances.push(inst);
        }
    }
    DetSample { image, instances }
}

/// Ultralytics `box_candidates`: keep a transformed box wider and taller than 2 px, keeping more
/// than 10 % of the original area (times `scale²`) and an aspect ratio below 100.
pub fn box_candidate(before: [f32; 4], after: [f32; 4], scale: f64) -> bool {
    let eps = 1e-16f64;
    let (w1, h1) = (
        f64::from(before[2] - before[0]) * scale,
        f64::from(before[3] - before[1]) * scale,
    );
    let (w2, h2) = (
        f64::from(after[2] - after[0]),
        f64::from(after[3] - after[1]),
    );
    let ar = (w2 / (h2 + eps)).max(h2 / (w2 + eps));
    w2 > 2.0 && h2 > 2.0 && w2 * h2 / (w1 * h1 + eps) > 0.1 && ar < 100.0
}

/// Mirror the image and instances left–right.
pub fn hflip(sample: &mut DetSample) {
    image::imageops::flip_horizontal_in_place(&mut sample.image);
    let w = sample.image.width() as f32;
    for inst in &mut sample.instances {
        for poly in &mut inst.polygons {
            for p in poly.iter_mut() {
                p[0] = w - p[0];
            }
        }
    }
}

/// Convert one RGB pixel to OpenCV's 8-bit HSV (H in `[0, 180)`, S and V in `[0, 255]`).
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (f32, f32, f32) {
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let v = r.max(g).max(b);
    let mn = r.min(g).min(b);
    let d = v - mn;
    let s = if v > 0.0 { 255.0 * d / v } else { 0.0 };
    let mut h = if d == 0.0 {
        0.0
    } else if v == r {
        60.0 * (g - b) / d
    } else if v == g {
        120.0 + 60.0 * (b - r) / d
    } else {
        240.0 + 60.0 * (r - g) / d
    };
    if h < 0.0 {
        h += 360.0;
    }
    (h / 2.0, s, v)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [u8; 3] {
    let s = s / 255.0;
    let hh = (h * 2.0).rem_euclid(360.0) / 60.0;
    let i = hh.floor();
    let f = hh - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match i as i32 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [r, g, b].map(|c| c.round().clamp(0.0, 255.0) as u8)
}

/// Random HSV jitter (Ultralytics `RandomHSV`): hue shifted by `±hgain·180`, saturation and
/// value multiplied by `1 ± sgain`, `1 ± vgain`, via per-channel lookup tables in 8-bit HSV.
pub fn hsv_jitter(img: &mut RgbImage, hgain: f64, sgain: f64, vgain: f64, rng: &mut Rng) {
    if hgain == 0.0 && sgain == 0.0 && vgain == 0.0 {
        return;
    }
    let r = [
        rng.uniform(-1.0, 1.0) * hgain,
        rng.uniform(-1.0, 1.0) * sgain,
        rng.uniform(-1.0, 1.0) * vgain,
    ];
    let mut lut_h = [0u8; 256];
    let mut lut_s = [0u8; 256];
    let mut lut_v = [0u8; 256];
    for x in 0..256usize {
        let xf = x as f64;
        lut_h[x] = (xf + r[0] * 180.0).rem_euclid(180.0) as u8;
        lut_s[x] = (xf * (r[1] + 1.0)).clamp(0.0, 255.0) as u8;
        lut_v[x] = (xf * (r[2] + 1.0)).clamp(0.0, 255.0) as u8;
    }
    lut_s[0] = 0;
    for p in img.pixels_mut() {
        let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
        let (h8, s8, v8) = (
            h.round().min(179.0) as usize,
            s.round() as usize,
            v.round() as usize,
        );
        p.0 = hsv_to_rgb(
            f32::from(lut_h[h8]),
            f32::from(lut_s[s8]),
            f32::from(lut_v[v8]),
        );
    }
}

/// The training transform for one sample. `load(i)` returns sample `i` of the data set already
/// resized to long side `imgsz` ([`resize_long_side`]); `n` is the number of samples.
pub fn train_sample<F>(
    index: usize,
    n: usize,
    load: &F,
    cfg: &DetAugConfig,
    rng: &mut Rng,
) -> DetSample
where
    F: Fn(usize) -> DetSample,
{
    let s = cfg.imgsz;
    let mut sample = if n > 0 && cfg.mosaic > 0.0 && rng.chance(cfg.mosaic) {
        let others = [rng.below(n), rng.below(n), rng.below(n)];
        let tiles = [
            load(index),
            load(others[0]),
            load(others[1]),
            load(others[2]),
        ];
        let canvas = mosaic4(tiles, s, rng);
        random_affine(canvas, cfg, s, rng)
    } else {
        let (boxed, _) = letterbox(load(index), s, s, false);
        random_affine(boxed, cfg, s, rng)
    };
    hsv_jitter(&mut sample.image, cfg.hsv_h, cfg.hsv_s, cfg.hsv_v, rng);
    if rng.chance(cfg.fliplr) {
        hflip(&mut sample);
    }
    sample
}

/// The validation transform: long side to `imgsz`, then letterbox to an `imgsz` square.
pub fn val_sample(sample: DetSample, imgsz: u32) -> (DetSample, LetterboxInfo) {
    let (w, h) = sample.image.dimensions();
    let r0 = f64::from(imgsz) / f64::from(w.max(h).max(1));
    let (boxed, mut info) = letterbox(resize_long_side(sample, imgsz), imgsz, imgsz, false);
    info.ratio *= r0;
    (boxed, info)
}

/// Training targets of one augmented image.
#[derive(Debug, Clone, PartialEq)]
pub struct DetTargets {
    /// Class index per instance.
    pub classes: Vec<usize>,
    /// Boxes `[x1, y1, x2, y2]` in input pixels per instance.
    pub boxes: Vec<[f32; 4]>,
    /// Row-major 0/1 masks at `(imgsz / mask_ratio)²` per instance.
    pub masks: Vec<Vec<u8>>,
    /// Mask side length.
    pub mask_size: usize,
}

/// Boxes and masks (at `1/mask_ratio` resolution, 4 for YOLOv8 prototypes) of a square sample.
pub fn to_targets(sample: &DetSample, mask_ratio: u32) -> DetTargets {
    let mask_size = (sample.image.width() / mask_ratio.max(1)) as usize;
    let scale = 1.0 / mask_ratio.max(1) as f32;
    let mut t = DetTargets {
        classes: Vec::new(),
        boxes: Vec::new(),
        masks: Vec::new(),
        mask_size,
    };
    for inst in &sample.instances {
        let Some(b) = inst.bbox() else { continue };
        t.classes.push(inst.class);
        t.boxes.push(b);
        t.masks.push(raster::rasterize(
            &inst.polygons,
            mask_size,
            mask_size,
            scale,
        ));
    }
    t
}

/// Helper for tests and callers: an [`Instance`] from one flat COCO polygon `[x1, y1, …]`.
pub fn instance_from_flat(class: usize, flat: &[f64]) -> Instance {
    let poly = flat
        .chunks_exact(2)
        .map(|c| [c[0] as f32, c[1] as f32])
        .collect();
    Instance {
        class,
        polygons: vec![poly],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLOURS: [[u8; 3]; 2] = [[255, 0, 255], [0, 255, 255]];

    /// A textured image with two objects painted in unique colours exactly where their polygons
    /// rasterise, so alignment after a transform can be checked pixel by pixel.
    fn scene(w: u32, h: u32) -> DetSample {
        let mut image = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 128) as u8, (100 + y % 120) as u8, 40])
        });
        let instances = vec![
            Instance {
                class: 0,
                polygons: vec![vec![[20.0, 30.0], [90.0, 25.0], [60.0, 100.0]]],
            },
            Instance {
                class: 1,
                polygons: vec![
                    vec![
                        [110.0, 60.0],
                        [170.0, 60.0],
                        [170.0, 120.0],
                        [140.0, 90.0],
                        [110.0, 120.0],
                    ],
                    vec![[30.0, 120.0], [60.0, 120.0], [60.0, 140.0], [30.0, 140.0]],
                ],
            },
        ];
        for inst in &instances {
            let m = raster::rasterize(&inst.polygons, w as usize, h as usize, 1.0);
            for (i, v) in m.iter().enumerate() {
                if *v == 1 {
                    image.put_pixel(i as u32 % w, i as u32 / w, image::Rgb(COLOURS[inst.class]));
                }
            }
        }
        DetSample { image, instances }
    }

    fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
        a.iter()
            .zip(b.iter())
            .all(|(x, y)| (i32::from(*x) - i32::from(*y)).abs() <= tol)
    }

    /// Distance-k neighbourhood test on a row-major mask.
    /// For `want == 1` the whole neighbourhood must also lie inside the image (polygons are
    /// clipped at the border, so the mask edge there says nothing about the object's edge).
    fn all_within(m: &[u8], w: usize, h: usize, x: usize, y: usize, k: usize, want: u8) -> bool {
        if want == 1 && (x < k || y < k || x + k >= w || y + k >= h) {
            return false;
        }
        let (x0, y0) = (x.saturating_sub(k), y.saturating_sub(k));
        let (x1, y1) = ((x + k).min(w - 1), (y + k).min(h - 1));
        (y0..=y1).all(|yy| (x0..=x1).all(|xx| m[yy * w + xx] == want))
    }

    /// Every interior mask pixel shows the instance colour; with `reverse`, every pixel of that
    /// colour also lies in the (slightly dilated) mask (not after mosaic, where instances cut
    /// below 10 % of their area are dropped on purpose while their pixels stay visible).
    /// Returns the number of interior pixels checked.
    fn assert_aligned(s: &DetSample, reverse: bool) -> usize {
        let (w, h) = (s.image.width() as usize, s.image.height() as usize);
        let mut checked = 0;
        for inst in &s.instances {
            let colour = COLOURS[inst.class];
            let m = raster::rasterize(&inst.polygons, w, h, 1.0);
            for y in 0..h {
                for x in 0..w {
                    let px = s.image.get_pixel(x as u32, y as u32).0;
                    if all_within(&m, w, h, x, y, 3, 1) {
                        assert!(
                            close(px, colour, 2),
                            "class {} interior pixel {x},{y} is {px:?}",
                            inst.class
                        );
                        checked += 1;
                    }
                    if reverse && close(px, colour, 1) {
                        assert!(
                            !all_within(&m, w, h, x, y, 2, 0),
                            "class {} colour outside mask at {x},{y}",
                            inst.class
                        );
                    }
                }
            }
        }
        checked
    }

    #[test]
    fn scene_itself_is_aligned() {
        assert!(assert_aligned(&scene(200, 160), true) > 1000);
    }

    #[test]
    fn letterbox_of_a_wide_image_keeps_masks_aligned() {
        let (out, info) = letterbox(scene(200, 160), 128, 128, true);
        assert_eq!(out.image.dimensions(), (128, 128));
        assert!((info.ratio - 0.64).abs() < 1e-9);
        assert_eq!((info.pad_x, info.pad_y), (0.0, 13.0));
        assert_eq!(out.image.get_pixel(64, 2).0, [PAD_VALUE; 3]);
        assert_eq!(out.instances.len(), 2);
        assert!(assert_aligned(&out, true) > 300);
    }

    #[test]
    fn random_affine_with_rotation_and_shear_keeps_masks_aligned() {
        let cfg = DetAugConfig {
            imgsz: 192,
            degrees: 25.0,
            shear: 8.0,
            scale: 0.3,
            ..Default::default()
        };
        for seed in 0..4 {
            let mut rng = Rng::new(seed);
            let out = random_affine(scene(200, 160), &cfg, 192, &mut rng);
            assert_eq!(out.image.dimensions(), (192, 192));
            assert!(!out.instances.is_empty());
            assert!(assert_aligned(&out, true) > 100, "seed {seed}");
        }
    }

    #[test]
    fn full_train_pipeline_with_mosaic_and_flip_keeps_masks_aligned_and_is_deterministic() {
        let cfg = DetAugConfig {
            imgsz: 160,
            hsv_h: 0.0,
            hsv_s: 0.0,
            hsv_v: 0.0,
            ..Default::default()
        };
        let load = |i: usize| {
            let mut s = scene(200 - 10 * i as u32, 160);
            if i % 2 == 1 {
                hflip(&mut s);
            }
            resize_long_side(s, 160)
        };
        let mut total = 0;
        for seed in 0..6 {
            let a = train_sample(
                seed as usize % 3,
                3,
                &load,
                &cfg,
                &mut Rng::for_sample(7, 1, seed),
            );
            let b = train_sample(
                seed as usize % 3,
                3,
                &load,
                &cfg,
                &mut Rng::for_sample(7, 1, seed),
            );
            assert_eq!(a.image, b.image);
            assert_eq!(a.instances, b.instances);
            assert_eq!(a.image.dimensions(), (160, 160));
            total += assert_aligned(&a, false);
        }
        assert!(total > 500, "{total}");
    }

    /// A 64 px image with two to four few-pixel objects (5–14 px, like the synthetic defects at
    /// `--size 64`) painted in their instance colour.
    pub(super) fn small_scene(i: u64) -> DetSample {
        let mut rng = Rng::new(100 + i);
        let mut image = RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(40 + x) as u8, (60 + 2 * y) as u8, 40])
        });
        let mut instances = Vec::new();
        for k in 0..2 + rng.below(3) {
            let (w, h) = (rng.uniform(5.0, 14.0), rng.uniform(5.0, 14.0));
            let (x0, y0) = (rng.uniform(4.0, 58.0 - w), rng.uniform(4.0, 58.0 - h));
            let (x1, y1) = (x0 + w, y0 + h);
            // a pentagon, so rotations and clipping matter
            let poly: Vec<[f32; 2]> = [
                [x0, y0],
                [x1, y0],
                [x1, y1 - h / 3.0],
                [(x0 + x1) / 2.0, y1],
                [x0, y1 - h / 3.0],
            ]
            .iter()
            .map(|p| [p[0] as f32, p[1] as f32])
            .collect();
            let inst = Instance {
                class: k % 2,
                polygons: vec![poly],
            };
            let m = raster::rasterize(&inst.polygons, 64, 64, 1.0);
            for (j, v) in m.iter().enumerate() {
                if *v == 1 {
                    image.put_pixel(
                        j as u32 % 64,
                        j as u32 / 64,
                        image::Rgb(COLOURS[inst.class]),
                    );
                }
            }
            instances.push(inst);
        }
        DetSample { image, instances }
    }

    /// Regression (small `imgsz`): mosaic + affine must keep about as many objects per sample as
    /// a source image has (four tiles on a 2·imgsz canvas, cropped back to imgsz: ~1x on
    /// average), their masks on their pixels, and their prototype-resolution masks inside their
    /// boxes.
    #[test]
    fn mosaic_at_small_imgsz_keeps_instances_and_aligned_masks() {
        let n = 6;
        let per_source = (0..n)
            .map(|i| small_scene(i).instances.len())
            .sum::<usize>() as f64
            / n as f64;
        for imgsz in [64u32, 128] {
            let cfg = DetAugConfig {
                imgsz,
                mosaic: 1.0,
                hsv_h: 0.0,
                hsv_s: 0.0,
                hsv_v: 0.0,
                ..Default::default()
            };
            let load = |i: usize| resize_long_side(small_scene(i as u64), imgsz);
            let (mut kept, mut on_colour, mut mask_px, mut in_box, mut t_px) = (0, 0, 0, 0, 0);
            let samples = 60;
            for k in 0..samples {
                let s = train_sample(
                    k % n as usize,
                    n as usize,
                    &load,
                    &cfg,
                    &mut Rng::for_sample(3, 0, k as u64),
                );
                kept += s.instances.len();
                let w = imgsz as usize;
                for inst in &s.instances {
                    let m = raster::rasterize(&inst.polygons, w, w, 1.0);
                    for (j, v) in m.iter().enumerate() {
                        if *v == 1 {
                            mask_px += 1;
                            let px = s.image.get_pixel((j % w) as u32, (j / w) as u32).0;
                            // bilinear edges blend with the background: a loose tolerance
                            if close(px, COLOURS[inst.class], 60) {
                                on_colour += 1;
                            }
                        }
                    }
                }
                let t = to_targets(&s, 4);
                assert_eq!(t.boxes.len(), s.instances.len());
                for (b, m) in t.boxes.iter().zip(&t.masks) {
                    let ms = t.mask_size;
                    for (j, v) in m.iter().enumerate() {
                        if *v == 1 {
                            t_px += 1;
                            let (x, y) = ((j % ms) as f32 + 0.5, (j / ms) as f32 + 0.5);
                            if x >= b[0] / 4.0 - 0.5
                                && x <= b[2] / 4.0 + 0.5
                                && y >= b[1] / 4.0 - 0.5
                                && y <= b[3] / 4.0 + 0.5
                            {
                                in_box += 1;
                            }
                        }
                    }
                }
            }
            let mean = kept as f64 / samples as f64;
            assert!(
                mean > 0.6 * per_source,
                "imgsz {imgsz}: {mean:.2} instances per mosaic sample, {per_source:.2} per image"
            );
            assert!(
                on_colour as f64 > 0.8 * mask_px as f64,
                "imgsz {imgsz}: {on_colour} of {mask_px} mask pixels show the object"
            );
            assert!(
                t_px > 0 && in_box == t_px,
                "imgsz {imgsz}: {in_box} of {t_px}"
            );
        }
    }

    #[test]
    fn targets_have_boxes_and_quarter_resolution_masks() {
        let (s, _) = letterbox(scene(200, 160), 128, 128, true);
        let t = to_targets(&s, 4);
        assert_eq!(t.mask_size, 32);
        assert_eq!(t.classes, vec![0, 1]);
        // the image becomes 128x102 (x scale 0.64, y scale 102/160) padded 13 px at the top;
        // the triangle's box x 20..90, y 25..100 follows exactly
        let b = t.boxes[0];
        let sy = 102.0 / 160.0;
        assert!((b[0] - 12.8).abs() < 1e-3 && (b[2] - 57.6).abs() < 1e-3);
        assert!(
            (b[1] - (13.0 + 25.0 * sy)).abs() < 1e-3 && (b[3] - (13.0 + 100.0 * sy)).abs() < 1e-3
        );
        let area: usize = t.masks[0].iter().map(|&v| usize::from(v)).sum();
        // triangle area 2712.5 px² * 0.64² / 16
        let expect = 2712.5 * 0.64 * 0.64 / 16.0;
        assert!(
            (area as f64 - expect).abs() < 0.15 * expect,
            "{area} vs {expect}"
        );
    }

    #[test]
    fn instances_pushed_out_of_the_image_are_dropped() {
        let s = scene(200, 160);
        let m = Affine::translate(-150.0, 0.0);
        let out = apply_affine(s, &m, 128, 1.0);
        // the triangle (x < 90) leaves entirely; the right object keeps a part
        assert!(out.instances.iter().all(|i| i.class == 1));
        assert!(box_candidate(
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],
            1.0
        ));
        assert!(!box_candidate(
            [0.0, 0.0, 100.0, 100.0],
            [0.0, 0.0, 20.0, 20.0],
            1.0
        ));
        assert!(!box_candidate(
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 1.5, 10.0],
            1.0
        ));
    }

    #[test]
    fn hsv_round_trip_and_value_gain() {
        let mut rng = Rng::new(1);
        for _ in 0..2000 {
            let c = [
                rng.below(256) as u8,
                rng.below(256) as u8,
                rng.below(256) as u8,
            ];
            let (h, s, v) = rgb_to_hsv(c[0], c[1], c[2]);
            let back = hsv_to_rgb(h, s, v);
            assert!(close(back, c, 1), "{c:?} -> {back:?}");
        }
        // value-only jitter scales a grey image uniformly and never moves anything
        let mut img = RgbImage::from_pixel(4, 4, image::Rgb([100, 100, 100]));
        hsv_jitter(&mut img, 0.0, 0.0, 0.5, &mut Rng::new(3));
        let v = img.get_pixel(0, 0).0;
        assert!(v[0] == v[1] && v[1] == v[2] && v[0] != 100 && (50..=150).contains(&v[0]));
        assert!(img.pixels().all(|p| p.0 == v));
    }
}
