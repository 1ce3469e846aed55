//! Field faults of `convert` / `inspect`, each from a public bug report of a neighbouring
//! tool (see `fixtures/make_field_fixtures.py` for the PyTorch inputs; the safetensors inputs
//! are built here), and the properties behind them: names, values and dtypes are kept unless
//! asked, ambiguity is a typed error, output is deterministic, the container is recognised by
//! content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn_ternary::import::container::{self, Action, ConvertOptions, ConvertReport};
use burn_ternary::import::raw::{self, RawTensor};
use burn_ternary::import::{ImportError, ImportOptions};
use burn_ternary::kernels::{Granularity, Method, PackedI2, Scales};
use safetensors::tensor::Dtype;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/field")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bt-field-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A safetensors file written by hand (header JSON in the given order, then the data).
fn write_st(path: &Path, tensors: &[(&str, &str, Vec<usize>, Vec<u8>)], meta: &[(&str, &str)]) {
    let mut header = String::from("{");
    if !meta.is_empty() {
        let m: Vec<String> = meta.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
        header += &format!("\"__metadata__\":{{{}}},", m.join(","));
    }
    let mut data = Vec::new();
    let entries: Vec<String> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            let (a, b) = (data.len(), data.len() + bytes.len());
            data.extend_from_slice(bytes);
            format!(
                "{name:?}:{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{a},{b}]}}"
            )
        })
        .collect();
    header += &entries.join(",");
    header += "}";
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&data);
    std::fs::write(path, file).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect()
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn ternary_values(n: usize, seed: u64) -> Vec<f32> {
    values(n, seed)
        .into_iter()
        .map(|v| (v * 1.5).round().clamp(-1.0, 1.0))
        .collect()
}

fn convert(input: &Path, out: &str, options: &ConvertOptions) -> (PathBuf, ConvertReport) {
    let out = scratch(out);
    let report = container::convert(input, &out, options, |_, _| {})
        .unwrap_or_else(|e| panic!("convert {}: {e}", input.display()));
    (out, report)
}

/// Converts expecting a refusal; returns the error.
fn refused(input: &Path, options: &ConvertOptions) -> ImportError {
    let out = scratch("never.safetensors");
    let err = container::convert(input, &out, options, |_, _| {})
        .expect_err("the conversion should be refused");
    assert!(!out.exists(), "a refused conversion leaves no output");
    err
}

fn read(path: &Path) -> BTreeMap<String, RawTensor> {
    raw::read_checkpoint(path, &ImportOptions::new()).unwrap()
}

fn remap_module() -> ConvertOptions {
    ConvertOptions {
        min_elements: 1,
        import: ImportOptions::new().with_key_remapping(r"^module\.(.*)", "$1"),
        ..ConvertOptions::default()
    }
}

fn min1() -> ConvertOptions {
    ConvertOptions {
        min_elements: 1,
        ..ConvertOptions::default()
    }
}

// Case 22 (tracel-ai/burn#4716): `.pt` layer indices were renumbered to be contiguous.

#[test]
fn pt_and_safetensors_of_one_state_dict_keep_every_name_and_convert_to_the_same_tensors() {
    let pt = read(&fixture("seq_gaps.pt"));
    let st = read(&fixture("seq_gaps.safetensors"));
    assert!(pt.contains_key("features.3.weight") && pt.contains_key("classifier.1.bias"));
    assert!(pt.contains_key("flows.2.enc.in_layers.1.weight"));
    assert_eq!(
        pt, st,
        "same names, dtypes, shapes and bytes from both containers"
    );
    let (a, _) = convert(&fixture("seq_gaps.pt"), "22_pt.safetensors", &min1());
    let (b, _) = convert(
        &fixture("seq_gaps.safetensors"),
        "22_st.safetensors",
        &min1(),
    );
    let (a, b) = (read(&a), read(&b));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        pt.keys().collect::<Vec<_>>(),
        "output names are the source names"
    );
    assert_eq!(a, b, "same names and bytes whatever the container");
}

#[test]
fn a_shard_keeps_its_own_layer_numbers() {
    let path = fixture("pytorch_model-00002-of-00002.bin");
    let (out, _) = convert(&path, "22_shard2.safetensors", &min1());
    let names: Vec<String> = read(&out)
        .into_keys()
        .filter(|k| k.contains("up_proj"))
        .collect();
    assert_eq!(
        names,
        (16..20)
            .map(|i| format!("model.layers.{i}.mlp.up_proj.weight"))
            .collect::<Vec<_>>()
    );
}

// Case 04 (pytorch/pytorch#3805): a remap that merges two tensors dropped one at random.

#[test]
fn a_remap_that_merges_two_tensors_is_a_typed_error_naming_both() {
    let src = scratch("04_collide.safetensors");
    write_st(
        &src,
        &[
            (
                "module.fc.weight",
                "F32",
                vec![32, 64],
                f32_bytes(&values(2048, 1)),
            ),
            (
                "fc.weight",
                "F32",
                vec![32, 64],
                f32_bytes(&values(2048, 2)),
            ),
        ],
        &[],
    );
    for input in [src, fixture("collide.pt")] {
        let out = scratch("04_never.safetensors");
        match container::convert(&input, &out, &remap_module(), |_, _| {}) {
            Err(ImportError::NameCollision { target, sources }) => {
                assert_eq!(target, "fc.weight");
                assert_eq!(sources, ["fc.weight", "module.fc.weight"]);
            }
            other => panic!("{}: expected NameCollision, got {other:?}", input.display()),
        }
        assert!(!out.exists());
    }
}

#[test]
fn remapped_names_and_repeated_conversions_are_byte_identical() {
    let src = scratch("04_dp.safetensors");
    write_st(
        &src,
        &[
            (
                "module.features.0.weight",
                "F32",
                vec![64, 3, 3, 3],
                f32_bytes(&values(1728, 3)),
            ),
            (
                "module.features.0.bias",
                "F32",
                vec![64],
                f32_bytes(&values(64, 4)),
            ),
            (
                "module.classifier.weight",
                "F32",
                vec![10, 256],
                f32_bytes(&values(2560, 5)),
            ),
            (
                "module.format",
                "F32",
                vec![4, 4],
                f32_bytes(&values(16, 6)),
            ),
        ],
        &[("source", "test")],
    );
    // `format` was the container's own metadata key once: a tensor of that name is packed
    // like any other.
    let options = ConvertOptions {
        include: vec!["weight$".into(), "^format$".into()],
        ..remap_module()
    };
    let (a, report) = convert(&src, "04_a.safetensors", &options);
    let (b, _) = convert(&src, "04_b.safetensors", &options);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let names: Vec<&str> = report.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "classifier.weight",
            "features.0.bias",
            "features.0.weight",
            "format"
        ]
    );
    let (info, packed) = container::read_packed(&a, "format").unwrap();
    assert_eq!(info.shape, [4, 4]);
    assert_eq!(packed.n(), 4);
    let meta = raw::metadata(&a).unwrap();
    assert_eq!(meta.get("source").map(String::as_str), Some("test"));
}

// Case 11 (huggingface/transformers#43721): already-ternary weights were re-quantized.

fn bitnet_style(path: &Path) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let t1 = ternary_values(128 * 256, 11);
    let t2 = ternary_values(256 * 128, 12);
    let s2: Vec<f32> = values(256, 13).iter().map(|v| 0.03 + 0.02 * v).collect();
    write_st(
        path,
        &[
            ("l1.weight", "F32", vec![128, 256], f32_bytes(&t1)),
            ("l1.weight_scale", "F32", vec![1], f32_bytes(&[0.037])),
            ("l1.bias", "F32", vec![128], f32_bytes(&[0.0; 128])),
            ("l2.weight", "BF16", vec![256, 128], bf16_bytes(&t2)),
            ("l2.weight_scale", "F32", vec![256], f32_bytes(&s2)),
        ],
        &[],
    );
    (t1, t2, s2)
}

#[test]
fn already_ternary_weights_are_packed_losslessly_with_their_weight_scale() {
    let src = scratch("11.safetensors");
    let (t1, t2, s2) = bitnet_style(&src);
    // Whatever quantizer and granularity are asked for, ternary values are not re-quantized.
    for (i, (method, granularity)) in [
        (Method::AbsMean, Granularity::PerRow),
        (Method::AbsMean, Granularity::PerTensor),
        (Method::Twn, Granularity::PerRow),
    ]
    .into_iter()
    .enumerate()
    {
        let options = ConvertOptions {
            method,
            granularity,
            ..ConvertOptions::default()
        };
        let (out, report) = convert(&src, &format!("11_{i}.safetensors"), &options);
        let (info, p1) = container::read_packed(&out, "l1.weight").unwrap();
        assert_eq!(info.quantizer, "given");
        assert_eq!(info.scale_from.as_deref(), Some("l1.weight_scale"));
        let codes: Vec<f32> = p1.to_ternary().iter().map(|&c| f32::from(c)).collect();
        assert_eq!(codes, t1);
        assert_eq!(p1.scales(), &Scales::PerTensor(0.037));
        let (_, p2) = container::read_packed(&out, "l2.weight").unwrap();
        let codes: Vec<f32> = p2.to_ternary().iter().map(|&c| f32::from(c)).collect();
        assert_eq!(codes, t2);
        assert_eq!(p2.scales(), &Scales::PerRow(s2.clone()));
        // The scales live in the packed tensors now; a separate copy would be applied twice.
        let names = read(&out);
        assert!(!names.contains_key("l1.weight_scale") && !names.contains_key("l2.weight_scale"));
        let folded = report
            .tensors
            .iter()
            .find(|t| t.name == "l2.weight_scale")
            .unwrap();
        assert_eq!(
            folded.action,
            Action::FoldedScale {
                into: "l2.weight".into()
            }
        );
    }
}

#[test]
fn ternary_weights_without_a_scale_keep_magnitude_one() {
    let src = scratch("11_noscale.safetensors");
    let t = ternary_values(64 * 64, 14);
    write_st(
        &src,
        &[("fc.weight", "F32", vec![64, 64], f32_bytes(&t))],
        &[],
    );
    let (out, report) = convert(
        &src,
        "11_noscale_out.safetensors",
        &ConvertOptions::default(),
    );
    let (_, p) = container::read_packed(&out, "fc.weight").unwrap();
    assert_eq!(p.dequantize(), t, "effective weights equal the stored ones");
    assert_eq!(
        report.tensors[0].action,
        Action::Lossless { scale_from: None }
    );
}

#[test]
fn a_weight_scale_that_cannot_be_applied_is_a_typed_error() {
    let t = ternary_values(64 * 64, 15);
    // Wrong length.
    let src = scratch("11_badlen.safetensors");
    write_st(
        &src,
        &[
            ("fc.weight", "F32", vec![64, 64], f32_bytes(&t)),
            (
                "fc.weight_scale",
                "F32",
                vec![3],
                f32_bytes(&[1.0, 2.0, 3.0]),
            ),
        ],
        &[],
    );
    let err = refused(&src, &ConvertOptions::default());
    assert!(
        matches!(&err, ImportError::BadScale { tensor, .. } if tensor == "fc.weight_scale"),
        "{err:?}"
    );
    // A scale beside weights that are not ternary: ambiguous, refused.
    let src = scratch("11_notternary.safetensors");
    write_st(
        &src,
        &[
            (
                "fc.weight",
                "F32",
                vec![64, 64],
                f32_bytes(&values(4096, 16)),
            ),
            ("fc.weight_scale", "F32", vec![1], f32_bytes(&[0.5])),
        ],
        &[],
    );
    let err = refused(&src, &ConvertOptions::default());
    assert!(
        matches!(&err, ImportError::Apply { tensor, .. } if tensor == "fc.weight"),
        "{err:?}"
    );
}

// Case 21 (ollama/ollama#15175): unsigned and packed-integer tensors aborted the conversion.

#[test]
fn non_float_tensors_pass_through_byte_identical() {
    let src = scratch("21_mlx.safetensors");
    let q: Vec<u8> = (0..256 * 128 * 4).map(|i| (i * 7 % 251) as u8).collect();
    let scales = bf16_bytes(&[0.01; 256 * 16]);
    let up = f32_bytes(&values(256 * 256, 21));
    let step: Vec<u8> = [1u64, 2, 3, 1 << 63]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write_st(
        &src,
        &[
            (
                "model.layers.0.mlp.down_proj.weight",
                "U32",
                vec![256, 128],
                q.clone(),
            ),
            (
                "model.layers.0.mlp.down_proj.scales",
                "BF16",
                vec![256, 16],
                scales.clone(),
            ),
            (
                "model.layers.0.mlp.up_proj.weight",
                "F32",
                vec![256, 256],
                up,
            ),
            ("step", "U64", vec![4], step.clone()),
            ("e4m3.weight", "F8_E4M3", vec![32, 64], vec![0x38; 2048]),
        ],
        &[("format", "mlx")],
    );
    let (out, _) = convert(&src, "21_out.safetensors", &ConvertOptions::default());
    let t = read(&out);
    let down = &t["model.layers.0.mlp.down_proj.weight"];
    assert_eq!((down.dtype, down.bytes.clone()), (Dtype::U32, q));
    assert_eq!(t["model.layers.0.mlp.down_proj.scales"].bytes, scales);
    assert_eq!(
        (t["step"].dtype, t["step"].bytes.clone()),
        (Dtype::U64, step)
    );
    assert_eq!(t["e4m3.weight"].dtype, Dtype::F8_E4M3);
    assert!(container::read_packed(&out, "model.layers.0.mlp.up_proj.weight").is_ok());
    assert_eq!(raw::metadata(&out).unwrap()["format"], "mlx");

    let (out, _) = convert(
        &fixture("unsigned.pt"),
        "21_pt.safetensors",
        &ConvertOptions::default(),
    );
    let t = read(&out);
    let src = read(&fixture("unsigned.pt"));
    for (name, dtype) in [
        ("u16", Dtype::U16),
        ("u32", Dtype::U32),
        ("u64", Dtype::U64),
    ] {
        assert_eq!(t[name].dtype, dtype);
        assert_eq!(t[name], src[name]);
    }
    assert!(container::read_packed(&out, "fc.weight").is_ok());
}

// Case 20 (ggml-org/llama.cpp#1473): every common dtype; a finite F64 beyond f32's range.

#[test]
fn every_dtype_of_a_pt_file_is_packed_or_kept() {
    let src = fixture("dtypes.pt");
    let s = read(&src);
    let (out, _) = convert(&src, "20_pt.safetensors", &min1());
    let t = read(&out);
    for name in ["f64.weight", "f16.weight", "bf16.weight"] {
        let (info, p) = container::read_packed(&out, name).unwrap();
        assert_eq!(info.source_dtype, format!("{:?}", s[name].dtype));
        let w = raw::to_f32(name, &s[name]).unwrap();
        let expect = PackedI2::quantize(&w, 64, 64, Method::AbsMean, Granularity::PerRow).unwrap();
        assert_eq!(p, expect, "{name}");
    }
    for name in ["i8.weight", "mask", "ids"] {
        assert_eq!(t[name], s[name], "{name} copied unchanged");
    }
}

#[test]
fn a_finite_f64_beyond_f32_range_names_tensor_index_and_says_so() {
    let src = scratch("20_ovf.safetensors");
    let mut big: Vec<f64> = values(32 * 64, 20).iter().map(|&v| f64::from(v)).collect();
    big[3 * 64 + 5] = 1e39;
    let bytes: Vec<u8> = big.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_st(&src, &[("big.weight", "F64", vec![32, 64], bytes)], &[]);
    let err = refused(&src, &ConvertOptions::default());
    match &err {
        ImportError::OutOfRange {
            tensor,
            index,
            value,
        } => assert_eq!((tensor.as_str(), *index, *value), ("big.weight", 197, 1e39)),
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    assert!(err.to_string().contains("does not fit f32"), "{err}");
}

// Case 23 (ggml-org/llama.cpp#8151): embeddings and the LM head were ternarized.

fn llama(path: &Path) {
    let t = |n, s| bf16_bytes(&values(n, s).iter().map(|v| v * 0.02).collect::<Vec<_>>());
    write_st(
        path,
        &[
            (
                "model.embed_tokens.weight",
                "BF16",
                vec![512, 64],
                t(512 * 64, 1),
            ),
            ("lm_head.weight", "BF16", vec![512, 64], t(512 * 64, 2)),
            (
                "model.layers.0.self_attn.q_proj.weight",
                "BF16",
                vec![64, 64],
                t(4096, 3),
            ),
            (
                "model.layers.0.mlp.up_proj.weight",
                "BF16",
                vec![128, 64],
                t(8192, 4),
            ),
            (
                "model.layers.0.input_layernorm.weight",
                "BF16",
                vec![64],
                bf16_bytes(&[1.0; 64]),
            ),
        ],
        &[],
    );
}

fn packed_names(report: &ConvertReport) -> Vec<&str> {
    report
        .tensors
        .iter()
        .filter(|t| t.ternary)
        .map(|t| t.name.as_str())
        .collect()
}

#[test]
fn embeddings_and_lm_head_stay_in_their_dtype_unless_asked() {
    let src = scratch("23.safetensors");
    llama(&src);
    let s = read(&src);
    let (out, report) = convert(&src, "23_out.safetensors", &ConvertOptions::default());
    assert_eq!(
        packed_names(&report),
        [
            "model.layers.0.mlp.up_proj.weight",
            "model.layers.0.self_attn.q_proj.weight"
        ]
    );
    let t = read(&out);
    assert_eq!(
        t["model.embed_tokens.weight"],
        s["model.embed_tokens.weight"]
    );
    assert_eq!(t["lm_head.weight"], s["lm_head.weight"]);
    // --exclude adds to the default; --include narrows the choice.
    let options = ConvertOptions {
        exclude: vec!["q_proj".into()],
        ..ConvertOptions::default()
    };
    let (_, report) = convert(&src, "23_ex.safetensors", &options);
    assert_eq!(packed_names(&report), ["model.layers.0.mlp.up_proj.weight"]);
    let options = ConvertOptions {
        include: vec![r"lm_head\.weight$".into()],
        default_exclude: false,
        ..ConvertOptions::default()
    };
    let (_, report) = convert(&src, "23_in.safetensors", &options);
    assert_eq!(packed_names(&report), ["lm_head.weight"]);
    let options = ConvertOptions {
        default_exclude: false,
        ..ConvertOptions::default()
    };
    let (_, report) = convert(&src, "23_all.safetensors", &options);
    assert_eq!(packed_names(&report).len(), 4);
    // A bad pattern is a typed error.
    let options = ConvertOptions {
        exclude: vec!["(".into()],
        ..ConvertOptions::default()
    };
    assert!(matches!(
        refused(&src, &options),
        ImportError::BadPattern { .. }
    ));
}

// Case 25 (safetensors/safetensors#668): many small tensors.

#[test]
fn twenty_thousand_tensors_convert_and_read_back() {
    let src = scratch("25_20k.safetensors");
    let bias = f32_bytes(&[0.5; 8]);
    let names: Vec<String> = (0..20_000)
        .map(|i| format!("blocks.{}.p{}.bias", i / 10, i % 10))
        .collect();
    let mut tensors: Vec<(&str, &str, Vec<usize>, Vec<u8>)> = names
        .iter()
        .map(|n| (n.as_str(), "F32", vec![8], bias.clone()))
        .collect();
    tensors.push((
        "head.weight",
        "F32",
        vec![64, 64],
        f32_bytes(&values(4096, 25)),
    ));
    write_st(&src, &tensors, &[]);
    let (out, report) = convert(&src, "25_out.safetensors", &ConvertOptions::default());
    assert_eq!(report.tensors.len(), 20_001);
    let listed = container::inspect(&out).unwrap();
    assert_eq!(listed.len(), 20_001);
    assert_eq!(read(&out).len(), 20_001);
}

// The container is recognised by content, not by extension or its case.

#[test]
fn files_are_recognised_by_content_whatever_their_extension() {
    let st = std::fs::read(fixture("seq_gaps.safetensors")).unwrap();
    let pt = std::fs::read(fixture("seq_gaps.pt")).unwrap();
    let reference = read(&fixture("seq_gaps.safetensors"));
    for (bytes, name) in [
        (&st, "a.SAFETENSORS"),
        (&st, "a.pt"),
        (&st, "noext"),
        (&pt, "b.safetensors"),
        (&pt, "b.PTH"),
        (&pt, "b.bin"),
    ] {
        let path = scratch(name);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read(&path), reference, "{name}");
        assert_eq!(container::inspect(&path).unwrap().len(), reference.len());
    }
    let junk = scratch("junk.safetensors");
    std::fs::write(&junk, b"definitely not a checkpoint").unwrap();
    assert!(matches!(
        raw::read_checkpoint(&junk, &ImportOptions::new()),
        Err(ImportError::Format { .. })
    ));
}

#[test]
fn a_source_metadata_key_equal_to_a_packed_name_is_refused() {
    let src = scratch("meta_collide.safetensors");
    write_st(
        &src,
        &[(
            "fc.weight",
            "F32",
            vec![64, 64],
            f32_bytes(&values(4096, 30)),
        )],
        &[("fc.weight", "a note")],
    );
    let err = refused(&src, &ConvertOptions::default());
    assert!(
        matches!(&err, ImportError::BadTensor { tensor, .. } if tensor == "fc.weight"),
        "{err:?}"
    );
}

// Every tensor a source can hold comes out again: kept ones byte-identical, packed ones as
// the quantizer makes them, and any safetensors reader reads the file.

fn dtype_strategy() -> impl proptest::strategy::Strategy<Value = (&'static str, usize)> {
    proptest::sample::select(vec![
        ("F64", 8),
        ("F32", 4),
        ("F16", 2),
        ("BF16", 2),
        ("I64", 8),
        ("U64", 8),
        ("I32", 4),
        ("U32", 4),
        ("I16", 2),
        ("U16", 2),
        ("I8", 1),
        ("U8", 1),
        ("BOOL", 1),
        ("F8_E4M3", 1),
    ])
}

fn element_bytes(dtype: &str, size: usize, numel: usize, seed: u64) -> Vec<u8> {
    let v = values(numel, seed);
    match dtype {
        "F64" => v.iter().flat_map(|&x| f64::from(x).to_le_bytes()).collect(),
        "F32" => f32_bytes(&v),
        "F16" => v
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect(),
        "BF16" => bf16_bytes(&v),
        "BOOL" => v.iter().map(|&x| u8::from(x > 0.0)).collect(),
        _ => (0..numel * size)
            .map(|i| (i as u64 * 31 + seed) as u8)
            .collect(),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    #[test]
    fn every_tensor_round_trips_through_convert(
        specs in proptest::collection::vec(
            (dtype_strategy(), proptest::collection::vec(0usize..6, 0..=4)),
            1..6,
        ),
        seed in 0u64..1000,
    ) {
        let names: Vec<String> = (0..specs.len()).map(|i| format!("t{i}.weight")).collect();
        let tensors: Vec<(&str, &str, Vec<usize>, Vec<u8>)> = specs
            .iter()
            .zip(&names)
            .enumerate()
            .map(|(i, (((dtype, size), shape), name))| {
                let numel: usize = shape.iter().product();
                (name.as_str(), *dtype, shape.clone(), element_bytes(dtype, *size, numel, seed + i as u64))
            })
            .collect();
        let src = scratch(&format!("prop-{seed}.safetensors"));
        write_st(&src, &tensors, &[]);
        let s = read(&src);
        let (out, report) = convert(&src, &format!("prop-{seed}-out.safetensors"), &min1());
        let bytes = std::fs::read(&out).unwrap();
        safetensors::SafeTensors::deserialize(&bytes).expect("a standard reader reads it");
        let t = read(&out);
        proptest::prop_assert_eq!(t.len(), s.len());
        for r in &report.tensors {
            if r.ternary {
                let (info, p) = container::read_packed(&out, &r.name).unwrap();
                proptest::prop_assert_eq!(&info.shape, &s[&r.name].shape);
                let n = info.shape[0];
                let w = raw::to_f32(&r.name, &s[&r.name]).unwrap();
                let values: Vec<i8> = w.iter().map(|&x| x as i8).collect();
                let expect = if w.iter().all(|&x| matches!(x, -1.0 | 0.0 | 1.0)) {
                    PackedI2::from_ternary(&values, n, w.len() / n, Scales::PerTensor(1.0)).unwrap()
                } else {
                    PackedI2::quantize(&w, n, w.len() / n, Method::AbsMean, Granularity::PerRow).unwrap()
                };
                proptest::prop_assert_eq!(p, expect);
            } else {
                proptest::prop_assert_eq!(&t[&r.name], &s[&r.name]);
            }
        }
    }
}
