//! Mask → polygons by contour tracing (the inverse of rasterisation, approximate).
//!
//! Each 4-connected foreground component is traced along its outer pixel edges, giving a polygon whose vertices
//! lie on pixel corners (integer coordinates). Collinear vertices are dropped; an optional Douglas–Peucker
//! tolerance simplifies further.
//!
//! **Precision**: with `tolerance == 0` the polygon of a component without holes rasterises back
//! ([`Rle::from_polygon`]) to exactly that component. Holes are not represented (COCO polygons cannot express them):
//! they come back filled. Components touching only diagonally become separate polygons. With `tolerance > 0` the
//! outline moves by up to `tolerance` pixels, so a few boundary pixels may flip.

use crate::Rle;

/// Outer polygons (`[x0, y0, x1, y1, …]`, pixel-corner coordinates) of the 4-connected components of `mask`,
/// in scan order of their top-left pixel, simplified with Douglas–Peucker at `tolerance` pixels (`0.0` = exact
/// outline). Polygons that degenerate below 3 vertices are dropped.
pub fn mask_to_polygons(mask: &Rle, tolerance: f64) -> Vec<Vec<f64>> {
    let (h, w) = (mask.h() as usize, mask.w() as usize);
    let grid = mask.decode_row_major();
    // Component labels, 0 = background.
    let mut label = vec![0u32; h * w];
    let mut next = 0u32;
    let mut starts = Vec::new();
    let mut stack = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if grid[i] == 0 || label[i] != 0 {
                continue;
            }
            next += 1;
            starts.push((x, y, next));
            label[i] = next;
            stack.push(i);
            while let Some(j) = stack.pop() {
                let (jx, jy) = (j % w, j / w);
                let mut visit = |k: usize| {
                    if grid[k] != 0 && label[k] == 0 {
                        label[k] = next;
                        stack.push(k);
                    }
                };
                if jx > 0 {
                    visit(j - 1);
                }
                if jx + 1 < w {
                    visit(j + 1);
                }
                if jy > 0 {
                    visit(j - w);
                }
                if jy + 1 < h {
                    visit(j + w);
                }
            }
        }
    }
    let inside = |px: i64, py: i64, id: u32| -> bool {
        px >= 0
            && py >= 0
            && (px as usize) < w
            && (py as usize) < h
            && label[py as usize * w + px as usize] == id
    };
    let mut out = Vec::new();
    for (sx, sy, id) in starts {
        let verts = trace(sx as i64, sy as i64, |px, py| inside(px, py, id));
        let verts = if tolerance > 0.0 {
            simplify(&verts, tolerance)
        } else {
            verts
        };
        if verts.len() >= 3 {
            out.push(
                verts
                    .iter()
                    .flat_map(|&(x, y)| [x as f64, y as f64])
                    .collect(),
            );
        }
    }
    out
}

/// Direction steps: east, south, west, north (image coordinates, y down).
const STEP: [(i64, i64); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];

/// Whether the edge leaving vertex `(vx, vy)` in direction `d` has the component on its right and not on its left.
fn is_boundary(vx: i64, vy: i64, d: usize, inside: &impl Fn(i64, i64) -> bool) -> bool {
    let (right, left) = match d {
        0 => ((vx, vy), (vx, vy - 1)),
        1 => ((vx - 1, vy), (vx, vy)),
        2 => ((vx - 1, vy - 1), (vx - 1, vy)),
        _ => ((vx, vy - 1), (vx - 1, vy - 1)),
    };
    inside(right.0, right.1) && !inside(left.0, left.1)
}

/// Walks the outer boundary clockwise from the top edge of the component's top-left pixel; returns the corners.
fn trace(sx: i64, sy: i64, inside: impl Fn(i64, i64) -> bool) -> Vec<(i64, i64)> {
    let (mut vx, mut vy, mut d) = (sx, sy, 0usize);
    let mut verts = vec![(sx, sy)];
    loop {
        vx += STEP[d].0;
        vy += STEP[d].1;
        // Prefer a right turn, then straight on, then a left turn (hugging the pixels on the right).
        let Some(nd) = [(d + 1) % 4, d, (d + 3) % 4]
            .into_iter()
            .find(|&nd| is_boundary(vx, vy, nd, &inside))
        else {
            // Cannot happen on a closed boundary; stop rather than loop.
            break;
        };
        if (vx, vy) == (sx, sy) && nd == 0 {
            break;
        }
        if nd != d {
            verts.push((vx, vy));
        }
        d = nd;
    }
    verts
}

/// Douglas–Peucker on a closed polygon, anchored at its first vertex and the vertex farthest from it.
fn simplify(pts: &[(i64, i64)], tol: f64) -> Vec<(i64, i64)> {
    if pts.len() < 4 {
        return pts.to_vec();
    }
    let p0 = pts[0];
    let far = (1..pts.len())
        .max_by_key(|&i| (pts[i].0 - p0.0).pow(2) + (pts[i].1 - p0.1).pow(2))
        .unwrap_or(1);
    let mut keep = vec![false; pts.len()];
    keep[0] = true;
    keep[far] = true;
    let ring: Vec<(i64, i64)> = pts.iter().copied().chain(std::iter::once(p0)).collect();
    dp(&ring, 0, far, tol, &mut keep);
    dp(&ring, far, pts.len(), tol, &mut keep);
    pts.iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(p, _)| *p)
        .collect()
}

fn dp(ring: &[(i64, i64)], a: usize, b: usize, tol: f64, keep: &mut [bool]) {
    if b <= a + 1 {
        return;
    }
    let (ax, ay) = (ring[a].0 as f64, ring[a].1 as f64);
    let (bx, by) = (ring[b].0 as f64, ring[b].1 as f64);
    let len = ((bx - ax).powi(2) + (by - ay).powi(2)).sqrt();
    let mut best = (0.0f64, a);
    for (i, p) in ring.iter().enumerate().take(b).skip(a + 1) {
        let (px, py) = (p.0 as f64, p.1 as f64);
        let dist = if len == 0.0 {
            ((px - ax).powi(2) + (py - ay).powi(2)).sqrt()
        } else {
            ((bx - ax) * (ay - py) - (ax - px) * (by - ay)).abs() / len
        };
        if dist > best.0 {
            best = (dist, i);
        }
    }
    if best.0 > tol {
        keep[best.1 % keep.len()] = true;
        dp(ring, a, best.1, tol, keep);
        dp(ring, best.1, b, tol, keep);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rectangle_and_l_shape() {
        let r = Rle::from_bbox(&[2.0, 1.0, 3.0, 2.0], 6, 8).unwrap();
        let p = mask_to_polygons(&r, 0.0);
        assert_eq!(p, vec![vec![2.0, 1.0, 5.0, 1.0, 5.0, 3.0, 2.0, 3.0]]);
        assert_eq!(Rle::from_polygon(&p[0], 6, 8).unwrap(), r);

        // L shape (row-major 4x4).
        #[rustfmt::skip]
        let m = [1u8, 0, 0, 0,
                 1, 0, 0, 0,
                 1, 1, 1, 0,
                 0, 0, 0, 0];
        let r = Rle::encode_row_major(&m, 4, 4).unwrap();
        let p = mask_to_polygons(&r, 0.0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].len(), 12);
        assert_eq!(Rle::from_polygon(&p[0], 4, 4).unwrap(), r);
    }

    #[test]
    fn holes_are_filled_and_components_split() {
        #[rustfmt::skip]
        let m = [1u8, 1, 1, 0, 0,
                 1, 0, 1, 0, 1,
                 1, 1, 1, 0, 0];
        let r = Rle::encode_row_major(&m, 3, 5).unwrap();
        let p = mask_to_polygons(&r, 0.0);
        assert_eq!(p.len(), 2);
        assert_eq!(Rle::from_polygon(&p[0], 3, 5).unwrap().area(), 9);
        assert_eq!(Rle::from_polygon(&p[1], 3, 5).unwrap().area(), 1);
    }

    #[test]
    fn simplification_reduces_vertices() {
        // A digital disc.
        let (h, w) = (40u32, 40u32);
        let mut m = vec![0u8; 1600];
        for y in 0..40 {
            for x in 0..40 {
                let (dx, dy) = (x as f64 + 0.5 - 20.0, y as f64 + 0.5 - 20.0);
                if dx * dx + dy * dy < 15.0 * 15.0 {
                    m[y * 40 + x] = 1;
                }
            }
        }
        let r = Rle::encode_row_major(&m, h, w).unwrap();
        let exact = mask_to_polygons(&r, 0.0);
        assert_eq!(Rle::from_polygon(&exact[0], h, w).unwrap(), r);
        let simple = mask_to_polygons(&r, 1.0);
        assert!(simple[0].len() < exact[0].len());
        let back = Rle::from_polygon(&simple[0], h, w).unwrap();
        assert!(back.iou(&r, false) > 0.9);
    }
}
