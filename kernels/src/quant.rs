//! Quantizers: ternary weights (BitNet b1.58 absmean, TWN threshold) and int8 activations.
//!
//! * **absmean** (BitNet b1.58, arXiv:2402.17764): `γ = mean|W|`,
//!   `W̃ = RoundClip(W / γ, −1, 1)`, scale `γ`. Rounding is half away from zero, so a weight
//!   becomes ±1 exactly when `|W / γ| ≥ 0.5`. An all-zero group has `γ = 0` and packs to zeros
//!   (the division is never taken), which is BitNet's `ε` without its bias on small groups.
//! * **TWN** (Ternary Weight Networks, arXiv:1605.04711): `Δ = 0.7 · mean|W|`,
//!   `W̃ = sign(W)` where `|W| > Δ`, else 0; scale `α = mean(|W| : |W| > Δ)` (0 when none).
//! * **activations**: per row (per token) absmax, `s = max|x| / 127`,
//!   `x̃ = round(x · 127 / max|x|)` in [−127, 127]; an all-zero row has `s = 0`. For
//!   convolutions the same rule runs once per image over its whole feature map
//!   ([`QuantizedImages`]), not per patch.
//!
//! Means are accumulated in f64 (eight partial sums, so the loop vectorises) and rounded to
//! f32 once. NaN or ±Inf anywhere in the input is an error, never a silent zero.

use crate::error::{KernelError, Result};
use crate::format::i2::{self, PackedI2};
use crate::format::{PackedT1, Scales};

/// How ternary values and scales are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// BitNet b1.58: threshold 0.5·mean|W|, scale mean|W|.
    AbsMean,
    /// Ternary Weight Networks: threshold 0.7·mean|W|, scale mean of the kept |W|.
    Twn,
}

/// Whether one scale covers the tensor or each output row has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One scale for the whole matrix.
    PerTensor,
    /// One scale per output row (output channel).
    PerRow,
}

/// A quantised but unpacked ternary matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Ternary {
    /// Output rows.
    pub n: usize,
    /// Columns.
    pub k: usize,
    /// Row-major values in {−1, 0, +1}.
    pub values: Vec<i8>,
    /// Scales.
    pub scales: Scales,
}

/// The per-group statistics a method needs: the threshold and, for TWN, the scale.
#[derive(Clone, Copy)]
struct Group {
    /// Divisor (absmean: γ) or threshold (TWN: Δ).
    param: f32,
    /// The scale stored for the group.
    scale: f32,
}

fn check_finite(w: &[f32], what: &'static str) -> Result<()> {
    // One branch-free pass; the rare failure path then finds the index.
    if abs_max_bits(w) < f32::INFINITY.to_bits() {
        return Ok(());
    }
    let index = w.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Err(KernelError::NonFinite {
        what,
        index,
        value: w[index],
    })
}

/// The largest `|v|`'s bit pattern: for finite values the bits of `|v|` order as the values
/// do, so an integer max (which vectorises, unlike an f32 max reduction) finds `max|v|`, and
/// NaN or ±Inf anywhere makes it ≥ the bits of +Inf.
#[inline]
fn abs_max_bits(v: &[f32]) -> u32 {
    v.iter().fold(0u32, |a, v| a.max(v.to_bits() & 0x7fff_ffff))
}

/// Σ|w| in f64 with eight independent partial sums.
fn abs_sum(w: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = w.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += f64::from(v.abs());
        }
    }
    acc.iter().sum::<f64>() + rem.iter().map(|v| f64::from(v.abs())).sum::<f64>()
}

fn group_stats(method: Method, groups: &[&[f32]], count: usize) -> Group {
    let mean = if count == 0 {
        0.0
    } else {
        (groups.iter().map(|g| abs_sum(g)).sum::<f64>() / count as f64) as f32
    };
    match method {
        Method::AbsMean => Group {
            param: mean,
            scale: mean,
        },
        Method::Twn => {
            let delta = 0.7 * mean;
            let (mut sum, mut kept) = (0f64, 0usize);
            for g in groups {
                for v in g.iter().map(|v| v.abs()).filter(|&a| a > delta) {
                    sum += f64::from(v);
                    kept += 1;
                }
            }
            Group {
                param: delta,
                scale: if kept == 0 {
                    0.0
                } else {
                    (sum / kept as f64) as f32
                },
            }
        }
    }
}

/// The ternary value of `w` under a group's statistics.
#[inline(always)]
fn ternary_of(method: Method, w: f32, g: Group) -> i8 {
    match method {
        // γ = 0 means the group is all zeros: w / γ would be NaN and every compare false.
        Method::AbsMean => {
            let r = w / g.param;
            (r >= 0.5) as i8 - (r <= -0.5) as i8
        }
        Method::Twn => (w > g.param) as i8 - (w < -g.param) as i8,
    }
}

fn stats(method: Method, gran: Granularity, w: &[f32], n: usize, k: usize) -> Vec<Group> {
    match gran {
        Granularity::PerTensor => vec![group_stats(method, &[w], n * k)],
        Granularity::PerRow => (0..n)
            .map(|r| group_stats(method, &[&w[r * k..(r + 1) * k]], k))
            .collect(),
    }
}

fn scales_of(gran: Granularity, groups: &[Group]) -> Scales {
    match gran {
        Granularity::PerTensor => Scales::PerTensor(groups[0].scale),
        Granularity::PerRow => Scales::PerRow(groups.iter().map(|g| g.scale).collect()),
    }
}

fn check_shape(w: &[f32], n: usize, k: usize) -> Result<()> {
    let len = n.checked_mul(k).ok_or(KernelError::ShapeOverflow {
        n: n as u64,
        k: k as u64,
    })?;
    crate::format::i2::check_rows_have_columns(n, k)?;
    if w.len() != len {
        return Err(KernelError::Length {
            what: "weights",
            expected: len,
            actual: w.len(),
        });
    }
    check_finite(w, "weights")
}

/// Quantises an `n × k` row-major f32 matrix to ternary values and scales.
pub fn quantize(
    w: &[f32],
    n: usize,
    k: usize,
    method: Method,
    gran: Granularity,
) -> Result<Ternary> {
    check_shape(w, n, k)?;
    let groups = stats(method, gran, w, n, k);
    let per_row = gran == Granularity::PerRow;
    let values = w
        .iter()
        .enumerate()
        .map(|(i, &v)| ternary_of(method, v, groups[if per_row { i / k } else { 0 }]))
        .collect();
    Ok(Ternary {
        n,
        k,
        values,
        scales: scales_of(gran, &groups),
    })
}

impl PackedI2 {
    /// Quantises and packs in one pass over the weights (no intermediate i8 matrix).
    pub fn quantize(
        w: &[f32],
        n: usize,
        k: usize,
        method: Method,
        gran: Granularity,
    ) -> Result<Self> {
        check_shape(w, n, k)?;
        i2::padded_k(k).ok_or(KernelError::ShapeOverflow {
            n: n as u64,
            k: k as u64,
        })?;
        let groups = stats(method, gran, w, n, k);
        let per_row = gran == Granularity::PerRow;
        Ok(PackedI2::pack_with(
            n,
            k,
            scales_of(gran, &groups),
            |r, c| {
                let g = groups[if per_row { r } else { 0 }];
                (ternary_of(method, w[r * k + c], g) + 1) as u8
            },
        ))
    }
}

impl Ternary {
    /// Validates already-ternary values (e.g. a BitNet checkpoint) with their scales.
    pub fn new(values: Vec<i8>, n: usize, k: usize, scales: Scales) -> Result<Self> {
        // PackedI2::from_ternary performs exactly these checks; keep one definition of valid.
        PackedI2::from_ternary(&values, n, k, scales.clone())?;
        Ok(Self {
            n,
            k,
            values,
            scales,
        })
    }

    /// Packs into the 2-bit kernel format.
    pub fn pack_i2(&self) -> PackedI2 {
        PackedI2::from_ternary(&self.values, self.n, self.k, self.scales.clone())
            .expect("a Ternary is valid by construction")
    }

    /// Packs into the base-3 storage format.
    pub fn pack_t1(&self) -> PackedT1 {
        PackedT1::from_i2(&self.pack_i2())
    }
}

/// Checks already-quantised int8 rows (`rows × len`, one scale each) for
/// [`QuantizedActivations::from_i8`] and [`QuantizedImages::from_i8`]: lengths, finite
/// non-negative scales, and no −128 (outside the symmetric range the kernels assume).
fn check_i8_rows(q: &[i8], rows: usize, len: usize, scales: &[f32]) -> Result<()> {
    let total = rows.checked_mul(len).ok_or(KernelError::ShapeOverflow {
        n: rows as u64,
        k: len as u64,
    })?;
    if q.len() != total {
        return Err(KernelError::Length {
            what: "activations",
            expected: total,
            actual: q.len(),
        });
    }
    if scales.len() != rows {
        return Err(KernelError::Length {
            what: "activation scales",
            expected: rows,
            actual: scales.len(),
        });
    }
    if let Some((index, &value)) = scales
        .iter()
        .enumerate()
        .find(|(_, s)| !s.is_finite() || **s < 0.0)
    {
        return Err(KernelError::BadScale { index, value });
    }
    if let Some(index) = q.iter().position(|&v| v == i8::MIN) {
        return Err(KernelError::ActivationRange {
            index,
            value: i8::MIN,
        });
    }
    Ok(())
}

/// [`check_shape`] with the errors naming the activations.
fn check_activations(x: &[f32], m: usize, k: usize) -> Result<()> {
    check_shape(x, m, k).map_err(|e| match e {
        KernelError::NonFinite { index, value, .. } => KernelError::NonFinite {
            what: "activations",
            index,
            value,
        },
        KernelError::Length {
            expected, actual, ..
        } => KernelError::Length {
            what: "activations",
            expected,
            actual,
        },
        e => e,
    })
}

/// `y.round().clamp(−127, 127) as i8` (half away from zero, NaN → 0), bit for bit, in
/// operations that vectorise on every x86-64 (`f32::round` is a libm call without SSE4.1, and
/// the saturating `as i32` a scalar sequence): clamping first cannot change the result, the
/// truncation is exact on [−127, 127], the fraction `y − trunc(y)` is exact, and
/// `|fraction| ≥ 0.5` moves one step away from zero.
#[inline(always)]
fn round_clamp(y: f32) -> i8 {
    // NaN (0 · ∞ when max|x| is tiny) becomes 0, as `round` then `as` would make it.
    let y = if y.is_nan() {
        0.0
    } else {
        y.clamp(-127.0, 127.0)
    };
    // SAFETY: y is finite and within [−127, 127], where truncation to i32 is defined.
    let t: i32 = unsafe { y.to_int_unchecked() };
    let frac = y - t as f32;
    (t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)) as i8
}

/// The activation quantizer of the module docs on one group of values (a row, an image):
/// writes `x̃` into `dst` (same length as `src`, finite values) and returns `(scale, Σ x̃)`.
/// Every int8 activation type goes through here, so their bits agree.
#[inline]
fn quantize_absmax(src: &[f32], dst: &mut [i8]) -> (f32, i32) {
    let amax = f32::from_bits(abs_max_bits(src));
    let mut sum = 0i32;
    if amax > 0.0 {
        let inv = f32::from(ACT_MAX) / amax;
        for (d, &v) in dst.iter_mut().zip(src) {
            // |v·inv| ≤ 127 up to rounding of inv; the clamp keeps it in range.
            let q = round_clamp(v * inv);
            *d = q;
            // Exact for K ≤ MAX_K_W2A8 (|Σ| ≤ 127·K), the only K the kernels accept.
            sum = sum.wrapping_add(i32::from(q));
        }
    } else {
        dst.fill(0);
    }
    (amax / f32::from(ACT_MAX), sum)
}

/// Int8 activations: `m` rows of `k` values, each row zero-padded to `k_padded`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuantizedActivations {
    m: usize,
    k: usize,
    k_padded: usize,
    data: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
}

/// Largest magnitude of a quantised activation.
pub const ACT_MAX: i8 = 127;

impl QuantizedActivations {
    /// Quantises `x` (`m × k`, row-major) per row.
    pub fn quantize(x: &[f32], m: usize, k: usize) -> Result<Self> {
        let mut q = Self::default();
        q.quantize_into(x, m, k)?;
        Ok(q)
    }

    /// Same as [`QuantizedActivations::quantize`], reusing this value's buffers.
    pub fn quantize_into(&mut self, x: &[f32], m: usize, k: usize) -> Result<()> {
        check_activations(x, m, k)?;
        let kp = i2::padded_k(k).ok_or(KernelError::ShapeOverflow {
            n: m as u64,
            k: k as u64,
        })?;
        self.m = m;
        self.k = k;
        self.k_padded = kp;
        self.data.clear();
        self.data.resize(m * kp, 0);
        self.scales.clear();
        self.sums.clear();
        for r in 0..m {
            let (scale, sum) =
                quantize_absmax(&x[r * k..(r + 1) * k], &mut self.data[r * kp..r * kp + k]);
            self.scales.push(scale);
            self.sums.push(sum);
        }
        Ok(())
    }

    /// Builds activations from already-quantised rows (tests, benchmarks, custom schemes).
    /// Values must lie in [−127, 127]; `scales` has one entry per row.
    pub fn from_i8(q: &[i8], m: usize, k: usize, scales: Vec<f32>) -> Result<Self> {
        check_i8_rows(q, m, k, &scales)?;
        let kp = i2::padded_k(k).ok_or(KernelError::ShapeOverflow {
            n: m as u64,
            k: k as u64,
        })?;
        let mut data = vec![0i8; m * kp];
        let mut sums = Vec::with_capacity(m);
        for r in 0..m {
            data[r * kp..r * kp + k].copy_from_slice(&q[r * k..(r + 1) * k]);
            let row = &q[r * k..(r + 1) * k];
            sums.push(row.iter().fold(0i32, |a, &v| a.wrapping_add(i32::from(v))));
        }
        Ok(Self {
            m,
            k,
            k_padded: kp,
            data,
            scales,
            sums,
        })
    }

    /// Rows.
    pub fn m(&self) -> usize {
        self.m
    }
    /// Logical columns.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Row stride of [`QuantizedActivations::data`].
    pub fn k_padded(&self) -> usize {
        self.k_padded
    }
    /// Quantised values, `m × k_padded`, zero in the padding.
    pub fn data(&self) -> &[i8] {
        &self.data
    }
    /// Per-row scales (`x ≈ x̃ · scale`).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }
    /// Per-row sums of the quantised values (for the code-offset correction).
    pub fn sums(&self) -> &[i32] {
        &self.sums
    }
}

/// Below this many values an image batch is quantised on the calling thread.
const PARALLEL_MIN_VALUES: usize = 1 << 16;

/// Int8 feature maps for convolutions: `batch` images of `image_len` values each (an NCHW
/// image is `C·H·W` values), quantised with **one absmax scale per image** — the activation
/// quantizer of the module docs applied to the whole feature map rather than per row, with
/// the same rounding, so an image quantises to the same bits as a one-row
/// [`QuantizedActivations`] of the same values. The convolution kernels
/// ([`crate::cpu::conv2d_w2a8`]) gather their patches from these values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuantizedImages {
    batch: usize,
    image_len: usize,
    data: Vec<i8>,
    scales: Vec<f32>,
}

impl QuantizedImages {
    /// Quantises `x` (`batch × image_len`, image-major, e.g. NCHW) with one scale per image.
    ///
    /// # Errors
    /// [`KernelError::Length`] when `x.len() != batch · image_len`,
    /// [`KernelError::ShapeOverflow`] when that product overflows, and
    /// [`KernelError::NonFinite`] on NaN or ±Inf.
    pub fn quantize(x: &[f32], batch: usize, image_len: usize) -> Result<Self> {
        let mut q = Self::default();
        q.quantize_into(x, batch, image_len)?;
        Ok(q)
    }

    /// Same as [`QuantizedImages::quantize`], reusing this value's buffers. Large batches
    /// are quantised image-parallel with rayon; the result does not depend on the threading.
    /// On error `self` is left empty (no images).
    pub fn quantize_into(&mut self, x: &[f32], batch: usize, image_len: usize) -> Result<()> {
        use rayon::prelude::*;
        // Images of no values (a conv with no input channels) are valid, unlike rows of
        // none, so the checks are these rather than check_shape's.
        let len = batch
            .checked_mul(image_len)
            .ok_or(KernelError::ShapeOverflow {
                n: batch as u64,
                k: image_len as u64,
            })?;
        if x.len() != len {
            return Err(KernelError::Length {
                what: "activations",
                expected: len,
                actual: x.len(),
            });
        }
        // Buffers are reused unzeroed: every value and scale is written below.
        self.batch = batch;
        self.image_len = image_len;
        self.data.resize(len, 0);
        self.scales.resize(batch, 0.0);
        if image_len == 0 {
            return Ok(());
        }
        // One pass finds both max|x| and whether the image is finite (NaN scale marks it),
        // the next quantises it while it is still in cache.
        let one = |((dst, scale), src): ((&mut [i8], &mut f32), &[f32])| {
            *scale = if abs_max_bits(src) < f32::INFINITY.to_bits() {
                quantize_absmax(src, dst).0
            } else {
                f32::NAN
            };
        };
        if len < PARALLEL_MIN_VALUES {
            self.data
                .chunks_exact_mut(image_len)
                .zip(&mut self.scales)
                .zip(x.chunks_exact(image_len))
                .for_each(one);
        } else {
            self.data
                .par_chunks_exact_mut(image_len)
                .zip(self.scales.par_iter_mut())
                .zip(x.par_chunks_exact(image_len))
                .for_each(one);
        }
        if let Some(b) = self.scales.iter().position(|s| s.is_nan()) {
            self.batch = 0;
            self.image_len = 0;
            self.data.clear();
            self.scales.clear();
            let image = &x[b * image_len..(b + 1) * image_len];
            let at = image.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(KernelError::NonFinite {
                what: "activations",
                index: b * image_len + at,
                value: image[at],
            });
        }
        Ok(())
    }

    /// Builds images from already-quantised values (tests, benchmarks, custom schemes).
    /// Values must lie in [−127, 127]; `scales` has one finite, non-negative entry per image.
    ///
    /// # Errors
    /// [`KernelError::Length`] for a wrong `q` or `scales` length,
    /// [`KernelError::ActivationRange`] for a −128, [`KernelError::BadScale`] for a bad scale.
    pub fn from_i8(q: &[i8], batch: usize, image_len: usize, scales: Vec<f32>) -> Result<Self> {
        check_i8_rows(q, batch, image_len, &scales)?;
        Ok(Self {
            batch,
            image_len,
            data: q.to_vec(),
            scales,
        })
    }

    /// Images.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Values per image (`C·H·W`).
    pub fn image_len(&self) -> usize {
        self.image_len
    }
    /// Quantised values, `batch × image_len`, unpadded.
    pub fn data(&self) -> &[i8] {
        &self.data
    }
    /// Per-image scales (`x ≈ x̃ · scale`); 0 for an all-zero image.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }
}

#[cfg(test)]
mod tests {
    use super::round_clamp;

    #[test]
    fn round_clamp_matches_round_then_clamp_bit_for_bit() {
        let reference = |y: f32| y.round().clamp(-127.0, 127.0) as i8;
        let mut values = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0];
        values.extend([
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            f32::MIN,
        ]);
        // Every half-integer tie in and around the range, and its neighbours.
        for n in -300..=300 {
            let tie = n as f32 + 0.5;
            values.extend([tie, tie.next_up(), tie.next_down(), n as f32]);
        }
        // A dense sweep of [−200, 200].
        let mut rng = crate::random::XorShift::new(1);
        values.extend((0..1_000_000).map(|_| rng.next_f32() * 200.0));
        for y in values {
            assert_eq!(round_clamp(y), reference(y), "{y:e}");
        }
    }
}
