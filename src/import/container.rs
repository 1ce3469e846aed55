//! The packed ternary checkpoint written by `burn-ternary convert`: a safetensors file in
//! which every ternarized weight is a `U8` tensor holding a serialized
//! [`PackedI2`](ternary_kernels::PackedI2) (32-byte header, 2-bit payload, f32 scales) and
//! every other tensor keeps its dtype. The file's metadata says which tensors are packed and
//! their original shape, quantizer and granularity, so tools that know safetensors can still
//! list it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::DType;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use ternary_kernels::quant::{Granularity, Method};
use ternary_kernels::{PackedI2, Scales};

use super::{ImportError, ImportOptions, guarded};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "burn-ternary/i2/1";

/// How `convert` chooses and quantizes tensors.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Quantizer.
    pub method: Method,
    /// One scale per tensor or per output channel.
    pub granularity: Granularity,
    /// Float weights named `*.weight` of rank 2–4 with at least this many elements are
    /// ternarized; everything else is kept as it is.
    pub min_elements: usize,
    /// How the input is read.
    pub import: ImportOptions,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            method: Method::AbsMean,
            granularity: Granularity::PerRow,
            min_elements: 1024,
            import: ImportOptions::default(),
        }
    }
}

/// What happened to one tensor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TensorReport {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Source dtype (`F32`, `F16`, …).
    pub source_dtype: String,
    /// True when packed to ternary.
    pub ternary: bool,
    /// Bytes in the source dtype.
    pub source_bytes: u64,
    /// Bytes the same tensor takes in f16 (integers as stored).
    pub f16_bytes: u64,
    /// Bytes in the output file (payload, header and scales for packed tensors).
    pub output_bytes: u64,
}

/// The whole conversion.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    /// Per tensor, in name order.
    pub tensors: Vec<TensorReport>,
    /// Size of the output file.
    pub file_bytes: u64,
    /// Weights quantized.
    pub ternary_weights: usize,
    /// Wall seconds spent quantizing and packing.
    pub quantize_seconds: f64,
}

impl ConvertReport {
    /// Σ f16 bytes of every tensor: the model saved in f16.
    pub fn f16_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.f16_bytes).sum()
    }

    /// Σ source bytes.
    pub fn source_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.source_bytes).sum()
    }
}

/// Per-tensor metadata of a packed tensor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackedInfo {
    /// Original shape (`[out, in]` or `[out, in, kh, kw]`).
    pub shape: Vec<usize>,
    /// `absmean` or `twn`.
    pub quantizer: String,
    /// `per-tensor` or `per-channel`.
    pub granularity: String,
    /// Source dtype.
    pub source_dtype: String,
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::AbsMean => "absmean",
        Method::Twn => "twn",
    }
}

fn granularity_name(g: Granularity) -> &'static str {
    match g {
        Granularity::PerTensor => "per-tensor",
        Granularity::PerRow => "per-channel",
    }
}

fn st_dtype(d: DType) -> Option<Dtype> {
    Some(match d {
        DType::F64 => Dtype::F64,
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::I8 => Dtype::I8,
        DType::U8 => Dtype::U8,
        DType::Bool(_) => Dtype::BOOL,
        _ => return None,
    })
}

/// Converts a `.pt`/`.pth`/`.safetensors` checkpoint into a packed ternary file at `output`
/// (written to a temporary file and renamed: an error leaves no partial output). `progress`
/// is called with (tensors done, tensors total).
pub fn convert(
    input: &Path,
    output: &Path,
    options: &ConvertOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<ConvertReport, ImportError> {
    let tensors = super::read_raw(input, &options.import)?;
    let total = tensors.len();
    let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    let mut reports = Vec::new();
    let (mut ternary_weights, mut quantize_seconds) = (0usize, 0f64);
    for (i, (name, data)) in tensors.into_iter().enumerate() {
        let shape = data.shape().to_vec();
        let numel: usize = shape.iter().product();
        let source_dtype = format!("{:?}", data.dtype());
        let source_bytes = data.bytes().len() as u64;
        let f16_bytes = if data.dtype().is_float() {
            2 * numel as u64
        } else {
            source_bytes
        };
        let eligible = data.dtype().is_float()
            && name.ends_with("weight")
            && (2..=4).contains(&shape.len())
            && numel >= options.min_elements.max(1);
        let (dtype, bytes, ternary) =
            if eligible {
                let data = super::to_f32_checked(&name, data)?;
                let w: &[f32] = data.as_slice().map_err(|e| ImportError::BadTensor {
                    tensor: name.clone(),
                    what: format!("{e:?}"),
                })?;
                let (n, k) = (shape[0], numel / shape[0].max(1));
                let clock = Instant::now();
                let packed = PackedI2::quantize(w, n, k, options.method, options.granularity)
                    .map_err(|e| ImportError::BadTensor {
                        tensor: name.clone(),
                        what: e.to_string(),
                    })?;
                let bytes = packed.to_bytes();
                quantize_seconds += clock.elapsed().as_secs_f64();
                ternary_weights += numel;
                let info = PackedInfo {
                    shape: shape.clone(),
                    quantizer: method_name(options.method).into(),
                    granularity: granularity_name(options.granularity).into(),
                    source_dtype: source_dtype.clone(),
                };
                meta.insert(
                    name.clone(),
                    serde_json::to_string(&info).expect("plain struct"),
                );
                (Dtype::U8, bytes, true)
            } else {
                let dtype = st_dtype(data.dtype()).ok_or_else(|| ImportError::BadTensor {
                    tensor: name.clone(),
                    what: format!("dtype {:?} cannot be stored", data.dtype()),
                })?;
                (dtype, data.bytes().to_vec(), false)
            };
        let stored_shape = if ternary {
            vec![bytes.len()]
        } else {
            shape.clone()
        };
        reports.push(TensorReport {
            name: name.clone(),
            shape,
            source_dtype,
            ternary,
            source_bytes,
            f16_bytes,
            output_bytes: bytes.len() as u64,
        });
        out.push((name, dtype, stored_shape, bytes));
        progress(i + 1, total);
    }
    let views = out
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| ImportError::BadTensor {
                    tensor: name.clone(),
                    what: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImportError::Io { path, source }
    };
    let tmp = temp_path(output);
    let written = safetensors::serialize_to_file(views, Some(meta), &tmp)
        .map_err(|e| ImportError::Format {
            path: tmp.clone(),
            what: e.to_string(),
        })
        .and_then(|()| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io(&tmp))
        })
        .and_then(|()| std::fs::rename(&tmp, output).map_err(io(output)));
    if let Err(e) = written {
        std::fs::remove_file(&tmp).ok();
        return Err(e);
    }
    Ok(ConvertReport {
        tensors: reports,
        file_bytes: std::fs::metadata(output).map_err(io(output))?.len(),
        ternary_weights,
        quantize_seconds,
    })
}

fn temp_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    output.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// One tensor of a file, as `inspect` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectedTensor {
    /// Name.
    pub name: String,
    /// Logical shape.
    pub shape: Vec<usize>,
    /// `i2 (2-bit ternary)` or the stored dtype.
    pub format: String,
    /// Bits per weight including scales and padding (stored dtype width for others).
    pub bits_per_weight: f64,
    /// `per-tensor`, `per-channel`, or empty for unpacked tensors.
    pub scale_kind: String,
    /// Bytes stored.
    pub bytes: u64,
}

/// Lists the tensors of a packed file (validating every packed tensor completely), or of any
/// `.safetensors` / `.pt` checkpoint.
pub fn inspect(path: &Path) -> Result<Vec<InspectedTensor>, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let is_st = path.extension().is_some_and(|e| e == "safetensors");
    if !is_st {
        return super::read_raw(path, &ImportOptions::default()).map(|t| {
            t.into_iter()
                .map(|(name, data)| {
                    let numel: usize = data.shape().iter().product();
                    InspectedTensor {
                        name,
                        shape: data.shape().to_vec(),
                        format: format!("{:?}", data.dtype()),
                        bits_per_weight: 8.0 * data.bytes().len() as f64 / numel.max(1) as f64,
                        scale_kind: String::new(),
                        bytes: data.bytes().len() as u64,
                    }
                })
                .collect()
        });
    }
    let (_, metadata) = guarded(path, || {
        SafeTensors::read_metadata(&bytes).map_err(|e| e.to_string())
    })?;
    let st = guarded(path, || {
        SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())
    })?;
    let meta = metadata.metadata().clone().unwrap_or_default();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let view = st.tensor(&name).map_err(|e| ImportError::Format {
            path: path.to_path_buf(),
            what: format!("tensor {name}: {e}"),
        })?;
        let stored = view.data().len() as u64;
        let entry = match meta.get(&name) {
            Some(json) => {
                let info: PackedInfo =
                    serde_json::from_str(json).map_err(|e| ImportError::Format {
                        path: path.to_path_buf(),
                        what: format!("metadata of {name}: {e}"),
                    })?;
                let packed =
                    PackedI2::from_bytes(view.data()).map_err(|e| ImportError::BadTensor {
                        tensor: name.clone(),
                        what: e.to_string(),
                    })?;
                let numel: usize = info.shape.iter().product();
                let (n, k) = (
                    info.shape.first().copied().unwrap_or(0),
                    numel / info.shape.first().copied().unwrap_or(1).max(1),
                );
                if (packed.n(), packed.k()) != (n, k) {
                    return Err(ImportError::ShapeMismatch {
                        tensor: name,
                        expected: info.shape,
                        found: vec![packed.n(), packed.k()],
                    });
                }
                InspectedTensor {
                    name,
                    shape: info.shape,
                    format: "i2 (2-bit ternary)".into(),
                    bits_per_weight: 8.0 * stored as f64 / numel.max(1) as f64,
                    scale_kind: match packed.scales() {
                        Scales::PerTensor(_) => "per-tensor".into(),
                        Scales::PerRow(_) => "per-channel".into(),
                    },
                    bytes: stored,
                }
            }
            None => {
                let numel: usize = view.shape().iter().product();
                InspectedTensor {
                    name,
                    shape: view.shape().to_vec(),
                    format: format!("{:?}", view.dtype()),
                    bits_per_weight: 8.0 * stored as f64 / numel.max(1) as f64,
                    scale_kind: String::new(),
                    bytes: stored,
                }
            }
        };
        out.push(entry);
    }
    Ok(out)
}

/// Reads a packed tensor of a converted file back as ternary values (row-major, original
/// shape flattened to `[out, rest]`) and its scales — e.g. to load it into a model.
pub fn read_packed(path: &Path, name: &str) -> Result<(PackedInfo, PackedI2), ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, metadata) = guarded(path, || {
        SafeTensors::read_metadata(&bytes).map_err(|e| e.to_string())
    })?;
    let json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(name))
        .ok_or_else(|| ImportError::Missing {
            keys: vec![name.to_string()],
        })?;
    let info: PackedInfo = serde_json::from_str(json).map_err(|e| ImportError::Format {
        path: path.to_path_buf(),
        what: format!("metadata of {name}: {e}"),
    })?;
    let st = guarded(path, || {
        SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())
    })?;
    let view = st.tensor(name).map_err(|e| ImportError::Format {
        path: path.to_path_buf(),
        what: format!("tensor {name}: {e}"),
    })?;
    let packed = PackedI2::from_bytes(view.data()).map_err(|e| ImportError::BadTensor {
        tensor: name.to_string(),
        what: e.to_string(),
    })?;
    Ok((info, packed))
}
