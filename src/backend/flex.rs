//! Flex (CPU): the packed weights are read in place from the tensor's storage and multiplied
//! by the `ternary-kernels` SIMD code — no repacking, no dequantized copy.

use std::cell::RefCell;

use burn::backend::Flex;
use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};
use ternary_kernels::cpu::Conv2dParams;
use ternary_kernels::{KernelError, PackedI2Ref, QuantizedActivations, QuantizedImages, cpu};

use super::TernaryBackend;
use crate::ops::{ConvEpilogue, TernaryConvOptions};

thread_local! {
    /// Int8 activation buffers reused across calls on the same thread.
    static ACTIVATIONS: RefCell<QuantizedActivations> = RefCell::new(QuantizedActivations::default());
    /// Int8 feature maps of the W2A8 convolution, reused likewise.
    static IMAGES: RefCell<QuantizedImages> = RefCell::new(QuantizedImages::default());
}

fn contiguous(t: FlexTensor, dtype: DType) -> FlexTensor {
    let t = if t.dtype() == dtype {
        t
    } else {
        FlexTensor::from_data(t.into_data().convert_dtype(dtype))
    };
    if t.is_contiguous() && t.layout().start_offset() == 0 {
        t
    } else {
        t.to_contiguous()
    }
}

/// The packed view over tensor storage; panics with the values on a shape contract breach,
/// as Burn's own ops do.
fn weights<'a>(packed: &'a FlexTensor, scales: &'a FlexTensor, k: usize) -> PackedI2Ref<'a> {
    let n = packed.shape()[0];
    let words = packed.as_slice::<i32>().expect("contiguous i32");
    let scales = scales.as_slice::<f32>().expect("contiguous f32");
    PackedI2Ref::from_flat(bytemuck::cast_slice(words), n, k, scales).unwrap_or_else(|e| {
        panic!(
            "ternary op: packed weights of shape {:?} and {} scales do not describe a [{n}, {k}] matrix: {e}",
            packed.shape(),
            scales.len()
        )
    })
}

impl TernaryBackend for Flex {
    fn ternary_linear(
        x: FlexTensor,
        packed: FlexTensor,
        scales: FlexTensor,
        k: usize,
        int8_activations: bool,
    ) -> FlexTensor {
        let shape = x.shape();
        assert!(
            shape.num_dims() == 2 && shape[1] == k,
            "ternary_linear: input shape {shape:?} must be [m, {k}]"
        );
        let m = shape[0];
        let out_dtype = x.dtype();
        let (x, packed, scales) = (
            contiguous(x, DType::F32),
            contiguous(packed, DType::I32),
            contiguous(scales, DType::F32),
        );
        let w = weights(&packed, &scales, k);
        let xs = x.as_slice::<f32>().expect("contiguous f32");
        let mut out = vec![0f32; m * w.n()];
        let result = if int8_activations {
            ACTIVATIONS.with_borrow_mut(|q| {
                q.quantize_into(xs, m, k)?;
                cpu::matmul_w2a8(q, w, None, &mut out)
            })
        } else {
            cpu::matmul_f32(xs, m, w, None, &mut out)
        };
        match result {
            Ok(()) => {}
            // NaN/Inf activations cannot be quantized; propagate them as a dense matmul would.
            Err(KernelError::NonFinite { .. }) => out.fill(f32::NAN),
            Err(e) => panic!("ternary_linear: {e}"),
        }
        with_dtype(TensorData::new(out, Shape::new([m, w.n()])), out_dtype)
    }

    fn ternary_conv2d(
        x: FlexTensor,
        packed: FlexTensor,
        scales: FlexTensor,
        options: TernaryConvOptions,
        int8_activations: bool,
    ) -> FlexTensor {
        let epilogue = ConvEpilogue::default();
        conv2d(
            x,
            packed,
            scales,
            None,
            None,
            options,
            epilogue,
            int8_activations,
        )
    }

    fn ternary_conv2d_fused(
        x: FlexTensor,
        packed: FlexTensor,
        scales: FlexTensor,
        bias: FlexTensor,
        options: TernaryConvOptions,
        epilogue: ConvEpilogue,
        int8_activations: bool,
    ) -> FlexTensor {
        let bias = contiguous(bias, DType::F32);
        conv2d(
            x,
            packed,
            scales,
            Some(bias),
            None,
            options,
            epilogue,
            int8_activations,
        )
    }

    fn ternary_conv2d_residual(
        x: FlexTensor,
        packed: FlexTensor,
        scales: FlexTensor,
        bias: FlexTensor,
        residual: FlexTensor,
        options: TernaryConvOptions,
        epilogue: ConvEpilogue,
        int8_activations: bool,
    ) -> FlexTensor {
        let bias = contiguous(bias, DType::F32);
        let residual = Some(residual);
        conv2d(
            x,
            packed,
            scales,
            Some(bias),
            residual,
            options,
            epilogue,
            int8_activations,
        )
    }

    fn conv_epilogue(x: FlexTensor, epilogue: ConvEpilogue) -> FlexTensor {
        let shape = x.shape();
        let Some(p) = epilogue.max_pool.filter(|_| x.dtype() == DType::F32) else {
            return super::reference::epilogue::<Flex>(x, epilogue);
        };
        assert!(
            shape.num_dims() == 4,
            "conv_epilogue: input shape {shape:?} must be [batch, channels, h, w]"
        );
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        let (oh, ow) = p.output_size(h, w);
        let x = contiguous(x, DType::F32);
        let mut out = vec![0f32; planes * oh * ow];
        // ReLU on each value as the window reads it: max_pool2d(relu(x)), the default body's
        // order (it differs from relu(max_pool2d(x)) on windows with no pixel).
        cpu::max_pool2d_f32(
            x.as_slice::<f32>().expect("contiguous f32"),
            planes,
            [h, w],
            &p.params(epilogue.relu),
            &mut out,
        )
        .unwrap_or_else(|e| panic!("conv_epilogue: {e}"));
        FlexTensor::from_data(TensorData::new(
            out,
            Shape::new([shape[0], shape[1], oh, ow]),
        ))
    }

    fn ternary_dequantize(packed: FlexTensor, scales: FlexTensor, k: usize) -> FlexTensor {
        let out_dtype = scales.dtype();
        let (packed, scales) = (
            contiguous(packed, DType::I32),
            contiguous(scales, DType::F32),
        );
        let w = weights(&packed, &scales, k);
        let (n, rb) = (w.n(), w.row_bytes());
        let mut out = Vec::with_capacity(n * k);
        for r in 0..n {
            let row = &w.data()[r * rb..(r + 1) * rb];
            out.extend((0..k).map(|c| {
                let code = (row[(c / 128) * 32 + c % 32] >> (2 * ((c % 128) / 32))) & 3;
                (f32::from(code) - 1.0) * w.scale_at(r, c)
            }));
        }
        with_dtype(TensorData::new(out, Shape::new([n, k])), out_dtype)
    }
}

/// The kernel crate's convolution with the bias, the residual and the fused ReLU in its output
/// loop, then the epilogue's max pooling over the result; the output keeps the input's float
/// type.
#[allow(clippy::too_many_arguments)] // the fused op's operands
fn conv2d(
    x: FlexTensor,
    packed: FlexTensor,
    scales: FlexTensor,
    bias: Option<FlexTensor>,
    residual: Option<FlexTensor>,
    options: TernaryConvOptions,
    epilogue: ConvEpilogue,
    int8_activations: bool,
) -> FlexTensor {
    let shape = x.shape();
    assert!(
        shape.num_dims() == 4,
        "ternary_conv2d: input shape {shape:?} must be [batch, c_in, h, w]"
    );
    let (batch, c_in, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    let in_dtype = x.dtype();
    let c_out = packed.shape()[0];
    let params = Conv2dParams::new(batch, c_in, [h, w], c_out, options.kernel_size)
        .with_stride(options.stride)
        .with_padding(options.padding)
        .with_dilation(options.dilation)
        .with_groups(options.groups)
        .with_relu(epilogue.relu)
        .with_residual(residual.is_some());
    let (oh, ow) = params
        .out_hw()
        .unwrap_or_else(|e| panic!("ternary_conv2d: {e} ({params:?})"));
    let (x, packed, scales) = (
        contiguous(x, DType::F32),
        contiguous(packed, DType::I32),
        contiguous(scales, DType::F32),
    );
    let wm = weights(&packed, &scales, params.k());
    let xs = x.as_slice::<f32>().expect("contiguous f32");
    let bias = bias
        .as_ref()
        .map(|b| b.as_slice::<f32>().expect("contiguous f32"));
    let len = batch * c_out * oh * ow;
    // The kernel adds what the output holds on entry when asked: start from the residual.
    let mut out = match residual {
        Some(r) => {
            let rs = r.shape();
            assert!(
                rs.num_dims() == 4 && [rs[0], rs[1], rs[2], rs[3]] == [batch, c_out, oh, ow],
                "ternary_conv2d_residual: residual {rs:?} must be the conv output [{batch}, {c_out}, {oh}, {ow}]"
            );
            // The residual's own buffer when nothing else holds it (a shortcut no longer
            // referenced), else a copy.
            contiguous(r, DType::F32)
                .into_data()
                .try_into_vec::<f32>()
                .expect("contiguous f32")
        }
        None => vec![0f32; len],
    };
    let result = if int8_activations {
        IMAGES.with_borrow_mut(|q| {
            q.quantize_into(xs, batch, c_in * h * w)?;
            cpu::conv2d_w2a8(q, &params, wm, bias, &mut out)
        })
    } else {
        cpu::conv2d_f32(xs, &params, wm, bias, &mut out)
    };
    match result {
        Ok(()) => {}
        // NaN/Inf activations cannot be quantized; propagate them as a dense conv would.
        Err(KernelError::NonFinite { .. }) => out.fill(f32::NAN),
        Err(e) => panic!("ternary_conv2d: {e}"),
    }
    let (out, oh, ow) = match epilogue.max_pool {
        None => (out, oh, ow),
        Some(p) => {
            // The conv's output loop has applied the ReLU already.
            let pool = p.params(false);
            let (ph, pw) = pool
                .out_hw([oh, ow])
                .unwrap_or_else(|e| panic!("ternary_conv2d_fused: {e}"));
            let mut pooled = vec![0f32; batch * c_out * ph * pw];
            cpu::max_pool2d_f32(&out, batch * c_out, [oh, ow], &pool, &mut pooled)
                .unwrap_or_else(|e| panic!("ternary_conv2d_fused: {e}"));
            (pooled, ph, pw)
        }
    };
    // The output keeps the input's float type.
    with_dtype(
        TensorData::new(out, Shape::new([batch, c_out, oh, ow])),
        in_dtype,
    )
}

/// The f32 result `out` as a tensor of `dtype`: the ops' outputs keep their input's float type
/// (what the `#[fusion]` attributes and a Remote client declare).
fn with_dtype(out: TensorData, dtype: DType) -> FlexTensor {
    FlexTensor::from_data(if dtype == DType::F32 {
        out
    } else {
        out.convert_dtype(dtype)
    })
}
