//! Affine maps and image warping with bilinear sampling.

use image::RgbImage;

/// A 2-D affine map `x' = a·x + b·y + c`, `y' = d·x + e·y + f`, stored as `[a, b, c, d, e, f]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [f64; 6]);

impl Affine {
    /// The identity map.
    pub const IDENTITY: Affine = Affine([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);

    /// Translation by `(tx, ty)`.
    pub fn translate(tx: f64, ty: f64) -> Self {
        Affine([1.0, 0.0, tx, 0.0, 1.0, ty])
    }

    /// Scaling by `(sx, sy)` about the origin.
    pub fn scale(sx: f64, sy: f64) -> Self {
        Affine([sx, 0.0, 0.0, 0.0, sy, 0.0])
    }

    /// `self ∘ other`: apply `other` first, then `self`.
    pub fn then_after(&self, other: &Affine) -> Affine {
        let [a, b, c, d, e, f] = self.0;
        let [a2, b2, c2, d2, e2, f2] = other.0;
        Affine([
            a * a2 + b * d2,
            a * b2 + b * e2,
            a * c2 + b * f2 + c,
            d * a2 + e * d2,
            d * b2 + e * e2,
            d * c2 + e * f2 + f,
        ])
    }

    /// The inverse map, `None` when singular.
    pub fn inverse(&self) -> Option<Affine> {
        let [a, b, c, d, e, f] = self.0;
        let det = a * e - b * d;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine([
            ia,
            ib,
            -(ia * c + ib * f),
            id,
            ie,
            -(id * c + ie * f),
        ]))
    }

    /// Map one point.
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let [a, b, c, d, e, f] = self.0;
        let (x, y) = (f64::from(p[0]), f64::from(p[1]));
        [(a * x + b * y + c) as f32, (d * x + e * y + f) as f32]
    }
}

/// Warp `src` into a `width × height` image through `m` (source → destination coordinates),
/// bilinear sampling, `fill` outside the source. Returns `None` when `m` is singular.
pub fn warp_affine(
    src: &RgbImage,
    m: &Affine,
    width: u32,
    height: u32,
    fill: [u8; 3],
) -> Option<RgbImage> {
    let inv = m.inverse()?;
    let [a, b, c, d, e, f] = inv.0;
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw();
    let mut out = RgbImage::new(width, height);
    let buf: &mut [u8] = &mut out;
    let row_len = width as usize * 3;
    for (y, row) in buf.chunks_exact_mut(row_len.max(1)).enumerate() {
        let yc = y as f64 + 0.5;
        for x in 0..width as usize {
            let xc = x as f64 + 0.5;
            // source position in index space (pixel centres at integers)
            let sx = a * xc + b * yc + c - 0.5;
            let sy = d * xc + e * yc + f - 0.5;
            let px = &mut row[x * 3..x * 3 + 3];
            if !(sx > -1.0 && sy > -1.0 && sx < sw as f64 && sy < sh as f64) {
                px.copy_from_slice(&fill);
                continue;
            }
            let x0 = sx.floor() as i64;
            let y0 = sy.floor() as i64;
            let fx = sx - x0 as f64;
            let fy = sy - y0 as f64;
            let mut acc = [0.0f64; 3];
            for (dy, wy) in [(0i64, 1.0 - fy), (1, fy)] {
                for (dx, wx) in [(0i64, 1.0 - fx), (1, fx)] {
                    let w = wx * wy;
                    if w == 0.0 {
                        continue;
                    }
                    let (xx, yy) = (x0 + dx, y0 + dy);
                    let v: [u8; 3] = if xx < 0 || yy < 0 || xx >= sw || yy >= sh {
                        fill
                    } else {
                        let i = ((yy * sw + xx) * 3) as usize;
                        [raw[i], raw[i + 1], raw[i + 2]]
                    };
                    for ch in 0..3 {
                        acc[ch] += w * f64::from(v[ch]);
                    }
                }
            }
            for ch in 0..3 {
                px[ch] = acc[ch].round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Some(out)
}

/// Resize with bilinear sampling (the same sampling as [`warp_affine`]).
pub fn resize(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let m = Affine::scale(
        f64::from(width) / f64::from(src.width().max(1)),
        f64::from(height) / f64::from(src.height().max(1)),
    );
    // A positive diagonal scale is never singular.
    warp_affine(src, &m, width, height, [0, 0, 0]).unwrap_or_else(|| RgbImage::new(width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_and_composition() {
        let m = Affine([1.2, 0.3, 5.0, -0.4, 0.9, -2.0]);
        let inv = m.inverse().unwrap();
        let id = inv.then_after(&m);
        for (x, y) in id.0.iter().zip(Affine::IDENTITY.0.iter()) {
            assert!((x - y).abs() < 1e-12);
        }
        let t = Affine::translate(3.0, 4.0).then_after(&Affine::scale(2.0, 2.0));
        assert_eq!(t.apply([1.0, 1.0]), [5.0, 6.0]);
        assert!(Affine([1.0, 2.0, 0.0, 2.0, 4.0, 0.0]).inverse().is_none());
    }

    #[test]
    fn translation_by_whole_pixels_moves_pixels_exactly() {
        let mut src = RgbImage::new(8, 6);
        for (x, y, p) in src.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 30) as u8, (y * 40) as u8, 7]);
        }
        let out = warp_affine(&src, &Affine::translate(2.0, 1.0), 8, 6, [114, 114, 114]).unwrap();
        assert_eq!(out.get_pixel(2, 1), src.get_pixel(0, 0));
        assert_eq!(out.get_pixel(7, 5), src.get_pixel(5, 4));
        assert_eq!(out.get_pixel(0, 0).0, [114, 114, 114]);
        // an integer upscale by 2 keeps the value at the centre of each 2x2 block's parent
        let up = resize(&src, 16, 12);
        assert_eq!(up.width(), 16);
        assert_eq!(up.get_pixel(8, 6).0[2], 7);
    }
}
