//! AVX-512 trit kernels: 512-bit registers (256 trits; the formulas of `logic.rs` fuse into
//! `vpternlogq`). Counts use `vpopcntq` where the host has AVX512_VPOPCNTDQ, else
//! `vpshufb` nibble tables (AVX-512 BW).
//!
//! Binary and unary ops with outputs of [`STREAM_MIN_BYTES`] or more write with non-temporal stores
//! (`vmovntdq`), so a result that will not stay in cache costs no read of its lines first.
//!
//! The register type [`Z`] is private to this file and only created inside the entry points
//! below, all `#[target_feature(enable = "avx512f,avx512bw")]` or more, which is what makes
//! the intrinsic calls in its methods sound.

use std::arch::x86_64::*;

use super::super::logic::{self, BinaryOp, HI, LO, Lanes, NibbleCount, PREFETCH_BYTES, UnaryOp};
use super::super::scalar;

#[derive(Clone, Copy)]
struct Z(__m512i);

impl Lanes for Z {
    const BYTES: usize = 64;
    #[inline(always)]
    fn splat(v: u64) -> Self {
        // SAFETY (every method of Z): only called within the AVX-512 entry points (module
        // doc).
        Z(unsafe { _mm512_set1_epi64(v as i64) })
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        // SAFETY: see `splat`.
        Z(unsafe { _mm512_and_si512(self.0, o.0) })
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        // SAFETY: see `splat`.
        Z(unsafe { _mm512_or_si512(self.0, o.0) })
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        // SAFETY: see `splat`.
        Z(unsafe { _mm512_xor_si512(self.0, o.0) })
    }
    #[inline(always)]
    fn andnot(self, o: Self) -> Self {
        // SAFETY: see `splat`.
        Z(unsafe { _mm512_andnot_si512(self.0, o.0) })
    }
    #[inline(always)]
    fn shr1(self) -> Self {
        // SAFETY: see `splat`.
        Z(unsafe { _mm512_srli_epi64::<1>(self.0) })
    }
    #[inline(always)]
    fn shl1(self) -> Self {
        // SAFETY: see `splat`.
        Z(unsafe { _mm512_slli_epi64::<1>(self.0) })
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        // SAFETY: 64 readable bytes (caller); the unaligned load has no alignment need.
        Z(unsafe { _mm512_loadu_si512(p.cast()) })
    }
    #[inline(always)]
    unsafe fn store_stream(self, p: *mut u8) {
        // SAFETY: 64 writable bytes at a 64-byte aligned address (caller).
        unsafe { _mm512_stream_si512(p.cast(), self.0) }
    }
    #[inline(always)]
    fn prefetch(p: *const u8) {
        // SAFETY: a prefetch never faults; wrapping_add keeps the arithmetic defined.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_BYTES).cast()) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u8) {
        // SAFETY: 64 writable bytes (caller).
        unsafe { _mm512_storeu_si512(p.cast(), self.0) }
    }
}

impl NibbleCount for Z {
    #[inline(always)]
    fn nibble_lut(self, table: &[u8; 16]) -> Self {
        // SAFETY: see `Lanes::splat`; the table is 16 readable bytes.
        unsafe {
            let t = _mm512_broadcast_i32x4(_mm_loadu_si128(table.as_ptr().cast()));
            let m = _mm512_set1_epi8(0x0F);
            let lo = _mm512_and_si512(self.0, m);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(self.0), m);
            Z(_mm512_add_epi8(
                _mm512_shuffle_epi8(t, lo),
                _mm512_shuffle_epi8(t, hi),
            ))
        }
    }
    #[inline(always)]
    fn add_u8(self, o: Self) -> Self {
        // SAFETY: see `Lanes::splat`.
        Z(unsafe { _mm512_add_epi8(self.0, o.0) })
    }
    #[inline(always)]
    fn sum_u8(self) -> u64 {
        // SAFETY: see `Lanes::splat`.
        unsafe { _mm512_reduce_add_epi64(_mm512_sad_epu8(self.0, _mm512_setzero_si512())) as u64 }
    }
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: see `Lanes::splat`.
        Z(unsafe { _mm512_setzero_si512() })
    }
}

/// AVX-512 [`scalar::binary`].
///
/// # Safety
/// The host has AVX-512 F and BW; otherwise as [`scalar::binary`].
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn binary(op: BinaryOp, a: *const u8, b: *const u8, out: *mut u8, n: usize) {
    if n >= STREAM_MIN_BYTES {
        // Scalar up to the first 64-byte boundary of `out`, then streaming stores.
        let head = out.align_offset(Z::BYTES).min(n);
        // SAFETY: forwarded; head ≤ n and the streamed part starts 64-byte aligned.
        unsafe {
            scalar::binary(op, a, b, out, head);
            let (a, b, out, n) = (a.add(head), b.add(head), out.add(head), n - head);
            let d = logic::binary::<Z, true>(op, a, b, out, n);
            _mm_sfence();
            scalar::binary(op, a.add(d), b.add(d), out.add(d), n - d);
        }
        return;
    }
    // SAFETY: forwarded; the tail starts at the bytes done.
    unsafe {
        let d = logic::binary::<Z, false>(op, a, b, out, n);
        scalar::binary(op, a.add(d), b.add(d), out.add(d), n - d);
    }
}

/// Bytes of output from which [`binary`] writes around the caches: 8 MiB, beyond the 2 MiB
/// L2 of a core, so results that large would be evicted before they are read again.
pub(crate) const STREAM_MIN_BYTES: usize = 8 << 20;

/// AVX-512 [`scalar::unary`].
///
/// # Safety
/// The host has AVX-512 F and BW; otherwise as [`scalar::unary`].
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn unary(op: UnaryOp, a: *const u8, out: *mut u8, n: usize) {
    if n >= STREAM_MIN_BYTES {
        let head = out.align_offset(Z::BYTES).min(n);
        // SAFETY: as in `binary`.
        unsafe {
            scalar::unary(op, a, out, head);
            let (a, out, n) = (a.add(head), out.add(head), n - head);
            let d = logic::unary::<Z, true>(op, a, out, n);
            _mm_sfence();
            scalar::unary(op, a.add(d), out.add(d), n - d);
        }
        return;
    }
    // SAFETY: forwarded.
    unsafe {
        let d = logic::unary::<Z, false>(op, a, out, n);
        scalar::unary(op, a.add(d), out.add(d), n - d);
    }
}

/// AVX-512 [`scalar::select`].
///
/// # Safety
/// The host has AVX-512 F and BW; otherwise as [`scalar::select`].
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn select(c: *const u8, a: *const u8, b: *const u8, out: *mut u8, n: usize) {
    // SAFETY: forwarded.
    unsafe {
        let d = logic::select_loop::<Z>(c, a, b, out, n);
        scalar::select(c.add(d), a.add(d), b.add(d), out.add(d), n - d);
    }
}

/// AVX-512 BW [`scalar::count`] (nibble tables).
///
/// # Safety
/// The host has AVX-512 F and BW; otherwise as [`scalar::count`].
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn count_bw(a: *const u8, n: usize) -> [u64; 2] {
    // SAFETY: forwarded.
    unsafe {
        let ([p, z], d) = logic::count_lut::<Z>(a, n);
        let [tp, tz] = scalar::count(a.add(d), n - d);
        [p + tp, z + tz]
    }
}

/// AVX-512 BW [`scalar::dot`] (nibble tables).
///
/// # Safety
/// The host has AVX-512 F and BW; otherwise as [`scalar::dot`].
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn dot_bw(a: *const u8, b: *const u8, n: usize) -> i64 {
    // SAFETY: forwarded.
    unsafe {
        let (s, d) = logic::dot_lut::<Z>(a, b, n);
        s + scalar::dot(a.add(d), b.add(d), n - d)
    }
}

/// AVX-512 [`scalar::count`] with `vpopcntq` on the +1 and 0 bit planes.
///
/// # Safety
/// The host has AVX-512 F, BW and VPOPCNTDQ; otherwise as [`scalar::count`].
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
pub(crate) unsafe fn count_vpopcnt(a: *const u8, n: usize) -> [u64; 2] {
    let whole = n / Z::BYTES * Z::BYTES;
    let (hi, lo) = (Z::splat(HI), Z::splat(LO));
    let (mut pos, mut zero) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    for i in (0..whole).step_by(Z::BYTES) {
        Z::prefetch(a.wrapping_add(i));
        // SAFETY: i + 64 ≤ n.
        let x = unsafe { Z::load(a.add(i)) };
        pos = _mm512_add_epi64(pos, _mm512_popcnt_epi64(x.and(hi).0));
        zero = _mm512_add_epi64(zero, _mm512_popcnt_epi64(x.and(lo).0));
    }
    // SAFETY: the tail lies within the n bytes.
    let [tp, tz] = unsafe { scalar::count(a.add(whole), n - whole) };
    [
        _mm512_reduce_add_epi64(pos) as u64 + tp,
        _mm512_reduce_add_epi64(zero) as u64 + tz,
    ]
}

/// AVX-512 [`scalar::dot`] with `vpopcntq` on the masks of [`logic::dot_masks`] (a
/// different derivation from the scalar twin's product planes; the tests hold them equal).
///
/// # Safety
/// The host has AVX-512 F, BW and VPOPCNTDQ; otherwise as [`scalar::dot`].
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
pub(crate) unsafe fn dot_vpopcnt(a: *const u8, b: *const u8, n: usize) -> i64 {
    let whole = n / Z::BYTES * Z::BYTES;
    let (mut nz, mut neg) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    for i in (0..whole).step_by(Z::BYTES) {
        Z::prefetch(a.wrapping_add(i));
        Z::prefetch(b.wrapping_add(i));
        // SAFETY: i + 64 ≤ n.
        let (x, y) = unsafe { (Z::load(a.add(i)), Z::load(b.add(i))) };
        let (z, m) = logic::dot_masks(x, y);
        nz = _mm512_add_epi64(nz, _mm512_popcnt_epi64(z.0));
        neg = _mm512_add_epi64(neg, _mm512_popcnt_epi64(m.0));
    }
    // SAFETY: the tail lies within the n bytes.
    let t = unsafe { scalar::dot(a.add(whole), b.add(whole), n - whole) };
    _mm512_reduce_add_epi64(nz) - 2 * _mm512_reduce_add_epi64(neg) + t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::XorShift;
    use crate::trit::{Isa, PackedTrits, kernels};

    /// The streaming path (outputs of `STREAM_MIN_BYTES` and more, written from the first
    /// 64-byte boundary of `out`) against the scalar twin, at every misalignment of `out`.
    #[test]
    fn streaming_ops_match_scalar_at_every_output_misalignment() {
        if !kernels().iter().any(|k| k.isa() == Isa::Avx512Bw) {
            return;
        }
        let n = STREAM_MIN_BYTES + 77;
        let mut r = XorShift::new(5);
        let a = PackedTrits::from_i8(&r.ternary(4 * n)).unwrap();
        let b = PackedTrits::from_i8(&r.ternary(4 * n)).unwrap();
        let mut want = vec![0u8; n];
        let mut got = vec![0u8; n + 64];
        for op in [BinaryOp::Add, BinaryOp::Lt] {
            // SAFETY: every buffer holds n bytes.
            unsafe {
                scalar::binary(
                    op,
                    a.as_bytes().as_ptr(),
                    b.as_bytes().as_ptr(),
                    want.as_mut_ptr(),
                    n,
                )
            };
            for off in [0, 1, 63] {
                let out = &mut got[off..off + n];
                // SAFETY: the host has AVX-512 F/BW (checked above); n bytes each.
                unsafe {
                    binary(
                        op,
                        a.as_bytes().as_ptr(),
                        b.as_bytes().as_ptr(),
                        out.as_mut_ptr(),
                        n,
                    )
                };
                assert!(out == want.as_slice(), "{op:?} at offset {off}");
            }
        }
        // SAFETY: as above.
        unsafe { scalar::unary(UnaryOp::Neg, a.as_bytes().as_ptr(), want.as_mut_ptr(), n) };
        for off in [0, 1, 63] {
            let out = &mut got[off..off + n];
            // SAFETY: as above.
            unsafe { unary(UnaryOp::Neg, a.as_bytes().as_ptr(), out.as_mut_ptr(), n) };
            assert!(out == want.as_slice(), "neg at offset {off}");
        }
    }
}
