//! The packed ternary checkpoint written by `burn-ternary convert`: a safetensors file in
//! which every ternarized weight is a `U8` tensor holding a serialized
//! [`PackedI2`] (32-byte header, f32 scales, 2-bit payload) and
//! every other tensor is copied byte for byte with its name, dtype and shape (except a
//! BitNet-style `<weight>_scale` folded into its packed weight's scales, reported as folded).
//!
//! The file's metadata has one entry per packed tensor, keyed by the tensor's name, whose
//! value is a JSON [`PackedInfo`] (format tag, original shape, quantizer, granularity,
//! source dtype, where the scale came from). The container adds no keys of its own, so no
//! tensor name can collide with one; metadata of a safetensors source is carried over, and a
//! source key equal to a packed tensor's name is refused.
//!
//! What `convert` does to each tensor (all of it reported, tensor by tensor):
//! * a float weight chosen for ternarization (see [`ConvertOptions`]) whose values are all
//!   in {−1, 0, +1} is packed **losslessly**: with the scales of a matching
//!   `<name>_scale` tensor (BitNet style `weight` + `weight_scale`, folded into the packed
//!   scales) or with scale 1 — never re-quantized with a new magnitude;
//! * any other chosen float weight is quantized with the chosen quantizer;
//! * everything else (integers, unsigned, bool, 8/6/4-bit floats, excluded tensors) is
//!   copied unchanged.
//!
//! The output is deterministic: tensors and metadata are written in sorted order, so the
//! same input and options give the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};
use ternary_kernels::quant::{Granularity, Method};
use ternary_kernels::{PackedI2, Scales};

use super::gguf::GgufTernary;
use super::hf_bitnet::LinearClass;
use super::model_file::{self, ModelFile, PackedTensor, Stored, scale_kind};
use super::raw::{self, RawTensor};
use super::{ImportError, ImportOptions};

/// Value of [`PackedInfo::format`]: marks a packed tensor's metadata entry.
pub const FORMAT: &str = "burn-ternary/i2/1";

/// Tensors the default exclusion keeps in their dtype: token/position embeddings and LM
/// heads, which ternary LLMs (BitNet b1.58, llama.cpp's TQ1_0/TQ2_0 models) keep at higher
/// precision — under Hugging Face names (`embed_tokens`, `lm_head`, `wte`, `wpe`) and GGUF
/// names (`token_embd`, `output.weight`). Case-insensitive; matched anywhere in the name.
pub const DEFAULT_EXCLUDE: &str =
    r"(?i)embed|token_embd|(^|\.)(lm_head|wte|wpe)\.|^output\.weight$";

/// How `convert` chooses and quantizes tensors.
///
/// A tensor is *chosen* for ternarization when it is a float (F64/F32/F16/BF16) of rank 2–4
/// with at least `min_elements` elements, its name matches one of `include` (by default:
/// ends with `weight`), and it matches none of `exclude` (plus [`DEFAULT_EXCLUDE`] unless
/// `default_exclude` is off). Without `include`, nothing is chosen when the source already
/// holds ternary tensors (a GGUF, packed or BitNet file: its float tensors are deliberate) or
/// the target is dense; for a GGUF target, a weight whose last axis is not a whole number of
/// the type's blocks is kept (as llama.cpp keeps such tensors in a float type).
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Quantizer for weights that are not already ternary.
    pub method: Method,
    /// One scale per tensor or per output channel.
    pub granularity: Granularity,
    /// Smallest element count of a chosen tensor.
    pub min_elements: usize,
    /// Regular expressions a name must match (any) to be chosen; empty = names ending in
    /// `weight`.
    pub include: Vec<String>,
    /// Regular expressions that keep a tensor unchanged (any match).
    pub exclude: Vec<String>,
    /// Apply [`DEFAULT_EXCLUDE`] too (embeddings and LM heads stay in their dtype).
    pub default_exclude: bool,
    /// How the input is read (key remapping, top-level key).
    pub import: ImportOptions,
    /// What to write.
    pub target: Target,
}

/// The format `convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// burn-ternary's packed safetensors (2-bit payload, f32 scales): lossless for every
    /// packed tensor, whatever its source.
    #[default]
    Packed,
    /// GGUF v3 with packed tensors as the given ternary type (see [`super::gguf`] for what
    /// each type can hold).
    Gguf(GgufTernary),
    /// Plain safetensors: packed tensors dequantized (`code × scale`) to `F32`, `F16` or
    /// `BF16`. `F32` is exact; the 16-bit types round, and the report says by how much.
    Dense(Dtype),
    /// A Hugging Face BitNet checkpoint directory (`config.json` + `model.safetensors`) with
    /// the given `linear_class` (see [`super::hf_bitnet::write`]).
    HfBitnet(LinearClass),
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            method: Method::AbsMean,
            granularity: Granularity::PerRow,
            min_elements: 1024,
            include: Vec::new(),
            exclude: Vec::new(),
            default_exclude: true,
            import: ImportOptions::default(),
            target: Target::Packed,
        }
    }
}

/// What `convert` did with one tensor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Action {
    /// Quantized with the chosen quantizer and granularity.
    Quantized,
    /// Already ternary: packed without loss, scales taken from the named tensor (folded in,
    /// not written separately) or 1 when `None`.
    Lossless {
        /// The `<name>_scale` tensor whose values became the packed scales.
        scale_from: Option<String>,
    },
    /// A `<weight>_scale` tensor folded into its weight's packed scales.
    FoldedScale {
        /// The weight it was folded into.
        into: String,
    },
    /// Already packed ternary in the source (a packed safetensors entry, a GGUF `TQ1_0` /
    /// `TQ2_0` / `I2_S` tensor): carried over without re-quantization.
    Carried {
        /// The source's type (`TQ2_0`, `I2_S`, `burn-ternary i2`).
        from: String,
    },
    /// Copied unchanged; the reason says why it was not chosen.
    Kept {
        /// Why (`not a float`, `excluded by …`, …).
        reason: String,
    },
}

/// What happened to one tensor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TensorReport {
    /// Name (after remapping).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Source dtype (`F32`, `BF16`, `U32`, …).
    pub source_dtype: String,
    /// True when packed to ternary.
    pub ternary: bool,
    /// What was done.
    pub action: Action,
    /// Bytes in the source dtype.
    pub source_bytes: u64,
    /// Bytes the same tensor takes in f16 (non-floats as stored).
    pub f16_bytes: u64,
    /// Bytes in the output file (payload, header and scales for packed tensors; 0 for a
    /// scale folded into its weight).
    pub output_bytes: u64,
    /// What writing it in the target format changed, if anything (scales rounded to f16,
    /// weights rounded to a 16-bit float).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The whole conversion.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    /// Per tensor, in name order.
    pub tensors: Vec<TensorReport>,
    /// Size of the output file.
    pub file_bytes: u64,
    /// Weights quantized or packed from float tensors (not those already ternary in the
    /// source, which are carried over).
    pub ternary_weights: usize,
    /// Wall seconds spent quantizing and packing.
    pub quantize_seconds: f64,
    /// Wall seconds reading and decoding the input (container, packed and ternary payloads).
    pub read_seconds: f64,
    /// Wall seconds encoding and writing the output, fsync included.
    pub write_seconds: f64,
    /// Of `write_seconds`, the wall seconds spent decoding packed tensors into the dense
    /// float bytes of an `f32`/`f16`/`bf16` target in memory (0 for other targets): the
    /// conversion's own work, the rest being file I/O and fsync.
    pub encode_seconds: f64,
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

/// Per-tensor metadata of a packed tensor (the JSON value of its metadata entry).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackedInfo {
    /// Always [`FORMAT`].
    #[serde(default)]
    pub format: String,
    /// Original shape (`[out, in]` or `[out, in, kh, kw]`).
    pub shape: Vec<usize>,
    /// `absmean`, `twn`, or `given` (already ternary, packed without loss).
    pub quantizer: String,
    /// `per-tensor` or `per-channel`.
    pub granularity: String,
    /// Source dtype.
    pub source_dtype: String,
    /// For `given`: the tensor the scales came from (`None`: scale 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_from: Option<String>,
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

fn compile(patterns: &[String]) -> Result<Vec<regex::Regex>, ImportError> {
    patterns
        .iter()
        .map(|p| {
            regex::Regex::new(p).map_err(|e| ImportError::BadPattern {
                pattern: p.clone(),
                what: e.to_string(),
            })
        })
        .collect()
}

/// Why a tensor is not chosen, or `None` when it is.
struct Chooser {
    include: Vec<regex::Regex>,
    exclude: Vec<(regex::Regex, String)>,
    min_elements: usize,
    /// Without `--include`, nothing is chosen: the source already holds ternary tensors, or
    /// the target is dense. The reason says which.
    none_by_default: Option<String>,
    /// A GGUF target's block length (TQ 256, I2_S 128): a weight whose last axis is not a
    /// multiple of it is kept as it is (llama.cpp keeps such tensors in a float type too).
    block: Option<usize>,
}

impl Chooser {
    fn new(o: &ConvertOptions, source_ternary: bool) -> Result<Self, ImportError> {
        let mut exclude: Vec<(regex::Regex, String)> = compile(&o.exclude)?
            .into_iter()
            .zip(
                o.exclude
                    .iter()
                    .map(|p| format!("excluded by --exclude {p:?}")),
            )
            .collect();
        if o.default_exclude {
            exclude.push((
                regex::Regex::new(DEFAULT_EXCLUDE).expect("valid pattern"),
                "embedding / LM head: kept by the default exclusion".into(),
            ));
        }
        let none_by_default = if !o.include.is_empty() {
            None
        } else if source_ternary {
            Some("the source is already ternary: its float tensors are kept (--include REGEX ternarizes them)".to_string())
        } else if matches!(o.target, Target::Dense(_)) {
            Some(
                "dense target: float tensors are kept (--include REGEX ternarizes them)"
                    .to_string(),
            )
        } else {
            None
        };
        let block = match o.target {
            Target::Gguf(GgufTernary::I2S) => Some(128),
            Target::Gguf(_) => Some(256),
            _ => None,
        };
        Ok(Self {
            include: compile(&o.include)?,
            exclude,
            min_elements: o.min_elements.max(1),
            none_by_default,
            block,
        })
    }

    fn reason(&self, name: &str, t: &RawTensor) -> Option<String> {
        if !t.is_quantizable_float() {
            return Some(if is_float(t.dtype) {
                format!("{:?} is not quantized", t.dtype)
            } else {
                "not a float".into()
            });
        }
        if !(2..=4).contains(&t.shape.len()) {
            return Some(format!("rank {}", t.shape.len()));
        }
        if t.numel() < self.min_elements {
            return Some(format!("< {} elements", self.min_elements));
        }
        if let Some(why) = &self.none_by_default {
            return Some(why.clone());
        }
        if let Some(block) = self.block
            && !t.shape.last().is_some_and(|&k| k.is_multiple_of(block))
        {
            return Some(format!(
                "rows of {} weights are not whole blocks of {block} (the GGUF ternary types need them)",
                t.shape.last().copied().unwrap_or(0)
            ));
        }
        let included = if self.include.is_empty() {
            name.ends_with("weight")
        } else {
            self.include.iter().any(|r| r.is_match(name))
        };
        if !included {
            return Some(if self.include.is_empty() {
                "not a weight".into()
            } else {
                "not matched by --include".into()
            });
        }
        self.exclude
            .iter()
            .find(|(r, _)| r.is_match(name))
            .map(|(_, why)| why.clone())
    }
}

fn is_float(d: Dtype) -> bool {
    !matches!(
        d,
        Dtype::BOOL
            | Dtype::U8
            | Dtype::I8
            | Dtype::I16
            | Dtype::U16
            | Dtype::I32
            | Dtype::U32
            | Dtype::I64
            | Dtype::U64
    )
}

/// One output tensor: its bytes, or a packed matrix encoded to a dense float type row by
/// row as it is written (`dense`; `bytes` is then empty), so a dense target never holds the
/// whole output in memory.
pub(crate) struct Out {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) bytes: Vec<u8>,
    pub(crate) dense: Option<PackedI2>,
}

impl Out {
    /// A plain tensor written as stored.
    pub(crate) fn of(r: &RawTensor) -> Self {
        Out::bytes(r.dtype, r.shape.clone(), r.bytes.clone())
    }

    /// A tensor of these bytes.
    pub(crate) fn bytes(dtype: Dtype, shape: Vec<usize>, bytes: Vec<u8>) -> Self {
        Out {
            dtype,
            shape,
            bytes,
            dense: None,
        }
    }

    /// Bytes it takes in the file.
    pub(crate) fn len(&self) -> usize {
        match &self.dense {
            Some(p) => p.n() * p.k() * self.dtype.bitsize() / 8,
            None => self.bytes.len(),
        }
    }

    /// Writes its bytes to `w` (encoding a dense payload row by row, handed to `w` in chunks
    /// of about 1 MiB: one write call per row would cost a system call per row). Returns how
    /// many weights a 16-bit dense encoding rounded and the largest change (0s otherwise).
    fn write_to(&self, w: &mut dyn Write) -> std::io::Result<(usize, f32)> {
        const CHUNK: usize = 1 << 20;
        match &self.dense {
            Some(p) => {
                let mut chunk = Vec::with_capacity(CHUNK);
                let rounded = encode_dense(p, self.dtype, &mut |row: &[u8]| {
                    chunk.extend_from_slice(row);
                    if chunk.len() >= CHUNK {
                        w.write_all(&chunk)?;
                        chunk.clear();
                    }
                    Ok(())
                })?;
                w.write_all(&chunk)?;
                Ok(rounded)
            }
            None => w.write_all(&self.bytes).map(|()| (0, 0.0)),
        }
    }
}

/// Converts a model file of any supported format (safetensors, PyTorch, burn-ternary packed,
/// GGUF; recognised by content) into `options.target` at `output` (see the module docs for
/// what happens to each tensor). The file is written to a temporary name, synced and renamed:
/// an error leaves no partial output. `progress` is called with (tensors done, tensors total).
///
/// Errors: everything [`model_file::read`] reports; [`ImportError::NonFinite`] /
/// [`ImportError::OutOfRange`] for a chosen weight; [`ImportError::BadScale`] for a
/// `<weight>_scale` that does not fit its ternary weight; [`ImportError::Apply`] for a
/// `<weight>_scale` beside a chosen weight that is not ternary (ambiguous: re-quantizing
/// would drop the scale); [`ImportError::BadTensor`] for a name safetensors reserves, a
/// source metadata key equal to a packed tensor's name, or a tensor the target format cannot
/// hold (named, with why); [`ImportError::Io`].
pub fn convert(
    input: &Path,
    output: &Path,
    options: &ConvertOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<ConvertReport, ImportError> {
    let clock = Instant::now();
    let source = model_file::read(input, &options.import)?;
    let read_seconds = clock.elapsed().as_secs_f64();
    let source_ternary = source
        .tensors
        .values()
        .any(|t| matches!(t, Stored::Packed(_)));
    let chooser = Chooser::new(options, source_ternary)?;
    let mut tensors = source.tensors;
    let total = tensors.len();
    fn plain(t: &Stored) -> Option<&RawTensor> {
        match t {
            Stored::Plain(r) => Some(r),
            Stored::Packed(_) | Stored::Opaque(_) => None,
        }
    }
    // Decide first, so a scale folded into its weight is known before either is written.
    let chosen: BTreeSet<String> = tensors
        .iter()
        .filter(|(name, t)| plain(t).is_some_and(|r| chooser.reason(name, r).is_none()))
        .map(|(name, _)| name.clone())
        .collect();
    // Only weights with a `<name>_scale` beside them are decoded here (their values decide
    // whether the scale is folded in); every other chosen weight is decoded once, when it
    // is written, so at most one f32 copy of such a weight is alive at a time.
    let mut values = BTreeMap::new();
    let mut folded: BTreeMap<String, String> = BTreeMap::new();
    let mut given = BTreeMap::new();
    for name in &chosen {
        let scale_name = format!("{name}_scale");
        let Some(s) = tensors.get(&scale_name).and_then(plain) else {
            continue;
        };
        let t = plain(&tensors[name]).expect("chosen tensors are plain");
        let v = raw::to_f32(name, t)?;
        match super::first_non_ternary(&v) {
            Some((index, value)) => {
                return Err(ImportError::Apply {
                    tensor: name.clone(),
                    what: format!(
                        "{scale_name} exists but the weight is not ternary (value {value} at flat index {index}): \
                         re-quantizing it would drop that scale; --exclude it to keep both as they are"
                    ),
                });
            }
            None => {
                let s = scales_of(&scale_name, s, t.shape[0])?;
                folded.insert(scale_name.clone(), name.clone());
                given.insert(name.clone(), (s, Some(scale_name)));
                values.insert(name.clone(), v);
            }
        }
    }

    let mut file = ModelFile {
        tensors: BTreeMap::new(),
        metadata: source.metadata,
    };
    let mut reports = Vec::new();
    let (mut ternary_weights, mut quantize_seconds) = (0usize, 0f64);
    let names: Vec<String> = tensors.keys().cloned().collect();
    for (i, name) in names.into_iter().enumerate() {
        let stored = tensors.remove(&name).expect("listed above");
        let t = match stored {
            Stored::Packed(p) => {
                let numel = p.packed.n() * p.packed.k();
                reports.push(TensorReport {
                    name: name.clone(),
                    shape: p.info.shape.clone(),
                    source_dtype: p.info.source_dtype.clone(),
                    ternary: true,
                    action: Action::Carried {
                        from: p.info.source_dtype.clone(),
                    },
                    source_bytes: p.source_bytes,
                    f16_bytes: 2 * numel as u64,
                    output_bytes: 0,
                    note: None,
                });
                file.tensors.insert(name, Stored::Packed(p));
                progress(i + 1, total);
                continue;
            }
            Stored::Opaque(o) => {
                reports.push(TensorReport {
                    name: name.clone(),
                    shape: o.shape.clone(),
                    source_dtype: o.type_name.clone(),
                    ternary: false,
                    action: Action::Kept {
                        reason: format!("GGML {}: carried byte for byte", o.type_name),
                    },
                    source_bytes: o.bytes.len() as u64,
                    f16_bytes: 2 * o.shape.iter().product::<usize>() as u64,
                    output_bytes: 0,
                    note: None,
                });
                file.tensors.insert(name, Stored::Opaque(o));
                progress(i + 1, total);
                continue;
            }
            Stored::Plain(t) => t,
        };
        let numel = t.numel();
        let source_dtype = format!("{:?}", t.dtype);
        let source_bytes = t.bytes.len() as u64;
        let f16_bytes = if is_float(t.dtype) {
            2 * numel as u64
        } else {
            source_bytes
        };
        let mut report = TensorReport {
            name: name.clone(),
            shape: t.shape.clone(),
            source_dtype: source_dtype.clone(),
            ternary: false,
            action: Action::Quantized,
            source_bytes,
            f16_bytes,
            output_bytes: 0,
            note: None,
        };
        if let Some(weight) = folded.get(&name) {
            report.action = Action::FoldedScale {
                into: weight.clone(),
            };
        } else if chosen.contains(&name) {
            // Detection, packing and the f32 view of the bytes count as quantize time.
            let clock = Instant::now();
            let v: std::borrow::Cow<'_, [f32]> = match values.remove(&name) {
                Some(v) => v.into(),
                // Checked for NaN/±Inf below, where it matters: ternary rows cannot hold them.
                None => raw::f32_view_unchecked(&name, &t)?,
            };
            let (n, k) = (t.shape[0], numel / t.shape[0].max(1));
            // Values already in {-1, 0, 1} without a scale tensor keep magnitude 1; values that
            // are 0 or ±s in every row (a dequantized ternary export) keep exactly those scales.
            let mut detected = None;
            let given = given.remove(&name).or_else(|| {
                let (scales, codes) = ternary_rows(&v, n, k)?;
                detected = Some(codes);
                if scales.iter().all(|&s| s == 0.0 || s == 1.0) {
                    return Some((Scales::PerTensor(1.0), None));
                }
                report.note =
                    Some("values are 0 or ±s in each row: packed exactly with those scales".into());
                Some((granularity_of(scales, options.granularity), None))
            });
            // Detected rows hold finite values unless their one magnitude is ±Inf; everything
            // else is checked before it is quantized.
            let finite = given
                .as_ref()
                .is_some_and(|(s, _)| s.as_slice().iter().all(|v| v.is_finite()));
            if !finite {
                raw::check_finite(&name, &v)?;
            }
            let bad = |e: ternary_kernels::KernelError| ImportError::BadTensor {
                tensor: name.clone(),
                what: e.to_string(),
            };
            let (packed, info) = match given {
                Some((scales, scale_from)) => {
                    let granularity = scale_kind(&scales);
                    let p = match detected.take() {
                        // Already packed by the detection pass.
                        Some(rows) => PackedI2::from_packed_rows(n, k, scales, rows),
                        None => {
                            // The sign: the code of ±1 and of ±s alike (−0 is 0).
                            let codes: Vec<i8> = v
                                .iter()
                                .map(|&x| i8::from(x > 0.0) - i8::from(x < 0.0))
                                .collect();
                            PackedI2::from_ternary(&codes, n, k, scales)
                        }
                    }
                    .map_err(bad)?;
                    report.action = Action::Lossless {
                        scale_from: scale_from.clone(),
                    };
                    let info = PackedInfo {
                        format: FORMAT.into(),
                        shape: t.shape.clone(),
                        quantizer: "given".into(),
                        granularity,
                        source_dtype,
                        scale_from,
                    };
                    (p, info)
                }
                None => {
                    let p = PackedI2::quantize(&v, n, k, options.method, options.granularity)
                        .map_err(bad)?;
                    let info = PackedInfo {
                        format: FORMAT.into(),
                        shape: t.shape.clone(),
                        quantizer: method_name(options.method).into(),
                        granularity: granularity_name(options.granularity).into(),
                        source_dtype,
                        scale_from: None,
                    };
                    (p, info)
                }
            };
            quantize_seconds += clock.elapsed().as_secs_f64();
            ternary_weights += numel;
            report.ternary = true;
            file.tensors.insert(
                name.clone(),
                Stored::Packed(PackedTensor {
                    packed,
                    info,
                    source_bytes,
                }),
            );
        } else {
            report.action = Action::Kept {
                reason: chooser.reason(&name, &t).unwrap_or_else(|| "kept".into()),
            };
            file.tensors.insert(name.clone(), Stored::Plain(t));
        }
        reports.push(report);
        progress(i + 1, total);
    }

    let clock = Instant::now();
    let mut encode_seconds = 0.0;
    let (sizes, notes) = match options.target {
        Target::Packed => (write_packed(output, &file)?, BTreeMap::new()),
        Target::Gguf(ty) => {
            let (sizes, notes) = super::gguf::write(output, &file, ty)?;
            let notes = notes.into_iter().map(|n| (n.tensor, n.what)).collect();
            (sizes, notes)
        }
        Target::Dense(dtype) => {
            let (sizes, notes, seconds) = write_dense(output, &file, dtype)?;
            encode_seconds = seconds;
            (sizes, notes)
        }
        Target::HfBitnet(class) => super::hf_bitnet::write(output, &file, class)?,
    };
    let write_seconds = clock.elapsed().as_secs_f64();
    for r in &mut reports {
        r.output_bytes = sizes.get(&r.name).copied().unwrap_or(0);
        if let Some(n) = notes.get(&r.name) {
            r.note = Some(match r.note.take() {
                Some(earlier) => format!("{earlier}; {n}"),
                None => n.clone(),
            });
        }
    }
    let written = if output.is_dir() {
        output.join("model.safetensors")
    } else {
        output.to_path_buf()
    };
    let file_bytes = std::fs::metadata(&written)
        .map_err(|source| ImportError::Io {
            path: output.to_path_buf(),
            source,
        })?
        .len();
    Ok(ConvertReport {
        tensors: reports,
        file_bytes,
        ternary_weights,
        quantize_seconds,
        read_seconds,
        write_seconds,
        encode_seconds,
    })
}

/// Writes burn-ternary's packed safetensors: packed tensors as `U8` serialized matrices with
/// a [`PackedInfo`] metadata entry each, everything else as stored. Returns each tensor's
/// bytes in the file.
fn write_packed(output: &Path, file: &ModelFile) -> Result<BTreeMap<String, u64>, ImportError> {
    let mut out = BTreeMap::new();
    let mut meta = file.metadata.clone();
    for (name, t) in &file.tensors {
        match t {
            Stored::Packed(p) => {
                if meta.contains_key(name) {
                    return Err(ImportError::BadTensor {
                        tensor: name.clone(),
                        what: "the source's metadata has an entry of this name; packing the tensor would overwrite it".into(),
                    });
                }
                meta.insert(
                    name.clone(),
                    serde_json::to_string(&p.info).expect("plain struct"),
                );
                let bytes = p.packed.to_bytes();
                out.insert(
                    name.clone(),
                    Out::bytes(Dtype::U8, vec![bytes.len()], bytes),
                );
            }
            Stored::Plain(r) => {
                out.insert(name.clone(), Out::of(r));
            }
            Stored::Opaque(o) => {
                if meta.contains_key(name) {
                    return Err(ImportError::BadTensor {
                        tensor: name.clone(),
                        what: "the source's metadata has an entry of this name; recording the tensor's GGML type would overwrite it".into(),
                    });
                }
                let info = model_file::OpaqueInfo {
                    format: model_file::OPAQUE_FORMAT.into(),
                    ggml_type: o.type_name.clone(),
                    type_id: o.type_id,
                    shape: o.shape.clone(),
                };
                meta.insert(
                    name.clone(),
                    serde_json::to_string(&info).expect("plain struct"),
                );
                out.insert(
                    name.clone(),
                    Out::bytes(Dtype::U8, vec![o.bytes.len()], o.bytes.clone()),
                );
            }
        }
    }
    let sizes = out
        .iter()
        .map(|(k, o)| (k.clone(), o.len() as u64))
        .collect();
    write_file_atomically(output, |w| write_safetensors(w, &out, &meta).map(|_| ()))?;
    Ok(sizes)
}

/// Writes plain safetensors with every packed tensor dequantized to `dtype` (F32, F16 or
/// BF16), in its original shape. Returns each tensor's bytes and, for 16-bit targets, a note
/// on every tensor whose effective weights rounding changed, and the seconds spent decoding
/// packed tensors.
#[allow(clippy::type_complexity)]
fn write_dense(
    output: &Path,
    file: &ModelFile,
    dtype: Dtype,
) -> Result<(BTreeMap<String, u64>, BTreeMap<String, String>, f64), ImportError> {
    let mut out = BTreeMap::new();
    // GGUF key/values stay in the metadata: a later conversion back to GGUF restores them.
    let meta = &file.metadata;
    for (name, t) in &file.tensors {
        let o = match t {
            Stored::Packed(p) => {
                if !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                    return Err(ImportError::BadTensor {
                        tensor: name.clone(),
                        what: format!("{dtype:?} is not a dense float target (F32, F16, BF16)"),
                    });
                }
                // Encoded while the file is written; the rounding is counted on the way.
                Out {
                    dtype,
                    shape: p.info.shape.clone(),
                    bytes: Vec::new(),
                    dense: Some(p.packed.clone()),
                }
            }
            Stored::Plain(r) => Out::of(r),
            Stored::Opaque(o) => return Err(opaque_refused(name, o)),
        };
        out.insert(name.clone(), o);
    }
    let sizes = out
        .iter()
        .map(|(k, o)| (k.clone(), o.len() as u64))
        .collect();
    // The rows are encoded as they are written: the time outside the writer's own calls is
    // the encoding.
    let (mut io, mut written, mut rounded) = (0.0, 0.0, BTreeMap::new());
    write_file_atomically(output, |w| {
        let clock = Instant::now();
        let mut timed = TimedWriter {
            inner: w,
            seconds: &mut io,
        };
        rounded = write_safetensors(&mut timed, &out, meta)?;
        written = clock.elapsed().as_secs_f64();
        Ok(())
    })?;
    let notes = rounded
        .into_iter()
        .map(|(name, (changed, max_abs))| {
            let note =
                format!("{changed} weight(s) rounded to {dtype:?} (largest change {max_abs:.2e})");
            (name, note)
        })
        .collect();
    Ok((sizes, notes, (written - io).max(0.0)))
}

/// The refusal for a carried GGML tensor in a target that would need its values.
pub(crate) fn opaque_refused(name: &str, o: &model_file::OpaqueTensor) -> ImportError {
    ImportError::BadTensor {
        tensor: name.to_string(),
        what: format!(
            "GGML type {} is carried byte for byte, not decoded: write GGUF or packed safetensors to keep it",
            o.type_name
        ),
    }
}

/// A packed matrix's effective weights (`code × scale`) as little-endian `dtype` bytes
/// (F32, F16 or BF16), row by row, with how many values the 16-bit types rounded and the
/// largest change; `None` for another dtype.
#[allow(clippy::type_complexity)] // an optional row sink
fn encode_dense(
    p: &PackedI2,
    dtype: Dtype,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<(usize, f32)> {
    let width = if dtype == Dtype::F32 { 4 } else { 2 };
    let (n, k) = (p.n(), p.k());
    if k == 0 {
        return Ok((0, 0.0));
    }
    // Every weight is −s, 0 or +s for its row's (group's) scale s ≥ 0, so its dense bytes
    // come from a three-entry table per scale, and f16/bf16 rounding changes a weight exactly
    // when it changes s (round-to-nearest is symmetric; 0 is exact). The `I2` layout gives 32
    // consecutive columns per bit pair of a block's 32 bytes, and a scale group (64 columns or
    // more) never splits them.
    // Code 0 is `0 · s`: +0.0, or −0.0 for a scale of −0.0, as `dequantize` gives it.
    let table = |s: f32| -> ([[u8; 4]; 4], f32) {
        let zero = 0.0 * s;
        let (neg, mid, pos, back) = match dtype {
            Dtype::F16 => {
                let h = half::f16::from_f32(s);
                let z = u32::from(half::f16::from_f32(zero).to_bits());
                (
                    u32::from((-h).to_bits()),
                    z,
                    u32::from(h.to_bits()),
                    h.to_f32(),
                )
            }
            Dtype::BF16 => {
                let h = half::bf16::from_f32(s);
                let z = u32::from(half::bf16::from_f32(zero).to_bits());
                (
                    u32::from((-h).to_bits()),
                    z,
                    u32::from(h.to_bits()),
                    h.to_f32(),
                )
            }
            _ => ((-s).to_bits(), zero.to_bits(), s.to_bits(), s),
        };
        let change = (s - back).abs();
        // Codes 0, 1, 2 (weights −1, 0, +1); a valid matrix has no code 3.
        (
            [
                neg.to_le_bytes(),
                mid.to_le_bytes(),
                pos.to_le_bytes(),
                [0; 4],
            ],
            change,
        )
    };
    let run = p.scales().group_size().unwrap_or(k);
    // One row's bytes, reused: the output is never held whole.
    let mut dst = vec![0u8; k * width];
    let (mut changed, mut max_abs) = (0usize, 0f32);
    for r in 0..n {
        let row = p.row(r);
        let mut group = usize::MAX;
        let (mut lut, mut change) = ([[0u8; 4]; 4], 0f32);
        for (b, bytes) in row.chunks_exact(32).enumerate() {
            for s in 0..4 {
                let c0 = b * 128 + 32 * s;
                if c0 >= k {
                    break;
                }
                let g = c0 / run;
                if g != group {
                    group = g;
                    (lut, change) = table(p.scales().at(r, c0, k));
                }
                let len = (k - c0).min(32);
                let nonzero = if width == 4 {
                    fill_slice::<4>(&mut dst[c0 * 4..(c0 + len) * 4], bytes, s, &lut)
                } else {
                    let lut2 = lut.map(|v| [v[0], v[1]]);
                    fill_slice::<2>(&mut dst[c0 * 2..(c0 + len) * 2], bytes, s, &lut2)
                };
                if width == 2 && change != 0.0 && nonzero > 0 {
                    changed += nonzero;
                    max_abs = if change > max_abs { change } else { max_abs };
                }
            }
        }
        sink(&dst)?;
    }
    Ok((changed, max_abs))
}

/// A writer that adds the seconds spent in its inner writer's calls to `seconds`.
struct TimedWriter<'a> {
    inner: &'a mut dyn Write,
    seconds: &'a mut f64,
}

impl Write for TimedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let clock = Instant::now();
        let n = self.inner.write(buf);
        *self.seconds += clock.elapsed().as_secs_f64();
        n
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let clock = Instant::now();
        let r = self.inner.write_all(buf);
        *self.seconds += clock.elapsed().as_secs_f64();
        r
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let clock = Instant::now();
        let r = self.inner.flush();
        *self.seconds += clock.elapsed().as_secs_f64();
        r
    }
}

/// Writes the `W`-byte values of one 32-column slice (bit pair `s` of a block's `bytes`) from
/// `lut` (indexed by code); returns how many are non-zero. Fixed-size copies, so each value is
/// one store.
#[inline]
fn fill_slice<const W: usize>(dst: &mut [u8], bytes: &[u8], s: usize, lut: &[[u8; W]; 4]) -> usize {
    let mut nonzero = 0usize;
    for (d, &byte) in dst.chunks_exact_mut(W).zip(bytes) {
        let code = usize::from((byte >> (2 * s)) & 3);
        d.copy_from_slice(&lut[code]);
        nonzero += usize::from(code != 1);
    }
    nonzero
}

/// The scales of `n × k` values that are all 0 or ±s_r in each row `r` (`None` when a row
/// holds another magnitude), in the requested granularity — per tensor only when every row
/// agrees, since packing them exactly comes first. This is how a dequantized ternary weight
/// (a dense export, a GGUF `F32` fallback) is recognised and packed back without a change.
pub fn row_scaled_ternary(
    v: &[f32],
    n: usize,
    k: usize,
    granularity: Granularity,
) -> Option<Scales> {
    let (scales, _) = ternary_rows(v, n, k)?;
    Some(granularity_of(scales, granularity))
}

/// Per-row scales held at `granularity`: per tensor when requested and every row agrees.
fn granularity_of(scales: Vec<f32>, granularity: Granularity) -> Scales {
    let rows = Scales::PerRow(scales);
    match (granularity, rows.uniform()) {
        (Granularity::PerTensor, Some(s)) => Scales::PerTensor(s),
        _ => rows,
    }
}

/// When every row `r` of the `n × k` values holds only 0 and ±s_r: the scales `s_r` (0 for
/// an all-zero row) and the values' signs packed in the `I2` row layout (`n` rows of
/// `padded_k(k) / 4` bytes), from one pass per row while the row is in cache. Integer
/// compares on the bits without the sign (a u32 max and an all-of fold, both branch-free, so
/// they vectorize; an f32 max would not, its NaN rules make it order-dependent). NaN has
/// larger bits than any finite value, so a NaN row fails.
fn ternary_rows(v: &[f32], n: usize, k: usize) -> Option<(Vec<f32>, Vec<u8>)> {
    if k == 0 || v.len() != n * k {
        return None;
    }
    let row_bytes = ternary_kernels::format::i2::padded_k(k)? / 4;
    let mut scales = Vec::with_capacity(n);
    let mut data = vec![0u8; n * row_bytes];
    let mut codes = vec![0i8; k];
    for (row, dst) in v.chunks_exact(k).zip(data.chunks_exact_mut(row_bytes)) {
        let bits = row
            .iter()
            .fold(0u32, |m, x| m.max(x.to_bits() & 0x7fff_ffff));
        let mut ok = true;
        for (x, c) in row.iter().zip(codes.iter_mut()) {
            let a = x.to_bits() & 0x7fff_ffff;
            ok &= (a == 0) | (a == bits);
            // The sign: the code of ±s (−0 is 0).
            *c = i8::from(*x > 0.0) - i8::from(*x < 0.0);
        }
        if !ok {
            return None;
        }
        ternary_kernels::format::i2::pack_row_codes(dst, &codes).ok()?;
        scales.push(f32::from_bits(bits));
    }
    Some((scales, data))
}

/// The scales of a BitNet-style `<weight>_scale` tensor: 1 (per tensor) or `rows` (per
/// output channel) finite values ≥ 0.
fn scales_of(name: &str, t: &RawTensor, rows: usize) -> Result<Scales, ImportError> {
    if !t.is_quantizable_float() {
        return Err(ImportError::BadScale {
            tensor: name.to_string(),
            what: format!("dtype {:?} is not a float", t.dtype),
        });
    }
    let s = super::validate_scales(name, raw::to_f32(name, t)?, rows)?;
    Ok(if s.len() == 1 {
        Scales::PerTensor(s[0])
    } else {
        Scales::PerRow(s)
    })
}

/// Writes a safetensors file with tensors and metadata in sorted order (the `safetensors`
/// crate writes its metadata map in hash order, which would make identical conversions
/// differ byte-wise). Tensors are laid out by descending dtype alignment, then name, so
/// every tensor's data is aligned to its element size.
pub(crate) fn write_safetensors(
    w: &mut dyn Write,
    tensors: &BTreeMap<String, Out>,
    meta: &BTreeMap<String, String>,
) -> std::io::Result<BTreeMap<String, (usize, f32)>> {
    #[derive(Serialize)]
    struct Info<'a> {
        dtype: Dtype,
        shape: &'a [usize],
        data_offsets: (usize, usize),
    }
    let mut order: Vec<(&String, &Out)> = tensors.iter().collect();
    order.sort_by(|a, b| {
        b.1.dtype
            .bitsize()
            .cmp(&a.1.dtype.bitsize())
            .then(a.0.cmp(b.0))
    });
    let mut header = serde_json::Map::new();
    if !meta.is_empty() {
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(meta).expect("strings"),
        );
    }
    let mut offset = 0usize;
    for (name, t) in &order {
        if name.as_str() == "__metadata__" {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                Reserved((*name).clone()),
            ));
        }
        let info = Info {
            dtype: t.dtype,
            shape: &t.shape,
            data_offsets: (offset, offset + t.len()),
        };
        offset += t.len();
        header.insert((*name).clone(), serde_json::to_value(info).expect("plain"));
    }
    // serde_json's map is ordered by key (no `preserve_order`), so the header is canonical.
    let mut json = serde_json::to_vec(&header).expect("plain");
    json.resize(json.len().next_multiple_of(8), b' ');
    w.write_all(&(json.len() as u64).to_le_bytes())?;
    w.write_all(&json)?;
    let mut rounded = BTreeMap::new();
    for (name, t) in &order {
        let (changed, max_abs) = t.write_to(w)?;
        if changed > 0 {
            rounded.insert((*name).clone(), (changed, max_abs));
        }
    }
    Ok(rounded)
}

/// A tensor name the safetensors format reserves (carried through `io::Error` so the
/// caller can report it as a tensor error).
#[derive(Debug)]
struct Reserved(String);

impl std::fmt::Display for Reserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tensor name {} is reserved by the safetensors format",
            self.0
        )
    }
}

impl std::error::Error for Reserved {}

/// Writes a file through `write` to a temporary name beside `output`, syncs it and renames it
/// into place; on any error the temporary file is removed and `output` is untouched.
pub(crate) fn write_file_atomically(
    output: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), ImportError> {
    // A symlink is written through (its target is replaced); a device, FIFO or directory at
    // the path is never replaced by a regular file; a read-only file is not overwritten.
    let resolved;
    let output = match std::fs::symlink_metadata(output) {
        Ok(m) if m.file_type().is_symlink() => {
            resolved = std::fs::canonicalize(output).map_err(|source| ImportError::Io {
                path: output.to_path_buf(),
                source,
            })?;
            resolved.as_path()
        }
        _ => output,
    };
    if let Ok(m) = std::fs::metadata(output) {
        let refuse = |what: &str| ImportError::Io {
            path: output.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, what.to_string()),
        };
        if !m.is_file() {
            return Err(refuse(
                "exists and is not a regular file; refusing to replace it",
            ));
        }
        if m.permissions().readonly() {
            return Err(refuse("is read-only; refusing to overwrite it"));
        }
    }
    let tmp = temp_path(output);
    let io = |source: std::io::Error| match source
        .get_ref()
        .and_then(|e| e.downcast_ref::<Reserved>())
    {
        Some(Reserved(name)) => ImportError::BadTensor {
            tensor: name.clone(),
            what: "this name is reserved by the safetensors format".into(),
        },
        None => ImportError::Io {
            path: output.to_path_buf(),
            source,
        },
    };
    let written = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, output)
    })()
    .map_err(io);
    if written.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    written
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

/// The packed-tensor entry of `name` in a file's metadata, if it has one: `Ok(None)` for a
/// plain tensor, an error when the entry carries our format tag but does not parse.
pub(crate) fn packed_info(
    path: &Path,
    meta: &BTreeMap<String, String>,
    name: &str,
    dtype: Dtype,
) -> Result<Option<PackedInfo>, ImportError> {
    let Some(json) = meta.get(name).filter(|_| dtype == Dtype::U8) else {
        return Ok(None);
    };
    // Files written before the format tag moved into each entry carried it as a file key.
    let legacy = meta.get("format").is_some_and(|f| f == FORMAT);
    match serde_json::from_str::<PackedInfo>(json) {
        Ok(info) if info.format == FORMAT || (info.format.is_empty() && legacy) => Ok(Some(info)),
        Ok(_) => Ok(None),
        Err(e) if json.contains(FORMAT) || legacy => Err(ImportError::Format {
            path: path.to_path_buf(),
            what: format!("metadata of packed tensor {name}: {e}"),
        }),
        Err(_) => Ok(None),
    }
}

/// Decodes and validates a packed tensor against its recorded shape.
pub(crate) fn decode_packed(
    name: &str,
    info: &PackedInfo,
    data: &[u8],
) -> Result<PackedI2, ImportError> {
    let packed = PackedI2::from_bytes(data).map_err(|e| ImportError::BadTensor {
        tensor: name.to_string(),
        what: e.to_string(),
    })?;
    let numel = info.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let n = info.shape.first().copied().unwrap_or(0);
    let k = numel.map(|e| e / n.max(1));
    if info.shape.len() < 2 || (Some(packed.n()), Some(packed.k())) != (Some(n), k) {
        return Err(ImportError::ShapeMismatch {
            tensor: name.to_string(),
            expected: info.shape.clone(),
            found: vec![packed.n(), packed.k()],
        });
    }
    Ok(packed)
}

/// Lists the tensors of a packed file (validating every packed tensor completely), or of any
/// safetensors / PyTorch checkpoint (recognised by content), in name order.
pub fn inspect(path: &Path) -> Result<Vec<InspectedTensor>, ImportError> {
    if path.is_dir() {
        let file = model_file::read(path, &ImportOptions::default())?;
        return Ok(file
            .tensors
            .into_iter()
            .map(|(name, t)| match t {
                Stored::Packed(p) => {
                    let numel: usize = p.info.shape.iter().product();
                    InspectedTensor {
                        name,
                        format: p.info.source_dtype.clone(),
                        bits_per_weight: 8.0 * p.source_bytes as f64 / numel.max(1) as f64,
                        scale_kind: scale_kind(p.packed.scales()),
                        bytes: p.source_bytes,
                        shape: p.info.shape,
                    }
                }
                Stored::Plain(r) => InspectedTensor {
                    name,
                    format: format!("{:?}", r.dtype),
                    bits_per_weight: f64::from(r.dtype.bitsize() as u32),
                    scale_kind: String::new(),
                    bytes: r.bytes.len() as u64,
                    shape: r.shape,
                },
                Stored::Opaque(o) => InspectedTensor {
                    name,
                    format: format!("GGML {}", o.type_name),
                    bits_per_weight: 8.0 * o.bytes.len() as f64
                        / o.shape.iter().product::<usize>().max(1) as f64,
                    scale_kind: String::new(),
                    bytes: o.bytes.len() as u64,
                    shape: o.shape,
                },
            })
            .collect());
    }
    if model_file::detect(path)? == model_file::FileFormat::Gguf {
        return super::gguf::inspect(path);
    }
    let tensors = raw::read_checkpoint(path, &ImportOptions::default())?;
    let meta = raw::metadata(path)?;
    let mut out = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let stored = t.bytes.len() as u64;
        let entry = match packed_info(path, &meta, &name, t.dtype)? {
            Some(info) => {
                let packed = decode_packed(&name, &info, &t.bytes)?;
                let numel: usize = info.shape.iter().product();
                InspectedTensor {
                    name,
                    shape: info.shape,
                    format: "i2 (2-bit ternary)".into(),
                    bits_per_weight: 8.0 * stored as f64 / numel.max(1) as f64,
                    scale_kind: scale_kind(packed.scales()),
                    bytes: stored,
                }
            }
            None => InspectedTensor {
                bits_per_weight: f64::from(t.dtype.bitsize() as u32),
                format: format!("{:?}", t.dtype),
                shape: t.shape,
                name,
                scale_kind: String::new(),
                bytes: stored,
            },
        };
        out.push(entry);
    }
    Ok(out)
}

/// Reads a packed tensor of a converted file back: its metadata and the packed matrix
/// (original shape flattened to `[out, rest]`), e.g. to load it into a model. Errors:
/// [`ImportError::Missing`] when `name` is not a packed tensor of the file, and the
/// errors of [`inspect`].
pub fn read_packed(path: &Path, name: &str) -> Result<(PackedInfo, PackedI2), ImportError> {
    let meta = raw::metadata(path)?;
    let tensors = raw::read_checkpoint(path, &ImportOptions::default())?;
    let missing = || ImportError::Missing {
        keys: vec![name.to_string()],
    };
    let t = tensors.get(name).ok_or_else(missing)?;
    let info = packed_info(path, &meta, name, t.dtype)?.ok_or_else(missing)?;
    let packed = decode_packed(name, &info, &t.bytes)?;
    Ok((info, packed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_scaled_values_are_recognised_with_their_signs_and_nothing_else() {
        let s = 0.37f32;
        // Rows: ±s with zeros and a −0; all zeros; ±1.
        let v = [s, -s, 0.0, -0.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0, 0.0, 1.0];
        let (scales, rows) = ternary_rows(&v, 3, 4).unwrap();
        assert_eq!(scales, vec![s, 0.0, 1.0]);
        let p = PackedI2::from_packed_rows(3, 4, Scales::PerRow(scales), rows).unwrap();
        assert_eq!(p.to_ternary(), vec![1, -1, 0, 0, 0, 0, 0, 0, 1, -1, 0, 1]);
        assert_eq!(
            row_scaled_ternary(&v, 3, 4, Granularity::PerTensor),
            Some(Scales::PerRow(vec![s, 0.0, 1.0]))
        );
        let same = [s, -s, 0.0, s];
        assert_eq!(
            row_scaled_ternary(&same, 2, 2, Granularity::PerTensor),
            Some(Scales::PerTensor(s))
        );
        // A second magnitude, a NaN, an infinity beside a finite value: not ternary.
        for bad in [
            [s, 0.5 * s, 0.0, 0.0],
            [s, f32::NAN, 0.0, 0.0],
            [s, f32::INFINITY, 0.0, 0.0],
        ] {
            assert!(ternary_rows(&bad, 1, 4).is_none(), "{bad:?}");
        }
        assert!(
            ternary_rows(&v, 2, 4).is_none(),
            "a length that is not n · k"
        );
        assert!(ternary_rows(&[], 0, 0).is_none(), "k = 0");
    }
}
