//! The scalar reference: the definition of correct for every other implementation.
//!
//! Both functions compute raw, unscaled dot products over the padded K:
//! * `w2a8`: `out[i·ldo + j] = Σ_c code(w_j, c) · x[i·ldx + c]` with codes in {0, 1, 2}
//!   (the driver subtracts `Σ x` to turn codes back into weights);
//! * `f32`: `out[i·ldo + j] = Σ_c w_j[c] · x[i·ldx + c]` with `w ∈ {−1, 0, +1}`, summed in
//!   column order `c = 0, 1, …, 4·row_bytes − 1` as `acc = acc + w·x` from `acc = +0.0`. The
//!   product is exact, so each step rounds once, like an FMA by `w` (what the SIMD kernels
//!   do, one output per lane). These are the semantics of a dense matmul by the dequantized
//!   weights: for finite inputs a zero weight adds `±0.0`, which never changes `acc` (it
//!   cannot become `−0.0` from `+0.0`), but `0 · ±∞` and `0 · NaN` are NaN, so a non-finite
//!   activation makes every output of its row NaN or infinite, zero weights included. NaN
//!   payloads are unspecified.
//!
//! Safety contract shared by every ISA (see [`super::dispatch::W2a8Fn`]): `w` points at `n`
//! rows of `row_bytes` bytes; `x` at `m` rows of stride `ldx ≥ 4·row_bytes`; `out` at `m` rows
//! of stride `ldo ≥ n` that no one else touches during the call.
//!
//! # Group scales
//!
//! The `*_group` kernels take weights with one scale per row and group of `size` consecutive
//! columns ([`Groups`]) and write scaled f32 results (before any bias). Group `g < count`
//! covers columns `g·size .. min((g + 1)·size, 4·row_bytes)`; columns from `count·size` on
//! are not read. Each output is
//!
//! * `w2a8_group`: `S_g = Σ_{c ∈ g} code(w_j, c) · x[i, c] − xsum[i, g]`, an exact i32 (for
//!   valid codes `|S_g| ≤ 2 · 127 · 256`), then `t_g = (S_g as f32) · (xs[i] · ws[j, g])`;
//! * `f32_group`: `P_g = Σ_{c ∈ g} w_j[c] · x[i, c]`, summed in column order from `+0.0` as
//!   `f32` sums above, then `t_g = P_g · ws[j, g]`;
//!
//! and both accumulate `acc = t_0`, then `acc = acc + t_g` for `g = 1, 2, …` in group order
//! (`acc = +0.0` when `count = 0`). One group (`k ≤ size`) thus gives exactly the per-row
//! epilogue's product, `S · (xs · ws)` or `P · ws`. Every multiply and add rounds once (no
//! fused multiply-add), so each SIMD lane that performs this sequence for one output is
//! bit-identical to it. The group contract adds to the plain one: `count = ceil(k / size)` for
//! the `k` the rows hold (`4·row_bytes − 128 < k ≤ 4·row_bytes`, or 0 for `row_bytes = 0`),
//! `ws` holds `n` rows of `count` scales, `xs` `m` values and `xsum` `m` rows of `count` sums
//! (W2A8).
//!
//! The direct convolutions at the end ([`conv2d_w2a8_i32_reference`],
//! [`conv2d_f32_reference`]) are the definition of [`super::conv`]: plain loops over every
//! output and every weight tap, no im2col.

use super::conv::{Conv2dParams, Geometry};
use super::dispatch::Groups;
use crate::error::Result;
use crate::format::i2::{BLOCK, BLOCK_BYTES, PackedI2Ref, code_at};
use crate::quant::QuantizedImages;

/// # Safety
/// See the module docs.
#[allow(clippy::too_many_arguments)] // the raw-kernel contract shared by every ISA
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
    for i in 0..m {
        // SAFETY: row i of x holds 4·row_bytes readable values (contract).
        let xr = unsafe { std::slice::from_raw_parts(x.add(i * ldx), row_bytes * 4) };
        for j in 0..n {
            // SAFETY: row j of w holds row_bytes readable bytes (contract).
            let wr = unsafe { std::slice::from_raw_parts(w.add(j * row_bytes), row_bytes) };
            let mut acc = 0i32;
            for (b, block) in wr.chunks_exact(BLOCK_BYTES).enumerate() {
                for s in 0..4 {
                    for (jj, &byte) in block.iter().enumerate() {
                        let code = i32::from((byte >> (2 * s)) & 3);
                        acc += code * i32::from(xr[b * BLOCK + 32 * s + jj]);
                    }
                }
            }
            // SAFETY: (i, j) lies inside the caller's exclusive output tile.
            unsafe { *out.add(i * ldo + j) = acc };
        }
    }
}

/// # Safety
/// See the module docs.
#[allow(clippy::too_many_arguments)] // the raw-kernel contract shared by every ISA
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
    for i in 0..m {
        // SAFETY: row i of x holds 4·row_bytes readable values (contract).
        let xr = unsafe { std::slice::from_raw_parts(x.add(i * ldx), row_bytes * 4) };
        for j in 0..n {
            // SAFETY: row j of w holds row_bytes readable bytes (contract).
            let wr = unsafe { std::slice::from_raw_parts(w.add(j * row_bytes), row_bytes) };
            let mut acc = 0f32;
            for (c, &xv) in xr.iter().enumerate() {
                acc += weight(code_at(wr, c)) * xv;
            }
            // SAFETY: (i, j) lies inside the caller's exclusive output tile.
            unsafe { *out.add(i * ldo + j) = acc };
        }
    }
}

/// The columns of group `g` in a padded row of `kp` columns (see the module docs).
#[inline]
pub(crate) fn group_columns(g: usize, size: usize, kp: usize) -> std::ops::Range<usize> {
    (g * size).min(kp)..((g + 1) * size).min(kp)
}

/// Group-scaled W2A8 (module docs, "Group scales").
///
/// # Safety
/// See the module docs.
#[allow(clippy::too_many_arguments)] // the raw-kernel contract shared by every ISA
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
    let kp = row_bytes * 4;
    for i in 0..m {
        // SAFETY: row i of x holds kp readable values; xs has m values, xsum m rows of
        // `count` (contract).
        let (xr, xs, xsum) = unsafe {
            (
                std::slice::from_raw_parts(x.add(i * ldx), kp),
                *gr.xs.add(i),
                std::slice::from_raw_parts(gr.xsum.add(i * gr.count), gr.count),
            )
        };
        for j in 0..n {
            // SAFETY: row j of w holds row_bytes bytes, row j of ws `count` scales (contract).
            let (wr, ws) = unsafe {
                (
                    std::slice::from_raw_parts(w.add(j * row_bytes), row_bytes),
                    std::slice::from_raw_parts(gr.ws.add(j * gr.count), gr.count),
                )
            };
            let mut acc = 0f32;
            for (g, (&ws, &xsum)) in ws.iter().zip(xsum).enumerate() {
                let raw: i32 = group_columns(g, gr.size, kp)
                    .map(|c| i32::from(code_at(wr, c)) * i32::from(xr[c]))
                    .sum();
                let t = (raw.wrapping_sub(xsum) as f32) * (xs * ws);
                acc = if g == 0 { t } else { acc + t };
            }
            // SAFETY: (i, j) lies inside the caller's exclusive output tile.
            unsafe { *out.add(i * ldo + j) = acc };
        }
    }
}

/// Group-scaled exact f32 (module docs, "Group scales").
///
/// # Safety
/// See the module docs.
#[allow(clippy::too_many_arguments)] // the raw-kernel contract shared by every ISA
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
    let kp = row_bytes * 4;
    for i in 0..m {
        // SAFETY: row i of x holds kp readable values (contract).
        let xr = unsafe { std::slice::from_raw_parts(x.add(i * ldx), kp) };
        for j in 0..n {
            // SAFETY: row j of w holds row_bytes bytes, row j of ws `count` scales (contract).
            let (wr, ws) = unsafe {
                (
                    std::slice::from_raw_parts(w.add(j * row_bytes), row_bytes),
                    std::slice::from_raw_parts(gr.ws.add(j * gr.count), gr.count),
                )
            };
            let mut acc = 0f32;
            for (g, &ws) in ws.iter().enumerate() {
                let mut part = 0f32;
                for c in group_columns(g, gr.size, kp) {
                    part += weight(code_at(wr, c)) * xr[c];
                }
                let t = part * ws;
                acc = if g == 0 { t } else { acc + t };
            }
            // SAFETY: (i, j) lies inside the caller's exclusive output tile.
            unsafe { *out.add(i * ldo + j) = acc };
        }
    }
}

/// The weight a 2-bit code stands for; the invalid code 3 reads as 0, as in every kernel.
#[inline]
fn weight(code: u8) -> f32 {
    match code {
        2 => 1.0,
        0 => -1.0,
        _ => 0.0,
    }
}

/// Visits the taps of one output: `f(column, x)` for every weight column `[c, ky, kx]` in
/// order, with `x = zero` at zero-padding pixels. `image` is one NCHW image.
#[inline]
fn for_each_tap<X: Copy>(
    g: &Geometry,
    image: &[X],
    grp: usize,
    (oy, ox): (usize, usize),
    zero: X,
    mut f: impl FnMut(usize, X),
) {
    for c in 0..g.cg {
        let plane = &image[(grp * g.cg + c) * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let iy = (oy * g.sh + ky * g.dh)
                    .checked_sub(g.ph)
                    .filter(|&v| v < g.h);
                let ix = (ox * g.sw + kx * g.dw)
                    .checked_sub(g.pw)
                    .filter(|&v| v < g.w);
                let v = match (iy, ix) {
                    (Some(iy), Some(ix)) => plane[iy * g.w + ix],
                    _ => zero,
                };
                f((c * g.kh + ky) * g.kw + kx, v);
            }
        }
    }
}

/// Visits every output of the convolution in NCHW order: `f(index, image, channel, group,
/// (oy, ox))`.
fn for_each_output(g: &Geometry, mut f: impl FnMut(usize, usize, usize, usize, (usize, usize))) {
    let mut idx = 0;
    for b in 0..g.batch {
        for o in 0..g.oc {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    f(idx, b, o, o / g.ng.max(1), (oy, ox));
                    idx += 1;
                }
            }
        }
    }
}

/// Direct-convolution reference of [`Kernel::conv2d_w2a8_i32`](super::Kernel::conv2d_w2a8_i32):
/// `out[b, o, oy, ox] = Σ_{c, ky, kx} w · x̃`, exact, NCHW. Slow; for tests.
///
/// # Errors
/// Exactly those of [`Kernel::conv2d_w2a8_i32`](super::Kernel::conv2d_w2a8_i32).
pub fn conv2d_w2a8_i32_reference<'w>(
    x: &QuantizedImages,
    params: &Conv2dParams,
    w: impl Into<PackedI2Ref<'w>>,
    out: &mut [i32],
) -> Result<()> {
    let w = &w.into();
    let g = Geometry::check_w2a8(params, x, w, None, out.len())?;
    let (rb, len) = (w.row_bytes(), g.image_len());
    for_each_output(&g, |idx, b, o, grp, pos| {
        let row = &w.data()[o * rb..][..rb];
        let mut acc = 0i32;
        for_each_tap(&g, &x.data()[b * len..][..len], grp, pos, 0i8, |col, v| {
            acc += (i32::from(code_at(row, col)) - 1) * i32::from(v);
        });
        out[idx] = acc;
    });
    Ok(())
}

/// Direct-convolution reference of [`Kernel::conv2d_f32`](super::Kernel::conv2d_f32):
/// `out[b, o, oy, ox] = (Σ w·x) · w_scale[o] + bias[o]`, NCHW, the sum taken in weight
/// column order `[c, ky, kx]` by adding, subtracting or skipping — zero-padding pixels
/// included as `±0.0` — exactly as the scalar raw kernel sums an im2col row. With several
/// scale groups per row, each group's sum (from `+0.0`, in column order) times its scale is
/// accumulated in group order, as the raw group kernels do (module docs), then the bias is
/// added. Slow; for tests.
///
/// # Errors
/// Exactly those of [`Kernel::conv2d_f32`](super::Kernel::conv2d_f32).
pub fn conv2d_f32_reference<'w>(
    x: &[f32],
    params: &Conv2dParams,
    w: impl Into<PackedI2Ref<'w>>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    let w = &w.into();
    let g = Geometry::check(params, x.len(), w, bias, out.len())?;
    let (rb, len) = (w.row_bytes(), g.image_len());
    let (size, count) = (w.group_size().unwrap_or(usize::MAX), w.groups());
    for_each_output(&g, |idx, b, o, grp, pos| {
        let row = &w.data()[o * rb..][..rb];
        // `part` sums the current group `cur`; `fold` scales it into `acc` (group scales).
        let (mut acc, mut part, mut cur) = (0f32, 0f32, 0usize);
        let ws = &w.scales()[(o * count).min(w.scales().len())..];
        let fold = |part: &mut f32, cur: &mut usize, acc: &mut f32| {
            let t = *part * ws[*cur];
            *acc = if *cur == 0 { t } else { *acc + t };
            (*part, *cur) = (0.0, *cur + 1);
        };
        let grouped = !w.row_scaled();
        for_each_tap(&g, &x[b * len..][..len], grp, pos, 0f32, |col, v| {
            while grouped && col / size > cur {
                fold(&mut part, &mut cur, &mut acc);
            }
            match code_at(row, col) {
                2 => part += v,
                0 => part -= v,
                _ => {}
            }
        });
        let sum = if grouped {
            while cur < count {
                fold(&mut part, &mut cur, &mut acc);
            }
            acc
        } else {
            part * w.scale(o)
        };
        out[idx] = sum + bias.map_or(0.0, |b| b[o]);
    });
    Ok(())
}
