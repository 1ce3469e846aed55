//! CPU kernels: a scalar reference, AVX2 and AVX-512 implementations, runtime dispatch and a
//! rayon driver. See [`Kernel`] for the entry points (matrix products, 2-D convolutions and
//! the dense 16-bit products of [`matmul_half`])
//! and [`kernels`] for the host's list.

mod conv;
pub mod dense;
mod dispatch;
pub(crate) mod matmul;
mod pool;
pub(crate) mod scalar;
mod spin;
mod tiling;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use conv::{Conv2dParams, conv2d_f32, conv2d_w2a8, conv2d_w2a8_i32};
pub use dense::{HalfKind, HalfMatrixRef, matmul_half};
pub use dispatch::{DPBUSD_PEAK_MACS_PER_ITER, Isa, Kernel, best, dpbusd_peak, kernels};
pub use matmul::{matmul_f32, matmul_w2a8};
pub use pool::{MaxPool2dParams, max_pool2d_f32, relu_f32};
pub use scalar::{conv2d_f32_reference, conv2d_w2a8_i32_reference};

#[cfg(test)]
mod tests;
