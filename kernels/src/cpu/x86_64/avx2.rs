//! AVX2 kernels (Haswell, Zen 1 and later).
//!
//! W2A8: a 32-byte block shifted by 0, 2, 4, 6 and masked gives four registers of 32 codes,
//! for weights `32s .. 32s + 32` of the block. `vpmaddubsw` multiplies codes (u8) by
//! activations (i8) into i16 pairs; the four products of a block are summed in i16
//! ([`I16_BLOCK_BOUND`]) and widened once per block with `vpmaddwd`.
//!
//! Exact f32: the column panels of the AVX-512 kernels (see there) at half the width. A block
//! of 8 weight rows transposed as 8 × 8 dwords ([`transpose_8x8`]) holds in lane `r` of
//! vector `d` bytes `4d..4d+4` of row `r`, the codes of columns `32s + 4d + t`; `vpermps`
//! on an 8-entry table turns them into {−1, 0, +1}. A 512-column chunk of a 16-column panel
//! is decoded once and reused by every row tile of x, `6 × 16` outputs in the 16 ymm
//! registers; one or two rows decode in registers (`f32_direct`). Each output is one lane,
//! summed in column order by one FMA per column: bit-identical to the scalar twin.

use std::arch::x86_64::*;

use super::group_ends;
use crate::cpu::dispatch::Groups;
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

/// Output columns per vector: one per f32 lane.
const LANES: usize = 8;
/// Column groups (of [`LANES`]) in a panel: 16 columns.
const PANEL_GROUPS: usize = 2;
/// Largest row tile of the panel micro-kernel: 6 × 2 accumulators + 2 panel vectors + a
/// broadcast fill 15 of the 16 ymm registers.
const MR: usize = 6;
/// Rows up to which exact f32 decodes in registers (`f32_direct`).
const F32_DIRECT_MAX_M: usize = 2;
/// Column groups of one `f32_direct` tile: 32 columns, 4 independent FMA chains per row.
const DIRECT_GROUPS: usize = 4;

/// Blocks of K per panel chunk: 512 columns × 16 f32 = 32 KiB. Longer chunks than AVX-512's:
/// with 12 accumulators a tile's start (reloading them from the output) weighs more.
const KC_BLOCKS: usize = 4;
/// Panels decoded per K chunk for many rows: 8 × 16 columns, 8 × 32 KiB.
const BLOCK_PANELS: usize = 8;
/// Rows of x whose K chunk a panel passes before the next: 3 tiles, 37 KiB.
const BLOCK_ROWS: usize = 3 * MR;
/// Up to this many rows each panel is decoded right before use (see `f32_panels`).
const PER_USE_MAX_M: usize = 128;

/// One ymm register's worth of panel, aligned for `vmovaps`.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Line([f32; LANES]);

/// Packed row stride of a K chunk of x, floats: one line more than the chunk, so
/// packed rows fall in different L1 sets whatever the stride of x.
const XSTRIDE: usize = KC_BLOCKS * 128 + 16;

thread_local! {
    /// Decoded panels of the block being computed (see [`panel_buffer`]).
    static PANELS: std::cell::RefCell<Vec<Line>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The K chunk of a block of x rows, packed with row stride [`XSTRIDE`].
    static XPACK: std::cell::RefCell<Vec<Line>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Transposes 8 rows × 8 dwords: lane `r` of result `d` is dword `d` of row `r`, where row `r`
/// is the 32 bytes at `p + r·stride`.
///
/// # Safety
/// Those 8 × 32 bytes are readable; the CPU supports avx2.
#[inline(always)]
unsafe fn transpose_8x8(p: *const u8, stride: usize) -> [__m256i; 8] {
    // SAFETY: reads the 8 rows of the contract; the rest is register shuffles.
    unsafe {
        let mut r = [_mm256_setzero_si256(); 8];
        for (i, ri) in r.iter_mut().enumerate() {
            *ri = _mm256_loadu_si256(p.add(i * stride).cast());
        }
        // Dword pairs of rows (2i, 2i + 1), then quads of rows 4q..4q + 4, per 128-bit lane.
        let mut t = [_mm256_setzero_si256(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm256_setzero_si256(); 8];
        for q in [0, 4] {
            for h in 0..2 {
                u[q + 2 * h] = _mm256_unpacklo_epi64(t[q + h], t[q + 2 + h]);
                u[q + 2 * h + 1] = _mm256_unpackhi_epi64(t[q + h], t[q + 2 + h]);
            }
        }
        // u[d] (d < 4) holds dword d (low half) and d + 4 (high half) of rows 0..4; u[4 + d]
        // the same of rows 4..8.
        let mut out = [_mm256_setzero_si256(); 8];
        for d in 0..4 {
            out[d] = _mm256_permute2x128_si256::<0x20>(u[d], u[4 + d]);
            out[d + 4] = _mm256_permute2x128_si256::<0x31>(u[d], u[4 + d]);
        }
        out
    }
}

/// [`transpose_8x8`] of block `b` of `rows ≤ 8` weight rows; missing rows read as zero.
///
/// # Safety
/// `w` points at `rows` rows of `rb` bytes with `b·32 + 32 ≤ rb`; the CPU supports avx2.
#[inline(always)]
unsafe fn load_group(w: *const u8, rb: usize, rows: usize, b: usize) -> [__m256i; 8] {
    // SAFETY: full groups read 8 rows in place; partial ones are copied to a zeroed buffer.
    unsafe {
        if rows == LANES {
            transpose_8x8(w.add(b * 32), rb)
        } else {
            let mut tmp = [0u8; LANES * 32];
            for r in 0..rows {
                std::ptr::copy_nonoverlapping(
                    w.add(r * rb + b * 32),
                    tmp.as_mut_ptr().add(r * 32),
                    32,
                );
            }
            transpose_8x8(tmp.as_ptr(), 32)
        }
    }
}

/// `{−1, 0, +1}` indexed by the low three bits of a lane: entry `i` is `(i & 3) − 1` (code 3
/// reads as 0, as in the scalar twin).
#[inline(always)]
unsafe fn weight_table() -> __m256 {
    // SAFETY: register-only AVX op, reached from AVX2 entry points.
    unsafe { _mm256_setr_ps(-1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0) }
}

/// The lane mask of group `g` of a `G`-group tile whose last group has `last` lanes.
#[inline(always)]
unsafe fn lane_mask<const G: usize>(g: usize, last: usize) -> __m256i {
    let lanes = if g + 1 == G { last } else { LANES };
    // SAFETY: register-only AVX2 ops, reached from AVX2 entry points.
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(lanes as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

/// Lanes in the last group of a `cols`-wide tile (1..=8).
#[inline(always)]
fn last_lanes(cols: usize) -> usize {
    cols - (cols - 1) / LANES * LANES
}

/// Decodes f32 weights of `cols ≤ 8·groups` rows, blocks `b0..b1`, into `panel`: vector
/// `(c − 128·b0)·groups + g` holds in lane `r` the weight of row `8g + r` at column `c`.
///
/// # Safety
/// `w` points at `cols` rows of `rb ≥ 32·b1` bytes; `panel` has `128·(b1 − b0)·groups`
/// vectors; the CPU supports avx2.
#[inline(always)]
unsafe fn f32_panel(
    w: *const u8,
    rb: usize,
    cols: usize,
    b0: usize,
    b1: usize,
    panel: *mut __m256,
) {
    let groups = cols.div_ceil(LANES);
    // SAFETY: group g reads rows 8g.. of w (fewer at the edge) and writes panel vectors below
    // 128·(b1 − b0)·groups.
    unsafe {
        let table = weight_table();
        for g in 0..groups {
            for b in b0..b1 {
                let dv = load_group(w.add(g * LANES * rb), rb, (cols - g * LANES).min(LANES), b);
                let base = (b - b0) * 128;
                for (d, &v) in dv.iter().enumerate() {
                    // Byte t, lane s of dword d is column 32s + 4d + t: shifting by 2 after
                    // each column walks (t, s) in the order of the bits.
                    let mut cur = v;
                    for t in 0..4 {
                        for s in 0..4 {
                            let at = panel.add((base + 32 * s + 4 * d + t) * groups + g);
                            _mm256_store_ps(at.cast(), _mm256_permutevar8x32_ps(table, cur));
                            cur = _mm256_srli_epi32::<2>(cur);
                        }
                    }
                }
            }
        }
    }
}

/// The f32 panel micro-kernel: `MR` rows × `G` groups over `kc` columns of a decoded panel,
/// added to the `out` tile when `load` (a later K chunk).
///
/// # Safety
/// `panel` has `kc·G` vectors; `x` has `MR` rows of stride `ldx` with `kc` readable values;
/// `out` has `MR` rows of stride `ldo` whose first `8·(G − 1) + last` values are writable.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn f32_micro<const MR: usize, const G: usize>(
    panel: *const __m256,
    kc: usize,
    x: *const f32,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    last: usize,
    load: bool,
) {
    // SAFETY: loads and stores stay inside the contract's panel, rows of x and masked lanes
    // of the out tile.
    unsafe {
        // Masked moves only for a partial last group: they cost more than plain ones.
        let full = |g: usize| g + 1 < G || last == LANES;
        let mask = lane_mask::<G>(G - 1, last);
        let mut acc = [[_mm256_setzero_ps(); G]; MR];
        if load {
            for (i, acc_i) in acc.iter_mut().enumerate() {
                for (g, a) in acc_i.iter_mut().enumerate() {
                    let at = out.add(i * ldo + g * LANES);
                    *a = if full(g) {
                        _mm256_loadu_ps(at)
                    } else {
                        _mm256_maskload_ps(at, mask)
                    };
                }
            }
        }
        for c in 0..kc {
            let mut wv = [_mm256_setzero_ps(); G];
            for (g, v) in wv.iter_mut().enumerate() {
                *v = *panel.add(c * G + g);
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let xb = _mm256_set1_ps(*x.add(i * ldx + c));
                for (a, &wg) in acc_i.iter_mut().zip(&wv) {
                    *a = _mm256_fmadd_ps(wg, xb, *a);
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (g, &a) in acc_i.iter().enumerate() {
                let at = out.add(i * ldo + g * LANES);
                if full(g) {
                    _mm256_storeu_ps(at, a)
                } else {
                    _mm256_maskstore_ps(at, mask, a)
                }
            }
        }
    }
}

/// The calling thread's panel buffer, grown to at least `lines` vectors.
///
/// The pointer stays valid until the next call on this thread: raw kernels take it once on
/// entry and call nothing that could take it again.
fn panel_buffer(lines: usize) -> *mut __m256 {
    PANELS.with_borrow_mut(|buf| {
        if buf.len() < lines {
            buf.resize(lines, Line([0.0; LANES]));
        }
        buf.as_mut_ptr().cast()
    })
}

/// The calling thread's buffer for `rows` packed chunks of x (valid as [`panel_buffer`]'s).
fn xpack_buffer(rows: usize) -> *mut f32 {
    XPACK.with_borrow_mut(|buf| {
        let lines = rows * XSTRIDE / LANES;
        if buf.len() < lines {
            buf.resize(lines, Line([0.0; LANES]));
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

/// Exact f32 over 16-column panels and 512-column chunks of K, looped as the AVX-512
/// `f32_panels`: few rows decode each panel right before all rows use it (L1); many rows
/// decode a block of [`BLOCK_PANELS`] once and pass it by [`BLOCK_ROWS`]-row blocks of x.
///
/// # Safety
/// The contract of [`crate::cpu::scalar`]; the CPU supports avx2 and fma.
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
    const LINES: usize = KC_BLOCKS * 128 * PANEL_GROUPS;
    const COLS: usize = PANEL_GROUPS * LANES;
    let panels = panel_buffer(BLOCK_PANELS * LINES);
    let one_slot = m <= PER_USE_MAX_M;
    let slot = |p: usize| if one_slot { 0 } else { p * LINES };
    let rows = if one_slot { m } else { BLOCK_ROWS };
    let xp = xpack_buffer(rows);
    for jb in (0..n).step_by(BLOCK_PANELS * COLS) {
        let nb = (n - jb).min(BLOCK_PANELS * COLS);
        for b0 in (0..rb / 32).step_by(KC_BLOCKS) {
            let b1 = (b0 + KC_BLOCKS).min(rb / 32);
            let kc = (b1 - b0) * 128;
            // SAFETY: panel p decodes rows jb + 16p.. (at most 16, inside n) of w, blocks
            // b0..b1 ≤ rb/32, into its LINES vectors of the buffer. Rows ib..ie of x, columns
            // 128·b0.. (kc of them), are copied to the packed buffer (rows ≤ its rows); each
            // tile reads its rows there and writes rows i..i + mr, columns jb..jb + nb of out.
            unsafe {
                if !one_slot {
                    for p in 0..nb.div_ceil(COLS) {
                        let cols = (nb - p * COLS).min(COLS);
                        let panel = panels.add(slot(p));
                        f32_panel(w.add((jb + p * COLS) * rb), rb, cols, b0, b1, panel);
                    }
                }
                for ib in (0..m).step_by(rows) {
                    let ie = (ib + rows).min(m);
                    for r in ib..ie {
                        let src = x.add(r * ldx + b0 * 128);
                        std::ptr::copy_nonoverlapping(src, xp.add((r - ib) * XSTRIDE), kc);
                    }
                    for p in 0..nb.div_ceil(COLS) {
                        let cols = (nb - p * COLS).min(COLS);
                        let panel = panels.add(slot(p));
                        if one_slot {
                            f32_panel(w.add((jb + p * COLS) * rb), rb, cols, b0, b1, panel);
                        }
                        let last = last_lanes(cols);
                        let mut i = ib;
                        while i < ie {
                            // Whole tiles, then one or two of at least 4 rows (8 chains).
                            let left = ie - i;
                            let mr = match left {
                                _ if left >= MR + 4 => MR,
                                _ if left > MR => left - 4,
                                _ => left,
                            };
                            if b0 > 0 {
                                let next = i + mr;
                                let o = out.wrapping_add(next * ldo + jb + p * COLS);
                                prefetch_rows(o, ldo, (ie - next).min(MR), cols * 4);
                            }
                            let xi = xp.add((i - ib) * XSTRIDE);
                            let ldx = XSTRIDE;
                            let oi = out.add(i * ldo + jb + p * COLS);
                            let load = b0 > 0;
                            macro_rules! tile {
                                ($g:literal) => {
                                    match mr {
                                        MR => f32_micro::<MR, $g>(
                                            panel, kc, xi, ldx, oi, ldo, last, load,
                                        ),
                                        5 => f32_micro::<5, $g>(
                                            panel, kc, xi, ldx, oi, ldo, last, load,
                                        ),
                                        4 => f32_micro::<4, $g>(
                                            panel, kc, xi, ldx, oi, ldo, last, load,
                                        ),
                                        3 => f32_micro::<3, $g>(
                                            panel, kc, xi, ldx, oi, ldo, last, load,
                                        ),
                                        2 => f32_micro::<2, $g>(
                                            panel, kc, xi, ldx, oi, ldo, last, load,
                                        ),
                                        _ => f32_micro::<1, $g>(
                                            panel, kc, xi, ldx, oi, ldo, last, load,
                                        ),
                                    }
                                };
                            }
                            if cols > LANES {
                                tile!(2)
                            } else {
                                tile!(1)
                            }
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
/// avx2 and fma.
#[inline(always)]
unsafe fn f32_direct_step<const MR: usize, const G: usize>(
    dv: &mut [[__m256i; 8]; G],
    table: __m256,
    x: *const f32,
    ldx: usize,
    c0: usize,
    acc: &mut [[__m256; G]; MR],
) {
    // SAFETY: the contract's reads of x; everything else is in registers.
    unsafe {
        for d in 0..8 {
            let mut idx = [[_mm256_setzero_si256(); 4]; G];
            for (ig, dg) in idx.iter_mut().zip(dv.iter()) {
                *ig = [
                    dg[d],
                    _mm256_srli_epi32::<8>(dg[d]),
                    _mm256_srli_epi32::<16>(dg[d]),
                    _mm256_srli_epi32::<24>(dg[d]),
                ];
            }
            for t in 0..4 {
                let c = c0 + 4 * d + t;
                let mut xb = [_mm256_setzero_ps(); MR];
                for (i, v) in xb.iter_mut().enumerate() {
                    *v = _mm256_set1_ps(*x.add(i * ldx + c));
                }
                for (g, ig) in idx.iter().enumerate() {
                    let wv = _mm256_permutevar8x32_ps(table, ig[t]);
                    for (acc_i, &xi) in acc.iter_mut().zip(&xb) {
                        acc_i[g] = _mm256_fmadd_ps(wv, xi, acc_i[g]);
                    }
                }
            }
        }
        for dg in dv.iter_mut() {
            for v in dg.iter_mut() {
                *v = _mm256_srli_epi32::<2>(*v);
            }
        }
    }
}

/// Exact f32 for a row or two: up to 32 columns decoded in registers, block by block, each
/// output summed in column order.
///
/// # Safety
/// `w` points at `cols ≤ 8·G` rows of `rb` bytes; `x` at `MR` rows of stride `ldx` with
/// `4·rb` values; `out` at `MR` rows of stride `ldo ≥ cols`; the CPU supports avx2 and fma.
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
    // SAFETY: group g reads rows 8g.. of w (fewer at the edge), block by block; x reads stay
    // in rows 0..MR, columns < 4·rb; stores are the masked lanes of rows 0..MR.
    unsafe {
        let table = weight_table();
        let mut acc = [[_mm256_setzero_ps(); G]; MR];
        for b in 0..rb / 32 {
            let mut dv = [[_mm256_setzero_si256(); 8]; G];
            for (g, v) in dv.iter_mut().enumerate() {
                *v = load_group(w.add(g * LANES * rb), rb, (cols - g * LANES).min(LANES), b);
            }
            // Column 32s + 4d + t is byte t of dword d, bits 2s..: columns in order walk s,
            // then d, then t; after each s every dword moves on by one code.
            for s in 0..4 {
                f32_direct_step(&mut dv, table, x, ldx, b * 128 + 32 * s, &mut acc);
            }
        }
        let last = last_lanes(cols);
        for (i, acc_i) in acc.iter().enumerate() {
            for (g, &a) in acc_i.iter().enumerate() {
                _mm256_maskstore_ps(out.add(i * ldo + g * LANES), lane_mask::<G>(g, last), a);
            }
        }
    }
}

/// Exact f32 for `m ≤ F32_DIRECT_MAX_M` rows: [`f32_direct`] over 32-column tiles.
///
/// # Safety
/// The contract of [`crate::cpu::scalar`]; `1 ≤ m ≤ 2`; the CPU supports avx2 and fma.
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
            if m == 1 {
                go!(1, g, wj, rb, cols, x, ldx, oj, ldo)
            } else {
                go!(2, g, wj, rb, cols, x, ldx, oj, ldo)
            }
        }
    }
}

/// Exact-f32 activations: decoded column panels and FMA by {−1, 0, +1} (module docs).
///
/// # Safety
/// The CPU supports avx2 and fma, and the arguments satisfy the contract of
/// [`crate::cpu::scalar`].
#[target_feature(enable = "avx2,fma")]
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
            for i in 0..m {
                std::slice::from_raw_parts_mut(out.add(i * ldo), n).fill(0.0);
            }
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

/// Largest |i16| lane of a group's W2A8 sum before it is widened: a group of at most 256
/// columns is 64 dword steps, each adding one `vpmaddubsw` pair (2 codes ≤ 2 times
/// |x| ≤ 127) to the lane: 64 × 2 × 2 × 127 = 32 512 ≤ i16::MAX.
pub(crate) const I16_GROUP_BOUND: i32 = 64 * 2 * 2 * 127;
const _: () = assert!(I16_GROUP_BOUND <= i16::MAX as i32);
const _: () = assert!(
    crate::format::GROUP_SIZES[2] / 4 == 64,
    "64 steps per largest group"
);

/// W2A8 panel rows per block and column group: one dword step per 4 columns.
const W2A8_STEPS: usize = 32;
/// Rows of x per block when the panels of a block are decoded once (W2A8): their K chunk
/// (512 int8 values each) fills 16 KiB of L1.
const W2A8_BLOCK_ROWS: usize = 32;
/// Up to this many rows each W2A8 panel is decoded right before use.
const W2A8_PER_USE_MAX_M: usize = 32;

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
    /// Scales of the tile's first weight row: column `r`, group `g` at `ws[r·count + g]`.
    ws: *const f32,
    /// W2A8: scale of the tile's first activation row (row `i` at `xs[i]`).
    xs: *const f32,
    /// W2A8: group sums of the tile's first activation row (`xsum[i·count + g]`).
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

/// Groups per row up to which scales are gathered with 32-bit lane offsets.
const GATHER_MAX_COUNT: usize = i32::MAX as usize / LANES;

/// The scales of group `g` for a `G`-group tile whose last group has `last` lanes: lane `r`
/// of vector `v` is the scale of tile column `8v + r`; lanes past the tile hold 0.
///
/// # Safety
/// `seg.ws` holds the scales of the tile's columns, `g < seg.count`; the CPU supports avx2.
#[inline(always)]
unsafe fn group_scales<const G: usize>(seg: &Seg, g: usize, last: usize) -> [__m256; G] {
    let count = seg.count;
    // SAFETY: every lane read is a scale of a tile column (masked lanes are not read).
    // (A loop, not `array::from_fn`: a closure here would not inherit the entry point's
    // target features, and its intrinsics would become calls.)
    unsafe {
        let mut out = [_mm256_setzero_ps(); G];
        for (v, o) in out.iter_mut().enumerate() {
            let base = seg.ws.add(v * LANES * count + g);
            *o = if count <= GATHER_MAX_COUNT {
                let offsets = _mm256_mullo_epi32(
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                    _mm256_set1_epi32(count as i32),
                );
                let mask = _mm256_castsi256_ps(lane_mask::<G>(v, last));
                _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), base, offsets, mask)
            } else {
                let lanes = if v + 1 == G { last } else { LANES };
                let mut vals = [0f32; LANES];
                for (r, l) in vals.iter_mut().enumerate().take(lanes) {
                    *l = *base.add(r * count);
                }
                _mm256_loadu_ps(vals.as_ptr())
            };
        }
        out
    }
}

/// A W2A8 group's products `(S − xsum[i, g]) · (xs[i] · ws[j, g])` from its i32 sums `acc`
/// (one vector per row and column group), as the scalar twin computes them.
///
/// # Safety
/// `seg` holds the tile's scales (`last` lanes in the last vector) and its rows' scales and
/// group sums, `g < seg.count`; the CPU supports avx2.
#[inline(always)]
unsafe fn scale_w2a8<const MR: usize, const G: usize>(
    acc: &[[__m256i; G]; MR],
    seg: &Seg,
    g: usize,
    last: usize,
) -> [[__m256; G]; MR] {
    // SAFETY: reads the scales and sums of the contract.
    unsafe {
        let mut t = [[_mm256_setzero_ps(); G]; MR];
        let ws = group_scales::<G>(seg, g, last);
        for (i, (t_i, acc_i)) in t.iter_mut().zip(acc).enumerate() {
            let xs = _mm256_set1_ps(*seg.xs.add(i));
            let xsum = _mm256_set1_epi32(*seg.xsum.add(i * seg.count + g));
            for ((tv, &a), &w) in t_i.iter_mut().zip(acc_i).zip(&ws) {
                let s = _mm256_cvtepi32_ps(_mm256_sub_epi32(a, xsum));
                *tv = _mm256_mul_ps(s, _mm256_mul_ps(xs, w));
            }
        }
        t
    }
}

/// An f32 group's products `P · ws[j, g]` from its column-order sums `acc`.
///
/// # Safety
/// `seg` holds the tile's scales (`last` lanes in the last vector), `g < seg.count`; the CPU
/// supports avx2.
#[inline(always)]
unsafe fn scale_f32<const MR: usize, const G: usize>(
    acc: &[[__m256; G]; MR],
    seg: &Seg,
    g: usize,
    last: usize,
) -> [[__m256; G]; MR] {
    // SAFETY: reads the scales of the contract.
    unsafe {
        let mut t = [[_mm256_setzero_ps(); G]; MR];
        let ws = group_scales::<G>(seg, g, last);
        for (t_i, acc_i) in t.iter_mut().zip(acc) {
            for ((tv, &a), &w) in t_i.iter_mut().zip(acc_i).zip(&ws) {
                *tv = _mm256_mul_ps(a, w);
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
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn fold_w2a8<const MR: usize, const G: usize>(
    acc: &[[__m256i; G]; MR],
    seg: &Seg,
    g: usize,
    out: *mut f32,
    ldo: usize,
    last: usize,
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
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn fold_f32<const MR: usize, const G: usize>(
    acc: &[[__m256; G]; MR],
    seg: &Seg,
    g: usize,
    out: *mut f32,
    ldo: usize,
    last: usize,
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
/// `out` has `MR` rows of stride `ldo` whose first `8·(G − 1) + last` values are writable;
/// the CPU supports avx2.
#[inline(always)]
unsafe fn fold_group<const MR: usize, const G: usize>(
    out: *mut f32,
    ldo: usize,
    last: usize,
    first: bool,
    t: &[[__m256; G]; MR],
) {
    // SAFETY: the contract's tile; masked moves for a partial last group.
    unsafe {
        let mask = lane_mask::<G>(G - 1, last);
        for (i, t_i) in t.iter().enumerate() {
            for (v, &t_iv) in t_i.iter().enumerate() {
                let at = out.add(i * ldo + v * LANES);
                let full = v + 1 < G || last == LANES;
                let prev = if first {
                    None
                } else if full {
                    Some(_mm256_loadu_ps(at))
                } else {
                    Some(_mm256_maskload_ps(at, mask))
                };
                let sum = prev.map_or(t_iv, |p| _mm256_add_ps(p, t_iv));
                if full {
                    _mm256_storeu_ps(at, sum)
                } else {
                    _mm256_maskstore_ps(at, mask, sum)
                }
            }
        }
    }
}

/// Decodes W2A8 codes of `cols ≤ 8·groups` rows, blocks `b0..b1`, into `panel`: vector
/// `(k4 − 32·b0)·groups + g` holds in lane `r` the four codes of row `8g + r` at columns
/// `4·k4 .. 4·k4 + 4`, one per byte (the layout of the AVX-512 `w2a8_panel`).
///
/// # Safety
/// `w` points at `cols` rows of `rb ≥ 32·b1` bytes; `panel` has `32·(b1 − b0)·groups`
/// vectors; the CPU supports avx2.
#[inline(always)]
unsafe fn w2a8_panel(
    w: *const u8,
    rb: usize,
    cols: usize,
    b0: usize,
    b1: usize,
    panel: *mut __m256i,
) {
    let groups = cols.div_ceil(LANES);
    // SAFETY: group g reads rows 8g.. of w (fewer at the edge) and writes panel vectors
    // below 32·(b1 − b0)·groups.
    unsafe {
        let m3 = _mm256_set1_epi8(3);
        for g in 0..groups {
            let rows = (cols - g * LANES).min(LANES);
            for b in b0..b1 {
                let dv = load_group(w.add(g * LANES * rb), rb, rows, b);
                let base = (b - b0) * W2A8_STEPS;
                for (d, &v) in dv.iter().enumerate() {
                    let mut cur = v;
                    for s in 0..4 {
                        let at = panel.add((base + 8 * s + d) * groups + g);
                        _mm256_store_si256(at, _mm256_and_si256(cur, m3));
                        cur = _mm256_srli_epi32::<2>(cur);
                    }
                }
            }
        }
    }
}

/// The group-scaled W2A8 micro-kernel: `MR` activation rows × `G` column groups over the
/// `k4s` dword steps of a decoded panel chunk. A group's products are summed in i16 lanes
/// ([`I16_GROUP_BOUND`]), widened once, and become `(S − xsum) · (xs · ws)`, folded into
/// the f32 `out` tile in group order.
///
/// # Safety
/// `panel` has `k4s·G` vectors; `x` has `MR` rows of stride `ldx` with `4·k4s` readable
/// values; `out` has `MR` rows of stride `ldo` whose first `8·(G − 1) + last` values are
/// writable; `seg` describes this chunk and tile; the CPU supports avx2.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn w2a8_group_micro<const MR: usize, const G: usize>(
    panel: *const __m256i,
    k4s: usize,
    x: *const i8,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    last: usize,
    seg: &Seg,
) {
    // SAFETY: loads stay inside the panel, rows of x, and the tile's scales and group sums;
    // stores are the tile's lanes.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        for (g, lo, hi) in seg.groups(4 * k4s) {
            let mut acc = [[_mm256_setzero_si256(); G]; MR];
            for k in lo / 4..hi / 4 {
                let mut q = [_mm256_setzero_si256(); G];
                for (v, qv) in q.iter_mut().enumerate() {
                    *qv = *panel.add(k * G + v);
                }
                for (i, acc_i) in acc.iter_mut().enumerate() {
                    let xb =
                        _mm256_set1_epi32(x.add(i * ldx + 4 * k).cast::<i32>().read_unaligned());
                    for (a, &qv) in acc_i.iter_mut().zip(&q) {
                        *a = _mm256_add_epi16(*a, _mm256_maddubs_epi16(qv, xb));
                    }
                }
            }
            let mut wide = [[_mm256_setzero_si256(); G]; MR];
            for (w_i, acc_i) in wide.iter_mut().zip(&acc) {
                for (w, &a) in w_i.iter_mut().zip(acc_i) {
                    *w = _mm256_madd_epi16(a, ones);
                }
            }
            fold_w2a8::<MR, G>(&wide, seg, g, out, ldo, last);
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
    panel: *const __m256,
    kc: usize,
    x: *const f32,
    ldx: usize,
    out: *mut f32,
    ldo: usize,
    last: usize,
    seg: &Seg,
) {
    // SAFETY: as in `w2a8_group_micro`.
    unsafe {
        for (g, lo, hi) in seg.groups(kc) {
            let mut acc = [[_mm256_setzero_ps(); G]; MR];
            for c in lo..hi {
                let mut wv = [_mm256_setzero_ps(); G];
                for (v, w) in wv.iter_mut().enumerate() {
                    *w = *panel.add(c * G + v);
                }
                for (i, acc_i) in acc.iter_mut().enumerate() {
                    let xb = _mm256_set1_ps(*x.add(i * ldx + c));
                    for (a, &w) in acc_i.iter_mut().zip(&wv) {
                        *a = _mm256_fmadd_ps(w, xb, *a);
                    }
                }
            }
            fold_f32::<MR, G>(&acc, seg, g, out, ldo, last);
        }
    }
}

/// One mode of the group-scaled panel driver ([`group_panels`]).
trait GroupMode {
    /// Activation element (i8 or f32).
    type X: Copy;
    /// Panel vectors per block and column group: dword steps (W2A8) or columns (f32).
    const STEPS: usize;
    /// Rows of x per block when the panels of a block are decoded once.
    const BLOCK_ROWS: usize;
    /// Up to this many rows each panel is decoded right before use.
    const PER_USE_MAX_M: usize;
    /// Decodes blocks `b0..b1` of `cols` weight rows into `panel`.
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
        last: usize,
        seg: &Seg,
    );
}

/// Group-scaled W2A8.
struct W2a8Groups;

impl GroupMode for W2a8Groups {
    type X = i8;
    const STEPS: usize = W2A8_STEPS;
    const BLOCK_ROWS: usize = W2A8_BLOCK_ROWS;
    const PER_USE_MAX_M: usize = W2A8_PER_USE_MAX_M;
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
        last: usize,
        seg: &Seg,
    ) {
        // SAFETY: forwarded contract.
        unsafe { w2a8_group_micro::<MR, G>(panel.cast(), steps, x, ldx, out, ldo, last, seg) }
    }
}

/// Group-scaled exact f32.
struct F32Groups;

impl GroupMode for F32Groups {
    type X = f32;
    const STEPS: usize = 128;
    const BLOCK_ROWS: usize = BLOCK_ROWS;
    const PER_USE_MAX_M: usize = PER_USE_MAX_M;
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
        last: usize,
        seg: &Seg,
    ) {
        // SAFETY: forwarded contract.
        unsafe { f32_group_micro::<MR, G>(panel.cast(), steps, x, ldx, out, ldo, last, seg) }
    }
}

/// Group-scaled products over 16-column panels and 512-column K chunks (whole groups of
/// 64, 128 and 256), looped as [`f32_panels`], with an f32 output tile that accumulates the
/// scaled groups in K order.
///
/// # Safety
/// The group contract of [`crate::cpu::scalar`]; the CPU supports avx2 and fma.
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
    const COLS: usize = PANEL_GROUPS * LANES;
    let blocks = rb / 32;
    if blocks == 0 || m == 0 || n == 0 {
        // No group: every output is the empty sum +0.0.
        for i in 0..m {
            // SAFETY: row i of the contract's output tile.
            unsafe { std::slice::from_raw_parts_mut(out.add(i * ldo), n).fill(0.0) };
        }
        return;
    }
    let lines = KC_BLOCKS * M::STEPS * PANEL_GROUPS;
    let panels = panel_buffer(BLOCK_PANELS * lines).cast::<Line>();
    let one_slot = m <= M::PER_USE_MAX_M;
    let slot = |p: usize| if one_slot { 0 } else { p * lines };
    let rows = if one_slot { m } else { M::BLOCK_ROWS };
    // One line of padding per packed row, as XSTRIDE; xpack_buffer has XSTRIDE floats a row.
    let xstride = KC_BLOCKS * 128 + 32 / size_of::<M::X>();
    const _: () = assert!(KC_BLOCKS * 128 + 32 <= XSTRIDE * 4);
    let xp = xpack_buffer(rows).cast::<M::X>();
    for jb in (0..n).step_by(BLOCK_PANELS * COLS) {
        let nb = (n - jb).min(BLOCK_PANELS * COLS);
        for b0 in (0..rb / 32).step_by(KC_BLOCKS) {
            let b1 = (b0 + KC_BLOCKS).min(rb / 32);
            let len = (b1 - b0) * 128;
            // SAFETY: panel p decodes rows jb + 16p.. (at most 16, inside n) of w, blocks
            // b0..b1 ≤ rb/32, into its `lines` vectors of the buffer. Rows ib..ie of x,
            // columns 128·b0.. (len of them) are copied to the packed buffer (rows ≤ its
            // rows, xstride ≥ len); each tile reads its rows there, its scales from row
            // jb + 16p of ws and its activation scales and sums from row i of xs and xsum
            // (wrapping: f32 mode passes none and never reads them), and writes rows
            // i..i + mr, columns jb..jb + nb of out.
            unsafe {
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
                for ib in (0..m).step_by(rows) {
                    let ie = (ib + rows).min(m);
                    for r in ib..ie {
                        let src = x.add(r * ldx + b0 * 128);
                        std::ptr::copy_nonoverlapping(src, xp.add((r - ib) * xstride), len);
                    }
                    for p in 0..nb.div_ceil(COLS) {
                        let cols = (nb - p * COLS).min(COLS);
                        let panel = panels.add(slot(p));
                        if one_slot {
                            M::decode(w.add((jb + p * COLS) * rb), rb, cols, b0, b1, panel);
                        }
                        let last = last_lanes(cols);
                        let mut i = ib;
                        while i < ie {
                            // Whole tiles, then one or two of at least 4 rows (8 chains).
                            let left = ie - i;
                            let mr = match left {
                                _ if left >= MR + 4 => MR,
                                _ if left > MR => left - 4,
                                _ => left,
                            };
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
                            let xi = xp.add((i - ib) * xstride);
                            let oi = out.add(i * ldo + jb + p * COLS);
                            let steps = (b1 - b0) * M::STEPS;
                            macro_rules! tile {
                                ($g:literal) => {
                                    match mr {
                                        MR => M::micro::<MR, $g>(
                                            panel, steps, xi, xstride, oi, ldo, last, &seg,
                                        ),
                                        5 => M::micro::<5, $g>(
                                            panel, steps, xi, xstride, oi, ldo, last, &seg,
                                        ),
                                        4 => M::micro::<4, $g>(
                                            panel, steps, xi, xstride, oi, ldo, last, &seg,
                                        ),
                                        3 => M::micro::<3, $g>(
                                            panel, steps, xi, xstride, oi, ldo, last, &seg,
                                        ),
                                        2 => M::micro::<2, $g>(
                                            panel, steps, xi, xstride, oi, ldo, last, &seg,
                                        ),
                                        _ => M::micro::<1, $g>(
                                            panel, steps, xi, xstride, oi, ldo, last, &seg,
                                        ),
                                    }
                                };
                            }
                            if cols > LANES {
                                tile!(2)
                            } else {
                                tile!(1)
                            }
                            i += mr;
                        }
                    }
                }
            }
        }
    }
}

/// Group-scaled exact f32 for a row or two: [`f32_direct`] with each group's column-order
/// sum scaled and folded into `out` where the group ends (every multiple of the group size,
/// and the end of a ragged last group).
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
    let last = last_lanes(cols);
    let kp = 4 * rb;
    // SAFETY: as in `f32_direct`; the fold writes the tile's lanes of rows 0..MR.
    unsafe {
        let table = weight_table();
        let mut acc = [[_mm256_setzero_ps(); G]; MR];
        for b in 0..rb / 32 {
            let mut dv = [[_mm256_setzero_si256(); 8]; G];
            for (g, v) in dv.iter_mut().enumerate() {
                *v = load_group(w.add(g * LANES * rb), rb, (cols - g * LANES).min(LANES), b);
            }
            for s in 0..4 {
                f32_direct_step(&mut dv, table, x, ldx, b * 128 + 32 * s, &mut acc);
                let end = b * 128 + 32 * (s + 1);
                if group_ends(end, seg.size, kp) {
                    let g = (end - 1) / seg.size;
                    if g < seg.count {
                        fold_f32::<MR, G>(&acc, seg, g, out, ldo, last);
                    }
                    acc = [[_mm256_setzero_ps(); G]; MR];
                }
            }
        }
    }
}

/// Group-scaled W2A8 with `vpmaddubsw` (group contract of [`crate::cpu::scalar`]).
///
/// # Safety
/// The CPU supports avx2 and fma, and the arguments satisfy the group contract of
/// [`crate::cpu::scalar`].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn w2a8_group(
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
    unsafe { group_panels::<W2a8Groups>(w, row_bytes, n, x, ldx, m, out, ldo, gr) }
}

/// Group-scaled exact f32 (group contract of [`crate::cpu::scalar`]).
///
/// # Safety
/// The CPU supports avx2 and fma, and the arguments satisfy the group contract of
/// [`crate::cpu::scalar`].
#[target_feature(enable = "avx2,fma")]
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
            return group_panels::<F32Groups>(w, row_bytes, n, x, ldx, m, out, ldo, gr);
        }
        // (A plain loop: a closure would not inherit this entry point's target features.)
        for j0 in (0..n).step_by(DIRECT_GROUPS * LANES) {
            let cols = (n - j0).min(DIRECT_GROUPS * LANES);
            let seg = Seg {
                c0: 0,
                size: gr.size,
                count: gr.count,
                ws: gr.ws.add(j0 * gr.count),
                xs: gr.xs,
                xsum: gr.xsum,
            };
            let (wj, oj, seg) = (w.add(j0 * row_bytes), out.add(j0), &seg);
            macro_rules! go {
                ($mr:literal) => {
                    match cols.div_ceil(LANES) {
                        4 => f32_group_direct::<$mr, 4>(wj, row_bytes, cols, x, ldx, oj, ldo, seg),
                        3 => f32_group_direct::<$mr, 3>(wj, row_bytes, cols, x, ldx, oj, ldo, seg),
                        2 => f32_group_direct::<$mr, 2>(wj, row_bytes, cols, x, ldx, oj, ldo, seg),
                        _ => f32_group_direct::<$mr, 1>(wj, row_bytes, cols, x, ldx, oj, ldo, seg),
                    }
                };
            }
            if m == 1 { go!(1) } else { go!(2) }
        }
    }
}
