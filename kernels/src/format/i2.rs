//! `I2`: the 2-bit packed ternary format every kernel reads.
//!
//! An `n × k` matrix is stored row by row (each output row contiguous along K). A row is
//! padded to `k_padded = ceil(k / 128) · 128` weights and split into blocks of
//! [`BLOCK`] = 128 weights held in [`BLOCK_BYTES`] = 32 bytes.
//!
//! Each weight `w ∈ {−1, 0, +1}` is stored as the code `w + 1 ∈ {0, 1, 2}` (code 3 is
//! invalid); the +1 offset lets `vpdpbusd`/`pmaddubsw` multiply it as an unsigned byte, and
//! `Σ w·x = Σ code·x − Σ x` (the trick of ggml's TQ2_0). Inside a block, byte `j`
//! (0 ≤ j < 32) holds four weights, one per 2-bit lane:
//!
//! ```text
//! byte j of block b:  bits 7..6       bits 5..4       bits 3..2       bits 1..0
//!                     w[b·128+96+j]   w[b·128+64+j]   w[b·128+32+j]   w[b·128+j]
//! ```
//!
//! so shifting a 32-byte block right by `2s` and masking with `0b11` yields the 32 codes of
//! weights `b·128 + 32s .. b·128 + 32s + 32`, contiguous and in order, for every SIMD width.
//! Padding weights (columns `k..k_padded`) hold code 1 (weight 0). The layout is the same on
//! every architecture; scales are f32, one per tensor, one per row, or one per row and group
//! of 64, 128 or 256 columns ([`Scales`]).

use super::Scales;
use super::header::{self, FormatCode};
use super::scales::{check_group_size, group_count};
use crate::error::{KernelError, Result};

/// Weights per block.
pub const BLOCK: usize = 128;
/// Bytes per block.
pub const BLOCK_BYTES: usize = BLOCK / 4;
/// Code of a zero weight (padding).
pub(crate) const ZERO_CODE: u8 = 1;

/// `k` rounded up to a whole number of blocks, or `None` on overflow.
pub fn padded_k(k: usize) -> Option<usize> {
    k.checked_add(BLOCK - 1).map(|v| v / BLOCK * BLOCK)
}

/// A ternary `n × k` matrix in the 2-bit layout described in the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedI2 {
    n: usize,
    k: usize,
    scales: Scales,
    data: Vec<u8>,
}

/// A borrowed 2-bit matrix: the payload and scales of a [`PackedI2`] held elsewhere (a
/// framework tensor's storage, a memory map). Lengths are checked on construction; the codes
/// and scale values are trusted (an invalid code 3 yields wrong numbers, never unsoundness),
/// so validate untrusted bytes with [`PackedI2::from_bytes`] first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackedI2Ref<'a> {
    n: usize,
    k: usize,
    data: &'a [u8],
    scales: &'a [f32],
    /// Columns per scale group, or 0 for per-tensor / per-row scales.
    group_size: usize,
}

/// The payload length of an `n × k` matrix, checked against `data`.
fn check_data(data: &[u8], n: usize, k: usize) -> Result<()> {
    let overflow = KernelError::ShapeOverflow {
        n: n as u64,
        k: k as u64,
    };
    let expected = padded_k(k)
        .and_then(|kp| (kp / 4).checked_mul(n))
        .ok_or(overflow)?;
    if data.len() != expected {
        return Err(KernelError::Length {
            what: "packed weights",
            expected,
            actual: data.len(),
        });
    }
    Ok(())
}

impl<'a> PackedI2Ref<'a> {
    /// Views `data` (`n` rows of `padded_k(k) / 4` bytes) with `scales`: 1 value (per tensor)
    /// or `n` (per row).
    ///
    /// # Errors
    /// [`KernelError::ShapeOverflow`] when the padded size overflows; [`KernelError::Length`]
    /// for a payload or scale count that does not fit the shape.
    pub fn new(data: &'a [u8], n: usize, k: usize, scales: &'a [f32]) -> Result<Self> {
        check_data(data, n, k)?;
        if scales.len() != 1 && scales.len() != n {
            return Err(KernelError::Length {
                what: "scales (1 or n)",
                expected: n,
                actual: scales.len(),
            });
        }
        Ok(Self {
            n,
            k,
            data,
            scales,
            group_size: 0,
        })
    }

    /// Views `data` (`n` rows of `padded_k(k) / 4` bytes) with `scales` stored flat, their
    /// kind told by the count (see [`flat_group_size`](super::flat_group_size)): 1 per
    /// tensor, `n` per row, `n · ceil(k/g)` per row and group of `g` columns.
    ///
    /// # Errors
    /// [`KernelError::Length`] when the count fits none of these; otherwise those of
    /// [`PackedI2Ref::new`].
    pub fn from_flat(data: &'a [u8], n: usize, k: usize, scales: &'a [f32]) -> Result<Self> {
        match super::flat_group_size(n, k, scales.len()) {
            Some(Some(g)) => Self::with_group_scales(data, n, k, g, scales),
            Some(None) => Self::new(data, n, k, scales),
            None => {
                check_data(data, n, k)?;
                Err(KernelError::Length {
                    what: "scales (1, n, or n · ceil(k / g) for g = 64, 128, 256)",
                    expected: n,
                    actual: scales.len(),
                })
            }
        }
    }

    /// Views `data` (`n` rows of `padded_k(k) / 4` bytes) with group scales: `scales` is
    /// row-major `[n, ceil(k / group_size)]`, one scale per row and group of `group_size`
    /// consecutive columns (see [`Scales::PerGroup`]).
    ///
    /// # Errors
    /// [`KernelError::BadGroupSize`] unless `group_size` is 64, 128 or 256; otherwise those
    /// of [`PackedI2Ref::new`].
    pub fn with_group_scales(
        data: &'a [u8],
        n: usize,
        k: usize,
        group_size: usize,
        scales: &'a [f32],
    ) -> Result<Self> {
        check_group_size(group_size)?;
        check_data(data, n, k)?;
        let expected = n * group_count(k, group_size); // ≤ n·k, which fits (checked above)
        if scales.len() != expected {
            return Err(KernelError::Length {
                what: "group scales (n · ceil(k / group size))",
                expected,
                actual: scales.len(),
            });
        }
        Ok(Self {
            n,
            k,
            data,
            scales,
            group_size,
        })
    }

    /// Output rows.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Logical columns.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Columns including padding.
    pub fn k_padded(&self) -> usize {
        padded_k(self.k).expect("checked on construction")
    }
    /// Bytes per packed row.
    pub fn row_bytes(&self) -> usize {
        self.k_padded() / 4
    }
    /// The packed payload.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// The stored scales: 1, `n`, or `n · groups` values (see [`PackedI2Ref::group_size`]).
    pub fn scales(&self) -> &'a [f32] {
        self.scales
    }
    /// Columns per scale group when the matrix has group scales, `None` otherwise.
    pub fn group_size(&self) -> Option<usize> {
        (self.group_size != 0).then_some(self.group_size)
    }
    /// Scale groups per row: `ceil(k / group_size)` with group scales, else 1.
    pub fn groups(&self) -> usize {
        match self.group_size() {
            Some(gs) => group_count(self.k, gs),
            None => 1,
        }
    }
    /// Scale of output row `row` for per-tensor and per-row scales, and for group scales
    /// with a single group per row (`k ≤ group_size`), which act as per-row scales.
    ///
    /// # Panics
    /// For group scales with more than one group per row (use [`PackedI2Ref::scale_at`]).
    #[inline]
    pub fn scale(&self, row: usize) -> f32 {
        if self.scales.len() == 1 {
            self.scales[0]
        } else if self.group_size == 0 || self.groups() == 1 {
            self.scales[row]
        } else {
            several_groups(row, self.groups())
        }
    }
    /// Scale of the weight at row `row`, column `col`.
    ///
    /// # Panics
    /// When `row ≥ n` or, with group scales, `col ≥ k`.
    #[inline]
    pub fn scale_at(&self, row: usize, col: usize) -> f32 {
        match col.checked_div(self.group_size) {
            None => self.scale(row),
            Some(g) => {
                assert!(
                    col < self.k,
                    "column {col} outside a matrix of {} columns",
                    self.k
                );
                self.scales[row * self.groups() + g]
            }
        }
    }
    /// Whether the kernels may treat the scales as one per row: per-tensor, per-row, or
    /// group scales with one group per row (`k ≤ group_size`, the same arithmetic).
    pub(crate) fn row_scaled(&self) -> bool {
        self.group_size == 0 || self.groups() == 1
    }
}

/// The panic of [`PackedI2Ref::scale`] on a row with several scales, out of line.
#[cold]
#[inline(never)]
fn several_groups(row: usize, groups: usize) -> ! {
    panic!("PackedI2Ref::scale({row}) on a matrix with {groups} scale groups per row: use scale_at")
}

impl<'a> From<&'a PackedI2> for PackedI2Ref<'a> {
    fn from(m: &'a PackedI2) -> Self {
        Self {
            n: m.n,
            k: m.k,
            data: &m.data,
            scales: m.scales.as_slice(),
            group_size: m.scales.group_size().unwrap_or(0),
        }
    }
}

/// Packs one row: `code(c)` is the code of column `c < k`; padding gets [`ZERO_CODE`].
#[inline]
pub(crate) fn pack_row(dst: &mut [u8], k: usize, code: impl Fn(usize) -> u8) {
    let full = k / BLOCK;
    for (b, out) in dst.chunks_exact_mut(BLOCK_BYTES).enumerate() {
        let base = b * BLOCK;
        if b < full {
            for (j, o) in out.iter_mut().enumerate() {
                let c = base + j;
                *o = code(c) | code(c + 32) << 2 | code(c + 64) << 4 | code(c + 96) << 6;
            }
        } else {
            for (j, o) in out.iter_mut().enumerate() {
                let mut byte = 0;
                for s in 0..4 {
                    let c = base + 32 * s + j;
                    let v = if c < k { code(c) } else { ZERO_CODE };
                    byte |= v << (2 * s);
                }
                *o = byte;
            }
        }
    }
}

/// Packs one row of `k = codes.len()` values in {−1, 0, +1} into `dst`, the row's
/// `padded_k(k) / 4` bytes of the `I2` layout, exactly as [`PackedI2::from_ternary`] packs each
/// of its rows (padding gets the zero code): for producers that make one row at a time and
/// hand the rows to [`PackedI2::from_packed_rows`].
///
/// # Errors
/// [`KernelError::Length`] when `dst` is not `padded_k(k) / 4` bytes;
/// [`KernelError::NotTernary`] naming the first value outside {−1, 0, +1} (its index in the
/// row); `dst` is then left unspecified.
pub fn pack_row_codes(dst: &mut [u8], codes: &[i8]) -> Result<()> {
    let k = codes.len();
    let expected = padded_k(k).ok_or(KernelError::ShapeOverflow { n: 1, k: k as u64 })? / 4;
    if dst.len() != expected {
        return Err(KernelError::Length {
            what: "packed row bytes (padded_k(k) / 4)",
            expected,
            actual: dst.len(),
        });
    }
    check_ternary(codes)?;
    pack_row(dst, k, |c| (codes[c] + 1) as u8);
    Ok(())
}

/// [`KernelError::NotTernary`] naming the first value outside {−1, 0, +1}. One branch-free
/// pass decides; the position is only looked for on failure.
fn check_ternary(values: &[i8]) -> Result<()> {
    if values
        .iter()
        .fold(false, |bad, &v| bad | !(-1..=1).contains(&v))
    {
        let (index, &value) = values
            .iter()
            .enumerate()
            .find(|(_, v)| !(-1..=1).contains(*v))
            .expect("found above");
        return Err(KernelError::NotTernary { index, value });
    }
    Ok(())
}

/// Every constructor refuses `n × 0` with `n > 0`, as the reader does
/// ([`KernelError::EmptyRows`]): rows without columns cost no bytes, so a serialized one
/// could not be told from a bare claim — and what a constructor accepts must read back.
pub(crate) fn check_rows_have_columns(n: usize, k: usize) -> Result<()> {
    if k == 0 && n > 0 {
        return Err(KernelError::EmptyRows { n: n as u64 });
    }
    Ok(())
}

impl PackedI2 {
    /// Packs ternary values (`n × k`, row-major, each in {−1, 0, +1}) with their scales.
    /// Errors: [`KernelError::Length`], [`KernelError::NotTernary`], bad scales, and
    /// [`KernelError::EmptyRows`] for `n > 0` rows of zero columns.
    pub fn from_ternary(values: &[i8], n: usize, k: usize, scales: Scales) -> Result<Self> {
        let len = n.checked_mul(k).ok_or(KernelError::ShapeOverflow {
            n: n as u64,
            k: k as u64,
        })?;
        check_rows_have_columns(n, k)?;
        if values.len() != len {
            return Err(KernelError::Length {
                what: "ternary values",
                expected: len,
                actual: values.len(),
            });
        }
        check_ternary(values)?;
        scales.validate(n, k)?;
        let row_bytes = padded_k(k).expect("k overflow checked above") / 4;
        let mut data = vec![0u8; n * row_bytes];
        if k > 0 {
            for (row, dst) in values.chunks_exact(k).zip(data.chunks_exact_mut(row_bytes)) {
                pack_row(dst, k, |c| (row[c] + 1) as u8);
            }
        }
        Ok(Self { n, k, scales, data })
    }

    /// Builds the matrix from a per-element code function; scales must already be valid.
    #[inline]
    pub(crate) fn pack_with(
        n: usize,
        k: usize,
        scales: Scales,
        code: impl Fn(usize, usize) -> u8 + Sync,
    ) -> Self {
        let row_bytes = padded_k(k).expect("k overflow checked by caller") / 4;
        let mut data = vec![0u8; n * row_bytes];
        if row_bytes > 0 {
            for (r, row) in data.chunks_exact_mut(row_bytes).enumerate() {
                pack_row(row, k, |c| code(r, c));
            }
        }
        Self { n, k, scales, data }
    }

    /// Output rows.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Logical columns (the reduction length).
    pub fn k(&self) -> usize {
        self.k
    }
    /// Columns including padding: a multiple of [`BLOCK`].
    pub fn k_padded(&self) -> usize {
        self.row_bytes() * 4
    }
    /// Bytes per packed row.
    pub fn row_bytes(&self) -> usize {
        padded_k(self.k).expect("checked when the matrix was built") / 4
    }
    /// The scales.
    pub fn scales(&self) -> &Scales {
        &self.scales
    }
    /// The packed payload, `n · row_bytes` bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// The packed bytes of one row.
    pub fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// The ternary weight at (`r`, `c`). Panics when out of bounds.
    pub fn get(&self, r: usize, c: usize) -> i8 {
        assert!(
            r < self.n && c < self.k,
            "index ({r}, {c}) out of bounds for a {}x{} matrix",
            self.n,
            self.k
        );
        code_at(self.row(r), c) as i8 - 1
    }

    /// All weights as i8 in {−1, 0, +1}, row-major `n × k`.
    pub fn to_ternary(&self) -> Vec<i8> {
        let mut out = vec![0i8; self.n * self.k];
        self.write_ternary(&mut out);
        out
    }

    /// The dequantised f32 matrix (`w · scale`, the scale of the weight's row and group),
    /// row-major `n × k`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut t = vec![0i8; self.n * self.k];
        self.write_ternary(&mut t);
        let mut out = vec![0f32; t.len()];
        if self.k == 0 {
            return out;
        }
        // Each row scales runs of columns that share one scale (the whole row, or a group).
        let run = self.scales.group_size().unwrap_or(self.k);
        for (r, (codes, dst)) in t
            .chunks_exact(self.k)
            .zip(out.chunks_exact_mut(self.k))
            .enumerate()
        {
            for (g, (c, d)) in codes.chunks(run).zip(dst.chunks_mut(run)).enumerate() {
                let s = self.scales.at(r, g * run, self.k);
                for (d, &w) in d.iter_mut().zip(c) {
                    *d = f32::from(w) * s;
                }
            }
        }
        out
    }

    /// Bytes of the packed payload plus the scales (what the weights cost in memory).
    pub fn storage_bytes(&self) -> usize {
        self.data.len() + 4 * self.scales.len()
    }

    /// Serialises with the versioned header (see the `header` layout in the book).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.storage_bytes());
        header::write(
            &mut out,
            FormatCode::I2,
            self.n,
            self.k,
            BLOCK as u32,
            &self.scales,
        );
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses and validates a buffer written by [`PackedI2::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let p = header::read(bytes, FormatCode::I2, BLOCK as u32, |n, k| {
            padded_k(k)?.checked_div(4)?.checked_mul(n)
        })?;
        let row_bytes = padded_k(p.k).expect("checked by header") / 4;
        validate_codes(p.payload, p.payload_offset)?;
        if row_bytes > 0 && p.k % BLOCK != 0 {
            for (r, packed) in p.payload.chunks_exact(row_bytes).enumerate() {
                if let Some(col) = (p.k..row_bytes * 4).find(|&c| code_at(packed, c) != ZERO_CODE) {
                    return Err(KernelError::BadPadding { row: r, col });
                }
            }
        }
        Ok(Self {
            n: p.n,
            k: p.k,
            scales: p.scales,
            data: p.payload.to_vec(),
        })
    }
}

/// The 2-bit code of column `c` in a packed row.
#[inline]
pub(crate) fn code_at(row: &[u8], c: usize) -> u8 {
    let (b, i) = (c / BLOCK, c % BLOCK);
    (row[b * BLOCK_BYTES + i % 32] >> (2 * (i / 32))) & 3
}

/// Errors on the first 2-bit code 3 in `bytes`.
fn validate_codes(bytes: &[u8], offset: usize) -> Result<()> {
    // A lane holds code 3 exactly when both of its bits are set.
    let bad = |b: u8| b & (b >> 1) & 0x55 != 0;
    if let Some(i) = bytes.iter().position(|&b| bad(b)) {
        let b = bytes[i];
        let lane = (0..4).find(|s| (b >> (2 * s)) & 3 == 3).unwrap_or(0);
        return Err(KernelError::BadCode {
            offset: offset + i,
            code: (b >> (2 * lane)) & 3,
        });
    }
    Ok(())
}

/// The four codes of every byte value minus one (lane 0 first): the trits of a packed byte.
const TRITS_OF_BYTE: [[i8; 4]; 256] = {
    let mut t = [[0i8; 4]; 256];
    let mut b = 0;
    while b < 256 {
        let mut s = 0;
        while s < 4 {
            t[b][s] = ((b >> (2 * s)) & 3) as i8 - 1;
            s += 1;
        }
        b += 1;
    }
    t
};

impl PackedI2 {
    /// Builds a matrix from rows already in this layout (`data` as [`PackedI2::data`] returns
    /// it: `n` rows of [`PackedI2::row_bytes`] bytes), validating them as
    /// [`PackedI2::from_bytes`] does: converters from formats that share the layout (ggml's
    /// `TQ2_0`, bitnet.cpp's `I2_S`) move whole bytes instead of single weights.
    ///
    /// # Errors
    /// [`KernelError::EmptyRows`], [`KernelError::ShapeOverflow`], [`KernelError::Length`]
    /// (wrong byte count), [`KernelError::BadCode`] (a 2-bit code 3, at its byte offset in
    /// `data`), [`KernelError::BadPadding`], and the scale errors of [`Scales`].
    pub fn from_packed_rows(n: usize, k: usize, scales: Scales, data: Vec<u8>) -> Result<Self> {
        check_rows_have_columns(n, k)?;
        check_data(&data, n, k)?;
        validate_codes(&data, 0)?;
        let row_bytes = padded_k(k).expect("checked by check_data") / 4;
        if row_bytes > 0 && !k.is_multiple_of(BLOCK) {
            for (r, packed) in data.chunks_exact(row_bytes).enumerate() {
                if let Some(col) = (k..row_bytes * 4).find(|&c| code_at(packed, c) != ZERO_CODE) {
                    return Err(KernelError::BadPadding { row: r, col });
                }
            }
        }
        scales.validate(n, k)?;
        Ok(Self { n, k, scales, data })
    }

    /// Writes all weights, row-major `n × k` in {−1, 0, +1}, into `out` (the allocation-free
    /// form of [`PackedI2::to_ternary`]; a table turns each byte into its four weights).
    ///
    /// # Panics
    /// When `out.len() != n · k`.
    pub fn write_ternary(&self, out: &mut [i8]) {
        assert_eq!(
            out.len(),
            self.n * self.k,
            "write_ternary: output holds {} weights, the matrix {} x {}",
            out.len(),
            self.n,
            self.k
        );
        if self.k == 0 {
            return;
        }
        let row_bytes = self.row_bytes();
        for (row, dst) in self
            .data
            .chunks_exact(row_bytes)
            .zip(out.chunks_exact_mut(self.k))
        {
            for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                let base = b * BLOCK;
                if base + BLOCK <= self.k {
                    let dst = &mut dst[base..base + BLOCK];
                    for (j, &byte) in block.iter().enumerate() {
                        let t = TRITS_OF_BYTE[byte as usize];
                        dst[j] = t[0];
                        dst[32 + j] = t[1];
                        dst[64 + j] = t[2];
                        dst[96 + j] = t[3];
                    }
                } else {
                    for (c, d) in dst[base..].iter_mut().enumerate() {
                        *d = (block[c % 32] >> (2 * (c / 32)) & 3) as i8 - 1;
                    }
                }
            }
        }
    }
}
