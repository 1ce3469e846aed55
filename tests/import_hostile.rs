//! Hostile checkpoints: every case returns its typed error naming the tensor or file, nothing
//! panics, nothing is allocated from a mere claim, and the caller's model is never changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Device;
use burn_ternary::import::container::{self, ConvertOptions};
use burn_ternary::import::{ImportError, ImportOptions, load, load_packed, load_ternary};
use burn_ternary::nn::{TernaryLinear, TernaryLinearConfig};
use safetensors::tensor::{Dtype, TensorView};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bt-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[derive(Module, Debug)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    head: Linear,
}

fn mlp(device: &Device) -> Mlp {
    Mlp {
        fc1: LinearConfig::new(32, 64).init(device),
        fc2: LinearConfig::new(64, 16).init(device),
        head: LinearConfig::new(16, 10).init(device),
    }
}

/// Writes a safetensors file of f32 tensors.
fn write_st(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (
                n.to_string(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None::<HashMap<String, String>>, path).unwrap();
}

/// The mlp fixture's tensors as (name, shape, values), to edit one.
fn mlp_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let t = burn_ternary::import::read_tensors(&fixture("mlp.safetensors"), &ImportOptions::new())
        .unwrap();
    t.into_iter()
        .map(|(k, d)| (k, d.shape().to_vec(), d.try_into_vec::<f32>().unwrap()))
        .collect()
}

fn write_edited(path: &Path, edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    let mut t = mlp_tensors();
    edit(&mut t);
    let refs: Vec<(&str, Vec<usize>, Vec<f32>)> = t
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.clone(), v.clone()))
        .collect();
    write_st(path, &refs);
}

fn weights(m: &Mlp) -> Vec<f32> {
    m.fc1.weight.val().into_data().try_into_vec().unwrap()
}

#[test]
fn truncated_files_are_format_errors() {
    let device = Device::flex();
    for name in ["mlp.safetensors", "mlp.pt"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
            let path = scratch(&format!("cut-{cut}-{name}"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let e = load(&mlp(&device), &path, &ImportOptions::new()).unwrap_err();
            assert!(
                matches!(e, ImportError::Format { .. }),
                "{name} cut at {cut}: {e:?}"
            );
        }
    }
}

#[test]
fn wrong_magic_and_bit_flipped_headers_are_errors() {
    let device = Device::flex();
    // A .pt that is not a zip/pickle at all.
    let path = scratch("garbage.pt");
    std::fs::write(&path, b"not a pytorch file, just text").unwrap();
    assert!(matches!(
        load(&mlp(&device), &path, &ImportOptions::new()),
        Err(ImportError::Format { .. })
    ));
    // Flip each bit of the safetensors header-length prefix and of the first header bytes.
    let bytes = std::fs::read(fixture("mlp.safetensors")).unwrap();
    let mut failures = 0;
    for byte in 0..24 {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[byte] ^= 1 << bit;
            let path = scratch("flipped.safetensors");
            std::fs::write(&path, &b).unwrap();
            // Must not panic; most flips must be refused (a few land in harmless JSON spots).
            if load(&mlp(&device), &path, &ImportOptions::new()).is_err() {
                failures += 1;
            }
        }
    }
    assert!(
        failures >= 150,
        "only {failures} of 192 bit flips were refused"
    );
}

#[test]
fn huge_declared_shapes_are_refused_without_allocating() {
    // A hand-written header claiming a 2^40 × 2^40 tensor over 16 bytes of data.
    let header = r#"{"fc1.weight":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(&[0u8; 16]);
    let path = scratch("huge.safetensors");
    std::fs::write(&path, &b).unwrap();
    let e = load(&mlp(&Device::flex()), &path, &ImportOptions::new()).unwrap_err();
    assert!(matches!(e, ImportError::Format { .. }), "{e:?}");
    // A header length beyond the file.
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    std::fs::write(&path, &b).unwrap();
    assert!(load(&mlp(&Device::flex()), &path, &ImportOptions::new()).is_err());
}

#[test]
fn missing_keys_and_shape_mismatches_name_the_tensor_and_leave_the_model_alone() {
    let device = Device::flex();
    let model = mlp(&device);
    let before = weights(&model);

    let path = scratch("missing.safetensors");
    write_edited(&path, |t| t.retain(|(n, _, _)| n != "fc2.bias"));
    match load(&model, &path, &ImportOptions::new()).unwrap_err() {
        ImportError::Missing { keys } => assert_eq!(keys, ["fc2.bias"]),
        other => panic!("expected Missing, got {other:?}"),
    }

    let path = scratch("shape.safetensors");
    write_edited(&path, |t| {
        let fc2 = t.iter_mut().find(|(n, _, _)| n == "fc2.weight").unwrap();
        fc2.1 = vec![8, 128]; // same element count, wrong shape
    });
    match load(&model, &path, &ImportOptions::new()).unwrap_err() {
        ImportError::ShapeMismatch { tensor, .. } => assert!(tensor.contains("fc2"), "{tensor}"),
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    let path = scratch("unused.safetensors");
    write_edited(&path, |t| {
        t.push(("decoder.weight".into(), vec![2, 2], vec![1.0; 4]))
    });
    match load(&model, &path, &ImportOptions::new()).unwrap_err() {
        ImportError::Unused { keys } => assert_eq!(keys, ["decoder.weight"]),
        other => panic!("expected Unused, got {other:?}"),
    }
    assert!(load(&model, &path, &ImportOptions::new().allow_unused()).is_ok());

    // fc1 loaded fine before fc2 failed, but the caller's model never saw it.
    assert_eq!(weights(&model), before);
}

#[test]
fn nan_and_inf_weights_name_tensor_and_index() {
    let device = Device::flex();
    for (bad, index) in [
        (f32::NAN, 5usize),
        (f32::INFINITY, 17),
        (f32::NEG_INFINITY, 0),
    ] {
        let path = scratch("nan.safetensors");
        write_edited(&path, |t| {
            t.iter_mut().find(|(n, _, _)| n == "fc2.weight").unwrap().2[index] = bad;
        });
        match load(&mlp(&device), &path, &ImportOptions::new()).unwrap_err() {
            ImportError::NonFinite {
                tensor, index: i, ..
            } => {
                assert_eq!((tensor.as_str(), i), ("fc2.weight", index));
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }
}

#[derive(Module, Debug)]
struct TernaryMlp {
    fc1: TernaryLinear,
    fc2: TernaryLinear,
    head: Linear,
}

/// The MLP fixture with its two hidden layers ternary (training state).
fn ternary_mlp(device: &Device) -> TernaryMlp {
    TernaryMlp {
        fc1: TernaryLinearConfig::new(32, 64).init(device),
        fc2: TernaryLinearConfig::new(64, 16).init(device),
        head: LinearConfig::new(16, 10).init(device),
    }
}

#[test]
fn non_ternary_values_and_bad_scales_in_a_ternary_checkpoint_are_errors() {
    let device = Device::flex();
    let model = ternary_mlp(&device);
    let t = burn_ternary::import::read_tensors(
        &fixture("mlp_bitnet.safetensors"),
        &ImportOptions::new(),
    )
    .unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = t
        .into_iter()
        .map(|(k, d)| (k, d.shape().to_vec(), d.try_into_vec::<f32>().unwrap()))
        .collect();
    let save = |t: &Vec<(String, Vec<usize>, Vec<f32>)>, name: &str| {
        let path = scratch(name);
        let refs: Vec<(&str, Vec<usize>, Vec<f32>)> = t
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.clone(), v.clone()))
            .collect();
        write_st(&path, &refs);
        path
    };
    let good = tensors.clone();
    tensors
        .iter_mut()
        .find(|(n, _, _)| n == "fc1.weight")
        .unwrap()
        .2[3] = 0.5;
    match load_ternary(
        &model,
        &save(&tensors, "nt.safetensors"),
        &ImportOptions::new(),
    ) {
        Err(ImportError::NotTernary {
            tensor,
            index,
            value,
        }) => {
            assert_eq!((tensor.as_str(), index, value), ("fc1.weight", 3, 0.5));
        }
        other => panic!("expected NotTernary, got {other:?}"),
    }
    let mut bad_scale = good.clone();
    let s = bad_scale
        .iter_mut()
        .find(|(n, _, _)| n == "fc2.weight_scale")
        .unwrap();
    s.1 = vec![3];
    s.2.truncate(3);
    match load_ternary(
        &model,
        &save(&bad_scale, "bs.safetensors"),
        &ImportOptions::new(),
    ) {
        Err(ImportError::BadScale { tensor, .. }) => assert_eq!(tensor, "fc2.weight_scale"),
        other => panic!("expected BadScale, got {other:?}"),
    }
    // A ternary checkpoint whose scaled layer is a stock Linear in the model: refused rather
    // than loading unscaled {-1, 0, 1} weights.
    let stock = mlp(&device);
    match load_ternary(
        &stock,
        &save(&good, "stock.safetensors"),
        &ImportOptions::new(),
    ) {
        Err(ImportError::Apply { tensor, .. }) => assert!(tensor.ends_with(".weight_scale")),
        other => panic!("expected Apply, got {other:?}"),
    }
    let mut neg = good;
    neg.iter_mut()
        .find(|(n, _, _)| n == "fc1.weight_scale")
        .unwrap()
        .2[0] = -1.0;
    assert!(matches!(
        load_ternary(
            &model,
            &save(&neg, "neg.safetensors"),
            &ImportOptions::new()
        ),
        Err(ImportError::BadScale { .. })
    ));
}

#[test]
fn bad_remap_patterns_are_typed_errors() {
    let options = ImportOptions::new().with_key_remapping("fc1.(", "x");
    assert!(matches!(
        load(&mlp(&Device::flex()), &fixture("mlp.safetensors"), &options),
        Err(ImportError::BadPattern { .. })
    ));
}

#[test]
fn corrupt_packed_files_are_errors_and_convert_leaves_no_partial_output() {
    let out = scratch("ffn.ternary.safetensors");
    let report = container::convert(
        &fixture("ffn_f16.safetensors"),
        &out,
        &ConvertOptions::default(),
        |_, _| {},
    )
    .unwrap();
    assert!(report.ternary_weights > 0);
    // The packed tensor reads back as exactly what the kernel quantizer makes of the source.
    let (info, packed) = container::read_packed(&out, "block.up.weight").unwrap();
    assert_eq!(info.shape, [1024, 256]);
    let src =
        burn_ternary::import::read_tensors(&fixture("ffn_f16.safetensors"), &ImportOptions::new())
            .unwrap();
    let w: Vec<f32> = src["block.up.weight"].clone().try_into_vec().unwrap();
    let expect = burn_ternary::kernels::PackedI2::quantize(
        &w,
        1024,
        256,
        burn_ternary::kernels::Method::AbsMean,
        burn_ternary::kernels::Granularity::PerRow,
    )
    .unwrap();
    assert_eq!(packed, expect);
    assert!(
        container::read_packed(&out, "block.up.bias").is_err(),
        "not a packed tensor"
    );
    let bytes = std::fs::read(&out).unwrap();
    // Flip bytes across the whole file: never a panic; the header and packed headers are
    // checked, so most flips are refused.
    let path = scratch("flip.ternary.safetensors");
    for at in (0..bytes.len()).step_by(bytes.len() / 97) {
        let mut b = bytes.clone();
        b[at] ^= 0x5a;
        std::fs::write(&path, &b).unwrap();
        let _ = container::inspect(&path);
    }
    // A truncated copy is refused.
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    assert!(container::inspect(&path).is_err());
    // Converting a corrupt input leaves nothing under the output name.
    let bad_in = scratch("bad-input.safetensors");
    std::fs::write(
        &bad_in,
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}",
    )
    .unwrap();
    let bad_out = scratch("never.safetensors");
    assert!(container::convert(&bad_in, &bad_out, &ConvertOptions::default(), |_, _| {}).is_err());
    assert!(!bad_out.exists());
}

#[test]
fn quantize_on_load_checks_ternary_layer_shapes_itself() {
    let device = Device::flex();
    let model = ternary_mlp(&device);
    // fc1.weight stored as [in, out] (Burn's layout) instead of PyTorch's [out, in].
    let path = scratch("ternary-shape.safetensors");
    write_edited(&path, |t| {
        t.iter_mut().find(|(n, _, _)| n == "fc1.weight").unwrap().1 = vec![32, 64];
    });
    match load_packed(&model, &path, &ImportOptions::new()).unwrap_err() {
        ImportError::ShapeMismatch {
            tensor,
            expected,
            found,
        } => assert_eq!(
            (tensor.as_str(), expected, found),
            ("fc1.weight", vec![64, 32], vec![32, 64])
        ),
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    // A missing ternary weight is reported like any other missing key.
    let path = scratch("ternary-missing.safetensors");
    write_edited(&path, |t| t.retain(|(n, _, _)| n != "fc2.weight"));
    match load_packed(&model, &path, &ImportOptions::new()).unwrap_err() {
        ImportError::Missing { keys } => assert_eq!(keys, ["fc2.weight"]),
        other => panic!("expected Missing, got {other:?}"),
    }
}
