//! CPU kernels: a scalar reference, AVX2 and AVX-512 implementations, runtime dispatch and a
//! rayon driver. See [`Kernel`] for the entry points and [`kernels`] for the host's list.

mod dispatch;
pub(crate) mod matmul;
pub(crate) mod scalar;
mod tiling;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use dispatch::{Isa, Kernel, best, kernels};
pub use matmul::{matmul_f32, matmul_w2a8};

#[cfg(test)]
mod tests;
