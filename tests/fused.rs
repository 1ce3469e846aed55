//! The fused inference form of packed CNN blocks: the fused conv op (bias, ReLU, max pooling
//! in one op) against the same steps as separate Burn ops, the standalone epilogue op, the
//! straight-through gradient through a fused layer, and batch norm folding (ternary and f32).

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions as BurnPool;
use burn::tensor::{Device, Distribution, Tensor, TensorData, Tolerance};
use burn_ternary::TernaryError;
use burn_ternary::nn::{TernaryConv2d, TernaryConv2dConfig, fold_batch_norm_conv2d};
use burn_ternary::ops::{ConvEpilogue, FusedMaxPool, ternary_conv2d, ternary_conv2d_fused};
use burn_ternary::quant::{ActivationQuant, Granularity};

fn flex() -> Device {
    Device::flex()
}

fn pool(kernel: usize, stride: usize, padding: usize) -> FusedMaxPool {
    FusedMaxPool {
        kernel_size: [kernel, kernel],
        stride: [stride, stride],
        padding: [padding, padding],
        dilation: [1, 1],
    }
}

/// The epilogues tried on every conv: each stage alone, both, and a padded 3×3 pool.
fn epilogues() -> Vec<ConvEpilogue> {
    vec![
        ConvEpilogue::default(),
        ConvEpilogue {
            relu: true,
            max_pool: None,
        },
        ConvEpilogue {
            relu: false,
            max_pool: Some(pool(2, 2, 0)),
        },
        ConvEpilogue {
            relu: true,
            max_pool: Some(pool(2, 2, 0)),
        },
        ConvEpilogue {
            relu: true,
            max_pool: Some(pool(3, 2, 1)),
        },
    ]
}

/// The epilogue as separate Burn ops, written out here: `relu`, then `max_pool2d`.
fn separate(y: Tensor<4>, e: &ConvEpilogue) -> Tensor<4> {
    let y = if e.relu { relu(y) } else { y };
    match e.max_pool {
        Some(p) => max_pool2d(
            y,
            BurnPool::new(p.kernel_size)
                .with_stride(p.stride)
                .with_padding(p.padding)
                .with_dilation(p.dilation),
        ),
        None => y,
    }
}

/// A packed layer: `(c_in, c_out, kernel, stride, padding, groups)`, bias or not.
fn packed(
    (ci, co, k, s, p, g): (usize, usize, usize, usize, usize, usize),
    act: ActivationQuant,
    bias: bool,
) -> TernaryConv2d {
    TernaryConv2dConfig::new([ci, co], [k, k])
        .with_stride([s, s])
        .with_padding([p, p])
        .with_groups(g)
        .with_bias(bias)
        .with_granularity(Granularity::PerChannel)
        .with_activation(act)
        .init(&flex())
        .freeze()
        .unwrap()
}

/// `(c_in, c_out, kernel, stride, padding, groups)`: the direct path (K = 27), the GEMM path
/// (K = 144), depthwise with stride, grouped 1×1.
const LAYERS: [(usize, usize, usize, usize, usize, usize); 4] = [
    (3, 8, 3, 1, 1, 1),
    (16, 12, 3, 1, 1, 1),
    (8, 8, 3, 2, 1, 8),
    (20, 6, 1, 1, 0, 2),
];

/// Shape and bit patterns (NaN-safe equality).
fn bits(t: Tensor<4>) -> (String, Vec<u32>) {
    let data = t.into_data();
    let shape = format!("{:?}", data.shape());
    let v = data.try_to_vec::<f32>().unwrap();
    (shape, v.into_iter().map(f32::to_bits).collect())
}

#[test]
fn fused_conv_op_equals_conv_bias_relu_and_max_pool_as_separate_ops_bit_for_bit() {
    for (i, &shape) in LAYERS.iter().enumerate() {
        for int8 in [false, true] {
            let act = if int8 {
                ActivationQuant::Int8PerImage
            } else {
                ActivationQuant::None
            };
            let l = packed(shape, act, i % 2 == 0);
            let x =
                Tensor::<4>::random([2, shape.0, 9, 10], Distribution::Normal(0.0, 1.0), &flex());
            let options = burn_ternary::ops::TernaryConvOptions {
                kernel_size: l.kernel_size,
                stride: l.stride,
                padding: l.padding,
                dilation: l.dilation,
                groups: l.groups,
            };
            let bias = l.bias.as_ref().map(|b| b.val());
            for e in epilogues() {
                let (p, s) = (l.packed.val(), l.scales.val());
                let fused = ternary_conv2d_fused(
                    x.clone(),
                    p.clone(),
                    s.clone(),
                    bias.clone(),
                    options,
                    e,
                    int8,
                );
                let plain = ternary_conv2d(x.clone(), p, s, bias.clone(), options, int8);
                assert_eq!(
                    bits(fused),
                    bits(separate(plain, &e)),
                    "layer {shape:?} int8 {int8} epilogue {e:?}"
                );
                // The layer runs the same op.
                let layer = l.clone().with_epilogue(e);
                let plain = l.forward(x.clone());
                assert_eq!(bits(layer.forward(x.clone())), bits(separate(plain, &e)));
            }
        }
    }
}

#[test]
fn residual_conv_equals_conv_plus_residual_then_the_epilogue_bit_for_bit() {
    for (i, &shape) in LAYERS.iter().enumerate() {
        for act in [ActivationQuant::None, ActivationQuant::Int8PerImage] {
            let l = packed(shape, act, i % 2 == 0);
            let x =
                Tensor::<4>::random([2, shape.0, 9, 10], Distribution::Normal(0.0, 1.0), &flex());
            let y = l.forward(x.clone());
            let residual = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &flex());
            for e in epilogues() {
                let fused = l.clone().with_epilogue(e);
                let got = fused.forward_residual(x.clone(), residual.clone());
                let want = separate(y.clone() + residual.clone(), &e);
                assert_eq!(bits(got), bits(want), "layer {shape:?} {act:?} {e:?}");
            }
        }
    }
    // The training state: the same ops unfused.
    let e = ConvEpilogue {
        relu: true,
        max_pool: None,
    };
    let training = TernaryConv2dConfig::new([4, 6], [3, 3])
        .with_padding([1, 1])
        .with_bias(true)
        .init(&flex());
    let x = Tensor::<4>::random([2, 4, 5, 5], Distribution::Normal(0.0, 1.0), &flex());
    let r = Tensor::<4>::random([2, 6, 5, 5], Distribution::Normal(0.0, 1.0), &flex());
    let got = training
        .clone()
        .with_epilogue(e)
        .forward_residual(x.clone(), r.clone());
    assert_eq!(bits(got), bits(separate(training.forward(x) + r, &e)));
}

#[test]
fn residual_on_a_packed_legacy_per_patch_layer_runs_as_burn_ops() {
    // Int8PerToken has no native op: conv + bias, then the residual and the epilogue as Burn
    // ops, with the packed layer's own channel count in the shape check.
    let e = ConvEpilogue {
        relu: true,
        max_pool: Some(pool(2, 2, 0)),
    };
    let l = packed((4, 6, 3, 1, 1, 1), ActivationQuant::Int8PerToken, true);
    let x = Tensor::<4>::random([2, 4, 6, 6], Distribution::Normal(0.0, 1.0), &flex());
    let r = Tensor::<4>::random([2, 6, 6, 6], Distribution::Normal(0.0, 1.0), &flex());
    let got = l
        .clone()
        .with_epilogue(e)
        .forward_residual(x.clone(), r.clone());
    assert_eq!(bits(got), bits(separate(l.forward(x) + r, &e)));
}

#[test]
#[should_panic(expected = "residual [2, 6, 4, 4] must be the conv output [2, 6, 5, 5]")]
fn residual_of_the_wrong_shape_panics_with_both_shapes() {
    let l = packed((4, 6, 3, 1, 1, 1), ActivationQuant::None, true);
    let x = Tensor::<4>::zeros([2, 4, 5, 5], &flex());
    let _ = l.forward_residual(x, Tensor::zeros([2, 6, 4, 4], &flex()));
}

#[test]
fn fused_conv_with_dilation_and_a_dilated_pool_equals_the_separate_ops() {
    let l = TernaryConv2dConfig::new([6, 8], [3, 3])
        .with_padding([2, 2])
        .with_dilation([2, 2])
        .with_bias(true)
        .with_granularity(Granularity::PerChannel)
        .init(&flex())
        .freeze()
        .unwrap();
    let x = Tensor::<4>::random([2, 6, 7, 8], Distribution::Normal(0.0, 1.0), &flex());
    // A dilated pool with windows that hold no pixel at the corners (−∞ either way).
    let e = ConvEpilogue {
        relu: true,
        max_pool: Some(
            FusedMaxPool::new([2, 2])
                .with_stride([1, 1])
                .with_padding([1, 1])
                .with_dilation([3, 3]),
        ),
    };
    let got = l.clone().with_epilogue(e).forward(x.clone());
    assert_eq!(bits(got), bits(separate(l.forward(x.clone()), &e)));
    let y = l.forward(x);
    assert_eq!(bits(e.apply(y.clone())), bits(separate(y, &e)));
}

#[test]
fn epilogue_op_equals_relu_and_max_pool_including_nan_and_signed_zeros() {
    let mut values: Vec<f32> = (0..2 * 3 * 7 * 8)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 4.0)
        .collect();
    for (i, v) in [f32::NAN, -0.0, 0.0, f32::NEG_INFINITY, f32::INFINITY]
        .into_iter()
        .enumerate()
    {
        values[i * 29 + 3] = v;
    }
    let x = Tensor::<4>::from_data(TensorData::new(values, [2, 3, 7, 8]), &flex());
    for e in epilogues() {
        assert_eq!(
            bits(e.apply(x.clone())),
            bits(separate(x.clone(), &e)),
            "{e:?}"
        );
    }
}

#[test]
fn fused_layer_gradient_is_the_separate_ops_gradient() {
    let device = flex().autodiff();
    let e = ConvEpilogue {
        relu: true,
        max_pool: Some(pool(2, 2, 0)),
    };
    for act in [ActivationQuant::None, ActivationQuant::Int8PerImage] {
        let l = packed((4, 6, 3, 1, 1, 1), act, true).fork(&device);
        let fused = l.clone().with_epilogue(e);
        let data = Tensor::<4>::random([2, 4, 8, 8], Distribution::Default, &flex()).into_data();
        let grad_of = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let x = Tensor::<4>::from_data(data.clone(), &device).require_grad();
            let y = f(x.clone());
            let w = Tensor::<4>::ones(y.dims(), &device);
            let grads = (y * w).sum().backward();
            x.grad(&grads).unwrap().into_data()
        };
        let got = grad_of(&|x| fused.forward(x));
        let want = grad_of(&|x| separate(l.forward(x), &e));
        got.assert_eq(&want, true);
        // The training state (fake quantization through Burn ops) applies the epilogue too.
        let training = TernaryConv2dConfig::new([4, 6], [3, 3])
            .with_padding([1, 1])
            .with_activation(act)
            .init(&flex());
        let x = Tensor::<4>::from_data(data.clone(), &flex());
        let y = training.clone().with_epilogue(e).forward(x.clone());
        assert_eq!(bits(y), bits(separate(training.forward(x), &e)));
    }
}

/// A batch norm with random statistics and γ of both signs (every even channel negative),
/// in inference mode.
fn batch_norm(channels: usize, seed: u64) -> BatchNorm {
    let device = flex();
    device.seed(seed);
    let bn = BatchNormConfig::new(channels).init(&device);
    let r =
        |lo: f64, hi: f64| Tensor::<1>::random([channels], Distribution::Uniform(lo, hi), &device);
    let mut bn = bn;
    let signs: Vec<f32> = (0..channels)
        .map(|c| if c % 2 == 0 { -1.0 } else { 1.0 })
        .collect();
    let gamma = r(0.2, 2.0) * Tensor::<1>::from_floats(signs.as_slice(), &device);
    bn.gamma = bn.gamma.clone().map(|_| gamma);
    bn.beta = bn.beta.clone().map(|_| r(-1.0, 1.0));
    bn.running_mean = burn::module::RunningState::new(r(-0.5, 0.5));
    bn.running_var = burn::module::RunningState::new(r(0.1, 3.0));
    bn
}

#[test]
fn folding_batch_norm_into_a_packed_conv_keeps_the_block_output() {
    for (i, &shape) in LAYERS.iter().enumerate() {
        for (act, tol) in [
            (ActivationQuant::None, Tolerance::rel_abs(1e-5, 1e-5)),
            (
                ActivationQuant::Int8PerImage,
                Tolerance::rel_abs(1e-5, 1e-5),
            ),
        ] {
            let mut conv = packed(shape, act, i % 2 == 1);
            if i == 3 {
                // A per-tensor scale becomes one scale per channel.
                conv = TernaryConv2dConfig::new([shape.0, shape.1], [1, 1])
                    .with_groups(shape.5)
                    .with_activation(act)
                    .init(&flex())
                    .freeze()
                    .unwrap();
            }
            let mut bn = batch_norm(shape.1, i as u64);
            let x =
                Tensor::<4>::random([2, shape.0, 6, 7], Distribution::Normal(0.0, 1.0), &flex());
            let want = bn.forward(conv.forward(x.clone()));
            conv.fold_batch_norm(&mut bn).unwrap();
            let y = conv.forward(x.clone());
            y.clone()
                .into_data()
                .assert_approx_eq::<f32>(&want.into_data(), tol);
            // The batch norm left behind is exactly the identity.
            assert_eq!(bits(bn.forward(y.clone())), bits(y));
            // The weights stay ternary with non-negative scales (negative γ flipped codes).
            let scales = conv.scales.val().into_data().try_to_vec::<f32>().unwrap();
            assert!(
                scales.iter().all(|s| *s >= 0.0 && s.is_finite()),
                "{scales:?}"
            );
        }
    }
}

#[test]
fn folding_batch_norm_into_an_f32_conv_keeps_the_block_output() {
    let device = flex();
    let mut conv = Conv2dConfig::new([3, 8], [3, 3])
        .with_bias(false)
        .init(&device);
    let mut bn = batch_norm(8, 7);
    let x = Tensor::<4>::random([2, 3, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let want = bn.forward(conv.forward(x.clone()));
    fold_batch_norm_conv2d(&mut conv, &mut bn).unwrap();
    let y = conv.forward(x);
    y.clone()
        .into_data()
        .assert_approx_eq::<f32>(&want.into_data(), Tolerance::rel_abs(1e-5, 1e-5));
    assert_eq!(bits(bn.forward(y.clone())), bits(y));
}

#[test]
fn batch_norm_identity_is_exact_for_other_epsilons() {
    for eps in [1e-3, 1e-1, 3e-7] {
        let mut conv = packed((4, 5, 3, 1, 1, 1), ActivationQuant::None, true);
        let mut bn = BatchNormConfig::new(5).with_epsilon(eps).init(&flex());
        conv.fold_batch_norm(&mut bn).unwrap();
        let x = Tensor::<4>::random([1, 5, 4, 4], Distribution::Normal(0.0, 3.0), &flex());
        assert_eq!(bits(bn.forward(x.clone())), bits(x), "eps {eps}");
    }
}

#[test]
fn folding_errors_name_the_problem_and_change_nothing() {
    let fold_err = |r: Result<(), TernaryError>| match r {
        Err(TernaryError::Fold { reason, .. }) => reason,
        other => panic!("expected a fold error, got {other:?}"),
    };
    // Not packed yet.
    let mut training = TernaryConv2dConfig::new([2, 3], [3, 3]).init(&flex());
    let reason = fold_err(training.fold_batch_norm(&mut BatchNormConfig::new(3).init(&flex())));
    assert!(reason.contains("not packed"), "{reason}");
    // Channel counts differ.
    let mut conv = packed((2, 3, 3, 1, 1, 1), ActivationQuant::None, true);
    let reason = fold_err(conv.fold_batch_norm(&mut BatchNormConfig::new(4).init(&flex())));
    assert!(
        reason.contains("4 channels") && reason.contains("3"),
        "{reason}"
    );
    // A negative variance below −ε: the factor is NaN. The layer and bn are unchanged.
    let mut bn = BatchNormConfig::new(3).init(&flex());
    bn.running_var =
        burn::module::RunningState::new(Tensor::from_floats([1.0, -2.0, 1.0], &flex()));
    let before = (conv.scales.val().into_data(), conv.packed.val().into_data());
    let reason = fold_err(conv.fold_batch_norm(&mut bn));
    assert!(
        reason.contains("channel 1") && reason.contains("var -2"),
        "{reason}"
    );
    assert_eq!(before.0, conv.scales.val().into_data());
    assert_eq!(before.1, conv.packed.val().into_data());
    assert_eq!(
        bn.running_var
            .value()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        vec![1.0, -2.0, 1.0]
    );
}

#[test]
fn max_pool_options_take_only_what_the_epilogue_can_run() {
    use burn::nn::PaddingConfig2d;
    use burn::nn::pool::MaxPool2dConfig;
    let layer = MaxPool2dConfig::new([2, 2]).init();
    assert_eq!(FusedMaxPool::from_layer(&layer), Some(pool(2, 2, 0)));
    let padded = MaxPool2dConfig::new([3, 3])
        .with_strides([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init();
    assert_eq!(FusedMaxPool::from_layer(&padded), Some(pool(3, 2, 1)));
    let ceil = MaxPool2dConfig::new([2, 2]).with_ceil_mode(true).init();
    assert_eq!(FusedMaxPool::from_layer(&ceil), None);
    let asymmetric = MaxPool2dConfig::new([3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 0, 0, 1))
        .init();
    assert_eq!(FusedMaxPool::from_layer(&asymmetric), None);
    let same = MaxPool2dConfig::new([3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init();
    assert_eq!(FusedMaxPool::from_layer(&same), None);
}
