//! AVX-512 kernels (Skylake-X and later, Zen 4).
//!
//! Two shapes of kernel, both reading the one packed layout of [`crate::format::i2`]:
//!
//! * **K-lane tiles** (W2A8 with few activation rows, the GEMV): one 64-byte load holds two
//!   blocks; shifting it by `2s` (an immediate shift, cheap on every core, unlike the variable
//!   `vpsrlvw`) and masking with `0b11` gives the codes of weights `32s..32s+32` of both
//!   blocks. The int8 activations of a tile are rewritten once into that pair-interleaved
//!   order (`interleave_pairs`), so the inner loop reads them contiguously; an odd last block
//!   takes a 256-bit step. Lanes run along K and are summed at the end.
//! * **Column panels** (the W2A8 GEMM, and exact f32 at any M): lanes run along N, one output
//!   column per i32/f32 lane, so no horizontal sums are needed and each output is summed in
//!   plain K order. A 32-byte block of 16 weight rows, transposed as 16 × 8 dwords
//!   ([`transpose_16x8`]), holds in lane `r` of dword vector `d` bytes `4d..4d+4` of row `r`:
//!   the codes of columns `32s + 4d + t` (byte `t`, bits `2s`). For W2A8,
//!   `(v >> 2s) & 0x03030303` is the codes of four consecutive columns per lane — the unsigned
//!   operand of `vpdpbusd` against a broadcast dword of four activations (the VNNI layout of
//!   oneDNN's int8 GEMMs). For f32, each code indexes a {−1, 0, +1} table with `vpermps`. A
//!   K-chunk of a 32-column panel is decoded once into L1 and reused by every row tile of x,
//!   `MR × 32` outputs in registers (the BLIS micro-kernel: Van Zee & van de Geijn, "BLIS: A
//!   Framework for Rapidly Instantiating BLAS Functionality", TOMS 2015). A few f32 rows
//!   decode in registers instead (`f32_direct`).
//!
//! Codes are unsigned and activations signed, the operand order of `vpdpbusd` (VNNI);
//! without VNNI, `vpmaddubsw` + `vpmaddwd` compute the same sums exactly. For f32, an FMA by
//! a weight in {−1, 0, +1} rounds exactly like `acc + w·x` (the product is exact) — the
//! definition of the scalar twin — so every ISA is bit-identical to it.

use std::arch::x86_64::*;

use super::group_ends;
use crate::cpu::dispatch::Groups;
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

/// Output columns per vector: one per 32-bit lane.
const LANES: usize = 16;
/// Column groups (of [`LANES`]) in a GEMM panel: 32 columns.
const PANEL_GROUPS: usize = 2;
/// Largest row tile of the panel micro-kernels: 12 × 2 accumulators + 2 panel vectors + a
/// broadcast fill 27 of the 32 zmm registers.
const MR: usize = 12;
const _: () = assert!(MR == 12, "panel_tile! lists the row counts 1..=12");
/// Blocks of K per W2A8 panel chunk: 512 columns, 128 dword rows × 2 groups × 64 B = 16 KiB,
/// half of L1.
const W2A8_KC_BLOCKS: usize = 4;
/// Blocks of K per f32 panel chunk: 128 columns × 32 f32 = 16 KiB.
const F32_KC_BLOCKS: usize = 1;
/// From this many activation rows on, W2A8 decodes panels; fewer rows take the K-lane tiles,
/// which decode in registers and stream the weights once.
const W2A8_PANEL_MIN_M: usize = 8;
/// From this many columns on, W2A8 GEMMs decode panels; fewer would leave most lanes of a
/// 16-column group empty, where the K-lane tiles waste none.
const W2A8_PANEL_MIN_N: usize = 9;
/// Up to this many activation rows, exact f32 decodes in registers (`f32_direct`); beyond,
/// it decodes panels.
const F32_DIRECT_MAX_M: usize = 4;
/// Column groups of one `f32_direct` tile: 64 columns, 4 independent FMA chains per row.
const DIRECT_GROUPS: usize = 4;

/// Panels decoded per K chunk and reused by every row tile: 8 × 32 columns, 8 × 16 KiB.
const BLOCK_PANELS: usize = 8;
/// Rows of x whose K chunk (512 int8 values) stays in L1 while a W2A8 panel passes: 16 KiB.
const W2A8_BLOCK_ROWS: usize = 32;
/// Rows of x whose K chunk (128 f32 values) stays in L1 while an f32 panel passes: 16 KiB.
const F32_BLOCK_ROWS: usize = 32;
/// Up to this many rows, W2A8 decodes each panel into the same L1 lines right before all rows
/// use it, and x streams from L2. Beyond, a block of panels is decoded once into L2 (its
/// stores miss L1, ~0.3 cycles per weight measured) and row blocks of x stay in L1 instead.
const W2A8_PER_USE_MAX_M: usize = W2A8_BLOCK_ROWS;
/// As [`W2A8_PER_USE_MAX_M`] for f32, whose decoded panels are 4× larger per weight: the
/// block decode pays off later.
const F32_PER_USE_MAX_M: usize = 128;

/// One zmm register's worth of panel, aligned for `vmovaps`/`vmovdqa64`.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

thread_local! {
    /// Decoded panels of the block being computed (see [`panel_buffer`]).
    static PANELS: std::cell::RefCell<Vec<Line>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The K chunk of a block of x rows, packed (see [`pack_rows`]).
    static XPACK: std::cell::RefCell<Vec<Line>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Packed row stride of a W2A8 K chunk, bytes: one line more than the chunk, so packed rows
/// fall in different L1 sets (x rows whose stride is a multiple of 4 KiB, e.g. K = 4096,
/// would all compete for the same few sets).
const W2A8_XSTRIDE: usize = W2A8_KC_BLOCKS * 128 + 64;
/// Packed row stride of an f32 K chunk, floats (one line of padding, as above).
const F32_XSTRIDE: usize = F32_KC_BLOCKS * 128 + 16;

/// Transposes 16 rows × 8 dwords: lane `r` of result `d` is dword `d` of row `r`, where row
/// `r` is the 32 bytes at `p + r·stride`.
///
/// # Safety
/// Those 16 × 32 bytes are readable; the CPU supports avx512f.
#[inline(always)]
unsafe fn transpose_16x8(p: *const u8, stride: usize) -> [__m512i; 8] {
    // SAFETY: reads the 16 rows of the contract; the rest is register shuffles.
    unsafe {
        let row = |r: usize| p.add(r * stride).cast::<__m256i>();
        // Rows r and r + 8 share a register: each 256-bit half is an 8 × 8 transpose.
        let mut z = [_mm512_setzero_si512(); 8];
        for (r, zr) in z.iter_mut().enumerate() {
            let lo = _mm512_castsi256_si512(_mm256_loadu_si256(row(r)));
            *zr = _mm512_inserti64x4::<1>(lo, _mm256_loadu_si256(row(r + 8)));
        }
        // Per 128-bit lane: dword pairs of rows (2i, 2i + 1), then quads of rows 4q..4q + 4.
        let mut t = [_mm512_setzero_si512(); 8];
        for i in 0..4 {
            t[2 * i] = _mm512_unpacklo_epi32(z[2 * i], z[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(z[2 * i], z[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_si512(); 8];
        for q in [0, 4] {
            for h in 0..2 {
                u[q + 2 * h] = _mm512_unpacklo_epi64(t[q + h], t[q + 2 + h]);
                u[q + 2 * h + 1] = _mm512_unpackhi_epi64(t[q + h], t[q + 2 + h]);
            }
        }
        // u[d] (d < 4) holds dword d (lanes 0, 2) and d + 4 (lanes 1, 3) of rows 0..4, 8..12;
        // u[4 + d] the same of rows 4..8, 12..16. Gather the 128-bit quarters in row order.
        let lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
        let hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
        let mut out = [_mm512_setzero_si512(); 8];
        for d in 0..4 {
            out[d] = _mm512_permutex2var_epi64(u[d], lo, u[4 + d]);
            out[d + 4] = _mm512_permutex2var_epi64(u[d], hi, u[4 + d]);
        }
        out
    }
}

/// [`transpose_16x8`] of block `b` of `rows ≤ 16` weight rows; missing rows read as zero.
///
/// # Safety
/// `w` points at `rows` rows of `rb` bytes with `b·32 + 32 ≤ rb`; the CPU supports avx512f.
#[inline(always)]
unsafe fn load_group(w: *const u8, rb: usize, rows: usize, b: usize) -> [__m512i; 8] {
    // SAFETY: full groups read 16 rows in place; partial ones are copied to a zeroed buffer.
    unsafe {
        if rows == LANES {
            transpose_16x8(w.add(b * 32), rb)
        } else {
            let mut tmp = [0u8; LANES * 32];
            for r in 0..rows {
                std::ptr::copy_nonoverlapping(
                    w.add(r * rb + b * 32),
                    tmp.as_mut_ptr().add(r * 32),
                    32,
                );
            }
            transpose_16x8(tmp.as_ptr(), 32)
        }
    }
}

/// The store mask of the last column group of a `cols`-wide panel.
#[inline(always)]
fn last_mask(cols: usize) -> __mmask16 {
    let lanes = cols - (cols - 1) / LANES * LANES; // 1..=16
    (u32::MAX >> (32 - lanes)) as __mmask16
}

/// Decodes W2A8 codes of `cols ≤ 16·groups` rows, blocks `b0..b1`, into `panel`: vector
/// `(k4 − 32·b0)·groups + g` holds in lane `r` the four codes of row `16g + r` at columns
/// `4·k4 .. 4·k4 + 4`, one per byte.
///
/// # Safety
/// `w` points at `cols` rows of `rb ≥ 32·b1` bytes; `panel` has `32·(b1 − b0)·groups`
/// vectors; the CPU supports avx512f.
#[inline(always)]
unsafe fn w2a8_panel(
    w: *const u8,
    rb: usize,
    cols: usize,
    b0: usize,
    b1: usize,
    panel: *mut __m512i,
) {
    let groups = cols.div_ceil(LANES);
    // SAFETY: group g reads rows 16g.. of w (fewer at the edge) and writes panel vectors
    // below 32·(b1 − b0)·groups.
    unsafe {
        let m3 = _mm512_set1_epi8(3);
        for g in 0..groups {
            let rows = (cols - g * LANES).min(LANES);
            for b in b0..b1 {
                let dv = load_group(w.add(g * LANES * rb), rb, rows, b);
                let base = (b - b0) * 32;
                for (d, &v) in dv.iter().enumerate() {
                    let mut cur = v;
                    for s in 0..4 {
                        let at = panel.add((base + 8 * s + d) * groups + g);
                        _mm512_store_si512(at.cast(), _mm512_and_si512(cur, m3));
                        cur = _mm512_srli_epi32::<2>(cur);
                    }
                }
            }
        }
    }
}

/// The W2A8 panel micro-kernel: `MR` activation rows × `G` column groups over `k4s` dword
/// steps of a decoded panel, added to the `out` tile when `load` (a later K chunk).
///
/// # Safety
/// `panel` has `k4s·G` vectors; `x` has `MR` rows of stride `ldx` with `4·k4s` readable
/// values; `out` has `MR` rows of stride `ldo` with the masked lanes writable.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn w2a8_micro<D: Dot, const MR: usize, const G: usize>(
    panel: *const __m512i,
    k4s: usize,
    x: *const i8,
    ldx: usize,
    out: *mut i32,
    ldo: usize,
    last: __mmask16,
    load: bool,
) {
    let mask = |g: usize| if g + 1 == G { last } else { !0 };
    // SAFETY: loads and stores stay inside the contract's panel, rows of x and masked lanes
    // of the out tile.
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); G]; MR];
        if load {
            for (i, acc_i) in acc.iter_mut().enumerate() {
                for (g, a) in acc_i.iter_mut().enumerate() {
                    *a = _mm512_maskz_loadu_epi32(mask(g), out.add(i * ldo + g * LANES));
                }
            }
        }
        for k in 0..k4s {
            let mut q = [_mm512_setzero_si512(); G];
            for (g, v) in q.iter_mut().enumerate() {
                *v = *panel.add(k * G + g);
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let xb = _mm512_set1_epi32(x.add(i * ldx + 4 * k).cast::<i32>().read_unaligned());
                for (a, &qg) in acc_i.iter_mut().zip(&q) {
                    *a = D::dot(*a, qg, xb);
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (g, &a) in acc_i.iter().enumerate() {
                _mm512_mask_storeu_epi32(out.add(i * ldo + g * LANES), mask(g), a);
            }
        }
    }
}

/// The row step of the panel loops: whole `MR`-row tiles while at least `MR + 4` rows are
/// left, then one or two tiles of 4 to `MR` rows — never a tile of fewer than 4 rows (8 FMA
/// or `vpdpbusd` chains, enough to hide their latency) unless `m` itself is smaller.
#[inline(always)]
fn row_step(left: usize) -> usize {
    if left >= MR + 4 {
        MR
    } else if left > MR {
        left - 4
    } else {
        left
    }
}

/// `panel_tile!(f, [P], mr, groups, args…)` expands to a call of `f::<[P,] MR, G>(args…)`
/// for the runtime `(mr, groups)` of a panel loop (`1 ≤ mr ≤ MR`, `groups` ≤
/// [`PANEL_GROUPS`]).
macro_rules! panel_tile {
    ($f:ident, [$($pre:ty)?], $mr:expr, $g:expr, $($arg:expr),* $(,)?) => {
        match ($mr, $g) {
            (12, 2) => $f::<$($pre,)? 12, 2>($($arg),*),
            (11, 2) => $f::<$($pre,)? 11, 2>($($arg),*),
            (10, 2) => $f::<$($pre,)? 10, 2>($($arg),*),
            (9, 2) => $f::<$($pre,)? 9, 2>($($arg),*),
            (8, 2) => $f::<$($pre,)? 8, 2>($($arg),*),
            (7, 2) => $f::<$($pre,)? 7, 2>($($arg),*),
            (6, 2) => $f::<$($pre,)? 6, 2>($($arg),*),
            (5, 2) => $f::<$($pre,)? 5, 2>($($arg),*),
            (4, 2) => $f::<$($pre,)? 4, 2>($($arg),*),
            (3, 2) => $f::<$($pre,)? 3, 2>($($arg),*),
            (2, 2) => $f::<$($pre,)? 2, 2>($($arg),*),
            (1, 2) => $f::<$($pre,)? 1, 2>($($arg),*),
            (12, _) => $f::<$($pre,)? 12, 1>($($arg),*),
            (11, _) => $f::<$($pre,)? 11, 1>($($arg),*),
            (10, _) => $f::<$($pre,)? 10, 1>($($arg),*),
            (9, _) => $f::<$($pre,)? 9, 1>($($arg),*),
            (8, _) => $f::<$($pre,)? 8, 1>($($arg),*),
            (7, _) => $f::<$($pre,)? 7, 1>($($arg),*),
            (6, _) => $f::<$($pre,)? 6, 1>($($arg),*),
            (5, _) => $f::<$($pre,)? 5, 1>($($arg),*),
            (4, _) => $f::<$($pre,)? 4, 1>($($arg),*),
            (3, _) => $f::<$($pre,)? 3, 1>($($arg),*),
            (2, _) => $f::<$($pre,)? 2, 1>($($arg),*),
            _ => $f::<$($pre,)? 1, 1>($($arg),*),
        }
    };
}

/// Fills `m` rows × `n` columns of `out` (stride `ldo`) with zeros: the product over K = 0.
///
/// # Safety
/// `out` has `m` writable rows of stride `ldo ≥ n`.
#[inline(always)]
unsafe fn zero_out<T: Copy + Default>(out: *mut T, ldo: usize, m: usize, n: usize) {
    for i in 0..m {
        // SAFETY: row i of the contract's output tile.
        unsafe { std::slice::from_raw_parts_mut(out.add(i * ldo), n).fill(T::default()) };
    }
}

/// The calling thread's panel buffer, grown to at least `lines` lines.
///
/// The pointer stays valid until the next call on this thread: raw kernels take it once on
/// entry and call nothing that could take it again.
fn panel_buffer(lines: usize) -> *mut __m512i {
    PANELS.with_borrow_mut(|buf| {
        if buf.len() < lines {
            buf.resize(lines, Line([0; 64]));
        }
        buf.as_mut_ptr().cast()
    })
}

/// Prefetches `rows` output rows of `bytes` each into L1: the tile computed next loads them
/// as accumulators the moment it starts, and would otherwise wait for L2 (or L3) first.
#[inline(always)]
fn prefetch_rows<T>(out: *const T, ldo: usize, rows: usize, bytes: usize) {
    for r in 0..rows {
        for l in (0..bytes).step_by(64) {
            // SAFETY: a prefetch never faults; wrapping_add keeps the arithmetic defined.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(out.wrapping_add(r * ldo).cast::<i8>().wrapping_add(l))
            };
        }
    }
}

/// The calling thread's buffer for packed x, grown to at least `bytes`.
///
/// Valid as [`panel_buffer`]'s pointer is.
fn xpack_buffer(bytes: usize) -> *mut u8 {
    XPACK.with_borrow_mut(|buf| {
        if buf.len() * 64 < bytes {
            buf.resize(bytes.div_ceil(64), Line([0; 64]));
        }
        buf.as_mut_ptr().cast()
    })
}

/// Copies `len` values from each of `rows` rows of `x` (stride `ldx`) to rows of `dst`
/// (stride `stride`): the K chunk of a row block, contiguous and off the 4 KiB aliasing grid.
///
/// # Safety
/// The source rows are readable and the destination rows writable for `len` values.
#[inline(always)]
unsafe fn pack_rows<T: Copy>(
    x: *const T,
    ldx: usize,
    rows: usize,
    len: usize,
    dst: *mut T,
    stride: usize,
) {
    for r in 0..rows {
        // SAFETY: row r of both, inside the contract.
        unsafe { std::ptr::copy_nonoverlapping(x.add(r * ldx), dst.add(r * stride), len) };
    }
}

/// W2A8 over column panels (see the module docs), block by block of [`BLOCK_PANELS`] panels
/// and K chunk by K chunk; every panel is decoded once per chunk. Up to
/// [`W2A8_PER_USE_MAX_M`] rows, each panel is decoded right before every row tile runs over
/// it (in L1); with more rows the whole block is decoded first and row blocks of
/// [`W2A8_BLOCK_ROWS`] (their chunk of x in L1) pass over it. The chunk of x is packed first
/// ([`pack_rows`]).
///
/// # Safety
/// The contract of [`crate::cpu::scalar`]; the CPU supports what `D` needs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn w2a8_panels<D: Dot>(
    w: *const u8,
    rb: usize,
    n: usize,
    x: *const i8,
    ldx: usize,
    m: usize,
    out: *mut i32,
    ldo: usize,
) {
    let blocks = rb / 32;
    if blocks == 0 {
        // SAFETY: forwarded contract.
        return unsafe { zero_out(out, ldo, m, n) };
    }
    const LINES: usize = W2A8_KC_BLOCKS * 32 * PANEL_GROUPS;
    const COLS: usize = PANEL_GROUPS * LANES;
    let panels = panel_buffer(BLOCK_PANELS * LINES);
    let one_slot = m <= W2A8_PER_USE_MAX_M;
    let rows = if one_slot { m } else { W2A8_BLOCK_ROWS };
    let xp = xpack_buffer(rows * W2A8_XSTRIDE).cast::<i8>();
    for jb in (0..n).step_by(BLOCK_PANELS * COLS) {
        let nb = (n - jb).min(BLOCK_PANELS * COLS);
        for b0 in (0..blocks).step_by(W2A8_KC_BLOCKS) {
            let b1 = (b0 + W2A8_KC_BLOCKS).min(blocks);
            // SAFETY: panel p decodes rows jb + 32p.. (at most 32, inside n) of w, blocks
            // below rb/32, into its LINES vectors of the buffer. Rows ib..ie of x, columns
            // 128·b0.. (len of them, inside 4·rb), are packed into the x buffer (`rows` rows
            // of stride W2A8_XSTRIDE ≥ len); each tile reads its rows there and writes rows
            // i..i + mr, columns jb..jb + nb of out. Prefetches never fault.
            unsafe {
                // Few rows: decode each panel into the same L1 lines right before all rows
                // use it. Many rows: decode the block once and pass it by row blocks.
                let slot = |p: usize| if one_slot { 0 } else { p * LINES };
                if !one_slot {
                    for p in 0..nb.div_ceil(COLS) {
                        let cols = (nb - p * COLS).min(COLS);
                        let panel = panels.add(slot(p));
                        w2a8_panel(w.add((jb + p * COLS) * rb), rb, cols, b0, b1, panel);
                    }
                }
                let len = (b1 - b0) * 128;
                for ib in (0..m).step_by(rows) {
                    let ie = (ib + rows).min(m);
                    pack_rows(
                        x.add(ib * ldx + b0 * 128),
                        ldx,
                        ie - ib,
                        len,
                        xp,
                        W2A8_XSTRIDE,
                    );
                    for p in 0..nb.div_ceil(COLS) {
                        let cols = (nb - p * COLS).min(COLS);
                        if one_slot {
                            let panel = panels.add(slot(p));
                            w2a8_panel(w.add((jb + p * COLS) * rb), rb, cols, b0, b1, panel);
                        }
                        let mut i = ib;
                        while i < ie {
                            let mr = row_step(ie - i);
                            if b0 > 0 {
                                let next = i + mr;
                                let o = out.wrapping_add(next * ldo + jb + p * COLS);
                                prefetch_rows(o, ldo, (ie - next).min(MR), cols * 4);
                            }
                            panel_tile!(
                                w2a8_micro,
                                [D],
                                mr,
                                cols.div_ceil(LANES),
                                panels.add(slot(p)),
                                (b1 - b0) * 32,
                                xp.add((i - ib) * W2A8_XSTRIDE),
                                W2A8_XSTRIDE,
                                out.add(i * ldo + jb + p * COLS),
                                ldo,
                                last_mask(cols),
                                b0 > 0,
                            );
                            i += mr;
                        }
                    }
                }
            }
        }
    }
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
    // SAFETY: forwarded contract; the K-lane tiles read the interleaved copy with stride kp.
    unsafe {
        if m >= W2A8_PANEL_MIN_M && n >= W2A8_PANEL_MIN_N {
            w2a8_panels::<Vnni>(w, row_bytes, n, x, ldx, m, out, ldo)
        } else {
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
    // SAFETY: forwarded contract; the K-lane tiles read the interleaved copy with stride kp.
    unsafe {
        if m >= W2A8_PANEL_MIN_M && n >= W2A8_PANEL_MIN_N {
            w2a8_panels::<Bw>(w, row_bytes, n, x, ldx, m, out, ldo)
        } else {
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
}

/// `{−1, 0, +1}` indexed by the low four bits of a lane: entry `i` is `(i & 3) − 1`, so the
/// code in bits 0..2 picks the weight whatever bits 2..4 hold (code 3 reads as 0, as in the
/// scalar twin).
#[inline(always)]
unsafe fn weight_table() -> __m512 {
    // SAFETY: register-only AVX-512F op, reached from AVX-512 entry points.
    unsafe {
        _mm512_setr_ps(
            -1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0,
        )
    }
}

/// Decodes f32 weights of `cols ≤ 16·groups` rows, blocks `b0..b1`, into `panel`: vector
/// `(c − 128·b0)·groups + g` holds in lane `r` the weight of row `16g + r` at column `c`.
///
/// # Safety
/// `w` points at `cols` rows of `rb ≥ 32·b1` bytes; `panel` has `128·(b1 − b0)·groups`
/// vectors; the CPU supports avx512f.
#[inline(always)]
unsafe fn f32_panel(
    w: *const u8,
    rb: usize,
    cols: usize,
    b0: usize,
    b1: usize,
    panel: *mut __m512,
) {
    let groups = cols.div_ceil(LANES);
    // SAFETY: group g reads rows 16g.. of w (fewer at the edge) and writes panel vectors
    // below 128·(b1 − b0)·groups.
    unsafe {
        let table = weight_table();
        for g in 0..groups {
            let rows = (cols - g * LANES).min(LANES);
            for b in b0..b1 {
                let dv = load_group(w.add(g * LANES * rb), rb, rows, b);
                let base = (b - b0) * 128;
                for (d, &v) in dv.iter().enumerate() {
                    // Byte t, lane s of dword d is column 32s + 4d + t: shifting by 2 after
                    // each column walks (t, s) in the order of the bits.
                    let mut cur = v;
                    for t in 0..4 {
                        for s in 0..4 {
                            let at = panel.add((base + 32 * s + 4 * d + t) * groups + g);
                            _mm512_store_ps(at.cast(), _mm512_permutexvar_ps(cur, table));
                            cur = _mm512_srli_epi32::<2>(cur);
                        }
                    }
                }
            }
        }
    }
}

/// The f32 panel micro-kernel: `MR` activation rows × `G` column groups over `kc` columns
/// of a decoded panel, each output summed in column order by one FMA per column.
///
/// # Safety
/// `panel` has `kc·G` vectors; `x` has `MR` rows of stride `ldx` with `kc` readable values;
/// `out` has `MR` rows of stride `ldo` with the masked lanes writable.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_micro<const MR: usize, const G: usize>(
    panel: *const __m512,
    kc: usize,
    x: *const f32,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    last: __mmask16,
    load: bool,
) {
    let mask = |g: usize| if g + 1 == G { last } else { !0 };
    // SAFETY: loads and stores stay inside the contract's panel, rows of x and masked lanes
    // of the out tile.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); G]; MR];
        if load {
            for (i, acc_i) in acc.iter_mut().enumerate() {
                for (g, a) in acc_i.iter_mut().enumerate() {
                    *a = _mm512_maskz_loadu_ps(mask(g), out.add(i * ldo + g * LANES));
                }
            }
        }
        for c in 0..kc {
            let mut wv = [_mm512_setzero_ps(); G];
            for (g, v) in wv.iter_mut().enumerate() {
                *v = *panel.add(c * G + g);
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let xb = _mm512_set1_ps(*x.add(i * ldx + c));
                for (a, &wg) in acc_i.iter_mut().zip(&wv) {
                    *a = _mm512_fmadd_ps(wg, xb, *a);
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (g, &a) in acc_i.iter().enumerate() {
                _mm512_mask_storeu_ps(out.add(i * ldo + g * LANES), mask(g), a);
            }
        }
    }
}

/// Exact f32 over column panels, as [`w2a8_panels`] with 128-column chunks of K.
///
/// # Safety
/// The contract of [`crate::cpu::scalar`]; the CPU supports avx512f.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_panels(
    w: *const u8,
    rb: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
) {
    const LINES: usize = F32_KC_BLOCKS * 128 * PANEL_GROUPS;
    const COLS: usize = PANEL_GROUPS * LANES;
    let blocks = rb / 32;
    let panels = panel_buffer(BLOCK_PANELS * LINES).cast::<__m512>();
    let one_slot = m <= F32_PER_USE_MAX_M;
    let rows = if one_slot { m } else { F32_BLOCK_ROWS };
    let xp = xpack_buffer(rows * F32_XSTRIDE * 4).cast::<f32>();
    for jb in (0..n).step_by(BLOCK_PANELS * COLS) {
        let nb = (n - jb).min(BLOCK_PANELS * COLS);
        for b0 in (0..blocks).step_by(F32_KC_BLOCKS) {
            let b1 = (b0 + F32_KC_BLOCKS).min(blocks);
            // SAFETY: as in `w2a8_panels`, with len = 128·(b1 − b0) f32 columns of x per row
            // packed with stride F32_XSTRIDE ≥ len.
            unsafe {
                // Few rows: decode each panel into the same L1 lines right before all rows
                // use it. Many rows: decode the block once and pass it by row blocks.
                let slot = |p: usize| if one_slot { 0 } else { p * LINES };
                if !one_slot {
                    for p in 0..nb.div_ceil(COLS) {
                        let cols = (nb - p * COLS).min(COLS);
                        let panel = panels.add(slot(p));
                        f32_panel(w.add((jb + p * COLS) * rb), rb, cols, b0, b1, panel);
                    }
                }
                let len = (b1 - b0) * 128;
                for ib in (0..m).step_by(rows) {
                    let ie = (ib + rows).min(m);
                    pack_rows(
                        x.add(ib * ldx + b0 * 128),
                        ldx,
                        ie - ib,
                        len,
                        xp,
                        F32_XSTRIDE,
                    );
                    for p in 0..nb.div_ceil(COLS) {
                        let cols = (nb - p * COLS).min(COLS);
                        if one_slot {
                            let panel = panels.add(slot(p));
                            f32_panel(w.add((jb + p * COLS) * rb), rb, cols, b0, b1, panel);
                        }
                        let mut i = ib;
                        while i < ie {
                            let mr = row_step(ie - i);
                            if b0 > 0 {
                                let next = i + mr;
                                let o = out.wrapping_add(next * ldo + jb + p * COLS);
                                prefetch_rows(o, ldo, (ie - next).min(MR), cols * 4);
                            }
                            panel_tile!(
                                f32_micro,
                                [],
                                mr,
                                cols.div_ceil(LANES),
                                panels.add(slot(p)),
                                (b1 - b0) * 128,
                                xp.add((i - ib) * F32_XSTRIDE),
                                F32_XSTRIDE,
                                out.add(i * ldo + jb + p * COLS),
                                ldo,
                                last_mask(cols),
                                b0 > 0,
                            );
                            i += mr;
                        }
                    }
                }
            }
        }
    }
}

/// Step `s` of block `b` of the direct f32 kernels ([`f32_direct`] and its group-scaled
/// twin): column `c0 + 4d + t` (`c0 = 128b + 32s`) is byte `t` of dword `d` of `dv`, low
/// bits; adds `w · x` over those 32 columns to `acc` in column order, then moves every dword
/// of `dv` on by one code.
///
/// # Safety
/// `x` has `MR` rows of stride `ldx` with columns `c0..c0 + 32` readable; the CPU supports
/// avx512f.
#[inline(always)]
unsafe fn f32_direct_step<const MR: usize, const G: usize>(
    dv: &mut [[__m512i; 8]; G],
    table: __m512,
    x: *const f32,
    ldx: usize,
    c0: usize,
    acc: &mut [[__m512; G]; MR],
) {
    // SAFETY: the contract's reads of x; everything else is in registers.
    unsafe {
        for d in 0..8 {
            let mut idx = [[_mm512_setzero_si512(); 4]; G];
            for (ig, dg) in idx.iter_mut().zip(dv.iter()) {
                *ig = [
                    dg[d],
                    _mm512_srli_epi32::<8>(dg[d]),
                    _mm512_srli_epi32::<16>(dg[d]),
                    _mm512_srli_epi32::<24>(dg[d]),
                ];
            }
            for t in 0..4 {
                let c = c0 + 4 * d + t;
                let mut xb = [_mm512_setzero_ps(); MR];
                for (i, v) in xb.iter_mut().enumerate() {
                    *v = _mm512_set1_ps(*x.add(i * ldx + c));
                }
                for (g, ig) in idx.iter().enumerate() {
                    let wv = _mm512_permutexvar_ps(ig[t], table);
                    for (acc_i, &xi) in acc.iter_mut().zip(&xb) {
                        acc_i[g] = _mm512_fmadd_ps(wv, xi, acc_i[g]);
                    }
                }
            }
        }
        for dg in dv.iter_mut() {
            for v in dg.iter_mut() {
                *v = _mm512_srli_epi32::<2>(*v);
            }
        }
    }
}

/// Exact f32 for a few rows: up to 64 columns decoded in registers, block by block, each
/// output summed in column order. `MR` rows × `G` groups of [`LANES`] columns.
///
/// # Safety
/// `w` points at `cols ≤ 16·G` rows of `rb` bytes; `x` at `MR` rows of stride `ldx` with
/// `4·rb` values; `out` at `MR` rows of stride `ldo ≥ cols`; the CPU supports avx512f.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_direct<const MR: usize, const G: usize>(
    w: *const u8,
    rb: usize,
    cols: usize,
    x: *const f32,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
) {
    let last = last_mask(cols);
    let mask = |g: usize| if g + 1 == G { last } else { !0 };
    // SAFETY: group g reads rows 16g.. of w (fewer at the edge), block by block; x reads stay
    // in rows 0..MR, columns < 4·rb; stores are the masked lanes of rows 0..MR.
    unsafe {
        let table = weight_table();
        let mut acc = [[_mm512_setzero_ps(); G]; MR];
        for b in 0..rb / 32 {
            let mut dv = [[_mm512_setzero_si512(); 8]; G];
            for (g, v) in dv.iter_mut().enumerate() {
                *v = load_group(w.add(g * LANES * rb), rb, (cols - g * LANES).min(LANES), b);
            }
            // Column 32s + 4d + t is byte t of dword d, bits 2s..: columns in order walk s,
            // then d, then t; after each s every dword moves on by one code.
            for s in 0..4 {
                f32_direct_step(&mut dv, table, x, ldx, b * 128 + 32 * s, &mut acc);
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (g, &a) in acc_i.iter().enumerate() {
                _mm512_mask_storeu_ps(out.add(i * ldo + g * LANES), mask(g), a);
            }
        }
    }
}

/// Exact f32 for `m ≤ F32_DIRECT_MAX_M` rows: [`f32_direct`] over 64-column tiles.
///
/// # Safety
/// The contract of [`crate::cpu::scalar`]; `1 ≤ m ≤ 4`; the CPU supports avx512f.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_few_rows(
    w: *const u8,
    rb: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
) {
    macro_rules! go {
        ($mr:literal, $groups:expr, $($arg:expr),*) => {
            match $groups {
                4 => f32_direct::<$mr, 4>($($arg),*),
                3 => f32_direct::<$mr, 3>($($arg),*),
                2 => f32_direct::<$mr, 2>($($arg),*),
                _ => f32_direct::<$mr, 1>($($arg),*),
            }
        };
    }
    for j0 in (0..n).step_by(DIRECT_GROUPS * LANES) {
        let cols = (n - j0).min(DIRECT_GROUPS * LANES);
        let (wj, oj, g) = (
            w.wrapping_add(j0 * rb),
            out.wrapping_add(j0),
            cols.div_ceil(LANES),
        );
        // SAFETY: rows j0..j0 + cols of w and columns j0..j0 + cols of the m output rows.
        unsafe {
            match m {
                1 => go!(1, g, wj, rb, cols, x, ldx, oj, ldo),
                2 => go!(2, g, wj, rb, cols, x, ldx, oj, ldo),
                3 => go!(3, g, wj, rb, cols, x, ldx, oj, ldo),
                _ => go!(4, g, wj, rb, cols, x, ldx, oj, ldo),
            }
        }
    }
}

/// Exact-f32 activations: decoded column panels and FMA by {−1, 0, +1} (module docs).
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
    // SAFETY: forwarded contract.
    unsafe {
        if m == 0 || n == 0 {
            // Nothing to write (the few-row tiles below assume at least one row).
        } else if row_bytes == 0 {
            zero_out(out, ldo, m, n)
        } else if m <= F32_DIRECT_MAX_M {
            f32_few_rows(w, row_bytes, n, x, ldx, m, out, ldo)
        } else {
            f32_panels(w, row_bytes, n, x, ldx, m, out, ldo)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Group scales: column panels whose micro-kernels scale each group's sums on the way out.
// ---------------------------------------------------------------------------------------

/// Where the scale groups of one K chunk fall, and the scale operands of one output tile
/// (see [`crate::cpu::scalar`], "Group scales").
#[derive(Clone, Copy)]
struct Seg {
    /// First column of the chunk, a multiple of `size`.
    c0: usize,
    /// Columns per group.
    size: usize,
    /// Groups per weight row (also the row stride of `ws` and `xsum`).
    count: usize,
    /// Scales of the tile's first weight row: column `r` of the tile, group `g` at
    /// `ws[r·count + g]`.
    ws: *const f32,
    /// W2A8: scale of the tile's first activation row (row `i` at `xs[i]`).
    xs: *const f32,
    /// W2A8: group sums of the tile's first activation row (row `i`, group `g` at
    /// `xsum[i·count + g]`).
    xsum: *const i32,
}

impl Seg {
    /// The groups that meet chunk columns `0..kc`: `(group, first, end)`, chunk-relative.
    /// Groups from `count` on (a padded row's last half block) are not visited.
    #[inline(always)]
    fn groups(&self, kc: usize) -> impl Iterator<Item = (usize, usize, usize)> + use<> {
        let (c0, size) = (self.c0, self.size);
        let end = (c0 + kc).div_ceil(size).min(self.count);
        (c0 / size..end).map(move |g| (g, g * size - c0, ((g + 1) * size - c0).min(kc)))
    }
}

/// Groups per row up to which scales are gathered with 32-bit lane offsets
/// (`16 · count` must fit an i32); longer rows read them one by one.
const GATHER_MAX_COUNT: usize = i32::MAX as usize / LANES;

/// The scales of group `g` for a `G`-group tile: lane `r` of vector `v` is the scale of tile
/// column `16v + r`; masked-off lanes of the last vector read nothing and hold 0.
///
/// # Safety
/// `seg.ws` holds the scales of the tile's columns (`16·(G − 1)` full ones plus the lanes of
/// `last`), `g < seg.count`; the CPU supports avx512f.
#[inline(always)]
unsafe fn group_scales<const G: usize>(seg: &Seg, g: usize, last: __mmask16) -> [__m512; G] {
    let count = seg.count;
    // SAFETY: every lane read is a scale of a tile column (masked lanes are not read).
    // (A loop, not `array::from_fn`: a closure here would not inherit the entry point's
    // target features, and its intrinsics would become calls.)
    unsafe {
        let mut out = [_mm512_setzero_ps(); G];
        for (v, o) in out.iter_mut().enumerate() {
            let mask = if v + 1 == G { last } else { !0 };
            let base = seg.ws.add(v * LANES * count + g);
            *o = if count <= GATHER_MAX_COUNT {
                let offsets = _mm512_mullo_epi32(
                    _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                    _mm512_set1_epi32(count as i32),
                );
                _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, offsets, base)
            } else {
                let mut lanes = [0f32; LANES];
                for (r, l) in lanes.iter_mut().enumerate() {
                    if mask & (1 << r) != 0 {
                        *l = *base.add(r * count);
                    }
                }
                _mm512_loadu_ps(lanes.as_ptr())
            };
        }
        out
    }
}

/// A W2A8 group's products `(S − xsum[i, g]) · (xs[i] · ws[j, g])` from its i32 sums `acc`
/// (one vector per row and column group), as the scalar twin computes them.
///
/// # Safety
/// `seg` holds the tile's scales (lanes of `last` in the last vector) and its rows' scales
/// and group sums, `g < seg.count`; the CPU supports avx512f.
#[inline(always)]
unsafe fn scale_w2a8<const MR: usize, const G: usize>(
    acc: &[[__m512i; G]; MR],
    seg: &Seg,
    g: usize,
    last: __mmask16,
) -> [[__m512; G]; MR] {
    // SAFETY: reads the scales and sums of the contract.
    unsafe {
        let mut t = [[_mm512_setzero_ps(); G]; MR];
        let ws = group_scales::<G>(seg, g, last);
        for (i, (t_i, acc_i)) in t.iter_mut().zip(acc).enumerate() {
            let xs = _mm512_set1_ps(*seg.xs.add(i));
            let xsum = _mm512_set1_epi32(*seg.xsum.add(i * seg.count + g));
            for ((tv, &a), &w) in t_i.iter_mut().zip(acc_i).zip(&ws) {
                let s = _mm512_cvtepi32_ps(_mm512_sub_epi32(a, xsum));
                *tv = _mm512_mul_ps(s, _mm512_mul_ps(xs, w));
            }
        }
        t
    }
}

/// An f32 group's products `P · ws[j, g]` from its column-order sums `acc`.
///
/// # Safety
/// `seg` holds the tile's scales (lanes of `last` in the last vector), `g < seg.count`; the
/// CPU supports avx512f.
#[inline(always)]
unsafe fn scale_f32<const MR: usize, const G: usize>(
    acc: &[[__m512; G]; MR],
    seg: &Seg,
    g: usize,
    last: __mmask16,
) -> [[__m512; G]; MR] {
    // SAFETY: reads the scales of the contract.
    unsafe {
        let mut t = [[_mm512_setzero_ps(); G]; MR];
        let ws = group_scales::<G>(seg, g, last);
        for (t_i, acc_i) in t.iter_mut().zip(acc) {
            for ((tv, &a), &w) in t_i.iter_mut().zip(acc_i).zip(&ws) {
                *tv = _mm512_mul_ps(a, w);
            }
        }
        t
    }
}

/// Scales a W2A8 group's i32 sums ([`scale_w2a8`]) and folds them into `out`
/// ([`fold_group`]) — out of line: inlined, it took registers from the loop that summed them,
/// which then spilled its accumulators.
///
/// # Safety
/// As [`scale_w2a8`] and [`fold_group`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline(never)]
unsafe fn fold_w2a8<const MR: usize, const G: usize>(
    acc: &[[__m512i; G]; MR],
    seg: &Seg,
    g: usize,
    out: *mut f32,
    ldo: usize,
    last: __mmask16,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let t = scale_w2a8(acc, seg, g, last);
        fold_group::<MR, G>(out, ldo, last, g == 0, &t);
    }
}

/// Scales an f32 group's sums ([`scale_f32`]) and folds them into `out` ([`fold_group`]),
/// out of line as [`fold_w2a8`].
///
/// # Safety
/// As [`scale_f32`] and [`fold_group`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline(never)]
unsafe fn fold_f32<const MR: usize, const G: usize>(
    acc: &[[__m512; G]; MR],
    seg: &Seg,
    g: usize,
    out: *mut f32,
    ldo: usize,
    last: __mmask16,
) {
    // SAFETY: forwarded contract.
    unsafe {
        let t = scale_f32(acc, seg, g, last);
        fold_group::<MR, G>(out, ldo, last, g == 0, &t);
    }
}

/// Adds a group's scaled products `t` (one vector per row and column group) to the `out`
/// tile — or stores them, for group 0, where the sum starts.
///
/// # Safety
/// `out` has `MR` rows of stride `ldo` with the masked lanes writable; avx512f.
#[inline(always)]
unsafe fn fold_group<const MR: usize, const G: usize>(
    out: *mut f32,
    ldo: usize,
    last: __mmask16,
    first: bool,
    t: &[[__m512; G]; MR],
) {
    let mask = |v: usize| if v + 1 == G { last } else { !0 };
    // SAFETY: masked lanes of the contract's out tile.
    unsafe {
        for (i, t_i) in t.iter().enumerate() {
            for (v, &t_iv) in t_i.iter().enumerate() {
                let at = out.add(i * ldo + v * LANES);
                let sum = if first {
                    t_iv
                } else {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(mask(v), at), t_iv)
                };
                _mm512_mask_storeu_ps(at, mask(v), sum);
            }
        }
    }
}

/// The group-scaled W2A8 micro-kernel: `MR` activation rows × `G` column groups over the
/// `k4s` dword steps of a decoded panel chunk; each group's i32 sums become
/// `(S − xsum) · (xs · ws)`, folded into the f32 `out` tile in group order.
///
/// # Safety
/// As [`w2a8_micro`], with `out` an f32 tile; `seg` describes this chunk and tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn w2a8_group_micro<D: Dot, const MR: usize, const G: usize>(
    panel: *const __m512i,
    k4s: usize,
    x: *const i8,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    last: __mmask16,
    seg: &Seg,
) {
    // SAFETY: loads stay inside the panel, rows of x, and the tile's scales and group sums;
    // stores are the masked lanes of the out tile.
    unsafe {
        for (g, lo, hi) in seg.groups(4 * k4s) {
            let mut acc = [[_mm512_setzero_si512(); G]; MR];
            for k in lo / 4..hi / 4 {
                let mut q = [_mm512_setzero_si512(); G];
                for (v, qv) in q.iter_mut().enumerate() {
                    *qv = *panel.add(k * G + v);
                }
                for (i, acc_i) in acc.iter_mut().enumerate() {
                    let xb =
                        _mm512_set1_epi32(x.add(i * ldx + 4 * k).cast::<i32>().read_unaligned());
                    for (a, &qv) in acc_i.iter_mut().zip(&q) {
                        *a = D::dot(*a, qv, xb);
                    }
                }
            }
            fold_w2a8::<MR, G>(&acc, seg, g, out, ldo, last);
        }
    }
}

/// The group-scaled f32 micro-kernel: `MR` rows × `G` column groups over `kc` columns of a
/// decoded panel chunk; each group's column-order sum times its scale is folded into `out`.
///
/// # Safety
/// As [`f32_micro`]; `seg` describes this chunk and tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_group_micro<const MR: usize, const G: usize>(
    panel: *const __m512,
    kc: usize,
    x: *const f32,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    last: __mmask16,
    seg: &Seg,
) {
    // SAFETY: as in `w2a8_group_micro`.
    unsafe {
        for (g, lo, hi) in seg.groups(kc) {
            let mut acc = [[_mm512_setzero_ps(); G]; MR];
            for c in lo..hi {
                let mut wv = [_mm512_setzero_ps(); G];
                for (v, w) in wv.iter_mut().enumerate() {
                    *w = *panel.add(c * G + v);
                }
                for (i, acc_i) in acc.iter_mut().enumerate() {
                    let xb = _mm512_set1_ps(*x.add(i * ldx + c));
                    for (a, &w) in acc_i.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(w, xb, *a);
                    }
                }
            }
            fold_f32::<MR, G>(&acc, seg, g, out, ldo, last);
        }
    }
}

/// One mode of the group-scaled panel driver ([`group_panels`]): the activation type, how
/// a chunk of weights is decoded and which micro-kernel runs over it.
trait GroupMode {
    /// Activation element (i8 or f32).
    type X: Copy;
    /// Panel vectors per block and column group: dword steps (W2A8) or columns (f32).
    const STEPS: usize;
    /// Rows of x per block when the panels of a block are decoded once.
    const BLOCK_ROWS: usize;
    /// Up to this many rows each panel is decoded right before use.
    const PER_USE_MAX_M: usize;
    /// Blocks per K chunk (a chunk holds whole groups). A constant, so the packed row stride
    /// of x is one too and the micro-kernels address rows of x by immediate offsets.
    const KC_BLOCKS: usize;
    /// Decodes blocks `b0..b1` of `cols` weight rows into `panel` (see [`w2a8_panel`]).
    ///
    /// # Safety
    /// As [`w2a8_panel`].
    unsafe fn decode(w: *const u8, rb: usize, cols: usize, b0: usize, b1: usize, panel: *mut Line);
    /// The micro-kernel over `steps` panel steps.
    ///
    /// # Safety
    /// As [`w2a8_group_micro`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn micro<const MR: usize, const G: usize>(
        panel: *const Line,
        steps: usize,
        x: *const Self::X,
        ldx: usize,
        out: *mut f32,
        ldo: usize,
        last: __mmask16,
        seg: &Seg,
    );
}

/// Group-scaled W2A8 with dot step `D`.
struct W2a8Groups<D>(std::marker::PhantomData<D>);

impl<D: Dot> GroupMode for W2a8Groups<D> {
    type X = i8;
    const STEPS: usize = 32;
    const BLOCK_ROWS: usize = W2A8_BLOCK_ROWS;
    const PER_USE_MAX_M: usize = W2A8_PER_USE_MAX_M;
    /// 512 columns: whole groups of 64, 128 and 256.
    const KC_BLOCKS: usize = W2A8_KC_BLOCKS;
    #[inline(always)]
    unsafe fn decode(w: *const u8, rb: usize, cols: usize, b0: usize, b1: usize, panel: *mut Line) {
        // SAFETY: forwarded contract.
        unsafe { w2a8_panel(w, rb, cols, b0, b1, panel.cast()) }
    }
    #[inline(always)]
    unsafe fn micro<const MR: usize, const G: usize>(
        panel: *const Line,
        steps: usize,
        x: *const i8,
        ldx: usize,
        out: *mut f32,
        ldo: usize,
        last: __mmask16,
        seg: &Seg,
    ) {
        // SAFETY: forwarded contract.
        unsafe { w2a8_group_micro::<D, MR, G>(panel.cast(), steps, x, ldx, out, ldo, last, seg) }
    }
}

/// Group-scaled exact f32 with K chunks of `KCB` blocks: 1 (the per-row chunk) for groups of
/// 64 and 128, 2 for groups of 256, whose partial sums then stay in registers.
struct F32Groups<const KCB: usize>;

impl<const KCB: usize> GroupMode for F32Groups<KCB> {
    type X = f32;
    const STEPS: usize = 128;
    const BLOCK_ROWS: usize = F32_BLOCK_ROWS;
    const PER_USE_MAX_M: usize = F32_PER_USE_MAX_M;
    const KC_BLOCKS: usize = KCB;
    #[inline(always)]
    unsafe fn decode(w: *const u8, rb: usize, cols: usize, b0: usize, b1: usize, panel: *mut Line) {
        // SAFETY: forwarded contract.
        unsafe { f32_panel(w, rb, cols, b0, b1, panel.cast()) }
    }
    #[inline(always)]
    unsafe fn micro<const MR: usize, const G: usize>(
        panel: *const Line,
        steps: usize,
        x: *const f32,
        ldx: usize,
        out: *mut f32,
        ldo: usize,
        last: __mmask16,
        seg: &Seg,
    ) {
        // SAFETY: forwarded contract.
        unsafe { f32_group_micro::<MR, G>(panel.cast(), steps, x, ldx, out, ldo, last, seg) }
    }
}

/// [`GroupMode::micro`] as a free function, for `panel_tile!`.
///
/// # Safety
/// As [`GroupMode::micro`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn group_micro<M: GroupMode, const MR: usize, const G: usize>(
    panel: *const Line,
    steps: usize,
    x: *const M::X,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    last: __mmask16,
    seg: &Seg,
) {
    // SAFETY: forwarded contract.
    unsafe { M::micro::<MR, G>(panel, steps, x, ldx, out, ldo, last, seg) }
}

/// Group-scaled products over column panels: the loops of [`w2a8_panels`] (blocks of
/// [`BLOCK_PANELS`] panels, K chunks holding whole groups, each panel decoded once per
/// chunk), with an f32 output tile that accumulates the scaled groups in K order.
///
/// # Safety
/// The group contract of [`crate::cpu::scalar`]; the CPU supports what `M` needs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn group_panels<M: GroupMode>(
    w: *const u8,
    rb: usize,
    n: usize,
    x: *const M::X,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
    gr: &Groups,
) {
    let blocks = rb / 32;
    if blocks == 0 || m == 0 || n == 0 {
        // No group: every output is the empty sum +0.0.
        // SAFETY: forwarded contract.
        return unsafe { zero_out(out, ldo, m, n) };
    }
    const COLS: usize = PANEL_GROUPS * LANES;
    let kcb = M::KC_BLOCKS;
    debug_assert_eq!(kcb * 128 % gr.size, 0, "a K chunk holds whole groups");
    let lines = kcb * M::STEPS * PANEL_GROUPS;
    let panels = panel_buffer(BLOCK_PANELS * lines).cast::<Line>();
    let one_slot = m <= M::PER_USE_MAX_M;
    let rows = if one_slot { m } else { M::BLOCK_ROWS };
    // One line of padding per packed row, as W2A8_XSTRIDE and F32_XSTRIDE.
    let xstride = kcb * 128 + 64 / size_of::<M::X>();
    let xp = xpack_buffer(rows * xstride * size_of::<M::X>()).cast::<M::X>();
    for jb in (0..n).step_by(BLOCK_PANELS * COLS) {
        let nb = (n - jb).min(BLOCK_PANELS * COLS);
        for b0 in (0..blocks).step_by(kcb) {
            let b1 = (b0 + kcb).min(blocks);
            // SAFETY: as in `w2a8_panels`: panels decode rows jb + 32p.. (inside n) of w,
            // blocks b0..b1 ≤ rb/32, into their `lines` vectors; rows ib..ie of x, columns
            // 128·b0.. (len ≤ 4·rb of them) are packed with stride xstride ≥ len; tiles write
            // rows i..i + mr, columns jb..jb + nb of out. The tile's scales start at row
            // jb + 32p of ws, its activation scales and sums at row i of xs and xsum
            // (wrapping: f32 mode passes none and never reads them).
            unsafe {
                let slot = |p: usize| if one_slot { 0 } else { p * lines };
                if !one_slot {
                    for p in 0..nb.div_ceil(COLS) {
                        let cols = (nb - p * COLS).min(COLS);
                        M::decode(
                            w.add((jb + p * COLS) * rb),
                            rb,
                            cols,
                            b0,
                            b1,
                            panels.add(slot(p)),
                        );
                    }
                }
                let len = (b1 - b0) * 128;
                for ib in (0..m).step_by(rows) {
                    let ie = (ib + rows).min(m);
                    pack_rows(x.add(ib * ldx + b0 * 128), ldx, ie - ib, len, xp, xstride);
                    for p in 0..nb.div_ceil(COLS) {
                        let cols = (nb - p * COLS).min(COLS);
                        if one_slot {
                            M::decode(
                                w.add((jb + p * COLS) * rb),
                                rb,
                                cols,
                                b0,
                                b1,
                                panels.add(slot(p)),
                            );
                        }
                        let mut i = ib;
                        while i < ie {
                            let mr = row_step(ie - i);
                            if b0 > 0 {
                                let next = i + mr;
                                let o = out.wrapping_add(next * ldo + jb + p * COLS);
                                prefetch_rows(o, ldo, (ie - next).min(MR), cols * 4);
                            }
                            let seg = Seg {
                                c0: b0 * 128,
                                size: gr.size,
                                count: gr.count,
                                ws: gr.ws.add((jb + p * COLS) * gr.count),
                                xs: gr.xs.wrapping_add(i),
                                xsum: gr.xsum.wrapping_add(i * gr.count),
                            };
                            panel_tile!(
                                group_micro,
                                [M],
                                mr,
                                cols.div_ceil(LANES),
                                panels.add(slot(p)),
                                (b1 - b0) * M::STEPS,
                                xp.add((i - ib) * xstride),
                                xstride,
                                out.add(i * ldo + jb + p * COLS),
                                ldo,
                                last_mask(cols),
                                &seg,
                            );
                            i += mr;
                        }
                    }
                }
            }
        }
    }
}

/// Up to this many activation rows, group-scaled W2A8 decodes in registers
/// ([`w2a8_group_direct`]); beyond, it decodes panels.
const W2A8_GROUP_DIRECT_MAX_M: usize = 4;
/// Column groups of one [`w2a8_group_direct`] tile: 32 columns (2 × 8 transposed dword
/// registers stay resident).
const W2A8_GROUP_DIRECT_GROUPS: usize = 2;

/// Group-scaled W2A8 for a few rows: up to 32 columns decoded in registers block by block
/// (the transposed dwords of [`f32_direct`]), `vpdpbusd` against broadcast dwords of four
/// activations, each group's sums scaled and folded into `out` where the group ends.
///
/// # Safety
/// `w` points at `cols ≤ 16·G` rows of `rb` bytes; `x` at `MR` rows of stride `ldx` with
/// `4·rb` values; `out` at `MR` rows of stride `ldo ≥ cols`; `seg` holds the scales of those
/// columns and the scales and group sums of those rows (its `c0` is unused); the CPU
/// supports what `D` needs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn w2a8_group_direct<D: Dot, const MR: usize, const G: usize>(
    w: *const u8,
    rb: usize,
    cols: usize,
    x: *const i8,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    seg: &Seg,
) {
    let last = last_mask(cols);
    let kp = 4 * rb;
    // SAFETY: group v reads rows 16v.. of w (fewer at the edge), block by block; x reads stay
    // in rows 0..MR, columns < 4·rb; the fold writes the masked lanes of rows 0..MR.
    unsafe {
        let m3 = _mm512_set1_epi8(3);
        let mut acc = [[_mm512_setzero_si512(); G]; MR];
        for b in 0..rb / 32 {
            let mut dv = [[_mm512_setzero_si512(); 8]; G];
            for (v, dg) in dv.iter_mut().enumerate() {
                *dg = load_group(w.add(v * LANES * rb), rb, (cols - v * LANES).min(LANES), b);
            }
            // Dword d of a row, bits 2s.., holds the codes of columns 32s + 4d .. + 4.
            for s in 0..4 {
                for d in 0..8 {
                    let mut xb = [_mm512_setzero_si512(); MR];
                    for (i, xi) in xb.iter_mut().enumerate() {
                        let at = x.add(i * ldx + b * 128 + 32 * s + 4 * d);
                        *xi = _mm512_set1_epi32(at.cast::<i32>().read_unaligned());
                    }
                    for (v, dg) in dv.iter().enumerate() {
                        let q = _mm512_and_si512(dg[d], m3);
                        for (acc_i, &xi) in acc.iter_mut().zip(&xb) {
                            acc_i[v] = D::dot(acc_i[v], q, xi);
                        }
                    }
                }
                for dg in dv.iter_mut() {
                    for r in dg.iter_mut() {
                        *r = _mm512_srli_epi32::<2>(*r);
                    }
                }
                let end = b * 128 + 32 * (s + 1);
                if group_ends(end, seg.size, kp) {
                    let g = (end - 1) / seg.size;
                    if g < seg.count {
                        fold_w2a8::<MR, G>(&acc, seg, g, out, ldo, last);
                    }
                    acc = [[_mm512_setzero_si512(); G]; MR];
                }
            }
        }
    }
}

/// Group-scaled exact f32 for a few rows: [`f32_direct`] with each group's column-order sum
/// scaled and folded into `out` where the group ends.
///
/// # Safety
/// As [`f32_direct`]; `seg` holds the scales of the tile's columns (its `c0` is unused).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_group_direct<const MR: usize, const G: usize>(
    w: *const u8,
    rb: usize,
    cols: usize,
    x: *const f32,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    seg: &Seg,
) {
    let last = last_mask(cols);
    let kp = 4 * rb;
    // SAFETY: as in `f32_direct`; the fold writes the masked lanes of rows 0..MR.
    unsafe {
        let table = weight_table();
        let mut acc = [[_mm512_setzero_ps(); G]; MR];
        for b in 0..rb / 32 {
            let mut dv = [[_mm512_setzero_si512(); 8]; G];
            for (v, dg) in dv.iter_mut().enumerate() {
                *dg = load_group(w.add(v * LANES * rb), rb, (cols - v * LANES).min(LANES), b);
            }
            for s in 0..4 {
                f32_direct_step(&mut dv, table, x, ldx, b * 128 + 32 * s, &mut acc);
                let end = b * 128 + 32 * (s + 1);
                if group_ends(end, seg.size, kp) {
                    let g = (end - 1) / seg.size;
                    if g < seg.count {
                        fold_f32::<MR, G>(&acc, seg, g, out, ldo, last);
                    }
                    acc = [[_mm512_setzero_ps(); G]; MR];
                }
            }
        }
    }
}

/// The column tiles of the few-row group kernels: `(first column, columns, column groups,
/// scale operands)` for tiles of up to `groups · 16` of `n` columns. (An iterator, not a
/// closure-taking loop: a closure would not inherit the entry point's target features.)
#[inline(always)]
fn few_row_tiles(
    n: usize,
    groups: usize,
    gr: &Groups,
) -> impl Iterator<Item = (usize, usize, usize, Seg)> + use<> {
    let gr = *gr;
    (0..n).step_by(groups * LANES).map(move |j0| {
        let cols = (n - j0).min(groups * LANES);
        let seg = Seg {
            c0: 0,
            size: gr.size,
            count: gr.count,
            ws: gr.ws.wrapping_add(j0 * gr.count),
            xs: gr.xs,
            xsum: gr.xsum,
        };
        (j0, cols, cols.div_ceil(LANES), seg)
    })
}

/// Group-scaled W2A8: [`w2a8_group_direct`] for up to [`W2A8_GROUP_DIRECT_MAX_M`] rows,
/// else [`group_panels`].
///
/// # Safety
/// The group contract of [`crate::cpu::scalar`]; the CPU supports what `D` needs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn w2a8_group_any<D: Dot>(
    w: *const u8,
    rb: usize,
    n: usize,
    x: *const i8,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
    gr: &Groups,
) {
    // SAFETY: forwarded contract; each tile covers columns j0..j0 + cols of w, out and ws.
    unsafe {
        if m == 0 || n == 0 || rb == 0 || m > W2A8_GROUP_DIRECT_MAX_M {
            return group_panels::<W2a8Groups<D>>(w, rb, n, x, ldx, m, out, ldo, gr);
        }
        for (j0, cols, g, seg) in few_row_tiles(n, W2A8_GROUP_DIRECT_GROUPS, gr) {
            let (wj, oj, seg) = (w.add(j0 * rb), out.add(j0), &seg);
            macro_rules! go {
                ($mr:literal) => {
                    if g == 2 {
                        w2a8_group_direct::<D, $mr, 2>(wj, rb, cols, x, ldx, oj, ldo, seg)
                    } else {
                        w2a8_group_direct::<D, $mr, 1>(wj, rb, cols, x, ldx, oj, ldo, seg)
                    }
                };
            }
            match m {
                1 => go!(1),
                2 => go!(2),
                3 => go!(3),
                _ => go!(4),
            }
        }
    }
}

/// Group-scaled W2A8 with `vpdpbusd`.
///
/// # Safety
/// The CPU supports avx512f/bw/vl/vnni, and the arguments satisfy the group contract of
/// [`crate::cpu::scalar`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn w2a8_group_vnni(
    w: *const u8,
    row_bytes: usize,
    n: usize,
    x: *const i8,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
    gr: &Groups,
) {
    // SAFETY: forwarded contract.
    unsafe { w2a8_group_any::<Vnni>(w, row_bytes, n, x, ldx, m, out, ldo, gr) }
}

/// Group-scaled W2A8 with `vpmaddubsw` (AVX-512 without VNNI).
///
/// # Safety
/// The CPU supports avx512f/bw/vl, and the arguments satisfy the group contract of
/// [`crate::cpu::scalar`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn w2a8_group_bw(
    w: *const u8,
    row_bytes: usize,
    n: usize,
    x: *const i8,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
    gr: &Groups,
) {
    // SAFETY: forwarded contract.
    unsafe { w2a8_group_any::<Bw>(w, row_bytes, n, x, ldx, m, out, ldo, gr) }
}

/// Group-scaled exact f32.
///
/// # Safety
/// The CPU supports avx512f/bw/vl, and the arguments satisfy the group contract of
/// [`crate::cpu::scalar`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn f32_group(
    w: *const u8,
    row_bytes: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
    gr: &Groups,
) {
    // SAFETY: forwarded contract; each tile covers columns j0..j0 + cols of w, out and ws.
    unsafe {
        if m == 0 || n == 0 || row_bytes == 0 || m > F32_DIRECT_MAX_M {
            return if gr.size > 128 {
                group_panels::<F32Groups<2>>(w, row_bytes, n, x, ldx, m, out, ldo, gr)
            } else {
                group_panels::<F32Groups<1>>(w, row_bytes, n, x, ldx, m, out, ldo, gr)
            };
        }
        for (j0, cols, g, seg) in few_row_tiles(n, DIRECT_GROUPS, gr) {
            let (wj, oj, seg) = (w.add(j0 * row_bytes), out.add(j0), &seg);
            macro_rules! go {
                ($mr:literal) => {
                    match g {
                        4 => f32_group_direct::<$mr, 4>(wj, row_bytes, cols, x, ldx, oj, ldo, seg),
                        3 => f32_group_direct::<$mr, 3>(wj, row_bytes, cols, x, ldx, oj, ldo, seg),
                        2 => f32_group_direct::<$mr, 2>(wj, row_bytes, cols, x, ldx, oj, ldo, seg),
                        _ => f32_group_direct::<$mr, 1>(wj, row_bytes, cols, x, ldx, oj, ldo, seg),
                    }
                };
            }
            match m {
                1 => go!(1),
                2 => go!(2),
                3 => go!(3),
                _ => go!(4),
            }
        }
    }
}

/// The loop behind [`crate::cpu::dispatch::dpbusd_peak`]: 16 independent accumulator chains
/// (more than `vpdpbusd` latency × issue width on any core so far), so only issue limits it.
///
/// # Safety
/// The CPU supports avx512f and avx512vnni.
#[target_feature(enable = "avx512f,avx512vnni")]
pub(crate) unsafe fn dpbusd_peak(iters: usize) -> i64 {
    let (a, b) = (
        _mm512_set1_epi8(std::hint::black_box(1)),
        _mm512_set1_epi8(std::hint::black_box(-1)),
    );
    let mut acc = [_mm512_setzero_si512(); 16];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_dpbusd_epi32(*v, a, b);
        }
    }
    acc.iter()
        .map(|&v| i64::from(_mm512_reduce_add_epi32(v)))
        .sum()
}
