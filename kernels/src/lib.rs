//! # ternary-kernels
//!
//! Packed ternary ({−1, 0, +1}) weight matrices and the CPU kernels that multiply by them,
//! with no dependency on any deep-learning framework: slices in, slices out.
//!
//! * **Formats** ([`mod@format`]): [`PackedI2`], 2 bits per weight in 128-weight blocks, the layout
//!   every kernel reads; [`PackedT1`], 1.6 bits per weight (5 trits per byte) for storage,
//!   losslessly convertible. Both serialise with a versioned, fully validated header.
//!   Scales ([`Scales`]) are one per tensor, one per output row, or one per row and group of
//!   64, 128 or 256 columns along K (what ggml's `TQ1_0`/`TQ2_0` and Burn's per-block `Q2S`
//!   carry).
//! * **Quantizers** ([`quant`]): BitNet b1.58 absmean and TWN, per tensor or per output row;
//!   int8 per-row activation quantization.
//! * **Kernels** ([`cpu`]): `y = x · Wᵀ` in W2A8 mode (int8 activations, exact integer sums)
//!   or exact-f32 mode, with a scalar reference and AVX2 / AVX-512 (VNNI) implementations,
//!   chosen at run time and threaded with rayon, for every kind of scales (group scales: an
//!   exact integer sum per group, scaled and accumulated in a fixed order, bit-identical on
//!   every ISA); 2-D convolutions over NCHW images in both modes ([`Conv2dParams`],
//!   implicit im2col tiles, int8 activations per image).
//! * **Trits** ([`trit`]): packed balanced-ternary buffers (4 trits per byte, 5 for
//!   storage) with element-wise ops, reductions and dot products on whole packed words, a
//!   scalar twin and AVX2 / AVX-512 kernels.
//! * **GPU kernels** (`cube`, feature `cube`): the same products in CubeCL — an int8 row
//!   quantizer, GEMV and tiled GEMM in W2A8 and float modes, per-tensor or per-row scales —
//!   for any cubecl runtime, reading the packed words in place.
//!
//! ```
//! use ternary_kernels::{Granularity, Method, PackedI2, QuantizedActivations, cpu};
//!
//! // A 3 × 4 weight matrix and one activation row.
//! let w = [0.9f32, -0.1, 0.0, -1.2, 0.2, 0.3, -0.8, 0.5, 0.0, 0.0, 0.0, 0.0];
//! let packed = PackedI2::quantize(&w, 3, 4, Method::AbsMean, Granularity::PerRow)?;
//! assert_eq!(packed.to_ternary(), [1, 0, 0, -1, 0, 1, -1, 1, 0, 0, 0, 0]);
//!
//! let x = [1.0f32, 2.0, 3.0, 4.0];
//! let mut y = [0f32; 3];
//! cpu::matmul_f32(&x, 1, &packed, None, &mut y)?; // exact f32 activations
//! let q = QuantizedActivations::quantize(&x, 1, 4)?;
//! let mut y8 = [0f32; 3];
//! cpu::matmul_w2a8(&q, &packed, None, &mut y8)?; // int8 activations
//! assert!((y[0] - y8[0]).abs() < 0.05 * y[0].abs());
//! # Ok::<(), ternary_kernels::KernelError>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod cpu;
#[cfg(feature = "cube")]
// `#[cube]` generates undocumented launch modules and structs next to each kernel.
#[allow(missing_docs)]
pub mod cube;
mod error;
pub mod format;
pub mod quant;
pub mod random;
#[cfg(feature = "report")]
pub mod report;
pub mod trit;
#[cfg(feature = "report")]
pub mod trit_report;

pub use cpu::Conv2dParams;
pub use cpu::matmul::MAX_K_W2A8;
pub use error::{KernelError, Result};
pub use format::{PackedI2, PackedI2Ref, PackedT1, Scales};
pub use quant::{Granularity, Method, QuantizedActivations, QuantizedImages, Ternary};
