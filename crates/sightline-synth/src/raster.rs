//! Minimal float-RGB canvas: polygon fill (pixel centres, even-odd), Gaussian blur, noise.

use crate::rng::Rng;

/// A float RGB image, values in 0..=255 before quantisation.
#[derive(Debug, Clone)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major RGB values.
    pub data: Vec<[f32; 3]>,
}

impl Canvas {
    /// A canvas filled with one colour.
    pub fn new(width: usize, height: usize, fill: [f32; 3]) -> Self {
        Self {
            width,
            height,
            data: vec![fill; width * height],
        }
    }

    /// Calls `f(x, y)` for every pixel whose centre lies inside the polygon (even-odd rule).
    pub fn for_each_inside(&self, poly: &[(f64, f64)], mut f: impl FnMut(usize, usize)) {
        if poly.len() < 3 {
            return;
        }
        let (min_y, max_y) = poly.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
        let y0 = (min_y - 0.5).floor().max(0.0) as usize;
        let y1 = ((max_y - 0.5).ceil().max(0.0) as usize).min(self.height.saturating_sub(1));
        let mut xs = Vec::with_capacity(8);
        for y in y0..=y1 {
            let cy = y as f64 + 0.5;
            xs.clear();
            for i in 0..poly.len() {
                let (ax, ay) = poly[i];
                let (bx, by) = poly[(i + 1) % poly.len()];
                if (ay <= cy && by > cy) || (by <= cy && ay > cy) {
                    xs.push(ax + (cy - ay) / (by - ay) * (bx - ax));
                }
            }
            xs.sort_by(f64::total_cmp);
            for pair in xs.chunks_exact(2) {
                let start = (pair[0] - 0.5).ceil().max(0.0) as usize;
                let end = (pair[1] - 0.5).floor();
                if end < 0.0 {
                    continue;
                }
                let end = (end as usize).min(self.width.saturating_sub(1));
                for x in start..=end {
                    if (x as f64 + 0.5) >= pair[0] && (x as f64 + 0.5) < pair[1] {
                        f(x, y);
                    }
                }
            }
        }
    }

    /// Fills a polygon with a colour.
    pub fn fill_polygon(&mut self, poly: &[(f64, f64)], colour: [f32; 3]) {
        let w = self.width;
        let mut pixels = Vec::new();
        self.for_each_inside(poly, |x, y| pixels.push(y * w + x));
        for i in pixels {
            self.data[i] = colour;
        }
    }

    /// Separable Gaussian blur with standard deviation `sigma` pixels (edges clamped).
    pub fn blur(&mut self, sigma: f64) {
        if sigma <= 0.0 {
            return;
        }
        let radius = (sigma * 3.0).ceil() as isize;
        let kernel: Vec<f32> = (-radius..=radius)
            .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp() as f32)
            .collect();
        let norm: f32 = kernel.iter().sum();
        let kernel: Vec<f32> = kernel.iter().map(|k| k / norm).collect();
        let (w, h) = (self.width as isize, self.height as isize);
        let pass = |src: &[[f32; 3]], horizontal: bool| -> Vec<[f32; 3]> {
            let mut out = vec![[0.0; 3]; src.len()];
            for y in 0..h {
                for x in 0..w {
                    let mut acc = [0.0f32; 3];
                    for (k, kv) in kernel.iter().enumerate() {
                        let o = k as isize - radius;
                        let (sx, sy) = if horizontal {
                            ((x + o).clamp(0, w - 1), y)
                        } else {
                            (x, (y + o).clamp(0, h - 1))
                        };
                        let p = src[(sy * w + sx) as usize];
                        for c in 0..3 {
                            acc[c] += kv * p[c];
                        }
                    }
                    out[(y * w + x) as usize] = acc;
                }
            }
            out
        };
        let tmp = pass(&self.data, true);
        self.data = pass(&tmp, false);
    }

    /// Adds independent Gaussian noise with standard deviation `sigma` to every channel.
    pub fn add_noise(&mut self, rng: &mut Rng, sigma: f64) {
        for p in &mut self.data {
            for c in p.iter_mut() {
                *c += (rng.normal() * sigma) as f32;
            }
        }
    }

    /// Quantises to an 8-bit RGB image.
    pub fn to_rgb8(&self) -> image::RgbImage {
        let mut img = image::RgbImage::new(self.width as u32, self.height as u32);
        for (i, px) in img.pixels_mut().enumerate() {
            let p = self.data[i];
            px.0 = [q(p[0]), q(p[1]), q(p[2])];
        }
        img
    }
}

fn q(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Shoelace area of a polygon.
pub fn polygon_area(poly: &[(f64, f64)]) -> f64 {
    let mut a = 0.0;
    for i in 0..poly.len() {
        let (x1, y1) = poly[i];
        let (x2, y2) = poly[(i + 1) % poly.len()];
        a += x1 * y2 - x2 * y1;
    }
    a.abs() / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_exactly_the_pixels_of_an_axis_aligned_rectangle() {
        let mut c = Canvas::new(10, 8, [0.0; 3]);
        c.fill_polygon(
            &[(2.0, 1.0), (6.0, 1.0), (6.0, 4.0), (2.0, 4.0)],
            [255.0; 3],
        );
        let filled: Vec<(usize, usize)> = (0..80)
            .filter(|i| c.data[*i][0] > 0.0)
            .map(|i| (i % 10, i / 10))
            .collect();
        assert_eq!(filled.len(), 12);
        assert!(
            filled
                .iter()
                .all(|&(x, y)| (2..6).contains(&x) && (1..4).contains(&y))
        );
    }

    #[test]
    fn filled_area_matches_shoelace_for_a_triangle() {
        let tri = [(3.2, 2.5), (60.7, 10.1), (20.3, 55.9)];
        let c = Canvas::new(64, 64, [0.0; 3]);
        let mut n = 0usize;
        c.for_each_inside(&tri, |_, _| n += 1);
        let area = polygon_area(&tri);
        assert!((n as f64 - area).abs() / area < 0.03, "{n} vs {area}");
    }

    #[test]
    fn blur_preserves_a_flat_image_and_smooths_an_edge() {
        let mut c = Canvas::new(9, 9, [100.0; 3]);
        c.blur(1.0);
        assert!(c.data.iter().all(|p| (p[0] - 100.0).abs() < 1e-3));
        let mut e = Canvas::new(9, 1, [0.0; 3]);
        for x in 5..9 {
            e.data[x] = [90.0; 3];
        }
        e.blur(1.0);
        assert!(e.data[4][0] > 0.0 && e.data[4][0] < 90.0);
    }
}
