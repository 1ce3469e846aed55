//! GPU kernels written in CubeCL: one source for every cubecl runtime (wgpu/Vulkan/Metal,
//! CUDA where it builds). Nothing here names a runtime; the caller hands in a client.
//!
//! The weights stay in the packed `I2` layout on the device (see [`crate::format::i2`]): a row
//! is `ceil(k/128)` blocks of 8 little-endian u32 words, byte `j` of a block holding columns
//! `j, j+32, j+64, j+96` in bit pairs 0–1, 2–3, 4–5, 6–7 (code = weight + 1). Shifting a word
//! right by `2s` and masking with `0x03030303` gives the codes of four *consecutive* columns
//! `32s + 4w .. 32s + 4w + 3` of word `w`, one per byte — exactly the layout of four int8
//! activations packed in a word, so the W2A8 inner loop is one `dp4a` per 4 weights:
//! `Σ x·code − Σ x = Σ x·w`, the same identity the CPU kernels use.
//!
//! Kernels:
//! * [`quantize_rows_kernel()`]: int8 per-row activation quantization, bit-compatible with
//!   [`crate::QuantizedActivations`] (same rounding, same scale, same row sums);
//! * GEMV (`m` small): 32 lanes per weight row, the activation chunk staged in shared memory,
//!   vectorized loads of 4 packed words (64 weights) per lane, 1, 2 or 4 weight rows per row
//!   of lanes;
//! * GEMM (`m` large): 32×32 or 64×64 output tiles, a 128-column block of weights and
//!   activations staged in shared memory per step, 4×4 outputs per unit;
//! * conv2d: a direct convolution on the packed filters, one output per unit (16×16 units
//!   over positions × channels, one cube layer per image), zero padding, stride, dilation and
//!   groups; the int8 input quantized once per image by the row quantizer (one row per image).
//!   Cube shapes are [`ConvVariant`]s, picked by [`ConvStrategy`] (autotune included). Not
//!   yet tiled through shared memory: tuning that needs a GPU to measure on.
//!
//! All exist for int8 activations (integer accumulation, exact) and for float activations
//! (`f32`/`f16` in, `f32` accumulation), and all take per-tensor, per-row or group scales
//! ([`DeviceMatrix::group_size`]: one scale per row and 64/128/256 columns). With group scales
//! each group's sum (exact `i32` for W2A8: the codes as signed bytes, so no row-sum correction
//! is needed) is multiplied by its scale and the groups are added in f32 — the CPU scalar twin's
//! arithmetic, in another f32 order.
//!
//! The GEMV/GEMM shapes are the [`Variant`]s; [`Strategy::Autotune`] lets CubeCL's autotuner
//! time them all on the device the first time a product shape is seen and keep the fastest
//! (per device, per [`TuneKey`]), the way Burn's own matmul picks its kernels.

use cubecl::prelude::*;
use cubecl::server::Handle;
use cubecl::tune::{LocalTuner, Tunable, TunableSet, local_tuner};

use crate::format::i2;

mod conv;
pub use conv::{
    ConvStrategy, ConvTuneKey, ConvVariant, conv2d_float, conv2d_float_kernel, conv2d_w2a8,
    conv2d_w2a8_kernel, tuned_conv2d_float, tuned_conv2d_w2a8,
};

/// Lanes cooperating on one weight row in the GEMV kernels.
const LANES: usize = 32;
/// Rows of lanes per GEMV cube.
const LANE_ROWS: usize = 8;
/// I2 blocks (128 columns each) of activations staged per GEMV step.
const CHUNK_BLOCKS: usize = 16;
/// Packed words loaded per vector.
const VECTOR: usize = 4;
/// Units per quantization cube.
const QUANT_UNITS: usize = 256;
/// `log2(QUANT_UNITS)`: steps of the tree reductions.
const QUANT_STEPS: usize = 8;

/// Columns per I2 block.
pub(crate) const BLOCK: usize = 128;
/// Activation words (4 int8 each) per block.
const BLOCK_UNITS: usize = 32;
/// Packed words per block.
pub(crate) const BLOCK_WORDS: usize = 8;
/// Columns one bit pair of a block's words covers.
pub(crate) const SLICE: usize = 32;

/// Rounds half away from zero, exactly as `f32::round` does (`v − floor|v|` is exact in f32).
#[cube]
fn round_half_away(v: f32) -> f32 {
    let a = v.abs();
    let f = a.floor();
    let r = f + select(a - f >= 0.5, 1.0f32, 0.0f32);
    select(v < 0.0, -r, r)
}

/// Per-row int8 quantization: one cube per row. Writes the packed activations
/// (`kp/4` i32 words per row, columns `k..kp` zero), `amax/127` per row and `Σ q` per row.
/// A row holding NaN or ±Inf gets a NaN scale, so every output it feeds is NaN.
#[cube(launch_unchecked)]
pub fn quantize_rows_kernel<F: Float>(
    x: &[F],
    q: &mut [i32],
    scales: &mut [f32],
    sums: &mut [i32],
    m: usize,
    k: usize,
    row_units: usize,
) {
    // A 2-D grid of cubes, one per row: more rows than one grid dimension allows still fit.
    let row = (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) as usize;
    if row >= m {
        // Uniform across the cube, so no unit is left waiting at a barrier.
        terminate!();
    }
    let t = UNIT_POS as usize;
    let mut amax = 0.0f32;
    let mut bad = 0u32;
    let mut c = t;
    while c < k {
        let a = f32::cast_from(x[row * k + c]).abs();
        // NaN fails every comparison: flag it (and ±Inf) separately.
        bad = select(a <= 3.402_823_5e38f32, bad, 1u32);
        amax = select(a > amax, a, amax);
        c += QUANT_UNITS;
    }
    let mut red_f = Shared::<[f32]>::new_slice(QUANT_UNITS);
    let mut red_u = Shared::<[u32]>::new_slice(QUANT_UNITS);
    red_f[t] = amax;
    red_u[t] = bad;
    sync_cube();
    // Tree reduction, unrolled: `s` is a compile-time stride in each step.
    #[unroll]
    for step in 1..=QUANT_STEPS {
        let s = QUANT_UNITS >> step;
        if t < s {
            red_f[t] = select(red_f[t + s] > red_f[t], red_f[t + s], red_f[t]);
            red_u[t] |= red_u[t + s];
        }
        sync_cube();
    }
    let amax = red_f[0usize];
    let bad = red_u[0usize];
    sync_cube();
    let inv = select(amax > 0.0, 127.0f32 / amax, 0.0f32);

    let mut sum = 0i32;
    let mut u = t;
    while u < row_units {
        let mut word = 0i32;
        #[unroll]
        for b in 0..4usize {
            let col = u * 4 + b;
            let mut v = 0.0f32;
            if col < k {
                v = f32::cast_from(x[row * k + col]);
            }
            let r = round_half_away(v * inv).clamp(-127.0f32, 127.0f32);
            let qv = i32::cast_from(r);
            sum += qv;
            word |= (qv & 255i32) << (8 * b as i32);
        }
        q[row * row_units + u] = word;
        u += QUANT_UNITS;
    }
    let mut red_i = Shared::<[i32]>::new_slice(QUANT_UNITS);
    red_i[t] = sum;
    sync_cube();
    #[unroll]
    for step in 1..=QUANT_STEPS {
        let s = QUANT_UNITS >> step;
        if t < s {
            red_i[t] += red_i[t + s];
        }
        sync_cube();
    }
    if t == 0 {
        sums[row] = red_i[0usize];
        let scale = amax / 127.0f32;
        // A quiet NaN built from a runtime value, so no shader compiler folds it away.
        let nan = f32::reinterpret(0x7fc0_0000u32 | bad);
        scales[row] = select(bad == 0u32, scale, nan);
    }
}

/// The codes of the four consecutive columns `32s + 4w ..` of packed word `w`, one per byte.
#[cube]
fn codes(word: u32, #[comptime] s: usize) -> u32 {
    (word >> (2 * s as u32)) & 0x0303_0303u32
}

/// Writes one W2A8 result: raw `Σ x·w` (its bits, for exactness tests) or scaled.
#[cube]
pub(crate) fn store_w2a8<O: Float>(
    out: &mut [O],
    index: usize,
    acc: i32,
    sum: i32,
    xs: f32,
    ws: f32,
    #[comptime] raw: bool,
) {
    let v = acc - sum;
    if raw {
        out[index] = O::reinterpret(v);
    } else {
        out[index] = O::cast_from(f32::cast_from(v) * (xs * ws));
    }
}

/// The codes of [`codes()`] as signed bytes `code − 1` (−1, 0, +1): `0x80 | c` minus one
/// per byte never borrows across bytes, and the XOR restores the sign bit.
#[cube]
fn signed_codes(word: u32, #[comptime] s: usize) -> i32 {
    i32::reinterpret(((codes(word, s) | 0x8080_8080u32) - 0x0101_0101u32) ^ 0x8080_8080u32)
}

/// The group scale of weight row `j` at column `col` (`groups` scales per row, `group`
/// columns each). Columns in the padding past `k` (zero weights) read the row's last group.
#[cube]
pub(crate) fn group_scale(
    ws: &[f32],
    j: usize,
    col: usize,
    groups: usize,
    #[comptime] group: usize,
) -> f32 {
    let g = col / group;
    ws[j * groups + select(g < groups, g, groups - 1)]
}

/// The scale of weight row `j`.
#[cube]
pub(crate) fn row_scale(ws: &[f32], j: usize, #[comptime] per_channel: bool) -> f32 {
    let mut s = ws[0usize];
    if per_channel {
        s = ws[j];
    }
    s
}

/// GEMV epilogue: the sum over the 32 lanes of lane row `ly` of their `acc[r]`, returned to
/// lane `r` for `r < rows` (other lanes get zero). Every unit of the cube must call it.
#[cube]
fn lane_totals<T: Numeric>(acc: &Array<T>, lane: usize, ly: usize, #[comptime] rows: usize) -> T {
    let mut red = Shared::<[T]>::new_slice(comptime!(LANES * LANE_ROWS * rows));
    #[unroll]
    for r in 0..rows {
        red[(ly * LANES + lane) * rows + r] = acc[r];
    }
    sync_cube();
    let mut total = T::from_int(0);
    if lane < rows {
        for l in 0..LANES {
            total += red[(ly * LANES + l) * rows + lane];
        }
    }
    total
}

/// W2A8 GEMV: cube `(bx, i)` computes activation row `i` against weight rows
/// `bx·8·rows .. (bx+1)·8·rows` (8 rows of 32 lanes, `rows` weight rows per lane row).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn gemv_w2a8_kernel<O: Float, N: Size>(
    x: &[Vector<i32, N>],
    sums: &[i32],
    xs: &[f32],
    w: &[Vector<u32, N>],
    ws: &[f32],
    out: &mut [O],
    n_rows: usize,
    row_words: usize,
    k_groups: usize,
    #[comptime] per_channel: bool,
    #[comptime] raw: bool,
    #[comptime] rows: usize,
    #[comptime] group: usize,
) {
    let lane = UNIT_POS_X as usize;
    let ly = UNIT_POS_Y as usize;
    let t = UNIT_POS as usize;
    let i = CUBE_POS_Y as usize;
    let row0 = (CUBE_POS_X as usize * LANE_ROWS + ly) * rows;
    let row_units = row_words * 4;

    let mut acc = Array::<i32>::new(rows);
    // With group scales: Σ over groups of (the group's exact i32 sum) · its scale, in f32.
    let mut accf = Array::<f32>::new(rows);
    #[unroll]
    for r in 0..rows {
        acc[r] = 0i32;
        accf[r] = 0.0f32;
    }
    let mut stage = Shared::<[i32]>::new_slice(CHUNK_BLOCKS * BLOCK_UNITS);
    let blocks = row_words / BLOCK_WORDS;
    let mut b0 = 0usize;
    while b0 < blocks {
        let nb = select(blocks - b0 < CHUNK_BLOCKS, blocks - b0, CHUNK_BLOCKS);
        // Stage the chunk's activations (nb·32 words) with vector loads.
        let vecs = nb * BLOCK_UNITS / N::value();
        let mut v = t;
        while v < vecs {
            let val = x[(i * row_units + b0 * BLOCK_UNITS) / N::value() + v];
            #[unroll]
            for e in 0..N::value() {
                stage[v * N::value() + e] = val.extract(e);
            }
            v += LANES * LANE_ROWS;
        }
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let j = row0 + r;
            if j < n_rows {
                let row_vecs = nb * BLOCK_WORDS / N::value();
                let base = (j * row_words + b0 * BLOCK_WORDS) / N::value();
                let mut a = acc[r];
                let mut af = accf[r];
                let mut v = lane;
                while v < row_vecs {
                    let wv = w[base + v];
                    let word0 = v * N::value();
                    let blk = word0 / BLOCK_WORDS;
                    let wi = word0 % BLOCK_WORDS;
                    if group > 0 {
                        // Columns 0–63 of the block (bit pairs 0, 1) and 64–127 (2, 3): a
                        // group boundary (every 64 columns at most) never splits a half.
                        let mut lo = 0i32;
                        let mut hi = 0i32;
                        #[unroll]
                        for e in 0..N::value() {
                            let word = wv.extract(e);
                            #[unroll]
                            for s in 0..4usize {
                                let xa = stage[blk * BLOCK_UNITS + 8 * s + wi + e];
                                if s < 2 {
                                    lo = dp4a(xa, signed_codes(word, s), lo);
                                } else {
                                    hi = dp4a(xa, signed_codes(word, s), hi);
                                }
                            }
                        }
                        let col = (b0 + blk) * BLOCK;
                        af += f32::cast_from(lo) * group_scale(ws, j, col, k_groups, group)
                            + f32::cast_from(hi) * group_scale(ws, j, col + 64, k_groups, group);
                    } else {
                        #[unroll]
                        for e in 0..N::value() {
                            let word = wv.extract(e);
                            #[unroll]
                            for s in 0..4usize {
                                let xa = stage[blk * BLOCK_UNITS + 8 * s + wi + e];
                                a = dp4a(xa, i32::cast_from(codes(word, s)), a);
                            }
                        }
                    }
                    v += LANES;
                }
                acc[r] = a;
                accf[r] = af;
            }
        }
        sync_cube();
        b0 += CHUNK_BLOCKS;
    }

    let j = row0 + lane;
    if group > 0 {
        let total = lane_totals::<f32>(&accf, lane, ly, rows);
        if lane < rows && j < n_rows {
            out[i * n_rows + j] = O::cast_from(total * xs[i]);
        }
    } else {
        let total = lane_totals::<i32>(&acc, lane, ly, rows);
        if lane < rows && j < n_rows {
            let wsj = row_scale(ws, j, per_channel);
            store_w2a8::<O>(out, i * n_rows + j, total, sums[i], xs[i], wsj, raw);
        }
    }
}

/// Float GEMV: as [`gemv_w2a8_kernel()`], the activations staged as floats and the ternary
/// weights applied as `x · (code − 1)` in f32.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn gemv_float_kernel<F: Float, N: Size>(
    x: &[F],
    w: &[Vector<u32, N>],
    ws: &[f32],
    out: &mut [F],
    n_rows: usize,
    k: usize,
    row_words: usize,
    k_groups: usize,
    #[comptime] per_channel: bool,
    #[comptime] rows: usize,
    #[comptime] group: usize,
) {
    let lane = UNIT_POS_X as usize;
    let ly = UNIT_POS_Y as usize;
    let t = UNIT_POS as usize;
    let i = CUBE_POS_Y as usize;
    let row0 = (CUBE_POS_X as usize * LANE_ROWS + ly) * rows;

    let mut acc = Array::<f32>::new(rows);
    #[unroll]
    for r in 0..rows {
        acc[r] = 0.0f32;
    }
    let mut stage = Shared::<[f32]>::new_slice(CHUNK_BLOCKS * BLOCK);
    let blocks = row_words / BLOCK_WORDS;
    let mut b0 = 0usize;
    while b0 < blocks {
        let nb = select(blocks - b0 < CHUNK_BLOCKS, blocks - b0, CHUNK_BLOCKS);
        let cols = nb * BLOCK;
        let mut c = t;
        while c < cols {
            let col = b0 * BLOCK + c;
            let mut v = 0.0f32;
            if col < k {
                v = f32::cast_from(x[i * k + col]);
            }
            stage[c] = v;
            c += LANES * LANE_ROWS;
        }
        sync_cube();
        #[unroll]
        for r in 0..rows {
            let j = row0 + r;
            if j < n_rows {
                let row_vecs = nb * BLOCK_WORDS / N::value();
                let base = (j * row_words + b0 * BLOCK_WORDS) / N::value();
                let mut a = acc[r];
                let mut v = lane;
                while v < row_vecs {
                    let wv = w[base + v];
                    let word0 = v * N::value();
                    let blk = word0 / BLOCK_WORDS;
                    let wi = word0 % BLOCK_WORDS;
                    // With group scales, the two 64-column halves of the block are summed
                    // apart and scaled (see the W2A8 GEMV).
                    let mut lo = 0.0f32;
                    let mut hi = 0.0f32;
                    #[unroll]
                    for e in 0..N::value() {
                        let word = wv.extract(e);
                        #[unroll]
                        for s in 0..4usize {
                            let cs = codes(word, s);
                            let col = blk * BLOCK + 32 * s + 4 * (wi + e);
                            #[unroll]
                            for b in 0..4usize {
                                let code = (cs >> (8 * b as u32)) & 3u32;
                                let term = stage[col + b] * (f32::cast_from(code) - 1.0f32);
                                if group == 0 {
                                    a += term;
                                } else if s < 2 {
                                    lo += term;
                                } else {
                                    hi += term;
                                }
                            }
                        }
                    }
                    if group > 0 {
                        let c0 = (b0 + blk) * BLOCK;
                        a += lo * group_scale(ws, j, c0, k_groups, group)
                            + hi * group_scale(ws, j, c0 + 64, k_groups, group);
                    }
                    v += LANES;
                }
                acc[r] = a;
            }
        }
        sync_cube();
        b0 += CHUNK_BLOCKS;
    }

    let total = lane_totals::<f32>(&acc, lane, ly, rows);
    let j = row0 + lane;
    if lane < rows && j < n_rows {
        if group > 0 {
            out[i * n_rows + j] = F::cast_from(total);
        } else {
            out[i * n_rows + j] = F::cast_from(total * row_scale(ws, j, per_channel));
        }
    }
}

/// Stages one 128-column block of `4·side` weight rows (8 words each) into shared memory.
/// Rows past `n` read as zero codes; their outputs are never written.
#[cube]
fn stage_weights(
    w: &[u32],
    stage: &mut Shared<[u32]>,
    n0: usize,
    n: usize,
    row_words: usize,
    blk: usize,
    #[comptime] side: usize,
) {
    let t = UNIT_POS as usize;
    let units = comptime!(side * side);
    let tile = comptime!(4 * side);
    let mut idx = t;
    while idx < tile * BLOCK_WORDS {
        let r = idx / BLOCK_WORDS;
        let wi = idx % BLOCK_WORDS;
        let j = n0 + r;
        let mut v = 0u32;
        if j < n {
            v = w[j * row_words + blk * BLOCK_WORDS + wi];
        }
        stage[idx] = v;
        idx += units;
    }
}

/// W2A8 GEMM with `side × side` units per cube: cube `(bx, by)` computes the `T × T` output
/// tile (`T = 4·side`) at rows `by·T`, columns `bx·T`; unit `(tx, ty)` owns rows
/// `ty + side·a` and columns `tx + side·b`, `a, b < 4`.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn gemm_w2a8_kernel<O: Float>(
    x: &[i32],
    sums: &[i32],
    xs: &[f32],
    w: &[u32],
    ws: &[f32],
    out: &mut [O],
    m: usize,
    n: usize,
    row_words: usize,
    k_groups: usize,
    #[comptime] per_channel: bool,
    #[comptime] raw: bool,
    #[comptime] side: usize,
    #[comptime] group: usize,
) {
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let t = UNIT_POS as usize;
    let units = comptime!(side * side);
    let tile = comptime!(4 * side);
    let m0 = CUBE_POS_Y as usize * tile;
    let n0 = CUBE_POS_X as usize * tile;
    let row_units = row_words * 4;

    let mut wt = Shared::<[u32]>::new_slice(comptime!(tile * BLOCK_WORDS));
    let mut xt = Shared::<[i32]>::new_slice(comptime!(tile * BLOCK_UNITS));
    let mut acc = Array::<i32>::new(16usize);
    // With group scales: the block's two 64-column halves as exact i32 sums (`acc` and
    // `hi`), folded into `accf` with their scales after each block.
    let mut hi = Array::<i32>::new(16usize);
    let mut accf = Array::<f32>::new(16usize);
    #[unroll]
    for u in 0..16usize {
        acc[u] = 0i32;
        hi[u] = 0i32;
        accf[u] = 0.0f32;
    }
    let mut wc = Array::<i32>::new(4usize);
    let blocks = row_words / BLOCK_WORDS;
    for blk in 0..blocks {
        stage_weights(w, &mut wt, n0, n, row_words, blk, side);
        let mut idx = t;
        while idx < tile * BLOCK_UNITS {
            let r = idx / BLOCK_UNITS;
            let u = idx % BLOCK_UNITS;
            let i = m0 + r;
            let mut v = 0i32;
            if i < m {
                v = x[i * row_units + blk * BLOCK_UNITS + u];
            }
            xt[idx] = v;
            idx += units;
        }
        sync_cube();
        for wi in 0..BLOCK_WORDS {
            #[unroll]
            for s in 0..4usize {
                #[unroll]
                for b in 0..4usize {
                    let word = wt[(tx + side * b) * BLOCK_WORDS + wi];
                    if group > 0 {
                        wc[b] = signed_codes(word, s);
                    } else {
                        wc[b] = i32::cast_from(codes(word, s));
                    }
                }
                #[unroll]
                for a in 0..4usize {
                    let xa = xt[(ty + side * a) * BLOCK_UNITS + 8 * s + wi];
                    #[unroll]
                    for b in 0..4usize {
                        if group > 0 && s >= 2 {
                            hi[a * 4 + b] = dp4a(xa, wc[b], hi[a * 4 + b]);
                        } else {
                            acc[a * 4 + b] = dp4a(xa, wc[b], acc[a * 4 + b]);
                        }
                    }
                }
            }
        }
        if group > 0 {
            #[unroll]
            for b in 0..4usize {
                let j = n0 + tx + side * b;
                let jr = select(j < n, j, n - 1);
                let s_lo = group_scale(ws, jr, blk * BLOCK, k_groups, group);
                let s_hi = group_scale(ws, jr, blk * BLOCK + 64, k_groups, group);
                #[unroll]
                for a in 0..4usize {
                    let u = a * 4 + b;
                    accf[u] += f32::cast_from(acc[u]) * s_lo + f32::cast_from(hi[u]) * s_hi;
                    acc[u] = 0i32;
                    hi[u] = 0i32;
                }
            }
        }
        sync_cube();
    }
    #[unroll]
    for a in 0..4usize {
        let i = m0 + ty + side * a;
        #[unroll]
        for b in 0..4usize {
            let j = n0 + tx + side * b;
            if i < m && j < n {
                if group > 0 {
                    out[i * n + j] = O::cast_from(accf[a * 4 + b] * xs[i]);
                } else {
                    let wsj = row_scale(ws, j, per_channel);
                    store_w2a8::<O>(out, i * n + j, acc[a * 4 + b], sums[i], xs[i], wsj, raw);
                }
            }
        }
    }
}

/// Float GEMM: the tiling of [`gemm_w2a8_kernel()`] with float activations. Each 128-column
/// block is staged as its four 32-column slices (bit pair `s` of every word covers slice `s`),
/// so shared memory holds `64 × 32` f32 values plus the block's weights (64 tile): 10 KiB, inside the
/// 16 KiB every WebGPU device offers.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn gemm_float_kernel<F: Float>(
    x: &[F],
    w: &[u32],
    ws: &[f32],
    out: &mut [F],
    m: usize,
    n: usize,
    k: usize,
    row_words: usize,
    k_groups: usize,
    #[comptime] per_channel: bool,
    #[comptime] side: usize,
    #[comptime] group: usize,
) {
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let t = UNIT_POS as usize;
    let units = comptime!(side * side);
    let tile = comptime!(4 * side);
    let m0 = CUBE_POS_Y as usize * tile;
    let n0 = CUBE_POS_X as usize * tile;

    let mut wt = Shared::<[u32]>::new_slice(comptime!(tile * BLOCK_WORDS));
    let mut xt = Shared::<[f32]>::new_slice(comptime!(tile * SLICE));
    let mut acc = Array::<f32>::new(16usize);
    // With group scales: one 32-column slice's sums, scaled into `acc` after each slice.
    let mut part = Array::<f32>::new(16usize);
    #[unroll]
    for u in 0..16usize {
        acc[u] = 0.0f32;
        part[u] = 0.0f32;
    }
    let mut wc = Array::<u32>::new(4usize);
    let blocks = row_words / BLOCK_WORDS;
    for blk in 0..blocks {
        stage_weights(w, &mut wt, n0, n, row_words, blk, side);
        #[unroll]
        for s in 0..4usize {
            let mut idx = t;
            while idx < tile * SLICE {
                let r = idx / SLICE;
                let c = idx % SLICE;
                let i = m0 + r;
                let col = blk * BLOCK + SLICE * s + c;
                let mut v = 0.0f32;
                if i < m && col < k {
                    v = f32::cast_from(x[i * k + col]);
                }
                xt[idx] = v;
                idx += units;
            }
            sync_cube();
            for wi in 0..BLOCK_WORDS {
                #[unroll]
                for b in 0..4usize {
                    wc[b] = codes(wt[(tx + side * b) * BLOCK_WORDS + wi], s);
                }
                #[unroll]
                for e in 0..4usize {
                    let c = 4 * wi + e;
                    #[unroll]
                    for a in 0..4usize {
                        let xa = xt[(ty + side * a) * SLICE + c];
                        #[unroll]
                        for b in 0..4usize {
                            let code = (wc[b] >> (8 * e as u32)) & 3u32;
                            let term = xa * (f32::cast_from(code) - 1.0f32);
                            if group > 0 {
                                part[a * 4 + b] += term;
                            } else {
                                acc[a * 4 + b] += term;
                            }
                        }
                    }
                }
            }
            if group > 0 {
                #[unroll]
                for b in 0..4usize {
                    let j = n0 + tx + side * b;
                    let jr = select(j < n, j, n - 1);
                    let sc = group_scale(ws, jr, blk * BLOCK + SLICE * s, k_groups, group);
                    #[unroll]
                    for a in 0..4usize {
                        acc[a * 4 + b] += part[a * 4 + b] * sc;
                        part[a * 4 + b] = 0.0f32;
                    }
                }
            }
            sync_cube();
        }
    }
    #[unroll]
    for a in 0..4usize {
        let i = m0 + ty + side * a;
        #[unroll]
        for b in 0..4usize {
            let j = n0 + tx + side * b;
            if i < m && j < n {
                if group > 0 {
                    out[i * n + j] = F::cast_from(acc[a * 4 + b]);
                } else {
                    out[i * n + j] = F::cast_from(acc[a * 4 + b] * row_scale(ws, j, per_channel));
                }
            }
        }
    }
}

/// One launch configuration of the matmul kernels: the candidates [`Strategy::Autotune`]
/// measures. Every variant computes the same W2A8 integer sums bit for bit; float-activation
/// results differ between variants only in the order of the f32 accumulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// GEMV: 32 lanes per weight row, 8 lane rows per cube, 1 weight row per lane row
    /// (8 rows per cube: the most cubes, for devices with many cores).
    Gemv1,
    /// GEMV with 2 weight rows per lane row (16 rows per cube).
    Gemv2,
    /// GEMV with 4 weight rows per lane row (32 rows per cube: the activation chunk staged once
    /// serves the most rows).
    Gemv4,
    /// Tiled GEMM, 32 × 32 output tiles (8 × 8 units, 4 × 4 outputs each).
    Gemm32,
    /// Tiled GEMM, 64 × 64 output tiles (16 × 16 units, 4 × 4 outputs each).
    Gemm64,
}

impl Variant {
    /// Every variant, in the order autotune measures them.
    pub const ALL: [Variant; 5] = [
        Variant::Gemv1,
        Variant::Gemv2,
        Variant::Gemv4,
        Variant::Gemm32,
        Variant::Gemm64,
    ];

    /// A stable name (autotune results are recorded under it).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Gemv1 => "gemv-rows1",
            Variant::Gemv2 => "gemv-rows2",
            Variant::Gemv4 => "gemv-rows4",
            Variant::Gemm32 => "gemm-tile32",
            Variant::Gemm64 => "gemm-tile64",
        }
    }

    /// Weight rows per lane row of a GEMV variant; `None` for GEMM.
    fn gemv_rows(self) -> Option<usize> {
        match self {
            Variant::Gemv1 => Some(1),
            Variant::Gemv2 => Some(2),
            Variant::Gemv4 => Some(4),
            Variant::Gemm32 | Variant::Gemm64 => None,
        }
    }

    /// Units per cube side of a GEMM variant (the tile is 4 × that); `None` for GEMV.
    fn gemm_side(self) -> Option<usize> {
        match self {
            Variant::Gemm32 => Some(8),
            Variant::Gemm64 => Some(16),
            _ => None,
        }
    }
}

impl core::fmt::Display for Variant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.pad(self.name())
    }
}

/// How a product picks its kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// A fixed rule: [`Variant::Gemv4`] for `m ≤` [`GEMV_MAX_M`], [`Variant::Gemm64`] above.
    #[default]
    Auto,
    /// CubeCL's autotuner: on the first product of a shape (`m` rounded up to a power of two,
    /// exact `n` and `k`, the output type and scale layout) every [`Variant`] whose grid fits
    /// the device (the GEMV ones for `m ≤ 64` only) is timed on the device and the fastest is
    /// used from then on, per device (see [`tuned_w2a8`]).
    Autotune,
    /// Always this variant.
    Fixed(Variant),
}

/// Largest `m` [`Strategy::Auto`] sends to the GEMV kernel.
pub const GEMV_MAX_M: usize = 8;

impl Strategy {
    /// The variant of a non-autotuned strategy for `m` activation rows.
    fn variant(self, m: usize) -> Variant {
        match self {
            Strategy::Auto | Strategy::Autotune if m <= GEMV_MAX_M => Variant::Gemv4,
            Strategy::Auto | Strategy::Autotune => Variant::Gemm64,
            Strategy::Fixed(v) => v,
        }
    }
}

/// A packed `[n, k]` ternary matrix on the device: `n · padded_k(k)/16` u32 words (the bytes of
/// [`crate::PackedI2::data`]) and 1 (per tensor) or `n` (per row) f32 scales.
#[derive(Debug, Clone)]
pub struct DeviceMatrix {
    /// The packed words.
    pub words: Handle,
    /// The scales.
    pub scales: Handle,
    /// Rows.
    pub n: usize,
    /// Logical columns.
    pub k: usize,
    /// Whether `scales` holds one value per row.
    pub per_row: bool,
    /// Columns per scale group (64, 128 or 256) when `scales` holds `n · ceil(k / group_size)`
    /// values, row-major (see [`crate::Scales::PerGroup`]); 0 for per-tensor or per-row scales.
    pub group_size: usize,
}

impl DeviceMatrix {
    /// Packed u32 words per row.
    pub fn row_words(&self) -> usize {
        row_words(self.k)
    }

    /// Scale groups per row (1 without group scales, at least 1 otherwise).
    pub fn groups(&self) -> usize {
        if self.group_size == 0 {
            1
        } else {
            self.k.div_ceil(self.group_size).max(1)
        }
    }

    /// How many scales the kernels read.
    pub(crate) fn scale_count(&self) -> usize {
        if self.group_size > 0 {
            self.n * self.k.div_ceil(self.group_size)
        } else if self.per_row {
            self.n
        } else {
            1
        }
    }

    /// Panics naming the value unless the group size is 0, 64, 128 or 256.
    pub(crate) fn check_group(&self) {
        assert!(
            self.group_size == 0 || crate::format::GROUP_SIZES.contains(&self.group_size),
            "ternary GPU kernel: group size {} is not 64, 128 or 256",
            self.group_size
        );
    }
}

/// Packed u32 words per row of a `k`-column matrix.
///
/// # Panics
/// If `k` is so large that the padded row overflows `usize`.
pub fn row_words(k: usize) -> usize {
    i2::padded_k(k).expect("k fits usize") / 16
}

/// Activations quantized on the device by [`quantize_rows`].
#[derive(Debug, Clone)]
pub struct DeviceActivations {
    /// `m · padded_k(k)/4` i32 words, four int8 values each (column `4u + b` in byte `b`).
    pub words: Handle,
    /// `amax / 127` per row.
    pub scales: Handle,
    /// `Σ q` per row.
    pub sums: Handle,
    /// Rows.
    pub m: usize,
    /// Logical columns.
    pub k: usize,
}

/// Quantizes `x` (`m × k` values of `F`, row-major) to int8 per row on the device.
pub fn quantize_rows<F: Float + CubeElement>(
    client: &Client,
    x: &Handle,
    m: usize,
    k: usize,
) -> DeviceActivations {
    let row_units = row_words(k) * 4;
    let words = client.empty(m * row_units * 4);
    let scales = client.empty(m.max(1) * 4);
    let sums = client.empty(m.max(1) * 4);
    if m > 0 {
        // SAFETY: every index the kernel forms lies inside the buffers sized above.
        unsafe {
            quantize_rows_kernel::launch_unchecked::<F>(
                client,
                rows_grid(client, m),
                CubeDim::new_1d(QUANT_UNITS as u32),
                BufferArg::from_raw_parts(x.clone(), m * k),
                BufferArg::from_raw_parts(words.clone(), m * row_units),
                BufferArg::from_raw_parts(scales.clone(), m),
                BufferArg::from_raw_parts(sums.clone(), m),
                m,
                k,
                row_units,
            );
        }
    }
    DeviceActivations {
        words,
        scales,
        sums,
        m,
        k,
    }
}

/// At least `rows` cubes on a 2-D grid within the device's per-dimension limit.
fn rows_grid(client: &Client, rows: usize) -> CubeCount {
    let max_x = client.properties().hardware.max_cube_count.0 as usize;
    let x = rows.min(max_x);
    cube_count(client, x, rows.div_ceil(x))
}

/// Why `variant`'s grid for an `m × n` product does not fit the device, if it does not.
fn grid_fits(client: &Client, variant: Variant, m: usize, n: usize) -> Result<(), String> {
    let (x, y) = match (variant.gemv_rows(), variant.gemm_side()) {
        (Some(rows), _) => (n.div_ceil(LANE_ROWS * rows), m),
        (None, Some(side)) => (n.div_ceil(4 * side), m.div_ceil(4 * side)),
        (None, None) => unreachable!("every variant is a GEMV or a GEMM"),
    };
    let max = client.properties().hardware.max_cube_count;
    if x as u64 <= u64::from(max.0) && y as u64 <= u64::from(max.1) {
        Ok(())
    } else {
        Err(format!(
            "{variant}: a grid of {x} × {y} cubes exceeds the device limit {max:?}"
        ))
    }
}

/// Autotune offers the GEMV variants up to this many activation rows only (above it they
/// are never faster than a tile, and their grid has one row of cubes per activation row).
const GEMV_TUNE_MAX_M: usize = 64;

/// Whether autotune should time `variant` for `m` rows on this device; the reason if not.
fn tunable(client: &Client, variant: Variant, m: usize, n: usize) -> Result<(), String> {
    if variant.gemv_rows().is_some() && m > GEMV_TUNE_MAX_M {
        return Err(format!(
            "{variant}: GEMV variants are tuned for m ≤ {GEMV_TUNE_MAX_M} only"
        ));
    }
    grid_fits(client, variant, m, n)
}

fn cube_count(client: &Client, x: usize, y: usize) -> CubeCount {
    let max = client.properties().hardware.max_cube_count;
    assert!(
        x as u64 <= u64::from(max.0) && y as u64 <= u64::from(max.1),
        "ternary GPU kernel: a grid of {x} × {y} cubes exceeds the device limit {max:?}"
    );
    CubeCount::Static(x as u32, y as u32, 1)
}

/// `out[i, j] = Σ_c x̃[i, c] · w[j, c]` times `x_scale[i] · w_scale[j]` into an `m × n`
/// buffer of `O`; with `raw`, the unscaled i32 sums (their bits in `O = f32`) instead.
/// `strategy` picks the kernel ([`Strategy::Autotune`] times every [`Variant`] on the first
/// product of a shape).
///
/// # Panics
/// If `x.k != w.k`, or with `raw` for an `O` that is not 4 bytes wide.
pub fn matmul_w2a8<O: Float + CubeElement>(
    client: &Client,
    x: &DeviceActivations,
    w: &DeviceMatrix,
    strategy: Strategy,
    raw: bool,
) -> Handle {
    assert_eq!(
        x.k, w.k,
        "ternary W2A8 matmul: activations have k = {} but the weights k = {}",
        x.k, w.k
    );
    assert!(
        !raw || size_of::<O>() == 4,
        "raw i32 results need a 4-byte output type"
    );
    w.check_group();
    assert!(
        !raw || w.group_size == 0,
        "raw i32 results are one sum per output: group scales ({} columns) have one per group",
        w.group_size
    );
    let (m, n) = (x.m, w.n);
    let out = client.empty((m * n).max(1) * size_of::<O>());
    if m == 0 || n == 0 {
        return out;
    }
    match strategy {
        Strategy::Autotune => {
            let id = TuneId::new(client);
            let set = W2A8_TUNER.init(&id, w2a8_tunables::<O>);
            let inputs = W2a8Inputs {
                client: client.clone(),
                x: x.clone(),
                w: w.clone(),
                out: out.clone(),
                raw,
            };
            W2A8_TUNER.execute(&id, client, set, inputs);
        }
        _ => launch_w2a8::<O>(client, x, w, &out, strategy.variant(m), raw),
    }
    out
}

/// Launches one W2A8 variant into `out` (`m · n` values of `O`).
fn launch_w2a8<O: Float + CubeElement>(
    client: &Client,
    x: &DeviceActivations,
    w: &DeviceMatrix,
    out: &Handle,
    variant: Variant,
    raw: bool,
) {
    let (m, n) = (x.m, w.n);
    let rw = w.row_words();
    let units = rw * 4;
    // SAFETY: the kernels index `x` below `m · rw · 4`, `w` below `n · rw`, the scales below
    // `m` / `n` and `out` below `m · n`, all of which the buffers hold.
    unsafe {
        let xa = BufferArg::from_raw_parts(x.words.clone(), m * units);
        let sums = BufferArg::from_raw_parts(x.sums.clone(), m);
        let xs = BufferArg::from_raw_parts(x.scales.clone(), m);
        let ws = BufferArg::from_raw_parts(w.scales.clone(), w.scale_count().max(1));
        let o = BufferArg::from_raw_parts(out.clone(), m * n);
        if let Some(rows) = variant.gemv_rows() {
            let cubes = n.div_ceil(LANE_ROWS * rows);
            gemv_w2a8_kernel::launch_unchecked::<O>(
                client,
                cube_count(client, cubes, m),
                CubeDim::new_2d(LANES as u32, LANE_ROWS as u32),
                VECTOR,
                BufferArg::from_raw_parts(x.words.clone(), m * units / VECTOR),
                sums,
                xs,
                BufferArg::from_raw_parts(w.words.clone(), n * rw / VECTOR),
                ws,
                o,
                n,
                rw,
                w.groups(),
                w.per_row,
                raw,
                rows,
                w.group_size,
            );
        } else {
            let side = variant.gemm_side().expect("a GEMM variant");
            let tile = 4 * side;
            gemm_w2a8_kernel::launch_unchecked::<O>(
                client,
                cube_count(client, n.div_ceil(tile), m.div_ceil(tile)),
                CubeDim::new_2d(side as u32, side as u32),
                xa,
                sums,
                xs,
                BufferArg::from_raw_parts(w.words.clone(), n * rw),
                ws,
                o,
                m,
                n,
                rw,
                w.groups(),
                w.per_row,
                raw,
                side,
                w.group_size,
            );
        }
    }
}

/// `out[i, j] = (Σ_c x[i, c] · w[j, c]) · w_scale[j]` for float activations `x` (`m × k`
/// values of `F`, row-major) into an `m × n` buffer of `F`. `strategy` as in
/// [`matmul_w2a8`].
pub fn matmul_float<F: Float + CubeElement>(
    client: &Client,
    x: &Handle,
    m: usize,
    w: &DeviceMatrix,
    strategy: Strategy,
) -> Handle {
    w.check_group();
    let n = w.n;
    let out = client.empty((m * n).max(1) * size_of::<F>());
    if m == 0 || n == 0 {
        return out;
    }
    match strategy {
        Strategy::Autotune => {
            let id = TuneId::new(client);
            let set = FLOAT_TUNER.init(&id, float_tunables::<F>);
            let inputs = FloatInputs {
                client: client.clone(),
                x: x.clone(),
                m,
                w: w.clone(),
                out: out.clone(),
            };
            FLOAT_TUNER.execute(&id, client, set, inputs);
        }
        _ => launch_float::<F>(client, x, m, w, &out, strategy.variant(m)),
    }
    out
}

/// Launches one float-activation variant into `out` (`m · n` values of `F`).
fn launch_float<F: Float + CubeElement>(
    client: &Client,
    x: &Handle,
    m: usize,
    w: &DeviceMatrix,
    out: &Handle,
    variant: Variant,
) {
    let (n, k) = (w.n, w.k);
    let rw = w.row_words();
    // SAFETY: as in `launch_w2a8`; float activations are read below `m · k`.
    unsafe {
        let xa = BufferArg::from_raw_parts(x.clone(), m * k);
        let ws = BufferArg::from_raw_parts(w.scales.clone(), w.scale_count().max(1));
        let o = BufferArg::from_raw_parts(out.clone(), m * n);
        if let Some(rows) = variant.gemv_rows() {
            let cubes = n.div_ceil(LANE_ROWS * rows);
            gemv_float_kernel::launch_unchecked::<F>(
                client,
                cube_count(client, cubes, m),
                CubeDim::new_2d(LANES as u32, LANE_ROWS as u32),
                VECTOR,
                xa,
                BufferArg::from_raw_parts(w.words.clone(), n * rw / VECTOR),
                ws,
                o,
                n,
                k,
                rw,
                w.groups(),
                w.per_row,
                rows,
                w.group_size,
            );
        } else {
            let side = variant.gemm_side().expect("a GEMM variant");
            let tile = 4 * side;
            gemm_float_kernel::launch_unchecked::<F>(
                client,
                cube_count(client, n.div_ceil(tile), m.div_ceil(tile)),
                CubeDim::new_2d(side as u32, side as u32),
                xa,
                BufferArg::from_raw_parts(w.words.clone(), n * rw),
                ws,
                o,
                m,
                n,
                k,
                rw,
                w.groups(),
                w.per_row,
                side,
                w.group_size,
            );
        }
    }
}

/// What autotune results are kept under: one product shape, with `m` rounded up to a power of
/// two (capped at 4096) so a model tunes once per layer and batch-size class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TuneKey {
    /// `w2a8` or `float`.
    pub op: String,
    /// The output (W2A8) or activation (float) element type, as Rust names it.
    pub elem: String,
    /// Activation rows, rounded up to a power of two.
    pub m: usize,
    /// Weight rows.
    pub n: usize,
    /// Logical columns.
    pub k: usize,
    /// Whether the weights carry one scale per row.
    pub per_row: bool,
    /// Whether the output is raw i32 sums (W2A8 only).
    pub raw: bool,
    /// Columns per scale group; 0 without group scales.
    #[serde(default)]
    pub group: usize,
}

impl TuneKey {
    /// The same key for weights with `group`-column scale groups (0: none).
    pub fn with_group(self, group: usize) -> Self {
        Self { group, ..self }
    }

    /// The key of an `m × k` by `[n, k]` W2A8 product with output type `O`.
    pub fn w2a8<O: 'static>(m: usize, n: usize, k: usize, per_row: bool, raw: bool) -> Self {
        Self::new("w2a8", core::any::type_name::<O>(), m, n, k, per_row, raw)
    }

    /// The key of an `m × k` by `[n, k]` product with float activations of type `F`.
    pub fn float<F: 'static>(m: usize, n: usize, k: usize, per_row: bool) -> Self {
        Self::new(
            "float",
            core::any::type_name::<F>(),
            m,
            n,
            k,
            per_row,
            false,
        )
    }

    fn new(op: &str, elem: &str, m: usize, n: usize, k: usize, per_row: bool, raw: bool) -> Self {
        Self {
            op: op.to_string(),
            elem: elem.to_string(),
            m: m.max(1).next_power_of_two().min(4096),
            n,
            k,
            per_row,
            raw,
            group: 0,
        }
    }
}

impl cubecl::tune::AutotuneKey for TuneKey {}

impl core::fmt::Display for TuneKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}-{}-m{}-n{}-k{}-{}{}",
            self.op,
            self.elem,
            self.m,
            self.n,
            self.k,
            match (self.group, self.per_row) {
                (0, true) => "row".to_string(),
                (0, false) => "tensor".to_string(),
                (g, _) => format!("group{g}"),
            },
            if self.raw { "-raw" } else { "" }
        )
    }
}

/// The device a tuning result belongs to: the runtime's name and its device id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TuneId {
    name: &'static str,
    type_id: u16,
    index_id: u16,
}

impl TuneId {
    pub(crate) fn new(client: &Client) -> Self {
        let device = client.service_id().device;
        Self {
            name: client.name(),
            type_id: device.type_id,
            index_id: device.index_id,
        }
    }
}

impl core::fmt::Display for TuneId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ternary-{}-{}-{}",
            self.type_id, self.index_id, self.name
        )
    }
}

static W2A8_TUNER: LocalTuner<TuneKey, TuneId> = local_tuner!("w2a8");
static FLOAT_TUNER: LocalTuner<TuneKey, TuneId> = local_tuner!("float");

/// What a W2A8 tuning round runs on: the product's own buffers (every variant writes the
/// same values into `out`).
#[derive(Clone)]
struct W2a8Inputs {
    client: Client,
    x: DeviceActivations,
    w: DeviceMatrix,
    out: Handle,
    raw: bool,
}

#[derive(Clone)]
struct FloatInputs {
    client: Client,
    x: Handle,
    m: usize,
    w: DeviceMatrix,
    out: Handle,
}

type W2a8Set = TunableSet<TuneKey, W2a8Inputs, (), Variant>;
type FloatSet = TunableSet<TuneKey, FloatInputs, (), Variant>;

fn w2a8_tunables<O: Float + CubeElement>() -> W2a8Set {
    let key = |i: &W2a8Inputs| {
        TuneKey::w2a8::<O>(i.x.m, i.w.n, i.w.k, i.w.per_row, i.raw).with_group(i.w.group_size)
    };
    let mut set = TunableSet::new_cloning_inputs(key);
    for variant in Variant::ALL {
        set = set.with(Tunable::identified(variant, move |i: W2a8Inputs| {
            tunable(&i.client, variant, i.x.m, i.w.n)?;
            launch_w2a8::<O>(&i.client, &i.x, &i.w, &i.out, variant, i.raw);
            Ok::<(), String>(())
        }));
    }
    set
}

fn float_tunables<F: Float + CubeElement>() -> FloatSet {
    let key = |i: &FloatInputs| {
        TuneKey::float::<F>(i.m, i.w.n, i.w.k, i.w.per_row).with_group(i.w.group_size)
    };
    let mut set = TunableSet::new_cloning_inputs(key);
    for variant in Variant::ALL {
        set = set.with(Tunable::identified(variant, move |i: FloatInputs| {
            tunable(&i.client, variant, i.m, i.w.n)?;
            launch_float::<F>(&i.client, &i.x, i.m, &i.w, &i.out, variant);
            Ok::<(), String>(())
        }));
    }
    set
}

/// The variant [`Strategy::Autotune`] settled on for W2A8 products of this shape on
/// `client`'s device, or `None` before the first such product has been tuned.
pub fn tuned_w2a8<O: Float + CubeElement>(
    client: &Client,
    m: usize,
    n: usize,
    k: usize,
    per_row: bool,
    raw: bool,
) -> Option<Variant> {
    let id = TuneId::new(client);
    let set = W2A8_TUNER.init(&id, w2a8_tunables::<O>);
    W2A8_TUNER.fastest_identity(&id, &set, &TuneKey::w2a8::<O>(m, n, k, per_row, raw))
}

/// As [`tuned_w2a8`], for products with float activations of type `F`.
pub fn tuned_float<F: Float + CubeElement>(
    client: &Client,
    m: usize,
    n: usize,
    k: usize,
    per_row: bool,
) -> Option<Variant> {
    let id = TuneId::new(client);
    let set = FLOAT_TUNER.init(&id, float_tunables::<F>);
    FLOAT_TUNER.fastest_identity(&id, &set, &TuneKey::float::<F>(m, n, k, per_row))
}
