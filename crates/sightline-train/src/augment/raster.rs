//! Polygon rasterisation: a pixel belongs to the mask when its centre lies inside a polygon.

/// Rasterise the union of `polygons` (pixel coordinates multiplied by `scale`) into a row-major
/// `width × height` mask of 0/1 values. A pixel is set when its centre is inside any polygon
/// (even–odd rule per polygon).
pub fn rasterize(polygons: &[Vec<[f32; 2]>], width: usize, height: usize, scale: f32) -> Vec<u8> {
    let mut mask = vec![0u8; width * height];
    let mut xs: Vec<f32> = Vec::new();
    for poly in polygons {
        if poly.len() < 3 {
            continue;
        }
        let pts: Vec<[f32; 2]> = poly.iter().map(|p| [p[0] * scale, p[1] * scale]).collect();
        let (mut ymin, mut ymax) = (f32::INFINITY, f32::NEG_INFINITY);
        for p in &pts {
            ymin = ymin.min(p[1]);
            ymax = ymax.max(p[1]);
        }
        if !ymin.is_finite() || !ymax.is_finite() {
            continue;
        }
        let r0 = (ymin - 0.5).ceil().max(0.0) as usize;
        let r1 = ((ymax - 0.5).floor() as i64).min(height as i64 - 1);
        if r1 < 0 {
            continue;
        }
        for row in r0..=(r1 as usize) {
            let yc = row as f32 + 0.5;
            xs.clear();
            let n = pts.len();
            for i in 0..n {
                let a = pts[i];
                let b = pts[(i + 1) % n];
                // half-open rule on y avoids double counting shared vertices
                if (a[1] <= yc) != (b[1] <= yc) {
                    let t = (yc - a[1]) / (b[1] - a[1]);
                    xs.push(a[0] + t * (b[0] - a[0]));
                }
            }
            xs.sort_by(f32::total_cmp);
            for pair in xs.chunks_exact(2) {
                // pixels whose centre x+0.5 lies in [pair[0], pair[1])
                let c0 = (pair[0] - 0.5).ceil().max(0.0) as usize;
                let c1 = ((pair[1] - 0.5).ceil() as i64).min(width as i64);
                if c1 <= c0 as i64 {
                    continue;
                }
                let base = row * width;
                for v in &mut mask[base + c0..base + c1 as usize] {
                    *v = 1;
                }
            }
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_aligned_rectangle_covers_exactly_its_pixels() {
        let poly = vec![vec![[2.0, 1.0], [6.0, 1.0], [6.0, 4.0], [2.0, 4.0]]];
        let m = rasterize(&poly, 8, 6, 1.0);
        for y in 0..6 {
            for x in 0..8 {
                let inside = (2..6).contains(&x) && (1..4).contains(&y);
                assert_eq!(m[y * 8 + x] == 1, inside, "pixel {x},{y}");
            }
        }
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 12);
        // at half resolution the rectangle is x in [1, 3), y in [0.5, 2): centres x=1.5, y=0.5 and 1.5
        let q = rasterize(&poly, 2, 2, 0.5);
        assert_eq!(q, vec![0, 1, 0, 1]);
    }

    #[test]
    fn triangle_area_matches_and_two_polygons_union() {
        let tri = vec![vec![[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]]];
        let m = rasterize(&tri, 100, 100, 1.0);
        let n = m.iter().filter(|&&v| v == 1).count() as f32;
        assert!((n - 5000.0).abs() < 100.0, "{n}");
        let two = vec![
            vec![[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]],
            vec![[4.0, 4.0], [6.0, 4.0], [6.0, 6.0], [4.0, 6.0]],
        ];
        let m = rasterize(&two, 8, 8, 1.0);
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 8);
    }
}
