//! The simulator's own seeded random numbers: xoshiro256** (Blackman and Vigna, 2018) seeded
//! through SplitMix64. Every run with the same seed is the same run; nothing reads OS entropy.

/// A small, fast, deterministic generator. Not for cryptography.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        // SplitMix64 spreads any seed (even 0) over the 256-bit state.
        let mut x = crate::seeded::SplitMix64::new(seed);
        Rng { s: [x.next_u64(), x.next_u64(), x.next_u64(), x.next_u64()] }
    }

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

    /// Uniform in `0..=max`.
    pub fn up_to(&mut self, max: u32) -> u32 {
        // Lemire's multiply-shift; the bias for spans this small is below 2^-32.
        (((self.next_u64() >> 32) * (u64::from(max) + 1)) >> 32) as u32
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (clamped to [0, 1]).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_uniform() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        let mut counts = [0u32; 8];
        for _ in 0..80_000 {
            counts[a.up_to(7) as usize] += 1;
        }
        // Each bucket expects 10 000; 5 % is many standard deviations.
        assert!(counts.iter().all(|&c| (9_500..10_500).contains(&c)), "{counts:?}");
        assert!(!a.chance(0.0) && a.chance(1.0));
    }
}
