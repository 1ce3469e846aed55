//! Hugging Face BitNet checkpoints written by transformers 5.24 (`fixtures/hf_bitnet/`, see its
//! README): both scale conventions decode to exactly the effective weights transformers uses,
//! sharded or not; what transformers loads silently wrong is a typed error here.

use std::path::{Path, PathBuf};

use burn_ternary::import::container::{self, Action, ConvertOptions};
use burn_ternary::import::model_file::{self, Comparison, Effective, Stored};
use burn_ternary::import::{ImportError, ImportOptions};
use burn_ternary::kernels::format::hf_bitnet;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hf_bitnet")
        .join(name)
}

fn reference() -> model_file::ModelFile {
    model_file::read(&dir("reference.safetensors"), &ImportOptions::new()).unwrap()
}

fn values(t: &Stored) -> Vec<f32> {
    match model_file::effective(t) {
        Effective::Values(v) => v,
        other => panic!("not a float tensor: {other:?}"),
    }
}

#[test]
fn both_scale_conventions_decode_to_transformers_effective_weights() {
    let reference = reference();
    for class in ["bitlinear", "autobitlinear"] {
        let file = model_file::read(&dir(class), &ImportOptions::new()).unwrap();
        let mut layers = 0;
        for (name, t) in &file.tensors {
            let Stored::Packed(p) = t else {
                assert!(
                    !name.ends_with("_scale"),
                    "{class}: {name} should be folded"
                );
                continue;
            };
            layers += 1;
            let theirs = values(&reference.tensors[&format!("{class}/{name}")]);
            let ours = values(t);
            assert_eq!(ours.len(), theirs.len(), "{class} {name}");
            assert!(
                ours.iter()
                    .zip(&theirs)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{class} {name}: effective weights differ from transformers'"
            );
            let codes = match model_file::effective(&reference.tensors[&format!("codes/{name}")]) {
                Effective::Bytes(_, b) => b.iter().map(|&c| c as i8).collect::<Vec<_>>(),
                other => panic!("{other:?}"),
            };
            assert_eq!(p.packed.to_ternary(), codes, "{class} {name}");
        }
        assert_eq!(layers, 14, "{class}: every converted layer is packed");
        // Embeddings and norms are kept as stored.
        let embed = &file.tensors["model.embed_tokens.weight"];
        assert!(matches!(embed, Stored::Plain(r) if r.shape == [96, 64]));
    }
}

/// transformers' own `pack_weights` outputs (4–9 rows) unpack to its codes; ours packs them
/// to its bytes.
#[test]
fn pack_and_unpack_match_pack_weights() {
    let reference = reference();
    let bytes = |key: &str| match model_file::effective(&reference.tensors[key]) {
        Effective::Bytes(_, b) => b,
        other => panic!("{other:?}"),
    };
    for rows in 4..=9 {
        let codes: Vec<i8> = bytes(&format!("pack_weights/rows{rows}.codes"))
            .iter()
            .map(|&b| b as i8)
            .collect();
        let packed = bytes(&format!("pack_weights/rows{rows}.packed"));
        let mut ours = vec![0u8; packed.len()];
        hf_bitnet::pack(&codes, rows, 3, &mut ours).unwrap();
        assert_eq!(ours, packed, "rows {rows}");
        let mut back = vec![9i8; codes.len()];
        hf_bitnet::unpack(&packed, rows, 3, &mut back).unwrap();
        assert_eq!(back, codes, "rows {rows}");
    }
}

#[test]
fn what_transformers_loads_silently_wrong_is_refused_by_name() {
    let err = |name: &str| {
        model_file::read(&dir(&format!("hostile/{name}")), &ImportOptions::new()).unwrap_err()
    };
    match err("shape_mismatch") {
        ImportError::ShapeMismatch {
            tensor,
            expected,
            found,
        } => {
            assert_eq!(tensor, "model.layers.0.self_attn.q_proj.weight");
            assert_eq!((expected, found), (vec![16, 64], vec![15, 64]));
        }
        other => panic!("{other:?}"),
    }
    match err("missing_scale") {
        ImportError::Missing { keys } => {
            assert_eq!(keys, ["model.layers.1.mlp.down_proj.weight_scale"]);
        }
        other => panic!("{other:?}"),
    }
    match err("code3") {
        ImportError::BadTensor { tensor, what } => {
            assert_eq!(tensor, "model.layers.0.self_attn.k_proj.weight");
            assert!(what.contains("offset 0"), "{what}");
        }
        other => panic!("{other:?}"),
    }
}

/// A checkpoint directory converts to packed safetensors losslessly (the scale folded in),
/// and `verify` sees the same weights.
#[test]
fn a_checkpoint_converts_losslessly() {
    let out = std::env::temp_dir().join(format!("bt-hf-{}.safetensors", std::process::id()));
    for class in ["bitlinear", "autobitlinear"] {
        let report =
            container::convert(&dir(class), &out, &ConvertOptions::default(), |_, _| {}).unwrap();
        let carried = report
            .tensors
            .iter()
            .filter(|t| matches!(&t.action, Action::Carried { from } if from.contains(class)))
            .count();
        assert_eq!(carried, 14, "{class}");
        let a = model_file::read(&dir(class), &ImportOptions::new()).unwrap();
        let b = model_file::read(&out, &ImportOptions::new()).unwrap();
        assert_eq!(a.tensors.len(), b.tensors.len());
        for (name, t) in &a.tensors {
            assert_eq!(
                model_file::compare(t, &b.tensors[name]),
                Comparison::Identical,
                "{class} {name}"
            );
        }
    }
    std::fs::remove_file(out).ok();
}

/// A bf16 master checkpoint (`autobitlinear`, online) is quantized on load with BitNet's
/// per-tensor absmean: the codes are transformers' codes, the scales its absmean within the
/// f32 summation-order difference the fixture README documents (≤ 2 ulp).
#[test]
fn a_master_checkpoint_quantizes_to_transformers_codes() {
    use burn_ternary::kernels::quant::{Granularity, Method};
    let reference = reference();
    let out = std::env::temp_dir().join(format!("bt-hf-master-{}.safetensors", std::process::id()));
    let options = ConvertOptions {
        method: Method::AbsMean,
        granularity: Granularity::PerTensor,
        ..ConvertOptions::default()
    };
    container::convert(&dir("bf16_master"), &out, &options, |_, _| {}).unwrap();
    let file = model_file::read(&out, &ImportOptions::new()).unwrap();
    let mut layers = 0;
    for (name, t) in &file.tensors {
        let Stored::Packed(p) = t else { continue };
        layers += 1;
        let codes = match model_file::effective(&reference.tensors[&format!("codes/{name}")]) {
            Effective::Bytes(_, b) => b.iter().map(|&c| c as i8).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(p.packed.to_ternary(), codes, "{name}");
        let theirs = values(&reference.tensors[&format!("bf16_master/{name}_absmean")])[0];
        let ours = p.packed.scales().as_slice()[0];
        let ulps = (ours.to_bits() as i64 - theirs.to_bits() as i64).abs();
        assert!(
            ulps <= 2,
            "{name}: absmean {ours} vs transformers' {theirs}"
        );
    }
    assert_eq!(layers, 14);
    std::fs::remove_file(out).ok();
}

/// BitNet → packed → BitNet in either convention: transformers' layout and config, the same
/// effective weights (an autobitlinear scale exactly; a bitlinear one through its inverse,
/// reported when f32 does not give it back), and the plain tensors untouched.
#[test]
fn packed_models_write_back_as_bitnet_checkpoints() {
    use burn_ternary::import::container::Target;
    use burn_ternary::import::hf_bitnet::LinearClass;
    let tmp = std::env::temp_dir().join(format!("bt-hf-write-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let packed = tmp.join("p.safetensors");
    container::convert(
        &dir("autobitlinear"),
        &packed,
        &ConvertOptions::default(),
        |_, _| {},
    )
    .unwrap();
    let source = model_file::read(&dir("autobitlinear"), &ImportOptions::new()).unwrap();
    for (class, label) in [
        (LinearClass::AutoBitLinear, "autobitlinear"),
        (LinearClass::BitLinear, "bitlinear"),
    ] {
        let out = tmp.join(label);
        let options = ConvertOptions {
            target: Target::HfBitnet(class),
            ..ConvertOptions::default()
        };
        let report = container::convert(&packed, &out, &options, |_, _| {}).unwrap();
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["quantization_config"]["linear_class"], label);
        assert_eq!(cfg["hidden_size"], 64);
        let back = model_file::read(&out, &ImportOptions::new()).unwrap();
        for (name, t) in &source.tensors {
            let c = model_file::compare(t, &back.tensors[name]);
            let noted = report
                .tensors
                .iter()
                .any(|r| &r.name == name && r.note.is_some());
            if class == LinearClass::AutoBitLinear || !noted {
                assert_eq!(c, Comparison::Identical, "{label} {name}");
            } else {
                assert!(
                    matches!(c, Comparison::Values { max_abs, .. } if max_abs <= 1e-6 * 4.0),
                    "{label} {name}: {c:?}"
                );
            }
        }
    }
    // A source without a BitNet config.json cannot become a BitNet checkpoint.
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf/ternary.gguf");
    let options = ConvertOptions {
        target: Target::HfBitnet(LinearClass::BitLinear),
        ..ConvertOptions::default()
    };
    assert!(matches!(
        container::convert(&gguf, &tmp.join("nope"), &options, |_, _| {}),
        Err(ImportError::Format { .. })
    ));
    std::fs::remove_dir_all(tmp).ok();
}
