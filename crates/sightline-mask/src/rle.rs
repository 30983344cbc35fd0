//! The [`Rle`] type: COCO run-length encoding of a binary mask, and the operations of pycocotools' `maskApi.c`
//! (encode, decode, area, bounding box, merge, IoU).

use crate::MaskError;

/// A binary mask of `h × w` pixels as COCO run lengths over the **column-major** pixel order.
///
/// Counts alternate background / foreground runs, starting with background; they always add up to `h * w`
/// (checked by every constructor). Zero-length runs other than the first are tolerated (uncompressed RLE written
/// by other tools may contain them); every operation here treats them like pycocotools does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rle {
    h: u32,
    w: u32,
    counts: Vec<u32>,
}

pub(crate) fn pixel_count(h: u32, w: u32) -> Result<u64, MaskError> {
    let n = u64::from(h) * u64::from(w);
    if n > u64::from(u32::MAX) {
        return Err(MaskError::TooLarge { h, w });
    }
    Ok(n)
}

impl Rle {
    /// Builds an RLE from explicit counts (the "uncompressed RLE" of COCO json), checking that they add up to
    /// `h * w`.
    pub fn new(h: u32, w: u32, counts: Vec<u32>) -> Result<Self, MaskError> {
        let expected = pixel_count(h, w)?;
        let sum: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        if sum != expected {
            return Err(MaskError::CountsSum {
                sum,
                h,
                w,
                expected,
            });
        }
        Ok(Self { h, w, counts })
    }

    /// Internal constructor for counts that are known to add up to `h * w`.
    pub(crate) fn from_parts(h: u32, w: u32, counts: Vec<u32>) -> Self {
        Self { h, w, counts }
    }

    /// An all-background mask (`counts == [h * w]`).
    pub fn empty(h: u32, w: u32) -> Result<Self, MaskError> {
        let n = pixel_count(h, w)?;
        // n fits u32: checked above.
        Ok(Self {
            h,
            w,
            counts: vec![u32::try_from(n).unwrap_or(u32::MAX)],
        })
    }

    /// Mask height in pixels.
    pub fn h(&self) -> u32 {
        self.h
    }

    /// Mask width in pixels.
    pub fn w(&self) -> u32 {
        self.w
    }

    /// Run lengths (background first).
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// Consumes the RLE, returning its run lengths.
    pub fn into_counts(self) -> Vec<u32> {
        self.counts
    }

    /// Encodes a column-major mask (`mask[x * h + y]`, non-zero = foreground), like pycocotools' `encode`.
    pub fn encode_col_major(mask: &[u8], h: u32, w: u32) -> Result<Self, MaskError> {
        Self::encode_iter(mask.len(), h, w, mask.iter().map(|&v| v != 0))
    }

    /// Encodes a row-major mask (`mask[y * w + x]`, non-zero = foreground: the layout of image buffers).
    pub fn encode_row_major(mask: &[u8], h: u32, w: u32) -> Result<Self, MaskError> {
        let (hu, wu) = (h as usize, w as usize);
        let it = (0..wu).flat_map(move |x| (0..hu).map(move |y| (x, y)));
        if mask.len() as u64 != u64::from(h) * u64::from(w) {
            return Err(MaskError::BufferSize {
                len: mask.len(),
                h,
                w,
                expected: u64::from(h) * u64::from(w),
            });
        }
        Self::encode_iter(mask.len(), h, w, it.map(|(x, y)| mask[y * wu + x] != 0))
    }

    fn encode_iter(
        len: usize,
        h: u32,
        w: u32,
        pixels: impl Iterator<Item = bool>,
    ) -> Result<Self, MaskError> {
        let expected = pixel_count(h, w)?;
        if len as u64 != expected {
            return Err(MaskError::BufferSize {
                len,
                h,
                w,
                expected,
            });
        }
        let mut counts = Vec::new();
        let mut prev = false;
        let mut run = 0u32;
        for p in pixels {
            if p != prev {
                counts.push(run);
                run = 0;
                prev = p;
            }
            run += 1;
        }
        counts.push(run);
        Ok(Self { h, w, counts })
    }

    /// Decodes to a column-major mask of 0/1 bytes (`mask[x * h + y]`).
    pub fn decode_col_major(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.h as usize * self.w as usize);
        let mut v = 0u8;
        for &c in &self.counts {
            out.extend(std::iter::repeat_n(v, c as usize));
            v ^= 1;
        }
        out
    }

    /// Decodes to a row-major mask of 0/1 bytes (`mask[y * w + x]`).
    pub fn decode_row_major(&self) -> Vec<u8> {
        let (h, w) = (self.h as usize, self.w as usize);
        let mut out = vec![0u8; h * w];
        let mut pos = 0usize;
        let mut v = false;
        for &c in &self.counts {
            if v {
                for i in pos..pos + c as usize {
                    let (x, y) = (i / h, i % h);
                    out[y * w + x] = 1;
                }
            }
            pos += c as usize;
            v = !v;
        }
        out
    }

    /// Number of foreground pixels (pycocotools `area`).
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| u64::from(c))
            .sum()
    }

    /// Tight bounding box `[x, y, w, h]` of the foreground (pycocotools `toBbox`); all zeros for an empty mask.
    ///
    /// Follows `rleToBbox` exactly, including its quirk that a run crossing a column boundary widens the box to
    /// the full height.
    pub fn to_bbox(&self) -> [f64; 4] {
        let (h, w) = (self.h, self.w);
        let m = self.counts.len() / 2 * 2;
        if m == 0 || h == 0 {
            return [0.0; 4];
        }
        let (mut xs, mut ys, mut xe, mut ye) = (w, h, 0u32, 0u32);
        let mut cc = 0u32;
        let mut xp = 0u32;
        // (px, py): column and row of pixel index `cc`, advanced incrementally (a division only when a run
        // crosses a column) instead of `t % h` per count as in C; same values.
        let (mut px, mut py) = (0u64, 0u64);
        let h64 = u64::from(h);
        for (j, &c) in self.counts[..m].iter().enumerate() {
            cc = cc.wrapping_add(c);
            py += u64::from(c);
            if py >= h64 {
                // Most runs cross at most one column boundary: no division for those.
                if py < 2 * h64 {
                    px += 1;
                    py -= h64;
                } else {
                    px += py / h64;
                    py %= h64;
                }
            }
            let (x, y) = if j % 2 == 0 {
                (px as u32, py as u32)
            } else if cc == 0 {
                // `cc - 1` wraps in C; keep its arithmetic for this degenerate case.
                let t = u32::MAX;
                (t / h, t % h)
            } else if py == 0 {
                (px as u32 - 1, h - 1)
            } else {
                (px as u32, py as u32 - 1)
            };
            if j % 2 == 0 {
                xp = x;
            } else if xp < x {
                ys = 0;
                ye = h - 1;
            }
            xs = xs.min(x);
            xe = xe.max(x);
            ys = ys.min(y);
            ye = ye.max(y);
        }
        [
            f64::from(xs),
            f64::from(ys),
            f64::from(xe.wrapping_sub(xs).wrapping_add(1)),
            f64::from(ye.wrapping_sub(ys).wrapping_add(1)),
        ]
    }

    /// Union (`intersect == false`) or intersection of several masks of the same size (pycocotools `merge`).
    ///
    /// One mask is returned unchanged; no masks at all give a `0×0` RLE, as in pycocotools. The result is in
    /// canonical form (no zero-length runs after the first).
    pub fn merge(rles: &[Rle], intersect: bool) -> Result<Rle, MaskError> {
        let Some(first) = rles.first() else {
            return Ok(Rle {
                h: 0,
                w: 0,
                counts: Vec::new(),
            });
        };
        let mut acc = first.clone();
        for r in &rles[1..] {
            if r.h != acc.h || r.w != acc.w {
                return Err(MaskError::SizeMismatch(acc.h, acc.w, r.h, r.w));
            }
            let mut b = RunBuilder::default();
            walk(&acc.counts, &r.counts, |va, vb, c| {
                b.push(if intersect { va && vb } else { va || vb }, c)
            });
            acc = Rle {
                h: acc.h,
                w: acc.w,
                counts: b.finish(),
            };
        }
        Ok(acc)
    }

    /// Union of two masks.
    pub fn union(&self, other: &Rle) -> Result<Rle, MaskError> {
        Rle::merge(&[self.clone(), other.clone()], false)
    }

    /// Intersection of two masks.
    pub fn intersection(&self, other: &Rle) -> Result<Rle, MaskError> {
        Rle::merge(&[self.clone(), other.clone()], true)
    }

    /// The complement of the mask.
    pub fn invert(&self) -> Rle {
        let counts = if self.counts.first() == Some(&0) {
            self.counts[1..].to_vec()
        } else {
            let mut c = Vec::with_capacity(self.counts.len() + 1);
            c.push(0);
            c.extend_from_slice(&self.counts);
            c
        };
        Rle {
            h: self.h,
            w: self.w,
            counts,
        }
    }

    /// IoU of this mask (a detection) with a ground-truth mask, as pycocotools' `rleIou`:
    /// `|dt ∩ gt| / |dt ∪ gt|`, or `|dt ∩ gt| / |dt|` when `gt_crowd` is set. Returns `-1.0` when the sizes
    /// differ and the boxes overlap (pycocotools' convention), `0.0` when nothing overlaps.
    pub fn iou(&self, gt: &Rle, gt_crowd: bool) -> f64 {
        iou_with_boxes(
            self,
            &self.to_bbox(),
            self.area(),
            gt,
            &gt.to_bbox(),
            gt.area(),
            gt_crowd,
        )
    }
}

/// IoU of every detection with every ground truth (pycocotools `maskUtils.iou` on RLEs), row-major
/// `dt.len() × gt.len()` (`out[d * gt.len() + g]`). `gt_crowd[g]` marks crowd regions (missing = not crowd).
///
/// Each mask's box and area are computed once; a pair's runs are walked only when its boxes overlap.
pub fn iou_matrix(dt: &[Rle], gt: &[Rle], gt_crowd: &[bool]) -> Vec<f64> {
    let mut out = Vec::with_capacity(dt.len() * gt.len());
    if dt.is_empty() || gt.is_empty() {
        return out;
    }
    let gb: Vec<([f64; 4], u64)> = gt.iter().map(|g| (g.to_bbox(), g.area())).collect();
    for d in dt {
        let (dbox, darea) = (d.to_bbox(), d.area());
        for (g, (gr, (gbox, garea))) in gt.iter().zip(&gb).enumerate() {
            let crowd = gt_crowd.get(g).copied().unwrap_or(false);
            out.push(iou_with_boxes(d, &dbox, darea, gr, gbox, *garea, crowd));
        }
    }
    out
}

/// `rleIou` for one pair with precomputed boxes and areas (the box test decides whether the runs are walked at
/// all). `|dt ∪ gt| = |dt| + |gt| - |dt ∩ gt|`, in integers, so the value is the one pycocotools computes.
pub(crate) fn iou_with_boxes(
    dt: &Rle,
    dbox: &[f64; 4],
    darea: u64,
    gt: &Rle,
    gbox: &[f64; 4],
    garea: u64,
    crowd: bool,
) -> f64 {
    if crate::bbox::box_iou(dbox, gbox, crowd) <= 0.0 {
        return 0.0;
    }
    if dt.h != gt.h || dt.w != gt.w {
        return -1.0;
    }
    let inter = intersection_area(&dt.counts, &gt.counts);
    if inter == 0 {
        return 0.0;
    }
    let uni = if crowd { darea } else { darea + garea - inter };
    inter as f64 / uni as f64
}

/// The next non-empty foreground interval `[start, end)` of a run-length list; `k` indexes the next background
/// run, `p` is the position where it starts.
#[inline]
fn next_fg(c: &[u32], k: &mut usize, p: &mut u64) -> Option<(u64, u64)> {
    while *k + 1 < c.len() {
        let s = *p + u64::from(c[*k]);
        let e = s + u64::from(c[*k + 1]);
        *p = e;
        *k += 2;
        if e > s {
            return Some((s, e));
        }
    }
    None
}

/// Pixels in the foreground of both masks (same size): a two-pointer sweep over their foreground intervals.
fn intersection_area(a: &[u32], b: &[u32]) -> u64 {
    let (mut ka, mut kb, mut pa, mut pb) = (0usize, 0usize, 0u64, 0u64);
    let (Some(mut x), Some(mut y)) = (next_fg(a, &mut ka, &mut pa), next_fg(b, &mut kb, &mut pb))
    else {
        return 0;
    };
    let mut inter = 0u64;
    loop {
        let (lo, hi) = (x.0.max(y.0), x.1.min(y.1));
        if hi > lo {
            inter += hi - lo;
        }
        if x.1 <= y.1 {
            match next_fg(a, &mut ka, &mut pa) {
                Some(v) => x = v,
                None => return inter,
            }
        } else {
            match next_fg(b, &mut kb, &mut pb) {
                Some(v) => y = v,
                None => return inter,
            }
        }
    }
}

/// Walks two run-length lists in lockstep, calling `f(fg_a, fg_b, len)` for every stretch where neither changes.
fn walk(a: &[u32], b: &[u32], mut f: impl FnMut(bool, bool, u32)) {
    let (mut ia, mut ib) = (0usize, 0usize);
    let (mut ca, mut cb) = (0u32, 0u32);
    let (mut va, mut vb) = (true, true);
    loop {
        while ca == 0 {
            let Some(&c) = a.get(ia) else { return };
            ca = c;
            ia += 1;
            va = !va;
        }
        while cb == 0 {
            let Some(&c) = b.get(ib) else { return };
            cb = c;
            ib += 1;
            vb = !vb;
        }
        let c = ca.min(cb);
        f(va, vb, c);
        ca -= c;
        cb -= c;
    }
}

/// Accumulates (value, length) stretches into canonical run lengths.
#[derive(Default)]
struct RunBuilder {
    counts: Vec<u32>,
    cur: u32,
    v: bool,
}

impl RunBuilder {
    fn push(&mut self, v: bool, len: u32) {
        if v != self.v {
            self.counts.push(self.cur);
            self.cur = 0;
            self.v = v;
        }
        self.cur += len;
    }

    fn finish(mut self) -> Vec<u32> {
        self.counts.push(self.cur);
        self.counts
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rle(h: u32, w: u32, c: &[u32]) -> Rle {
        Rle::new(h, w, c.to_vec()).unwrap()
    }

    #[test]
    fn encode_decode_small() {
        let m = [1u8, 1, 0, 0, 0, 1];
        let r = Rle::encode_col_major(&m, 3, 2).unwrap();
        assert_eq!(r.counts(), &[0, 2, 3, 1]);
        assert_eq!(r.decode_col_major(), m.to_vec());
        assert_eq!(r.area(), 3);
    }

    #[test]
    fn row_major_roundtrip() {
        // h=2, w=3 row-major: row0 = 1 0 0, row1 = 1 1 0
        let m = [1u8, 0, 0, 1, 1, 0];
        let r = Rle::encode_row_major(&m, 2, 3).unwrap();
        assert_eq!(r.counts(), &[0, 2, 1, 1, 2]);
        assert_eq!(r.decode_row_major(), m.to_vec());
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(Rle::new(2, 2, vec![1, 2]).is_err());
        assert!(Rle::encode_col_major(&[0, 1], 2, 2).is_err());
        assert!(Rle::encode_row_major(&[0, 1], 2, 2).is_err());
    }

    #[test]
    fn bbox_matches_pycocotools_quirk() {
        // 4x4, run from (x=0,y=3) to (x=1,y=0) crosses a column: full height.
        let r = rle(4, 4, &[3, 2, 11]);
        assert_eq!(r.to_bbox(), [0.0, 0.0, 2.0, 4.0]);
        let r = rle(4, 4, &[5, 2, 9]);
        assert_eq!(r.to_bbox(), [1.0, 1.0, 1.0, 2.0]);
        assert_eq!(rle(4, 4, &[16]).to_bbox(), [0.0; 4]);
    }

    #[test]
    fn merge_and_iou() {
        let a = rle(2, 2, &[0, 2, 2]); // column 0
        let b = rle(2, 2, &[1, 2, 1]); // (0,1) and (1,0)
        assert_eq!(a.union(&b).unwrap().counts(), &[0, 3, 1]);
        assert_eq!(a.intersection(&b).unwrap().counts(), &[1, 1, 2]);
        assert!((a.iou(&b, false) - 1.0 / 3.0).abs() < 1e-12);
        assert!((b.iou(&a, true) - 0.5).abs() < 1e-12);
        let m = iou_matrix(&[a.clone(), b.clone()], std::slice::from_ref(&a), &[false]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], 1.0);
        let other = rle(1, 4, &[0, 4]);
        assert_eq!(a.iou(&other, false), -1.0);
        assert!(a.union(&other).is_err());
    }

    /// The interval sweep agrees with a pixel count, zero-length runs and crowd unions included.
    #[test]
    fn iou_matches_pixel_counts() {
        let (h, w) = (7u32, 9u32);
        let mut seed = 12345u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for _ in 0..200 {
            let mut masks = Vec::new();
            for _ in 0..2 {
                let bits: Vec<u8> = (0..h * w).map(|_| u8::from(rnd() % 3 == 0)).collect();
                let r = Rle::encode_col_major(&bits, h, w).unwrap();
                // Non-canonical form: a zero-length run pair inserted.
                let mut c = r.counts().to_vec();
                if c.len() > 2 {
                    c.splice(2..2, [0, 0]);
                }
                masks.push((bits, Rle::new(h, w, c).unwrap()));
            }
            let (a, b) = (&masks[0], &masks[1]);
            let inter =
                a.0.iter()
                    .zip(&b.0)
                    .filter(|(x, y)| **x == 1 && **y == 1)
                    .count();
            let uni =
                a.0.iter()
                    .zip(&b.0)
                    .filter(|(x, y)| **x == 1 || **y == 1)
                    .count();
            let area_a = a.0.iter().filter(|x| **x == 1).count();
            let want = |u: usize| {
                if inter == 0 {
                    0.0
                } else {
                    inter as f64 / u as f64
                }
            };
            assert_eq!(a.1.iou(&b.1, false), want(uni));
            assert_eq!(a.1.iou(&b.1, true), want(area_a));
            assert_eq!(
                iou_matrix(
                    std::slice::from_ref(&a.1),
                    std::slice::from_ref(&b.1),
                    &[false]
                ),
                vec![want(uni)]
            );
        }
    }

    /// The matrix equals pairwise `iou` (row-major, crowd columns, an empty mask) for small scattered masks.
    #[test]
    fn iou_matrix_equals_pairwise_iou() {
        let (h, w) = (12u32, 20u32);
        let mut seed = 777u64;
        let mut rnd = move |n: u32| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as u32) % n
        };
        let mk = |rnd: &mut dyn FnMut(u32) -> u32| {
            let (x0, y0) = (rnd(w), rnd(h));
            let (bw, bh) = (1 + rnd(6), 1 + rnd(6));
            let mut bits = vec![0u8; (h * w) as usize];
            for y in y0..(y0 + bh).min(h) {
                for x in x0..(x0 + bw).min(w) {
                    if rnd(4) != 0 {
                        bits[(y * w + x) as usize] = 1;
                    }
                }
            }
            let r = Rle::encode_row_major(&bits, h, w).unwrap();
            // Non-canonical variants too.
            if rnd(3) == 0 && r.counts().len() > 2 {
                let mut c = r.counts().to_vec();
                c.splice(2..2, [0, 0]);
                Rle::new(h, w, c).unwrap()
            } else {
                r
            }
        };
        for _ in 0..100 {
            let dts: Vec<Rle> = (0..4).map(|_| mk(&mut rnd)).collect();
            let mut gts: Vec<Rle> = (0..3).map(|_| mk(&mut rnd)).collect();
            gts.push(Rle::empty(h, w).unwrap());
            let crowd = [false, true, false, false];
            let m = iou_matrix(&dts, &gts, &crowd);
            for (d, dr) in dts.iter().enumerate() {
                for (g, gr) in gts.iter().enumerate() {
                    assert_eq!(m[d * gts.len() + g], dr.iou(gr, crowd[g]), "{dr:?} {gr:?}");
                }
            }
        }
    }

    #[test]
    fn invert_twice_is_identity() {
        let a = rle(2, 2, &[1, 2, 1]);
        assert_eq!(a.invert().counts(), &[0, 1, 2, 1]);
        assert_eq!(a.invert().invert(), a);
    }
}
