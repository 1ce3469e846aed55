//! Packed ternary ops written with Burn primitive ops only, so they run on every backend:
//! the default body of the extension (dequantization on Cube takes it), and the definition
//! the SIMD and CubeCL implementations are tested against.
//!
//! Column `c` of row `r` lives in byte `(c / 128) · 32 + c % 32` of the row, at bit
//! `2 · ((c % 128) / 32)` (see the `I2` layout); in i32 words that is word
//! `(c / 128) · 8 + (c % 32) / 4`, shifted by `8 · (c % 4) + 2 · ((c % 128) / 32)`.

use burn::backend::Backend;
use burn::backend::TensorMetadata;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, FloatDType, Scalar, Shape, TensorData};

use super::TernaryBackend;
use crate::ops::{ConvEpilogue, TernaryConvOptions};

/// Word index and shift of every column `0..k`.
fn gather_plan(k: usize) -> (Vec<i32>, Vec<i32>) {
    (0..k)
        .map(|c| {
            let word = (c / 128) * 8 + (c % 32) / 4;
            let shift = 8 * (c % 4) + 2 * ((c % 128) / 32);
            (word as i32, shift as i32)
        })
        .unzip()
}

/// `[n, k]` f32 weights from `[n, row_words]` packed i32 words and 1, `n` or `n · groups`
/// (row-major, per group of 64, 128 or 256 columns) scales.
pub(crate) fn dequantize<B: Backend>(
    packed: IntTensor<B>,
    scales: FloatTensor<B>,
    k: usize,
) -> FloatTensor<B> {
    let device = packed.device();
    let (words, shifts) = gather_plan(k);
    let int = |v: Vec<i32>, shape: Shape| {
        B::int_from_data(
            TensorData::new(v, shape).convert_dtype(packed.dtype()),
            &device,
        )
    };
    let words = int(words, Shape::new([k]));
    let shifts = int(shifts, Shape::new([1, k]));
    let gathered = B::int_select(packed, 1, words);
    let codes = B::bitwise_and_scalar(B::bitwise_right_shift(gathered, shifts), Scalar::from(3));
    let ternary = B::float_sub_scalar(B::int_into_float(codes, FloatDType::F32), Scalar::from(1.0));
    let n = ternary.shape()[0];
    let s = scales.shape().num_elements();
    match ternary_kernels::format::flat_group_size(n, k, s) {
        Some(Some(g)) if n > 0 && k > 0 => {
            // [n · groups] → [n, groups, 1] → [n, groups, g] → [n, groups · g] → [n, k].
            let groups = s / n;
            let scales = B::float_reshape(scales, Shape::new([n, groups, 1]));
            let scales = B::float_expand(scales, Shape::new([n, groups, g]));
            let scales = B::float_reshape(scales, Shape::new([n, groups * g]));
            let scales = B::float_slice(scales, &[(0..n).into(), (0..k).into()]);
            B::float_mul(ternary, scales)
        }
        Some(Some(_)) => ternary, // no weight to scale
        Some(None) => B::float_mul(ternary, B::float_reshape(scales, Shape::new([s, 1]))),
        None => panic!(
            "ternary_dequantize: {s} scales for a [{n}, {k}] matrix (expected 1, {n} or {n}·ceil({k}/g) for g = 64, 128, 256)"
        ),
    }
}

/// Per-row int8 fake quantization: `round(x · 127 / max|x|) · max|x| / 127`, zero rows stay 0.
pub(crate) fn fake_quantize_rows<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let amax = B::float_max_dim(B::float_abs(x.clone()), 1);
    // A zero row divides 0 by the smallest normal and stays exactly 0.
    let amax = B::float_clamp_min(amax, Scalar::from(f32::MIN_POSITIVE));
    let inv = B::float_div(
        B::float_ones(amax.shape(), &amax.device(), FloatDType::F32),
        amax.clone(),
    );
    let inv = B::float_mul_scalar(inv, Scalar::from(127.0));
    let q = B::float_round(B::float_mul(x, inv));
    let q = B::float_clamp(q, Scalar::from(-127.0), Scalar::from(127.0));
    B::float_mul(q, B::float_div_scalar(amax, Scalar::from(127.0)))
}

/// `x[m, k] · dequantize(packed)ᵀ`, optionally with int8-fake-quantized activations.
pub(crate) fn linear<B: Backend>(
    x: FloatTensor<B>,
    packed: IntTensor<B>,
    scales: FloatTensor<B>,
    k: usize,
    int8_activations: bool,
) -> FloatTensor<B> {
    let w = dequantize::<B>(packed, scales, k);
    let x = if x.dtype() == DType::F32 {
        x
    } else {
        B::float_cast(x, FloatDType::F32)
    };
    let x = if int8_activations {
        fake_quantize_rows::<B>(x)
    } else {
        x
    };
    B::float_matmul(x, B::float_transpose(w))
}

/// Per-image int8 fake quantization of NCHW `x`: one absmax scale over each image's `C·H·W`
/// values, as the packed W2A8 convolution quantizes its input.
pub(crate) fn fake_quantize_images<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let shape = x.shape();
    let batch = shape[0];
    let per_image = shape.num_elements() / batch.max(1);
    if batch == 0 || per_image == 0 {
        return x;
    }
    let rows = B::float_reshape(x, Shape::new([batch, per_image]));
    B::float_reshape(fake_quantize_rows::<B>(rows), shape)
}

/// The convolution with dequantized filters through the backend's own `conv2d`, after
/// per-image fake quantization of `x` in W2A8 mode.
pub(crate) fn conv2d<B: Backend>(
    x: FloatTensor<B>,
    packed: IntTensor<B>,
    scales: FloatTensor<B>,
    options: TernaryConvOptions,
    int8_activations: bool,
) -> FloatTensor<B> {
    let c_in = x.shape()[1];
    let [kh, kw] = options.kernel_size;
    let k = c_in / options.groups.max(1) * kh * kw;
    let w = dequantize::<B>(packed, scales, k);
    let c_out = w.shape()[0];
    let w = B::float_reshape(w, Shape::new([c_out, c_in / options.groups.max(1), kh, kw]));
    // The output keeps the input's float type (as the op's Fusion metadata declares).
    let dtype = x.dtype();
    let x = if x.dtype() == DType::F32 {
        x
    } else {
        B::float_cast(x, FloatDType::F32)
    };
    let x = if int8_activations {
        fake_quantize_images::<B>(x)
    } else {
        x
    };
    let y = B::conv2d(
        x,
        w,
        None,
        ConvOptions::new(
            options.stride,
            options.padding,
            options.dilation,
            options.groups,
        ),
    );
    match dtype {
        DType::F32 => y,
        other => B::float_cast(y, other.into()),
    }
}

/// The fused convolution as separate ops of `B`: its `ternary_conv2d`, then `+ bias` (cast to
/// the output's float type), `relu` and `max_pool2d` as the epilogue asks.
pub(crate) fn conv2d_fused<B: Backend + TernaryBackend>(
    x: FloatTensor<B>,
    packed: IntTensor<B>,
    scales: FloatTensor<B>,
    bias: FloatTensor<B>,
    options: TernaryConvOptions,
    epilogue: ConvEpilogue,
    int8_activations: bool,
) -> FloatTensor<B> {
    let y = B::ternary_conv2d(x, packed, scales, options, int8_activations);
    let c_out = y.shape()[1];
    let bias = if bias.dtype() == y.dtype() {
        bias
    } else {
        B::float_cast(bias, y.dtype().into())
    };
    let y = B::float_add(y, B::float_reshape(bias, Shape::new([1, c_out, 1, 1])));
    self::epilogue::<B>(y, epilogue)
}

/// The residual conv as separate ops of `B`: the fused conv without epilogue, `+ residual`,
/// then the epilogue.
#[allow(clippy::too_many_arguments)] // the fused op's operands
pub(crate) fn conv2d_residual<B: Backend + TernaryBackend>(
    x: FloatTensor<B>,
    packed: IntTensor<B>,
    scales: FloatTensor<B>,
    bias: FloatTensor<B>,
    residual: FloatTensor<B>,
    options: TernaryConvOptions,
    e: ConvEpilogue,
    int8_activations: bool,
) -> FloatTensor<B> {
    let plain = ConvEpilogue::default();
    let y = B::ternary_conv2d_fused(x, packed, scales, bias, options, plain, int8_activations);
    let residual = if residual.dtype() == y.dtype() {
        residual
    } else {
        B::float_cast(residual, y.dtype().into())
    };
    epilogue::<B>(B::float_add(y, residual), e)
}

/// The epilogue as ops of `B`: `relu`, then `max_pool2d`.
pub(crate) fn epilogue<B: Backend>(y: FloatTensor<B>, e: ConvEpilogue) -> FloatTensor<B> {
    let y = if e.relu { B::relu(y) } else { y };
    match e.max_pool {
        Some(p) => B::max_pool2d(y, p.kernel_size, p.stride, p.padding, p.dilation, false),
        None => y,
    }
}
