//! AVX-512 kernels (Skylake-X and later, Zen 4).
//!
//! W2A8: a 32-byte block is broadcast to both halves of a zmm register and shifted per 16-bit
//! lane by (0, 2) and (4, 6): after masking with `0b11` the two registers hold the codes of
//! weights `0..64` and `64..128` of the block in order, so activations are read contiguously.
//! Codes are unsigned and activations signed, the operand order of `vpdpbusd` (VNNI);
//! without VNNI, `vpmaddubsw` + `vpmaddwd` compute the same sums exactly.
//!
//! f32: `vptestmb` turns each 2-bit lane straight into the masks "code is 2" (+1) and "code is
//! 0" (−1), which drive masked adds and subtracts: no multiplies, no decoded copy.

use std::arch::x86_64::*;

use crate::cpu::tiling::drive_tiles;

/// The inner product step: codes (u8) × activations (i8), four per i32 lane, added to `acc`.
trait Dot {
    unsafe fn dot(acc: __m512i, codes: __m512i, x: __m512i) -> __m512i;
}

struct Vnni;
struct Bw;

impl Dot for Vnni {
    #[inline(always)]
    unsafe fn dot(acc: __m512i, codes: __m512i, x: __m512i) -> __m512i {
        // SAFETY: only reached from entry points that enable avx512vnni.
        unsafe { _mm512_dpbusd_epi32(acc, codes, x) }
    }
}

impl Dot for Bw {
    #[inline(always)]
    unsafe fn dot(acc: __m512i, codes: __m512i, x: __m512i) -> __m512i {
        // Each i16 lane is c0·x0 + c1·x1 ≤ 2 · 2 · 127 = 508: vpmaddubsw cannot saturate.
        // SAFETY: only reached from entry points that enable avx512bw.
        unsafe {
            let pairs = _mm512_maddubs_epi16(codes, x);
            _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)))
        }
    }
}

#[inline(always)]
unsafe fn w2a8_tile<D: Dot, const MR: usize, const NR: usize>(
    w: *const u8,
    rb: usize,
    x: *const i8,
    ldx: usize,
    out: *mut i32,
    ldo: usize,
) {
    // SAFETY: pointers satisfy the scalar module's contract; every load below reads inside
    // row j of w (b·32 + 32 ≤ rb) or row i of x (b·128 + 128 ≤ 4·rb).
    unsafe {
        // Word lanes 0..16 (bytes 0..32) shift by `lo`, lanes 16..32 by `hi`.
        let shifts = |lo: i16, hi: i16| {
            _mm512_mask_blend_epi16(0xFFFF_0000, _mm512_set1_epi16(lo), _mm512_set1_epi16(hi))
        };
        let (sh01, sh23) = (shifts(0, 2), shifts(4, 6));
        let mask = _mm512_set1_epi8(3);
        let mut acc = [[_mm512_setzero_si512(); NR]; MR];
        for b in 0..rb / 32 {
            let mut q0 = [_mm512_setzero_si512(); NR];
            let mut q1 = [_mm512_setzero_si512(); NR];
            for j in 0..NR {
                let v = _mm256_loadu_si256(w.add(j * rb + b * 32).cast());
                let v = _mm512_broadcast_i64x4(v);
                q0[j] = _mm512_and_si512(_mm512_srlv_epi16(v, sh01), mask);
                q1[j] = _mm512_and_si512(_mm512_srlv_epi16(v, sh23), mask);
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let xp = x.add(i * ldx + b * 128);
                let x0 = _mm512_loadu_si512(xp.cast());
                let x1 = _mm512_loadu_si512(xp.add(64).cast());
                for j in 0..NR {
                    acc_i[j] = D::dot(acc_i[j], q0[j], x0);
                    acc_i[j] = D::dot(acc_i[j], q1[j], x1);
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (j, a) in acc_i.iter().enumerate() {
                *out.add(i * ldo + j) = _mm512_reduce_add_epi32(*a);
            }
        }
    }
}

#[inline(always)]
unsafe fn vnni_tile<const MR: usize, const NR: usize>(
    w: *const u8,
    rb: usize,
    x: *const i8,
    ldx: usize,
    out: *mut i32,
    ldo: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { w2a8_tile::<Vnni, MR, NR>(w, rb, x, ldx, out, ldo) }
}

#[inline(always)]
unsafe fn bw_tile<const MR: usize, const NR: usize>(
    w: *const u8,
    rb: usize,
    x: *const i8,
    ldx: usize,
    out: *mut i32,
    ldo: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { w2a8_tile::<Bw, MR, NR>(w, rb, x, ldx, out, ldo) }
}

/// W2A8 with `vpdpbusd`.
///
/// # Safety
/// The CPU supports avx512f/bw/vl/vnni, and the arguments satisfy the contract of
/// [`crate::cpu::scalar`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn w2a8_vnni(
    w: *const u8,
    row_bytes: usize,
    n: usize,
    x: *const i8,
    ldx: usize,
    m: usize,
    out: *mut i32,
    ldo: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        drive_tiles!(
            vnni_tile,
            w,
            row_bytes,
            n,
            x,
            ldx,
            m,
            out,
            ldo,
            gemv_nr = 8,
            nr = 4
        )
    }
}

/// W2A8 with `vpmaddubsw` (AVX-512 without VNNI).
///
/// # Safety
/// The CPU supports avx512f/bw/vl, and the arguments satisfy the contract of
/// [`crate::cpu::scalar`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn w2a8_bw(
    w: *const u8,
    row_bytes: usize,
    n: usize,
    x: *const i8,
    ldx: usize,
    m: usize,
    out: *mut i32,
    ldo: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        drive_tiles!(
            bw_tile,
            w,
            row_bytes,
            n,
            x,
            ldx,
            m,
            out,
            ldo,
            gemv_nr = 8,
            nr = 4
        )
    }
}

/// Exact-f32 tile: `NR` weight rows against one activation row.
#[inline(always)]
unsafe fn f32_rows<const NR: usize>(w: *const u8, rb: usize, x: *const f32, out: *mut f32) {
    // SAFETY: loads stay inside row j of w and the activation row (4·rb floats), as above.
    unsafe {
        let plus: [__m128i; 4] = std::array::from_fn(|s| _mm_set1_epi8((2 << (2 * s)) as i8));
        let any: [__m128i; 4] = std::array::from_fn(|s| _mm_set1_epi8((3 << (2 * s)) as i8));
        // One accumulator per (row, lane group) keeps the add chains independent.
        let mut acc = [[_mm512_setzero_ps(); 4]; NR];
        for b in 0..rb / 32 {
            for h in 0..2 {
                let mut wv = [_mm_setzero_si128(); NR];
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = _mm_loadu_si128(w.add(j * rb + b * 32 + h * 16).cast());
                }
                for s in 0..4 {
                    let xv = _mm512_loadu_ps(x.add(b * 128 + 32 * s + 16 * h));
                    for j in 0..NR {
                        let p = _mm_test_epi8_mask(wv[j], plus[s]);
                        let n = _mm_testn_epi8_mask(wv[j], any[s]);
                        let a = _mm512_mask_add_ps(acc[j][s], p, acc[j][s], xv);
                        acc[j][s] = _mm512_mask_sub_ps(a, n, a, xv);
                    }
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            let sum = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
            *out.add(j) = _mm512_reduce_add_ps(sum);
        }
    }
}

/// Exact-f32 activations with masked adds/subtracts.
///
/// # Safety
/// The CPU supports avx512f/bw/vl, and the arguments satisfy the contract of
/// [`crate::cpu::scalar`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn f32(
    w: *const u8,
    row_bytes: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
) {
    const NR: usize = 4;
    // SAFETY: forwarded contract; each call covers rows j..j+NR (or j) of w.
    unsafe {
        let full = n / NR * NR;
        for j in (0..full).step_by(NR) {
            for i in 0..m {
                f32_rows::<NR>(
                    w.add(j * row_bytes),
                    row_bytes,
                    x.add(i * ldx),
                    out.add(i * ldo + j),
                );
            }
        }
        for j in full..n {
            for i in 0..m {
                f32_rows::<1>(
                    w.add(j * row_bytes),
                    row_bytes,
                    x.add(i * ldx),
                    out.add(i * ldo + j),
                );
            }
        }
    }
}
