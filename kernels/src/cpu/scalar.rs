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
//! The direct convolutions at the end ([`conv2d_w2a8_i32_reference`],
//! [`conv2d_f32_reference`]) are the definition of [`super::conv`]: plain loops over every
//! output and every weight tap, no im2col.

use super::conv::{Conv2dParams, Geometry};
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
/// included as `±0.0` — exactly as the scalar raw kernel sums an im2col row. Slow; for tests.
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
    for_each_output(&g, |idx, b, o, grp, pos| {
        let row = &w.data()[o * rb..][..rb];
        let mut acc = 0f32;
        for_each_tap(
            &g,
            &x[b * len..][..len],
            grp,
            pos,
            0f32,
            |col, v| match code_at(row, col) {
                2 => acc += v,
                0 => acc -= v,
                _ => {}
            },
        );
        out[idx] = acc * w.scale(o) + bias.map_or(0.0, |b| b[o]);
    });
    Ok(())
}
