//! Cube (wgpu / Vulkan / Metal; CUDA where it builds): the primitive-op reference path — the
//! packed words are gathered, shifted and masked on the device into f32 weights, then Burn's
//! matmul runs. Correct everywhere Cube runs; dedicated CubeCL kernels replace it later.

use burn_cubecl::CubeBackend;

use super::TernaryBackend;

impl TernaryBackend for CubeBackend {}
