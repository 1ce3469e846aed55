//! Dense 16-bit-float matrix products: the layers a ternary model keeps in higher precision
//! (a BitNet b1.58 model's LM head and tied embeddings, stored as `bf16` or `f16`), streamed
//! at 2 bytes per weight instead of 4.
//!
//! `out[i, j] = Σ_c w[j, c] · x[i, c]` for f32 activations `x` (`m × k`, row-major) and a
//! row-major `[n, k]` matrix `w` of IEEE binary16 (`f16`) or bfloat16 (`bf16`) values, in
//! f32. Each weight widens to f32 exactly; the sum is defined as follows, and every ISA
//! computes exactly this (the scalar twin below is the definition):
//!
//! * sixteen lane accumulators `L[0..16]` start at `+0.0`; for the columns padded with zeros
//!   to `kp = 16·ceil(k/16)` (weight and activation both `+0.0`), lane `c mod 16` takes
//!   `L = fma(w[j, c], x[i, c], L)` in increasing `c` (one rounding per step);
//! * the lanes are then summed as a tree: `L[l] + L[l+8]`, then `+4`, `+2`, `+1` apart, which
//!   is the order in which a 512-bit register is halved (and a pair of 256-bit registers).
//!
//! Non-finite activations or weights propagate as in any dot product (NaN payloads are
//! unspecified).

use super::dispatch::{Isa, Kernel, best};
use super::matmul::{SendPtr, check_out, run_tiles};
use crate::error::{KernelError, Result};

/// Lanes of the accumulation order (see the module docs).
pub(crate) const LANES: usize = 16;
/// Weight rows whose block a task streams against all of its activation rows (`64 × k × 2`
/// bytes: 320 KiB at k = 2560).
const ROW_BLOCK: usize = 64;

/// The 16-bit float format of a [`HalfMatrixRef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HalfKind {
    /// IEEE 754 binary16: 1 sign, 5 exponent, 10 mantissa bits.
    F16,
    /// bfloat16: the upper half of an f32 (1 sign, 8 exponent, 7 mantissa bits). What
    /// BitNet-b1.58-2B-4T stores its embeddings in.
    Bf16,
}

impl HalfKind {
    /// The f32 value of `bits` (exact).
    #[inline]
    pub fn to_f32(self, bits: u16) -> f32 {
        match self {
            HalfKind::F16 => half::f16::from_bits(bits).to_f32(),
            HalfKind::Bf16 => f32::from_bits(u32::from(bits) << 16),
        }
    }

    /// `v` rounded to this format (round to nearest, ties to even; NaN stays NaN).
    #[inline]
    pub fn from_f32(self, v: f32) -> u16 {
        match self {
            HalfKind::F16 => half::f16::from_f32(v).to_bits(),
            HalfKind::Bf16 => half::bf16::from_f32(v).to_bits(),
        }
    }

    /// A short lowercase name (`f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            HalfKind::F16 => "f16",
            HalfKind::Bf16 => "bf16",
        }
    }
}

/// A borrowed row-major `[n, k]` matrix of 16-bit floats (their bit patterns).
#[derive(Debug, Clone, Copy)]
pub struct HalfMatrixRef<'a> {
    bits: &'a [u16],
    n: usize,
    k: usize,
    kind: HalfKind,
}

impl<'a> HalfMatrixRef<'a> {
    /// `bits` holds `n · k` values, row `j` at `bits[j·k .. (j+1)·k]`.
    ///
    /// # Errors
    /// [`KernelError::ShapeOverflow`] when `n · k` overflows, [`KernelError::Length`] when
    /// `bits` does not hold exactly `n · k` values.
    pub fn new(bits: &'a [u16], n: usize, k: usize, kind: HalfKind) -> Result<Self> {
        let len = n.checked_mul(k).ok_or(KernelError::ShapeOverflow {
            n: n as u64,
            k: k as u64,
        })?;
        if bits.len() != len {
            return Err(KernelError::Length {
                what: "16-bit weights",
                expected: len,
                actual: bits.len(),
            });
        }
        Ok(Self { bits, n, k, kind })
    }

    /// Rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Columns.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The value format.
    pub fn kind(&self) -> HalfKind {
        self.kind
    }

    /// The values' bit patterns, row-major.
    pub fn bits(&self) -> &'a [u16] {
        self.bits
    }
}

/// The raw kernel contract shared by every ISA: `w` points at `n` rows of `k` values, `x` at
/// `m` rows of stride `ldx ≥ k`, `out` at `m` rows of stride `ldo ≥ n` that no one else
/// touches during the call. Writes `out[i·ldo + j]` per the module docs.
pub(crate) type HalfFn =
    unsafe fn(*const u16, usize, usize, *const f32, usize, usize, *mut f32, usize, HalfKind);

/// The scalar twin: the definition (module docs).
///
/// # Safety
/// See [`HalfFn`].
#[allow(clippy::too_many_arguments)] // the raw-kernel contract shared by every ISA
pub(crate) unsafe fn scalar(
    w: *const u16,
    k: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
    kind: HalfKind,
) {
    let kp = k.div_ceil(LANES) * LANES;
    for i in 0..m {
        // SAFETY: row i of x holds k readable values (contract).
        let xr = unsafe { std::slice::from_raw_parts(x.add(i * ldx), k) };
        for j in 0..n {
            // SAFETY: row j of w holds k readable values (contract).
            let wr = unsafe { std::slice::from_raw_parts(w.add(j * k), k) };
            let mut lanes = [0f32; LANES];
            for c in 0..kp {
                let (wv, xv) = if c < k {
                    (kind.to_f32(wr[c]), xr[c])
                } else {
                    (0.0, 0.0)
                };
                lanes[c % LANES] = wv.mul_add(xv, lanes[c % LANES]);
            }
            // SAFETY: (i, j) lies inside the caller's exclusive output tile.
            unsafe { *out.add(i * ldo + j) = reduce_lanes(lanes) };
        }
    }
}

/// The lane tree of the module docs.
#[inline]
pub(crate) fn reduce_lanes(l: [f32; LANES]) -> f32 {
    let mut s8 = [0f32; 8];
    for i in 0..8 {
        s8[i] = l[i] + l[i + 8];
    }
    let mut s4 = [0f32; 4];
    for i in 0..4 {
        s4[i] = s8[i] + s8[i + 4];
    }
    let s2 = [s4[0] + s4[2], s4[1] + s4[3]];
    s2[0] + s2[1]
}

impl Kernel {
    fn half_fn(&self) -> HalfFn {
        match self.isa {
            Isa::Scalar => scalar,
            // Every AVX2 core has F16C; checked all the same, since the list does not ask.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if is_x86_feature_detected!("f16c") => super::x86_64::dense::avx2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => scalar,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bw | Isa::Avx512Vnni => super::x86_64::dense::avx512,
            #[cfg(not(target_arch = "x86_64"))]
            _ => scalar,
        }
    }

    /// `out[i, j] = Σ_c w[j, c] · x[i, c]` for f32 activations `x` (`m × k`, row-major) and a
    /// dense 16-bit matrix `w` (`[n, k]`), into `out` (`m × n`, row-major), summed in the
    /// order the [`dense`](crate::cpu::dense) module defines (16 FMA lanes over zero-padded
    /// columns, then a fixed tree): the same bits on every ISA. Threads as the packed products
    /// do (columns first); each task streams its weight rows in blocks of 64 against its
    /// activation rows.
    ///
    /// # Errors
    /// [`KernelError::Length`] when `x` is not `m · k` values or `out` not `m · n`;
    /// [`KernelError::ShapeOverflow`] when `m · k` or `m · n` overflows.
    pub fn matmul_half(
        &self,
        x: &[f32],
        m: usize,
        w: HalfMatrixRef<'_>,
        out: &mut [f32],
    ) -> Result<()> {
        let (n, k) = (w.n, w.k);
        let expected = m.checked_mul(k).ok_or(KernelError::ShapeOverflow {
            n: m as u64,
            k: k as u64,
        })?;
        if x.len() != expected {
            return Err(KernelError::Length {
                what: "activations",
                expected,
                actual: x.len(),
            });
        }
        check_out(out.len(), m, n)?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let f = self.half_fn();
        let ptr = SendPtr(out.as_mut_ptr());
        let (wb, kind) = (w.bits, w.kind);
        // The packed products' task split (columns first, 64 wide; the spinning pool for a
        // few rows), each task's weight rows streamed in blocks against its activation rows.
        run_tiles(m, n, k, true, |t| {
            let mut b0 = t.j0;
            while b0 < t.j1 {
                let b1 = (b0 + ROW_BLOCK).min(t.j1);
                // SAFETY: rows b0..b1 of w and rows i0..i1 of x lie inside the checked
                // slices; the task owns the outputs (i0..i1) × (j0..j1).
                unsafe {
                    f(
                        wb.as_ptr().add(b0 * k),
                        k,
                        b1 - b0,
                        x.as_ptr().add(t.i0 * k),
                        k,
                        t.i1 - t.i0,
                        ptr.get().add(t.i0 * n + b0),
                        n,
                        kind,
                    );
                }
                b0 = b1;
            }
        });
        Ok(())
    }
}

/// [`Kernel::matmul_half`] with the fastest kernel the host supports ([`best`]).
///
/// # Errors
/// As [`Kernel::matmul_half`].
pub fn matmul_half(x: &[f32], m: usize, w: HalfMatrixRef<'_>, out: &mut [f32]) -> Result<()> {
    best().matmul_half(x, m, w, out)
}
