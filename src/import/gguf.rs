//! GGUF files — llama.cpp's `TQ1_0` / `TQ2_0` and bitnet.cpp's `I2_S` ternary tensors — read
//! into and written from burn-ternary's packed form, without loss where the formats allow.
//!
//! * **Reading.** `TQ1_0` / `TQ2_0` blocks (256 weights, one f16 scale `d`) become a
//!   [`PackedI2`] whose scales are exactly the blocks' `d` values in f32: one scale per tensor
//!   when every block has the same `d` bit pattern, one per row when every row's blocks do,
//!   else one per 256-column group. `I2_S` (one f32 scale per tensor) becomes a per-tensor
//!   scale. `F32`, `F16`, `BF16`, `F64` and `I8`–`I64` tensors are kept as they are. Other
//!   ggml types (`Q4_K`, `Q6_K`, … — llama.cpp's ternary files keep embeddings and the output
//!   layer in them) are carried byte for byte as [`Stored::Opaque`]: GGUF to GGUF and through
//!   packed safetensors, compared by bytes in `verify`; a dense target refuses them by name.
//!   Dims are reversed into row-major shapes (ggml's `[in, out]` is PyTorch's `[out, in]`);
//!   names are kept. The metadata key/values, in order, are kept under [`METADATA_KEY`] as
//!   JSON so that a GGUF → safetensors → GGUF round trip restores them.
//! * **Writing.** Packed matrices become the chosen ternary type. `TQ1_0`/`TQ2_0` need rows of
//!   whole 256-weight blocks and store each block's scale as f16: a scale that f16 cannot hold
//!   exactly is rounded to nearest, and the writer says so ([`GgufNote`]); group scales of 64
//!   or 128 columns can only be written when each 256-block's groups agree. `I2_S` needs rows
//!   of whole 128-weight blocks and one scale per tensor. Plain tensors keep their type;
//!   unsigned and boolean tensors have no GGUF type and are refused.
//!
//! Block layouts: [`ternary_kernels::format::tq`], [`ternary_kernels::format::i2s`]; the
//! container: [`ternary_kernels::format::gguf`].

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::Dtype;
use serde_json::{Value, json};
use ternary_kernels::format::gguf::{
    GgmlType, GgufFile, GgufWriter, MetadataValue, TensorInfo, ValueType,
};
use ternary_kernels::format::{i2s, tq};
use ternary_kernels::{PackedI2, Scales};

use super::ImportError;
use super::container::{FORMAT, PackedInfo};
use super::model_file::{ModelFile, OpaqueTensor, PackedTensor, Stored, scale_kind};
use super::raw::{self, RawTensor};

/// Metadata key under which a GGUF file's key/values travel through other formats (a JSON
/// array of `[key, value]` pairs in file order; values typed, e.g. `{"u32": 32}`,
/// `{"str": "llama"}`, floats by their bits).
pub const METADATA_KEY: &str = "__gguf__";

/// The ternary GGUF tensor type to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufTernary {
    /// llama.cpp `TQ1_0`: 1.6875 bits per weight.
    Tq1_0,
    /// llama.cpp `TQ2_0`: 2.0625 bits per weight.
    Tq2_0,
    /// bitnet.cpp `I2_S`: 2 bits per weight, one scale per tensor.
    I2S,
}

impl GgufTernary {
    fn ggml(self) -> GgmlType {
        match self {
            GgufTernary::Tq1_0 => GgmlType::TQ1_0,
            GgufTernary::Tq2_0 => GgmlType::TQ2_0,
            GgufTernary::I2S => GgmlType::I2_S,
        }
    }
}

/// Something the writer changed and says so: a tensor whose scales f16 could not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufNote {
    /// The tensor.
    pub tensor: String,
    /// How many of its block scales were rounded (0 for a tensor written as F32 instead).
    pub rounded: usize,
    /// Largest relative change of a rounded scale.
    pub max_relative: f64,
    /// What was done, for the report.
    pub what: String,
}

/// GGUF dims (contiguous axis first) as a row-major shape. Dims are `u64`, as usize on the
/// 64-bit hosts this crate supports; products are computed checked where they are used.
fn shape_of(t: &TensorInfo) -> Vec<usize> {
    t.shape().into_iter().map(|d| d as usize).collect()
}

fn plain_dtype(ty: GgmlType) -> Option<Dtype> {
    Some(match ty.id() {
        0 => Dtype::F32,
        1 => Dtype::F16,
        30 => Dtype::BF16,
        28 => Dtype::F64,
        24 => Dtype::I8,
        25 => Dtype::I16,
        26 => Dtype::I32,
        27 => Dtype::I64,
        _ => return None,
    })
}

fn ggml_of(dtype: Dtype) -> Option<GgmlType> {
    let id = match dtype {
        Dtype::F32 => 0,
        Dtype::F16 => 1,
        Dtype::BF16 => 30,
        Dtype::F64 => 28,
        Dtype::I8 => 24,
        Dtype::I16 => 25,
        Dtype::I32 => 26,
        Dtype::I64 => 27,
        _ => return None,
    };
    GgmlType::from_id(id)
}

/// The simplest scales that reproduce per-block `d` values exactly: per tensor when every
/// block's bits agree, per row when every row's do, else per 256-column group.
fn block_scales(name: &str, d: &[u16], blocks_per_row: usize) -> Result<Scales, ImportError> {
    for (block, &bits) in d.iter().enumerate() {
        let v = half::f16::from_bits(bits).to_f32();
        if !v.is_finite() || v < 0.0 {
            return Err(ImportError::BadScale {
                tensor: name.to_string(),
                what: format!(
                    "block {block} (row {}, columns {}..) has scale {v}: ternary scales must be finite and non-negative",
                    block / blocks_per_row.max(1),
                    256 * (block % blocks_per_row.max(1))
                ),
            });
        }
    }
    let f = |bits: u16| half::f16::from_bits(bits).to_f32();
    if d.windows(2).all(|w| w[0] == w[1]) && !d.is_empty() {
        return Ok(Scales::PerTensor(f(d[0])));
    }
    if blocks_per_row > 0
        && d.chunks(blocks_per_row)
            .all(|r| r.windows(2).all(|w| w[0] == w[1]))
    {
        return Ok(Scales::PerRow(
            d.chunks(blocks_per_row).map(|r| f(r[0])).collect(),
        ));
    }
    Ok(Scales::PerGroup {
        group_size: tq::QK_K,
        scales: d.iter().map(|&b| f(b)).collect(),
    })
}

/// Decodes one ternary GGUF tensor into a packed matrix.
fn read_ternary(name: &str, t: &TensorInfo, data: &[u8]) -> Result<PackedTensor, ImportError> {
    let shape = shape_of(t);
    if shape.len() < 2 {
        return Err(ImportError::tensor(
            name,
            format!(
                "a {} tensor of shape {shape:?}: ternary tensors are matrices (or stacks of them)",
                t.ty.name()
            ),
        ));
    }
    // As everywhere in burn-ternary: `[shape[0], rest]` (an `[E, out, in]` expert stack is E
    // rows of out·in weights). A block never crosses GGUF's contiguous row, whose length is a
    // multiple of the block, so the blocks tile these rows too.
    let n = shape[0];
    let k = shape[1..]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|k| n.checked_mul(*k).is_some())
        .ok_or_else(|| ImportError::tensor(name, format!("shape {shape:?} overflows")))?;
    // Rows are whole blocks of 256 (TQ) or 128 (I2_S) weights — the container checked — so
    // packed rows have no padding. TQ2_0 and I2_S share the 2-bit layout and move whole bytes;
    // TQ1_0 goes through the trits.
    let bad_code = |e| ImportError::tensor(name, e);
    let (scales, packed) = if t.ty == GgmlType::TQ1_0 {
        let mut codes = vec![0i8; n * k];
        let mut d = vec![0u16; n * k / tq::QK_K];
        tq::decode_tq1_0(data, &mut codes, &mut d).map_err(bad_code)?;
        let scales = block_scales(name, &d, k / tq::QK_K)?;
        let p = PackedI2::from_ternary(&codes, n, k, scales.clone());
        (scales, p)
    } else {
        let mut rows = vec![0u8; n * k / 4];
        let scales = if t.ty == GgmlType::TQ2_0 {
            let mut d = vec![0u16; n * k / tq::QK_K];
            tq::tq2_0_to_i2(data, &mut rows, &mut d).map_err(bad_code)?;
            block_scales(name, &d, k / tq::QK_K)?
        } else {
            let s = i2s::i2_s_to_i2(data, &mut rows).map_err(bad_code)?;
            if !s.is_finite() || s < 0.0 {
                return Err(ImportError::BadScale {
                    tensor: name.to_string(),
                    what: format!("I2_S scale {s}: ternary scales must be finite and non-negative"),
                });
            }
            Scales::PerTensor(s)
        };
        let p = PackedI2::from_packed_rows(n, k, scales.clone(), rows);
        (scales, p)
    };
    let info = PackedInfo {
        format: FORMAT.into(),
        shape,
        quantizer: "given".into(),
        granularity: scale_kind(&scales),
        source_dtype: t.ty.name().into(),
        scale_from: None,
    };
    let packed = packed.map_err(|e| ImportError::tensor(name, e))?;
    Ok(PackedTensor {
        packed,
        info,
        source_bytes: data.len() as u64,
    })
}

/// Reads a GGUF file (see the module docs).
///
/// Errors: [`ImportError::Io`]; [`ImportError::Format`] for anything the container reader
/// refuses (naming the key, tensor or offset); [`ImportError::BadTensor`] for a tensor of a
/// type that is neither ternary nor plain, or whose payload is invalid (2-bit code 3, …);
/// [`ImportError::BadScale`] for a negative or non-finite block scale.
pub fn read(path: &Path) -> Result<ModelFile, ImportError> {
    let map = raw::map_file(path)?;
    let gguf = GgufFile::parse(&map).map_err(|e| ImportError::format(path, e))?;
    let mut file = ModelFile::default();
    for t in &gguf.tensors {
        let data = gguf.data(t);
        let entry = if [GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::I2_S].contains(&t.ty) {
            Stored::Packed(read_ternary(&t.name, t, data)?)
        } else if let Some(dtype) = plain_dtype(t.ty) {
            Stored::Plain(RawTensor {
                dtype,
                shape: shape_of(t),
                bytes: data.to_vec(),
            })
        } else {
            // Q4_K, Q6_K, …: carried byte for byte (GGUF to GGUF, through packed safetensors).
            Stored::Opaque(OpaqueTensor {
                type_id: t.ty.id(),
                type_name: t.ty.name().into(),
                shape: shape_of(t),
                bytes: data.to_vec(),
            })
        };
        file.tensors.insert(t.name.clone(), entry);
    }
    let kv: Vec<Value> = gguf
        .metadata
        .iter()
        .map(|(k, v)| json!([k, encode_value(v)]))
        .collect();
    file.metadata
        .insert(METADATA_KEY.into(), Value::Array(kv).to_string());
    Ok(file)
}

/// One line per tensor of a GGUF file for `inspect`: name, row-major shape, ggml type, bits
/// per weight, scale kind of ternary tensors, bytes. Ternary payloads are decoded, so an
/// invalid one is reported here too.
pub fn inspect(path: &Path) -> Result<Vec<super::container::InspectedTensor>, ImportError> {
    let map = raw::map_file(path)?;
    let gguf = GgufFile::parse(&map).map_err(|e| ImportError::format(path, e))?;
    let mut out = Vec::with_capacity(gguf.tensors.len());
    for t in &gguf.tensors {
        let scale = if [GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::I2_S].contains(&t.ty) {
            scale_kind(read_ternary(&t.name, t, gguf.data(t))?.packed.scales())
        } else {
            String::new()
        };
        out.push(super::container::InspectedTensor {
            name: t.name.clone(),
            shape: shape_of(t),
            format: format!("GGUF {}", t.ty.name()),
            bits_per_weight: 8.0 * t.size as f64 / t.elements().max(1) as f64,
            scale_kind: scale,
            bytes: t.size,
        });
    }
    Ok(out)
}

fn value_type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::U8 => "u8",
        ValueType::I8 => "i8",
        ValueType::U16 => "u16",
        ValueType::I16 => "i16",
        ValueType::U32 => "u32",
        ValueType::I32 => "i32",
        ValueType::F32 => "f32_bits",
        ValueType::Bool => "bool",
        ValueType::String => "str",
        ValueType::Array => "array",
        ValueType::U64 => "u64",
        ValueType::I64 => "i64",
        ValueType::F64 => "f64_bits",
    }
}

fn value_type_of(name: &str) -> Option<ValueType> {
    use ValueType::*;
    [
        U8, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64,
    ]
    .into_iter()
    .find(|&t| value_type_name(t) == name)
}

/// A metadata value as typed JSON: `{"<type>": value}` (floats by their bits, so every value
/// survives exactly; a string that is not UTF-8 as `{"bytes": [...]}`), an array as
/// `{"array": "<element type>", "values": [...]}` with untagged scalar elements (a tokenizer's
/// 150k strings stay 150k JSON strings).
fn encode_value(v: &MetadataValue) -> Value {
    match v {
        MetadataValue::Array(elem, values) => json!({
            "array": value_type_name(*elem),
            "values": values
                .iter()
                .map(|e| match e {
                    MetadataValue::Array(..) => encode_value(e),
                    scalar => encode_scalar(scalar),
                })
                .collect::<Vec<_>>(),
        }),
        scalar => json!({ value_type_name(scalar.value_type()): encode_scalar(scalar) }),
    }
}

/// A scalar's JSON value without its type tag.
fn encode_scalar(v: &MetadataValue) -> Value {
    match v {
        MetadataValue::U8(x) => json!(x),
        MetadataValue::I8(x) => json!(x),
        MetadataValue::U16(x) => json!(x),
        MetadataValue::I16(x) => json!(x),
        MetadataValue::U32(x) => json!(x),
        MetadataValue::I32(x) => json!(x),
        MetadataValue::F32(x) => json!(x.to_bits()),
        MetadataValue::Bool(x) => json!(x),
        MetadataValue::String(b) => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => json!({ "bytes": b }),
        },
        MetadataValue::U64(x) => json!(x),
        MetadataValue::I64(x) => json!(x),
        MetadataValue::F64(x) => json!(x.to_bits()),
        MetadataValue::Array(..) => encode_value(v),
    }
}

fn decode_value(v: &Value) -> Option<MetadataValue> {
    let obj = v.as_object()?;
    if obj.len() == 2 {
        let elem = value_type_of(obj.get("array")?.as_str()?)?;
        let values = obj
            .get("values")?
            .as_array()?
            .iter()
            .map(|x| {
                if elem == ValueType::Array {
                    decode_value(x)
                } else {
                    decode_scalar(elem, x)
                }
            })
            .collect::<Option<Vec<_>>>()?;
        return Some(MetadataValue::Array(elem, values));
    }
    let (tag, x) = obj.iter().next().filter(|_| obj.len() == 1)?;
    decode_scalar(value_type_of(tag)?, x)
}

/// A scalar of type `ty` from its untagged JSON value.
fn decode_scalar(ty: ValueType, x: &Value) -> Option<MetadataValue> {
    let int = |x: &Value| x.as_i64().map(i128::from).or(x.as_u64().map(i128::from));
    Some(match ty {
        ValueType::U8 => MetadataValue::U8(int(x)?.try_into().ok()?),
        ValueType::I8 => MetadataValue::I8(int(x)?.try_into().ok()?),
        ValueType::U16 => MetadataValue::U16(int(x)?.try_into().ok()?),
        ValueType::I16 => MetadataValue::I16(int(x)?.try_into().ok()?),
        ValueType::U32 => MetadataValue::U32(int(x)?.try_into().ok()?),
        ValueType::I32 => MetadataValue::I32(int(x)?.try_into().ok()?),
        ValueType::U64 => MetadataValue::U64(int(x)?.try_into().ok()?),
        ValueType::I64 => MetadataValue::I64(int(x)?.try_into().ok()?),
        ValueType::F32 => MetadataValue::F32(f32::from_bits(int(x)?.try_into().ok()?)),
        ValueType::F64 => MetadataValue::F64(f64::from_bits(int(x)?.try_into().ok()?)),
        ValueType::Bool => MetadataValue::Bool(x.as_bool()?),
        ValueType::String => match x {
            Value::String(s) => MetadataValue::String(s.as_bytes().to_vec()),
            Value::Object(o) if o.len() == 1 => MetadataValue::String(
                o.get("bytes")?
                    .as_array()?
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Option<Vec<u8>>>()?,
            ),
            _ => return None,
        },
        ValueType::Array => return decode_value(x),
    })
}

/// The GGUF key/values a model file carries: those of a GGUF source (in order), then every
/// other string metadata entry as a string value.
fn metadata_of(file: &ModelFile) -> Result<Vec<(String, MetadataValue)>, ImportError> {
    let mut out = Vec::new();
    if let Some(json) = file.metadata.get(METADATA_KEY) {
        let bad_meta = || ImportError::BadTensor {
            tensor: METADATA_KEY.into(),
            what: "metadata entry is not a GGUF key/value list written by burn-ternary".into(),
        };
        let list: Vec<Value> = serde_json::from_str(json).map_err(|_| bad_meta())?;
        for pair in list {
            let (Some(k), Some(v)) = (pair.get(0).and_then(Value::as_str), pair.get(1)) else {
                return Err(bad_meta());
            };
            out.push((k.to_string(), decode_value(v).ok_or_else(bad_meta)?));
        }
    }
    for (k, v) in &file.metadata {
        if k != METADATA_KEY {
            out.push((k.clone(), MetadataValue::String(v.as_bytes().to_vec())));
        }
    }
    Ok(out)
}

/// Per-256-block f16 scale bits of a packed matrix, and what rounding changed.
fn block_scale_bits(name: &str, p: &PackedI2) -> Result<(Vec<u16>, Option<GgufNote>), ImportError> {
    let (n, k, scales) = (p.n(), p.k(), p.scales());
    let per_row = k / tq::QK_K;
    let mut bits = Vec::with_capacity(n * per_row);
    let (mut rounded, mut max_relative) = (0usize, 0f64);
    for r in 0..n {
        for blk in 0..per_row {
            let start = blk * tq::QK_K;
            let s = scales.at(r, start, k);
            if let Some(g) = scales.group_size()
                && (start..start + tq::QK_K)
                    .step_by(g)
                    .any(|c| scales.at(r, c, k).to_bits() != s.to_bits())
            {
                return Err(ImportError::tensor(
                    name,
                    format!(
                        "row {r}, columns {start}..{}: {g}-column group scales differ inside one 256-weight block; TQ1_0/TQ2_0 hold one scale per block",
                        start + tq::QK_K
                    ),
                ));
            }
            let h = half::f16::from_f32(s);
            let back = h.to_f32();
            if !back.is_finite() || (back == 0.0 && s != 0.0) {
                return Err(ImportError::tensor(
                    name,
                    format!(
                        "row {r}, block {blk}: scale {s:e} has no f16 form (f16 holds 6.0e-8 ..= 65504); TQ block scales are f16"
                    ),
                ));
            }
            if back != s {
                rounded += 1;
                let rel = f64::from((back - s).abs()) / f64::from(s.abs()).max(f64::MIN_POSITIVE);
                max_relative = max_relative.max(rel);
            }
            bits.push(h.to_bits());
        }
    }
    let note = (rounded > 0).then(|| GgufNote {
        tensor: name.to_string(),
        rounded,
        max_relative,
        what: format!(
            "{rounded} block scale(s) rounded to f16 (largest relative change {max_relative:.2e})"
        ),
    });
    Ok((bits, note))
}

/// Encodes one packed matrix as `ty`; returns the bytes and a note when scales were rounded.
fn encode_ternary(
    name: &str,
    p: &PackedTensor,
    ty: GgufTernary,
) -> Result<(Vec<u8>, Option<GgufNote>), ImportError> {
    let (n, k) = (p.packed.n(), p.packed.k());
    let block = if ty == GgufTernary::I2S {
        128
    } else {
        tq::QK_K
    };
    let last = p.info.shape.last().copied().unwrap_or(0);
    if p.info.shape.len() > 4 || !last.is_multiple_of(block) || last == 0 {
        return Err(ImportError::tensor(
            name,
            format!(
                "shape {:?}: {} packs blocks of {block} weights along the last axis, whose length is not a multiple of {block} (a convolution kernel?)",
                p.info.shape,
                ty.ggml().name()
            ),
        ));
    }
    match ty {
        GgufTernary::I2S => {
            let scale = p.packed.scales().uniform().ok_or_else(|| {
                ImportError::tensor(
                    name,
                    format!(
                        "{} scales that differ: I2_S holds one scale per tensor (convert the float source with --scale per-tensor; a tensor that is already ternary is never re-quantized)",
                        scale_kind(p.packed.scales())
                    ),
                )
            })?;
            // Rows of whole 128-weight blocks have no padding: lanes are reordered byte by byte.
            let size = i2s::i2_s_bytes(n, k).map_err(|e| ImportError::tensor(name, e))?;
            let mut out = vec![0u8; size];
            i2s::i2_s_from_i2(p.packed.data(), scale, &mut out)
                .map_err(|e| ImportError::tensor(name, e))?;
            Ok((out, None))
        }
        GgufTernary::Tq1_0 | GgufTernary::Tq2_0 => {
            if k % tq::QK_K != 0 {
                return Err(ImportError::tensor(
                    name,
                    format!(
                        "rows of {k} weights: {} needs whole 256-weight blocks",
                        ty.ggml().name()
                    ),
                ));
            }
            let (bits, note) = block_scale_bits(name, &p.packed)?;
            let written = if ty == GgufTernary::Tq2_0 {
                // Same 2-bit layout, rows without padding: whole bytes are copied.
                let mut out = vec![0u8; bits.len() * tq::TQ2_0_BLOCK_BYTES];
                tq::tq2_0_from_i2(p.packed.data(), &bits, &mut out).map(|()| out)
            } else {
                let codes = p.packed.to_ternary();
                let mut out = vec![0u8; bits.len() * tq::TQ1_0_BLOCK_BYTES];
                tq::encode_tq1_0(&codes, &bits, &mut out).map(|()| out)
            };
            Ok((written.map_err(|e| ImportError::tensor(name, e))?, note))
        }
    }
}

/// Writes `file` as GGUF v3 at `path` (atomically: a temporary file renamed into place),
/// packed matrices as `ternary`, metadata and plain tensors as described in the module docs.
/// Returns the bytes each tensor took and the notes on rounded scales.
///
/// Errors: [`ImportError::BadTensor`] naming a tensor GGUF cannot hold as asked (unsigned or
/// boolean dtype, rank > 4, rows not whole blocks, scales the type cannot carry);
/// [`ImportError::Io`].
pub fn write(
    path: &Path,
    file: &ModelFile,
    ternary: GgufTernary,
) -> Result<(BTreeMap<String, u64>, Vec<GgufNote>), ImportError> {
    let mut encoded: Vec<(String, GgmlType, Vec<u64>, Vec<u8>)> = Vec::new();
    let mut notes = Vec::new();
    for (name, t) in &file.tensors {
        match t {
            Stored::Packed(p) => {
                let dims: Vec<u64> = p.info.shape.iter().rev().map(|&d| d as u64).collect();
                let block = if ternary == GgufTernary::I2S {
                    128
                } else {
                    tq::QK_K
                };
                let last = p.info.shape.last().copied().unwrap_or(0);
                if p.info.shape.len() <= 4 && last > 0 && !last.is_multiple_of(block) {
                    // As llama.cpp does for such rows: a float type. F32 holds code × scale
                    // exactly.
                    let bytes = p
                        .packed
                        .dequantize()
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect();
                    notes.push(GgufNote {
                        tensor: name.clone(),
                        rounded: 0,
                        max_relative: 0.0,
                        what: format!(
                            "written as F32 (exact): rows of {last} weights are not whole {} blocks of {block}",
                            ternary.ggml().name()
                        ),
                    });
                    encoded.push((name.clone(), GgmlType::F32, dims, bytes));
                    continue;
                }
                let (bytes, note) = encode_ternary(name, p, ternary)?;
                notes.extend(note);
                encoded.push((name.clone(), ternary.ggml(), dims, bytes));
            }
            Stored::Plain(r) => {
                let ty = ggml_of(r.dtype).ok_or_else(|| {
                    ImportError::tensor(
                        name,
                        format!("dtype {:?} has no GGUF tensor type", r.dtype),
                    )
                })?;
                let dims = r.shape.iter().rev().map(|&d| d as u64).collect();
                encoded.push((name.clone(), ty, dims, r.bytes.clone()));
            }
            Stored::Opaque(o) => {
                let ty = GgmlType::from_id(o.type_id).ok_or_else(|| {
                    ImportError::tensor(name, format!("unknown GGML type id {}", o.type_id))
                })?;
                let dims = o.shape.iter().rev().map(|&d| d as u64).collect();
                encoded.push((name.clone(), ty, dims, o.bytes.clone()));
            }
        }
    }
    let mut w = GgufWriter::new();
    for (k, v) in metadata_of(file)? {
        w.add_metadata(k.clone(), v)
            .map_err(|e| ImportError::tensor(&k, e))?;
    }
    let mut sizes = BTreeMap::new();
    for (name, ty, dims, bytes) in &encoded {
        w.add_tensor(name.clone(), *ty, dims, bytes)
            .map_err(|e| ImportError::tensor(name, e))?;
        sizes.insert(name.clone(), bytes.len() as u64);
    }
    super::container::write_file_atomically(path, |out| w.write_to(out).map(|_| ()))?;
    Ok((sizes, notes))
}
