//! AVX2 and AVX-512 kernels of [`crate::cpu::dense`]: 16-bit weights widened to f32 in
//! registers (`vcvtph2ps` for f16, a zero-extend and a 16-bit shift for bf16) and FMA'd into
//! one 16-lane accumulator per output (one zmm, or two ymm), lanes summed as the tree of the
//! module docs there. Tiles of `MR` activation rows × `NR` weight rows share every load.

use std::arch::x86_64::*;

use crate::cpu::dense::HalfKind;

/// `lo + hi` lane-wise, then the 8 → 1 tree: `s4[l] = s8[l] + s8[l+4]`, `s2[l] = s4[l] +
/// s4[l+2]`, `s2[0] + s2[1]`.
#[inline(always)]
unsafe fn reduce_pair(lo: __m256, hi: __m256) -> f32 {
    // SAFETY: register-only SSE/AVX ops, reached from entry points that enable them.
    unsafe {
        let s8 = _mm256_add_ps(lo, hi);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        let s1 = _mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2));
        _mm_cvtss_f32(s1)
    }
}

// ---------------------------------------------------------------------------------------
// AVX-512

/// Sixteen weights at `p` (the first `mask` bits' lanes; the rest `+0.0`) as f32.
#[inline(always)]
unsafe fn load16<const BF: bool>(p: *const u16, mask: __mmask16) -> __m512 {
    // SAFETY: the caller's `p` holds the `mask` lanes read (masked-off lanes are not read).
    unsafe {
        let h = _mm256_maskz_loadu_epi16(mask, p as *const i16);
        if BF {
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        } else {
            _mm512_cvtph_ps(h)
        }
    }
}

#[inline(always)]
unsafe fn reduce512(v: __m512) -> f32 {
    // SAFETY: register-only AVX-512F ops, reached from the AVX-512 entry point.
    unsafe {
        let lo = _mm512_castps512_ps256(v);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        reduce_pair(lo, hi)
    }
}

#[inline(always)]
unsafe fn tile512<const MR: usize, const NR: usize, const BF: bool>(
    w: *const u16,
    k: usize,
    x: *const f32,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
) {
    // SAFETY: row j of w holds k values, row i of x k values (contract); masked loads read
    // only columns below k; the outputs lie in the caller's exclusive tile.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); NR]; MR];
        let mut c = 0;
        while c < k {
            let mask: __mmask16 = if k - c >= 16 {
                0xffff
            } else {
                (1u16 << (k - c)) - 1
            };
            let mut wv = [_mm512_setzero_ps(); NR];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = load16::<BF>(w.add(j * k + c), mask);
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let xv = _mm512_maskz_loadu_ps(mask, x.add(i * ldx + c));
                for (a, &wj) in row.iter_mut().zip(&wv) {
                    *a = _mm512_fmadd_ps(wj, xv, *a);
                }
            }
            c += 16;
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, &a) in row.iter().enumerate() {
                *out.add(i * ldo + j) = reduce512(a);
            }
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn drive512<const BF: bool>(
    w: *const u16,
    k: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
) {
    // SAFETY: tiles of rows i..i+4 and columns j..j+NR lie inside the contract's bounds.
    unsafe {
        const NR: usize = 4;
        let full = n / NR * NR;
        let mut i = 0;
        while i < m {
            let (xi, oi) = (x.add(i * ldx), out.add(i * ldo));
            let rows = (m - i).min(4);
            for j in (0..full).step_by(NR) {
                let (wj, o) = (w.add(j * k), oi.add(j));
                match rows {
                    1 => tile512::<1, NR, BF>(wj, k, xi, ldx, o, ldo),
                    2 => tile512::<2, NR, BF>(wj, k, xi, ldx, o, ldo),
                    3 => tile512::<3, NR, BF>(wj, k, xi, ldx, o, ldo),
                    _ => tile512::<4, NR, BF>(wj, k, xi, ldx, o, ldo),
                }
            }
            for j in full..n {
                let (wj, o) = (w.add(j * k), oi.add(j));
                match rows {
                    1 => tile512::<1, 1, BF>(wj, k, xi, ldx, o, ldo),
                    2 => tile512::<2, 1, BF>(wj, k, xi, ldx, o, ldo),
                    3 => tile512::<3, 1, BF>(wj, k, xi, ldx, o, ldo),
                    _ => tile512::<4, 1, BF>(wj, k, xi, ldx, o, ldo),
                }
            }
            i += 4;
        }
    }
}

/// # Safety
/// The [`crate::cpu::dense::HalfFn`] contract, on a host with AVX-512 F/BW/VL and FMA.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
#[allow(clippy::too_many_arguments)] // the raw-kernel contract shared by every ISA
pub(crate) unsafe fn avx512(
    w: *const u16,
    k: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
    kind: HalfKind,
) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe {
        match kind {
            HalfKind::F16 => drive512::<false>(w, k, n, x, ldx, m, out, ldo),
            HalfKind::Bf16 => drive512::<true>(w, k, n, x, ldx, m, out, ldo),
        }
    }
}

// ---------------------------------------------------------------------------------------
// AVX2 (+ FMA, F16C)

/// Eight weights at `p` as f32.
#[inline(always)]
unsafe fn load8<const BF: bool>(p: *const u16) -> __m256 {
    // SAFETY: the caller's `p` holds 8 readable values.
    unsafe {
        let h = _mm_loadu_si128(p as *const __m128i);
        if BF {
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
        } else {
            _mm256_cvtph_ps(h)
        }
    }
}

/// One 16-column step of `NR` weight rows against one activation row: `lo` takes lanes 0–7,
/// `hi` lanes 8–15.
#[inline(always)]
unsafe fn step256<const NR: usize, const BF: bool>(
    w: [*const u16; NR],
    x: *const f32,
    lo: &mut [__m256; NR],
    hi: &mut [__m256; NR],
) {
    // SAFETY: the caller's rows hold 16 readable values from each pointer.
    unsafe {
        let (x0, x1) = (_mm256_loadu_ps(x), _mm256_loadu_ps(x.add(8)));
        for j in 0..NR {
            lo[j] = _mm256_fmadd_ps(load8::<BF>(w[j]), x0, lo[j]);
            hi[j] = _mm256_fmadd_ps(load8::<BF>(w[j].add(8)), x1, hi[j]);
        }
    }
}

#[inline(always)]
unsafe fn tile256<const NR: usize, const BF: bool>(
    w: *const u16,
    k: usize,
    x: *const f32,
    out: *mut f32,
) {
    // SAFETY: full steps read columns below k of row j of w and of x; the ragged end is
    // copied (r < 16 values) into zero-padded buffers; outputs lie in the caller's tile.
    unsafe {
        let mut lo = [_mm256_setzero_ps(); NR];
        let mut hi = [_mm256_setzero_ps(); NR];
        let full = k / 16 * 16;
        let mut c = 0;
        while c < full {
            let rows: [*const u16; NR] = std::array::from_fn(|j| w.add(j * k + c));
            step256::<NR, BF>(rows, x.add(c), &mut lo, &mut hi);
            c += 16;
        }
        if c < k {
            // The ragged end, zero-padded to 16 columns (weights and activations `+0.0`).
            let r = k - c;
            let mut xs = [0f32; 16];
            std::ptr::copy_nonoverlapping(x.add(c), xs.as_mut_ptr(), r);
            let mut ws = [[0u16; 16]; NR];
            for (j, row) in ws.iter_mut().enumerate() {
                std::ptr::copy_nonoverlapping(w.add(j * k + c), row.as_mut_ptr(), r);
            }
            let rows: [*const u16; NR] = std::array::from_fn(|j| ws[j].as_ptr());
            step256::<NR, BF>(rows, xs.as_ptr(), &mut lo, &mut hi);
        }
        for j in 0..NR {
            *out.add(j) = reduce_pair(lo[j], hi[j]);
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn drive256<const BF: bool>(
    w: *const u16,
    k: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
) {
    // SAFETY: each tile's rows and columns lie inside the contract's bounds.
    unsafe {
        const NR: usize = 4;
        let full = n / NR * NR;
        for i in 0..m {
            let (xi, oi) = (x.add(i * ldx), out.add(i * ldo));
            for j in (0..full).step_by(NR) {
                tile256::<NR, BF>(w.add(j * k), k, xi, oi.add(j));
            }
            for j in full..n {
                tile256::<1, BF>(w.add(j * k), k, xi, oi.add(j));
            }
        }
    }
}

/// # Safety
/// The [`crate::cpu::dense::HalfFn`] contract, on a host with AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)] // the raw-kernel contract shared by every ISA
pub(crate) unsafe fn avx2(
    w: *const u16,
    k: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
    kind: HalfKind,
) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe {
        match kind {
            HalfKind::F16 => drive256::<false>(w, k, n, x, ldx, m, out, ldo),
            HalfKind::Bf16 => drive256::<true>(w, k, n, x, ldx, m, out, ldo),
        }
    }
}
