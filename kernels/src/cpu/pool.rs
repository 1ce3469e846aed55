//! 2-D max pooling over NCHW planes, the stage a fused convolution epilogue runs after the
//! ternary convolution (conv → scale/bias → ReLU → max pool, see `Conv2dParams::relu`).
//!
//! Semantics are PyTorch's `max_pool2d` (and Burn's) with `ceil_mode = false`: for plane `p`
//! and output position `(oy, ox)`,
//!
//! ```text
//! y[p, oy, ox] = max { x[p, iy, ix] : iy = oy·sh − ph + ky·dh,  ix = ox·sw − pw + kx·dw,
//!                                     0 ≤ iy < H, 0 ≤ ix < W, ky < kh, kx < kw }
//! OH = (H + 2·ph − dh·(kh − 1) − 1) / sh + 1   (likewise OW)
//! ```
//!
//! Padding pixels are never candidates (they act as −∞). The window is scanned row by row
//! (`ky`, then `kx`) and a later value replaces the running maximum when it is strictly
//! greater or NaN, so NaN propagates and ties keep the first value — bit for bit what Burn's
//! Flex backend returns.

use rayon::prelude::*;

use crate::error::{KernelError, Result};

/// The window of a 2-D max pooling (PyTorch's `MaxPool2d` without `ceil_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPool2dParams {
    /// Window `[kh, kw]`, each ≥ 1.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`, each ≥ 1.
    pub stride: [usize; 2],
    /// Implicit −∞ padding `[ph, pw]` on both sides, at most half the window each.
    pub padding: [usize; 2],
    /// Dilation `[dh, dw]`, each ≥ 1.
    pub dilation: [usize; 2],
    /// Apply ReLU (`max(v, 0)`, NaN kept, `−0.0 → +0.0`, as Burn's `relu`) to every input
    /// value before pooling: `max_pool2d(relu(x))`, which differs from `relu(max_pool2d(x))`
    /// on windows that hold no pixel (−∞ either way here).
    pub relu: bool,
}

impl MaxPool2dParams {
    /// A `kernel` window with stride = kernel (non-overlapping), no padding, no dilation.
    pub fn new(kernel: [usize; 2]) -> Self {
        Self {
            kernel,
            stride: kernel,
            padding: [0, 0],
            dilation: [1, 1],
            relu: false,
        }
    }

    /// Sets the stride.
    pub fn with_stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the padding.
    pub fn with_padding(mut self, padding: [usize; 2]) -> Self {
        self.padding = padding;
        self
    }

    /// Sets the dilation.
    pub fn with_dilation(mut self, dilation: [usize; 2]) -> Self {
        self.dilation = dilation;
        self
    }

    /// Applies ReLU to the inputs first (see [`MaxPool2dParams::relu`]).
    pub fn with_relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    /// The output size `(OH, OW)` of an `[h, w]` plane.
    ///
    /// # Errors
    /// [`KernelError::Pool`] for a zero kernel, stride or dilation, a padding above half the
    /// window, a dilated window larger than the padded plane, or sizes that overflow.
    pub fn out_hw(&self, [h, w]: [usize; 2]) -> Result<(usize, usize)> {
        let err = |what| KernelError::Pool {
            what,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            input: [h, w],
        };
        let mut out = [0; 2];
        for (i, size) in [h, w].into_iter().enumerate() {
            if self.kernel[i] == 0 || self.stride[i] == 0 || self.dilation[i] == 0 {
                return Err(err("kernel, stride and dilation must be positive"));
            }
            if self.padding[i] > self.kernel[i] / 2 {
                return Err(err("padding must be at most half the kernel"));
            }
            let span = (self.kernel[i] - 1)
                .checked_mul(self.dilation[i])
                .and_then(|v| v.checked_add(1))
                .ok_or_else(|| err("the window's extent overflows"))?;
            let padded = self.padding[i]
                .checked_mul(2)
                .and_then(|v| v.checked_add(size))
                .ok_or_else(|| err("the padded input overflows"))?;
            if span > padded {
                return Err(err("the dilated window exceeds the padded input"));
            }
            out[i] = (padded - span) / self.stride[i] + 1;
        }
        Ok((out[0], out[1]))
    }
}

/// Elements below which pooling stays on the calling thread.
const PARALLEL_MIN_ELEMS: usize = 1 << 16;

/// Max pooling of `planes` independent `[h, w]` planes (NCHW with `planes = N·C`) into
/// `out`, `planes` planes of `[OH, OW]` (see the module docs for the formula and the NaN and
/// tie rules). Planes run in parallel on rayon above 64 Ki input elements.
///
/// # Errors
/// Those of [`MaxPool2dParams::out_hw`]; [`KernelError::Length`] when `x` is not
/// `planes · h · w` or `out` not `planes · OH · OW` elements; [`KernelError::ShapeOverflow`]
/// when a size overflows.
pub fn max_pool2d_f32(
    x: &[f32],
    planes: usize,
    [h, w]: [usize; 2],
    params: &MaxPool2dParams,
    out: &mut [f32],
) -> Result<()> {
    let (oh, ow) = params.out_hw([h, w])?;
    let overflow = || KernelError::ShapeOverflow {
        n: planes as u64,
        k: (h as u64).saturating_mul(w as u64),
    };
    let plane = h.checked_mul(w).ok_or_else(overflow)?;
    let expected = planes.checked_mul(plane).ok_or_else(overflow)?;
    if x.len() != expected {
        return Err(KernelError::Length {
            what: "max_pool2d input planes",
            expected,
            actual: x.len(),
        });
    }
    let out_plane = oh.checked_mul(ow).ok_or_else(overflow)?;
    let out_expected = planes.checked_mul(out_plane).ok_or_else(overflow)?;
    if out.len() != out_expected {
        return Err(KernelError::Length {
            what: "max_pool2d output planes",
            expected: out_expected,
            actual: out.len(),
        });
    }
    if out_plane == 0 {
        return Ok(());
    }
    if plane == 0 {
        // Only padding: every window is empty.
        out.fill(f32::NEG_INFINITY);
        return Ok(());
    }
    let one = |(src, dst): (&[f32], &mut [f32])| pool_plane(src, [h, w], [oh, ow], params, dst);
    if x.len() >= PARALLEL_MIN_ELEMS && planes > 1 {
        x.par_chunks(plane.max(1))
            .zip(out.par_chunks_mut(out_plane))
            .for_each(one);
    } else {
        x.chunks(plane.max(1))
            .zip(out.chunks_mut(out_plane))
            .for_each(one);
    }
    Ok(())
}

/// The valid taps `[lo, hi)` of an axis for output index `o`: `0 ≤ o·s − p + t·d < size`.
#[inline(always)]
fn taps(o: usize, s: usize, p: usize, d: usize, size: usize, k: usize) -> (usize, usize) {
    let start = (o * s) as isize - p as isize;
    let lo = if start >= 0 {
        0
    } else {
        start.unsigned_abs().div_ceil(d).min(k)
    };
    let last = size as isize - 1 - start;
    let hi = if last < 0 {
        0
    } else {
        (last as usize / d + 1).min(k)
    };
    (lo, hi.max(lo))
}

/// The running-maximum rule: a strictly greater value or a NaN replaces the maximum.
#[inline(always)]
fn take(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() { v } else { m }
}

/// ReLU with NaN kept and `−0.0 → +0.0`: the rule of Burn's and PyTorch's `relu`, shared by
/// every fused epilogue of the crate.
#[inline(always)]
pub fn relu_f32(v: f32) -> f32 {
    if v.is_nan() || v > 0.0 { v } else { 0.0 }
}

fn pool_plane(x: &[f32], hw: [usize; 2], ohw: [usize; 2], p: &MaxPool2dParams, out: &mut [f32]) {
    if p.relu {
        pool_plane_with(x, hw, ohw, p, out, relu_f32);
    } else {
        pool_plane_with(x, hw, ohw, p, out, |v| v);
    }
}

/// [`pool_plane`] reading every input through `f`.
fn pool_plane_with(
    x: &[f32],
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
    p: &MaxPool2dParams,
    out: &mut [f32],
    f: impl Fn(f32) -> f32,
) {
    let ([kh, kw], [sh, sw], [ph, pw], [dh, dw]) = (p.kernel, p.stride, p.padding, p.dilation);
    // The common CNN case, 2×2 stride 2 without padding: two input rows per output row.
    if (p.kernel, p.stride, p.padding, p.dilation) == ([2, 2], [2, 2], [0, 0], [1, 1]) {
        for (oy, row) in out.chunks_exact_mut(ow).enumerate() {
            let (r0, r1) = (&x[2 * oy * w..][..2 * ow], &x[(2 * oy + 1) * w..][..2 * ow]);
            for (ox, y) in row.iter_mut().enumerate() {
                let m = take(f(r0[2 * ox]), f(r0[2 * ox + 1]));
                let m = take(m, f(r1[2 * ox]));
                *y = take(m, f(r1[2 * ox + 1]));
            }
        }
        return;
    }
    for oy in 0..oh {
        let (ky0, ky1) = taps(oy, sh, ph, dh, h, kh);
        for ox in 0..ow {
            let (kx0, kx1) = taps(ox, sw, pw, dw, w, kw);
            let mut m = f32::NEG_INFINITY;
            let mut first = true;
            for ky in ky0..ky1 {
                let row = &x[(oy * sh + ky * dh - ph) * w..][..w];
                for kx in kx0..kx1 {
                    let v = f(row[ox * sw + kx * dw - pw]);
                    m = if first { v } else { take(m, v) };
                    first = false;
                }
            }
            out[oy * ow + ox] = m;
        }
    }
}
