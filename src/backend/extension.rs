//! The extension trait. Each method has a default body made of Burn primitive ops (see
//! [`super::reference`]): that is the documented dequantize path any listed backend gets for
//! free. Flex overrides both with the `ternary-kernels` SIMD code; Autodiff wraps whichever
//! inner implementation runs with a straight-through backward.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, backend_extension};
use burn::tensor::Shape;

use super::reference;
use crate::ops::{ConvEpilogue, TernaryConvOptions};

/// Ternary ops on packed weights.
///
/// `packed` is the `I2` payload of a `[n, k]` ternary matrix viewed as `[n, row_words]` i32
/// words (little-endian bytes of `ternary_kernels::PackedI2::data`); `scales` holds 1 (per
/// tensor), `n` (per row) or `n · ceil(k/g)` (row-major, per row and group of `g` = 64, 128 or
/// 256 columns; the count tells which, see `ternary_kernels::format::flat_group_size`) f32
/// values; `k` is the logical reduction length.
#[backend_extension(
    Flex,
    Cube: cfg(feature = "cube"),
    Fusion: cfg(feature = "cube"),
    Remote: cfg(feature = "remote"),
    Autodiff
)]
pub trait TernaryBackend: Backend {
    /// `y[m, n] = x[m, k] · Wᵀ`, with `x` quantized to int8 per row first when
    /// `int8_activations` is set (BitNet W2A8), else exact f32 activations.
    #[fusion(dtype = x, shape = linear_shape(x, packed))]
    fn ternary_linear(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        k: usize,
        int8_activations: bool,
    ) -> FloatTensor<Self> {
        reference::linear::<Self>(x, packed, scales, k, int8_activations)
    }

    /// 2-D convolution of NCHW `x` with packed filters (`[c_out, row_words]` words of the
    /// `[c_out, c_in/groups · kh · kw]` ternary matrix), no bias. `int8_activations` selects
    /// W2A8 with one int8 scale per image (see
    /// [`ActivationQuant::Int8PerImage`](crate::quant::ActivationQuant::Int8PerImage)), else
    /// exact f32 activations. The default body is the reference: dequantized filters through
    /// the backend's own `conv2d` (after per-image fake quantization in W2A8 mode).
    #[fusion(dtype = x, shape = conv2d_shape(x, packed, options))]
    fn ternary_conv2d(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        options: TernaryConvOptions,
        int8_activations: bool,
    ) -> FloatTensor<Self> {
        reference::conv2d::<Self>(x, packed, scales, options, int8_activations)
    }

    /// [`ternary_conv2d`](TernaryBackend::ternary_conv2d) plus the per-channel `bias`
    /// (`[c_out]`) and the [`ConvEpilogue`] (ReLU, then max pooling) in one op. The default
    /// body is the backend's `ternary_conv2d` followed by its own add, `relu` and
    /// `max_pool2d`, which is also how Autodiff differentiates it; Flex runs the bias and
    /// ReLU in the kernel's output loop and pools the result with the kernel crate's max
    /// pooling (a second pass over the conv's output).
    #[fusion(dtype = x, shape = fused_conv2d_shape(x, packed, options, epilogue))]
    fn ternary_conv2d_fused(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: TernaryConvOptions,
        epilogue: ConvEpilogue,
        int8_activations: bool,
    ) -> FloatTensor<Self> {
        reference::conv2d_fused::<Self>(
            x,
            packed,
            scales,
            bias,
            options,
            epilogue,
            int8_activations,
        )
    }

    /// [`ternary_conv2d_fused`](TernaryBackend::ternary_conv2d_fused) with a residual
    /// connection: `residual` (the conv's output shape) is added after the bias and before
    /// the epilogue, `epilogue(conv(x) + bias + residual)`. Flex adds it in the kernel's
    /// output loop; the default body is the separate ops.
    #[fusion(dtype = x, shape = fused_conv2d_shape(x, packed, options, epilogue))]
    #[allow(clippy::too_many_arguments)] // the fused op's operands
    fn ternary_conv2d_residual(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        options: TernaryConvOptions,
        epilogue: ConvEpilogue,
        int8_activations: bool,
    ) -> FloatTensor<Self> {
        reference::conv2d_residual::<Self>(
            x,
            packed,
            scales,
            bias,
            residual,
            options,
            epilogue,
            int8_activations,
        )
    }

    /// A [`ConvEpilogue`] (ReLU, then max pooling) on its own, for the layers before or
    /// between packed convs that stay full precision. The default body is the backend's
    /// `relu` and `max_pool2d` (how Autodiff differentiates it); Flex pools with the kernel
    /// crate's max pooling and applies the ReLU to the pooled map (the two commute).
    #[fusion(dtype = x, shape = epilogue_shape(x, epilogue))]
    fn conv_epilogue(x: FloatTensor<Self>, epilogue: ConvEpilogue) -> FloatTensor<Self> {
        reference::epilogue::<Self>(x, epilogue)
    }

    /// The dequantized `[n, k]` f32 weights (`w · scale`).
    #[fusion(dtype = scales, shape = dequantize_shape(packed, k))]
    fn ternary_dequantize(
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        k: usize,
    ) -> FloatTensor<Self> {
        reference::dequantize::<Self>(packed, scales, k)
    }
}

// Output shapes for Fusion's graph (the `#[fusion]` attributes) and of the ops a Remote client
// ships; unused without either.
#[cfg_attr(not(any(feature = "cube", feature = "remote")), allow(dead_code))]
pub(super) fn linear_shape(x: &Shape, packed: &Shape) -> Shape {
    Shape::new([x[0], packed[0]])
}

#[cfg_attr(not(any(feature = "cube", feature = "remote")), allow(dead_code))]
pub(super) fn conv2d_shape(x: &Shape, packed: &Shape, options: &TernaryConvOptions) -> Shape {
    let (h, w) = options.output_size(x[2], x[3]);
    Shape::new([x[0], packed[0], h, w])
}

#[cfg_attr(not(any(feature = "cube", feature = "remote")), allow(dead_code))]
pub(super) fn fused_conv2d_shape(
    x: &Shape,
    packed: &Shape,
    options: &TernaryConvOptions,
    epilogue: &ConvEpilogue,
) -> Shape {
    let (h, w) = options.output_size(x[2], x[3]);
    let (h, w) = match &epilogue.max_pool {
        Some(p) => p.output_size(h, w),
        None => (h, w),
    };
    Shape::new([x[0], packed[0], h, w])
}

#[cfg_attr(not(any(feature = "cube", feature = "remote")), allow(dead_code))]
pub(super) fn epilogue_shape(x: &Shape, epilogue: &ConvEpilogue) -> Shape {
    let (h, w) = match &epilogue.max_pool {
        Some(p) => p.output_size(x[2], x[3]),
        None => (x[2], x[3]),
    };
    Shape::new([x[0], x[1], h, w])
}

#[cfg_attr(not(any(feature = "cube", feature = "remote")), allow(dead_code))]
pub(super) fn dequantize_shape(packed: &Shape, k: &usize) -> Shape {
    Shape::new([packed[0], *k])
}
