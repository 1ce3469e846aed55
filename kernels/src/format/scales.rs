//! Dequantisation scales shared by both packed formats.

use crate::error::{KernelError, Result};

/// The f32 scales of a ternary matrix: one per tensor, or one per output row.
#[derive(Debug, Clone, PartialEq)]
pub enum Scales {
    /// One scale for the whole matrix.
    PerTensor(f32),
    /// One scale per output row (`len == n`).
    PerRow(Vec<f32>),
}

impl Scales {
    /// Scale of output row `row`.
    #[inline]
    pub fn get(&self, row: usize) -> f32 {
        match self {
            Scales::PerTensor(s) => *s,
            Scales::PerRow(v) => v[row],
        }
    }

    /// Number of stored scales.
    pub fn len(&self) -> usize {
        match self {
            Scales::PerTensor(_) => 1,
            Scales::PerRow(v) => v.len(),
        }
    }

    /// True when no scale is stored (a per-row scale set of a 0-row matrix).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored scales as a slice.
    pub fn as_slice(&self) -> &[f32] {
        match self {
            Scales::PerTensor(s) => std::slice::from_ref(s),
            Scales::PerRow(v) => v,
        }
    }

    /// Header code: 0 per tensor, 1 per row.
    pub(crate) fn kind_code(&self) -> u8 {
        match self {
            Scales::PerTensor(_) => 0,
            Scales::PerRow(_) => 1,
        }
    }

    /// Checks that the scales fit an `n`-row matrix and are finite and non-negative.
    pub(crate) fn validate(&self, n: usize) -> Result<()> {
        if let Scales::PerRow(v) = self
            && v.len() != n
        {
            return Err(KernelError::Length {
                what: "per-row scales",
                expected: n,
                actual: v.len(),
            });
        }
        for (index, &value) in self.as_slice().iter().enumerate() {
            if !value.is_finite() || value < 0.0 {
                return Err(KernelError::BadScale { index, value });
            }
        }
        Ok(())
    }
}
