//! Native ternary 2-D convolution: NCHW activations, packed ternary weights, NCHW output.
//!
//! Both modes compute, for image `b`, output channel `o` (in group `g`) and output position
//! `(oy, ox)`,
//!
//! ```text
//! y[b, o, oy, ox] = w_scale[o] · Σ_{c, ky, kx} w[o, c, ky, kx] · x[b, g·C_g + c, iy, ix] + bias[o]
//!     iy = oy·stride_h − pad_h + ky·dilation_h,   ix = ox·stride_w − pad_w + kx·dilation_w
//! ```
//!
//! with `x = 0` outside the image (zero padding), `w ∈ {−1, 0, +1}` and `C_g` the input
//! channels per group. The weights are one [`PackedI2Ref`] of `out_channels` rows of
//! `K = C_g·kh·kw` columns, each row the PyTorch/Burn conv weight `[C_g, kh, kw]` flattened
//! row-major.
//!
//! * **Exact f32** ([`Kernel::conv2d_f32`]): the sum adds, subtracts or skips f32 activations.
//! * **W2A8** ([`Kernel::conv2d_w2a8`]), the BitNet b1.58 scheme (arXiv:2402.17764) of
//!   ternary weights times int8 activations: the activations are quantised **once per
//!   image** ([`QuantizedImages`]: one absmax scale `s_b` over the image's whole `C·H·W`
//!   feature map), so every patch of an image shares `s_b` and the integer sums
//!   `Σ w·x̃` ([`Kernel::conv2d_w2a8_i32`]) are exact; the output is
//!   `Σ w·x̃ · (s_b · w_scale[o]) + bias[o]`, one epilogue for every ISA.
//!
//! # Lowering: implicit im2col in cache-sized tiles
//!
//! A task owns one image and a block of `P` consecutive output positions (`P` chosen so the
//! patch tile stays in cache, at most 256). For each group it gathers the tile's patch
//! matrix `[P × K_p]` — `K_p` is `K` rounded up to the packed format's 128-column blocks,
//! zero in the padding columns and at zero-padded pixels — into a per-thread scratch buffer
//! (with each patch's `Σ x̃` for the code offset: the raw W2A8 kernels sum `code · x̃` with
//! `code = w + 1`), multiplies it by the group's weight rows with the ISA's raw GEMM kernel,
//! and writes the `[P × N_g]` result transposed into NCHW with the scale and bias. Nothing
//! proportional to the whole batch's im2col matrix is ever allocated. A window inside the
//! image moves each of its `kh` rows per channel with one or two 16-byte copies; a 1×1,
//! stride-1, unpadded convolution gathers by transposing channel rows.
//!
//! Small K (≤ 32: a 1-channel or RGB 3×3, a depthwise 3×3) would be mostly zero padding in a
//! 128-column row, so it takes a **direct path** instead: the transposed tile `[K × P]`
//! (contiguous copies of input rows at stride 1) and, per output channel, the tap columns
//! added or subtracted in column order — the same code for every ISA, exact in both modes.
//!
//! Tasks run on rayon; problems below the GEMM driver's parallel threshold stay on the
//! calling thread.
//!
//! # Group scales
//!
//! Weights with one scale per output channel and group of 64, 128 or 256 consecutive columns
//! `[c, ky, kx]` ([`crate::Scales::PerGroup`]) are multiplied by the raw group kernels on the
//! same patch tiles, with the same arithmetic as the GEMM driver (each group's sum scaled,
//! the products added in group order, then the bias; see [`super::scalar`], "Group
//! scales"); the W2A8 activation scale of every patch is its image's. With one group per row
//! (`K ≤ group size`, which includes every direct-path shape) the scales act per channel.
//!
//! # Error of W2A8 against exact f32
//!
//! Per-image absmax quantization rounds each activation to the nearest multiple of
//! `s_b = max|x_b| / 127`, so `|x − s_b·x̃| ≤ s_b / 2` per element (zero-padding pixels are
//! exact). The integer sum is exact, hence for every output
//!
//! ```text
//! |y_w2a8 − y_f32| ≤ (s_b / 2) · w_scale[o] · Σ_{c,ky,kx} |w[o, c, ky, kx]|
//! ```
//!
//! up to the f32 rounding of the final scale and bias (a few ulps of the result). The bound
//! grows with the image's largest activation, not the patch's: a patch of small values in an
//! image with one outlier keeps the outlier's step `s_b`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::dispatch::{Groups, Kernel, best};
use super::matmul::{
    MAX_K_W2A8, PARALLEL_MIN_MACS, SendPtr, check_bias, check_out, group_sums, w2a8_epilogue,
};
use crate::error::{KernelError, Result};
use crate::format::i2::{PackedI2Ref, code_at, padded_k};
use crate::quant::QuantizedImages;

/// Patch-tile bytes a task keeps hot while the raw kernel passes over it (L2-resident).
const PATCH_BYTES: usize = 64 * 1024;
/// Fewest output positions per task (below this, per-call overhead dominates).
const MIN_BLOCK: usize = 8;
/// Most output positions per task.
const MAX_BLOCK: usize = 256;

/// The shape of a 2-D convolution over NCHW images (PyTorch's `Conv2d` semantics, zero
/// padding applied symmetrically). All sizes are element counts.
///
/// Build one with [`Conv2dParams::new`] and the `with_*` methods, or fill the public fields;
/// [`Conv2dParams::out_hw`] validates it.
///
/// ```
/// use ternary_kernels::{Conv2dParams, Method, Granularity, PackedI2, QuantizedImages, cpu};
///
/// // Two 3×8×8 images, 4 output channels, 3×3 kernel, padding 1.
/// let p = Conv2dParams::new(2, 3, [8, 8], 4, [3, 3]).with_padding([1, 1]);
/// assert_eq!((p.out_hw()?, p.k()), ((8, 8), 27));
/// let w: Vec<f32> = (0..4 * 27).map(|i| (i % 7) as f32 - 3.0).collect(); // [4, 3, 3, 3]
/// let w = PackedI2::quantize(&w, 4, p.k(), Method::AbsMean, Granularity::PerRow)?;
/// let x: Vec<f32> = (0..p.input_len()?).map(|i| (i % 11) as f32 / 10.0).collect();
///
/// let mut y = vec![0f32; p.output_len()?]; // [2, 4, 8, 8]
/// cpu::conv2d_f32(&x, &p, &w, None, &mut y)?;
/// let q = QuantizedImages::quantize(&x, 2, 3 * 8 * 8)?; // one scale per image
/// let mut y8 = vec![0f32; p.output_len()?];
/// cpu::conv2d_w2a8(&q, &p, &w, None, &mut y8)?;
/// assert!(y.iter().zip(&y8).all(|(a, b)| (a - b).abs() < 0.1 * (1.0 + a.abs())));
/// # Ok::<(), ternary_kernels::KernelError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels `C`.
    pub in_channels: usize,
    /// Input height `H`.
    pub height: usize,
    /// Input width `W`.
    pub width: usize,
    /// Output channels (rows of the packed weight).
    pub out_channels: usize,
    /// Kernel size `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`, each ≥ 1.
    pub stride: [usize; 2],
    /// Zero padding `[ph, pw]` added on both sides of each axis.
    pub padding: [usize; 2],
    /// Dilation `[dh, dw]`, each ≥ 1.
    pub dilation: [usize; 2],
    /// Groups: input and output channels split into this many independent convolutions
    /// (`groups == in_channels` is depthwise). Must divide both channel counts.
    pub groups: usize,
    /// Fused ReLU: the f32 outputs of [`Kernel::conv2d_f32`] and [`Kernel::conv2d_w2a8`] go
    /// through `max(y, 0)` after the scale and bias (NaN kept, as Burn's and PyTorch's
    /// `relu`). The integer sums of [`Kernel::conv2d_w2a8_i32`] are not affected.
    pub relu: bool,
    /// Fused residual: the f32 outputs add the value `out` holds on entry (a residual
    /// connection, `y = conv(x)·scale + bias + out`) before the ReLU. The caller fills `out`
    /// with the residual; without this flag its contents are ignored. The integer sums of
    /// [`Kernel::conv2d_w2a8_i32`] are not affected.
    pub residual: bool,
}

impl Conv2dParams {
    /// A convolution of `batch` images of `in_channels × height × width` into `out_channels`
    /// with a `kernel = [kh, kw]` window: stride 1, no padding, no dilation, one group.
    pub fn new(
        batch: usize,
        in_channels: usize,
        [height, width]: [usize; 2],
        out_channels: usize,
        kernel: [usize; 2],
    ) -> Self {
        Self {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel,
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            relu: false,
            residual: false,
        }
    }

    /// Sets the stride `[sh, sw]`.
    pub fn with_stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the symmetric zero padding `[ph, pw]`.
    pub fn with_padding(mut self, padding: [usize; 2]) -> Self {
        self.padding = padding;
        self
    }

    /// Sets the dilation `[dh, dw]`.
    pub fn with_dilation(mut self, dilation: [usize; 2]) -> Self {
        self.dilation = dilation;
        self
    }

    /// Sets the number of groups.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Fuses a ReLU into the f32 epilogue (see [`Conv2dParams::relu`]).
    pub fn with_relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    /// Adds the output buffer's contents (a residual) in the f32 epilogue (see
    /// [`Conv2dParams::residual`]).
    pub fn with_residual(mut self, residual: bool) -> Self {
        self.residual = residual;
        self
    }

    /// The output size `(OH, OW)`, `OH = (H + 2·ph − dh·(kh − 1) − 1) / sh + 1` (likewise OW).
    ///
    /// # Errors
    /// [`KernelError::ConvZero`] for a zero stride, dilation, kernel size or group count;
    /// [`KernelError::ConvGroups`] when `groups` does not divide both channel counts;
    /// [`KernelError::ConvKernelTooLarge`] when the dilated kernel exceeds the padded input;
    /// [`KernelError::ShapeOverflow`] when a size overflows `usize`.
    pub fn out_hw(&self) -> Result<(usize, usize)> {
        Geometry::new(self).map(|g| (g.oh, g.ow))
    }

    /// The packed weight row length `K = (in_channels / groups) · kh · kw` (columns per
    /// output channel). Meaningful once [`Conv2dParams::out_hw`] succeeds; 0 for zero groups,
    /// saturating on overflow.
    pub fn k(&self) -> usize {
        self.in_channels
            .checked_div(self.groups)
            .unwrap_or(0)
            .saturating_mul(self.kernel[0])
            .saturating_mul(self.kernel[1])
    }

    /// Input elements `batch · C · H · W`.
    ///
    /// # Errors
    /// [`KernelError::ShapeOverflow`] when the product overflows.
    pub fn input_len(&self) -> Result<usize> {
        checked_product(&[self.batch, self.in_channels, self.height, self.width])
    }

    /// Output elements `batch · out_channels · OH · OW`.
    ///
    /// # Errors
    /// Those of [`Conv2dParams::out_hw`].
    pub fn output_len(&self) -> Result<usize> {
        Geometry::new(self).map(|g| g.batch * g.oc * g.l)
    }
}

fn checked_product(v: &[usize]) -> Result<usize> {
    v.iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or(KernelError::ShapeOverflow {
            n: v[0] as u64,
            k: v[1..].iter().fold(1u64, |a, &b| a.saturating_mul(b as u64)),
        })
}

/// A validated [`Conv2dParams`] with everything the drivers derive from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oc: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
    pub groups: usize,
    /// Input channels per group.
    pub cg: usize,
    /// Output channels per group.
    pub ng: usize,
    pub oh: usize,
    pub ow: usize,
    /// Output positions per image, `oh · ow`.
    pub l: usize,
    /// Weight row length `cg · kh · kw`.
    pub k: usize,
    /// `k` padded to whole 128-column blocks.
    pub kp: usize,
}

impl Geometry {
    pub(crate) fn new(p: &Conv2dParams) -> Result<Self> {
        for (what, v) in [
            ("stride", p.stride),
            ("dilation", p.dilation),
            ("kernel", p.kernel),
        ] {
            if v.contains(&0) {
                return Err(KernelError::ConvZero { what });
            }
        }
        if p.groups == 0 {
            return Err(KernelError::ConvZero { what: "groups" });
        }
        for (what, channels) in [
            ("in_channels", p.in_channels),
            ("out_channels", p.out_channels),
        ] {
            if channels % p.groups != 0 {
                return Err(KernelError::ConvGroups {
                    what,
                    groups: p.groups,
                    channels,
                });
            }
        }
        let axis = |axis: &'static str, i: usize, size: usize| -> Result<usize> {
            let overflow = KernelError::ShapeOverflow {
                n: size as u64,
                k: p.kernel[i] as u64,
            };
            let extent = (p.kernel[i] - 1)
                .checked_mul(p.dilation[i])
                .and_then(|e| e.checked_add(1))
                .ok_or(overflow.clone())?;
            let padded = p.padding[i]
                .checked_mul(2)
                .and_then(|e| e.checked_add(size))
                .ok_or(overflow)?;
            if extent > padded {
                return Err(KernelError::ConvKernelTooLarge {
                    axis,
                    extent,
                    padded,
                });
            }
            Ok((padded - extent) / p.stride[i] + 1)
        };
        let oh = axis("height", 0, p.height)?;
        let ow = axis("width", 1, p.width)?;
        let cg = p.in_channels / p.groups;
        let k = checked_product(&[cg, p.kernel[0], p.kernel[1]])?;
        let kp = padded_k(k).ok_or(KernelError::ShapeOverflow {
            n: p.out_channels as u64,
            k: k as u64,
        })?;
        let l = checked_product(&[oh, ow])?;
        p.input_len()?;
        checked_product(&[p.batch, p.out_channels, l])?;
        Ok(Self {
            batch: p.batch,
            c: p.in_channels,
            h: p.height,
            w: p.width,
            oc: p.out_channels,
            kh: p.kernel[0],
            kw: p.kernel[1],
            sh: p.stride[0],
            sw: p.stride[1],
            ph: p.padding[0],
            pw: p.padding[1],
            dh: p.dilation[0],
            dw: p.dilation[1],
            groups: p.groups,
            cg,
            ng: p.out_channels / p.groups,
            oh,
            ow,
            l,
            k,
            kp,
        })
    }

    /// Input elements per image.
    pub(crate) fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Output elements of the whole batch.
    pub(crate) fn output_len(&self) -> usize {
        self.batch * self.oc * self.l
    }

    /// A 1×1, stride-1, unpadded convolution: output positions are input pixels.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }

    /// Validates the operands of a convolution: the parameters, the input length, the
    /// weight shape, the bias and the output length.
    pub(crate) fn check(
        p: &Conv2dParams,
        x_len: usize,
        w: &PackedI2Ref<'_>,
        bias: Option<&[f32]>,
        out_len: usize,
    ) -> Result<Self> {
        let g = Self::new(p)?;
        if x_len != g.batch * g.image_len() {
            return Err(KernelError::Length {
                what: "input images",
                expected: g.batch * g.image_len(),
                actual: x_len,
            });
        }
        if w.n() != g.oc {
            return Err(KernelError::Shape {
                what: "weight rows and out_channels",
                left: w.n(),
                right: g.oc,
            });
        }
        if w.k() != g.k {
            return Err(KernelError::Shape {
                what: "weight columns and (in_channels / groups) · kh · kw",
                left: w.k(),
                right: g.k,
            });
        }
        check_bias(bias, g.oc)?;
        check_out(out_len, g.output_len(), 1)?;
        Ok(g)
    }

    /// [`Geometry::check`] for int8 images, plus the exact-accumulation bound on K.
    pub(crate) fn check_w2a8(
        p: &Conv2dParams,
        x: &QuantizedImages,
        w: &PackedI2Ref<'_>,
        bias: Option<&[f32]>,
        out_len: usize,
    ) -> Result<Self> {
        let g = Self::check(p, x.data().len(), w, bias, out_len)?;
        if x.batch() != g.batch {
            return Err(KernelError::Shape {
                what: "quantised images and batch",
                left: x.batch(),
                right: g.batch,
            });
        }
        if x.image_len() != g.image_len() {
            return Err(KernelError::Shape {
                what: "quantised image length and C·H·W",
                left: x.image_len(),
                right: g.image_len(),
            });
        }
        if g.k > MAX_K_W2A8 {
            return Err(KernelError::KTooLarge {
                k: g.k,
                max: MAX_K_W2A8,
            });
        }
        Ok(g)
    }
}

/// An element of a patch tile, with the raw kernel's accumulator type and this thread's
/// scratch buffers for it.
trait PatchElem: Copy + Default + Send + Sync + 'static {
    /// What the raw kernel writes: i32 sums for int8, f32 sums for f32.
    type Acc: Copy + Default + Send + Sync + 'static;
    /// Elements in one 16-byte move (a `u128`), the gather's unit copy.
    const WIDE: usize = 16 / size_of::<Self>();
    /// Whether the driver needs the patch sums (the W2A8 code offset).
    const SUMS: bool;
    /// Σ of a patch row as i32 (the W2A8 code-offset correction); unused for f32.
    fn row_sum(row: &[Self]) -> i32;
    /// `Σ x` over each scale group of `m` patch rows of `kp` values into `out` (`[m, count]`,
    /// the W2A8 code-offset correction of the group kernels); nothing for f32.
    fn group_sums(
        rows: &[Self],
        m: usize,
        kp: usize,
        size: usize,
        count: usize,
        out: &mut Vec<i32>,
    );
    /// Runs `f` on this thread's scratch buffers for this element type.
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<Self>) -> R) -> R;
    /// `acc[i] += col[i]`, or `−=` when `negate` (the direct path's ±1 weight).
    fn accumulate(acc: &mut [Self::Acc], col: &[Self], negate: bool);
}

/// Per-thread buffers of one task: the patch tile, its row sums and the raw result tile.
struct Scratch<X: PatchElem> {
    patch: Vec<X>,
    sums: Vec<i32>,
    tile: Vec<X::Acc>,
    /// Run offsets of a patch row (see [`gather`]).
    runs: Vec<usize>,
    /// The direct path's accumulators, one output channel's `m` sums at a time.
    acc: Vec<X::Acc>,
    /// The group path's scaled f32 tile, per-group patch sums and per-row activation scales.
    scaled: Vec<f32>,
    group_sums: Vec<i32>,
    row_scales: Vec<f32>,
    /// `(k, kp)` of the rows in `patch` ...
    layout: (usize, usize),
    /// ... and how many of them have zero padding columns.
    zeroed: usize,
}

impl<X: PatchElem> Scratch<X> {
    const fn new() -> Self {
        Self {
            patch: Vec::new(),
            sums: Vec::new(),
            tile: Vec::new(),
            runs: Vec::new(),
            acc: Vec::new(),
            scaled: Vec::new(),
            group_sums: Vec::new(),
            row_scales: Vec::new(),
            layout: (0, 0),
            zeroed: 0,
        }
    }
}

thread_local! {
    static SCRATCH_I8: RefCell<Scratch<i8>> = const { RefCell::new(Scratch::new()) };
    static SCRATCH_F32: RefCell<Scratch<f32>> = const { RefCell::new(Scratch::new()) };
}

impl PatchElem for i8 {
    type Acc = i32;
    const SUMS: bool = true;
    #[inline(always)]
    fn row_sum(row: &[i8]) -> i32 {
        // Sixteen i16 lanes over chunks of ROW_SUM_CHUNK values (vectorises without
        // widening every byte to i32); the chunk sums are exact in i32 (|Σ| ≤ 127·K).
        row.chunks(ROW_SUM_CHUNK)
            .map(|chunk| {
                let mut lanes = [0i16; 16];
                let sixteens = chunk.chunks_exact(16);
                let tail: i32 = sixteens.remainder().iter().map(|&v| i32::from(v)).sum();
                for sixteen in sixteens {
                    for (lane, &v) in lanes.iter_mut().zip(sixteen) {
                        *lane += i16::from(v);
                    }
                }
                lanes.iter().map(|&v| i32::from(v)).sum::<i32>() + tail
            })
            .sum()
    }
    fn group_sums(rows: &[i8], m: usize, kp: usize, size: usize, count: usize, out: &mut Vec<i32>) {
        group_sums(rows, m, kp, size, count, out);
    }
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<i8>) -> R) -> R {
        SCRATCH_I8.with_borrow_mut(f)
    }
    #[inline(always)]
    fn accumulate(acc: &mut [i32], col: &[i8], negate: bool) {
        // |Σ| ≤ 127·K ≤ 127·DIRECT_MAX_K: exact.
        if negate {
            acc.iter_mut()
                .zip(col)
                .for_each(|(a, &v)| *a -= i32::from(v));
        } else {
            acc.iter_mut()
                .zip(col)
                .for_each(|(a, &v)| *a += i32::from(v));
        }
    }
}

impl PatchElem for f32 {
    type Acc = f32;
    const SUMS: bool = false;
    #[inline]
    fn row_sum(_: &[f32]) -> i32 {
        0
    }
    fn group_sums(_: &[f32], _: usize, _: usize, _: usize, _: usize, out: &mut Vec<i32>) {
        out.clear();
    }
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<f32>) -> R) -> R {
        SCRATCH_F32.with_borrow_mut(f)
    }
    #[inline(always)]
    fn accumulate(acc: &mut [f32], col: &[f32], negate: bool) {
        // One add or subtract per ±1 weight, none per 0: the reference's operations.
        if negate {
            acc.iter_mut().zip(col).for_each(|(a, &v)| *a -= v);
        } else {
            acc.iter_mut().zip(col).for_each(|(a, &v)| *a += v);
        }
    }
}

/// Values per i16-lane chunk of [`PatchElem::row_sum`]: each of 16 lanes adds 256 values,
/// 256 × 127 = 32 512 ≤ i16::MAX.
const ROW_SUM_CHUNK: usize = 16 * 256;
const _: () = assert!(ROW_SUM_CHUNK / 16 * 127 <= i16::MAX as usize);

/// Positions per task: a patch tile of about [`PATCH_BYTES`] (`row_bytes` per position),
/// shrunk until every thread has several tasks, then evened out over the image and rounded
/// to the raw kernels' 4-row tiles.
fn block_positions(g: &Geometry, row_bytes: usize, threads: usize) -> usize {
    let by_cache = (PATCH_BYTES / row_bytes.max(1)).clamp(MIN_BLOCK, MAX_BLOCK);
    let blocks_wanted = (4 * threads).div_ceil(g.batch.max(1));
    let by_threads = g.l.div_ceil(blocks_wanted).max(MIN_BLOCK);
    let p = by_cache.min(by_threads);
    let blocks = g.l.div_ceil(p.max(1));
    g.l.div_ceil(blocks.max(1))
        .next_multiple_of(4)
        .min(g.l)
        .max(1)
}

/// 16-byte words of slack past a patch tile: the most a run's word copies overshoot.
const SLACK_WORDS: usize = 2;

/// Copies `n ≤ SLACK_WORDS` unaligned 16-byte words.
///
/// # Safety
/// `src` is readable and `dst` writable for `16·n` bytes; the ranges do not overlap.
#[inline(always)]
unsafe fn move_words(src: *const u8, dst: *mut u8, n: usize) {
    // SAFETY: the caller's ranges; u128 has no invalid bit patterns.
    unsafe {
        dst.cast::<u128>()
            .write_unaligned(src.cast::<u128>().read_unaligned());
        if n > 1 {
            let (s, d) = (src.add(16), dst.add(16));
            d.cast::<u128>()
                .write_unaligned(s.cast::<u128>().read_unaligned());
        }
    }
}

/// Writes `n ≤ SLACK_WORDS` unaligned 16-byte words of zeros (0i8 and 0.0f32 are all-zero).
///
/// # Safety
/// `dst` is writable for `16·n` bytes.
#[inline(always)]
unsafe fn zero_words(dst: *mut u8, n: usize) {
    // SAFETY: the caller's range.
    unsafe {
        dst.cast::<u128>().write_unaligned(0);
        if n > 1 {
            dst.add(16).cast::<u128>().write_unaligned(0);
        }
    }
}

/// The valid tap range `[lo, hi)` along one axis: taps `t` with `0 ≤ i0 + t·d < size`
/// (contiguous because the input index grows with `t`), clipped to `0..taps`.
#[inline(always)]
fn tap_range(i0: isize, d: usize, size: usize, taps: usize) -> (usize, usize) {
    let lo = if i0 >= 0 {
        0
    } else {
        i0.unsigned_abs().div_ceil(d).min(taps)
    };
    let last = size as isize - 1 - i0;
    let hi = if last < 0 {
        0
    } else {
        (last as usize / d + 1).min(taps)
    };
    (lo, hi.max(lo))
}

/// Writes patch rows `0..m` (row stride `kp`, columns `0..k`) for output positions
/// `p0..p0 + m` of one image; the group's `cg` input planes start at `x[base..]`.
/// Zero-padding pixels are written as zeros; columns `k..kp` are left zero.
///
/// A patch row is `cg·kh` runs of `kw` taps, run `(c, ky)` starting `runs[c·kh + ky]`
/// elements after the window's top-left pixel. With `dilation_w = 1` and `kw` at most two
/// 16-byte words ([`PatchElem::WIDE`] elements each), a window inside the image moves each
/// run as whole words and a border window zeroes each run as whole words before copying its
/// valid taps; the excess lands on columns written next, or on the padding columns (re-zeroed
/// per row), or on the next row's start (written later), or on the [`SLACK_WORDS`] words of
/// slack `patch` has past `m · kp`. Other shapes go one element at a time.
#[inline(always)]
fn gather<X: PatchElem>(
    g: &Geometry,
    x: &[X],
    base: usize,
    p0: usize,
    m: usize,
    patch: &mut [X],
    runs: &mut Vec<usize>,
) {
    let (kp, hw, k, kw) = (g.kp, g.h * g.w, g.k, g.kw);
    if g.pointwise() {
        // Positions are pixels: the tile is the transpose of `cg` contiguous pixel runs.
        for c in 0..g.cg {
            let src = &x[base + c * hw + p0..][..m];
            for (d, &v) in patch[c..].iter_mut().step_by(kp).zip(src) {
                *d = v;
            }
        }
        return;
    }
    runs.clear();
    for c in 0..g.cg {
        runs.extend((0..g.kh).map(|ky| c * hw + ky * g.dh * g.w));
    }
    let last_run = runs.last().copied().unwrap_or(0);
    let zero = X::default();
    // Runs of up to two 16-byte words move as words (kw ≤ 32 for int8, ≤ 8 for f32), the
    // excess of each landing on the next run, which is written after it.
    let words = kw.div_ceil(X::WIDE);
    let wide_len = words * X::WIDE;
    let wide = g.dw == 1 && words <= SLACK_WORDS;
    let (mut oy, mut ox) = (p0 / g.ow, p0 % g.ow);
    // The window's extent past its top-left pixel, to tell interior windows without the
    // divisions of `tap_range`.
    let (span_y, span_x) = (((g.kh - 1) * g.dh) as isize, ((kw - 1) * g.dw) as isize);
    for i in 0..m {
        let row = &mut patch[i * kp..];
        let iy0 = (oy * g.sh) as isize - g.ph as isize;
        let ix0 = (ox * g.sw) as isize - g.pw as isize;
        let inside =
            iy0 >= 0 && ix0 >= 0 && iy0 + span_y < g.h as isize && ix0 + span_x < g.w as isize;
        // The window's top-left pixel (outside the image, or even before `base`, at borders).
        let corner = base as isize + iy0 * g.w as isize + ix0;
        let dst = row.as_mut_ptr().cast::<u8>();
        if inside && wide && corner as usize + last_run + wide_len <= x.len() {
            let src = x.as_ptr().cast::<u8>();
            let corner = corner as usize;
            for (r, &off) in runs.iter().enumerate() {
                // SAFETY: reads corner + off .. + wide_len ≤ corner + last_run + wide_len ≤
                // x.len() (checked above; offsets grow with r); writes r·kw .. + wide_len,
                // inside the row and its slack (see `words`). The buffers are distinct.
                unsafe {
                    let s = src.add((corner + off) * size_of::<X>());
                    move_words(s, dst.add(r * kw * size_of::<X>()), words);
                }
            }
        } else {
            // A window on the border: zero each run, then copy its valid taps.
            let (ky0, ky1) = tap_range(iy0, g.dh, g.h, g.kh);
            let (kx0, kx1) = tap_range(ix0, g.dw, g.w, kw);
            for c in 0..g.cg {
                for ky in 0..g.kh {
                    let r = c * g.kh + ky;
                    if wide {
                        // SAFETY: as above, writes r·kw .. + wide_len (row and slack).
                        unsafe { zero_words(dst.add(r * kw * size_of::<X>()), words) };
                    } else {
                        row[r * kw..(r + 1) * kw].fill(zero);
                    }
                    if ky < ky0 || ky >= ky1 {
                        continue;
                    }
                    // Tap kx of the run reads x[start + kx·dw], in the image for kx0..kx1.
                    let start = corner + runs[r] as isize;
                    for kx in kx0..kx1 {
                        row[r * kw + kx] = x[(start + (kx * g.dw) as isize) as usize];
                    }
                }
            }
        }
        // Undo the last run's excess on the padding columns (or the next row's start, which
        // is written later, or the slack).
        // SAFETY: writes k .. k + words·WIDE ≤ k + 2·WIDE ≤ row.len() (the slack).
        unsafe { zero_words(dst.add(k * size_of::<X>()), words) };
        ox += 1;
        if ox == g.ow {
            ox = 0;
            oy += 1;
        }
    }
}

/// Writes the transposed patch tile of the direct path: `cols[t·m + i]` is tap `t` (column
/// `[c, ky, kx]` of the weights) of output position `p0 + i`, zero at padding pixels; the
/// group's `cg` input planes start at `x[base..]`. Each (tap, output row) pair is a strided
/// run of one input row clipped to the image — a plain copy at stride 1.
#[inline(always)]
fn gather_columns<X: PatchElem>(
    g: &Geometry,
    x: &[X],
    base: usize,
    p0: usize,
    m: usize,
    cols: &mut [X],
) {
    let zero = X::default();
    let hw = g.h * g.w;
    for c in 0..g.cg {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let t = (c * g.kh + ky) * g.kw + kx;
                let col = &mut cols[t * m..(t + 1) * m];
                // Output positions ox with pixel ix = ox·sw + off − pw inside the row.
                let off = kx * g.dw;
                let lo = g.pw.saturating_sub(off).div_ceil(g.sw);
                let hi = if g.w + g.pw > off {
                    (g.w + g.pw - off - 1) / g.sw + 1
                } else {
                    0
                };
                let mut i0 = 0;
                while i0 < m {
                    let (oy, ox0) = ((p0 + i0) / g.ow, (p0 + i0) % g.ow);
                    let len = (g.ow - ox0).min(m - i0);
                    let seg = &mut col[i0..i0 + len];
                    i0 += len;
                    let iy = (oy * g.sh + ky * g.dh)
                        .checked_sub(g.ph)
                        .filter(|&iy| iy < g.h);
                    let Some(iy) = iy else {
                        seg.fill(zero);
                        continue;
                    };
                    let (a, b) = (lo.clamp(ox0, ox0 + len), hi.clamp(ox0, ox0 + len));
                    let b = b.max(a);
                    seg[..a - ox0].fill(zero);
                    seg[b - ox0..].fill(zero);
                    if b > a {
                        let src = &x[base + c * hw + iy * g.w + a * g.sw + off - g.pw..];
                        let dst = &mut seg[a - ox0..b - ox0];
                        if g.sw == 1 {
                            dst.copy_from_slice(&src[..b - a]);
                        } else {
                            for (d, &v) in dst.iter_mut().zip(src.iter().step_by(g.sw)) {
                                *d = v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The fused tail of the f32 epilogue.
#[derive(Clone, Copy)]
struct Finish {
    residual: bool,
    relu: bool,
}

impl Finish {
    fn of(p: &Conv2dParams) -> Self {
        Self {
            residual: p.residual,
            relu: p.relu,
        }
    }

    /// `v` plus the residual `old` when asked, then ReLU with NaN kept
    /// (`relu(−0.0) = +0.0`, the rule of Burn's and PyTorch's `relu`) when asked.
    #[inline(always)]
    fn apply(self, v: f32, old: f32) -> f32 {
        let v = if self.residual { v + old } else { v };
        if self.relu {
            super::pool::relu_f32(v)
        } else {
            v
        }
    }
}

/// The raw kernel signature both modes share (see [`super::scalar`] for the contract).
type RawFn<X, A> = unsafe fn(*const u8, usize, usize, *const X, usize, usize, *mut A, usize);
/// The raw group-scaled kernel signature both modes share.
type GroupRawFn<X> =
    unsafe fn(*const u8, usize, usize, *const X, usize, usize, *mut f32, usize, &Groups);

/// How a convolution's tasks are laid out: positions per task, blocks per image and whether
/// they run on rayon.
struct Plan {
    /// Positions per task.
    pb: usize,
    /// Position blocks per image.
    blocks: usize,
    parallel: bool,
    /// Below [`CALLER_WORKS_BELOW_MACS`]: the calling thread takes tasks too.
    small: bool,
}

/// Multiply-accumulates below which a parallel convolution called from outside the rayon
/// pool runs tasks on the calling thread as well (see [`Plan::run`]).
const CALLER_WORKS_BELOW_MACS: usize = 1 << 24;

impl Plan {
    fn new(g: &Geometry, row_len: usize, elem_bytes: usize) -> Self {
        let macs = g
            .batch
            .saturating_mul(g.l)
            .saturating_mul(g.oc)
            .saturating_mul(row_len);
        let parallel = macs >= PARALLEL_MIN_MACS;
        let threads = if parallel {
            rayon::current_num_threads().max(1)
        } else {
            1
        };
        let pb = block_positions(g, row_len * elem_bytes, threads);
        Self {
            pb,
            blocks: g.l.div_ceil(pb),
            parallel,
            small: macs < CALLER_WORKS_BELOW_MACS,
        }
    }

    /// Runs `task(image, first position, positions)` for every task.
    fn run(&self, g: &Geometry, task: impl Fn(usize, usize, usize) + Sync + Send) {
        let (pb, blocks) = (self.pb, self.blocks);
        let one = |t: usize| {
            let (b, p0) = (t / blocks, (t % blocks) * pb);
            task(b, p0, pb.min(g.l - p0));
        };
        let tasks = g.batch * blocks;
        if !(self.parallel && tasks > 1) {
            (0..tasks).for_each(one);
        } else if !self.small || rayon::current_thread_index().is_some() {
            // Large, or already on a pool thread: rayon's own splitting.
            (0..tasks).into_par_iter().for_each(one);
        } else {
            // A small convolution called from outside the pool (a batch-1 forward on the main
            // thread): the caller works too, with `threads − 1` pool jobs, all pulling tasks
            // from one counter, so the work starts without waiting for a worker to wake up
            // (with `par_iter` the caller blocks while the pool does everything). Large ones
            // keep `par_iter`: there the wake-up is noise, and a woken but idle third thread
            // spinning for work on a 2-core machine costs more than it saves.
            let next = AtomicUsize::new(0);
            let work = || {
                loop {
                    let t = next.fetch_add(1, Ordering::Relaxed);
                    if t >= tasks {
                        break;
                    }
                    one(t);
                }
            };
            rayon::in_place_scope(|s| {
                let helpers = rayon::current_num_threads()
                    .saturating_sub(1)
                    .min(tasks - 1);
                for _ in 0..helpers {
                    s.spawn(|_| work());
                }
                work();
            });
        }
    }
}

/// Largest K the direct path takes: below it, most of a padded 128-column row would be zeros
/// (K = 9 for a 1-channel 3×3 or a depthwise 3×3, 27 for an RGB 3×3), and a K-deep sum per
/// output over a transposed tile beats the raw GEMM kernel on `K_p ≥ 128` columns.
const DIRECT_MAX_K: usize = 32;

/// Runs the convolution: tasks of (image, position block), each computing every output
/// channel of its positions group by group and writing `epi(image, channel)(raw, patch_sum)`
/// into the NCHW output, where `raw − patch_sum = Σ w·x`. `x` is the whole batch, `out` has
/// `g.output_len()` elements.
///
/// Two ways to the sums: the GEMM path gathers the patch tile `[m × K_p]` and calls the ISA's
/// `raw` kernel (`raw = Σ code·x`, `patch_sum = Σ x`); for K ≤ [`DIRECT_MAX_K`] the direct
/// path gathers the transposed tile `[K × m]` and adds or subtracts whole tap columns per
/// output channel in column order (`raw = Σ w·x`, `patch_sum = 0`), the same for every ISA.
fn drive<X: PatchElem, O: Copy + Send + Sync, E: Fn(X::Acc, i32, O) -> O>(
    g: &Geometry,
    x: &[X],
    w: &PackedI2Ref<'_>,
    raw: RawFn<X, X::Acc>,
    out: &mut [O],
    epi: impl Fn(usize, usize) -> E + Sync,
) {
    debug_assert_eq!(out.len(), g.output_len());
    if out.is_empty() {
        return;
    }
    let (kp, rb) = (g.kp, g.kp / 4);
    let direct = g.k <= DIRECT_MAX_K;
    let plan = Plan::new(g, if direct { g.k } else { kp }, size_of::<X>());
    // The direct path's weights, decoded once: oc rows of k values in {−1, 0, +1}.
    let decoded: Vec<i8> = if direct {
        (0..g.oc)
            .flat_map(|o| {
                let row = &w.data()[o * rb..(o + 1) * rb];
                (0..g.k).map(move |t| code_at(row, t) as i8 - 1)
            })
            .collect()
    } else {
        Vec::new()
    };
    let writer = Writer {
        g,
        out: SendPtr(out.as_mut_ptr()),
        epi,
    };
    plan.run(g, |b, p0, m| {
        X::with_scratch(|s| {
            if direct {
                direct_task(g, x, &decoded, b, p0, m, s, &writer);
            } else {
                gemm_task(g, x, w.data(), raw, b, p0, m, s, &writer);
            }
        });
    });
}

/// [`drive`] for weights with group scales but not one group per row: GEMM-path tasks
/// (K > 64 > [`DIRECT_MAX_K`]) whose raw group kernel writes scaled f32 values, to which the
/// bias (or `+0.0`) is added. With no groups at all (K = 0) every output is that sum's
/// `+0.0` plus the bias. `image_scales` holds the W2A8 activation scale of each image.
#[allow(clippy::too_many_arguments)] // one convolution's operands
fn drive_grouped<X: PatchElem>(
    g: &Geometry,
    x: &[X],
    w: &PackedI2Ref<'_>,
    raw: GroupRawFn<X>,
    image_scales: Option<&[f32]>,
    bias: Option<&[f32]>,
    finish: Finish,
    out: &mut [f32],
) {
    debug_assert_eq!(out.len(), g.output_len());
    if g.k == 0 {
        for (i, y) in out.iter_mut().enumerate() {
            *y = finish.apply(0.0 + bias.map_or(0.0, |b| b[i / g.l % g.oc]), *y);
        }
        return;
    }
    debug_assert!(g.k > DIRECT_MAX_K);
    let writer = Writer {
        g,
        out: SendPtr(out.as_mut_ptr()),
        epi: |_, ch| {
            let bv = bias.map_or(0.0, |b| b[ch]);
            move |v: f32, _, old: f32| finish.apply(v + bv, old)
        },
    };
    Plan::new(g, g.kp, size_of::<X>()).run(g, |b, p0, m| {
        X::with_scratch(|s| {
            let xs = image_scales.map_or(0.0, |v| v[b]);
            grouped_task(g, x, w, raw, xs, b, p0, m, s, &writer);
        });
    });
}

/// Writes output channels of one task through the epilogue.
struct Writer<'g, O, F> {
    g: &'g Geometry,
    out: SendPtr<O>,
    /// `epi(image, channel)` is the epilogue `(raw, patch_sum) -> output` of that channel.
    epi: F,
}

impl<O: Copy, F> Writer<'_, O, F> {
    /// Writes positions `p0..p0 + m` of channel `ch` of image `b` from `(raw, patch_sum)`
    /// pairs. The caller is the one task that owns those positions.
    #[inline(always)]
    fn write<A, E: Fn(A, i32, O) -> O>(
        &self,
        b: usize,
        p0: usize,
        m: usize,
        ch: usize,
        values: impl Iterator<Item = (A, i32)>,
    ) where
        F: Fn(usize, usize) -> E,
    {
        let g = self.g;
        let f = (self.epi)(b, ch);
        debug_assert!(b < g.batch && ch < g.oc && p0 + m <= g.l);
        // SAFETY: positions p0..p0 + m of channel ch of image b lie inside the output
        // (p0 + m ≤ l) and belong to this task alone (tasks partition (image, position
        // block)), so no other reference to them exists.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(self.out.0.add((b * g.oc + ch) * g.l + p0), m)
        };
        for (d, (acc, sum)) in dst.iter_mut().zip(values) {
            *d = f(acc, sum, *d);
        }
    }
}

/// The GEMM path of one task (see [`drive`]).
#[allow(clippy::too_many_arguments)] // one task's coordinates and buffers
fn gemm_task<X: PatchElem, O: Copy, E: Fn(X::Acc, i32, O) -> O, F: Fn(usize, usize) -> E>(
    g: &Geometry,
    x: &[X],
    wd: &[u8],
    raw: RawFn<X, X::Acc>,
    b: usize,
    p0: usize,
    m: usize,
    s: &mut Scratch<X>,
    writer: &Writer<'_, O, F>,
) {
    let (kp, rb, ng) = (g.kp, g.kp / 4, g.ng);
    prepare_patch(g, m, s);
    // Every sum and result is written before it is read.
    s.sums.resize(m, 0);
    s.tile.resize(m * ng, X::Acc::default());
    for grp in 0..g.groups {
        let base = b * g.image_len() + grp * g.cg * g.h * g.w;
        gather(g, x, base, p0, m, &mut s.patch, &mut s.runs);
        if X::SUMS {
            for (sum, row) in s.sums.iter_mut().zip(s.patch.chunks_exact(kp)) {
                *sum = X::row_sum(&row[..g.k]);
            }
        }
        // SAFETY: the kernel exists only for ISAs the host supports; rows grp·ng.. of w are
        // ng rows of rb bytes (w has oc = groups·ng rows, checked); the patch holds m rows of
        // kp = 4·rb values; the tile m rows of ng.
        unsafe {
            raw(
                wd.as_ptr().add(grp * ng * rb),
                rb,
                ng,
                s.patch.as_ptr(),
                kp,
                m,
                s.tile.as_mut_ptr(),
                ng,
            );
        }
        // Transposed into NCHW a block of positions at a time, so the block's rows of the
        // tile stay in L1 while every channel reads its column of them.
        for i0 in (0..m).step_by(TRANSPOSE_BLOCK) {
            let len = TRANSPOSE_BLOCK.min(m - i0);
            let (rows, sums) = (&s.tile[i0 * ng..(i0 + len) * ng], &s.sums[i0..i0 + len]);
            for j in 0..ng {
                let column = rows[j..].iter().step_by(ng).copied();
                writer.write(
                    b,
                    p0 + i0,
                    len,
                    grp * ng + j,
                    column.zip(sums.iter().copied()),
                );
            }
        }
    }
}

/// Positions per block of the tile's transpose into NCHW (a 64-byte line of f32 outputs per
/// channel and block).
const TRANSPOSE_BLOCK: usize = 16;

/// Sizes the patch tile of `m` rows for a GEMM-path task. Gather writes columns 0..k of every
/// row and keeps k..kp zero once they are, so rows zeroed by an earlier task of the same row
/// layout stay so; SLACK_WORDS words of slack past the tile.
fn prepare_patch<X: PatchElem>(g: &Geometry, m: usize, s: &mut Scratch<X>) {
    let kp = g.kp;
    s.patch.resize(m * kp + SLACK_WORDS * X::WIDE, X::default());
    let zeroed = if s.layout == (g.k, kp) { s.zeroed } else { 0 };
    for row in s.patch.chunks_exact_mut(kp.max(1)).take(m).skip(zeroed) {
        row[g.k..].fill(X::default());
    }
    (s.layout, s.zeroed) = ((g.k, kp), zeroed.max(m));
}

/// The group-scaled GEMM path of one task (see [`drive_grouped`]); `xs` is the image's W2A8
/// activation scale (unused for f32).
#[allow(clippy::too_many_arguments)] // one task's coordinates and buffers
fn grouped_task<X: PatchElem, E: Fn(f32, i32, f32) -> f32, F: Fn(usize, usize) -> E>(
    g: &Geometry,
    x: &[X],
    w: &PackedI2Ref<'_>,
    raw: GroupRawFn<X>,
    xs: f32,
    b: usize,
    p0: usize,
    m: usize,
    s: &mut Scratch<X>,
    writer: &Writer<'_, f32, F>,
) {
    let (kp, rb, ng) = (g.kp, g.kp / 4, g.ng);
    let (size, count) = (w.group_size().unwrap_or(1), w.groups());
    prepare_patch(g, m, s);
    s.scaled.resize(m * ng, 0.0);
    s.row_scales.clear();
    s.row_scales.resize(m, xs);
    for grp in 0..g.groups {
        let base = b * g.image_len() + grp * g.cg * g.h * g.w;
        gather(g, x, base, p0, m, &mut s.patch, &mut s.runs);
        X::group_sums(&s.patch, m, kp, size, count, &mut s.group_sums);
        let gr = Groups {
            size,
            count,
            ws: w.scales()[grp * ng * count..].as_ptr(),
            xs: s.row_scales.as_ptr(),
            xsum: s.group_sums.as_ptr(),
        };
        // SAFETY: the kernel exists only for ISAs the host supports; rows grp·ng.. of w are
        // ng rows of rb bytes with `count` scales each (w has oc = groups·ng rows, checked);
        // the patch holds m rows of kp = 4·rb values, with m scales and (W2A8) m rows of
        // `count` group sums; the tile m rows of ng.
        unsafe {
            raw(
                w.data().as_ptr().add(grp * ng * rb),
                rb,
                ng,
                s.patch.as_ptr(),
                kp,
                m,
                s.scaled.as_mut_ptr(),
                ng,
                &gr,
            );
        }
        for i0 in (0..m).step_by(TRANSPOSE_BLOCK) {
            let len = TRANSPOSE_BLOCK.min(m - i0);
            let rows = &s.scaled[i0 * ng..(i0 + len) * ng];
            for j in 0..ng {
                let column = rows[j..].iter().step_by(ng).map(|&v| (v, 0));
                writer.write(b, p0 + i0, len, grp * ng + j, column);
            }
        }
    }
}

/// The direct path of one task (see [`drive`]); `decoded` holds the weights as i8.
#[allow(clippy::too_many_arguments)] // one task's coordinates and buffers
fn direct_task<X: PatchElem, O: Copy, E: Fn(X::Acc, i32, O) -> O, F: Fn(usize, usize) -> E>(
    g: &Geometry,
    x: &[X],
    decoded: &[i8],
    b: usize,
    p0: usize,
    m: usize,
    s: &mut Scratch<X>,
    writer: &Writer<'_, O, F>,
) {
    let (k, ng) = (g.k, g.ng);
    // The transposed tile overwrites the GEMM path's zero padding columns.
    s.zeroed = 0;
    s.patch.resize(k * m, X::default());
    s.acc.resize(m, X::Acc::default());
    for grp in 0..g.groups {
        let base = b * g.image_len() + grp * g.cg * g.h * g.w;
        gather_columns(g, x, base, p0, m, &mut s.patch[..k * m]);
        for j in 0..ng {
            let ch = grp * ng + j;
            s.acc.fill(X::Acc::default());
            for (t, &wv) in decoded[ch * k..(ch + 1) * k].iter().enumerate() {
                if wv != 0 {
                    X::accumulate(&mut s.acc, &s.patch[t * m..(t + 1) * m], wv < 0);
                }
            }
            writer.write(b, p0, m, ch, s.acc.iter().map(|&a| (a, 0)));
        }
    }
}

impl Kernel {
    /// Exact-f32 convolution: `out[b, o, oy, ox] = (Σ w·x) · w_scale[o] + bias[o]` (see the
    /// module docs for the index map; group scales: "Group scales" there), plus the residual
    /// `out` holds on entry when [`Conv2dParams::residual`] is set, then the fused ReLU when
    /// [`Conv2dParams::relu`] is set.
    ///
    /// `x` is NCHW `[batch, in_channels, H, W]`, `w` has `out_channels` rows of
    /// `K = (in_channels / groups)·kh·kw` columns ordered `[c, ky, kx]`, `bias` (optional)
    /// has `out_channels` values and `out` is NCHW `[batch, out_channels, OH, OW]`.
    ///
    /// # Errors
    /// Those of [`Conv2dParams::out_hw`]; [`KernelError::Length`] for a wrong input, bias or
    /// output length; [`KernelError::Shape`] when the weight is not `out_channels × K`.
    pub fn conv2d_f32<'w>(
        &self,
        x: &[f32],
        params: &Conv2dParams,
        w: impl Into<PackedI2Ref<'w>>,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        let w = &w.into();
        let g = Geometry::check(params, x.len(), w, bias, out.len())?;
        let finish = Finish::of(params);
        if !w.row_scaled() {
            drive_grouped(&g, x, w, self.f32_group, None, bias, finish, out);
            return Ok(());
        }
        drive(&g, x, w, self.f32, out, |_, ch| {
            let (ws, bv) = (w.scale(ch), bias.map_or(0.0, |b| b[ch]));
            move |acc: f32, _, old: f32| finish.apply(acc * ws + bv, old)
        });
        Ok(())
    }

    /// Exact integer W2A8 convolution sums `out[b, o, oy, ox] = Σ w·x̃` (before any scale),
    /// NCHW `[batch, out_channels, OH, OW]`; `x` holds the batch quantised per image.
    ///
    /// # Errors
    /// Those of [`Kernel::conv2d_f32`], [`KernelError::Shape`] when `x` is not
    /// `batch` images of `C·H·W`, and [`KernelError::KTooLarge`] above
    /// [`MAX_K_W2A8`](crate::MAX_K_W2A8).
    pub fn conv2d_w2a8_i32<'w>(
        &self,
        x: &QuantizedImages,
        params: &Conv2dParams,
        w: impl Into<PackedI2Ref<'w>>,
        out: &mut [i32],
    ) -> Result<()> {
        let w = &w.into();
        let g = Geometry::check_w2a8(params, x, w, None, out.len())?;
        drive(&g, x.data(), w, self.w2a8, out, |_, _| {
            |raw: i32, sum: i32, _| raw.wrapping_sub(sum)
        });
        Ok(())
    }

    /// W2A8 convolution: `out[b, o, oy, ox] = (Σ w·x̃) · (x_scale[b] · w_scale[o]) + bias[o]`,
    /// plus the residual `out` holds on entry when [`Conv2dParams::residual`] is set, then the
    /// fused ReLU when [`Conv2dParams::relu`] is set, NCHW (group scales: "Group scales" in
    /// the module docs). The integer sums equal [`Kernel::conv2d_w2a8_i32`]'s and the
    /// epilogue is the GEMM driver's, so every ISA returns the same bits. Error against the exact-f32
    /// convolution: see the module docs.
    ///
    /// # Errors
    /// Those of [`Kernel::conv2d_w2a8_i32`], and [`KernelError::Length`] for a wrong bias.
    pub fn conv2d_w2a8<'w>(
        &self,
        x: &QuantizedImages,
        params: &Conv2dParams,
        w: impl Into<PackedI2Ref<'w>>,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        let w = &w.into();
        let g = Geometry::check_w2a8(params, x, w, bias, out.len())?;
        let xs = x.scales();
        let finish = Finish::of(params);
        if !w.row_scaled() {
            drive_grouped(
                &g,
                x.data(),
                w,
                self.w2a8_group,
                Some(xs),
                bias,
                finish,
                out,
            );
            return Ok(());
        }
        drive(&g, x.data(), w, self.w2a8, out, |b, ch| {
            let (xs, ws, bv) = (xs[b], w.scale(ch), bias.map_or(0.0, |v| v[ch]));
            move |raw: i32, sum: i32, old: f32| {
                finish.apply(w2a8_epilogue(raw, sum, xs, ws, bv), old)
            }
        });
        Ok(())
    }
}

/// [`Kernel::conv2d_f32`] with the host's best kernel.
pub fn conv2d_f32<'w>(
    x: &[f32],
    params: &Conv2dParams,
    w: impl Into<PackedI2Ref<'w>>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    best().conv2d_f32(x, params, w, bias, out)
}

/// [`Kernel::conv2d_w2a8_i32`] with the host's best kernel.
pub fn conv2d_w2a8_i32<'w>(
    x: &QuantizedImages,
    params: &Conv2dParams,
    w: impl Into<PackedI2Ref<'w>>,
    out: &mut [i32],
) -> Result<()> {
    best().conv2d_w2a8_i32(x, params, w, out)
}

/// [`Kernel::conv2d_w2a8`] with the host's best kernel.
pub fn conv2d_w2a8<'w>(
    x: &QuantizedImages,
    params: &Conv2dParams,
    w: impl Into<PackedI2Ref<'w>>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    best().conv2d_w2a8(x, params, w, bias, out)
}
