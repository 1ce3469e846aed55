//! The ternary 2-D convolution on the device: a direct convolution on the packed filters,
//! one output per unit (16×16 units over output positions × output channels, one cube layer
//! per image), zero padding, stride, dilation and groups. Float activations accumulate in
//! f32; int8 activations (quantized once per image by [`quantize_rows`], one row per image)
//! accumulate exact `i32` sums. Not tiled through shared memory yet: tuning that needs a GPU
//! to measure on.

use cubecl::prelude::*;
use cubecl::server::Handle;

#[cfg(doc)]
use super::quantize_rows;
use super::{
    BLOCK, BLOCK_WORDS, DeviceActivations, DeviceMatrix, SLICE, row_scale, row_words, store_w2a8,
};

/// Output units per conv cube side: 16 positions × 16 output channels.
const CONV_UNITS: usize = 16;

/// The filter's ternary value (code − 1, as −1, 0 or +1 in `i32`) at column `col` of the
/// packed row starting at word `row0` (the `I2` layout of the module docs).
#[cube]
fn conv_tap(w: &[u32], row0: usize, col: usize) -> i32 {
    let word = w[row0 + (col / BLOCK) * BLOCK_WORDS + (col % SLICE) / 4];
    let shift = 8 * (col % 4) + 2 * ((col % BLOCK) / SLICE);
    i32::cast_from((word >> shift as u32) & 3u32) - 1i32
}

/// The input index `iy·w + ix` within its plane of tap `(ky, kx)` for output row `oy`,
/// column `ox`, or `-1` when it falls in the zero padding.
#[cube]
#[allow(clippy::too_many_arguments)]
fn conv_pixel(
    iy0: i32,
    ix0: i32,
    ky: usize,
    kx: usize,
    dh: usize,
    dw: usize,
    h: usize,
    wd: usize,
) -> i32 {
    let iy = iy0 + i32::cast_from(ky * dh);
    let ix = ix0 + i32::cast_from(kx * dw);
    let inside = iy >= 0 && ix >= 0 && iy < i32::cast_from(h) && ix < i32::cast_from(wd);
    select(inside, iy * i32::cast_from(wd) + ix, -1i32)
}

/// Direct 2-D convolution on the packed filters, float activations: unit `(p, o)` of cube
/// `(bx, by, b)` computes output position `bx·16 + p` of channel `by·16 + o` of image `b`,
/// adding or subtracting (in f32) each input pixel its filter tap is ±1 for, column order
/// `[c, ky, kx]`, then `· w_scale[o]`. NCHW in and out; zero padding; groups.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn conv2d_float_kernel<F: Float>(
    x: &[F],
    w: &[u32],
    ws: &[f32],
    out: &mut [F],
    c_in: usize,
    c_out: usize,
    groups: usize,
    h: usize,
    wd: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
    row_words: usize,
    #[comptime] per_channel: bool,
) {
    let p = CUBE_POS_X as usize * CONV_UNITS + UNIT_POS_X as usize;
    let o = CUBE_POS_Y as usize * CONV_UNITS + UNIT_POS_Y as usize;
    let b = CUBE_POS_Z as usize;
    if p < oh * ow && o < c_out {
        let cg = c_in / groups;
        let c0 = (o / (c_out / groups)) * cg;
        let (oy, ox) = (p / ow, p % ow);
        let iy0 = i32::cast_from(oy * sh) - i32::cast_from(ph);
        let ix0 = i32::cast_from(ox * sw) - i32::cast_from(pw);
        let mut acc = 0.0f32;
        for c in 0..cg {
            let plane = (b * c_in + c0 + c) * h * wd;
            for ky in 0..kh {
                for kx in 0..kw {
                    let pixel = conv_pixel(iy0, ix0, ky, kx, dh, dw, h, wd);
                    let t = conv_tap(w, o * row_words, (c * kh + ky) * kw + kx);
                    if pixel >= 0 && t != 0 {
                        let v = f32::cast_from(x[plane + usize::cast_from(pixel)]);
                        acc += select(t > 0, v, -v);
                    }
                }
            }
        }
        out[((b * c_out + o) * oh + oy) * ow + ox] =
            F::cast_from(acc * row_scale(ws, o, per_channel));
    }
}

/// Direct 2-D convolution on the packed filters, int8 activations quantized once per image
/// ([`quantize_rows`] with one row per image of `C·H·W` values): exact `i32` sums `Σ w·x̃`,
/// then `· (x_scale[b] · w_scale[o])` — or, with `raw`, the sums' bits. Layout as
/// [`conv2d_float_kernel()`].
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn conv2d_w2a8_kernel<O: Float>(
    x: &[u32],
    xs: &[f32],
    w: &[u32],
    ws: &[f32],
    out: &mut [O],
    c_in: usize,
    c_out: usize,
    groups: usize,
    h: usize,
    wd: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
    row_words: usize,
    image_words: usize,
    #[comptime] per_channel: bool,
    #[comptime] raw: bool,
) {
    let p = CUBE_POS_X as usize * CONV_UNITS + UNIT_POS_X as usize;
    let o = CUBE_POS_Y as usize * CONV_UNITS + UNIT_POS_Y as usize;
    let b = CUBE_POS_Z as usize;
    if p < oh * ow && o < c_out {
        let cg = c_in / groups;
        let c0 = (o / (c_out / groups)) * cg;
        let (oy, ox) = (p / ow, p % ow);
        let iy0 = i32::cast_from(oy * sh) - i32::cast_from(ph);
        let ix0 = i32::cast_from(ox * sw) - i32::cast_from(pw);
        let mut acc = 0i32;
        for c in 0..cg {
            let plane = (c0 + c) * h * wd;
            for ky in 0..kh {
                for kx in 0..kw {
                    let pixel = conv_pixel(iy0, ix0, ky, kx, dh, dw, h, wd);
                    let t = conv_tap(w, o * row_words, (c * kh + ky) * kw + kx);
                    if pixel >= 0 && t != 0 {
                        // Byte `i` of the image's row of int8 values, sign-extended.
                        let i = plane + usize::cast_from(pixel);
                        let byte = (x[b * image_words + i / 4] >> (8 * (i % 4)) as u32) & 0xffu32;
                        let v = i32::cast_from(byte) - select(byte >= 128u32, 256i32, 0i32);
                        acc += select(t > 0, v, -v);
                    }
                }
            }
        }
        let index = ((b * c_out + o) * oh + oy) * ow + ox;
        let wso = row_scale(ws, o, per_channel);
        store_w2a8::<O>(out, index, acc, 0i32, xs[b], wso, raw);
    }
}

/// The launch grid of a conv: 16×16 units per cube over (output positions, output
/// channels), one cube layer per image.
fn conv_grid(client: &Client, p: &crate::Conv2dParams, positions: usize) -> CubeCount {
    let max = client.properties().hardware.max_cube_count;
    let (x, y, z) = (
        positions.div_ceil(CONV_UNITS),
        p.out_channels.div_ceil(CONV_UNITS),
        p.batch,
    );
    assert!(
        x as u64 <= u64::from(max.0)
            && y as u64 <= u64::from(max.1)
            && z as u64 <= u64::from(max.2),
        "ternary GPU conv: a grid of {x} × {y} × {z} cubes exceeds the device limit {max:?}"
    );
    CubeCount::Static(x as u32, y as u32, z as u32)
}

/// Checks a conv's parameters against its weights; returns `(OH, OW)`.
fn conv_check(p: &crate::Conv2dParams, w: &DeviceMatrix) -> (usize, usize) {
    assert!(
        !p.relu && !p.residual,
        "ternary GPU conv: the fused ReLU / residual of the CPU kernels are not run here \
         (relu {}, residual {}): apply them after the conv",
        p.relu,
        p.residual
    );
    let (oh, ow) = p
        .out_hw()
        .unwrap_or_else(|e| panic!("ternary GPU conv: {e} ({p:?})"));
    assert!(
        w.n == p.out_channels && w.k == p.k(),
        "ternary GPU conv: weights [{}, {}] do not match out_channels {} and k {}",
        w.n,
        w.k,
        p.out_channels,
        p.k()
    );
    (oh, ow)
}

/// 2-D convolution of NCHW float activations `x` (`F`, `batch · C · H · W` values) with the
/// packed filters `w` (`out_channels` rows of `K = C/groups · kh · kw`, columns `[c, ky, kx]`):
/// `out[b, o, oy, ox] = (Σ w·x) · w_scale[o]`, NCHW, in `F` (f32 accumulation). No bias, ReLU or
/// residual: the caller applies them. A direct convolution, one output per unit.
///
/// # Panics
/// When `p` is invalid, sets [`crate::Conv2dParams::relu`] or `residual`, or does not match
/// `w`, or the grid exceeds the device's limits.
pub fn conv2d_float<F: Float + CubeElement>(
    client: &Client,
    x: &Handle,
    p: &crate::Conv2dParams,
    w: &DeviceMatrix,
) -> Handle {
    let (oh, ow) = conv_check(p, w);
    let len = p.batch * p.out_channels * oh * ow;
    let out = client.empty(len.max(1) * size_of::<F>());
    if len == 0 {
        return out;
    }
    let input = p.batch * p.in_channels * p.height * p.width;
    // SAFETY: the kernel reads x below batch·C·H·W (pixels are bounds-checked against the
    // plane), w below out_channels·row_words, the scales below 1 or n, and writes out below
    // batch·out_channels·OH·OW.
    unsafe {
        conv2d_float_kernel::launch_unchecked::<F>(
            client,
            conv_grid(client, p, oh * ow),
            CubeDim::new_2d(CONV_UNITS as u32, CONV_UNITS as u32),
            BufferArg::from_raw_parts(x.clone(), input.max(1)),
            BufferArg::from_raw_parts(w.words.clone(), (w.n * w.row_words()).max(1)),
            BufferArg::from_raw_parts(w.scales.clone(), if w.per_row { w.n } else { 1 }),
            BufferArg::from_raw_parts(out.clone(), len),
            p.in_channels,
            p.out_channels,
            p.groups,
            p.height,
            p.width,
            oh,
            ow,
            p.kernel[0],
            p.kernel[1],
            p.stride[0],
            p.stride[1],
            p.padding[0],
            p.padding[1],
            p.dilation[0],
            p.dilation[1],
            w.row_words(),
            w.per_row,
        );
    }
    out
}

/// W2A8 2-D convolution: `x` holds the batch quantized once per image ([`quantize_rows`] with
/// `m = batch` rows of `k = C·H·W` values), `out[b, o, oy, ox] = (Σ w·x̃) · (x_scale[b] ·
/// w_scale[o])` in `O`, NCHW — or, with `raw`, the exact `i32` sums' bits (`O` 4 bytes wide).
/// No bias, ReLU or residual. The sums equal
/// [`conv2d_w2a8_i32_reference`](crate::cpu::conv2d_w2a8_i32_reference)'s bit for bit.
///
/// # Panics
/// As [`conv2d_float`], when `x` is not `batch` rows of `C·H·W`, or with `raw` for an `O`
/// that is not 4 bytes wide.
pub fn conv2d_w2a8<O: Float + CubeElement>(
    client: &Client,
    x: &DeviceActivations,
    p: &crate::Conv2dParams,
    w: &DeviceMatrix,
    raw: bool,
) -> Handle {
    let (oh, ow) = conv_check(p, w);
    let image = p.in_channels * p.height * p.width;
    assert!(
        x.m == p.batch && x.k == image,
        "ternary GPU conv: activations [{}, {}] are not {} images of {image} values",
        x.m,
        x.k,
        p.batch
    );
    assert!(
        !raw || size_of::<O>() == 4,
        "raw i32 results need a 4-byte output type, not {} bytes",
        size_of::<O>()
    );
    let len = p.batch * p.out_channels * oh * ow;
    let out = client.empty(len.max(1) * size_of::<O>());
    if len == 0 {
        return out;
    }
    // `quantize_rows` writes padded_k(C·H·W) int8 values, four per word, per image.
    let image_words = row_words(image) * 4;
    // SAFETY: as in `conv2d_float`; the int8 image rows hold `image_words` words each, the
    // image scales `batch` values.
    unsafe {
        conv2d_w2a8_kernel::launch_unchecked::<O>(
            client,
            conv_grid(client, p, oh * ow),
            CubeDim::new_2d(CONV_UNITS as u32, CONV_UNITS as u32),
            BufferArg::from_raw_parts(x.words.clone(), (p.batch * image_words).max(1)),
            BufferArg::from_raw_parts(x.scales.clone(), p.batch.max(1)),
            BufferArg::from_raw_parts(w.words.clone(), (w.n * w.row_words()).max(1)),
            BufferArg::from_raw_parts(w.scales.clone(), if w.per_row { w.n } else { 1 }),
            BufferArg::from_raw_parts(out.clone(), len),
            p.in_channels,
            p.out_channels,
            p.groups,
            p.height,
            p.width,
            oh,
            ow,
            p.kernel[0],
            p.kernel[1],
            p.stride[0],
            p.stride[1],
            p.padding[0],
            p.padding[1],
            p.dilation[0],
            p.dilation[1],
            w.row_words(),
            image_words,
            w.per_row,
            raw,
        );
    }
    out
}
