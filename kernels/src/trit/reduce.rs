//! Reductions of [`PackedTrits`]: counts of each value, exact sums, minimum and maximum,
//! and dot products (trit · trit by popcounts on the product's bit planes, no
//! multiplications), over whole buffers and per row of a row-major `[rows, cols]` view.
//!
//! Every reduction is a count: `sum = #(+1) − #(−1)`, `max = +1` if any trit is +1, else 0
//! if any is 0, else −1. Whole buffers are split across rayon threads like the element-wise
//! ops. A row that starts or ends inside a byte has its partial bytes read trit by trit and
//! its whole bytes by the kernel.

use rayon::prelude::*;

use super::dispatch::{Kernel, best};
use super::ops::same_len;
use super::packed::{PAR_MIN_TRITS, PackedTrits, TRITS_PER_BYTE, ZERO_BYTE, chunk_bytes};
use crate::error::{KernelError, Result};

/// How many trits of a buffer (or row) are −1, 0 and +1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TritCounts {
    /// Trits equal to −1.
    pub neg: u64,
    /// Trits equal to 0.
    pub zero: u64,
    /// Trits equal to +1.
    pub pos: u64,
}

impl TritCounts {
    /// The exact sum, `pos − neg`.
    pub fn sum(&self) -> i64 {
        self.pos as i64 - self.neg as i64
    }
    /// The minimum, or `None` when there are no trits.
    pub fn min(&self) -> Option<i8> {
        [(self.neg, -1), (self.zero, 0), (self.pos, 1)]
            .into_iter()
            .find_map(|(c, t)| (c > 0).then_some(t))
    }
    /// The maximum, or `None` when there are no trits.
    pub fn max(&self) -> Option<i8> {
        [(self.pos, 1), (self.zero, 0), (self.neg, -1)]
            .into_iter()
            .find_map(|(c, t)| (c > 0).then_some(t))
    }
}

/// `Err(Length)` unless `a` holds `rows · cols` trits.
fn check_rows(a: &PackedTrits, rows: usize, cols: usize) -> Result<()> {
    let expected = rows.checked_mul(cols).ok_or(KernelError::ShapeOverflow {
        n: rows as u64,
        k: cols as u64,
    })?;
    if a.len() != expected {
        return Err(KernelError::Length {
            what: "trits of a [rows, cols] view",
            expected,
            actual: a.len(),
        });
    }
    Ok(())
}

/// Rows per rayon task: enough rows for [`PAR_MIN_TRITS`] trits.
fn rows_per_task(cols: usize) -> usize {
    (PAR_MIN_TRITS / cols.max(1)).max(1)
}

impl Kernel {
    /// `[pos, zero]` over whole bytes `bytes` (all four lanes of each count).
    fn count_bytes(&self, bytes: &[u8]) -> [u64; 2] {
        // SAFETY: the slice is readable for its length; the ISA is supported.
        unsafe { (self.count)(bytes.as_ptr(), bytes.len()) }
    }

    /// Counts of trits `start..end` of `a`: partial bytes trit by trit, whole ones by kernel.
    fn count_range(&self, a: &PackedTrits, start: usize, end: usize) -> TritCounts {
        let mut c = TritCounts::default();
        let mut tally = |t: i8| match t {
            -1 => c.neg += 1,
            0 => c.zero += 1,
            _ => c.pos += 1,
        };
        let head = start.next_multiple_of(TRITS_PER_BYTE).min(end);
        let tail = (end / TRITS_PER_BYTE * TRITS_PER_BYTE).max(head);
        (start..head).chain(tail..end).for_each(|i| tally(a.get(i)));
        let whole = &a.as_bytes()[head / TRITS_PER_BYTE..tail / TRITS_PER_BYTE];
        let [pos, zero] = self.count_bytes(whole);
        c.pos += pos;
        c.zero += zero;
        c.neg += (TRITS_PER_BYTE * whole.len()) as u64 - pos - zero;
        c
    }

    /// `Σ a[i]·b[i]` over `start..end` (same offsets in both).
    fn dot_range(&self, a: &PackedTrits, b: &PackedTrits, start: usize, end: usize) -> i64 {
        let head = start.next_multiple_of(TRITS_PER_BYTE).min(end);
        let tail = (end / TRITS_PER_BYTE * TRITS_PER_BYTE).max(head);
        let edges: i64 = (start..head)
            .chain(tail..end)
            .map(|i| i64::from(a.get(i) * b.get(i)))
            .sum();
        let r = head / TRITS_PER_BYTE..tail / TRITS_PER_BYTE;
        let (x, y) = (&a.as_bytes()[r.clone()], &b.as_bytes()[r]);
        // SAFETY: both slices are readable for their (equal) length; the ISA is supported.
        edges + unsafe { (self.dot)(x.as_ptr(), y.as_ptr(), x.len()) }
    }

    /// How many trits of `a` are −1, 0 and +1.
    pub fn count(&self, a: &PackedTrits) -> TritCounts {
        let chunk = chunk_bytes(a.len());
        let [pos, zero] = a
            .as_bytes()
            .par_chunks(chunk)
            .map(|c| self.count_bytes(c))
            .reduce(|| [0, 0], |x, y| [x[0] + y[0], x[1] + y[1]]);
        let lanes = (a.as_bytes().len() * TRITS_PER_BYTE) as u64;
        let padding = lanes - a.len() as u64; // zero codes
        TritCounts {
            neg: lanes - pos - zero,
            zero: zero - padding,
            pos,
        }
    }

    /// The exact sum of `a`.
    pub fn sum(&self, a: &PackedTrits) -> i64 {
        self.count(a).sum()
    }

    /// `Σ a[i]·b[i]`, exact.
    ///
    /// # Errors
    /// [`KernelError::Shape`] when the lengths differ.
    pub fn dot(&self, a: &PackedTrits, b: &PackedTrits) -> Result<i64> {
        if a.len() != b.len() {
            return Err(KernelError::Shape {
                what: "dot lengths",
                left: a.len(),
                right: b.len(),
            });
        }
        let chunk = chunk_bytes(a.len());
        let f = self.dot;
        Ok(a.as_bytes()
            .par_chunks(chunk)
            .zip(b.as_bytes().par_chunks(chunk))
            // SAFETY: equal chunk lengths (equal buffers); padding lanes are zeros, whose
            // products add nothing; the ISA is supported.
            .map(|(x, y)| unsafe { f(x.as_ptr(), y.as_ptr(), x.len()) })
            .sum())
    }

    /// Counts of each row of `a` viewed as row-major `[rows, cols]`.
    ///
    /// # Errors
    /// [`KernelError::Length`] unless `a.len() == rows · cols`;
    /// [`KernelError::ShapeOverflow`] when `rows · cols` overflows.
    pub fn count_rows(&self, a: &PackedTrits, rows: usize, cols: usize) -> Result<Vec<TritCounts>> {
        check_rows(a, rows, cols)?;
        Ok((0..rows)
            .into_par_iter()
            .with_min_len(rows_per_task(cols))
            .map(|r| self.count_range(a, r * cols, (r + 1) * cols))
            .collect())
    }

    /// The exact sum of each row of `[rows, cols]`. Errors as [`Kernel::count_rows`].
    pub fn sum_rows(&self, a: &PackedTrits, rows: usize, cols: usize) -> Result<Vec<i64>> {
        Ok(self
            .count_rows(a, rows, cols)?
            .iter()
            .map(TritCounts::sum)
            .collect())
    }

    /// The minimum of each row of `[rows, cols]`.
    ///
    /// # Errors
    /// As [`Kernel::count_rows`], and [`KernelError::EmptyReduction`] when `cols == 0` and
    /// `rows > 0`.
    pub fn min_rows(&self, a: &PackedTrits, rows: usize, cols: usize) -> Result<Vec<i8>> {
        self.count_rows(a, rows, cols)?
            .iter()
            .map(|c| {
                c.min()
                    .ok_or(KernelError::EmptyReduction { what: "min", rows })
            })
            .collect()
    }

    /// The maximum of each row of `[rows, cols]`. Errors as [`Kernel::min_rows`].
    pub fn max_rows(&self, a: &PackedTrits, rows: usize, cols: usize) -> Result<Vec<i8>> {
        self.count_rows(a, rows, cols)?
            .iter()
            .map(|c| {
                c.max()
                    .ok_or(KernelError::EmptyReduction { what: "max", rows })
            })
            .collect()
    }

    /// `Σ_c a[r, c]·b[r, c]` for each row `r` of two `[rows, cols]` views.
    ///
    /// # Errors
    /// As [`Kernel::count_rows`] for each operand.
    pub fn dot_rows(
        &self,
        a: &PackedTrits,
        b: &PackedTrits,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<i64>> {
        check_rows(a, rows, cols)?;
        check_rows(b, rows, cols)?;
        Ok((0..rows)
            .into_par_iter()
            .with_min_len(rows_per_task(cols))
            .map(|r| self.dot_range(a, b, r * cols, (r + 1) * cols))
            .collect())
    }
}

/// A `[rows, cols]` trit matrix laid out for [`Kernel::matmul_rows`]: each row starts on a
/// byte and is padded with zero codes to whole 64-byte vectors, so the SIMD dot loops have no
/// scalar tail (a zero lane adds nothing). Made once for a layer's weights, it is not redone
/// on every product.
#[derive(Debug, Clone)]
pub struct TritRows {
    rows: usize,
    cols: usize,
    row_bytes: usize,
    bytes: Vec<u8>,
}

impl TritRows {
    /// The rows of row-major `a` `[rows, cols]`.
    ///
    /// # Errors
    /// [`KernelError::Length`] when `a` does not hold `rows·cols` trits;
    /// [`KernelError::ShapeOverflow`] when that product overflows.
    pub fn new(a: &PackedTrits, rows: usize, cols: usize) -> Result<Self> {
        check_rows(a, rows, cols)?;
        let row_bytes = cols
            .div_ceil(TRITS_PER_BYTE)
            .next_multiple_of(MATMUL_ROW_ALIGN);
        Ok(Self {
            rows,
            cols,
            row_bytes,
            bytes: aligned_rows(a, rows, cols, row_bytes),
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Trits per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    fn row(&self, r: usize) -> &[u8] {
        &self.bytes[r * self.row_bytes..(r + 1) * self.row_bytes]
    }
}

impl Kernel {
    /// The trit × trit matrix product `out[i·n + j] = Σ_c x[i, c]·w[j, c]` of `x` `[m, k]` and
    /// `w` `[n, k]` (both row by row, as a linear layer's inputs and weights are stored): `m·n`
    /// exact popcount dot products, no multiplications, the outputs split across rayon in
    /// tasks of ≥ 4·[`PAR_MIN_TRITS`] trits of work (a smaller product is cheaper on one thread
    /// than a fork), so that even one input row spreads over the threads when it is long.
    ///
    /// # Errors
    /// [`KernelError::Shape`] when the row widths differ; [`KernelError::ShapeOverflow`] when
    /// `m·n` overflows.
    pub fn matmul_rows(&self, x: &TritRows, w: &TritRows) -> Result<Vec<i64>> {
        same_len("trit matmul row widths", x.cols, w.cols)?;
        let (m, n) = (x.rows, w.rows);
        let outputs = m.checked_mul(n).ok_or(KernelError::ShapeOverflow {
            n: m as u64,
            k: n as u64,
        })?;
        let mut out = vec![0i64; outputs];
        if outputs == 0 || x.cols == 0 {
            return Ok(out);
        }
        let rb = x.row_bytes;
        let per_task = (4 * PAR_MIN_TRITS / (rb * TRITS_PER_BYTE)).max(16);
        out.par_chunks_mut(per_task)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (o, idx) in chunk.iter_mut().zip(c * per_task..) {
                    let (xi, wj) = (x.row(idx / n), w.row(idx % n));
                    // SAFETY: both rows hold `rb` readable bytes; the ISA is supported.
                    *o = unsafe { (self.dot)(xi.as_ptr(), wj.as_ptr(), rb) };
                }
            });
        Ok(out)
    }

    /// [`Kernel::matmul_rows`] of row-major `a` `[m, k]` and `b` `[n, k]`, both laid out as
    /// [`TritRows`] for this one product (hold a [`TritRows`] to lay out weights once).
    ///
    /// # Errors
    /// As [`TritRows::new`] for each operand, and [`Kernel::matmul_rows`].
    pub fn matmul(
        &self,
        a: &PackedTrits,
        b: &PackedTrits,
        m: usize,
        n: usize,
        k: usize,
    ) -> Result<Vec<i64>> {
        self.matmul_rows(&TritRows::new(a, m, k)?, &TritRows::new(b, n, k)?)
    }
}

/// Bytes each row of a [`TritRows`] is padded to a multiple of (one AVX-512 register, two
/// AVX2 ones).
const MATMUL_ROW_ALIGN: usize = 64;

/// `rows` rows of `cols` trits, each in `rb ≥ ceil(cols / 4)` bytes of its own, padding
/// lanes at the zero code.
fn aligned_rows(a: &PackedTrits, rows: usize, cols: usize, rb: usize) -> Vec<u8> {
    let mut out = vec![ZERO_BYTE; rows * rb];
    if rb == 0 {
        // Rows of no trits hold no bytes.
        return out;
    }
    let used = cols.div_ceil(TRITS_PER_BYTE);
    for (r, dst) in out.chunks_exact_mut(rb).enumerate() {
        if cols.is_multiple_of(TRITS_PER_BYTE) {
            // Rows already start on bytes.
            dst[..used].copy_from_slice(&a.as_bytes()[r * used..(r + 1) * used]);
        } else {
            dst[..used].copy_from_slice(a.slice(r * cols..(r + 1) * cols).as_bytes());
        }
    }
    out
}

impl PackedTrits {
    /// How many trits are −1, 0 and +1.
    pub fn count(&self) -> TritCounts {
        best().count(self)
    }
    /// The exact sum.
    pub fn sum(&self) -> i64 {
        best().sum(self)
    }
    /// The minimum trit, `None` when empty.
    pub fn min(&self) -> Option<i8> {
        self.count().min()
    }
    /// The maximum trit, `None` when empty.
    pub fn max(&self) -> Option<i8> {
        self.count().max()
    }
    /// `Σ self[i]·other[i]`, exact.
    ///
    /// # Errors
    /// [`KernelError::Shape`] when the lengths differ.
    pub fn dot(&self, other: &Self) -> Result<i64> {
        best().dot(self, other)
    }
}
