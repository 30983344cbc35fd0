//! Property tests: encode/decode, compressed strings, merge and contour tracing round-trips.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use sightline_mask::{Rle, mask_to_polygons};

fn mask_strategy() -> impl Strategy<Value = (u32, u32, Vec<u8>)> {
    (1u32..24, 1u32..24).prop_flat_map(|(h, w)| {
        (
            Just(h),
            Just(w),
            prop::collection::vec(
                prop_oneof![3 => Just(0u8), 2 => Just(1u8)],
                (h * w) as usize,
            ),
        )
    })
}

proptest! {
    #[test]
    fn encode_decode_roundtrip((h, w, m) in mask_strategy()) {
        let r = Rle::encode_col_major(&m, h, w).unwrap();
        prop_assert_eq!(r.decode_col_major(), m.clone());
        prop_assert_eq!(r.area(), m.iter().filter(|&&v| v != 0).count() as u64);
        let row = Rle::encode_row_major(&r.decode_row_major(), h, w).unwrap();
        prop_assert_eq!(row, r);
    }

    #[test]
    fn string_roundtrip((h, w, m) in mask_strategy()) {
        let r = Rle::encode_col_major(&m, h, w).unwrap();
        let s = r.to_compressed();
        prop_assert_eq!(Rle::from_compressed(&s, h, w).unwrap(), r);
    }

    #[test]
    fn big_counts_string_roundtrip(counts in prop::collection::vec(0u32..5_000_000, 1..12)) {
        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        prop_assume!(total > 0 && total < u64::from(u32::MAX));
        let r = Rle::new(1, total as u32, counts).unwrap();
        prop_assert_eq!(Rle::from_compressed(&r.to_compressed(), 1, total as u32).unwrap(), r);
    }

    #[test]
    fn merge_matches_pixelwise((h, w, a) in mask_strategy(), seed in any::<u64>()) {
        let b: Vec<u8> = a.iter().enumerate().map(|(i, _)| ((seed >> (i % 64)) & 1) as u8).collect();
        let ra = Rle::encode_col_major(&a, h, w).unwrap();
        let rb = Rle::encode_col_major(&b, h, w).unwrap();
        let or: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x | y).collect();
        let and: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x & y).collect();
        prop_assert_eq!(ra.union(&rb).unwrap().decode_col_major(), or.clone());
        prop_assert_eq!(ra.intersection(&rb).unwrap().decode_col_major(), and.clone());
        let i = and.iter().filter(|&&v| v != 0).count() as f64;
        let u = or.iter().filter(|&&v| v != 0).count() as f64;
        let want = if i == 0.0 { 0.0 } else { i / u };
        prop_assert!((ra.iou(&rb, false) - want).abs() < 1e-12);
    }

    #[test]
    fn traced_polygons_cover_the_mask((h, w, m) in mask_strategy()) {
        let r = Rle::encode_col_major(&m, h, w).unwrap();
        let polys = mask_to_polygons(&r, 0.0);
        let back = Rle::from_polygons(&polys, h, w).unwrap();
        // Holes come back filled: the result covers the mask.
        prop_assert_eq!(r.intersection(&back).unwrap().area(), r.area());
    }

    #[test]
    fn traced_discs_are_exact(cx in 0.0f64..30.0, cy in 0.0f64..30.0, rad in 0.5f64..12.0) {
        let (h, w) = (30u32, 30u32);
        let mut m = vec![0u8; 900];
        for y in 0..30usize {
            for x in 0..30usize {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                if dx * dx + dy * dy < rad * rad {
                    m[y * 30 + x] = 1;
                }
            }
        }
        let r = Rle::encode_row_major(&m, h, w).unwrap();
        let polys = mask_to_polygons(&r, 0.0);
        prop_assert!(polys.len() <= 1);
        prop_assert_eq!(Rle::from_polygons(&polys, h, w).unwrap(), r);
    }
}
