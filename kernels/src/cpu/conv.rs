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
//! proportional to the whole batch's im2col matrix is ever allocated. A 1×1, stride-1,
//! unpadded convolution gathers by transposing channel rows. Tasks run on rayon; problems
//! below the GEMM driver's parallel threshold stay on the calling thread.
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

use rayon::prelude::*;

use super::dispatch::{Kernel, best};
use super::matmul::{MAX_K_W2A8, PARALLEL_MIN_MACS, SendPtr, check_bias, check_out, w2a8_epilogue};
use crate::error::{KernelError, Result};
use crate::format::i2::{PackedI2Ref, padded_k};
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
    /// Σ of a patch row as i32 (the W2A8 code-offset correction); unused for f32.
    fn row_sum(row: &[Self]) -> i32;
    /// Runs `f` on this thread's scratch buffers for this element type.
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<Self>) -> R) -> R;
}

/// Per-thread buffers of one task: the patch tile, its row sums and the raw result tile.
struct Scratch<X: PatchElem> {
    patch: Vec<X>,
    sums: Vec<i32>,
    tile: Vec<X::Acc>,
}

impl<X: PatchElem> Scratch<X> {
    const fn new() -> Self {
        Self {
            patch: Vec::new(),
            sums: Vec::new(),
            tile: Vec::new(),
        }
    }
}

thread_local! {
    static SCRATCH_I8: RefCell<Scratch<i8>> = const { RefCell::new(Scratch::new()) };
    static SCRATCH_F32: RefCell<Scratch<f32>> = const { RefCell::new(Scratch::new()) };
}

impl PatchElem for i8 {
    type Acc = i32;
    #[inline]
    fn row_sum(row: &[i8]) -> i32 {
        // |Σ| ≤ 127·K ≤ 127·MAX_K_W2A8 < i32::MAX: exact.
        row.iter().map(|&v| i32::from(v)).sum()
    }
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<i8>) -> R) -> R {
        SCRATCH_I8.with_borrow_mut(f)
    }
}

impl PatchElem for f32 {
    type Acc = f32;
    #[inline]
    fn row_sum(_: &[f32]) -> i32 {
        0
    }
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<f32>) -> R) -> R {
        SCRATCH_F32.with_borrow_mut(f)
    }
}

/// Positions per task: a patch tile of about [`PATCH_BYTES`], shrunk until every thread has
/// several tasks, then evened out over the image and rounded to the raw kernels' 4-row tiles.
fn block_positions(g: &Geometry, elem_bytes: usize, threads: usize) -> usize {
    let by_cache = (PATCH_BYTES / (g.kp * elem_bytes).max(1)).clamp(MIN_BLOCK, MAX_BLOCK);
    let blocks_wanted = (4 * threads).div_ceil(g.batch.max(1));
    let by_threads = g.l.div_ceil(blocks_wanted).max(MIN_BLOCK);
    let p = by_cache.min(by_threads);
    let blocks = g.l.div_ceil(p.max(1));
    g.l.div_ceil(blocks.max(1))
        .next_multiple_of(4)
        .min(g.l)
        .max(1)
}

/// Writes patch rows `0..m` (row stride `kp`, columns `0..k`) for output positions
/// `p0..p0 + m` of one image; `xg` holds the group's `cg` input planes. Zero-padding pixels
/// are written as zeros; columns `k..kp` are left alone.
fn gather<X: PatchElem>(g: &Geometry, xg: &[X], p0: usize, m: usize, patch: &mut [X]) {
    let (kp, hw) = (g.kp, g.h * g.w);
    if g.pointwise() {
        // Positions are pixels: the tile is the transpose of `cg` contiguous pixel runs.
        for c in 0..g.cg {
            let src = &xg[c * hw + p0..][..m];
            for (d, &v) in patch[c..].iter_mut().step_by(kp).zip(src) {
                *d = v;
            }
        }
        return;
    }
    // One output row segment at a time; for each patch column (c, ky, kx) the segment's
    // pixels are a strided run of one input row, clipped to the image, zeros outside.
    let mut i0 = 0;
    while i0 < m {
        let p = p0 + i0;
        let (oy, ox0) = (p / g.ow, p % g.ow);
        let len = (g.ow - ox0).min(m - i0);
        let ox1 = ox0 + len;
        for c in 0..g.cg {
            let plane = &xg[c * hw..][..hw];
            for ky in 0..g.kh {
                let col0 = (c * g.kh + ky) * g.kw;
                let iy = (oy * g.sh + ky * g.dh)
                    .checked_sub(g.ph)
                    .filter(|&iy| iy < g.h);
                for kx in 0..g.kw {
                    let dst = patch[i0 * kp + col0 + kx..].iter_mut().step_by(kp);
                    let Some(iy) = iy else {
                        dst.take(len).for_each(|d| *d = X::default());
                        continue;
                    };
                    // Pixel ix = ox·sw + off − pw lies in the row for ox in [lo, hi).
                    let off = kx * g.dw;
                    let lo = g.pw.saturating_sub(off).div_ceil(g.sw);
                    let hi = if g.w + g.pw > off {
                        (g.w + g.pw - off - 1) / g.sw + 1
                    } else {
                        0
                    };
                    let a = lo.clamp(ox0, ox1);
                    let b = hi.clamp(a, ox1);
                    let mut dst = dst.take(len);
                    dst.by_ref().take(a - ox0).for_each(|d| *d = X::default());
                    if b > a {
                        let row = &plane[iy * g.w..][..g.w];
                        let src = row[a * g.sw + off - g.pw..].iter().step_by(g.sw);
                        for (d, &v) in dst.by_ref().take(b - a).zip(src) {
                            *d = v;
                        }
                    }
                    dst.for_each(|d| *d = X::default());
                }
            }
        }
        i0 += len;
    }
}

/// The raw kernel signature both modes share (see [`super::scalar`] for the contract).
type RawFn<X, A> = unsafe fn(*const u8, usize, usize, *const X, usize, usize, *mut A, usize);

/// Runs the convolution: tasks of (image, position block), each gathering its patch tile
/// per group, calling `raw` on it and writing `epi(image, channel, raw_sum, patch_sum)` into
/// the NCHW output. `x` is the whole batch, `out` has `g.output_len()` elements.
fn drive<X: PatchElem, O: Copy + Send + Sync>(
    g: &Geometry,
    x: &[X],
    w: &PackedI2Ref<'_>,
    raw: RawFn<X, X::Acc>,
    out: &mut [O],
    epi: impl Fn(usize, usize, X::Acc, i32) -> O + Sync,
) {
    debug_assert_eq!(out.len(), g.output_len());
    if out.is_empty() {
        return;
    }
    let (kp, rb, ng, l) = (g.kp, g.kp / 4, g.ng, g.l);
    let macs = g
        .batch
        .saturating_mul(l)
        .saturating_mul(g.oc)
        .saturating_mul(kp);
    let parallel = macs >= PARALLEL_MIN_MACS;
    let threads = if parallel {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    let pb = block_positions(g, size_of::<X>(), threads);
    let blocks = l.div_ceil(pb);
    let outp = SendPtr(out.as_mut_ptr());
    let wd = w.data();
    let task = |t: usize| {
        let (b, p0) = (t / blocks, (t % blocks) * pb);
        let m = pb.min(l - p0);
        X::with_scratch(|s| {
            // Columns k..kp stay zero: gather writes only columns < k.
            s.patch.clear();
            s.patch.resize(m * kp, X::default());
            s.sums.clear();
            s.sums.resize(m, 0);
            s.tile.clear();
            s.tile.resize(m * ng, X::Acc::default());
            let image = &x[b * g.image_len()..][..g.image_len()];
            for grp in 0..g.groups {
                let xg = &image[grp * g.cg * g.h * g.w..][..g.cg * g.h * g.w];
                gather(g, xg, p0, m, &mut s.patch);
                for (sum, row) in s.sums.iter_mut().zip(s.patch.chunks_exact(kp.max(1))) {
                    *sum = X::row_sum(&row[..g.k]);
                }
                if kp > 0 && ng > 0 {
                    // SAFETY: the kernel exists only for ISAs the host supports; rows
                    // grp·ng.. of w are ng rows of rb bytes (w has oc = groups·ng rows, checked);
                    // the patch holds m rows of kp = 4·rb values; the tile m rows of ng.
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
                }
                for j in 0..ng {
                    let ch = grp * ng + j;
                    let base = (b * g.oc + ch) * l + p0;
                    for (i, &sum) in s.sums.iter().enumerate() {
                        let v = epi(b, ch, s.tile[i * ng + j], sum);
                        // SAFETY: base + i < output_len, and positions p0..p0 + m of image b
                        // belong to this task alone (tasks partition (image, position)).
                        unsafe { *outp.get().add(base + i) = v };
                    }
                }
            }
        });
    };
    let tasks = g.batch * blocks;
    if parallel && tasks > 1 {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}

impl Kernel {
    /// Exact-f32 convolution: `out[b, o, oy, ox] = (Σ w·x) · w_scale[o] + bias[o]` (see the
    /// module docs for the index map).
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
        drive(&g, x, w, self.f32, out, |_, ch, acc, _| {
            acc * w.scale(ch) + bias.map_or(0.0, |b| b[ch])
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
        drive(&g, x.data(), w, self.w2a8, out, |_, _, raw, sum| {
            raw.wrapping_sub(sum)
        });
        Ok(())
    }

    /// W2A8 convolution: `out[b, o, oy, ox] = (Σ w·x̃) · (x_scale[b] · w_scale[o]) + bias[o]`,
    /// NCHW. The integer sums equal [`Kernel::conv2d_w2a8_i32`]'s and the epilogue is the
    /// GEMM driver's, so every ISA returns the same bits. Error against the exact-f32
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
        drive(&g, x.data(), w, self.w2a8, out, |b, ch, raw, sum| {
            w2a8_epilogue(raw, sum, xs[b], w.scale(ch), bias.map_or(0.0, |v| v[ch]))
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
