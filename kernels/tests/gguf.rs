//! The GGUF container: what the writer writes the reader reads back byte for byte, and every
//! hostile file is a typed error naming what is wrong (never a panic, never an allocation sized
//! by a claim the file cannot back).

use proptest::prelude::*;
use ternary_kernels::format::gguf::{
    GgmlType, GgufError, GgufFile, GgufWriter, MAX_ALIGNMENT, MAX_ARRAY_DEPTH, MetadataValue,
    ValueType,
};

/// One value of every metadata type, arrays of numbers, strings and arrays.
fn every_value_type() -> Vec<(String, MetadataValue)> {
    use MetadataValue as V;
    vec![
        ("u8".into(), V::U8(200)),
        ("i8".into(), V::I8(-100)),
        ("u16".into(), V::U16(60_000)),
        ("i16".into(), V::I16(-30_000)),
        ("u32".into(), V::U32(4_000_000_000)),
        ("i32".into(), V::I32(-2_000_000_000)),
        ("f32".into(), V::F32(-0.0)),
        ("bool".into(), V::Bool(true)),
        ("string".into(), V::String("ternary ✓".as_bytes().to_vec())),
        ("raw".into(), V::String(vec![0xff, 0x00, 0xc3])),
        ("u64".into(), V::U64(u64::MAX)),
        ("i64".into(), V::I64(i64::MIN)),
        ("f64".into(), V::F64(f64::MIN_POSITIVE / 2.0)),
        (
            "ints".into(),
            V::Array(ValueType::I32, vec![V::I32(1), V::I32(-2)]),
        ),
        (
            "strings".into(),
            V::Array(
                ValueType::String,
                vec![V::String(b"a".to_vec()), V::String(Vec::new())],
            ),
        ),
        ("empty".into(), V::Array(ValueType::F64, Vec::new())),
        (
            "nested".into(),
            V::Array(
                ValueType::Array,
                vec![V::Array(ValueType::Bool, vec![V::Bool(false)])],
            ),
        ),
    ]
}

/// A file with every value type and tensors of several types, one of them empty.
fn sample() -> Vec<u8> {
    let f32_data: Vec<u8> = (0..12u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let tq2 = vec![0x55u8; 66 * 2];
    let bf16 = vec![0x3fu8; 2 * 5];
    let mut w = GgufWriter::new();
    for (k, v) in every_value_type() {
        w.add_metadata(k, v).unwrap();
    }
    w.add_tensor("blk.0.attn_q.weight", GgmlType::TQ2_0, &[256, 2], &tq2)
        .unwrap();
    w.add_tensor("empty", GgmlType::F32, &[0, 3], &[]).unwrap();
    w.add_tensor("f32", GgmlType::F32, &[4, 3], &f32_data)
        .unwrap();
    w.add_tensor("bf16", GgmlType::BF16, &[5], &bf16).unwrap();
    w.to_bytes()
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A hand-assembled file: `kv` raw metadata bytes (already encoded) and tensor infos
/// `(name, dims, type id, offset)`, then `data` after the aligned header.
fn handmade(n_kv: u64, kv: &[u8], tensors: &[(&str, &[u64], u32, u64)], data: &[u8]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    put_u32(&mut out, 3);
    put_u64(&mut out, tensors.len() as u64);
    put_u64(&mut out, n_kv);
    out.extend_from_slice(kv);
    for (name, dims, ty, offset) in tensors {
        put_str(&mut out, name);
        put_u32(&mut out, dims.len() as u32);
        for d in *dims {
            put_u64(&mut out, *d);
        }
        put_u32(&mut out, *ty);
        put_u64(&mut out, *offset);
    }
    out.resize(out.len().next_multiple_of(32), 0);
    out.extend_from_slice(data);
    out
}

#[test]
fn writer_output_reads_back_and_rewrites_identically() {
    let bytes = sample();
    let file = GgufFile::parse(&bytes).unwrap();
    assert_eq!(file.version, 3);
    assert_eq!(file.alignment, 32);
    assert_eq!(file.data_offset % 32, 0);
    let expected = every_value_type();
    assert_eq!(file.metadata.len(), expected.len());
    for ((k, v), (ek, ev)) in file.metadata.iter().zip(&expected) {
        assert_eq!(k, ek);
        assert_eq!(v, ev, "value of {k}");
    }
    assert_eq!(file.get("string").unwrap().as_str(), Some("ternary ✓"));
    assert_eq!(file.get("raw").unwrap().as_str(), None);
    let names: Vec<_> = file.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["blk.0.attn_q.weight", "empty", "f32", "bf16"]);
    let q = file.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.shape(), [2, 256]);
    assert_eq!(q.size, 132);
    assert!(file.data(q).iter().all(|&b| b == 0x55));
    let f = file.tensor("f32").unwrap();
    assert_eq!(f.offset % 32, 0);
    assert_eq!(
        f32::from_le_bytes(file.data(f)[44..48].try_into().unwrap()),
        11.0
    );
    assert_eq!(file.data(file.tensor("empty").unwrap()), &[] as &[u8]);

    // Reading and writing again gives the same bytes.
    let mut w = GgufWriter::new();
    for (k, v) in &file.metadata {
        w.add_metadata(k.clone(), v.clone()).unwrap();
    }
    for t in &file.tensors {
        w.add_tensor(t.name.clone(), t.ty, &t.dims, file.data(t))
            .unwrap();
    }
    assert_eq!(w.to_bytes(), bytes);
}

#[test]
fn custom_alignment_is_honoured() {
    let data = [7u8; 10];
    let mut w = GgufWriter::new();
    w.add_metadata("general.alignment", MetadataValue::U32(64))
        .unwrap();
    w.add_tensor("a", GgmlType::from_id(24).unwrap(), &[10], &data)
        .unwrap();
    w.add_tensor("b", GgmlType::from_id(24).unwrap(), &[10], &data)
        .unwrap();
    let bytes = w.to_bytes();
    let file = GgufFile::parse(&bytes).unwrap();
    assert_eq!(file.alignment, 64);
    assert_eq!(file.data_offset % 64, 0);
    assert_eq!(file.tensor("b").unwrap().offset, 64);
    assert_eq!(file.data(file.tensor("b").unwrap()), data);
    assert!(matches!(
        GgufWriter::new().add_metadata("general.alignment", MetadataValue::U32(48)),
        Err(GgufError::Alignment { .. })
    ));
    assert!(matches!(
        GgufWriter::new().add_metadata("general.alignment", MetadataValue::U64(64)),
        Err(GgufError::Alignment { .. })
    ));
    // A huge alignment would make any writer pad every tensor with that many zeros.
    let mut w = GgufWriter::new();
    w.add_metadata("general.alignment", MetadataValue::U32(MAX_ALIGNMENT))
        .unwrap();
    assert_eq!(w.to_bytes().len(), MAX_ALIGNMENT as usize);
    assert!(matches!(
        GgufWriter::new().add_metadata("general.alignment", MetadataValue::U32(MAX_ALIGNMENT * 2)),
        Err(GgufError::Alignment { .. })
    ));
    let f = handmade(
        1,
        &kv("general.alignment", 4, &(1u32 << 31).to_le_bytes()),
        &[],
        &[],
    );
    assert!(matches!(
        GgufFile::parse(&f).unwrap_err(),
        GgufError::Alignment { .. }
    ));
}

#[test]
fn writer_refuses_what_the_reader_would_refuse() {
    let mut w = GgufWriter::new();
    w.add_metadata("k", MetadataValue::U8(1)).unwrap();
    assert_eq!(
        w.add_metadata("k", MetadataValue::U8(2)),
        Err(GgufError::DuplicateKey { key: "k".into() })
    );
    assert_eq!(
        w.add_metadata(
            "mixed",
            MetadataValue::Array(ValueType::U8, vec![MetadataValue::I8(1)])
        ),
        Err(GgufError::ArrayType {
            key: "mixed".into()
        })
    );
    let mut deep = MetadataValue::U8(0);
    for _ in 0..=MAX_ARRAY_DEPTH {
        deep = MetadataValue::Array(deep.value_type(), vec![deep]);
    }
    assert!(matches!(
        w.add_metadata("deep", deep),
        Err(GgufError::ArrayType { .. })
    ));
    assert!(matches!(
        w.add_tensor("t", GgmlType::TQ2_0, &[100, 1], &[0; 66]),
        Err(GgufError::PartialBlock {
            row: 100,
            block: 256,
            ..
        })
    ));
    assert!(matches!(
        w.add_tensor("t", GgmlType::F16, &[3], &[0; 5]),
        Err(GgufError::DataLength {
            expected: 6,
            actual: 5,
            ..
        })
    ));
    assert!(matches!(
        w.add_tensor("t", GgmlType::F32, &[1, 1, 1, 1, 1], &[0; 4]),
        Err(GgufError::TooManyDims { n_dims: 5, .. })
    ));
    assert!(matches!(
        w.add_tensor("t", GgmlType::F32, &[u64::MAX, 2], &[]),
        Err(GgufError::DimsOverflow { .. })
    ));
    w.add_tensor("t", GgmlType::F32, &[1], &[0; 4]).unwrap();
    assert!(matches!(
        w.add_tensor("t", GgmlType::F32, &[1], &[0; 4]),
        Err(GgufError::DuplicateTensor { .. })
    ));
}

#[test]
fn every_prefix_of_a_valid_file_is_a_typed_error() {
    let bytes = sample();
    for len in 0..bytes.len() {
        match GgufFile::parse(&bytes[..len]) {
            Err(GgufError::BadMagic { .. })
            | Err(GgufError::Truncated { .. })
            | Err(GgufError::CountTooLarge { .. })
            | Err(GgufError::OutOfRange { .. }) => {}
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
}

#[test]
fn header_faults_are_named() {
    assert_eq!(
        GgufFile::parse(b"GGML\x03\0\0\0").unwrap_err(),
        GgufError::BadMagic {
            found: b"GGML".to_vec()
        }
    );
    assert!(matches!(
        GgufFile::parse(b"GG").unwrap_err(),
        GgufError::BadMagic { .. }
    ));
    for version in [0u32, 1, 4, u32::MAX] {
        let mut f = handmade(0, &[], &[], &[]);
        f[4..8].copy_from_slice(&version.to_le_bytes());
        assert_eq!(
            GgufFile::parse(&f).unwrap_err(),
            GgufError::Version { version }
        );
    }
    // Version 2 has the same layout.
    let mut f = handmade(0, &[], &[], &[]);
    f[4..8].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(GgufFile::parse(&f).unwrap().version, 2);

    // Counts no file of this length could hold.
    let mut f = handmade(0, &[], &[], &[]);
    f[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        GgufFile::parse(&f).unwrap_err(),
        GgufError::CountTooLarge {
            count: u64::MAX,
            ..
        }
    ));
    let mut f = handmade(0, &[], &[], &[]);
    f[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        GgufFile::parse(&f).unwrap_err(),
        GgufError::CountTooLarge { .. }
    ));
}

/// Encodes one metadata entry by hand.
fn kv(key: &str, ty: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, key);
    put_u32(&mut out, ty);
    out.extend_from_slice(value);
    out
}

#[test]
fn metadata_faults_are_named() {
    let f = handmade(1, &kv("general.name", 13, &[0; 8]), &[], &[]);
    assert!(matches!(
        GgufFile::parse(&f).unwrap_err(),
        GgufError::ValueType { ref key, id: 13, .. } if key == "general.name"
    ));
    let f = handmade(1, &kv("flag", 7, &[2]), &[], &[]);
    assert!(matches!(
        GgufFile::parse(&f).unwrap_err(),
        GgufError::Bool { ref key, value: 2, .. } if key == "flag"
    ));
    // A string whose length runs past the end of the file.
    let f = handmade(1, &kv("s", 8, &u64::MAX.to_le_bytes()), &[], &[]);
    assert!(matches!(
        GgufFile::parse(&f).unwrap_err(),
        GgufError::Truncated {
            needed: u64::MAX,
            ..
        }
    ));
    // An array claiming more elements than the file has bytes.
    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&(1u64 << 60).to_le_bytes());
    let f = handmade(1, &kv("tokens", 9, &arr), &[], &[]);
    assert!(matches!(
        GgufFile::parse(&f).unwrap_err(),
        GgufError::CountTooLarge { count, .. } if count == 1 << 60
    ));
    // Arrays nested one level deeper than allowed.
    let mut nested = Vec::new();
    for _ in 0..=MAX_ARRAY_DEPTH {
        put_u32(&mut nested, 9);
        put_u64(&mut nested, 1);
    }
    put_u32(&mut nested, 0);
    put_u64(&mut nested, 0);
    let f = handmade(1, &kv("deep", 9, &nested[12..]), &[], &[0; 64]);
    assert!(matches!(
        GgufFile::parse(&f).unwrap_err(),
        GgufError::Nesting { ref key, .. } if key == "deep"
    ));
    let mut two = kv("k", 0, &[1]);
    two.extend(kv("k", 0, &[2]));
    assert_eq!(
        GgufFile::parse(&handmade(2, &two, &[], &[])).unwrap_err(),
        GgufError::DuplicateKey { key: "k".into() }
    );
    let f = handmade(
        1,
        &kv("general.alignment", 4, &24u32.to_le_bytes()),
        &[],
        &[],
    );
    assert!(matches!(
        GgufFile::parse(&f).unwrap_err(),
        GgufError::Alignment { .. }
    ));
    let f = handmade(
        1,
        &kv("general.alignment", 4, &0u32.to_le_bytes()),
        &[],
        &[],
    );
    assert!(matches!(
        GgufFile::parse(&f).unwrap_err(),
        GgufError::Alignment { .. }
    ));
    let mut bad_key = Vec::new();
    put_u64(&mut bad_key, 2);
    bad_key.extend_from_slice(&[0xc3, 0x28]);
    put_u32(&mut bad_key, 0);
    bad_key.push(0);
    assert!(matches!(
        GgufFile::parse(&handmade(1, &bad_key, &[], &[])).unwrap_err(),
        GgufError::Utf8 { offset: 24, .. }
    ));
}

#[test]
fn tensor_faults_are_named() {
    let data = [0u8; 256];
    let parse = |tensors: &[(&str, &[u64], u32, u64)]| {
        GgufFile::parse(&handmade(0, &[], tensors, &data)).unwrap_err()
    };
    let named = |e: &GgufError, name: &str| e.to_string().contains(&format!("{name:?}"));

    let e = parse(&[("w", &[256], 33, 0)]);
    assert_eq!(
        e,
        GgufError::UnknownType {
            name: "w".into(),
            id: 33
        }
    );
    assert!(named(&e, "w") && e.to_string().contains("33"));
    assert_eq!(
        parse(&[("w", &[1, 1, 1, 1, 1], 0, 0)]),
        GgufError::TooManyDims {
            name: "w".into(),
            n_dims: 5
        }
    );
    assert!(matches!(
        parse(&[("w", &[1 << 32, 1 << 32, 2], 0, 0)]),
        GgufError::DimsOverflow { ref name, .. } if name == "w"
    ));
    assert!(matches!(
        parse(&[("w", &[255, 1], 35, 0)]),
        GgufError::PartialBlock { ref name, row: 255, block: 256, .. } if name == "w"
    ));
    assert_eq!(
        parse(&[("w", &[4], 0, 16)]),
        GgufError::Misaligned {
            name: "w".into(),
            offset: 16,
            alignment: 32
        }
    );
    assert!(matches!(
        parse(&[("w", &[65], 0, 0)]),
        GgufError::OutOfRange { ref name, len, .. } if name == "w" && len % 32 == 0
    ));
    assert!(matches!(
        parse(&[("w", &[1], 0, u64::MAX - 31)]),
        GgufError::OutOfRange { ref name, .. } if name == "w"
    ));
    assert!(matches!(
        parse(&[("a", &[16], 0, 0), ("b", &[4], 0, 32)]),
        GgufError::Overlap { ref first, ref second, .. } if first == "a" && second == "b"
    ));
    // An empty tensor between two overlapping ones does not hide the overlap.
    assert!(matches!(
        parse(&[("a", &[16], 0, 0), ("z", &[0], 0, 32), ("b", &[4], 0, 32)]),
        GgufError::Overlap { ref first, ref second, .. } if first == "a" && second == "b"
    ));
    assert_eq!(
        parse(&[("a", &[4], 0, 0), ("a", &[4], 0, 32)]),
        GgufError::DuplicateTensor { name: "a".into() }
    );
    // Adjacent and empty tensors are fine.
    let ok = handmade(
        0,
        &[],
        &[("a", &[8], 0, 0), ("z", &[0], 0, 0), ("b", &[8], 0, 32)],
        &data[..64],
    );
    let file = GgufFile::parse(&ok).unwrap();
    assert_eq!(file.tensors.len(), 3);
}

#[test]
fn ternary_type_sizes_match_ggml() {
    assert_eq!(GgmlType::TQ1_0.byte_size(&[256, 3]), Some(3 * 54));
    assert_eq!(GgmlType::TQ2_0.byte_size(&[512, 2]), Some(4 * 66));
    assert_eq!(GgmlType::TQ2_0.name(), "TQ2_0");
    assert_eq!(GgmlType::from_id(35), Some(GgmlType::TQ2_0));
    assert_eq!(GgmlType::from_id(31), None);
}

fn arb_value() -> impl Strategy<Value = MetadataValue> {
    use MetadataValue as V;
    let leaf = prop_oneof![
        any::<u8>().prop_map(V::U8),
        any::<i8>().prop_map(V::I8),
        any::<u16>().prop_map(V::U16),
        any::<i16>().prop_map(V::I16),
        any::<u32>().prop_map(V::U32),
        any::<i32>().prop_map(V::I32),
        any::<u32>().prop_map(|b| V::F32(f32::from_bits(b))),
        any::<bool>().prop_map(V::Bool),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(V::String),
        any::<u64>().prop_map(V::U64),
        any::<i64>().prop_map(V::I64),
        any::<u64>().prop_map(|b| V::F64(f64::from_bits(b))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        (inner, 0usize..5).prop_map(|(v, n)| V::Array(v.value_type(), vec![v; n]))
    })
}

proptest! {
    /// Any metadata and any tensors the writer accepts read back to the same bytes (floats by
    /// their bits: NaN payloads included).
    #[test]
    fn any_file_round_trips(
        values in proptest::collection::vec(arb_value(), 0..6),
        rows in proptest::collection::vec((0u64..3, 0u64..4, 0usize..4), 0..5),
        align_pow in 0u32..8,
    ) {
        let types = [GgmlType::F32, GgmlType::F16, GgmlType::TQ1_0, GgmlType::TQ2_0];
        let mut w = GgufWriter::new();
        w.add_metadata("general.alignment", MetadataValue::U32(1 << align_pow)).unwrap();
        for (i, v) in values.iter().enumerate() {
            w.add_metadata(format!("key.{i}"), v.clone()).unwrap();
        }
        let datas: Vec<(Vec<u64>, GgmlType, Vec<u8>)> = rows
            .iter()
            .enumerate()
            .map(|(i, &(a, b, t))| {
                let ty = types[t];
                let dims = vec![a * ty.block_size(), b];
                let size = ty.byte_size(&dims).unwrap() as usize;
                (dims, ty, (0..size).map(|j| (i * 31 + j) as u8).collect())
            })
            .collect();
        for (i, (dims, ty, data)) in datas.iter().enumerate() {
            w.add_tensor(format!("t{i}"), *ty, dims, data).unwrap();
        }
        let bytes = w.to_bytes();
        let file = GgufFile::parse(&bytes).unwrap();
        let mut again = GgufWriter::new();
        for (k, v) in &file.metadata {
            again.add_metadata(k.clone(), v.clone()).unwrap();
        }
        for (t, (dims, ty, data)) in file.tensors.iter().zip(&datas) {
            prop_assert_eq!(&t.dims, dims);
            prop_assert_eq!(t.ty, *ty);
            prop_assert_eq!(file.data(t), &data[..]);
            again.add_tensor(t.name.clone(), t.ty, &t.dims, file.data(t)).unwrap();
        }
        prop_assert_eq!(again.to_bytes(), bytes);
    }

    /// Flipping any byte of a valid file gives a file or a typed error, never a panic.
    #[test]
    fn corrupted_files_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = sample();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let _ = GgufFile::parse(&bytes);
    }
}
