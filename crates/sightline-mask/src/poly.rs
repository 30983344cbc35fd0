//! Polygon and box rasterisation, bit-exact with pycocotools' `rleFrPoly` / `rleFrBbox`.
//!
//! The polygon is upsampled by 5, its edges are walked on that fine grid, and a pixel column `x` toggles
//! foreground at every crossing of the edge with the line through the pixel centres (`x + 0.5`); the
//! resulting boundary points are turned directly into run lengths.

use crate::{MaskError, Rle};

const SCALE: f64 = 5.0;

impl Rle {
    /// Rasterises one polygon `[x0, y0, x1, y1, …]` (closed implicitly) into an `h × w` mask exactly as
    /// pycocotools' `frPyObjects([poly], h, w)`. A trailing odd coordinate is ignored; an empty polygon gives an
    /// empty mask.
    pub fn from_polygon(xy: &[f64], h: u32, w: u32) -> Result<Rle, MaskError> {
        let total =
            u32::try_from(u64::from(h) * u64::from(w)).map_err(|_| MaskError::TooLarge { h, w })?;
        let k = xy.len() / 2;
        if k == 0 {
            return Rle::empty(h, w);
        }
        // Upsample the vertices (C `(int)` truncation toward zero).
        let mut x: Vec<i32> = (0..k).map(|j| (SCALE * xy[2 * j] + 0.5) as i32).collect();
        let mut y: Vec<i32> = (0..k)
            .map(|j| (SCALE * xy[2 * j + 1] + 0.5) as i32)
            .collect();
        x.push(x[0]);
        y.push(y[0]);
        // Dense points along every edge.
        let mut u: Vec<i32> = Vec::new();
        let mut v: Vec<i32> = Vec::new();
        for j in 0..k {
            let (mut xs, mut xe, mut ys, mut ye) = (x[j], x[j + 1], y[j], y[j + 1]);
            let dx = (xe - xs).abs();
            let dy = (ys - ye).abs();
            let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
            if flip {
                std::mem::swap(&mut xs, &mut xe);
                std::mem::swap(&mut ys, &mut ye);
            }
            if dx >= dy {
                // dx == dy == 0 gives NaN in C too; the point never contributes (its neighbours share its x).
                let s = f64::from(ye - ys) / f64::from(dx);
                for d in 0..=dx {
                    let t = if flip { dx - d } else { d };
                    u.push(t + xs);
                    v.push((f64::from(ys) + s * f64::from(t) + 0.5) as i32);
                }
            } else {
                let s = f64::from(xe - xs) / f64::from(dy);
                for d in 0..=dy {
                    let t = if flip { dy - d } else { d };
                    v.push(t + ys);
                    u.push((f64::from(xs) + s * f64::from(t) + 0.5) as i32);
                }
            }
        }
        // Points on the pixel-centre lines, downsampled.
        let (hf, wf) = (f64::from(h), f64::from(w));
        let mut a: Vec<u32> = Vec::new();
        for j in 1..u.len() {
            if u[j] == u[j - 1] {
                continue;
            }
            let xd = f64::from(if u[j] < u[j - 1] { u[j] } else { u[j] - 1 });
            let xd = (xd + 0.5) / SCALE - 0.5;
            if xd.floor() != xd || xd < 0.0 || xd > wf - 1.0 {
                continue;
            }
            let yd = f64::from(if v[j] < v[j - 1] { v[j] } else { v[j - 1] });
            let mut yd = (yd + 0.5) / SCALE - 0.5;
            if yd < 0.0 {
                yd = 0.0;
            } else if yd > hf {
                yd = hf;
            }
            let yd = yd.ceil();
            a.push((xd as u32).wrapping_mul(h).wrapping_add(yd as u32));
        }
        a.push(total);
        a.sort_unstable();
        let mut p = 0u32;
        for e in a.iter_mut() {
            let t = *e;
            *e -= p;
            p = t;
        }
        // Merge zero-length runs (two toggles at the same pixel cancel).
        let mut b: Vec<u32> = Vec::with_capacity(a.len());
        b.push(a[0]);
        let mut j = 1;
        while j < a.len() {
            if a[j] > 0 {
                b.push(a[j]);
                j += 1;
            } else {
                j += 1;
                if j < a.len() {
                    if let Some(last) = b.last_mut() {
                        *last += a[j];
                    }
                    j += 1;
                }
            }
        }
        Ok(Rle::from_parts(h, w, b))
    }

    /// Rasterises several polygons (the parts of one COCO object) and unites them, like pycocotools'
    /// `merge(frPyObjects(polys, h, w))`. No polygons give an empty `h × w` mask (pycocotools would give `0×0`).
    pub fn from_polygons<P: AsRef<[f64]>>(polys: &[P], h: u32, w: u32) -> Result<Rle, MaskError> {
        let parts = polys
            .iter()
            .map(|p| Rle::from_polygon(p.as_ref(), h, w))
            .collect::<Result<Vec<_>, _>>()?;
        if parts.is_empty() {
            return Rle::empty(h, w);
        }
        Rle::merge(&parts, false)
    }

    /// Rasterises a box `[x, y, w, h]` like pycocotools' `frBbox` (a 4-vertex polygon).
    pub fn from_bbox(bb: &[f64; 4], h: u32, w: u32) -> Result<Rle, MaskError> {
        let (xs, ys) = (bb[0], bb[1]);
        let (xe, ye) = (xs + bb[2], ys + bb[3]);
        Rle::from_polygon(&[xs, ys, xs, ye, xe, ye, xe, ys], h, w)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn integer_box_covers_its_pixels() {
        let r = Rle::from_bbox(&[1.0, 1.0, 2.0, 2.0], 4, 4).unwrap();
        assert_eq!(r.counts(), &[5, 2, 2, 2, 5]);
        assert_eq!(r.to_bbox(), [1.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    fn empty_and_degenerate_polygons() {
        assert_eq!(Rle::from_polygon(&[], 3, 3).unwrap().counts(), &[9]);
        assert_eq!(
            Rle::from_polygon(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 3, 3)
                .unwrap()
                .area(),
            0
        );
        assert_eq!(
            Rle::from_polygons::<Vec<f64>>(&[], 3, 3).unwrap().counts(),
            &[9]
        );
    }
}
