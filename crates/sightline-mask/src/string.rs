//! COCO's compressed RLE strings (`rleToString` / `rleFrString`): each count, delta-coded against the count two
//! positions earlier (from the fourth on), is written as a little-endian sequence of 5-bit groups with a
//! continuation bit, one ASCII character (`'0' + 6 bits`) per group.

use crate::{MaskError, Rle};

impl Rle {
    /// The compressed COCO string of this mask (the `counts` string of a COCO "RLE" segmentation).
    pub fn to_compressed(&self) -> String {
        let c = self.counts();
        let mut s = String::with_capacity(c.len() * 2);
        for i in 0..c.len() {
            let mut x = i64::from(c[i]);
            if i > 2 {
                x -= i64::from(c[i - 2]);
            }
            loop {
                let mut ch = (x & 0x1f) as u8;
                x >>= 5;
                let more = if ch & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    ch |= 0x20;
                }
                s.push(char::from(ch + 48));
                if !more {
                    break;
                }
            }
        }
        s
    }

    /// Parses a compressed COCO string for an `h × w` mask; the counts must add up to `h * w`.
    ///
    /// One pass: the counts are checked and summed while they are decoded.
    pub fn from_compressed(s: &str, h: u32, w: u32) -> Result<Rle, MaskError> {
        let bytes = s.as_bytes();
        let mut counts: Vec<u32> = Vec::with_capacity(bytes.len());
        let mut sum = 0u64;
        // The counts two and one places back (the delta base of the next count is two back).
        let (mut back2, mut back1) = (0i64, 0i64);
        let mut p = 0usize;
        let n = bytes.len();
        while p < n {
            let mut x: i64 = 0;
            let mut k = 0u32;
            loop {
                if p >= n {
                    return Err(MaskError::BadString {
                        pos: p,
                        reason: "string ends inside a number",
                    });
                }
                let b = bytes[p];
                if !(48..48 + 64).contains(&b) {
                    return Err(MaskError::BadString {
                        pos: p,
                        reason: "character outside '0'..='o'",
                    });
                }
                if k >= 12 {
                    return Err(MaskError::BadString {
                        pos: p,
                        reason: "number too long",
                    });
                }
                let c = i64::from(b - 48);
                x |= (c & 0x1f) << (5 * k);
                p += 1;
                k += 1;
                if c & 0x20 == 0 {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            if counts.len() > 2 {
                x += back2;
            }
            let Ok(v) = u32::try_from(x) else {
                return Err(MaskError::BadString {
                    pos: p,
                    reason: "run length out of range",
                });
            };
            counts.push(v);
            sum += u64::from(v);
            back2 = back1;
            back1 = x;
        }
        let expected = crate::rle::pixel_count(h, w)?;
        if sum != expected {
            return Err(MaskError::CountsSum {
                sum,
                h,
                w,
                expected,
            });
        }
        Ok(Rle::from_parts(h, w, counts))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn known_strings() {
        // Produced by pycocotools: encode(np.asfortranarray(m)) for a 4x4 mask with pixels (1,1),(1,2).
        let r = Rle::new(4, 4, vec![5, 2, 9]).unwrap();
        assert_eq!(r.to_compressed(), "529");
        assert_eq!(Rle::from_compressed("529", 4, 4).unwrap(), r);
        // Larger and negative deltas.
        let r = Rle::new(1, 1000, vec![100, 3, 800, 1, 96]).unwrap();
        let s = r.to_compressed();
        assert_eq!(Rle::from_compressed(&s, 1, 1000).unwrap(), r);
    }

    #[test]
    fn malformed_strings() {
        assert!(Rle::from_compressed("5 2", 4, 4).is_err());
        assert!(Rle::from_compressed("52", 4, 4).is_err()); // sum 7 != 16
        assert!(Rle::from_compressed("P", 4, 4).is_err()); // continuation at end
    }
}
