//! Cube (wgpu / Vulkan / Metal; CUDA where it builds): the packed words stay packed on the
//! device and the CubeCL kernels of [`ternary_kernels::cube`] multiply by them — a GEMV for
//! small `m`, a shared-memory tiled GEMM above, a direct convolution for `ternary_conv2d`
//! (its input quantized once per image in W2A8 mode). The fused conv ops keep their default
//! bodies (this conv, then the backend's add / relu / max_pool2d); dequantization (only the
//! straight-through backward asks for it) keeps the primitive-op path of
//! [`super::reference`].

use burn::backend::TensorMetadata;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::{cast, into_contiguous};
use burn_cubecl::tensor::CubeTensor;
use ternary_kernels::Conv2dParams;
use ternary_kernels::cube::{self as gpu, ConvStrategy, DeviceMatrix, Strategy};

use super::TernaryBackend;
use crate::ops::TernaryConvOptions;

/// The tensor in `dtype`, contiguous from its first element.
fn prepare(t: CubeTensor, dtype: DType) -> CubeTensor {
    let t = if t.dtype == dtype { t } else { cast(t, dtype) };
    into_contiguous(t)
}

/// The packed matrix as kernel arguments; panics with the values on a shape contract breach,
/// as Burn's own ops do.
fn device_matrix(packed: CubeTensor, scales: CubeTensor, k: usize) -> DeviceMatrix {
    let (ps, ss) = (packed.shape(), scales.shape());
    let n = ps[0];
    let words = gpu::row_words(k);
    assert!(
        ps.num_dims() == 2 && ps[1] == words,
        "ternary op: packed weights of shape {ps:?} do not describe [n, {words}] words for k = {k}"
    );
    let n_scales = ss.num_elements();
    assert!(
        n_scales > 0 || n == 0,
        "ternary op: no scales for {n} packed rows of {k} columns"
    );
    let group = ternary_kernels::format::flat_group_size(n, k, n_scales).unwrap_or_else(|| {
        panic!(
            "ternary op: {n_scales} scales for {n} packed rows of {k} columns (expected 1, {n} or {n}·ceil({k}/g) for g = 64, 128, 256)"
        )
    });
    // The kernels read the words as u32: any 32-bit int dtype has the same bytes.
    let packed = match packed.dtype {
        DType::I32 | DType::U32 => into_contiguous(packed),
        _ => prepare(packed, DType::I32),
    };
    let scales = prepare(scales, DType::F32);
    // The handles are reference-counted: the buffers live as long as the matrix does.
    DeviceMatrix {
        words: packed.handle,
        scales: scales.handle,
        n,
        k,
        per_row: n_scales == n && n > 1,
        group_size: group.filter(|_| k > 0).unwrap_or(0),
    }
}

impl TernaryBackend for CubeBackend {
    fn ternary_linear(
        x: CubeTensor,
        packed: CubeTensor,
        scales: CubeTensor,
        k: usize,
        int8_activations: bool,
    ) -> CubeTensor {
        let shape = x.shape();
        assert!(
            shape.num_dims() == 2 && shape[1] == k,
            "ternary_linear: input shape {shape:?} must be [m, {k}]"
        );
        let m = shape[0];
        let out_dtype = x.dtype;
        // f32 and f16 run natively; other float types go through f32.
        let dtype = match out_dtype {
            DType::F16 => DType::F16,
            _ => DType::F32,
        };
        let x = prepare(x, dtype);
        let w = device_matrix(packed, scales, k);
        let n = w.n;
        let client = x.client.clone();
        let handle = match (int8_activations, dtype) {
            (true, DType::F16) => {
                let q = gpu::quantize_rows::<burn::tensor::f16>(&client, &x.handle, m, k);
                gpu::matmul_w2a8::<burn::tensor::f16>(&client, &q, &w, Strategy::Autotune, false)
            }
            (true, _) => {
                let q = gpu::quantize_rows::<f32>(&client, &x.handle, m, k);
                gpu::matmul_w2a8::<f32>(&client, &q, &w, Strategy::Autotune, false)
            }
            (false, DType::F16) => gpu::matmul_float::<burn::tensor::f16>(
                &client,
                &x.handle,
                m,
                &w,
                Strategy::Autotune,
            ),
            (false, _) => gpu::matmul_float::<f32>(&client, &x.handle, m, &w, Strategy::Autotune),
        };
        let out =
            CubeTensor::new_contiguous(client, x.device.clone(), Shape::new([m, n]), handle, dtype);
        if out_dtype == dtype {
            out
        } else {
            cast(out, out_dtype)
        }
    }

    fn ternary_conv2d(
        x: CubeTensor,
        packed: CubeTensor,
        scales: CubeTensor,
        options: TernaryConvOptions,
        int8_activations: bool,
    ) -> CubeTensor {
        let shape = x.shape();
        assert!(
            shape.num_dims() == 4,
            "ternary_conv2d: input shape {shape:?} must be [batch, c_in, h, w]"
        );
        let (batch, c_in, h, w) = (shape[0], shape[1], shape[2], shape[3]);
        let c_out = packed.shape()[0];
        let params = Conv2dParams::new(batch, c_in, [h, w], c_out, options.kernel_size)
            .with_stride(options.stride)
            .with_padding(options.padding)
            .with_dilation(options.dilation)
            .with_groups(options.groups);
        let (oh, ow) = params
            .out_hw()
            .unwrap_or_else(|e| panic!("ternary_conv2d: {e} ({params:?})"));
        let out_dtype = x.dtype;
        // f32 and f16 run natively; other float types go through f32.
        let dtype = match out_dtype {
            DType::F16 => DType::F16,
            _ => DType::F32,
        };
        let x = prepare(x, dtype);
        let wm = device_matrix(packed, scales, params.k());
        let client = x.client.clone();
        let image = c_in * h * w;
        let handle = match (int8_activations, dtype) {
            (true, DType::F16) => {
                let q = gpu::quantize_rows::<burn::tensor::f16>(&client, &x.handle, batch, image);
                gpu::conv2d_w2a8::<burn::tensor::f16>(
                    &client,
                    &q,
                    &params,
                    &wm,
                    ConvStrategy::Autotune,
                    false,
                )
            }
            (true, _) => {
                let q = gpu::quantize_rows::<f32>(&client, &x.handle, batch, image);
                gpu::conv2d_w2a8::<f32>(&client, &q, &params, &wm, ConvStrategy::Autotune, false)
            }
            (false, DType::F16) => gpu::conv2d_float::<burn::tensor::f16>(
                &client,
                &x.handle,
                &params,
                &wm,
                ConvStrategy::Autotune,
            ),
            (false, _) => {
                gpu::conv2d_float::<f32>(&client, &x.handle, &params, &wm, ConvStrategy::Autotune)
            }
        };
        let out = CubeTensor::new_contiguous(
            client,
            x.device.clone(),
            Shape::new([batch, c_out, oh, ow]),
            handle,
            dtype,
        );
        if out_dtype == dtype {
            out
        } else {
            cast(out, out_dtype)
        }
    }
}
