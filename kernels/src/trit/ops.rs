//! Element-wise operations on [`PackedTrits`]: the safe layer over the raw kernels (length
//! checks, rayon split, padding), as methods of a [`Kernel`] (any ISA, for tests and
//! benchmarks) and of `PackedTrits` (the [`best`] kernel).
//!
//! Buffers of [`PAR_MIN_TRITS`](super::PAR_MIN_TRITS) trits or more are split into one
//! contiguous share per rayon thread (multiples of 64 bytes); smaller ones run on the
//! calling thread.

use rayon::prelude::*;

use super::dispatch::{Kernel, best};
use super::logic::{BinaryOp, UnaryOp};
use super::packed::{PackedTrits, chunk_bytes};
use crate::error::{KernelError, Result};

/// `Err(Shape)` unless the two lengths agree.
pub(super) fn same_len(what: &'static str, a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(KernelError::Shape {
            what,
            left: a,
            right: b,
        });
    }
    Ok(())
}

impl Kernel {
    /// `out = op(a, b)` element-wise, reusing `out`'s allocation (resized to `a.len()`).
    ///
    /// # Errors
    /// [`KernelError::Shape`] when `a` and `b` differ in length.
    pub fn binary_into(
        &self,
        op: BinaryOp,
        a: &PackedTrits,
        b: &PackedTrits,
        out: &mut PackedTrits,
    ) -> Result<()> {
        same_len("binary trit op lengths", a.len(), b.len())?;
        if out.len() != a.len() {
            *out = PackedTrits::zeros(a.len());
        }
        let chunk = chunk_bytes(a.len());
        let f = self.binary;
        out.bytes_mut()
            .par_chunks_mut(chunk)
            .zip(a.as_bytes().par_chunks(chunk))
            .zip(b.as_bytes().par_chunks(chunk))
            // SAFETY: the three chunks have the same length (equal buffer lengths, same
            // chunking); `self` exists only for ISAs the host supports.
            .for_each(|((o, a), b)| unsafe {
                f(op, a.as_ptr(), b.as_ptr(), o.as_mut_ptr(), o.len())
            });
        if op.is_comparison() {
            out.fix_padding();
        }
        Ok(())
    }

    /// `op(a, b)` element-wise.
    ///
    /// # Errors
    /// [`KernelError::Shape`] when `a` and `b` differ in length.
    pub fn binary(&self, op: BinaryOp, a: &PackedTrits, b: &PackedTrits) -> Result<PackedTrits> {
        let mut out = PackedTrits::zeros(a.len());
        self.binary_into(op, a, b, &mut out)?;
        Ok(out)
    }

    /// `out = op(a)` element-wise, reusing `out`'s allocation (resized to `a.len()`).
    pub fn unary_into(&self, op: UnaryOp, a: &PackedTrits, out: &mut PackedTrits) {
        if out.len() != a.len() {
            *out = PackedTrits::zeros(a.len());
        }
        let chunk = chunk_bytes(a.len());
        let f = self.unary;
        out.bytes_mut()
            .par_chunks_mut(chunk)
            .zip(a.as_bytes().par_chunks(chunk))
            // SAFETY: equal chunk lengths; the ISA is supported (see `binary_into`).
            .for_each(|(o, a)| unsafe { f(op, a.as_ptr(), o.as_mut_ptr(), o.len()) });
    }

    /// `op(a)` element-wise.
    pub fn unary(&self, op: UnaryOp, a: &PackedTrits) -> PackedTrits {
        let mut out = PackedTrits::zeros(a.len());
        self.unary_into(op, a, &mut out);
        out
    }

    /// `a` where `cond ≠ 0`, else `b`, element-wise (NumPy's `where(cond, a, b)`; the
    /// comparisons give +1 for true, 0 for false).
    ///
    /// # Errors
    /// [`KernelError::Shape`] when the three lengths differ.
    pub fn select(
        &self,
        cond: &PackedTrits,
        a: &PackedTrits,
        b: &PackedTrits,
    ) -> Result<PackedTrits> {
        same_len("select: condition vs a", cond.len(), a.len())?;
        same_len("select: a vs b", a.len(), b.len())?;
        let mut out = PackedTrits::zeros(a.len());
        let chunk = chunk_bytes(a.len());
        let f = self.select;
        out.bytes_mut()
            .par_chunks_mut(chunk)
            .zip(cond.as_bytes().par_chunks(chunk))
            .zip(
                a.as_bytes()
                    .par_chunks(chunk)
                    .zip(b.as_bytes().par_chunks(chunk)),
            )
            // SAFETY: equal chunk lengths; the ISA is supported (see `binary_into`).
            .for_each(|((o, c), (a, b))| unsafe {
                f(c.as_ptr(), a.as_ptr(), b.as_ptr(), o.as_mut_ptr(), o.len())
            });
        Ok(out)
    }

    /// The comparison `op` as a bit mask: bit `i % 64` of word `i / 64` is set where
    /// `op(a[i], b[i])` holds; `ceil(len / 64)` words, bits past `len` clear.
    ///
    /// # Errors
    /// [`KernelError::Shape`] when the lengths differ.
    ///
    /// # Panics
    /// When `op` is not a comparison.
    pub fn compare_mask(&self, op: BinaryOp, a: &PackedTrits, b: &PackedTrits) -> Result<Vec<u64>> {
        assert!(
            op.is_comparison(),
            "compare_mask: {} is not a comparison",
            op.name()
        );
        Ok(mask_of(&self.binary(op, a, b)?))
    }
}

/// The high bits of 32 lanes (lane `i` → bit `i`).
#[inline]
fn compress_hi(w: u64) -> u64 {
    let mut x = (w >> 1) & super::logic::LO;
    x = (x | x >> 1) & 0x3333_3333_3333_3333;
    x = (x | x >> 2) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | x >> 4) & 0x00FF_00FF_00FF_00FF;
    x = (x | x >> 8) & 0x0000_FFFF_0000_FFFF;
    (x | x >> 16) & 0xFFFF_FFFF
}

/// Bit `i` of `m` (32 bits) → both bits of lane `i`.
#[inline]
fn expand_lanes(m: u64) -> u64 {
    let mut x = m & 0xFFFF_FFFF;
    x = (x | x << 16) & 0x0000_FFFF_0000_FFFF;
    x = (x | x << 8) & 0x00FF_00FF_00FF_00FF;
    x = (x | x << 4) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | x << 2) & 0x3333_3333_3333_3333;
    x = (x | x << 1) & super::logic::LO;
    x | x << 1
}

/// Word `w` (32 trits) of packed bytes, zero codes past the end.
#[inline]
fn word_at(bytes: &[u8], w: usize) -> u64 {
    let mut b = [super::packed::ZERO_BYTE; 8];
    let s = &bytes[(8 * w).min(bytes.len())..(8 * w + 8).min(bytes.len())];
    b[..s.len()].copy_from_slice(s);
    u64::from_le_bytes(b)
}

/// The +1 lanes of a comparison result (0/+1 trits, padding 0) as a bit mask.
fn mask_of(t: &PackedTrits) -> Vec<u64> {
    let bytes = t.as_bytes();
    (0..t.len().div_ceil(64))
        .map(|m| compress_hi(word_at(bytes, 2 * m)) | compress_hi(word_at(bytes, 2 * m + 1)) << 32)
        .collect()
}

impl PackedTrits {
    fn op(&self, op: BinaryOp, other: &Self) -> Result<Self> {
        best().binary(op, self, other)
    }

    /// Saturating sum `clamp(self + other, −1, 1)`, element-wise.
    ///
    /// # Errors
    /// [`KernelError::Shape`] when the lengths differ (likewise for every binary op).
    pub fn add(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Add, other)
    }
    /// Saturating difference `clamp(self − other, −1, 1)`, element-wise.
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Sub, other)
    }
    /// Product, element-wise.
    pub fn mul(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Mul, other)
    }
    /// Element-wise minimum (Burn's `min_pair`).
    pub fn min_pair(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Min, other)
    }
    /// Element-wise maximum (Burn's `max_pair`).
    pub fn max_pair(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Max, other)
    }
    /// `self == other` element-wise: +1 for true, 0 for false.
    pub fn equal(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Eq, other)
    }
    /// `self != other` element-wise: +1 / 0.
    pub fn not_equal(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Ne, other)
    }
    /// `self < other` element-wise: +1 / 0.
    pub fn lower(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Lt, other)
    }
    /// `self <= other` element-wise: +1 / 0.
    pub fn lower_equal(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Le, other)
    }
    /// `self > other` element-wise: +1 / 0.
    pub fn greater(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Gt, other)
    }
    /// `self >= other` element-wise: +1 / 0.
    pub fn greater_equal(&self, other: &Self) -> Result<Self> {
        self.op(BinaryOp::Ge, other)
    }
    /// The comparison `op` (one of `Eq` … `Ge`) as a bit mask, see [`Kernel::compare_mask`].
    ///
    /// # Errors
    /// [`KernelError::Shape`] when the lengths differ.
    ///
    /// # Panics
    /// When `op` is not a comparison.
    pub fn compare_mask(&self, op: BinaryOp, other: &Self) -> Result<Vec<u64>> {
        best().compare_mask(op, self, other)
    }
    /// `−self`, element-wise.
    pub fn neg(&self) -> Self {
        best().unary(UnaryOp::Neg, self)
    }
    /// `|self|`, element-wise.
    pub fn abs(&self) -> Self {
        best().unary(UnaryOp::Abs, self)
    }
    /// `a` where `self ≠ 0`, else `b` (see [`Kernel::select`]).
    ///
    /// # Errors
    /// [`KernelError::Shape`] when the three lengths differ.
    pub fn select(&self, a: &Self, b: &Self) -> Result<Self> {
        best().select(self, a, b)
    }

    /// `a[i]` where bit `i` of `mask` is set (bit `i % 64` of word `i / 64`, as from
    /// [`PackedTrits::compare_mask`]), else `b[i]`. Bits past the length are ignored.
    ///
    /// # Errors
    /// [`KernelError::Shape`] when `a` and `b` differ in length; [`KernelError::Length`]
    /// unless `mask` has `ceil(len / 64)` words.
    pub fn select_mask(mask: &[u64], a: &Self, b: &Self) -> Result<Self> {
        same_len("select_mask: a vs b", a.len(), b.len())?;
        if mask.len() != a.len().div_ceil(64) {
            return Err(KernelError::Length {
                what: "select mask words (ceil(len / 64))",
                expected: a.len().div_ceil(64),
                actual: mask.len(),
            });
        }
        let mut out = PackedTrits::zeros(a.len());
        let (ab, bb) = (a.as_bytes(), b.as_bytes());
        for (w, o) in out.bytes_mut().chunks_mut(8).enumerate() {
            let s = expand_lanes(mask[w / 2] >> (32 * (w % 2)));
            let v = (word_at(ab, w) & s) | (word_at(bb, w) & !s);
            o.copy_from_slice(&v.to_le_bytes()[..o.len()]);
        }
        Ok(out)
    }
}
