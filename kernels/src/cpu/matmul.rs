//! The threaded driver: validates shapes, splits the output into tiles for rayon, calls the
//! raw kernel per tile and applies the scale epilogue while the tile is hot.
//!
//! Both modes compute `y[M×N] = x[M×K] · Wᵀ (+ bias)`:
//! * W2A8: `y = (Σ_k code·x̃ − Σ_k x̃) · (x_scale · w_scale) + bias`, the integer part exact;
//! * exact f32: `y = (Σ_k w·x) · w_scale + bias`, adds/subtracts on the f32 activations.
//!
//! With group scales (one per row and group of 64, 128 or 256 columns) each group's sum is
//! scaled and the products are accumulated in f32 in group order by the raw group kernels
//! (order and exactness: [`super::scalar`], "Group scales"), then the bias is added. A matrix
//! with one group per row (`K ≤ group size`) takes the per-row path: the same arithmetic.

use rayon::prelude::*;

use super::dispatch::{GroupFn, Groups, Kernel, best};
use crate::error::{KernelError, Result};
use crate::format::i2::PackedI2Ref;
use crate::quant::QuantizedActivations;

/// The largest K for which W2A8 integer sums are exact in i32: every lane sums
/// `code · x̃` with code ≤ 2 and |x̃| ≤ 127, so `254 · K ≤ i32::MAX` ⇒ K ≤ 8 454 660.
pub const MAX_K_W2A8: usize = i32::MAX as usize / (2 * 127);

/// Tasks per thread: enough for rayon to even out uneven progress.
const TASKS_PER_THREAD: usize = 4;
/// Task width in output columns for GEMMs and exact f32: whole 64-column tiles of every
/// kernel (the AVX-512 panels are 32 wide, the few-row f32 tiles 64).
const GEMM_COL_GRANULE: usize = 64;
/// Task width in output columns for the W2A8 GEMV: 8 weight rows, its widest tile.
const GEMV_COL_GRANULE: usize = 8;
/// Task height in rows: a multiple of the 12- (AVX-512) and 6-row (AVX2) register tiles.
const ROW_GRANULE: usize = 12;
/// The most rows one task takes: it keeps a task's output tile, which every K chunk of the
/// panel kernels revisits, near L2 (512 rows × 64 columns × 4 B = 128 KiB per column tile).
const MAX_TILE_ROWS: usize = 512;
/// Products with at most this many activation rows run on the spinning pool.
const SPIN_MAX_ROWS: usize = 4;
/// Below this many MACs a problem runs on the calling thread.
pub(super) const PARALLEL_MIN_MACS: usize = 1 << 18;

#[derive(Clone, Copy)]
pub(super) struct SendPtr<T>(pub(super) *mut T);
// SAFETY: tasks write disjoint tiles through the pointer; see `run_tiles`.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// A method, so closures capture the whole `Send` wrapper rather than the raw field.
    #[inline(always)]
    pub(super) fn get(self) -> *mut T {
        self.0
    }
}

/// A task: rows `i0..i1` × columns `j0..j1` of the output.
#[derive(Clone, Copy)]
pub(super) struct Tile {
    pub(super) i0: usize,
    pub(super) i1: usize,
    pub(super) j0: usize,
    pub(super) j1: usize,
}

/// Splits `m × n` into tasks. Columns first: a task then decodes (or streams) only its own
/// weight rows, once for all its rows of x, and the kernels block for L1/L2 inside
/// (`x86_64::avx512`). Rows are split only when the columns leave threads without work, or
/// past [`MAX_TILE_ROWS`]. `col_granule` is the kernel's tile width.
fn tiles(m: usize, n: usize, kp: usize, col_granule: usize) -> Vec<Tile> {
    if m == 0 || n == 0 {
        return Vec::new();
    }
    if m.saturating_mul(n).saturating_mul(kp) < PARALLEL_MIN_MACS {
        return vec![Tile {
            i0: 0,
            i1: m,
            j0: 0,
            j1: n,
        }];
    }
    let tasks = TASKS_PER_THREAD * rayon::current_num_threads().max(1);
    let nc = n.div_ceil(tasks).div_ceil(col_granule) * col_granule;
    let n_tiles = n.div_ceil(nc);
    let m_tiles = tasks
        .div_ceil(n_tiles)
        .max(m.div_ceil(MAX_TILE_ROWS))
        .min(m.div_ceil(ROW_GRANULE));
    let mc = m.div_ceil(m_tiles).div_ceil(ROW_GRANULE) * ROW_GRANULE;
    let mut v = Vec::new();
    for i0 in (0..m).step_by(mc) {
        for j0 in (0..n).step_by(nc) {
            v.push(Tile {
                i0,
                i1: (i0 + mc).min(m),
                j0,
                j1: (j0 + nc).min(n),
            });
        }
    }
    v
}

/// The task width for `m` rows in W2A8 with the K-lane GEMV (`wide = false`), or in any
/// mode whose kernels tile columns in panels (exact f32, group scales).
fn col_granule(m: usize, wide: bool) -> usize {
    if m == 1 && !wide {
        GEMV_COL_GRANULE
    } else {
        GEMM_COL_GRANULE
    }
}

/// Runs the tasks of an `m × n` product: on the calling thread when there is one, on the
/// spinning pool for a few rows (the back-to-back GEMVs of decoding, [`super::spin`]), on
/// rayon otherwise.
pub(super) fn run_tiles(
    m: usize,
    n: usize,
    kp: usize,
    wide: bool,
    task: impl Fn(Tile) + Sync + Send,
) {
    let t = tiles(m, n, kp, col_granule(m, wide));
    if t.len() <= 1 {
        t.into_iter().for_each(task);
    } else if m <= SPIN_MAX_ROWS {
        super::spin::run(t.len(), &|i| task(t[i]));
    } else {
        t.into_par_iter().for_each(task);
    }
}

pub(super) fn check_out(len: usize, m: usize, n: usize) -> Result<()> {
    let expected = m.checked_mul(n).ok_or(KernelError::ShapeOverflow {
        n: m as u64,
        k: n as u64,
    })?;
    if len != expected {
        return Err(KernelError::Length {
            what: "output",
            expected,
            actual: len,
        });
    }
    Ok(())
}

pub(super) fn check_bias(bias: Option<&[f32]>, n: usize) -> Result<()> {
    match bias {
        Some(b) if b.len() != n => Err(KernelError::Length {
            what: "bias",
            expected: n,
            actual: b.len(),
        }),
        _ => Ok(()),
    }
}

fn check_w2a8(x: &QuantizedActivations, w: &PackedI2Ref<'_>) -> Result<()> {
    if x.k() != w.k() {
        return Err(KernelError::Shape {
            what: "K of activations and weights",
            left: x.k(),
            right: w.k(),
        });
    }
    if w.k() > MAX_K_W2A8 {
        return Err(KernelError::KTooLarge {
            k: w.k(),
            max: MAX_K_W2A8,
        });
    }
    Ok(())
}

/// The scales of a row-scaled matrix ([`PackedI2Ref::row_scaled`]) as the epilogues read
/// them, one lookup per output: the one per-tensor value, or row `j`'s.
#[derive(Clone, Copy)]
struct RowScales<'a> {
    scales: &'a [f32],
    per_tensor: bool,
}

impl<'a> RowScales<'a> {
    fn of(w: &PackedI2Ref<'a>) -> Self {
        debug_assert!(w.row_scaled());
        Self {
            scales: w.scales(),
            per_tensor: w.scales().len() == 1,
        }
    }

    #[inline(always)]
    fn get(self, j: usize) -> f32 {
        if self.per_tensor {
            self.scales[0]
        } else {
            self.scales[j]
        }
    }
}

/// The W2A8 epilogue, one definition for every ISA so results are bit-identical.
#[inline(always)]
pub(super) fn w2a8_epilogue(raw: i32, sum: i32, xs: f32, ws: f32, bias: f32) -> f32 {
    (raw.wrapping_sub(sum) as f32) * (xs * ws) + bias
}

/// `Σ x` over each group's columns of `m` rows of `kp` values (zero past K), row-major
/// `[m, count]`: the code-offset correction of the group kernels. Exact: a group holds at
/// most 256 values of magnitude ≤ 128.
pub(super) fn group_sums(
    x: &[i8],
    m: usize,
    kp: usize,
    size: usize,
    count: usize,
    out: &mut Vec<i32>,
) {
    out.clear();
    for row in x.chunks_exact(kp.max(1)).take(m) {
        out.extend((0..count).map(|g| {
            row[super::scalar::group_columns(g, size, kp)]
                .iter()
                .map(|&v| i32::from(v))
                .sum::<i32>()
        }));
    }
    // m rows of an empty K have no values but still `count` (= 0) sums each.
    debug_assert_eq!(out.len(), m * count);
}

/// Adds the bias (or `+0.0`, as the per-row epilogue does) to the `m × n` tile at `out`.
///
/// # Safety
/// `out` has `m` rows of stride `ldo ≥ n` that belong to the caller alone; `bias` (if any)
/// has at least `j0 + n` values.
#[inline]
unsafe fn add_bias(out: *mut f32, ldo: usize, m: usize, n: usize, bias: Option<&[f32]>, j0: usize) {
    for i in 0..m {
        // SAFETY: row i of the caller's tile.
        let row = unsafe { std::slice::from_raw_parts_mut(out.add(i * ldo), n) };
        match bias {
            Some(b) => row
                .iter_mut()
                .zip(&b[j0..j0 + n])
                .for_each(|(y, &b)| *y += b),
            None => row.iter_mut().for_each(|y| *y += 0.0),
        }
    }
}

impl Kernel {
    /// Runs the raw W2A8 kernel over all tiles, then `finish(tile)` on each.
    fn w2a8_tiles(
        &self,
        x: &QuantizedActivations,
        w: &PackedI2Ref<'_>,
        out: SendPtr<i32>,
        finish: impl Fn(Tile) + Sync + Send,
    ) {
        let (m, n, rb) = (x.m(), w.n(), w.row_bytes());
        let kp = x.k_padded();
        let (xd, wd) = (x.data(), w.data());
        run_tiles(m, n, kp, false, |t| {
            // SAFETY: `self` exists only for ISAs the host supports; w holds n rows of rb
            // bytes and x holds m rows of kp = 4·rb values (same K, checked); the tile's
            // output rows i0..i1, columns j0..j1 of the m × n buffer belong to this task alone.
            unsafe {
                (self.w2a8)(
                    wd.as_ptr().add(t.j0 * rb),
                    rb,
                    t.j1 - t.j0,
                    xd.as_ptr().add(t.i0 * kp),
                    kp,
                    t.i1 - t.i0,
                    out.get().add(t.i0 * n + t.j0),
                    n,
                );
            }
            finish(t);
        });
    }

    /// Exact integer results `Σ_k w[j,k] · x̃[i,k]` (before any scale), `out` is `m × n`.
    pub fn matmul_w2a8_i32<'w>(
        &self,
        x: &QuantizedActivations,
        w: impl Into<PackedI2Ref<'w>>,
        out: &mut [i32],
    ) -> Result<()> {
        let w = &w.into();
        check_w2a8(x, w)?;
        check_out(out.len(), x.m(), w.n())?;
        let n = w.n();
        let ptr = SendPtr(out.as_mut_ptr());
        let sums = x.sums();
        self.w2a8_tiles(x, w, ptr, |t| {
            for (di, &sum) in sums[t.i0..t.i1].iter().enumerate() {
                let i = t.i0 + di;
                for j in t.j0..t.j1 {
                    // SAFETY: inside this task's tile, written by the kernel just before.
                    unsafe {
                        let p = ptr.get().add(i * n + j);
                        *p = (*p).wrapping_sub(sum);
                    }
                }
            }
        });
        Ok(())
    }

    /// W2A8: `out[i, j] = (Σ_k w[j,k]·x̃[i,k]) · x_scale[i] · w_scale[j] + bias[j]`, `out`
    /// is `m × n`. With group scales, `out[i, j] = Σ_g (Σ_{k ∈ g} w[j,k]·x̃[i,k]) ·
    /// (x_scale[i] · w_scale[j, g]) + bias[j]`, the integer sum of each group exact and the
    /// products added in group order (see the module docs).
    ///
    /// # Errors
    /// [`KernelError::Shape`] when the K of `x` and `w` differ, [`KernelError::KTooLarge`]
    /// above [`MAX_K_W2A8`], [`KernelError::Length`] for a wrong bias or output length.
    pub fn matmul_w2a8<'w>(
        &self,
        x: &QuantizedActivations,
        w: impl Into<PackedI2Ref<'w>>,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        let w = &w.into();
        check_w2a8(x, w)?;
        check_out(out.len(), x.m(), w.n())?;
        check_bias(bias, w.n())?;
        if !w.row_scaled() {
            self.w2a8_grouped(x, w, bias, out);
            return Ok(());
        }
        let n = w.n();
        // The raw i32 sums are written into the f32 output and converted in place: same
        // size, any bit pattern is a valid f32, and no scratch buffer is needed.
        let fptr = SendPtr(out.as_mut_ptr());
        let iptr = SendPtr(fptr.get().cast::<i32>());
        let (sums, xs) = (x.sums(), x.scales());
        let ws = RowScales::of(w);
        self.w2a8_tiles(x, w, iptr, |t| {
            for i in t.i0..t.i1 {
                for j in t.j0..t.j1 {
                    let b = bias.map_or(0.0, |b| b[j]);
                    // SAFETY: inside this task's tile, written by the kernel just before.
                    unsafe {
                        let raw = *iptr.get().add(i * n + j);
                        *fptr.get().add(i * n + j) =
                            w2a8_epilogue(raw, sums[i], xs[i], ws.get(j), b);
                    }
                }
            }
        });
        Ok(())
    }

    /// Exact f32 activations: `out[i, j] = (Σ_k w[j,k]·x[i,k]) · w_scale[j] + bias[j]`,
    /// `x` is `m × K` row-major, `out` `m × n`. With group scales, `out[i, j] = Σ_g
    /// (Σ_{k ∈ g} w[j,k]·x[i,k]) · w_scale[j, g] + bias[j]`, each group summed in column
    /// order and the products added in group order (see the module docs).
    ///
    /// # Errors
    /// [`KernelError::Length`] for a wrong activation, bias or output length.
    pub fn matmul_f32<'w>(
        &self,
        x: &[f32],
        m: usize,
        w: impl Into<PackedI2Ref<'w>>,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        let w = &w.into();
        let (n, k, kp, rb) = (w.n(), w.k(), w.k_padded(), w.row_bytes());
        if x.len() != m * k {
            return Err(KernelError::Length {
                what: "activations",
                expected: m * k,
                actual: x.len(),
            });
        }
        check_out(out.len(), m, n)?;
        check_bias(bias, n)?;
        if !w.row_scaled() {
            self.f32_grouped(x, m, w, bias, out);
            return Ok(());
        }
        // The kernels read whole blocks: give them zero-padded rows unless K is aligned.
        let padded;
        let xp: &[f32] = if k == kp {
            x
        } else {
            let mut v = vec![0f32; m * kp];
            for i in 0..m {
                v[i * kp..i * kp + k].copy_from_slice(&x[i * k..(i + 1) * k]);
            }
            padded = v;
            &padded
        };
        let ptr = SendPtr(out.as_mut_ptr());
        let (wd, ws) = (w.data(), RowScales::of(w));
        run_tiles(m, n, kp, true, |t| {
            // SAFETY: as in `w2a8_tiles`, with f32 activations of row stride kp.
            unsafe {
                (self.f32)(
                    wd.as_ptr().add(t.j0 * rb),
                    rb,
                    t.j1 - t.j0,
                    xp.as_ptr().add(t.i0 * kp),
                    kp,
                    t.i1 - t.i0,
                    ptr.get().add(t.i0 * n + t.j0),
                    n,
                );
                for i in t.i0..t.i1 {
                    for j in t.j0..t.j1 {
                        let p = ptr.get().add(i * n + j);
                        *p = *p * ws.get(j) + bias.map_or(0.0, |b| b[j]);
                    }
                }
            }
        });
        Ok(())
    }

    /// [`Kernel::matmul_w2a8`] for weights with several scale groups per row (operands
    /// checked by the caller).
    fn w2a8_grouped(
        &self,
        x: &QuantizedActivations,
        w: &PackedI2Ref<'_>,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (m, kp) = (x.m(), x.k_padded());
        let (size, count) = (w.group_size().unwrap_or(1), w.groups());
        let mut xsum = Vec::new();
        group_sums(x.data(), m, kp, size, count, &mut xsum);
        run_grouped(
            self.w2a8_group,
            w,
            x.data(),
            m,
            kp,
            x.scales(),
            &xsum,
            bias,
            out,
        );
    }

    /// [`Kernel::matmul_f32`] for weights with several scale groups per row (operands
    /// checked by the caller).
    fn f32_grouped(
        &self,
        x: &[f32],
        m: usize,
        w: &PackedI2Ref<'_>,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (k, kp) = (w.k(), w.k_padded());
        let padded;
        let xp: &[f32] = if k == kp {
            x
        } else {
            let mut v = vec![0f32; m * kp];
            for i in 0..m {
                v[i * kp..i * kp + k].copy_from_slice(&x[i * k..(i + 1) * k]);
            }
            padded = v;
            &padded
        };
        run_grouped(self.f32_group, w, xp, m, kp, &[], &[], bias, out);
    }
}

/// Runs a group-scaled kernel over the output's tiles and adds the bias. `x` holds `m` rows
/// of `kp` activations; for W2A8, `xs` the rows' scales and `xsum` their per-group sums
/// (`m × count`); for f32 both are empty (the kernel does not read them).
#[allow(clippy::too_many_arguments)]
fn run_grouped<T: Sync>(
    kernel: GroupFn<T>,
    w: &PackedI2Ref<'_>,
    x: &[T],
    m: usize,
    kp: usize,
    xs: &[f32],
    xsum: &[i32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (n, rb) = (w.n(), w.row_bytes());
    let (size, count) = (w.group_size().unwrap_or(1), w.groups());
    let (wd, ws) = (w.data(), w.scales());
    let ptr = SendPtr(out.as_mut_ptr());
    run_tiles(m, n, kp, true, |t| {
        let gr = Groups {
            size,
            count,
            ws: ws[t.j0 * count..].as_ptr(),
            // Never dereferenced when empty (f32), hence `wrapping_add`.
            xs: xs.as_ptr().wrapping_add(t.i0),
            xsum: xsum.as_ptr().wrapping_add(t.i0 * count),
        };
        // SAFETY: the kernel exists only for ISAs the host supports; w holds n rows of rb
        // bytes and ws n rows of `count` scales (checked on construction), x m rows of
        // kp = 4·rb values and, for W2A8, xs one scale and xsum `count` sums per row; the
        // tile's output rows i0..i1, columns j0..j1 belong to this task alone.
        unsafe {
            let o = ptr.get().add(t.i0 * n + t.j0);
            kernel(
                wd.as_ptr().add(t.j0 * rb),
                rb,
                t.j1 - t.j0,
                x.as_ptr().add(t.i0 * kp),
                kp,
                t.i1 - t.i0,
                o,
                n,
                &gr,
            );
            add_bias(o, n, t.i1 - t.i0, t.j1 - t.j0, bias, t.j0);
        }
    });
}

/// [`Kernel::matmul_w2a8`] with the host's best kernel.
pub fn matmul_w2a8<'w>(
    x: &QuantizedActivations,
    w: impl Into<PackedI2Ref<'w>>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    best().matmul_w2a8(x, w, bias, out)
}

/// [`Kernel::matmul_f32`] with the host's best kernel.
pub fn matmul_f32<'w>(
    x: &[f32],
    m: usize,
    w: impl Into<PackedI2Ref<'w>>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    best().matmul_f32(x, m, w, bias, out)
}
