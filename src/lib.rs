//! # burn-ternary
//!
//! Ternary-weight ({−1, 0, +1}) layers for Burn 0.22, trained with a straight-through
//! estimator and frozen into a packed 2-bit form that runs on the `ternary-kernels` SIMD code.
//!
//! * [`backend::TernaryBackend`]: a `#[backend_extension]` with a packed ternary linear op,
//!   native on Flex (SIMD kernels), on Cube (CubeCL GEMV/GEMM kernels reading the packed
//!   words on the device) and under Autodiff (straight-through backward).
//! * [`nn::TernaryLinear`], [`nn::TernaryConv2d`]: modules with a training state (latent f32
//!   weights, fake quantization) and a packed state ([`nn::freeze`] packs a whole model).
//! * [`nn::ternarize`]: makes the stock `nn::Linear` / `nn::Conv2d` of any model train ternary.
//!
//! | feature | default | what |
//! |---|---|---|
//! | `wgpu` | yes | Burn's wgpu backend (Cube), with the extension implemented for it |
//! | `vulkan` | no | Burn's native Vulkan device (needs a recent Vulkan driver) |
//! | `cuda` | no | Burn's CUDA device (cubecl's CUDA runtime downloads LLVM at build time) |
//! | `remote` | no | Burn's Remote backend: the ternary ops as custom ops of a `burn-remote` server (`backend::remote`, `device::ternary_server`, `burn-ternary serve`) |
//!
//! ```
//! use burn::tensor::{Device, Tensor, Distribution};
//! use burn_ternary::nn::{TernaryLinearConfig, freeze};
//!
//! let device = Device::flex();
//! let layer = TernaryLinearConfig::new(64, 16).init(&device);
//! let x = Tensor::<2>::random([4, 64], Distribution::Default, &device);
//! let trained = layer.forward(x.clone()); // fake-quantized forward
//! let packed = freeze(layer).unwrap(); // 2-bit weights, SIMD forward
//! let y = packed.forward(x);
//! y.into_data().assert_approx_eq::<f32>(&trained.into_data(), Default::default());
//! ```
#![warn(missing_docs)]

pub mod backend;
pub mod device;
mod error;
pub mod import;
pub mod nn;
pub mod ops;
pub mod quant;
pub mod trit;

pub use device::{DeviceError, parse_device};
pub use error::{TernaryError, TritError};
pub use ternary_kernels as kernels;
