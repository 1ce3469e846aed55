//! Checkpoint files read as they are: every tensor's exact name, stored dtype, shape and
//! little-endian bytes, whatever the container.
//!
//! * The container is recognised by its **content**, never by its extension or its case:
//!   a GGUF file opens with `GGUF` (its ternary tensors are read as their effective f32
//!   weights here; [`super::model_file`] keeps them packed); a safetensors file opens with
//!   a little-endian `u64` header length followed by `{`;
//!   anything else is handed to the PyTorch reader (ZIP archives of PyTorch ≥ 1.6, the legacy
//!   pickle format, the TAR format, plain pickles), which refuses what it cannot read.
//! * Names are kept exactly as stored. Unlike burn-store's `PytorchStore`, nothing renumbers
//!   `features.0/3/6` to `0/1/2`: a shard holding `layers.16..19` keeps those names, and a
//!   `.pt` and a `.safetensors` of the same state dict give the same names and bytes.
//! * Key remapping (regular expressions, applied in order to every name) refuses to merge two
//!   tensors into one name: [`ImportError::NameCollision`] names both sources.
//! * The result is ordered by name ([`BTreeMap`]), so everything built from it is
//!   deterministic.
//!
//! Sizes come from the file only after they are checked against its length (the safetensors
//! parser checks every offset against the data section; the PyTorch reader checks each
//! storage against its archive entry) — nothing is allocated from a size the file merely
//! claims.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{BoolStore, DType, TensorData};
use safetensors::tensor::{Dtype, SafeTensors};

use super::{ImportError, ImportOptions, guarded};

/// One tensor of a checkpoint as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    /// The stored element type (safetensors' names; PyTorch dtypes map onto them).
    pub dtype: Dtype,
    /// The shape; `[]` for a scalar.
    pub shape: Vec<usize>,
    /// Row-major little-endian element bytes, `numel · dtype size` long.
    pub bytes: Vec<u8>,
}

impl RawTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the dtype is a floating-point type this crate can quantize (F64, F32, F16,
    /// BF16). The 8-, 6- and 4-bit float formats are passed through untouched.
    pub fn is_quantizable_float(&self) -> bool {
        matches!(
            self.dtype,
            Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16
        )
    }
}

/// Checkpoint containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Hugging Face safetensors.
    Safetensors,
    /// A PyTorch `torch.save` file (`.pt`, `.pth`, `.bin`, …).
    Pytorch,
    /// A GGUF file (llama.cpp, bitnet.cpp).
    Gguf,
}

/// Tells the container from the file's first bytes (see the module docs). Errors:
/// [`ImportError::Io`] when the file cannot be read.
pub fn detect(path: &Path) -> Result<Container, ImportError> {
    use std::io::Read;
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Err(ImportError::Format {
            path: path.to_path_buf(),
            what: "empty file (0 bytes)".into(),
        });
    }
    let mut head = [0u8; 9];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]).map_err(io)? {
            0 => break,
            n => got += n,
        }
    }
    if got >= 4 && head[..4] == ternary_kernels::format::gguf::GGUF_MAGIC {
        return Ok(Container::Gguf);
    }
    if got == head.len() {
        let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        if head[8] == b'{' && n.checked_add(8).is_some_and(|end| end <= len) {
            return Ok(Container::Safetensors);
        }
    }
    Ok(Container::Pytorch)
}

/// Every tensor of a checkpoint with its stored name, dtype and bytes, after the key
/// remapping and top-level key of `options`, ordered by name.
///
/// Errors: [`ImportError::Io`], [`ImportError::Format`] (not a readable checkpoint: names the
/// file and what is wrong), [`ImportError::BadTensor`] (a tensor whose data cannot be read,
/// named), [`ImportError::BadPattern`], [`ImportError::NameCollision`].
pub fn read_checkpoint(
    path: &Path,
    options: &ImportOptions,
) -> Result<BTreeMap<String, RawTensor>, ImportError> {
    let patterns = options.compiled_patterns()?;
    let tensors = match detect(path)? {
        Container::Safetensors => read_safetensors(path)?,
        Container::Pytorch => read_pytorch(path, options.top_level_key.as_deref())?,
        Container::Gguf => read_gguf_dequantized(path)?,
    };
    remap(tensors, &patterns)
}

/// Applies the remapping rules to every name; two tensors that end up with one name are an
/// error naming both sources and the target.
pub(crate) fn remap<T>(
    tensors: impl IntoIterator<Item = (String, T)>,
    patterns: &[(regex::Regex, String)],
) -> Result<BTreeMap<String, T>, ImportError> {
    let mut out: BTreeMap<String, (String, T)> = BTreeMap::new();
    for (source, tensor) in tensors {
        let mut name = source.clone();
        for (re, to) in patterns {
            name = re.replace_all(&name, to.as_str()).into_owned();
        }
        if let Some((other, _)) = out.get(&name) {
            let (mut a, mut b) = (other.clone(), source);
            if b < a {
                std::mem::swap(&mut a, &mut b);
            }
            return Err(ImportError::NameCollision {
                target: name,
                sources: [a, b],
            });
        }
        out.insert(name, (source, tensor));
    }
    Ok(out.into_iter().map(|(k, (_, t))| (k, t)).collect())
}

/// A GGUF file's tensors with ternary ones dequantized to their effective f32 weights
/// (`code × scale`, exact), everything else as stored.
fn read_gguf_dequantized(path: &Path) -> Result<Vec<(String, RawTensor)>, ImportError> {
    use super::model_file::Stored;
    let file = super::gguf::read(path)?;
    file.tensors
        .into_iter()
        .map(|(name, t)| {
            let raw = match t {
                Stored::Plain(r) => r,
                Stored::Packed(p) => RawTensor {
                    dtype: Dtype::F32,
                    shape: p.info.shape,
                    bytes: p
                        .packed
                        .dequantize()
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect(),
                },
                Stored::Opaque(o) => {
                    return Err(ImportError::BadTensor {
                        tensor: name,
                        what: format!(
                            "GGML type {} is carried, not decoded, by burn-ternary: it cannot be loaded as f32",
                            o.type_name
                        ),
                    });
                }
            };
            Ok((name, raw))
        })
        .collect()
}

/// A read-only mapping of the file.
pub(crate) fn map_file(path: &Path) -> Result<memmap2::Mmap, ImportError> {
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the mapping is read-only and lives only while its caller reads it; a file
    // truncated by another process meanwhile can fault, as with any mmap-based reader (the
    // safetensors library itself documents the same contract).
    unsafe { memmap2::Mmap::map(&file) }.map_err(io)
}

pub(crate) fn read_safetensors(path: &Path) -> Result<Vec<(String, RawTensor)>, ImportError> {
    let map = map_file(path)?;
    guarded(path, || {
        let st = SafeTensors::deserialize(&map).map_err(|e| e.to_string())?;
        Ok(st
            .iter()
            .map(|(name, view)| {
                (
                    name.to_string(),
                    RawTensor {
                        dtype: view.dtype(),
                        shape: view.shape().to_vec(),
                        bytes: view.data().to_vec(),
                    },
                )
            })
            .collect())
    })
}

fn read_pytorch(
    path: &Path,
    top_level_key: Option<&str>,
) -> Result<Vec<(String, RawTensor)>, ImportError> {
    use burn_store::pytorch_reader::{DType as P, PytorchReader};
    let reader = guarded(path, || {
        match top_level_key {
            Some(key) => PytorchReader::with_top_level_key(path, key),
            None => PytorchReader::new(path),
        }
        .map_err(|e| format!("not a safetensors or PyTorch checkpoint: {e}"))
    })?;
    let mut out = Vec::with_capacity(reader.len());
    let mut tensors: Vec<_> = reader.into_tensors().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in tensors {
        let dtype = match t.dtype() {
            P::F64 => Dtype::F64,
            P::F32 => Dtype::F32,
            P::F16 => Dtype::F16,
            P::BF16 => Dtype::BF16,
            P::I64 => Dtype::I64,
            P::I32 => Dtype::I32,
            P::I16 => Dtype::I16,
            P::I8 => Dtype::I8,
            P::U64 => Dtype::U64,
            P::U32 => Dtype::U32,
            P::U16 => Dtype::U16,
            P::U8 => Dtype::U8,
            P::Bool => Dtype::BOOL,
        };
        let shape = t.shape().to_vec();
        let bytes = guarded(path, || t.read().map_err(|e| e.to_string())).map_err(|e| {
            ImportError::BadTensor {
                tensor: name.clone(),
                what: match e {
                    ImportError::Format { what, .. } => what,
                    other => other.to_string(),
                },
            }
        })?;
        let expected = shape
            .iter()
            .try_fold(dtype.bitsize() / 8, |a, &d| a.checked_mul(d));
        if expected != Some(bytes.len()) {
            return Err(ImportError::BadTensor {
                tensor: name,
                what: format!(
                    "{} data bytes for shape {shape:?} of {dtype:?}",
                    bytes.len()
                ),
            });
        }
        out.push((
            name,
            RawTensor {
                dtype,
                shape,
                bytes,
            },
        ));
    }
    Ok(out)
}

/// The `__metadata__` map of a safetensors file (empty for PyTorch files and for
/// safetensors files without one), ordered by key.
pub fn metadata(path: &Path) -> Result<BTreeMap<String, String>, ImportError> {
    if detect(path)? != Container::Safetensors {
        return Ok(BTreeMap::new());
    }
    let map = map_file(path)?;
    guarded(path, || {
        let (_, m) = SafeTensors::read_metadata(&map).map_err(|e| e.to_string())?;
        Ok(m.metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect())
    })
}

/// Burn's dtype for a stored one, when Burn has it.
pub fn burn_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U64 => DType::U64,
        Dtype::U32 => DType::U32,
        Dtype::U16 => DType::U16,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool(BoolStore::Native),
        _ => return None,
    })
}

/// The tensor as Burn [`TensorData`] in its stored dtype. Errors: [`ImportError::BadTensor`]
/// naming the tensor when Burn has no such dtype (the 8/6/4-bit floats, C64).
pub fn to_tensor_data(name: &str, t: RawTensor) -> Result<TensorData, ImportError> {
    let dtype = burn_dtype(t.dtype).ok_or_else(|| ImportError::BadTensor {
        tensor: name.to_string(),
        what: format!("dtype {:?} has no Burn equivalent", t.dtype),
    })?;
    Ok(TensorData::from_bytes_vec(t.bytes, t.shape, dtype))
}

/// The values of a float tensor as f32, borrowed from the tensor's bytes without a copy when
/// they are little-endian F32 aligned to 4 bytes (what a safetensors or GGUF reader hands
/// over), else converted and checked by [`to_f32`]. Borrowed values are *not* checked for
/// NaN/±Inf: the caller runs [`check_finite`] where it matters (a tensor recognised as
/// ternary cannot hold them, so the check is skipped there).
pub(crate) fn f32_view_unchecked<'a>(
    name: &str,
    t: &'a RawTensor,
) -> Result<std::borrow::Cow<'a, [f32]>, ImportError> {
    if t.dtype == Dtype::F32
        && cfg!(target_endian = "little")
        && let Ok(values) = bytemuck::try_cast_slice::<u8, f32>(&t.bytes)
    {
        return Ok(values.into());
    }
    to_f32(name, t).map(Into::into)
}

/// [`ImportError::NonFinite`] naming the first NaN or ±Inf of `values`.
pub(crate) fn check_finite(name: &str, values: &[f32]) -> Result<(), ImportError> {
    // Exponent all ones: ±Inf or NaN. Checked branch-free per chunk, searched on failure.
    let bad = |v: &f32| u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000);
    match values
        .chunks(4096)
        .enumerate()
        .find(|(_, c)| c.iter().fold(0, |acc, v| acc | bad(v)) != 0)
    {
        Some((c, chunk)) => {
            let j = chunk.iter().position(|v| bad(v) != 0).expect("found above");
            Err(ImportError::NonFinite {
                tensor: name.to_string(),
                index: c * 4096 + j,
                value: chunk[j],
            })
        }
        None => Ok(()),
    }
}

/// The values of a float tensor as f32, checked: NaN/±Inf are [`ImportError::NonFinite`],
/// and a finite F64 value outside f32's range is [`ImportError::OutOfRange`] (it would
/// otherwise become ±Inf silently). Non-float dtypes are [`ImportError::BadTensor`].
pub fn to_f32(name: &str, t: &RawTensor) -> Result<Vec<f32>, ImportError> {
    let b = &t.bytes;
    let values: Vec<f32> = match t.dtype {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => {
            let mut v = Vec::with_capacity(b.len() / 8);
            for (index, c) in b.chunks_exact(8).enumerate() {
                let x = f64::from_le_bytes(c.try_into().expect("8 bytes"));
                if x.is_finite() && x.abs() > f64::from(f32::MAX) {
                    return Err(ImportError::OutOfRange {
                        tensor: name.to_string(),
                        index,
                        value: x,
                    });
                }
                v.push(x as f32);
            }
            v
        }
        other => {
            return Err(ImportError::BadTensor {
                tensor: name.to_string(),
                what: format!("dtype {other:?} is not a float type that can be quantized"),
            });
        }
    };
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ImportError::NonFinite {
            tensor: name.to_string(),
            index,
            value,
        });
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: u8) -> RawTensor {
        RawTensor {
            dtype: Dtype::U8,
            shape: vec![1],
            bytes: vec![v],
        }
    }

    #[test]
    fn remap_collision_names_both_sources_in_a_fixed_order() {
        let re = vec![(regex::Regex::new(r"^module\.(.*)").unwrap(), "$1".into())];
        for order in [
            vec![("fc.weight", 1), ("module.fc.weight", 2)],
            vec![("module.fc.weight", 2), ("fc.weight", 1)],
        ] {
            let input = order.into_iter().map(|(n, v)| (n.to_string(), t(v)));
            match remap(input, &re) {
                Err(ImportError::NameCollision { target, sources }) => {
                    assert_eq!(target, "fc.weight");
                    assert_eq!(sources, ["fc.weight", "module.fc.weight"]);
                }
                other => panic!("expected a collision, got {other:?}"),
            }
        }
    }

    #[test]
    fn remap_keeps_every_tensor_when_names_stay_distinct() {
        let re = vec![(regex::Regex::new(r"^module\.(.*)").unwrap(), "$1".into())];
        let input = vec![
            ("module.a".to_string(), t(1)),
            ("module.b".to_string(), t(2)),
            ("c".to_string(), t(3)),
        ];
        let out = remap(input, &re).unwrap();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(out["b"], t(2));
    }

    #[test]
    fn f64_beyond_f32_range_is_out_of_range_not_infinite() {
        let mut bytes = Vec::new();
        for x in [1.0f64, -2.5, 1e39] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let raw = RawTensor {
            dtype: Dtype::F64,
            shape: vec![3],
            bytes,
        };
        match to_f32("big.weight", &raw) {
            Err(ImportError::OutOfRange {
                tensor,
                index,
                value,
            }) => {
                assert_eq!((tensor.as_str(), index, value), ("big.weight", 2, 1e39));
            }
            other => panic!("expected OutOfRange, got {other:?}"),
        }
    }
}
