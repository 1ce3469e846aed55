//! The same packed and training layers on wgpu (Cube; lavapipe on CPU-only machines) and on
//! Flex. The packed Cube path runs the CubeCL kernels on the packed words (see
//! `backend::cube`; the kernels themselves are checked bit-exactly in `kernels/tests/cube.rs`).
#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::tensor::{Device, DeviceKind, Distribution, Tensor, Tolerance};
use burn_ternary::nn::{TernaryConv2dConfig, TernaryLinear, TernaryLinearConfig, freeze};
use burn_ternary::ops::{ConvEpilogue, FusedMaxPool};
use burn_ternary::quant::{ActivationQuant, Granularity};

fn gpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

#[test]
fn packed_linear_on_wgpu_equals_flex_in_both_modes() {
    let cpu = Device::flex();
    for activation in [ActivationQuant::None, ActivationQuant::Int8PerToken] {
        let layer = TernaryLinearConfig::new(300, 70)
            .with_granularity(Granularity::PerChannel)
            .with_activation(activation)
            .init(&cpu);
        let packed: TernaryLinear = freeze(layer).unwrap();
        let x = Tensor::<2>::random([5, 300], Distribution::Normal(0.0, 1.0), &cpu);
        let on_cpu = packed.forward(x.clone());
        let on_gpu = packed.to_device(&gpu()).forward(x.to_device(&gpu()));
        on_gpu.to_device(&cpu).into_data().assert_approx_eq::<f32>(
            &on_cpu.into_data(),
            // W2A8 may round an exact activation tie differently: one int8 step.
            Tolerance::rel_abs(1e-4, 5e-3),
        );
    }
}

#[test]
fn packed_linear_on_wgpu_equals_flex_through_gemv_and_gemm_and_f16() {
    use burn::tensor::FloatDType;
    let cpu = Device::flex();
    for activation in [ActivationQuant::None, ActivationQuant::Int8PerToken] {
        for granularity in [
            Granularity::PerTensor,
            Granularity::PerChannel,
            // 1000 columns: 8 groups, the last ragged; the Cube kernels' group path.
            Granularity::PerGroup { group_size: 128 },
        ] {
            let layer = TernaryLinearConfig::new(1000, 130)
                .with_granularity(granularity)
                .with_activation(activation)
                .init(&cpu);
            let packed: TernaryLinear = freeze(layer).unwrap();
            let on_gpu = packed.clone().to_device(&gpu());
            // m = 1 and 3 take the GEMV kernel, 100 the tiled GEMM.
            for m in [1, 3, 100] {
                let x = Tensor::<2>::random([m, 1000], Distribution::Normal(0.0, 1.0), &cpu);
                let want = packed.forward(x.clone()).into_data();
                let got = on_gpu.forward(x.clone().to_device(&gpu()));
                got.to_device(&cpu)
                    .into_data()
                    .assert_approx_eq::<f32>(&want, Tolerance::rel_abs(1e-4, 1e-4));
                // f16 activations in, f16 out, f32 accumulation inside.
                let xh = x.to_device(&gpu()).cast(FloatDType::F16);
                let got = on_gpu.forward(xh);
                assert_eq!(got.dtype(), burn::tensor::DType::F16);
                got.cast(FloatDType::F32)
                    .to_device(&cpu)
                    .into_data()
                    .assert_approx_eq::<f32>(&want, Tolerance::rel_abs(2e-2, 5e-2));
            }
        }
    }
}

#[test]
fn packed_conv2d_on_wgpu_equals_flex_in_both_modes() {
    let cpu = Device::flex();
    // (c_in, c_out, kernel, stride, padding, dilation, groups, scale granularity)
    let per_channel = Granularity::PerChannel;
    let cases = [
        (4, 8, [3, 3], [1, 1], [1, 1], [1, 1], 2, per_channel),
        (8, 8, [3, 3], [2, 1], [1, 0], [1, 2], 8, per_channel),
        (20, 6, [1, 1], [1, 1], [0, 0], [1, 1], 1, per_channel),
        // K = 16·9 = 144: three 64-column scale groups, the last ragged.
        (
            16,
            6,
            [3, 3],
            [1, 1],
            [1, 1],
            [1, 1],
            1,
            Granularity::PerGroup { group_size: 64 },
        ),
    ];
    for (ci, co, k, s, p, d, g, granularity) in cases {
        for activation in [ActivationQuant::None, ActivationQuant::Int8PerImage] {
            let layer = TernaryConv2dConfig::new([ci, co], k)
                .with_stride(s)
                .with_padding(p)
                .with_dilation(d)
                .with_groups(g)
                .with_bias(true)
                .with_granularity(granularity)
                .with_activation(activation)
                .init(&cpu);
            let packed = layer.freeze().unwrap();
            let x = Tensor::<4>::random([2, ci, 7, 6], Distribution::Normal(0.0, 1.0), &cpu);
            // Plain, and with the fused epilogue (the conv op, then wgpu's own relu and
            // max_pool2d; on Flex all in one op).
            let fused = ConvEpilogue {
                relu: true,
                max_pool: Some(FusedMaxPool {
                    kernel_size: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                    dilation: [1, 1],
                }),
            };
            for epilogue in [ConvEpilogue::default(), fused] {
                let packed = packed.clone().with_epilogue(epilogue);
                let on_cpu = packed.forward(x.clone());
                let on_gpu = packed
                    .clone()
                    .to_device(&gpu())
                    .forward(x.clone().to_device(&gpu()));
                // W2A8 may round an exact activation tie differently: one int8 step.
                let tol = Tolerance::rel_abs(1e-4, 2e-3);
                on_gpu
                    .to_device(&cpu)
                    .into_data()
                    .assert_approx_eq::<f32>(&on_cpu.into_data(), tol);
                // With a residual added before the epilogue.
                let plain = packed.clone().with_epilogue(ConvEpilogue::default());
                let dims = plain.forward(x.clone()).dims();
                let r = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &cpu);
                let on_cpu = packed.forward_residual(x.clone(), r.clone());
                let on_gpu = packed
                    .to_device(&gpu())
                    .forward_residual(x.clone().to_device(&gpu()), r.to_device(&gpu()));
                on_gpu
                    .to_device(&cpu)
                    .into_data()
                    .assert_approx_eq::<f32>(&on_cpu.into_data(), tol);
            }
        }
    }
}

#[test]
fn packed_conv2d_on_wgpu_keeps_an_f16_input_f16() {
    use burn::tensor::FloatDType;
    let cpu = Device::flex();
    let layer = TernaryConv2dConfig::new([8, 16], [3, 3])
        .with_padding([1, 1])
        .with_granularity(Granularity::PerChannel)
        .with_activation(ActivationQuant::Int8PerImage)
        .with_bias(true)
        .init(&cpu);
    // With the fused epilogue: the f32 bias is cast to f16 before it is added.
    let epilogue = ConvEpilogue {
        relu: true,
        max_pool: Some(FusedMaxPool {
            kernel_size: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
        }),
    };
    let packed = layer.freeze().unwrap().with_epilogue(epilogue);
    let x = Tensor::<4>::random([2, 8, 6, 6], Distribution::Normal(0.0, 1.0), &cpu);
    let want = packed.forward(x.clone()).into_data();
    let got = packed
        .to_device(&gpu())
        .forward(x.to_device(&gpu()).cast(FloatDType::F16));
    assert_eq!(got.dtype(), burn::tensor::DType::F16);
    // Followed by another op, so a buffer of the wrong type would be read as f16 garbage.
    let got = (got * 1.0).cast(FloatDType::F32);
    got.to_device(&cpu)
        .into_data()
        .assert_approx_eq::<f32>(&want, Tolerance::rel_abs(2e-2, 5e-2));
}

#[test]
fn fake_quant_training_step_runs_on_wgpu_and_matches_flex() {
    let cpu = Device::flex().autodiff();
    let layer = TernaryLinearConfig::new(64, 8).init(&cpu);
    let x = Tensor::<2>::random([4, 64], Distribution::Default, &cpu);
    let grads = layer.forward(x.clone()).sum().backward();
    let g_cpu = layer.weight.grad(&grads).unwrap();

    let dev = gpu().autodiff();
    let layer = layer.fork(&dev);
    let grads = layer.forward(x.to_device(&dev)).sum().backward();
    let g_gpu = layer.weight.grad(&grads).unwrap();
    g_gpu
        .to_device(&Device::flex())
        .into_data()
        .assert_approx_eq::<f32>(&g_cpu.into_data(), Tolerance::rel_abs(1e-4, 1e-5));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
    /// The packed conv on wgpu (the CubeCL kernel) against Burn's own `conv2d` on wgpu with
    /// the dequantized filters — of the per-image fake-quantized input in W2A8 mode — on
    /// random geometries.
    #[test]
    fn packed_conv2d_on_wgpu_equals_burn_conv2d_on_random_shapes(
        cg in 1usize..5, ng in 1usize..4, groups in 1usize..3,
        kh in 1usize..4, kw in 1usize..4, sh in 1usize..3, sw in 1usize..3,
        ph in 0usize..2, pw in 0usize..2, dh in 1usize..3, dw in 1usize..3,
        h in 1usize..9, w in 1usize..9, batch in 1usize..3, int8 in proptest::prelude::any::<bool>(),
    ) {
        use burn::tensor::module::conv2d;
        use burn::tensor::ops::ConvOptions;
        let (span_h, span_w) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
        proptest::prop_assume!(h + 2 * ph >= span_h && w + 2 * pw >= span_w);
        let act = if int8 { ActivationQuant::Int8PerImage } else { ActivationQuant::None };
        let (ci, co) = (cg * groups, ng * groups);
        let layer = TernaryConv2dConfig::new([ci, co], [kh, kw])
            .with_stride([sh, sw])
            .with_padding([ph, pw])
            .with_dilation([dh, dw])
            .with_groups(groups)
            .with_bias(true)
            .with_granularity(Granularity::PerChannel)
            .with_activation(act)
            .init(&Device::flex())
            .freeze()
            .unwrap()
            .to_device(&gpu());
        let x = Tensor::<4>::random([batch, ci, h, w], Distribution::Normal(0.0, 1.0), &gpu());
        let seen = if int8 {
            // Per-image int8 fake quantization, written out here.
            let rows = x.clone().reshape([batch, ci * h * w]);
            let amax = rows.clone().abs().max_dim(1).clamp_min(f32::MIN_POSITIVE);
            let q = (rows * (amax.clone().recip() * 127.0)).round().clamp(-127.0, 127.0)
                * (amax / 127.0);
            q.reshape([batch, ci, h, w])
        } else {
            x.clone()
        };
        let bias = layer.bias.as_ref().map(|b| b.val());
        let options = ConvOptions::new([sh, sw], [ph, pw], [dh, dw], groups);
        let want = conv2d(seen, layer.effective_weight(), bias, options);
        let got = layer.forward(x);
        got.to_device(&Device::flex()).into_data().assert_approx_eq::<f32>(
            &want.to_device(&Device::flex()).into_data(),
            // One int8 step where an activation sits on a rounding tie.
            Tolerance::rel_abs(1e-4, 2e-3),
        );
    }
}
