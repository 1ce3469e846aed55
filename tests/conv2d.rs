//! TernaryConv2d: the packed native conv (exact f32 and per-image W2A8) against Burn's conv2d
//! with the dequantized filters, the training forward that lowers the same way, and the
//! straight-through gradients.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, Tolerance};
use burn_ternary::nn::{TernaryConv2d, TernaryConv2dConfig};
use burn_ternary::quant::{ActivationQuant, Granularity};
use proptest::prelude::*;

/// (c_in, c_out, kernel, stride, padding, dilation, groups, h, w, batch)
type Case = (
    usize,
    usize,
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
    usize,
    usize,
    usize,
    usize,
);

const CASES: [Case; 10] = [
    (3, 8, [3, 3], [1, 1], [1, 1], [1, 1], 1, 9, 7, 2),
    (4, 6, [3, 2], [2, 1], [0, 1], [1, 1], 2, 10, 9, 2),
    (6, 6, [3, 3], [1, 2], [2, 2], [2, 1], 3, 11, 12, 1),
    (2, 4, [1, 1], [1, 1], [0, 0], [1, 1], 1, 5, 5, 3),
    (8, 16, [5, 5], [2, 2], [2, 2], [1, 1], 4, 13, 8, 2),
    // Depthwise.
    (16, 16, [3, 3], [1, 1], [1, 1], [1, 1], 16, 8, 8, 2),
    // K crossing the 128-column block (20·9 = 180), stride 3.
    (20, 12, [3, 3], [3, 3], [1, 1], [1, 1], 1, 14, 11, 1),
    // Kernel as large as the padded input: one output position.
    (3, 5, [4, 4], [1, 1], [1, 1], [1, 1], 1, 2, 2, 2),
    // 1×1 with stride 2.
    (32, 8, [1, 1], [2, 2], [0, 0], [1, 1], 1, 7, 9, 1),
    // K = 40·9 = 360: several scale groups of 64 and 128 columns, the last one ragged.
    (40, 6, [3, 3], [1, 1], [1, 1], [1, 1], 1, 6, 5, 2),
];

fn layer(case: &Case, gran: Granularity, act: ActivationQuant, bias: bool) -> TernaryConv2d {
    let &(ci, co, k, s, p, d, g, ..) = case;
    TernaryConv2dConfig::new([ci, co], k)
        .with_stride(s)
        .with_padding(p)
        .with_dilation(d)
        .with_groups(g)
        .with_bias(bias)
        .with_granularity(gran)
        .with_activation(act)
        .init(&Device::flex())
}

fn input(case: &Case) -> Tensor<4> {
    let &(ci, .., h, w, b) = case;
    Tensor::<4>::random(
        [b, ci, h, w],
        Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    )
}

/// Per-image int8 fake quantization, written out here independently of the crate.
fn quantize_per_image(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let rows = x.reshape([b, c * h * w]);
    let amax = rows.clone().abs().max_dim(1).clamp_min(f32::MIN_POSITIVE);
    let q = (rows * (amax.clone().recip() * 127.0))
        .round()
        .clamp(-127.0, 127.0)
        * (amax / 127.0);
    q.reshape([b, c, h, w])
}

fn reference(l: &TernaryConv2d, case: &Case, x: Tensor<4>) -> Tensor<4> {
    let &(_, _, _, s, p, d, g, ..) = case;
    let bias = l.bias.as_ref().map(|b| b.val());
    conv2d(x, l.effective_weight(), bias, ConvOptions::new(s, p, d, g))
}

/// For every fixed case: the packed layer and its training forward both equal Burn's conv2d
/// with the dequantized filters, applied to `x` as the activation mode sees it.
fn packed_and_training_equal_reference(act: ActivationQuant, tol: Tolerance<f32>) {
    let grans = [
        Granularity::PerTensor,
        Granularity::PerChannel,
        Granularity::PerGroup { group_size: 64 },
        Granularity::PerGroup { group_size: 128 },
    ];
    for ((i, case), gran) in CASES
        .iter()
        .enumerate()
        .flat_map(|c| grans.iter().map(move |g| (c, *g)))
    {
        let l = layer(case, gran, act, i % 3 != 1);
        let x = input(case);
        let seen = match act {
            ActivationQuant::Int8PerImage => quantize_per_image(x.clone()),
            _ => x.clone(),
        };
        let want = reference(&l, case, seen).into_data();
        // The training forward quantizes the same way, so QAT trains what inference runs.
        let training = l.forward(x.clone());
        let packed = l.freeze().unwrap();
        packed
            .forward(x)
            .into_data()
            .assert_approx_eq::<f32>(&want, tol);
        training.into_data().assert_approx_eq::<f32>(&want, tol);
    }
}

#[test]
fn packed_exact_f32_conv_equals_burn_conv2d_with_dequantized_filters() {
    packed_and_training_equal_reference(ActivationQuant::None, Tolerance::rel_abs(1e-4, 1e-5));
}

#[test]
fn packed_w2a8_conv_equals_conv2d_of_the_per_image_quantized_input() {
    // Integer sums are exact; only the float scale products and the reference conv's
    // summation order differ. An activation exactly on a rounding tie may land one int8
    // step apart: allow one step (max|x|/127) times Σ|w| ≈ the filter's size.
    packed_and_training_equal_reference(
        ActivationQuant::Int8PerImage,
        Tolerance::rel_abs(1e-4, 2e-3),
    );
}

#[test]
fn legacy_per_patch_w2a8_conv_still_matches_its_training_forward() {
    let case = &CASES[1];
    let l = layer(
        case,
        Granularity::PerChannel,
        ActivationQuant::Int8PerToken,
        true,
    );
    let x = input(case);
    let training = l.forward(x.clone());
    let packed = l.freeze().unwrap();
    packed
        .forward(x)
        .into_data()
        .assert_approx_eq::<f32>(&training.into_data(), Tolerance::rel_abs(1e-4, 2e-3));
}

#[test]
fn straight_through_gradient_of_a_packed_conv_is_the_dequantized_convs() {
    let device = Device::flex().autodiff();
    for (i, case) in CASES.iter().enumerate() {
        let act = [ActivationQuant::None, ActivationQuant::Int8PerImage][i % 2];
        let l = layer(case, Granularity::PerChannel, act, true)
            .freeze()
            .unwrap();
        let l = burn::module::Module::fork(l, &device);
        let data = input(case).into_data();
        let x = Tensor::<4>::from_data(data.clone(), &device).require_grad();
        let y = l.forward(x.clone());
        let g = Tensor::<4>::random(y.dims(), Distribution::Default, &device);
        let grads = (y * g.clone()).sum().backward();
        let got = x.grad(&grads).unwrap();
        // The reference: Burn's conv2d with the dequantized (constant) filters.
        let x2 = Tensor::<4>::from_data(data, &device).require_grad();
        let &(_, _, _, s, p, d, gr, ..) = case;
        let w = l.effective_weight().detach();
        let y2 = conv2d(x2.clone(), w, None, ConvOptions::new(s, p, d, gr));
        let grads2 = (y2 * g).sum().backward();
        let want = x2.grad(&grads2).unwrap();
        got.into_data()
            .assert_approx_eq::<f32>(&want.into_data(), Tolerance::rel_abs(1e-4, 1e-5));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn packed_conv_matches_the_reference_on_random_shapes(
        cg in 1usize..6, ng in 1usize..5, groups in 1usize..4,
        kh in 1usize..4, kw in 1usize..4, sh in 1usize..3, sw in 1usize..3,
        ph in 0usize..3, pw in 0usize..3, dh in 1usize..3, dw in 1usize..3,
        h in 1usize..10, w in 1usize..10, batch in 1usize..3, int8 in any::<bool>(),
    ) {
        let (span_h, span_w) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
        prop_assume!(h + 2 * ph >= span_h && w + 2 * pw >= span_w);
        let case: Case = (cg * groups, ng * groups, [kh, kw], [sh, sw], [ph, pw], [dh, dw], groups, h, w, batch);
        let act = if int8 { ActivationQuant::Int8PerImage } else { ActivationQuant::None };
        let l = layer(&case, Granularity::PerChannel, act, true);
        let x = input(&case);
        let xq = if int8 { quantize_per_image(x.clone()) } else { x.clone() };
        let want = reference(&l, &case, xq);
        let got = l.freeze().unwrap().forward(x);
        got.into_data().assert_approx_eq::<f32>(&want.into_data(), Tolerance::rel_abs(1e-4, 2e-3));
    }
}
