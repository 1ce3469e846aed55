//! GGUF interop: files the `gguf` Python package wrote decode to the package's own
//! dequantized values; packed matrices go to TQ1_0 / TQ2_0 / I2_S and back without loss;
//! metadata survives a trip through packed safetensors; what a target cannot hold is refused
//! by name or reported.

use std::path::{Path, PathBuf};

use burn_ternary::import::container::{self, Action, ConvertOptions, Target};
use burn_ternary::import::gguf::{self, GgufTernary, METADATA_KEY};
use burn_ternary::import::model_file::{self, Comparison, ModelFile, PackedTensor, Stored};
use burn_ternary::import::{ImportError, ImportOptions};
use burn_ternary::kernels::format::gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue};
use burn_ternary::kernels::random::XorShift;
use burn_ternary::kernels::{PackedI2, Scales};
use proptest::prelude::*;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bt-gguf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn convert_to(input: &Path, output: &Path, target: Target) -> container::ConvertReport {
    let options = ConvertOptions {
        target,
        ..ConvertOptions::default()
    };
    container::convert(input, output, &options, |_, _| {}).unwrap()
}

fn assert_identical(a: &ModelFile, b: &ModelFile) {
    let names_a: Vec<_> = a.tensors.keys().collect();
    let names_b: Vec<_> = b.tensors.keys().collect();
    assert_eq!(names_a, names_b);
    for (name, x) in &a.tensors {
        let c = model_file::compare(x, &b.tensors[name]);
        assert_eq!(c, Comparison::Identical, "{name}");
    }
}

/// Two packed tensors hold the same codes and the same scale kind with the same scale *bits*
/// (`PackedI2`'s `==` compares scales as floats, where −0 equals +0).
fn assert_same_bits(a: &Stored, b: &Stored, what: &str) {
    let (Stored::Packed(a), Stored::Packed(b)) = (a, b) else {
        panic!("{what}: not both packed");
    };
    assert_eq!(a.packed.data(), b.packed.data(), "{what}: codes");
    assert_eq!(
        model_file::scale_kind(a.packed.scales()),
        model_file::scale_kind(b.packed.scales()),
        "{what}: scale kind"
    );
    let bits = |p: &PackedI2| {
        p.scales()
            .as_slice()
            .iter()
            .map(|s| s.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&a.packed), bits(&b.packed), "{what}: scale bits");
}

/// The packed matrix of an `[n, k]` tensor with the given scales and random codes (some rows
/// all zero).
fn packed(n: usize, k: usize, scales: Scales, seed: u64) -> Stored {
    let mut rng = XorShift::new(seed);
    let codes: Vec<i8> = (0..n * k)
        .map(|i| {
            if (i / k.max(1)) % 3 == 2 {
                0
            } else {
                (rng.next_u64() % 3) as i8 - 1
            }
        })
        .collect();
    let granularity = model_file::scale_kind(&scales);
    Stored::Packed(PackedTensor {
        packed: PackedI2::from_ternary(&codes, n, k, scales).unwrap(),
        info: container::PackedInfo {
            format: container::FORMAT.into(),
            shape: vec![n, k],
            quantizer: "given".into(),
            granularity,
            source_dtype: "F32".into(),
            scale_from: None,
        },
        source_bytes: 0,
    })
}

fn one_tensor(name: &str, t: Stored) -> ModelFile {
    let mut file = ModelFile::default();
    file.tensors.insert(name.into(), t);
    file
}

/// Every tensor of the fixture GGUF file written by the `gguf` package decodes to exactly the
/// values the package's own `dequantize` gives (recorded in `reference.safetensors`).
#[test]
fn fixture_decodes_to_the_tools_values() {
    let dir = fixture_dir();
    let reference = model_file::read(&dir.join("reference.safetensors"), &ImportOptions::new())
        .expect("reference written by fixtures/make_gguf_fixtures.py");
    let gguf_files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    assert!(!gguf_files.is_empty(), "no fixture GGUF file in {dir:?}");
    let mut ternary = 0;
    for path in gguf_files {
        let file = model_file::read(&path, &ImportOptions::new()).unwrap();
        for (name, t) in &file.tensors {
            let Some(r) = reference.tensors.get(name) else {
                continue;
            };
            ternary += usize::from(matches!(t, Stored::Packed(_)));
            let ours = model_file::effective(t);
            let theirs = model_file::effective(r);
            assert_eq!(t.shape(), r.shape(), "{name} in {path:?}");
            let same = match (&ours, &theirs) {
                (model_file::Effective::Values(x), model_file::Effective::Values(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
                }
                _ => ours == theirs,
            };
            assert!(same, "{name} in {path:?} decodes differently (bit for bit)");
        }
    }
    assert!(ternary >= 2, "the fixture holds TQ1_0 and TQ2_0 tensors");
}

/// GGUF → packed safetensors → GGUF keeps every effective weight and every metadata entry,
/// and the second GGUF written from the first reads back to the same bytes.
#[test]
fn fixture_round_trips_through_packed_safetensors() {
    let dir = fixture_dir();
    let tmp = temp_dir("round");
    let mut files = 0;
    for src in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
        if src.extension().is_none_or(|e| e != "gguf") {
            continue;
        }
        files += 1;
        let packed = tmp.join("model.safetensors");
        let report = convert_to(&src, &packed, Target::Packed);
        assert!(
            report
                .tensors
                .iter()
                .any(|t| matches!(t.action, Action::Carried { .. })),
            "ternary tensors are carried, not re-quantized"
        );
        let original = model_file::read(&src, &ImportOptions::new()).unwrap();
        let middle = model_file::read(&packed, &ImportOptions::new()).unwrap();
        assert_identical(&original, &middle);
        for ty in ["tq1", "tq2"] {
            let target = if ty == "tq1" {
                GgufTernary::Tq1_0
            } else {
                GgufTernary::Tq2_0
            };
            let out = tmp.join(format!("back-{ty}.gguf"));
            let report = convert_to(&packed, &out, Target::Gguf(target));
            assert!(
                report.tensors.iter().all(|t| t.note.is_none()),
                "f16 scales stay exact"
            );
            let back = model_file::read(&out, &ImportOptions::new()).unwrap();
            assert_identical(&original, &back);
            // The metadata is the source's, key for key, in order.
            let a = std::fs::read(&src).unwrap();
            let b = std::fs::read(&out).unwrap();
            let (fa, fb) = (GgufFile::parse(&a).unwrap(), GgufFile::parse(&b).unwrap());
            assert_eq!(fa.metadata.len(), fb.metadata.len());
            for ((ka, va), (kb, vb)) in fa.metadata.iter().zip(&fb.metadata) {
                assert_eq!(ka, kb);
                assert_eq!(format!("{va:?}"), format!("{vb:?}"), "{ka}");
            }
            // Writing what was read gives the same bytes.
            let again = tmp.join(format!("again-{ty}.gguf"));
            gguf::write(&again, &back, target).unwrap();
            assert_eq!(std::fs::read(&again).unwrap(), b);
        }
    }
    assert!(files > 0, "no fixture GGUF file in {dir:?}");
    std::fs::remove_dir_all(tmp).ok();
}

/// Every scale kind a TQ block can carry comes back exactly, in every ternary type; scales
/// f16 cannot hold are rounded and reported, never silently.
#[test]
fn packed_matrices_round_trip_through_every_ternary_type() {
    let tmp = temp_dir("types");
    let cases = [
        ("per-tensor", Scales::PerTensor(0.5)),
        ("negative-zero", Scales::PerTensor(-0.0)),
        (
            "per-row",
            Scales::PerRow(vec![1.0, 0.0, f32::from_bits(0x3380_0000), 65504.0]),
        ),
        (
            "group",
            Scales::PerGroup {
                group_size: 256,
                scales: vec![0.25, 0.125, 3.0, 0.0, 1.5, 2.0, 2f32.powi(-14), 1.0],
            },
        ),
    ];
    for (label, scales) in cases {
        let file = one_tensor("w", packed(4, 512, scales, 7));
        for ty in [GgufTernary::Tq1_0, GgufTernary::Tq2_0] {
            let out = tmp.join(format!("{label}.gguf"));
            let (_, notes) = gguf::write(&out, &file, ty).unwrap();
            assert!(notes.is_empty(), "{label} {ty:?}: {notes:?}");
            let back = gguf::read(&out).unwrap();
            assert_identical(&file, &back);
            assert_same_bits(&file.tensors["w"], &back.tensors["w"], label);
        }
    }
    // I2_S: one scale per tensor.
    let file = one_tensor("w", packed(3, 128, Scales::PerTensor(0.75), 8));
    let out = tmp.join("i2s.gguf");
    gguf::write(&out, &file, GgufTernary::I2S).unwrap();
    assert_identical(&file, &gguf::read(&out).unwrap());
    // A scale f16 cannot hold is rounded, and said.
    let file = one_tensor("w", packed(2, 256, Scales::PerRow(vec![0.1, 1.0]), 9));
    let (_, notes) = gguf::write(&out, &file, GgufTernary::Tq2_0).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].tensor, "w");
    assert_eq!(notes[0].rounded, 1);
    assert!(notes[0].max_relative > 0.0 && notes[0].max_relative < 1e-3);
    std::fs::remove_dir_all(tmp).ok();
}

#[test]
fn what_a_target_cannot_hold_is_refused_by_name() {
    let tmp = temp_dir("refuse");
    let out = tmp.join("out.gguf");
    let refused = |file: &ModelFile, ty: GgufTernary| match gguf::write(&out, file, ty) {
        Err(ImportError::BadTensor { tensor, what }) => {
            assert!(!out.exists(), "no output after a refusal");
            (tensor, what)
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    // Rows that are not whole blocks are written as F32 (exact), as llama.cpp keeps such
    // tensors in a float type, and the note says so.
    let ragged = one_tensor("ragged", packed(2, 300, Scales::PerTensor(0.5), 1));
    let (_, notes) = gguf::write(&out, &ragged, GgufTernary::Tq2_0).unwrap();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].what.contains("F32") && notes[0].what.contains("300"),
        "{:?}",
        notes[0]
    );
    let back = gguf::read(&out).unwrap();
    assert!(
        matches!(&back.tensors["ragged"], Stored::Plain(r) if r.dtype == safetensors::tensor::Dtype::F32)
    );
    assert_identical(&ragged, &back);
    std::fs::remove_file(&out).unwrap();
    // I2_S with differing row scales.
    let (t, _) = refused(
        &one_tensor("rows", packed(2, 128, Scales::PerRow(vec![1.0, 2.0]), 2)),
        GgufTernary::I2S,
    );
    assert_eq!(t, "rows");
    // 64-column groups that differ inside a 256-block.
    let g = Scales::PerGroup {
        group_size: 64,
        scales: vec![1.0, 1.0, 1.0, 2.0],
    };
    let (t, what) = refused(
        &one_tensor("groups", packed(1, 256, g, 3)),
        GgufTernary::Tq1_0,
    );
    assert_eq!(t, "groups");
    assert!(what.contains("64"), "{what}");
    // Unsigned tensors have no GGUF type.
    let mut file = ModelFile::default();
    file.tensors.insert(
        "counter".into(),
        Stored::Plain(burn_ternary::import::raw::RawTensor {
            dtype: safetensors::tensor::Dtype::U64,
            shape: vec![1],
            bytes: vec![0; 8],
        }),
    );
    let (t, _) = refused(&file, GgufTernary::Tq2_0);
    assert_eq!(t, "counter");
    std::fs::remove_dir_all(tmp).ok();
}

/// A GGUF file with one tensor of `ty` holding `data`.
fn gguf_with(name: &str, ty: GgmlType, dims: &[u64], data: &[u8]) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String(b"llama".to_vec()),
    )
    .unwrap();
    w.add_tensor(name, ty, dims, data).unwrap();
    w.to_bytes()
}

#[test]
fn hostile_ternary_payloads_are_named() {
    let tmp = temp_dir("hostile");
    let path = tmp.join("x.gguf");
    let read = |bytes: Vec<u8>| {
        std::fs::write(&path, bytes).unwrap();
        model_file::read(&path, &ImportOptions::new()).unwrap_err()
    };
    // 2-bit code 3 in a TQ2_0 block.
    let mut block = vec![0x55u8; 64];
    block[10] = 0xff;
    block.extend_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
    match read(gguf_with(
        "blk.0.ffn_up.weight",
        GgmlType::TQ2_0,
        &[256, 1],
        &block,
    )) {
        ImportError::BadTensor { tensor, what } => {
            assert_eq!(tensor, "blk.0.ffn_up.weight");
            assert!(what.contains("offset"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    // A negative block scale.
    let mut block = vec![0x55u8; 64];
    block.extend_from_slice(&half::f16::from_f32(-1.0).to_le_bytes());
    assert!(matches!(
        read(gguf_with("neg", GgmlType::TQ2_0, &[256, 1], &block)),
        ImportError::BadScale { tensor, .. } if tensor == "neg"
    ));
    // A container fault (unknown type id) names the tensor and the id.
    let mut bytes = gguf_with("w", GgmlType::F32, &[1], &[0; 4]);
    let pos = bytes
        .windows(b"w".len() + 4 + 8)
        .rposition(|w| w.starts_with(&[1, 0, 0, 0, 0, 0, 0, 0, b'w']))
        .expect("name of tensor w")
        + 9
        + 4
        + 8;
    bytes[pos..pos + 4].copy_from_slice(&33u32.to_le_bytes());
    match read(bytes) {
        ImportError::Format { what, .. } => {
            assert!(what.contains("\"w\"") && what.contains("33"), "{what}")
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(tmp).ok();
}

/// GGUF key/values travel through packed and dense safetensors and come back typed and in
/// order; plain float tensors keep their bytes.
#[test]
fn metadata_and_plain_tensors_survive_every_hop() {
    let tmp = temp_dir("meta");
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String(b"bitnet".to_vec()),
    )
    .unwrap();
    w.add_metadata(
        "bitnet.rope.freq_base",
        MetadataValue::F32(f32::from_bits(0x7fc0_0001)),
    )
    .unwrap();
    w.add_metadata(
        "tokenizer.ggml.tokens",
        MetadataValue::Array(
            burn_ternary::kernels::format::gguf::ValueType::String,
            vec![
                MetadataValue::String(b"<s>".to_vec()),
                MetadataValue::String(vec![0xff, 0xfe]),
            ],
        ),
    )
    .unwrap();
    w.add_metadata(
        "nested",
        MetadataValue::Array(
            burn_ternary::kernels::format::gguf::ValueType::Array,
            vec![
                MetadataValue::Array(
                    burn_ternary::kernels::format::gguf::ValueType::F64,
                    vec![
                        MetadataValue::F64(f64::from_bits(0x7ff8_0000_0000_0001)),
                        MetadataValue::F64(-0.0),
                    ],
                ),
                MetadataValue::Array(burn_ternary::kernels::format::gguf::ValueType::Bool, vec![]),
            ],
        ),
    )
    .unwrap();
    let norm: Vec<u8> = (0..256u16)
        .flat_map(|i| half::f16::from_f32(f32::from(i) / 7.0).to_le_bytes())
        .collect();
    w.add_tensor("blk.0.attn_norm.weight", GgmlType::F16, &[256], &norm)
        .unwrap();
    let mut tq = Vec::new();
    for b in 0..2u8 {
        tq.extend(std::iter::repeat_n(0x55 ^ b, 64));
        tq.extend_from_slice(&half::f16::from_f32(0.5 + f32::from(b)).to_le_bytes());
    }
    w.add_tensor("blk.0.attn_q.weight", GgmlType::TQ2_0, &[256, 2], &tq)
        .unwrap();
    let src = tmp.join("src.gguf");
    std::fs::write(&src, w.to_bytes()).unwrap();

    let packed = tmp.join("p.safetensors");
    convert_to(&src, &packed, Target::Packed);
    let dense = tmp.join("d.safetensors");
    convert_to(
        &packed,
        &dense,
        Target::Dense(safetensors::tensor::Dtype::F32),
    );
    let d = model_file::read(&dense, &ImportOptions::new()).unwrap();
    assert!(d.metadata.contains_key(METADATA_KEY));
    assert!(matches!(d.tensors["blk.0.attn_q.weight"], Stored::Plain(_)));
    assert_identical(&model_file::read(&src, &ImportOptions::new()).unwrap(), &d);

    let back = tmp.join("back.gguf");
    convert_to(&packed, &back, Target::Gguf(GgufTernary::Tq2_0));
    let (a, b) = (std::fs::read(&src).unwrap(), std::fs::read(&back).unwrap());
    assert_eq!(a, b, "GGUF → packed → GGUF gives the source's bytes");
    std::fs::remove_dir_all(tmp).ok();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Any packed matrix with f16-exact block scales (zero rows included) survives TQ1_0 and
    /// TQ2_0 exactly.
    #[test]
    fn any_packed_matrix_survives_tq(
        n in 0usize..4,
        blocks in 1usize..3,
        kind in 0u8..3,
        bits in proptest::collection::vec(prop_oneof![Just(0x8000u16), 0u16..0x7c00], 12),
        seed in any::<u64>(),
    ) {
        let k = 256 * blocks;
        let f = |i: usize| half::f16::from_bits(bits[i % bits.len()]).to_f32();
        let scales = match kind {
            0 => Scales::PerTensor(f(0)),
            1 => Scales::PerRow((0..n).map(f).collect()),
            _ => Scales::PerGroup { group_size: 256, scales: (0..n * blocks).map(f).collect() },
        };
        let file = one_tensor("w", packed(n, k, scales, seed));
        let tmp = temp_dir(&format!("prop-{seed}"));
        for ty in [GgufTernary::Tq1_0, GgufTernary::Tq2_0] {
            let out = tmp.join("p.gguf");
            let (_, notes) = gguf::write(&out, &file, ty).unwrap();
            prop_assert!(notes.is_empty());
            let back = gguf::read(&out).unwrap();
            let (a, b) = (&file.tensors["w"], &back.tensors["w"]);
            prop_assert_eq!(model_file::compare(a, b), Comparison::Identical);
            let bits = |t: &Stored| match t {
                Stored::Packed(p) => (p.packed.to_ternary(), p.packed.dequantize().iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
                _ => unreachable!("read as packed"),
            };
            prop_assert_eq!(bits(a), bits(b));
        }
        std::fs::remove_dir_all(tmp).ok();
    }
}

/// Dense targets: f32 is exact; a 16-bit target rounds `code × scale`, and the report says
/// which tensor and by how much.
#[test]
fn dense_targets_are_exact_or_report_their_rounding() {
    let tmp = temp_dir("dense");
    let src = tmp.join("src.gguf");
    let file = one_tensor("w", packed(2, 256, Scales::PerRow(vec![0.1, 1.0]), 11));
    // TQ2_0 rounds 0.1 to its f16 neighbour; that value is what the file holds from now on.
    gguf::write(&src, &file, GgufTernary::Tq2_0).unwrap();
    let read = gguf::read(&src).unwrap();
    for (dtype, exact) in [
        (safetensors::tensor::Dtype::F32, true),
        (safetensors::tensor::Dtype::F16, true),
        (safetensors::tensor::Dtype::BF16, false),
    ] {
        let out = tmp.join(format!("{dtype:?}.safetensors"));
        let report = convert_to(&src, &out, Target::Dense(dtype));
        let back = model_file::read(&out, &ImportOptions::new()).unwrap();
        let same =
            model_file::compare(&read.tensors["w"], &back.tensors["w"]) == Comparison::Identical;
        assert_eq!(same, exact, "{dtype:?}");
        let note = report.tensors[0].note.clone();
        assert_eq!(note.is_none(), exact, "{dtype:?}: {note:?}");
        if let Some(note) = note {
            assert!(note.contains("rounded to BF16"), "{note}");
        }
    }
    std::fs::remove_dir_all(tmp).ok();
}

/// An expert stack `[E, out, in]` reads as E rows of out·in weights (the convention of every
/// packed tensor here), converts to packed safetensors and back, and writes to GGUF again.
#[test]
fn expert_stacks_keep_their_shape_through_every_format() {
    let tmp = temp_dir("experts");
    let mut tq = Vec::new();
    for b in 0..6u8 {
        tq.extend(std::iter::repeat_n(0x55 ^ (b & 1), 64));
        tq.extend_from_slice(&half::f16::from_f32(0.5 + f32::from(b)).to_le_bytes());
    }
    let mut w = GgufWriter::new();
    w.add_tensor(
        "blk.0.ffn_up_exps.weight",
        GgmlType::TQ2_0,
        &[256, 2, 3],
        &tq,
    )
    .unwrap();
    let src = tmp.join("moe.gguf");
    std::fs::write(&src, w.to_bytes()).unwrap();
    let packed = tmp.join("moe.safetensors");
    convert_to(&src, &packed, Target::Packed);
    let read = model_file::read(&packed, &ImportOptions::new()).unwrap();
    assert_eq!(
        read.tensors["blk.0.ffn_up_exps.weight"].shape(),
        [3, 2, 256]
    );
    let back = tmp.join("back.gguf");
    convert_to(&packed, &back, Target::Gguf(GgufTernary::Tq2_0));
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&src).unwrap());
    std::fs::remove_dir_all(tmp).ok();
}

/// Scales f16 cannot hold at all (beyond 65504, or non-zero below its smallest subnormal) are
/// refused by name, never written as ±Inf or 0.
#[test]
fn scales_beyond_f16_are_refused_not_written() {
    let tmp = temp_dir("f16range");
    let out = tmp.join("x.gguf");
    for s in [1.0e5f32, 1.0e-9] {
        let file = one_tensor("w", packed(1, 256, Scales::PerTensor(s), 5));
        match gguf::write(&out, &file, GgufTernary::Tq2_0) {
            Err(ImportError::BadTensor { tensor, what }) => {
                assert_eq!(tensor, "w");
                assert!(what.contains("f16"), "{what}");
            }
            other => panic!("scale {s}: {other:?}"),
        }
        assert!(!out.exists());
    }
    std::fs::remove_dir_all(tmp).ok();
}

/// Tensors of ggml types burn-ternary does not decode (llama.cpp keeps `token_embd` and
/// `output` of its ternary files in Q4_K / Q6_K) are carried byte for byte: GGUF → packed →
/// GGUF gives the source's bytes, `verify` compares them by bytes, and a target that needs
/// their values refuses them by name.
#[test]
fn undecoded_ggml_types_are_carried_byte_for_byte() {
    let tmp = temp_dir("opaque");
    let q4k = GgmlType::from_id(12).unwrap();
    let q4k_bytes: Vec<u8> = (0..144 * 2).map(|i| (i * 7) as u8).collect();
    let mut tq = vec![0x55u8; 64];
    tq.extend_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
    let mut w = GgufWriter::new();
    w.add_tensor("blk.0.attn_q.weight", GgmlType::TQ2_0, &[256, 1], &tq)
        .unwrap();
    w.add_tensor("token_embd.weight", q4k, &[256, 2], &q4k_bytes)
        .unwrap();
    let src = tmp.join("llama.gguf");
    std::fs::write(&src, w.to_bytes()).unwrap();

    let file = model_file::read(&src, &ImportOptions::new()).unwrap();
    assert!(
        matches!(&file.tensors["token_embd.weight"], Stored::Opaque(o) if o.type_name == "Q4_K" && o.shape == [2, 256])
    );
    let packed = tmp.join("p.safetensors");
    convert_to(&src, &packed, Target::Packed);
    assert_identical(
        &file,
        &model_file::read(&packed, &ImportOptions::new()).unwrap(),
    );
    let back = tmp.join("back.gguf");
    convert_to(&packed, &back, Target::Gguf(GgufTernary::Tq2_0));
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&src).unwrap());

    let options = ConvertOptions {
        target: Target::Dense(safetensors::tensor::Dtype::F32),
        ..ConvertOptions::default()
    };
    match container::convert(&src, &tmp.join("d.safetensors"), &options, |_, _| {}) {
        Err(ImportError::BadTensor { tensor, what }) => {
            assert_eq!(tensor, "token_embd.weight");
            assert!(what.contains("Q4_K"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(tmp).ok();
}

/// A dense export of ternary weights (`code × scale` in f32, one scale per row or tensor)
/// converts back to packed exactly: the scales are recovered, not re-estimated.
#[test]
fn dense_exports_of_ternary_weights_convert_back_exactly() {
    let tmp = temp_dir("dense-back");
    let file = one_tensor(
        "blk.0.ffn_up.weight",
        packed(4, 256, Scales::PerRow(vec![0.03, 0.5, 0.0, 7.25]), 21),
    );
    let gguf_path = tmp.join("w.gguf");
    gguf::write(&gguf_path, &file, GgufTernary::Tq2_0).unwrap();
    let dense = tmp.join("w.f32.safetensors");
    convert_to(
        &gguf_path,
        &dense,
        Target::Dense(safetensors::tensor::Dtype::F32),
    );
    let again = tmp.join("w.packed.safetensors");
    let report = convert_to(&dense, &again, Target::Packed);
    assert!(
        report.tensors[0]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("exactly")),
        "{:?}",
        report.tensors[0]
    );
    assert_identical(
        &gguf::read(&gguf_path).unwrap(),
        &model_file::read(&again, &ImportOptions::new()).unwrap(),
    );
    std::fs::remove_dir_all(tmp).ok();
}

/// The output path is never replaced by something else than what was there: a FIFO (or
/// device) is refused, a read-only file is not overwritten, a symlink is written through.
#[test]
fn outputs_that_are_not_plain_writable_files_are_left_alone() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let tmp = temp_dir("outputs");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf/ternary.gguf");
    let fifo = tmp.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let options = ConvertOptions::default();
    assert!(matches!(
        container::convert(&src, &fifo, &options, |_, _| {}),
        Err(ImportError::Io { .. })
    ));
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let ro = tmp.join("ro.safetensors");
    std::fs::write(&ro, b"keep").unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    assert!(container::convert(&src, &ro, &options, |_, _| {}).is_err());
    assert_eq!(std::fs::read(&ro).unwrap(), b"keep");
    let target = tmp.join("target.safetensors");
    std::fs::write(&target, b"old").unwrap();
    let link = tmp.join("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    container::convert(&src, &link, &options, |_, _| {}).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_ne!(std::fs::read(&target).unwrap(), b"old");
    std::fs::remove_dir_all(tmp).ok();
}
