//! AVX-512 kernels (Skylake-X and later, Zen 4).
//!
//! W2A8: one 64-byte load holds two blocks; shifting it by `2s` (an immediate shift, cheap on
//! every core, unlike the variable `vpsrlvw`) and masking with `0b11` gives the codes of
//! weights `32s..32s+32` of both blocks. The int8 activations of a tile are rewritten once
//! into that pair-interleaved order (`interleave_pairs`), so the inner loop reads them
//! contiguously; an odd last block takes a 256-bit step.
//! Codes are unsigned and activations signed, the operand order of `vpdpbusd` (VNNI);
//! without VNNI, `vpmaddubsw` + `vpmaddwd` compute the same sums exactly.
//!
//! f32: each packed byte widened to an i32 lane indexes a 16-entry {−1, 0, +1} table with
//! `vpermps`, and an FMA by that ±1/0 adds, subtracts or skips the activation — with the same
//! single rounding as a plain add or subtract. No decoded copy of the weights is made.

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
    // SAFETY: pointers satisfy the scalar module's contract, with x in the pair-interleaved
    // order of `interleave_pairs`; every load reads inside row j of w (p·64 + 64 ≤ rb, or the
    // 32-byte tail) or row i of x (4·rb values).
    unsafe {
        let mask = _mm512_set1_epi8(3);
        let blocks = rb / 32;
        let pairs = blocks / 2;
        let mut acc = [[_mm512_setzero_si512(); NR]; MR];
        for p in 0..pairs {
            if MR == 1 {
                // GEMV streams weights from DRAM: the 8 rows of this tile are 8 strided
                // streams, too many for the hardware prefetchers to keep up with. Fetch the
                // next tile's contiguous rows (NR·rb bytes, NR lines per step) ahead instead.
                // Prefetches never fault; wrapping_add keeps the address arithmetic defined.
                for l in 0..NR {
                    let ahead = w.wrapping_add(NR * rb + (p * NR + l) * 64);
                    _mm_prefetch::<_MM_HINT_T1>(ahead.cast());
                }
            }
            let v: [__m512i; NR] =
                std::array::from_fn(|j| _mm512_loadu_si512(w.add(j * rb + p * 64).cast()));
            for s in 0..4 {
                let xs: [__m512i; MR] = std::array::from_fn(|i| {
                    _mm512_loadu_si512(x.add(i * ldx + p * 256 + s * 64).cast())
                });
                for j in 0..NR {
                    let q = _mm512_and_si512(shift_right_2s(v[j], s), mask);
                    for i in 0..MR {
                        acc[i][j] = D::dot(acc[i][j], q, xs[i]);
                    }
                }
            }
        }
        if blocks % 2 == 1 {
            // An odd last block, in natural order: 256-bit halves, zero-extended so the same
            // zmm dot step adds nothing from the upper lanes.
            let off = pairs * 64;
            for j in 0..NR {
                let v = _mm512_zextsi256_si512(_mm256_loadu_si256(w.add(j * rb + off).cast()));
                for s in 0..4 {
                    let q = _mm512_and_si512(shift_right_2s(v, s), mask);
                    for (i, acc_i) in acc.iter_mut().enumerate() {
                        let xv = _mm256_loadu_si256(x.add(i * ldx + pairs * 256 + 32 * s).cast());
                        acc_i[j] = D::dot(acc_i[j], q, _mm512_zextsi256_si512(xv));
                    }
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

/// `v >> 2s` on 16-bit lanes with an immediate shift (`s` is a loop constant after unrolling).
#[inline(always)]
unsafe fn shift_right_2s(v: __m512i, s: usize) -> __m512i {
    // SAFETY: register-only AVX-512BW op, reached from AVX-512 entry points.
    unsafe {
        match s {
            0 => v,
            1 => _mm512_srli_epi16::<2>(v),
            2 => _mm512_srli_epi16::<4>(v),
            _ => _mm512_srli_epi16::<6>(v),
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

thread_local! {
    /// Pair-interleaved int8 activations of the tile being computed.
    static INTERLEAVED: std::cell::RefCell<Vec<i8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rewrites `m` activation rows so that a 64-byte weight load covering blocks `2p, 2p+1`
/// lines up with contiguous activations: for pair `p` and lane group `s`, the 64 bytes at
/// `p·256 + 64s` are `x[256p + 32s ..][..32]` then `x[256p + 128 + 32s ..][..32]`, i.e. the
/// weights that `(block pair >> 2s) & 3` holds. An odd last block stays in natural order.
///
/// # Safety
/// `x` holds `m` rows of stride `ldx` with `kp` readable values each; `dst` has `m·kp`.
#[inline(always)]
unsafe fn interleave_pairs(x: *const i8, ldx: usize, m: usize, kp: usize, dst: &mut [i8]) {
    for i in 0..m {
        // SAFETY: row i of x has kp readable values (contract).
        let src = unsafe { std::slice::from_raw_parts(x.add(i * ldx), kp) };
        let row = &mut dst[i * kp..(i + 1) * kp];
        let pairs = kp / 256;
        for p in 0..pairs {
            for s in 0..4 {
                let o = p * 256 + 64 * s;
                row[o..o + 32].copy_from_slice(&src[p * 256 + 32 * s..][..32]);
                row[o + 32..o + 64].copy_from_slice(&src[p * 256 + 128 + 32 * s..][..32]);
            }
        }
        row[pairs * 256..].copy_from_slice(&src[pairs * 256..]);
    }
}

/// Runs `drive` on a pair-interleaved copy of the activations.
///
/// # Safety
/// As [`interleave_pairs`], plus whatever `drive` requires of `(x, ldx)`.
#[inline(always)]
unsafe fn with_interleaved(
    x: *const i8,
    ldx: usize,
    m: usize,
    kp: usize,
    drive: impl FnOnce(*const i8, usize),
) {
    INTERLEAVED.with_borrow_mut(|buf| {
        buf.clear();
        buf.resize(m * kp, 0);
        // SAFETY: forwarded contract.
        unsafe { interleave_pairs(x, ldx, m, kp, buf) };
        drive(buf.as_ptr(), kp);
    });
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
    // SAFETY: forwarded contract; the tiles read the interleaved copy with stride kp.
    unsafe {
        with_interleaved(x, ldx, m, row_bytes * 4, |x, ldx| {
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
        })
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
    // SAFETY: forwarded contract; the tiles read the interleaved copy with stride kp.
    unsafe {
        with_interleaved(x, ldx, m, row_bytes * 4, |x, ldx| {
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
        })
    }
}

/// Exact-f32 tile: `NR` weight rows against one activation row.
///
/// Each byte of a block, widened to an i32 lane, holds four codes; shifted right by `2s`, its
/// low four bits index a 16-entry table whose entry `i` is `(i & 3) − 1`, so one `vpermps`
/// turns 16 codes into their weights {−1, 0, +1} and one FMA applies them. An FMA by ±1 or 0
/// rounds exactly like the add, subtract or skip it stands for.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `s` also picks the shift and the activation offset
unsafe fn f32_rows<const NR: usize>(w: *const u8, rb: usize, x: *const f32, out: *mut f32) {
    // SAFETY: loads stay inside row j of w and the activation row (4·rb floats), as above.
    unsafe {
        let table = _mm512_setr_ps(
            -1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0,
        );
        // One accumulator per (row, lane group) keeps the FMA chains independent.
        let mut acc = [[_mm512_setzero_ps(); 4]; NR];
        for b in 0..rb / 32 {
            for h in 0..2 {
                let lanes: [__m512i; NR] = std::array::from_fn(|j| {
                    _mm512_cvtepu8_epi32(_mm_loadu_si128(w.add(j * rb + b * 32 + h * 16).cast()))
                });
                for s in 0..4 {
                    let xv = _mm512_loadu_ps(x.add(b * 128 + 32 * s + 16 * h));
                    for j in 0..NR {
                        let idx = match s {
                            0 => lanes[j],
                            1 => _mm512_srli_epi32::<2>(lanes[j]),
                            2 => _mm512_srli_epi32::<4>(lanes[j]),
                            _ => _mm512_srli_epi32::<6>(lanes[j]),
                        };
                        let wv = _mm512_permutexvar_ps(idx, table);
                        acc[j][s] = _mm512_fmadd_ps(wv, xv, acc[j][s]);
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

/// Exact-f32 activations: table lookup of the weights and FMA by ±1/0.
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
