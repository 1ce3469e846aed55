//! AVX2 trit kernels: 256-bit registers (128 trits), counts by `vpshufb` nibble tables.
//!
//! The register type [`Y`] is private to this file and only created inside the
//! `#[target_feature(enable = "avx2")]` entry points below (by loads and splats called from
//! them), which is what makes the intrinsic calls in its methods sound.

use std::arch::x86_64::*;

use super::super::logic::{self, BinaryOp, Lanes, NibbleCount, PREFETCH_BYTES, UnaryOp};
use super::super::scalar;

#[derive(Clone, Copy)]
struct Y(__m256i);

impl Lanes for Y {
    const BYTES: usize = 32;
    #[inline(always)]
    fn splat(v: u64) -> Self {
        // SAFETY (every method of Y): only called within the avx2 entry points (module doc).
        Y(unsafe { _mm256_set1_epi64x(v as i64) })
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        // SAFETY: see `splat`.
        Y(unsafe { _mm256_and_si256(self.0, o.0) })
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        // SAFETY: see `splat`.
        Y(unsafe { _mm256_or_si256(self.0, o.0) })
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        // SAFETY: see `splat`.
        Y(unsafe { _mm256_xor_si256(self.0, o.0) })
    }
    #[inline(always)]
    fn andnot(self, o: Self) -> Self {
        // SAFETY: see `splat`.
        Y(unsafe { _mm256_andnot_si256(self.0, o.0) })
    }
    #[inline(always)]
    fn shr1(self) -> Self {
        // SAFETY: see `splat`.
        Y(unsafe { _mm256_srli_epi64::<1>(self.0) })
    }
    #[inline(always)]
    fn shl1(self) -> Self {
        // SAFETY: see `splat`.
        Y(unsafe { _mm256_slli_epi64::<1>(self.0) })
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        // SAFETY: 32 readable bytes (caller); the unaligned load has no alignment need.
        Y(unsafe { _mm256_loadu_si256(p.cast()) })
    }
    #[inline(always)]
    fn prefetch(p: *const u8) {
        // SAFETY: a prefetch never faults; wrapping_add keeps the arithmetic defined.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_BYTES).cast()) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u8) {
        // SAFETY: 32 writable bytes (caller).
        unsafe { _mm256_storeu_si256(p.cast(), self.0) }
    }
}

impl NibbleCount for Y {
    #[inline(always)]
    fn nibble_lut(self, table: &[u8; 16]) -> Self {
        // SAFETY: see `Lanes::splat`; the table is 16 readable bytes.
        unsafe {
            let t = _mm256_broadcastsi128_si256(_mm_loadu_si128(table.as_ptr().cast()));
            let m = _mm256_set1_epi8(0x0F);
            let lo = _mm256_and_si256(self.0, m);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(self.0), m);
            Y(_mm256_add_epi8(
                _mm256_shuffle_epi8(t, lo),
                _mm256_shuffle_epi8(t, hi),
            ))
        }
    }
    #[inline(always)]
    fn add_u8(self, o: Self) -> Self {
        // SAFETY: see `Lanes::splat`.
        Y(unsafe { _mm256_add_epi8(self.0, o.0) })
    }
    #[inline(always)]
    fn sum_u8(self) -> u64 {
        // SAFETY: see `Lanes::splat`.
        unsafe {
            let s = _mm256_sad_epu8(self.0, _mm256_setzero_si256());
            let mut w = [0u64; 4];
            _mm256_storeu_si256(w.as_mut_ptr().cast(), s);
            w.iter().sum()
        }
    }
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: see `Lanes::splat`.
        Y(unsafe { _mm256_setzero_si256() })
    }
}

/// AVX2 [`scalar::binary`].
///
/// # Safety
/// The host has AVX2; otherwise as [`scalar::binary`].
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn binary(op: BinaryOp, a: *const u8, b: *const u8, out: *mut u8, n: usize) {
    // SAFETY: forwarded; the tail starts at the bytes done.
    unsafe {
        let d = logic::binary::<Y, false>(op, a, b, out, n);
        scalar::binary(op, a.add(d), b.add(d), out.add(d), n - d);
    }
}

/// AVX2 [`scalar::unary`].
///
/// # Safety
/// The host has AVX2; otherwise as [`scalar::unary`].
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn unary(op: UnaryOp, a: *const u8, out: *mut u8, n: usize) {
    // SAFETY: forwarded.
    unsafe {
        let d = logic::unary::<Y, false>(op, a, out, n);
        scalar::unary(op, a.add(d), out.add(d), n - d);
    }
}

/// AVX2 [`scalar::select`].
///
/// # Safety
/// The host has AVX2; otherwise as [`scalar::select`].
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn select(c: *const u8, a: *const u8, b: *const u8, out: *mut u8, n: usize) {
    // SAFETY: forwarded.
    unsafe {
        let d = logic::select_loop::<Y>(c, a, b, out, n);
        scalar::select(c.add(d), a.add(d), b.add(d), out.add(d), n - d);
    }
}

/// AVX2 [`scalar::count`].
///
/// # Safety
/// The host has AVX2; otherwise as [`scalar::count`].
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn count(a: *const u8, n: usize) -> [u64; 2] {
    // SAFETY: forwarded.
    unsafe {
        let ([p, z], d) = logic::count_lut::<Y>(a, n);
        let [tp, tz] = scalar::count(a.add(d), n - d);
        [p + tp, z + tz]
    }
}

/// AVX2 [`scalar::dot`].
///
/// # Safety
/// The host has AVX2; otherwise as [`scalar::dot`].
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dot(a: *const u8, b: *const u8, n: usize) -> i64 {
    // SAFETY: forwarded.
    unsafe {
        let (s, d) = logic::dot_lut::<Y>(a, b, n);
        s + scalar::dot(a.add(d), b.add(d), n - d)
    }
}
