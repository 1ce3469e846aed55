//! The ONNX-imported CNN against PyTorch. Generated with every layer stock it reproduces
//! PyTorch's f32 outputs; generated with ternary layers it reproduces PyTorch's ternarized
//! model (absmean per output channel, `fixtures/make_fixtures.py`) both as imported (training
//! state: straight-through fake quantization) and frozen to packed 2-bit weights. Bound: `1e-4`
//! relative plus `1e-5` absolute per output — both sides multiply the same {−1, 0, +1}·scale
//! weights with the same f32 activations and differ only in summation order.

use burn::tensor::{Device, Tensor};
use burn_ternary::nn::freeze;
use onnx_cnn::{
    WEIGHTS, cnn_twn, fixture_io, generated, io, layers, load, load_f32, load_from, load_into, seq,
    seq_f32, weight_bytes,
};

fn assert_close(got: Tensor<2>, want: &[f32], what: &str) {
    let got: Vec<f32> = got.into_data().convert::<f32>().try_into_vec().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs() + 1e-5,
            "{what}: output {i} is {g}, PyTorch gives {w}"
        );
    }
}

#[test]
fn stock_import_reproduces_pytorch_f32() {
    let device = Device::flex();
    let (x, y_f32, _) = fixture_io().unwrap();
    let model = load_f32(&device).unwrap();
    assert_eq!(
        layers(&model)
            .iter()
            .map(|(_, ty)| ty.as_str())
            .collect::<Vec<_>>(),
        ["Conv2d", "Conv2d", "Linear"]
    );
    assert_close(model.forward(Tensor::from_data(x, &device)), &y_f32, "f32");
}

#[test]
fn ternary_import_in_training_state_matches_pytorch_ternarized() {
    let device = Device::flex();
    let (x, _, y_ternary) = fixture_io().unwrap();
    let model = load(&device).unwrap();
    assert_close(
        model.forward(Tensor::from_data(x, &device)),
        &y_ternary,
        "training state",
    );
}

#[test]
fn generated_layers_are_ternary_where_selected() {
    let model = load(&Device::flex()).unwrap();
    // The generator's filter (build.rs) kept the first convolution stock and routed the rest.
    let expect = [
        ("conv2d1", "Conv2d"),
        ("conv2d2", "TernaryConv2d"),
        ("linear1", "TernaryLinear"),
    ];
    let got = layers(&model);
    assert_eq!(
        got.iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
        expect
    );
}

#[test]
fn missing_or_corrupt_weights_are_errors_not_panics() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("onnx-cnn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.bpk");
    assert!(load_from(&missing, &device).is_err());
    let bytes = std::fs::read(WEIGHTS).unwrap();
    for cut in [0, 7, bytes.len() / 2, bytes.len() - 1] {
        let truncated = dir.join("truncated.bpk");
        std::fs::write(&truncated, &bytes[..cut]).unwrap();
        let err = load_from(&truncated, &device).err();
        assert!(err.is_some(), "a file cut at {cut} bytes loaded");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn frozen_model_matches_pytorch_ternarized_reference() {
    let device = Device::flex();
    let (x, _, y_ternary) = fixture_io().unwrap();
    let model = load(&device).unwrap();
    let before = weight_bytes(&model);
    let packed = freeze(model).unwrap();
    assert_close(
        packed.forward(Tensor::from_data(x, &device)),
        &y_ternary,
        "ternary",
    );
    // conv2d2 (1152 weights) and linear1 (2560) go from 4 bytes to 2 bits per weight.
    let after = weight_bytes(&packed);
    assert!(
        after * 5 < before,
        "packed storage {after} B is not much smaller than {before} B"
    );
}

#[test]
fn frozen_model_runs_on_wgpu_like_on_flex() {
    use burn::module::Module;
    let cpu = Device::flex();
    let (x, _, y_ternary) = fixture_io().unwrap();
    let packed = freeze(load(&cpu).unwrap()).unwrap();
    let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    let y = packed
        .to_device(&gpu)
        .forward(Tensor::from_data(x, &gpu))
        .to_device(&cpu);
    assert_close(y, &y_ternary, "ternary on wgpu");
}

/// `MatMul` + `Add` and a bare `MatMul` with constant `[in, out]` weights on a 3-D input: onnx-ir
/// makes both `Linear` nodes that need no transpose, the path a `Gemm` does not take.
#[test]
fn matmul_layers_on_3d_input_match_pytorch() {
    let device = Device::flex();
    let (x, y_f32, y_ternary) = io("seq").unwrap();
    let x = Tensor::<3>::from_data(x, &device);
    let flat = |y: Tensor<3>| {
        let [a, b, c] = y.dims();
        y.reshape([a * b, c])
    };

    let stock = load_into(
        seq_f32::Model::new(&device),
        generated("model_seq_f32/seq.bpk"),
    )
    .unwrap();
    assert!(layers(&stock).iter().all(|(_, ty)| ty == "Linear"));
    assert_close(flat(stock.forward(x.clone())), &y_f32, "seq f32");

    let ternary = load_into(seq::Model::new(&device), generated("model_seq/seq.bpk")).unwrap();
    assert!(
        layers(&ternary).iter().all(|(_, ty)| ty == "TernaryLinear"),
        "{:?}",
        layers(&ternary)
    );
    assert_close(
        flat(ternary.forward(x.clone())),
        &y_ternary,
        "seq training state",
    );
    let packed = freeze(ternary).unwrap();
    assert_close(flat(packed.forward(x)), &y_ternary, "seq frozen");
}

/// Quantizer, granularity and activation mode reach both halves of a generated layer: the
/// config its training forward uses and the scheme codes in the `.bpk` that `freeze` packs by.
/// Any mismatch (TWN vs absmean, per-tensor vs per-channel) would change the frozen outputs.
#[test]
fn other_settings_agree_between_training_state_and_frozen() {
    let device = Device::flex();
    let (x, _, _) = fixture_io().unwrap();
    let model = load_into(cnn_twn::Model::new(&device), generated("model_twn/cnn.bpk")).unwrap();
    assert!(
        layers(&model)
            .iter()
            .all(|(_, ty)| ty.starts_with("Ternary"))
    );
    let x = Tensor::<4>::from_data(x, &device);
    let trained: Vec<f32> = model.forward(x.clone()).into_data().try_into_vec().unwrap();
    let frozen = freeze(model).unwrap().forward(x);
    assert_close(
        frozen,
        &trained,
        "TWN per-tensor W2A8 frozen vs training state",
    );
}

/// The committed models were generated from the current inputs: the ONNX fixtures,
/// burn-ternary-onnx's sources and the burn-onnx version (`generated/INPUTS`, written by
/// `scripts/check-onnx-generated.sh`, which regenerates the models). When this fails, run
/// that script and commit what it writes.
#[test]
fn generated_code_is_current() {
    use md5::{Digest, Md5};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![
        "fixtures/cnn.onnx".to_string(),
        "fixtures/seq.onnx".to_string(),
    ];
    let mut sources: Vec<String> = std::fs::read_dir(root.join("onnx/src"))
        .unwrap()
        .map(|e| format!("onnx/src/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".rs"))
        .collect();
    sources.sort();
    files.extend(sources);
    let mut expected = String::new();
    for f in &files {
        let digest = Md5::digest(std::fs::read(root.join(f)).unwrap());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        expected.push_str(&format!("{hex}  {f}\n"));
    }
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"burn-onnx\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("burn-onnx in Cargo.lock");
    expected.push_str(&format!("burn-onnx {version}\n"));
    let recorded = std::fs::read_to_string(generated("INPUTS")).unwrap();
    assert_eq!(
        recorded, expected,
        "onnx-cnn/generated/ was made from other inputs: run scripts/check-onnx-generated.sh and commit its output"
    );
}
