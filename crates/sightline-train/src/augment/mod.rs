//! Data augmentation that keeps images and instance annotations aligned.
//!
//! Geometry uses continuous pixel coordinates with the origin at the top-left corner of the
//! image and pixel `(i, j)` covering `[i, i+1) × [j, j+1)` (COCO convention). Images are warped
//! by inverse mapping of pixel centres through the same [`Affine`] that moves the polygons, so
//! masks rasterised from transformed polygons line up with transformed pixels exactly.
//!
//! - [`detect`]: the Ultralytics YOLOv8 training recipe (letterbox, mosaic, random affine, HSV,
//!   horizontal flip) and the conversion of a sample into boxes and prototype-resolution masks.
//! - [`classify`]: torchvision-style RandomResizedCrop, flip, colour jitter, and the
//!   resize + centre-crop evaluation transform.

pub mod classify;
pub mod detect;
pub mod raster;
pub mod warp;

pub use warp::Affine;

/// Grey value Ultralytics pads with (114 in each channel).
pub const PAD_VALUE: u8 = 114;

/// One object: a class index and its outline as one or more polygons in pixel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Class index into the project's ordered label set.
    pub class: usize,
    /// Polygons (each at least 3 points) whose union is the object.
    pub polygons: Vec<Vec<[f32; 2]>>,
}

impl Instance {
    /// Axis-aligned bounding box `[x1, y1, x2, y2]` of all polygon points, `None` without points.
    pub fn bbox(&self) -> Option<[f32; 4]> {
        let mut it = self.polygons.iter().flatten();
        let first = it.next()?;
        let mut b = [first[0], first[1], first[0], first[1]];
        for p in it {
            b[0] = b[0].min(p[0]);
            b[1] = b[1].min(p[1]);
            b[2] = b[2].max(p[0]);
            b[3] = b[3].max(p[1]);
        }
        Some(b)
    }

    /// Apply an affine map to every point.
    pub fn transform(&mut self, m: &Affine) {
        for poly in &mut self.polygons {
            for p in poly.iter_mut() {
                *p = m.apply(*p);
            }
        }
    }

    /// Clip every polygon to the rectangle `[0, w] × [0, h]` (Sutherland–Hodgman); polygons that
    /// vanish are removed.
    pub fn clip(&mut self, w: f32, h: f32) {
        for poly in &mut self.polygons {
            *poly = clip_polygon(poly, w, h);
        }
        self.polygons.retain(|p| p.len() >= 3);
    }
}

/// An image with its instances.
#[derive(Debug, Clone)]
pub struct DetSample {
    /// RGB pixels.
    pub image: image::RgbImage,
    /// Objects on the image.
    pub instances: Vec<Instance>,
}

fn clip_polygon(poly: &[[f32; 2]], w: f32, h: f32) -> Vec<[f32; 2]> {
    // Each clip edge: (axis, bound, keep_if_greater)
    let edges: [(usize, f32, bool); 4] =
        [(0, 0.0, true), (0, w, false), (1, 0.0, true), (1, h, false)];
    let mut out: Vec<[f32; 2]> = poly.to_vec();
    for (axis, bound, greater) in edges {
        if out.is_empty() {
            break;
        }
        let inside = |p: &[f32; 2]| {
            if greater {
                p[axis] >= bound
            } else {
                p[axis] <= bound
            }
        };
        let input = std::mem::take(&mut out);
        let n = input.len();
        for i in 0..n {
            let cur = input[i];
            let prev = input[(i + n - 1) % n];
            let (ci, pi) = (inside(&cur), inside(&prev));
            if ci != pi {
                let t = (bound - prev[axis]) / (cur[axis] - prev[axis]);
                let mut p = [
                    prev[0] + t * (cur[0] - prev[0]),
                    prev[1] + t * (cur[1] - prev[1]),
                ];
                p[axis] = bound;
                out.push(p);
            }
            if ci {
                out.push(cur);
            }
        }
    }
    out
}

/// Shoelace area of a polygon (absolute value).
pub fn polygon_area(poly: &[[f32; 2]]) -> f32 {
    let n = poly.len();
    let mut s = 0.0f64;
    for i in 0..n {
        let a = poly[i];
        let b = poly[(i + 1) % n];
        s += f64::from(a[0]) * f64::from(b[1]) - f64::from(b[0]) * f64::from(a[1]);
    }
    (s.abs() / 2.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_a_square_half_outside_keeps_the_inside_half() {
        let mut inst = Instance {
            class: 0,
            polygons: vec![vec![[-10.0, 0.0], [10.0, 0.0], [10.0, 10.0], [-10.0, 10.0]]],
        };
        inst.clip(100.0, 100.0);
        assert!((polygon_area(&inst.polygons[0]) - 100.0).abs() < 1e-4);
        assert_eq!(inst.bbox(), Some([0.0, 0.0, 10.0, 10.0]));
        let mut gone = Instance {
            class: 0,
            polygons: vec![vec![[-5.0, -5.0], [-1.0, -5.0], [-1.0, -1.0]]],
        };
        gone.clip(10.0, 10.0);
        assert!(gone.polygons.is_empty());
        assert_eq!(gone.bbox(), None);
    }
}
