//! Dequantisation scales shared by both packed formats.
//!
//! A weight at row `r`, column `c` stands for `w[r, c] · scale(r, c)`, where the scale is
//! one value for the whole matrix ([`Scales::PerTensor`]), one per output row
//! ([`Scales::PerRow`]), or one per output row and per group of [`GROUP_SIZES`]-many
//! consecutive columns ([`Scales::PerGroup`]: what ggml's `TQ1_0`/`TQ2_0` blocks and Burn's
//! per-block `Q2S` tensors carry).

use crate::error::{KernelError, Result};

/// The group sizes [`Scales::PerGroup`] accepts, in columns.
pub const GROUP_SIZES: [usize; 3] = [64, 128, 256];

/// The f32 scales of a ternary `n × k` matrix: one per tensor, one per output row, or one per
/// output row and group of columns. Every scale is finite and ≥ 0 (checked wherever a matrix
/// is built or read).
#[derive(Debug, Clone, PartialEq)]
pub enum Scales {
    /// One scale for the whole matrix.
    PerTensor(f32),
    /// One scale per output row (`len == n`).
    PerRow(Vec<f32>),
    /// One scale per output row and per group of `group_size` consecutive columns along K:
    /// row-major `[n, ceil(k / group_size)]`, so row `r`, column `c` has the scale
    /// `scales[r · groups + c / group_size]`. The last group of a row is ragged when
    /// `group_size` does not divide `k`. `group_size` is one of [`GROUP_SIZES`].
    PerGroup {
        /// Columns per group: 64, 128 or 256.
        group_size: usize,
        /// `n · ceil(k / group_size)` scales, row-major.
        scales: Vec<f32>,
    },
}

/// Groups per row of `k` columns: `ceil(k / group_size)`. `group_size` must be non-zero.
#[inline]
pub fn group_count(k: usize, group_size: usize) -> usize {
    k.div_ceil(group_size)
}

/// Checks that `group_size` is one of [`GROUP_SIZES`].
///
/// # Errors
/// [`KernelError::BadGroupSize`] naming the value otherwise.
pub fn check_group_size(group_size: usize) -> Result<()> {
    if GROUP_SIZES.contains(&group_size) {
        Ok(())
    } else {
        Err(KernelError::BadGroupSize { group_size })
    }
}

/// How `count` scales stored flat (row-major, as the Burn layers and the extension ops hold
/// them) describe an `n × k` matrix: `Some(None)` for 1 (per tensor) or `n` (per row) scales;
/// `Some(Some(g))` for `n · ceil(k / g)` scales with `g` one of [`GROUP_SIZES`]; `None` when
/// `count` fits none of these.
///
/// The group size is unique whenever a row has ≥ 2 groups: `ceil(k/g) = ceil(k/2g) = c`
/// needs `2(c − 1) < c`, i.e. `c = 1`, so the three sizes give three different counts, and a
/// single group per row is the per-row layout. With `k = 0` every size gives 0 groups and 64
/// is returned (there is no weight to scale).
pub fn flat_group_size(n: usize, k: usize, count: usize) -> Option<Option<usize>> {
    if count == 1 || count == n {
        return Some(None);
    }
    GROUP_SIZES
        .iter()
        .find(|&&g| n.checked_mul(group_count(k, g)) == Some(count))
        .map(|&g| Some(g))
}

impl Scales {
    /// The scales of an `n × k` matrix from `values` stored flat, their kind told by the count
    /// (see [`flat_group_size`]): 1 per tensor, `n` per row, `n · ceil(k/g)` per group.
    ///
    /// # Errors
    /// [`KernelError::Length`] when the count fits none of these; [`KernelError::BadScale`]
    /// for a negative, NaN or infinite value.
    pub fn from_flat(n: usize, k: usize, values: Vec<f32>) -> Result<Scales> {
        let scales = match flat_group_size(n, k, values.len()) {
            None => {
                return Err(KernelError::Length {
                    what: "scales (1, n, or n · ceil(k / g) for g = 64, 128, 256)",
                    expected: n,
                    actual: values.len(),
                });
            }
            Some(None) if values.len() == 1 => Scales::PerTensor(values[0]),
            Some(None) => Scales::PerRow(values),
            Some(Some(group_size)) => Scales::PerGroup {
                group_size,
                scales: values,
            },
        };
        scales.validate(n, k)?;
        Ok(scales)
    }

    /// Scale of output row `row` for per-tensor and per-row scales.
    ///
    /// # Panics
    /// For [`Scales::PerGroup`], whose rows have several scales (use [`Scales::at`]), and
    /// when `row` is out of range.
    #[inline]
    pub fn get(&self, row: usize) -> f32 {
        match self {
            Scales::PerTensor(s) => *s,
            Scales::PerRow(v) => v[row],
            Scales::PerGroup { group_size, .. } => {
                panic!(
                    "Scales::get({row}) on per-group scales (group size {group_size}): use Scales::at"
                )
            }
        }
    }

    /// Scale of the weight at row `row`, column `col` of a matrix with `k` columns.
    ///
    /// # Panics
    /// When the position lies outside the scales (`row ≥ n`, or `col ≥ k` for group scales).
    #[inline]
    pub fn at(&self, row: usize, col: usize, k: usize) -> f32 {
        match self {
            Scales::PerTensor(s) => *s,
            Scales::PerRow(v) => v[row],
            Scales::PerGroup { group_size, scales } => {
                assert!(col < k, "column {col} outside a matrix of {k} columns");
                scales[row * group_count(k, *group_size) + col / group_size]
            }
        }
    }

    /// The one scale every weight has, when there is one: the per-tensor scale, or the value
    /// of per-row / per-group scales whose bits all agree (`None` when they differ or none is
    /// stored). Formats with one scale per tensor (`I2_S`, BitNet's `weight_scale`) take this.
    pub fn uniform(&self) -> Option<f32> {
        let v = self.as_slice();
        let first = *v.first()?;
        v.iter()
            .all(|s| s.to_bits() == first.to_bits())
            .then_some(first)
    }

    /// Columns per group for [`Scales::PerGroup`], `None` otherwise.
    pub fn group_size(&self) -> Option<usize> {
        match self {
            Scales::PerGroup { group_size, .. } => Some(*group_size),
            _ => None,
        }
    }

    /// Number of stored scales.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True when no scale is stored (per-row or per-group scales of a 0-row matrix).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored scales as a slice: 1, `n`, or `n · ceil(k / group_size)` (row-major) values.
    pub fn as_slice(&self) -> &[f32] {
        match self {
            Scales::PerTensor(s) => std::slice::from_ref(s),
            Scales::PerRow(v) => v,
            Scales::PerGroup { scales, .. } => scales,
        }
    }

    /// A short name of the kind (`"per-tensor"`, `"per-row"`, `"per-group"`), for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Scales::PerTensor(_) => "per-tensor",
            Scales::PerRow(_) => "per-row",
            Scales::PerGroup { .. } => "per-group",
        }
    }

    /// Header code: 0 per tensor, 1 per row, 2 per group.
    pub(crate) fn kind_code(&self) -> u8 {
        match self {
            Scales::PerTensor(_) => 0,
            Scales::PerRow(_) => 1,
            Scales::PerGroup { .. } => 2,
        }
    }

    /// Checks that the scales fit an `n × k` matrix and are finite and non-negative.
    ///
    /// # Errors
    /// [`KernelError::BadGroupSize`] for a group size outside [`GROUP_SIZES`];
    /// [`KernelError::Length`] for a wrong number of scales; [`KernelError::ShapeOverflow`]
    /// when `n · groups` overflows; [`KernelError::BadScale`] for a negative, NaN or
    /// infinite scale (the index is its position in [`Scales::as_slice`]).
    pub(crate) fn validate(&self, n: usize, k: usize) -> Result<()> {
        let (what, expected) = match self {
            Scales::PerTensor(_) => ("per-tensor scale", 1),
            Scales::PerRow(_) => ("per-row scales", n),
            Scales::PerGroup { group_size, .. } => {
                check_group_size(*group_size)?;
                let expected = n.checked_mul(group_count(k, *group_size)).ok_or(
                    KernelError::ShapeOverflow {
                        n: n as u64,
                        k: k as u64,
                    },
                )?;
                ("per-group scales (n · ceil(k / group size))", expected)
            }
        };
        let actual = self.len();
        if actual != expected {
            return Err(KernelError::Length {
                what,
                expected,
                actual,
            });
        }
        check_values(self.as_slice())
    }
}

/// Errors on the first scale that is negative, NaN or infinite.
pub(crate) fn check_values(scales: &[f32]) -> Result<()> {
    match scales.iter().position(|v| !v.is_finite() || *v < 0.0) {
        Some(index) => Err(KernelError::BadScale {
            index,
            value: scales[index],
        }),
        None => Ok(()),
    }
}
