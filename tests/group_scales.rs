//! Group scales in the Burn layers: one scale per output channel and per group of 64, 128 or
//! 256 columns of the reduction axis (what ggml's `TQ1_0`/`TQ2_0` blocks and Burn's per-block
//! `Q2S` carry).
//!
//! - Training with `Granularity::PerGroup` uses `mean|W|` over each group (the last one
//!   ragged), checked here against the means computed independently in f64;
//! - a layer frozen from it holds exactly those codes and scales, and its record round-trips;
//! - a tensor quantized by Burn's own quantizer per block becomes a `TernaryLinear` whose
//!   effective weights are Burn's dequantized values bit for bit;
//! - `import::load_packed` takes a GGUF `TQ2_0` tensor's codes and block scales as stored, at
//!   the layer's granularity when that loses nothing, and refuses by name when it would.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::quantization::{
    Calibration, QuantMode, QuantScheme, QuantStore, QuantValue, ScaleDtype, compute_q_params,
    compute_range,
};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use burn_ternary::import::container::PackedInfo;
use burn_ternary::import::gguf::{self, GgufTernary};
use burn_ternary::import::model_file::{ModelFile, OpaqueTensor, PackedTensor, Stored};
use burn_ternary::import::{ImportError, ImportOptions, burn_q2s, load, load_packed};
use burn_ternary::kernels::{PackedI2, Scales};
use burn_ternary::nn::{TernaryLinear, TernaryLinearConfig};
use burn_ternary::quant::{ActivationQuant, Granularity, TernaryQuantizer};

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn group_scales_are_the_absmean_of_each_group_and_freeze_exactly() {
    let device = Device::flex();
    // 300 columns: 5, 3 and 2 groups, the last one ragged for every size.
    let (d_in, d_out) = (300, 7);
    for g in [64, 128, 256] {
        let layer = TernaryLinearConfig::new(d_in, d_out)
            .with_granularity(Granularity::PerGroup { group_size: g })
            .with_bias(false)
            .init(&device);
        // Latent weights [d_in, d_out]: column j of output feature j.
        let w = floats(layer.weight.val());
        let groups = d_in.div_ceil(g);
        let mut want = Vec::new();
        for j in 0..d_out {
            for gi in 0..groups {
                let cols = gi * g..((gi + 1) * g).min(d_in);
                let n = cols.len() as f64;
                let mean: f64 = cols.map(|c| f64::from(w[c * d_out + j]).abs()).sum::<f64>() / n;
                want.push(mean);
            }
        }
        let packed = layer.clone().freeze().unwrap();
        // Freezing a whole model packs each layer the same way.
        let via_model = burn_ternary::nn::freeze(layer.clone()).unwrap();
        assert_eq!(
            via_model.to_packed().unwrap(),
            packed.to_packed().unwrap(),
            "g = {g}"
        );
        let scales = floats(packed.scales.val());
        assert_eq!(scales.len(), d_out * groups, "g = {g}");
        for (i, (&got, &w)) in scales.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(got) - w).abs() <= 1e-6 * w,
                "g = {g}: scale {i} is {got}, mean|W| of its group is {w}"
            );
        }
        // The codes and scales the training forward used, bit for bit.
        assert_eq!(
            floats(packed.effective_weight()),
            floats(layer.effective_weight()),
            "g = {g}"
        );
        let p = packed.to_packed().unwrap().unwrap();
        assert_eq!(p.scales().group_size(), Some(g));
        // From the kernel crate's matrix back to a layer: the same matrix.
        let again = TernaryLinear::from_packed(&p, None, ActivationQuant::None, &device);
        assert_eq!(again.to_packed().unwrap().unwrap(), p);
    }
}

#[test]
fn a_group_scaled_record_round_trips_and_unfreezes_to_the_same_codes() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("bt-groups-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = TernaryLinearConfig::new(200, 9)
        .with_granularity(Granularity::PerGroup { group_size: 64 })
        .with_activation(ActivationQuant::Int8PerToken);
    let packed = config.init(&device).freeze().unwrap();
    let x = Tensor::<2>::random([4, 200], Distribution::Default, &device);
    let want = packed.forward(x.clone());
    let path = dir.join("groups.bpk");
    packed.clone().save_file(&path).unwrap();
    let loaded = config.init_packed(&device).load_file(&path);
    loaded
        .forward(x)
        .into_data()
        .assert_eq(&want.into_data(), true);

    // Back to latent weights and frozen again: the same codes, the scales up to a mean's
    // rounding.
    let again = loaded.unfreeze().freeze().unwrap();
    let (a, b) = (
        packed.to_packed().unwrap().unwrap(),
        again.to_packed().unwrap().unwrap(),
    );
    assert_eq!(a.to_ternary(), b.to_ternary());
    for (x, y) in a.scales().as_slice().iter().zip(b.scales().as_slice()) {
        assert!((x - y).abs() <= 1e-6 * x, "{x} vs {y}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn twn_groups_train_and_freeze_to_the_same_layer() {
    let device = Device::flex();
    let layer = TernaryLinearConfig::new(130, 5)
        .with_quantizer(TernaryQuantizer::Twn)
        .with_granularity(Granularity::PerGroup { group_size: 128 })
        .init(&device);
    let x = Tensor::<2>::random([3, 130], Distribution::Default, &device);
    let want = layer.forward(x.clone());
    let packed = layer.freeze().unwrap();
    assert_eq!(packed.scales.val().dims(), [10]);
    let w = packed.effective_weight(); // [130, 5]
    let bias = packed.bias.as_ref().unwrap().val().abs().unsqueeze::<2>();
    let mag = x.clone().abs().matmul(w.abs()) + bias;
    within_order_bound(packed.forward(x), want, mag, 130, "TWN groups");
}

/// `|got − want| ≤ (K + 2)·2⁻²³·mag` per output, `mag = Σ|x·w|` (+ |bias|): two f32 sums of
/// the same terms in different orders. A relative tolerance would fail on outputs that cancel
/// to near zero.
fn within_order_bound(got: Tensor<2>, want: Tensor<2>, mag: Tensor<2>, k: usize, what: &str) {
    let (got, want, mag) = (floats(got), floats(want), floats(mag));
    for (i, ((g, w), m)) in got.iter().zip(&want).zip(&mag).enumerate() {
        let bound = (k + 2) as f32 * f32::EPSILON * m;
        assert!(
            (g - w).abs() <= bound,
            "{what}: output {i} is {g}, expected {w} (bound {bound})"
        );
    }
}

fn q2s_blocks(block: u8) -> QuantScheme {
    QuantScheme::default()
        .with_value(QuantValue::Q2S)
        .with_mode(QuantMode::Symmetric)
        .with_store(QuantStore::PackedU32(0))
        .per_block([1u8, block], ScaleDtype::F32)
}

#[test]
fn a_burn_quantized_weight_becomes_a_ternary_linear_with_the_same_weights() {
    let device = Device::flex();
    let (n, k) = (12, 384);
    for block in [64u8, 128] {
        // Burn's nn::Linear weight layout is [in, out]; Q2S blocks run along the last axis of
        // the tensor quantized, so quantize the [out, in] rows.
        let w = Tensor::<2>::random([n, k], Distribution::Normal(0.0, 1.0), &device);
        let scheme = q2s_blocks(block);
        let range = compute_range(&scheme, &w, &Calibration::AbsMean);
        let q = w.quantize(&scheme, compute_q_params(&scheme, range));
        let burns = q.clone().dequantize();
        let packed = burn_q2s::from_q2s("fc.weight", &q.into_data()).unwrap();
        assert_eq!(packed.scales().group_size(), Some(usize::from(block)));
        for activation in [ActivationQuant::None, ActivationQuant::Int8PerToken] {
            let layer = TernaryLinear::from_packed(&packed, None, activation, &device);
            assert_eq!(
                floats(layer.effective_weight().transpose()),
                floats(burns.clone()),
                "block {block}: effective weights differ from Burn's dequantize"
            );
            let x = Tensor::<2>::random([5, k], Distribution::Default, &device);
            let x_seen = match activation {
                ActivationQuant::None => x.clone(),
                _ => burn_ternary::quant::fake_quantize_activations(x.clone()),
            };
            let dense = x_seen.clone().matmul(burns.clone().transpose());
            let mag = x_seen.abs().matmul(burns.clone().abs().transpose());
            within_order_bound(layer.forward(x), dense, mag, k, "Q2S layer");
        }
    }
}

#[derive(Module, Debug)]
struct WithTok {
    fc1: TernaryLinear,
    fc2: TernaryLinear,
    tok: burn::nn::Linear,
}

#[derive(Module, Debug)]
struct TwoLayers {
    fc1: TernaryLinear,
    fc2: TernaryLinear,
}

fn two_layers(g1: Granularity, g2: Granularity, device: &Device) -> TwoLayers {
    let layer = |d_in, d_out, g| {
        TernaryLinearConfig::new(d_in, d_out)
            .with_bias(false)
            .with_granularity(g)
            .init(device)
    };
    TwoLayers {
        fc1: layer(512, 6, g1),
        fc2: layer(256, 3, g2),
    }
}

/// `fc1.weight` `[6, 512]` with a different f16-exact scale per 256-column block;
/// `fc2.weight` `[3, 256]` with one scale everywhere; written as GGUF `TQ2_0`.
fn gguf_file(dir: &std::path::Path) -> (std::path::PathBuf, PackedI2, PackedI2) {
    let codes = |len: usize, seed: usize| -> Vec<i8> {
        (0..len).map(|i| ((i * 7 + seed) % 3) as i8 - 1).collect()
    };
    let fc1 = PackedI2::from_ternary(
        &codes(6 * 512, 1),
        6,
        512,
        Scales::PerGroup {
            group_size: 256,
            scales: (0..12).map(|i| 0.125 * (i + 1) as f32).collect(),
        },
    )
    .unwrap();
    let fc2 = PackedI2::from_ternary(&codes(3 * 256, 2), 3, 256, Scales::PerTensor(0.75)).unwrap();
    let entry = |p: &PackedI2| {
        Stored::Packed(PackedTensor {
            packed: p.clone(),
            info: PackedInfo {
                format: String::new(),
                shape: vec![p.n(), p.k()],
                quantizer: "given".into(),
                granularity: "per-tensor".into(),
                source_dtype: "F32".into(),
                scale_from: None,
            },
            source_bytes: 0,
        })
    };
    let file = ModelFile {
        tensors: BTreeMap::from([
            ("fc1.weight".to_string(), entry(&fc1)),
            ("fc2.weight".to_string(), entry(&fc2)),
        ]),
        metadata: BTreeMap::new(),
    };
    let path = dir.join("two.gguf");
    let (_, notes) = gguf::write(&path, &file, GgufTernary::Tq2_0).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    (path, fc1, fc2)
}

#[test]
fn load_packed_takes_gguf_codes_and_block_scales_as_stored() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("bt-groups-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (path, fc1, fc2) = gguf_file(&dir);
    let options = ImportOptions::new();

    // At the file's own granularity: the same matrices.
    let model = two_layers(
        Granularity::PerGroup { group_size: 256 },
        Granularity::PerTensor,
        &device,
    );
    let loaded = load_packed(&model, &path, &options).unwrap();
    assert_eq!(loaded.fc1.to_packed().unwrap().unwrap(), fc1);
    assert_eq!(loaded.fc2.to_packed().unwrap().unwrap(), fc2);
    let x = Tensor::<2>::random([2, 512], Distribution::Default, &device);
    let dense = Tensor::<2>::from_data(TensorData::new(fc1.dequantize(), [6, 512]), &device);
    let mag = x.clone().abs().matmul(dense.clone().abs().transpose());
    within_order_bound(
        loaded.fc1.forward(x.clone()),
        x.matmul(dense.transpose()),
        mag,
        512,
        "GGUF layer",
    );

    // Finer groups and per-channel scales hold the same weights; nothing is re-quantized.
    let model = two_layers(
        Granularity::PerGroup { group_size: 64 },
        Granularity::PerChannel,
        &device,
    );
    let loaded = load_packed(&model, &path, &options).unwrap();
    let p1 = loaded.fc1.to_packed().unwrap().unwrap();
    assert_eq!(p1.scales().group_size(), Some(64));
    assert_eq!(p1.dequantize(), fc1.dequantize());
    assert_eq!(
        loaded.fc2.to_packed().unwrap().unwrap().dequantize(),
        fc2.dequantize()
    );

    // A per-tensor layer cannot hold fc1's twelve scales: refused by name, saying what to use.
    let model = two_layers(Granularity::PerTensor, Granularity::PerTensor, &device);
    match load_packed(&model, &path, &options) {
        Err(ImportError::BadTensor { tensor, what }) => {
            assert_eq!(tensor, "fc1.weight");
            assert!(what.contains("group_size: 256"), "{what}");
        }
        other => panic!("expected a BadTensor error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn load_packed_quantizes_float_weights_per_group_as_freeze_does() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("bt-groups-f32-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // PyTorch layout [out, in]; 300 inputs: ragged last groups.
    let w1 = Tensor::<2>::random([6, 300], Distribution::Normal(0.0, 1.0), &device);
    let w2 = Tensor::<2>::random([3, 256], Distribution::Normal(0.0, 1.0), &device);
    let (v1, v2) = (floats(w1), floats(w2));
    let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let (b1, b2) = (bytes(&v1), bytes(&v2));
    let path = dir.join("float.safetensors");
    safetensors::serialize_to_file(
        [
            (
                "fc1.weight",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![6, 300], &b1)
                    .unwrap(),
            ),
            (
                "fc2.weight",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, 256], &b2)
                    .unwrap(),
            ),
        ],
        None,
        &path,
    )
    .unwrap();
    let layer = |d_in, d_out, g| {
        TernaryLinearConfig::new(d_in, d_out)
            .with_bias(false)
            .with_granularity(Granularity::PerGroup { group_size: g })
            .init(&device)
    };
    let model = TwoLayers {
        fc1: layer(300, 6, 64),
        fc2: layer(256, 3, 128),
    };
    let options = ImportOptions::new();
    let packed = load_packed(&model, &path, &options).unwrap();
    let frozen = burn_ternary::nn::freeze(load(&model, &path, &options).unwrap()).unwrap();
    for (a, b) in [(&packed.fc1, &frozen.fc1), (&packed.fc2, &frozen.fc2)] {
        let (a, b) = (
            a.to_packed().unwrap().unwrap(),
            b.to_packed().unwrap().unwrap(),
        );
        assert_eq!(a.to_ternary(), b.to_ternary());
        assert_eq!(a.scales().group_size(), b.scales().group_size());
        for (x, y) in a.scales().as_slice().iter().zip(b.scales().as_slice()) {
            assert!((x - y).abs() <= 1e-6 * x.abs(), "{x} vs {y}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_undecoded_gguf_tensor_is_unused_unless_the_model_takes_it() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("bt-groups-q8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (path, fc1, _) = gguf_file(&dir);
    // The same file with a Q8_0 tensor beside the ternary ones.
    let mut file = burn_ternary::import::model_file::read(&path, &ImportOptions::new()).unwrap();
    file.tensors.insert(
        "tok.weight".into(),
        Stored::Opaque(OpaqueTensor {
            type_id: 8,
            type_name: "Q8_0".into(),
            shape: vec![1, 32],
            bytes: vec![0; 34],
        }),
    );
    let path = dir.join("with_q8.gguf");
    gguf::write(&path, &file, GgufTernary::Tq2_0).unwrap();
    let model = two_layers(
        Granularity::PerGroup { group_size: 256 },
        Granularity::PerTensor,
        &device,
    );
    match load_packed(&model, &path, &ImportOptions::new()) {
        Err(ImportError::Unused { keys }) => assert_eq!(keys, vec!["tok.weight".to_string()]),
        other => panic!("expected an Unused error, got {other:?}"),
    }
    let loaded = load_packed(&model, &path, &ImportOptions::new().allow_unused()).unwrap();
    assert_eq!(loaded.fc1.to_packed().unwrap().unwrap(), fc1);
    // A model that takes it: refused by name and type.
    let taker = WithTok {
        fc1: model.fc1.clone(),
        fc2: model.fc2.clone(),
        tok: burn::nn::LinearConfig::new(32, 1)
            .with_bias(false)
            .init(&device),
    };
    match load_packed(&taker, &path, &ImportOptions::new()) {
        Err(ImportError::BadTensor { tensor, what }) => {
            assert_eq!(tensor, "tok.weight");
            assert!(what.contains("Q8_0"), "{what}");
        }
        other => panic!("expected a BadTensor error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn trit_products_refuse_a_layer_with_several_groups_per_row() {
    let device = Device::flex();
    let packed = TernaryLinearConfig::new(200, 3)
        .with_granularity(Granularity::PerGroup { group_size: 64 })
        .init(&device)
        .freeze()
        .unwrap();
    let trits = burn_ternary::trit::TritTensor::zeros([1, 200]);
    let err = packed
        .forward_trits(&trits, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("scale groups per row"), "{err}");
    // One group per row is the per-row layout, which trit products take.
    let single = TernaryLinearConfig::new(60, 3)
        .with_granularity(Granularity::PerGroup { group_size: 64 })
        .init(&device)
        .freeze()
        .unwrap();
    assert!(
        single
            .forward_trits(&burn_ternary::trit::TritTensor::zeros([1, 60]), &device)
            .is_ok()
    );
}
