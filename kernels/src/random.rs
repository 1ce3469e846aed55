//! Deterministic pseudo-random data for tests, benchmarks and the report binary
//! (xorshift64: no dependency, identical on every platform).

use crate::format::{PackedI2, Scales};

/// A xorshift64 generator.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a seed (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }

    /// Uniform in [−1, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// `len` values uniform in [−1, 1).
    pub fn f32s(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.next_f32()).collect()
    }

    /// `len` ternary values, each of −1, 0, +1 equally likely.
    pub fn ternary(&mut self, len: usize) -> Vec<i8> {
        (0..len).map(|_| (self.next_u64() % 3) as i8 - 1).collect()
    }

    /// A random `n × k` packed matrix with per-row scales in [0, 1).
    pub fn packed(&mut self, n: usize, k: usize) -> PackedI2 {
        let t = self.ternary(n * k);
        let s = (0..n).map(|_| self.next_f32().abs()).collect();
        PackedI2::from_ternary(&t, n, k, Scales::PerRow(s)).expect("valid by construction")
    }

    /// A random `n × k` packed matrix with one scale in [0, 1) per row and group of
    /// `group_size` columns ([`Scales::PerGroup`]).
    ///
    /// # Panics
    /// Unless `group_size` is 64, 128 or 256.
    pub fn packed_groups(&mut self, n: usize, k: usize, group_size: usize) -> PackedI2 {
        let t = self.ternary(n * k);
        let scales = (0..n * k.div_ceil(group_size))
            .map(|_| self.next_f32().abs())
            .collect();
        PackedI2::from_ternary(&t, n, k, Scales::PerGroup { group_size, scales })
            .expect("a group size of 64, 128 or 256")
    }
}
