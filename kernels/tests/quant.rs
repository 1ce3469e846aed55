//! Quantizers against hand-computed cases.

use ternary_kernels::quant::{Granularity, Method, QuantizedActivations, quantize};
use ternary_kernels::{KernelError, PackedI2, Scales, Ternary};

#[test]
fn absmean_per_tensor_matches_hand_computation() {
    // mean|W| = (0.1 + 0.5 + 1.0 + 0.4 + 0.0 + 2.0) / 6 = 4.0 / 6 = 0.6667; W/γ = 0.15, -0.75,
    // 1.5, -0.6, 0, 3.0 → RoundClip → 0, -1, 1, -1, 0, 1.
    let w = [0.1, -0.5, 1.0, -0.4, 0.0, 2.0];
    let t = quantize(&w, 2, 3, Method::AbsMean, Granularity::PerTensor).unwrap();
    assert_eq!(t.values, [0, -1, 1, -1, 0, 1]);
    assert_eq!(t.scales, Scales::PerTensor(4.0 / 6.0));
}

#[test]
fn absmean_rounds_half_away_from_zero() {
    // Σ|W| = 4 over 4 weights → γ = 1 exactly, so W/γ = W: ±0.5 → ±1, 0.25 → 0.
    let t = quantize(
        &[0.5, -0.5, 0.25, 2.75],
        1,
        4,
        Method::AbsMean,
        Granularity::PerTensor,
    );
    let t = t.unwrap();
    assert_eq!(
        (t.values, t.scales),
        (vec![1, -1, 0, 1], Scales::PerTensor(1.0))
    );
    // Just below one half stays zero (γ = (0.49999997 + 3.5) / 4 rounds to 1.0 in f32).
    let w = [0.499_999_97, 3.5, 0.0, 0.0];
    let t = quantize(&w, 1, 4, Method::AbsMean, Granularity::PerTensor).unwrap();
    assert_eq!(
        (t.values, t.scales),
        (vec![0, 1, 0, 0], Scales::PerTensor(1.0))
    );
}

#[test]
fn absmean_per_row_uses_each_rows_mean() {
    // Row 0: γ = 0.2 → 0.1/0.2 = 0.5 → 1, 0.3/0.2 = 1.5 → 1. Row 1: γ = 3 → 1/3 → 0, 5/3 → 1.
    let w = [0.1, -0.3, 1.0, -5.0];
    let t = quantize(&w, 2, 2, Method::AbsMean, Granularity::PerRow).unwrap();
    assert_eq!(t.values, [1, -1, 0, -1]);
    assert_eq!(t.scales, Scales::PerRow(vec![0.2, 3.0]));
}

#[test]
fn twn_matches_hand_computation() {
    // mean|W| = (1 + 0.2 + 3 + 0.6) / 4 = 1.2; Δ = 0.84 → keep 1 and -3 → α = 2.
    let w = [1.0, 0.2, -3.0, 0.6];
    let t = quantize(&w, 1, 4, Method::Twn, Granularity::PerTensor).unwrap();
    assert_eq!(t.values, [1, 0, -1, 0]);
    assert_eq!(t.scales, Scales::PerTensor(2.0));
    // Per row: row 0 [1, 0.2] mean .6 Δ .42 → [1, 0], α 1; row 1 [-3, .6] mean 1.8 Δ 1.26 → α 3.
    let t = quantize(&w, 2, 2, Method::Twn, Granularity::PerRow).unwrap();
    assert_eq!(t.values, [1, 0, -1, 0]);
    assert_eq!(t.scales, Scales::PerRow(vec![1.0, 3.0]));
}

#[test]
fn fused_quantize_and_pack_equals_quantize_then_pack() {
    let w: Vec<f32> = (0..7 * 300)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    for method in [Method::AbsMean, Method::Twn] {
        for gran in [Granularity::PerTensor, Granularity::PerRow] {
            let t = quantize(&w, 7, 300, method, gran).unwrap();
            assert_eq!(
                PackedI2::quantize(&w, 7, 300, method, gran).unwrap(),
                t.pack_i2()
            );
        }
    }
}

#[test]
fn nan_and_inf_are_errors_not_zeros() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let w = [0.5, bad, 1.0];
        let e = quantize(&w, 1, 3, Method::AbsMean, Granularity::PerTensor).unwrap_err();
        assert!(matches!(
            e,
            KernelError::NonFinite {
                what: "weights",
                index: 1,
                ..
            }
        ));
        assert!(PackedI2::quantize(&w, 1, 3, Method::Twn, Granularity::PerRow).is_err());
        let e = QuantizedActivations::quantize(&w, 1, 3).unwrap_err();
        assert!(matches!(
            e,
            KernelError::NonFinite {
                what: "activations",
                index: 1,
                ..
            }
        ));
    }
}

#[test]
fn all_zero_rows_pack_to_zero_with_zero_scale() {
    let w = [0.0, 0.0, 0.0, 1.0, -1.0, 0.5];
    for method in [Method::AbsMean, Method::Twn] {
        let t = quantize(&w, 2, 3, method, Granularity::PerRow).unwrap();
        assert_eq!(&t.values[..3], &[0, 0, 0]);
        assert_eq!(t.scales.get(0), 0.0);
    }
}

#[test]
fn already_ternary_values_are_validated() {
    assert!(Ternary::new(vec![1, 0, -1], 1, 3, Scales::PerTensor(0.5)).is_ok());
    assert_eq!(
        Ternary::new(vec![1, 3, -1], 1, 3, Scales::PerTensor(0.5)),
        Err(KernelError::NotTernary { index: 1, value: 3 })
    );
    assert!(Ternary::new(vec![1, 0], 1, 3, Scales::PerTensor(0.5)).is_err());
    assert!(Ternary::new(vec![1, 0, 0], 1, 3, Scales::PerTensor(f32::INFINITY)).is_err());
}

#[test]
fn activations_quantize_per_row_by_absmax() {
    // Row 0: max 2 → ×63.5: [1 → 63.5 → 64, -2 → -127, 0.5 → 31.75 → 32]; scale 2/127.
    // Row 1: all zero → scale 0, values 0.
    let q = QuantizedActivations::quantize(&[1.0, -2.0, 0.5, 0.0, 0.0, 0.0], 2, 3).unwrap();
    assert_eq!(&q.data()[..3], &[64, -127, 32]);
    assert!(
        q.data()[3..q.k_padded()].iter().all(|&v| v == 0),
        "padding is zero"
    );
    assert_eq!(&q.data()[q.k_padded()..q.k_padded() + 3], &[0, 0, 0]);
    assert_eq!(q.scales(), &[2.0 / 127.0, 0.0]);
    assert_eq!(q.sums(), &[64 - 127 + 32, 0]);
    assert_eq!(q.k_padded(), 128);
    assert!(matches!(
        QuantizedActivations::from_i8(&[-128], 1, 1, vec![1.0]),
        Err(KernelError::ActivationRange {
            index: 0,
            value: -128
        })
    ));
}
