//! AVX2 kernels (Haswell, Zen 1 and later).
//!
//! W2A8: a 32-byte block shifted by 0, 2, 4, 6 and masked gives four registers of 32 codes,
//! for weights `32s .. 32s + 32` of the block. `vpmaddubsw` multiplies codes (u8) by
//! activations (i8) into i16 pairs; the four products of a block are summed in i16
//! ([`I16_BLOCK_BOUND`]) and widened once per block with `vpmaddwd`.

use std::arch::x86_64::*;

use crate::cpu::tiling::drive_tiles;

/// Largest |i16| lane after summing one block: 4 `vpmaddubsw` results of 2 products each,
/// |code| ≤ 2, |x| ≤ 127: 4 × 2 × 2 × 127 = 2032 ≤ i16::MAX.
pub(crate) const I16_BLOCK_BOUND: i32 = 4 * 2 * 2 * 127;
const _: () = assert!(I16_BLOCK_BOUND <= i16::MAX as i32);

#[inline(always)]
unsafe fn w2a8_tile<const MR: usize, const NR: usize>(
    w: *const u8,
    rb: usize,
    x: *const i8,
    ldx: usize,
    out: *mut i32,
    ldo: usize,
) {
    // SAFETY: loads stay in row j of w (b·32 + 32 ≤ rb) and row i of x (b·128 + 128 ≤ 4·rb).
    unsafe {
        let mask = _mm256_set1_epi8(3);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); NR]; MR];
        for b in 0..rb / 32 {
            let mut q = [[_mm256_setzero_si256(); 4]; NR];
            for (j, qj) in q.iter_mut().enumerate() {
                let v = _mm256_loadu_si256(w.add(j * rb + b * 32).cast());
                qj[0] = _mm256_and_si256(v, mask);
                qj[1] = _mm256_and_si256(_mm256_srli_epi16::<2>(v), mask);
                qj[2] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
                qj[3] = _mm256_and_si256(_mm256_srli_epi16::<6>(v), mask);
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let xp = x.add(i * ldx + b * 128);
                let xs: [__m256i; 4] =
                    std::array::from_fn(|s| _mm256_loadu_si256(xp.add(32 * s).cast()));
                for (j, qj) in q.iter().enumerate() {
                    let p01 = _mm256_add_epi16(
                        _mm256_maddubs_epi16(qj[0], xs[0]),
                        _mm256_maddubs_epi16(qj[1], xs[1]),
                    );
                    let p23 = _mm256_add_epi16(
                        _mm256_maddubs_epi16(qj[2], xs[2]),
                        _mm256_maddubs_epi16(qj[3], xs[3]),
                    );
                    let block = _mm256_add_epi16(p01, p23);
                    acc_i[j] = _mm256_add_epi32(acc_i[j], _mm256_madd_epi16(block, ones));
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (j, a) in acc_i.iter().enumerate() {
                *out.add(i * ldo + j) = hsum_epi32(*a);
            }
        }
    }
}

#[inline(always)]
unsafe fn hsum_epi32(v: __m256i) -> i32 {
    // SAFETY: register-only AVX2 ops, reached from AVX2 entry points.
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }
}

/// W2A8 with `vpmaddubsw`.
///
/// # Safety
/// The CPU supports avx2, and the arguments satisfy the contract of [`crate::cpu::scalar`].
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn w2a8(
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
            w2a8_tile,
            w,
            row_bytes,
            n,
            x,
            ldx,
            m,
            out,
            ldo,
            gemv_nr = 2,
            nr = 2
        )
    }
}

/// Exact-f32 activations: codes widened to i32 lanes become +1/−1 masks for adds/subtracts.
///
/// # Safety
/// The CPU supports avx2, and the arguments satisfy the contract of [`crate::cpu::scalar`].
#[target_feature(enable = "avx2")]
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
    // SAFETY: loads stay in row j of w and row i of x, as in the W2A8 tile.
    unsafe {
        let three = _mm256_set1_epi32(3);
        let two = _mm256_set1_epi32(2);
        let zero = _mm256_setzero_si256();
        for i in 0..m {
            let xr = x.add(i * ldx);
            for j in 0..n {
                let wr = w.add(j * row_bytes);
                let mut acc = [_mm256_setzero_ps(); 4];
                for b in 0..row_bytes / 32 {
                    for g in 0..4 {
                        // Bytes 8g..8g+8 of the block, one per i32 lane.
                        let bytes = _mm_loadl_epi64(wr.add(b * 32 + 8 * g).cast());
                        let wide = _mm256_cvtepu8_epi32(bytes);
                        for (s, a) in acc.iter_mut().enumerate() {
                            let code = _mm256_and_si256(
                                _mm256_srlv_epi32(wide, _mm256_set1_epi32(2 * s as i32)),
                                three,
                            );
                            let xv = _mm256_loadu_ps(xr.add(b * 128 + 32 * s + 8 * g));
                            let p = _mm256_castsi256_ps(_mm256_cmpeq_epi32(code, two));
                            let n = _mm256_castsi256_ps(_mm256_cmpeq_epi32(code, zero));
                            *a = _mm256_add_ps(*a, _mm256_and_ps(p, xv));
                            *a = _mm256_sub_ps(*a, _mm256_and_ps(n, xv));
                        }
                    }
                }
                let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
                *out.add(i * ldo + j) = _mm_cvtss_f32(s);
            }
        }
    }
}
