//! TernaryConv2d: the packed im2col + ternary GEMM path against Burn's conv2d with the
//! dequantized filters, and the training forward.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, Tolerance};
use burn_ternary::nn::TernaryConv2dConfig;
use burn_ternary::quant::Granularity;

#[test]
fn packed_conv2d_equals_burn_conv2d_with_dequantized_weights() {
    let device = Device::flex();
    // (c_in, c_out, kernel, stride, padding, dilation, groups, h, w)
    let cases = [
        (3, 8, [3, 3], [1, 1], [1, 1], [1, 1], 1, 9, 7),
        (4, 6, [3, 2], [2, 1], [0, 1], [1, 1], 2, 10, 9),
        (6, 6, [3, 3], [1, 2], [2, 2], [2, 1], 3, 11, 12),
        (2, 4, [1, 1], [1, 1], [0, 0], [1, 1], 1, 5, 5),
        (8, 16, [5, 5], [2, 2], [2, 2], [1, 1], 4, 13, 8),
    ];
    for (i, &(ci, co, k, s, p, d, g, h, w)) in cases.iter().enumerate() {
        let gran = if i % 2 == 0 {
            Granularity::PerTensor
        } else {
            Granularity::PerChannel
        };
        let layer = TernaryConv2dConfig::new([ci, co], k)
            .with_stride(s)
            .with_padding(p)
            .with_dilation(d)
            .with_groups(g)
            .with_bias(i % 2 == 1)
            .with_granularity(gran)
            .init(&device);
        let x = Tensor::<4>::random([2, ci, h, w], Distribution::Default, &device);
        let w_deq = layer.effective_weight();
        let bias = layer.bias.as_ref().map(|b| b.val());
        let reference = conv2d(x.clone(), w_deq, bias, ConvOptions::new(s, p, d, g));
        let training = layer.forward(x.clone());
        let packed = layer.freeze().unwrap();
        let got = packed.forward(x);
        let tol = Tolerance::rel_abs(1e-4, 1e-6);
        got.into_data()
            .assert_approx_eq::<f32>(&reference.clone().into_data(), tol);
        training
            .into_data()
            .assert_approx_eq::<f32>(&reference.into_data(), tol);
    }
}
