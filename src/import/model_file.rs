//! A model file of any supported format held in memory as what it *means*: packed ternary
//! matrices (with their scales) and plain tensors (exact dtype and bytes), plus the file's
//! metadata. `convert` reads any format into a [`ModelFile`] and writes any other from it;
//! `verify` compares two of them by their effective weights.
//!
//! Formats (recognised by content, never by extension):
//!
//! | format | packed tensors come from | plain tensors |
//! |---|---|---|
//! | burn-ternary packed safetensors | `U8` tensors with a [`PackedInfo`] entry | every other tensor |
//! | GGUF (llama.cpp, bitnet.cpp) | `TQ1_0`, `TQ2_0`, `I2_S` | `F32`, `F16`, `BF16`, `F64`, `I8`–`I64` |
//! | safetensors, PyTorch | — | every tensor |
//! | Hugging Face BitNet (a directory) | packed `uint8` weights + `weight_scale` | every other tensor |

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::Dtype;
use ternary_kernels::{PackedI2, Scales};

use super::container::{PackedInfo, decode_packed, packed_info};
use super::raw::{self, Container, RawTensor};
use super::{ImportError, ImportOptions};

/// A packed ternary matrix with the shape it had before flattening to `[out, rest]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedTensor {
    /// Codes and scales, `[n, k]` with `n = shape[0]`.
    pub packed: PackedI2,
    /// What is recorded about it (original shape, quantizer, source dtype).
    pub info: PackedInfo,
    /// Bytes it took in the file it was read from (0 when made in memory).
    pub source_bytes: u64,
}

/// A GGUF tensor of a ggml type burn-ternary does not decode (`Q4_K`, `Q6_K`, … — what
/// llama.cpp keeps embeddings and output layers in), carried byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub struct OpaqueTensor {
    /// ggml's type id.
    pub type_id: u32,
    /// ggml's type name (`Q4_K`).
    pub type_name: String,
    /// Row-major shape (GGUF dims reversed).
    pub shape: Vec<usize>,
    /// The tensor's bytes as stored.
    pub bytes: Vec<u8>,
}

/// Value of the `format` field of an opaque tensor's metadata entry in packed safetensors.
pub const OPAQUE_FORMAT: &str = "burn-ternary/ggml/1";

/// One tensor of a model file.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Ternary codes with their scales.
    Packed(PackedTensor),
    /// Anything else, exactly as stored.
    Plain(RawTensor),
    /// A GGUF tensor of a type that is carried, not decoded.
    Opaque(OpaqueTensor),
}

impl Stored {
    /// The logical shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Stored::Packed(p) => &p.info.shape,
            Stored::Plain(t) => &t.shape,
            Stored::Opaque(o) => &o.shape,
        }
    }
}

/// The metadata entry recording an opaque tensor in packed safetensors (a `U8` blob).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct OpaqueInfo {
    pub(crate) format: String,
    pub(crate) ggml_type: String,
    pub(crate) type_id: u32,
    pub(crate) shape: Vec<usize>,
}

/// Which format a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// safetensors (packed tensors are recognised by their metadata entries).
    Safetensors,
    /// A PyTorch `torch.save` file.
    Pytorch,
    /// GGUF v2/v3.
    Gguf,
}

/// A whole file: tensors by name (sorted) and metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelFile {
    /// Every tensor, by name.
    pub tensors: BTreeMap<String, Stored>,
    /// String metadata: a safetensors file's `__metadata__` (packed tensors' entries
    /// excluded), or a GGUF file's key/values encoded under [`super::gguf::METADATA_KEY`].
    pub metadata: BTreeMap<String, String>,
}

/// Tells a file's format from its first bytes: `GGUF` magic, a safetensors header, or else
/// PyTorch (whose reader refuses what it cannot read).
pub fn detect(path: &Path) -> Result<FileFormat, ImportError> {
    Ok(match raw::detect(path)? {
        Container::Safetensors => FileFormat::Safetensors,
        Container::Pytorch => FileFormat::Pytorch,
        Container::Gguf => FileFormat::Gguf,
    })
}

/// Reads any supported file (see the module docs), after the key remapping of `options`.
///
/// Errors: everything [`raw::read_checkpoint`] and [`super::gguf::read`] report;
/// [`ImportError::Format`] for a packed entry that does not parse; [`ImportError::BadTensor`]
/// / [`ImportError::ShapeMismatch`] for a packed tensor whose bytes are invalid.
pub fn read(path: &Path, options: &ImportOptions) -> Result<ModelFile, ImportError> {
    if path.is_dir() {
        return rename(super::hf_bitnet::read(path)?, options);
    }
    if detect(path)? == FileFormat::Gguf {
        let file = super::gguf::read(path)?;
        return rename(file, options);
    }
    let meta = raw::metadata(path)?;
    // Names are remapped after the packed entries (keyed by stored names) are matched.
    let unmapped = ImportOptions {
        remap: Vec::new(),
        ..options.clone()
    };
    let raw_tensors = raw::read_checkpoint(path, &unmapped)?;
    let mut file = ModelFile::default();
    for (name, t) in raw_tensors {
        let opaque = meta
            .get(&name)
            .filter(|_| t.dtype == Dtype::U8)
            .and_then(|json| serde_json::from_str::<OpaqueInfo>(json).ok())
            .filter(|o| o.format == OPAQUE_FORMAT);
        let entry = match (opaque, packed_info(path, &meta, &name, t.dtype)?) {
            (Some(o), _) => Stored::Opaque(OpaqueTensor {
                type_id: o.type_id,
                type_name: o.ggml_type,
                shape: o.shape,
                bytes: t.bytes,
            }),
            (None, Some(info)) => Stored::Packed(PackedTensor {
                packed: decode_packed(&name, &info, &t.bytes)?,
                info,
                source_bytes: t.bytes.len() as u64,
            }),
            (None, None) => Stored::Plain(t),
        };
        file.tensors.insert(name, entry);
    }
    file.metadata = meta
        .into_iter()
        .filter(|(k, _)| {
            !matches!(
                file.tensors.get(k),
                Some(Stored::Packed(_) | Stored::Opaque(_))
            )
        })
        .collect();
    rename(file, options)
}

/// Applies `options`' key remapping (refusing collisions, as [`raw::read_checkpoint`] does).
fn rename(file: ModelFile, options: &ImportOptions) -> Result<ModelFile, ImportError> {
    let patterns = options.compiled_patterns()?;
    if patterns.is_empty() {
        return Ok(file);
    }
    Ok(ModelFile {
        tensors: raw::remap(file.tensors, &patterns)?,
        metadata: file.metadata,
    })
}

/// What a tensor means, for comparing two files: the effective f32 weights of packed and
/// F32/F16/BF16 tensors (`code × scale`; 16-bit floats widened exactly; NaN and ±Inf kept),
/// the stored dtype and bytes of everything else (F64 included: it does not fit f32).
#[derive(Debug, Clone, PartialEq)]
pub enum Effective {
    /// Effective values, row-major.
    Values(Vec<f32>),
    /// Any other tensor: dtype and bytes.
    Bytes(Dtype, Vec<u8>),
    /// A carried GGUF tensor: its ggml type id and bytes.
    Ggml(u32, Vec<u8>),
}

/// The effective content of a tensor (see [`Effective`]).
pub fn effective(t: &Stored) -> Effective {
    let widen = |b: &[u8], f: fn([u8; 2]) -> f32| -> Vec<f32> {
        b.chunks_exact(2).map(|c| f([c[0], c[1]])).collect()
    };
    match t {
        Stored::Packed(p) => Effective::Values(p.packed.dequantize()),
        Stored::Plain(r) => match r.dtype {
            Dtype::F32 => Effective::Values(
                r.bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F16 => {
                Effective::Values(widen(&r.bytes, |b| half::f16::from_le_bytes(b).to_f32()))
            }
            Dtype::BF16 => {
                Effective::Values(widen(&r.bytes, |b| half::bf16::from_le_bytes(b).to_f32()))
            }
            other => Effective::Bytes(other, r.bytes.clone()),
        },
        Stored::Opaque(o) => Effective::Ggml(o.type_id, o.bytes.clone()),
    }
}

/// How two tensors of the same name compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// The same effective weights (or the same bytes), value for value (`0 == −0`).
    Identical,
    /// Different shapes.
    Shape(Vec<usize>, Vec<usize>),
    /// Same shape, different values: the first differing flat index, both values, and the
    /// largest absolute difference.
    Values {
        /// First differing flat index.
        index: usize,
        /// Value in the first file.
        a: f32,
        /// Value in the second file.
        b: f32,
        /// max |a − b| over the tensor.
        max_abs: f32,
        /// How many values differ.
        count: usize,
    },
    /// Non-float tensors whose dtype or bytes differ, or a float against a non-float.
    Bytes,
}

/// Compares two tensors by their effective content: values equal as numbers (`0 == −0`,
/// NaN equals NaN), or identical dtype and bytes.
pub fn compare(a: &Stored, b: &Stored) -> Comparison {
    if a.shape() != b.shape() {
        return Comparison::Shape(a.shape().to_vec(), b.shape().to_vec());
    }
    match (effective(a), effective(b)) {
        (Effective::Values(x), Effective::Values(y)) => {
            let mut first = None;
            let (mut max_abs, mut count) = (0f32, 0usize);
            for (i, (&p, &q)) in x.iter().zip(&y).enumerate() {
                if p != q && !(p.is_nan() && q.is_nan()) {
                    first.get_or_insert(i);
                    count += 1;
                    max_abs = max_abs.max((p - q).abs());
                }
            }
            match first {
                None => Comparison::Identical,
                Some(index) => Comparison::Values {
                    index,
                    a: x[index],
                    b: y[index],
                    max_abs,
                    count,
                },
            }
        }
        (Effective::Bytes(da, ba), Effective::Bytes(db, bb)) if da == db && ba == bb => {
            Comparison::Identical
        }
        (Effective::Ggml(ta, ba), Effective::Ggml(tb, bb)) if ta == tb && ba == bb => {
            Comparison::Identical
        }
        _ => Comparison::Bytes,
    }
}

/// The scale kind of a packed matrix as written in reports: `per-tensor`, `per-channel`,
/// `group-<size>`.
pub fn scale_kind(scales: &Scales) -> String {
    match scales {
        Scales::PerTensor(_) => "per-tensor".into(),
        Scales::PerRow(_) => "per-channel".into(),
        Scales::PerGroup { group_size, .. } => format!("group-{group_size}"),
    }
}
