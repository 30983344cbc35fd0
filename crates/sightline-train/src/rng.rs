//! A small, fixed, seedable random number generator (xoshiro256** seeded by SplitMix64).
//!
//! Training must be reproducible from a seed across versions of third-party crates, so the
//! generator is defined here rather than borrowed: the same seed gives the same data order and
//! the same augmentations forever. [`Rng::for_sample`] derives an independent stream per
//! (seed, epoch, sample), so parallel loaders need no shared state.

/// Deterministic pseudo-random generator (xoshiro256**).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator seeded from one 64-bit value.
    pub fn new(seed: u64) -> Self {
        let mut st = seed;
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Self { s }
    }

    /// An independent stream for one sample of one epoch of a run seeded with `seed`.
    pub fn for_sample(seed: u64, epoch: u64, index: u64) -> Self {
        let mut st = seed ^ 0x5167_6874_6C69_6E65;
        let a = splitmix64(&mut st);
        let mut st2 = a ^ epoch.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let b = splitmix64(&mut st2);
        Self::new(b ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform integer in `[0, n)`; `n` must be positive.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.f64() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let a: Vec<u64> = (0..5)
            .map(|_| 0)
            .scan(Rng::new(3), |r, _: u64| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .map(|_| 0)
            .scan(Rng::new(3), |r, _: u64| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        let mut x = Rng::for_sample(1, 0, 0);
        let mut y = Rng::for_sample(1, 0, 1);
        let mut z = Rng::for_sample(1, 1, 0);
        let (x, y, z) = (x.next_u64(), y.next_u64(), z.next_u64());
        assert!(x != y && x != z && y != z);
    }

    #[test]
    fn uniform_is_in_range_and_roughly_uniform() {
        let mut r = Rng::new(42);
        let n = 20_000;
        let mut sum = 0.0;
        for _ in 0..n {
            let v = r.uniform(-2.0, 3.0);
            assert!((-2.0..3.0).contains(&v));
            sum += v;
        }
        assert!((sum / n as f64 - 0.5).abs() < 0.05);
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[r.below(4)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (4500..5500).contains(&c)),
            "{counts:?}"
        );
    }
}
