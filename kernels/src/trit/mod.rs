//! Packed balanced-ternary arithmetic: sequences of trits (−1, 0, +1) packed four per byte
//! ([`PackedTrits`], the code `t + 1` of the weight format) or five per byte for storage
//! ([`PackedTrits5`]), with element-wise ops, reductions and conversions that work on whole
//! packed words — 32 trits per `u64`, 128 per AVX2 and 256 per AVX-512 register — never
//! unpacking to bytes on the hot path.
//!
//! * **Element-wise** ([`BinaryOp`], [`UnaryOp`]): saturating `add`/`sub`, `mul`,
//!   `min_pair`/`max_pair`, `neg`, `abs`, comparisons to trits (+1 true, 0 false) or to bit
//!   masks, `select` (NumPy's `where`). The formulas on 2-bit codes are derived in the docs
//!   of `logic.rs` (see [`BinaryOp`]).
//! * **Reductions**: [`TritCounts`] (how many of each value), exact `sum`, `min`, `max`,
//!   `dot` (trit · trit by popcounts of the product's bit planes), whole and per row of a
//!   row-major `[rows, cols]` view.
//! * **Conversions**: `i8` (checked), signs of `i8`/`i32`, `f32` by threshold or by the
//!   absmean (BitNet b1.58, arXiv:2402.17764) / TWN quantizers, back to `f32` with a scale.
//! * **Kernels** ([`kernels`], [`best`]): a scalar twin on `u64` words that defines
//!   correctness, AVX2 and AVX-512 (BW, with `vpopcntq` where the host has VPOPCNTDQ),
//!   chosen at run time; buffers of [`PAR_MIN_TRITS`] trits or more are split across rayon.
//!
//! ```
//! use ternary_kernels::trit::PackedTrits;
//!
//! let a = PackedTrits::from_i8(&[1, 0, -1, 1, -1])?;
//! let b = PackedTrits::from_i8(&[1, 1, -1, -1, 0])?;
//! assert_eq!(a.add(&b)?.to_i8(), [1, 1, -1, 0, -1]); // saturating
//! assert_eq!(a.mul(&b)?.to_i8(), [1, 0, 1, -1, 0]);
//! assert_eq!(a.lower(&b)?.to_i8(), [0, 1, 0, 0, 1]); // +1 true, 0 false
//! assert_eq!(a.dot(&b)?, 1);
//! assert_eq!((a.sum(), a.max()), (0, Some(1)));
//! # Ok::<(), ternary_kernels::KernelError>(())
//! ```

mod convert;
mod dispatch;
mod logic;
mod ops;
mod packed;
mod reduce;
pub(crate) mod scalar;
mod storage;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use dispatch::{Isa, Kernel, best, kernels};
pub use logic::{BinaryOp, COUNT_LUT_ROUNDS, DOT_LUT_ROUNDS, UnaryOp};
pub use packed::{PAR_MIN_TRITS, PackedTrits, TRITS_PER_BYTE};
pub use reduce::{TritCounts, TritRows};
pub use storage::{MAX_BYTE5, PackedTrits5, TRITS_PER_BYTE5};
