//! Burn's own Q2S tensors (made by Burn's quantizer with `Calibration::AbsMean`) become packed
//! matrices with the same effective weights, and packed matrices become Q2S tensors that
//! Burn dequantizes to the same weights, per tensor and per 64/128-column block.

use burn::tensor::quantization::{
    Calibration, QuantMode, QuantScheme, QuantStore, QuantValue, ScaleDtype, compute_q_params,
    compute_range,
};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use burn_ternary::import::ImportError;
use burn_ternary::import::burn_q2s::{from_q2s, to_q2s};
use burn_ternary::kernels::Scales;

fn q2s() -> QuantScheme {
    QuantScheme::default()
        .with_value(QuantValue::Q2S)
        .with_mode(QuantMode::Symmetric)
        .with_store(QuantStore::PackedU32(0))
}

fn floats(data: TensorData) -> Vec<f32> {
    data.convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn burn_quantized_tensors_convert_both_ways_without_loss() {
    let device = Device::flex();
    for (label, scheme) in [
        ("per tensor", q2s().per_tensor(ScaleDtype::F32)),
        ("blocks of 64", q2s().per_block([1u8, 64], ScaleDtype::F32)),
        (
            "blocks of 128",
            q2s().per_block([1u8, 128], ScaleDtype::F32),
        ),
    ] {
        let w = Tensor::<2>::random([6, 256], Distribution::Normal(0.0, 1.0), &device);
        let range = compute_range(&scheme, &w, &Calibration::AbsMean);
        let q = w.quantize(&scheme, compute_q_params(&scheme, range));
        let burns = floats(q.clone().dequantize().into_data());
        let data = q.into_data();
        let packed = from_q2s("w", &data).unwrap();
        assert_eq!((packed.n(), packed.k()), (6, 256));
        match (label, packed.scales()) {
            ("per tensor", Scales::PerTensor(_)) => {}
            (_, Scales::PerGroup { group_size, .. }) => {
                assert!(label.ends_with(&group_size.to_string()))
            }
            (_, other) => panic!("{label}: {other:?}"),
        }
        let ours = packed.dequantize();
        assert!(
            ours.iter().zip(&burns).all(|(a, b)| a == b),
            "{label}: our decode of Burn's Q2S differs from Burn's dequantize"
        );
        // Back to Burn: the tensor Burn builds from our data dequantizes to the same weights.
        let again = to_q2s("w", &packed, &[6, 256]).unwrap();
        let back = floats(
            Tensor::<2>::from_data(again.clone(), (&device, again.dtype()))
                .dequantize()
                .into_data(),
        );
        assert_eq!(back, ours, "{label}: Burn's dequantization of our Q2S data");
        assert_eq!(from_q2s("w", &again).unwrap(), packed, "{label}");
    }
}

#[test]
fn what_q2s_cannot_carry_is_refused_by_name() {
    // Q2S holds −2 too; that is not ternary.
    let data = TensorData::quantized(
        vec![-2i8, 0, 1, 1],
        [1, 4],
        q2s().per_tensor(ScaleDtype::F32),
        &[0.5],
        None,
    );
    assert!(matches!(
        from_q2s("w", &data),
        Err(ImportError::NotTernary { tensor, index: 0, .. }) if tensor == "w"
    ));
    // Another value type.
    let q8 = QuantScheme::default()
        .with_value(QuantValue::Q8S)
        .per_tensor(ScaleDtype::F32);
    let data = TensorData::quantized(vec![3i8, -4], [1, 2], q8, &[0.1], None);
    assert!(
        matches!(from_q2s("w", &data), Err(ImportError::BadTensor { tensor, .. }) if tensor == "w")
    );
    // 256-column groups have no Q2S form (Burn's block extents are bytes).
    let p = burn_ternary::kernels::PackedI2::from_ternary(
        &vec![1i8; 512],
        1,
        512,
        Scales::PerGroup {
            group_size: 256,
            scales: vec![1.0, 2.0],
        },
    )
    .unwrap();
    assert!(
        matches!(to_q2s("w", &p, &[1, 512]), Err(ImportError::BadTensor { tensor, .. }) if tensor == "w")
    );
}
