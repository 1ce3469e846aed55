//! TernaryLinear: packed forward vs the fake-quant training forward, STE gradients, and the
//! record of a packed model.

use burn::tensor::{Device, Distribution, Tensor, TensorData, Tolerance};
use burn_ternary::nn::{TernaryLinear, TernaryLinearConfig, freeze};
use burn_ternary::quant::{ActivationQuant, Granularity, TernaryQuantizer};

fn schemes() -> Vec<(TernaryQuantizer, Granularity)> {
    let mut v = Vec::new();
    for q in [TernaryQuantizer::AbsMean, TernaryQuantizer::Twn] {
        for g in [
            Granularity::PerTensor,
            Granularity::PerChannel,
            Granularity::PerGroup { group_size: 64 },
            Granularity::PerGroup { group_size: 128 },
            Granularity::PerGroup { group_size: 256 },
        ] {
            v.push((q, g));
        }
    }
    v
}

fn layer(
    d_in: usize,
    d_out: usize,
    q: TernaryQuantizer,
    g: Granularity,
    a: ActivationQuant,
    device: &Device,
) -> TernaryLinear {
    TernaryLinearConfig::new(d_in, d_out)
        .with_quantizer(q)
        .with_granularity(g)
        .with_activation(a)
        .init(device)
}

fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

#[test]
fn packed_forward_equals_fake_quant_forward_in_exact_f32_mode() {
    let device = Device::flex();
    for (q, g) in schemes() {
        for (m, d_in, d_out) in [(1, 300, 17), (5, 128, 64), (3, 1000, 33)] {
            let layer = layer(d_in, d_out, q, g, ActivationQuant::None, &device);
            let x = Tensor::<2>::random([m, d_in], Distribution::Default, &device);
            let expected = layer.forward(x.clone());
            let packed = layer.freeze().unwrap();
            assert!(packed.is_packed());
            let got = packed.forward(x);
            got.into_data().assert_approx_eq::<f32>(
                &expected.into_data(),
                // 1e-5 relative; the 1e-6 absolute floor only matters for outputs that cancel to ~0.
                Tolerance::rel_abs(1e-5, 1e-6),
            );
        }
    }
}

/// W2A8: the packed layer quantizes each row of x to int8 (step s_x = max|x|/127), so against
/// the exact product with the same ternary weights the error of output j is at most
/// `Σ_k |w_jk| · s_w · s_x / 2` (half a step per activation), plus f32 rounding.
#[test]
fn packed_w2a8_forward_is_within_the_activation_quantization_bound() {
    let device = Device::flex();
    for (q, g) in schemes() {
        let (m, d_in, d_out) = (4, 515, 40);
        let exact_layer = layer(d_in, d_out, q, g, ActivationQuant::None, &device);
        let x = Tensor::<2>::random([m, d_in], Distribution::Normal(0.0, 1.0), &device);
        let w_eff = exact_layer.effective_weight(); // [d_in, d_out], values t·s
        let exact = to_vec(exact_layer.forward(x.clone()));
        // Same packed weights, int8 activations.
        let packed_int8 = TernaryLinear {
            activation: ActivationQuant::Int8PerToken,
            ..exact_layer.freeze().unwrap()
        };
        let got = to_vec(packed_int8.forward(x.clone()));
        let xs = to_vec(x);
        let ws = to_vec(w_eff);
        for i in 0..m {
            let amax = xs[i * d_in..(i + 1) * d_in]
                .iter()
                .fold(0f32, |a, v| a.max(v.abs()));
            for j in 0..d_out {
                let l1: f32 = (0..d_in).map(|k| ws[k * d_out + j].abs()).sum();
                let bound = l1 * amax / 127.0 / 2.0 + 1e-5 * exact[i * d_out + j].abs() + 1e-5;
                let err = (got[i * d_out + j] - exact[i * d_out + j]).abs();
                assert!(
                    err <= bound,
                    "{q:?} {g:?} ({i},{j}): error {err} > bound {bound}"
                );
            }
        }
    }
}

#[test]
fn int8_training_forward_matches_packed_int8_forward() {
    let device = Device::flex();
    let (m, d_in, d_out) = (3, 256, 24);
    let l = layer(
        d_in,
        d_out,
        TernaryQuantizer::AbsMean,
        Granularity::PerChannel,
        ActivationQuant::Int8PerToken,
        &device,
    );
    let x = Tensor::<2>::random([m, d_in], Distribution::Normal(0.0, 1.0), &device);
    let expected = to_vec(l.forward(x.clone()));
    let w_abs_sum = to_vec(l.effective_weight().abs().sum_dim(0));
    let amax = to_vec(x.clone().abs().max_dim(1));
    let got = to_vec(freeze(l).unwrap().forward(x));
    // Both quantize x identically except for exact rounding ties; allow one step on two
    // activations per row, scaled by the largest weight magnitude.
    for i in 0..m {
        for j in 0..d_out {
            let step = amax[i] / 127.0 * w_abs_sum[j] / d_in as f32 * 4.0 + 1e-4;
            let (a, b) = (got[i * d_out + j], expected[i * d_out + j]);
            assert!((a - b).abs() <= step, "({i},{j}): {a} vs {b}");
        }
    }
}

#[test]
fn ste_gradients_match_the_dequantized_detach_formulation() {
    let device = Device::flex().autodiff();
    for (q, g) in schemes() {
        let (m, d_in, d_out) = (3, 70, 9);
        let l = layer(d_in, d_out, q, g, ActivationQuant::None, &device);
        let x = Tensor::<2>::random([m, d_in], Distribution::Default, &device).require_grad();
        let r = Tensor::<2>::random([m, d_out], Distribution::Default, &device);
        let y = l.forward(x.clone());
        let grads = (y * r.clone()).sum().backward();
        let gw = l.weight.grad(&grads).unwrap();
        let gx = x.grad(&grads).unwrap();
        // Straight-through: dL/dW = xᵀ·r as if W were used directly; dL/dx = r·W_effᵀ.
        let w_eff = l.effective_weight().detach();
        let x0 = x.clone().detach();
        let r0 = r.detach();
        gw.into_data().assert_approx_eq::<f32>(
            &x0.clone().transpose().matmul(r0.clone()).into_data(),
            Tolerance::rel_abs(1e-4, 1e-6),
        );
        gx.into_data().assert_approx_eq::<f32>(
            &r0.clone().matmul(w_eff.clone().transpose()).into_data(),
            Tolerance::rel_abs(1e-4, 1e-6),
        );

        // The packed layer's extension op has the same straight-through backward for x.
        let packed = l.freeze().unwrap();
        let x = x0.require_grad();
        let grads = (packed.forward(x.clone()) * r0.clone()).sum().backward();
        x.grad(&grads).unwrap().into_data().assert_approx_eq::<f32>(
            &r0.matmul(w_eff.transpose()).into_data(),
            Tolerance::rel_abs(1e-4, 1e-6),
        );
    }
}

#[test]
fn freezing_nan_weights_is_a_typed_error() {
    let device = Device::flex();
    let l = TernaryLinearConfig::new(4, 2).init(&device);
    let nan = Tensor::<2>::from_data(TensorData::new(vec![f32::NAN; 8], [4, 2]), &device);
    let l = TernaryLinear {
        weight: l.weight.map(|_| nan),
        ..l
    };
    let err = l.freeze().unwrap_err().to_string();
    assert!(
        err.contains("TernaryLinear") && err.contains("scale"),
        "{err}"
    );
}

#[test]
#[should_panic(expected = "d_input = 8")]
fn wrong_input_width_panics_with_the_values() {
    let device = Device::flex();
    let l = TernaryLinearConfig::new(8, 2).init(&device);
    let _ = l.forward(Tensor::<2>::zeros([1, 7], &device));
}
