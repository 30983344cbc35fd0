//! A small, stable pseudo-random generator (SplitMix64).
//!
//! Our own rather than a crate's so that a seed produces the same data set on every version of
//! every dependency: reproducibility of demo data is a promise to users.

/// SplitMix64 generator with a few sampling helpers.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for one item of a stream, derived from a seed and any number of keys.
    pub fn derive(seed: u64, keys: &[u64]) -> Self {
        let mut rng = Self::new(seed ^ 0x005E_ED0F_5167_u64);
        for &k in keys {
            rng.state ^= k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            rng.next_u64();
        }
        rng
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `[0, n)`; `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Index drawn with the given (non-negative, not all zero) weights.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let a: Vec<u64> = (0..5).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::derive(7, &[0, 1]);
        let mut y = Rng::derive(7, &[0, 2]);
        assert_ne!(x.next_u64(), y.next_u64());
    }

    #[test]
    fn samplers_stay_in_range_and_look_uniform() {
        let mut r = Rng::new(1);
        let mut hist = [0usize; 4];
        let mut sum = 0.0;
        for _ in 0..40_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            hist[r.below(4) as usize] += 1;
            sum += r.normal();
        }
        assert!(
            hist.iter().all(|&h| (9_000..11_000).contains(&h)),
            "{hist:?}"
        );
        assert!((sum / 40_000.0).abs() < 0.03);
        let w = [0.0, 1.0, 0.0];
        assert!((0..100).all(|_| r.weighted(&w) == 1));
    }
}
