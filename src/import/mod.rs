//! Bringing models trained elsewhere in: PyTorch (`.pt`/`.pth` state dicts) and safetensors
//! checkpoints into Burn models made of burn-ternary modules and stock Burn layers.
//!
//! Files are read by [`raw`] (container recognised by content, names kept exactly, our own
//! key remapping that refuses collisions); every tensor is checked (floats finite and within
//! f32's range) before anything is applied; weights are laid out for Burn (PyTorch's `[out, in]` linear weights transposed for `nn::Linear` and
//! [`TernaryLinear`](crate::nn::TernaryLinear) alike, normalization `weight`/`bias` renamed); and
//! the tensors go into a *copy* of the model, returned only when every parameter loaded — a
//! model is never left half-loaded.
//!
//! Three entry points:
//! - [`load`]: f32 weights into the model as it is (training-state ternary layers keep latent
//!   f32 weights, e.g. to fine-tune with QAT);
//! - [`load_packed`]: the same, then quantize on load — every ternary layer packed with its
//!   configured quantizer and granularity, or, when the file already stores it ternary (GGUF,
//!   Hugging Face BitNet, packed safetensors), taking its codes and scales as stored;
//! - [`load_ternary`]: checkpoints that are already ternary (BitNet style: `<layer>.weight` in
//!   {−1, 0, +1} and `<layer>.weight_scale`), packed without loss.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{DType, Tensor, TensorData};
use burn_store::burn_pack::Tensor as PackTensor;
use burn_store::{ModuleAdapter, ModuleContext, ModuleSnapshot, PyTorchToBurnAdapter, bridge};
use thiserror::Error;

use burn::module::{ModuleVisitor, Param};
use burn::tensor::Int;
use ternary_kernels::PackedI2;

use crate::error::TernaryError;
use crate::nn::{freeze_with, freeze_with_scales, pack, scheme_from_codes, to_tensors};
use crate::quant::{Granularity, TernaryQuantizer};

pub mod burn_q2s;
pub mod container;
pub mod gguf;
pub mod hf_bitnet;
pub mod model_file;
pub mod raw;

/// Why an import failed. Every variant names the file, tensor or pattern involved.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a readable checkpoint (truncated, bad header, wrong format).
    #[error("{path}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A key-remapping pattern is not a valid regular expression.
    #[error("key remapping pattern {pattern:?}: {what}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        what: String,
    },
    /// A tensor's data cannot be decoded (unsupported dtype, short data).
    #[error("tensor {tensor}: {what}")]
    BadTensor {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        what: String,
    },
    /// A float tensor holds NaN or ±Inf.
    #[error("tensor {tensor}: non-finite value {value} at flat index {index}")]
    NonFinite {
        /// The tensor.
        tensor: String,
        /// Flat (row-major) index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A finite value of a wider float type (F64) that does not fit f32: converting it would
    /// silently turn it into ±Inf.
    #[error("tensor {tensor}: value {value:e} at flat index {index} does not fit f32 (largest finite f32 is {max:e})", max = f32::MAX)]
    OutOfRange {
        /// The tensor.
        tensor: String,
        /// Flat (row-major) index of the first such value.
        index: usize,
        /// The value as stored.
        value: f64,
    },
    /// Key remapping (or any renaming) would give two tensors the same name; one of them
    /// would be lost.
    #[error("tensors {} and {} would both be named {target}", sources[0], sources[1])]
    NameCollision {
        /// The name both would get.
        target: String,
        /// The two source names, in sorted order.
        sources: [String; 2],
    },
    /// A tensor expected to hold {−1, 0, +1} holds something else.
    #[error("tensor {tensor}: value {value} at flat index {index} is not ternary (-1, 0, 1)")]
    NotTernary {
        /// The tensor.
        tensor: String,
        /// Flat index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// Checkpoint tensors that no parameter of the model takes (a misnamed or missing layer,
    /// a bias the model does not have). [`ImportOptions::allow_unused`] accepts them.
    #[error("not used by the model: {} (check names and bias settings, or allow_unused)", keys.join(", "))]
    Unused {
        /// Checkpoint keys.
        keys: Vec<String>,
    },
    /// Parameters of the model that the checkpoint does not provide.
    #[error("missing from the checkpoint: {}", keys.join(", "))]
    Missing {
        /// Model parameter paths.
        keys: Vec<String>,
    },
    /// A tensor's shape does not match the model parameter.
    #[error("tensor {tensor}: shape {found:?} in the checkpoint, the model expects {expected:?}")]
    ShapeMismatch {
        /// The tensor.
        tensor: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The checkpoint's shape.
        found: Vec<usize>,
    },
    /// Any other refusal to apply a tensor.
    #[error("tensor {tensor}: {what}")]
    Apply {
        /// The tensor.
        tensor: String,
        /// Why.
        what: String,
    },
    /// A scale tensor does not fit its layer (wrong length, non-positive or non-finite).
    #[error("tensor {tensor}: {what}")]
    BadScale {
        /// The tensor.
        tensor: String,
        /// Why.
        what: String,
    },
    /// Packing failed.
    #[error(transparent)]
    Pack(#[from] TernaryError),
}

impl ImportError {
    /// [`ImportError::BadTensor`] naming `tensor`.
    pub(crate) fn tensor(tensor: &str, what: impl std::fmt::Display) -> Self {
        ImportError::BadTensor {
            tensor: tensor.to_string(),
            what: what.to_string(),
        }
    }

    /// [`ImportError::Format`] naming `path`.
    pub(crate) fn format(path: &Path, what: impl std::fmt::Display) -> Self {
        ImportError::Format {
            path: path.to_path_buf(),
            what: what.to_string(),
        }
    }
}

/// How to read a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub(crate) remap: Vec<(String, String)>,
    pub(crate) top_level_key: Option<String>,
    pub(crate) allow_unused: bool,
}

impl ImportOptions {
    /// Default options: keys used as they are.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames keys matching the regular expression `from` to `to` (`$1` etc. refer to
    /// groups), applied in the order added, e.g. `("^encoder\\.(.*)", "$1")`.
    pub fn with_key_remapping(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.remap.push((from.into(), to.into()));
        self
    }

    /// Accepts checkpoint tensors that no model parameter takes (by default they are an
    /// [`ImportError::Unused`]: a bias or layer silently dropped changes the outputs).
    /// PyTorch's `*.num_batches_tracked` counters are always ignored.
    pub fn allow_unused(mut self) -> Self {
        self.allow_unused = true;
        self
    }

    /// Reads the state dict under this key of a PyTorch checkpoint (e.g. `"state_dict"`).
    pub fn with_top_level_key(mut self, key: impl Into<String>) -> Self {
        self.top_level_key = Some(key.into());
        self
    }

    pub(crate) fn compiled_patterns(&self) -> Result<Vec<(regex::Regex, String)>, ImportError> {
        self.remap
            .iter()
            .map(|(from, to)| {
                regex::Regex::new(from)
                    .map(|re| (re, to.clone()))
                    .map_err(|e| ImportError::BadPattern {
                        pattern: from.clone(),
                        what: e.to_string(),
                    })
            })
            .collect()
    }
}

/// Runs third-party parsing, turning a panic inside it into a format error: a hostile file
/// must not take the program down even if a dependency has a bug.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, String>) -> Result<T, ImportError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(what)) => Err(ImportError::Format {
            path: path.to_path_buf(),
            what,
        }),
        Err(_) => Err(ImportError::Format {
            path: path.to_path_buf(),
            what: "the reader failed on malformed data".into(),
        }),
    }
}

/// Every tensor of a checkpoint, after key remapping: floats converted to f32 and checked
/// (finite, and within f32's range); integer tensors as stored. Names are kept exactly as
/// stored (see [`raw`]).
pub fn read_tensors(
    path: &Path,
    options: &ImportOptions,
) -> Result<BTreeMap<String, TensorData>, ImportError> {
    raw::read_checkpoint(path, options)?
        .into_iter()
        .map(|(name, t)| {
            let data = if t.is_quantizable_float() {
                let shape = t.shape.clone();
                TensorData::new(raw::to_f32(&name, &t)?, shape)
            } else {
                raw::to_tensor_data(&name, t)?
            };
            Ok((name, data))
        })
        .collect()
}

/// Every tensor of a checkpoint, after key remapping, in its stored dtype. The container is
/// recognised by content and names are kept exactly as stored (see [`raw`]).
pub fn read_raw(
    path: &Path,
    options: &ImportOptions,
) -> Result<BTreeMap<String, TensorData>, ImportError> {
    raw::read_checkpoint(path, options)?
        .into_iter()
        .map(|(name, t)| {
            let data = raw::to_tensor_data(&name, t)?;
            Ok((name, data))
        })
        .collect()
}

/// PyTorch → Burn layout for stock layers and ours: `TernaryLinear` weights are `[in, out]`
/// like `nn::Linear`, so they get the same transpose.
#[derive(Debug, Clone, Default)]
struct TernaryPyTorchAdapter;

impl ModuleAdapter for TernaryPyTorchAdapter {
    fn adapt(&self, tensor: PackTensor, ctx: ModuleContext<'_>) -> PackTensor {
        if ctx.module_type() == Some("Struct:TernaryLinear") {
            let as_linear = ["Struct:Linear".to_string()];
            return PyTorchToBurnAdapter.adapt(tensor, ModuleContext::new(&as_linear));
        }
        PyTorchToBurnAdapter.adapt(tensor, ctx)
    }

    fn get_alternative_param_name(&self, param_name: &str, container_type: &str) -> Option<String> {
        PyTorchToBurnAdapter.get_alternative_param_name(param_name, container_type)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Parameters of ternary layers that no checkpoint holds: they are filled by packing.
fn expected_absent(path: &str, containers: &str) -> bool {
    let param = path.rsplit('.').next().unwrap_or(path);
    let ternary = containers.ends_with("Struct:TernaryLinear")
        || containers.ends_with("Struct:TernaryConv2d");
    ternary && matches!(param, "scheme" | "packed" | "scales")
}

/// Applies `tensors` to a copy of `model`.
fn apply<M: Module>(
    model: &M,
    tensors: BTreeMap<String, TensorData>,
    options: &ImportOptions,
    packed_elsewhere: &HashMap<String, (Tensor<2, Int>, Tensor<1>)>,
) -> Result<M, ImportError> {
    let tensors: Vec<_> = tensors
        .into_iter()
        .map(|(name, data)| bridge::from_data(data, name, None))
        .collect();
    let mut copy = model.clone();
    let result = copy.apply(tensors, None, Some(Box::new(TernaryPyTorchAdapter)), true);
    if let Some(e) = result.errors.into_iter().next() {
        return Err(match e {
            burn_store::ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => ImportError::ShapeMismatch {
                tensor: path,
                expected: expected.to_vec(),
                found: found.to_vec(),
            },
            other => ImportError::Apply {
                tensor: match &other {
                    burn_store::ApplyError::DTypeMismatch { path, .. }
                    | burn_store::ApplyError::AdapterError { path, .. }
                    | burn_store::ApplyError::LoadError { path, .. } => path.clone(),
                    burn_store::ApplyError::ShapeMismatch { path, .. } => path.clone(),
                },
                what: other.to_string(),
            },
        });
    }
    let missing: Vec<String> = result
        .missing
        .into_iter()
        .filter(|(path, containers)| !expected_absent(path, containers))
        .filter(|(path, _)| {
            // Weights of layers quantized straight from the checkpoint were taken already.
            !path
                .strip_suffix(".weight")
                .is_some_and(|layer| packed_elsewhere.contains_key(layer))
        })
        .map(|(path, _)| path)
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::Missing { keys: missing });
    }
    let unused: Vec<String> = result
        .unused
        .into_iter()
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .collect();
    if !unused.is_empty() && !options.allow_unused {
        return Err(ImportError::Unused { keys: unused });
    }
    Ok(copy)
}

/// Loads a checkpoint's f32 weights into a copy of `model` (see the module docs). Ternary
/// layers must be in their training state: their latent weights receive the f32 values.
pub fn load<M: Module>(model: &M, path: &Path, options: &ImportOptions) -> Result<M, ImportError> {
    apply(
        model,
        read_tensors(path, options)?,
        options,
        &HashMap::new(),
    )
}

/// Quantize on load: every ternary layer of `model` is packed from the checkpoint, and every
/// other parameter is loaded as by [`load`].
///
/// - A layer whose weight the file stores **already ternary** (GGUF `TQ1_0`/`TQ2_0`/`I2_S`, a
///   Hugging Face BitNet directory, packed safetensors written by `burn-ternary`) receives
///   its codes and scales exactly as stored: nothing is quantized again. The scales are held
///   at the layer's configured [`Granularity`] only when that loses nothing (all of the
///   file's scales inside one of the layer's scale groups are bit-identical: a per-tensor
///   layer takes a TQ2_0 tensor whose block scales all agree; a `PerGroup { group_size: 64 }`
///   layer takes 256-column TQ blocks by repeating each scale). Otherwise the error names the
///   tensor and the layer's granularity to configure instead (`PerGroup { group_size: 256 }`
///   for ggml's TQ blocks).
/// - A layer whose weight is stored as floats is quantized with its own quantizer and
///   granularity by the kernel crate's fused quantize-and-pack (no latent copy, no
///   transpose); per-group layers by [`ternarize`](crate::quant::ternarize)'s group formula.
///   The result equals `freeze(load(..))` up to the summation order of the means.
///
/// Packed tensors that belong to no ternary layer are loaded as their exact f32 weights
/// (`code × scale`). A GGUF tensor of a type burn-ternary does not decode (`Q4_K`, ...) is an
/// [`ImportError::BadTensor`] naming the tensor and its type when the model has a parameter
/// for it, and an unused tensor otherwise ([`ImportOptions::allow_unused`] accepts it).
pub fn load_packed<M: Module>(
    model: &M,
    path: &Path,
    options: &ImportOptions,
) -> Result<M, ImportError> {
    let file = model_file::read(path, options)?;
    let mut stored_packed = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    // GGUF tensors of types not decoded (Q4_K, ...): an error only if the model takes them.
    let mut opaque = BTreeMap::new();
    for (name, stored) in file.tensors {
        match stored {
            model_file::Stored::Packed(p) => {
                stored_packed.insert(name, p);
            }
            model_file::Stored::Plain(t) => {
                let data = if t.is_quantizable_float() {
                    let shape = t.shape.clone();
                    TensorData::new(raw::to_f32(&name, &t)?, shape)
                } else {
                    raw::to_tensor_data(&name, t)?
                };
                tensors.insert(name, data);
            }
            model_file::Stored::Opaque(o) => {
                opaque.insert(name, o);
            }
        }
    }
    let device = model_device(model)?;
    let mut finder = TernaryLayers::default();
    model.visit(&mut finder);
    let mut packed = HashMap::new();
    for layer in finder.layers {
        let key = format!("{}.weight", layer.path);
        // PyTorch layouts: linear [out, in] (our latent weight is [in, out]); conv filters
        // [out, in/groups, kh, kw] like ours.
        let expected: Vec<usize> = if layer.dims.len() == 2 {
            vec![layer.dims[1], layer.dims[0]]
        } else {
            layer.dims.clone()
        };
        let (n, k) = (expected[0], expected[1..].iter().product::<usize>());
        let (quantizer, granularity) = scheme_from_codes(&layer.scheme);
        if let Some(p) = stored_packed.remove(&key) {
            if (p.packed.n(), p.packed.k()) != (n, k) {
                return Err(ImportError::ShapeMismatch {
                    tensor: key,
                    expected,
                    found: p.info.shape.clone(),
                });
            }
            let scales = fit_scales(&key, &p.packed, granularity)?;
            let exact = PackedI2::from_packed_rows(n, k, scales, p.packed.data().to_vec())
                .map_err(|e| ImportError::tensor(&key, e))?;
            packed.insert(layer.path, to_tensors(&exact, &device));
            continue;
        }
        let Some(data) = tensors.get(&key) else {
            continue; // reported as missing by `apply`
        };
        if data.shape().to_vec() != expected {
            return Err(ImportError::ShapeMismatch {
                tensor: key,
                expected,
                found: data.shape().to_vec(),
            });
        }
        let values: &[f32] = data.as_slice().map_err(|e| ImportError::BadTensor {
            tensor: key.clone(),
            what: format!("{e:?}"),
        })?;
        let method = match quantizer {
            TernaryQuantizer::AbsMean => ternary_kernels::Method::AbsMean,
            TernaryQuantizer::Twn => ternary_kernels::Method::Twn,
        };
        let gran = match granularity {
            Granularity::PerTensor => Some(ternary_kernels::Granularity::PerTensor),
            Granularity::PerChannel => Some(ternary_kernels::Granularity::PerRow),
            Granularity::PerGroup { .. } => None,
        };
        let pair = match gran {
            Some(gran) => {
                let p = PackedI2::quantize(values, n, k, method, gran).map_err(|e| {
                    ImportError::BadTensor {
                        tensor: key.clone(),
                        what: e.to_string(),
                    }
                })?;
                to_tensors(&p, &device)
            }
            // Per group: the layers' own group formula, packed as `freeze` packs it (the
            // values were checked finite when they were read).
            None => {
                let w = Tensor::<2>::from_data(TensorData::new(values.to_vec(), [n, k]), &device);
                let (rows, s) = crate::quant::ternarize_for_packing(w, quantizer, granularity, 0);
                pack(rows, s, &key)?
            }
        };
        packed.insert(layer.path, pair);
        tensors.remove(&key);
    }
    // Packed tensors of other layers: their exact effective weights.
    for (name, p) in stored_packed {
        let shape = p.info.shape.clone();
        tensors.insert(name, TensorData::new(p.packed.dequantize(), shape));
    }
    let model = match apply(model, tensors, options, &packed) {
        Err(ImportError::Missing { keys }) if keys.iter().any(|k| opaque.contains_key(k)) => {
            let (name, o) = keys
                .iter()
                .find_map(|k| opaque.get_key_value(k))
                .expect("found above");
            return Err(ImportError::BadTensor {
                tensor: name.clone(),
                what: format!(
                    "ggml type {} (id {}) is carried by convert but not decoded: it cannot be loaded into a Burn model",
                    o.type_name, o.type_id
                ),
            });
        }
        other => other?,
    };
    if !opaque.is_empty() && !options.allow_unused {
        return Err(ImportError::Unused {
            keys: opaque.into_keys().collect(),
        });
    }
    Ok(freeze_with(model, HashMap::new(), packed)?)
}

/// The scales of a packed tensor read from a file, held at a layer's `granularity`: each of
/// the layer's scale groups takes the file's scale of its columns, which must be one value
/// (bit-identical) across the group, so nothing changes.
///
/// # Errors
/// [`ImportError::BadTensor`] naming the tensor, the row and columns where two of the file's
/// scales differ inside one of the layer's groups, and the granularity that holds them.
pub(crate) fn fit_scales(
    name: &str,
    p: &PackedI2,
    granularity: Granularity,
) -> Result<ternary_kernels::Scales, ImportError> {
    use ternary_kernels::Scales;
    let (n, k, file) = (p.n(), p.k(), p.scales());
    if let (Granularity::PerGroup { group_size }, Scales::PerGroup { group_size: g, .. }) =
        (granularity, file)
        && group_size == *g
    {
        return Ok(file.clone());
    }
    // Every scale boundary of every layout lies on a multiple of 64 columns.
    let step = ternary_kernels::format::GROUP_SIZES[0];
    let one = |r0: usize, r1: usize, c0: usize, c1: usize| -> Result<f32, ImportError> {
        let mut first: Option<f32> = None;
        for r in r0..r1 {
            for c in (c0..c1).step_by(step) {
                let v = file.at(r, c, k);
                match first {
                    None => first = Some(v),
                    Some(f) if f.to_bits() == v.to_bits() => {}
                    Some(f) => {
                        let needed = match file.group_size() {
                            Some(g) => format!("Granularity::PerGroup {{ group_size: {g} }}"),
                            None => "Granularity::PerChannel".into(),
                        };
                        return Err(ImportError::BadTensor {
                            tensor: name.to_string(),
                            what: format!(
                                "its {} scales differ inside one {granularity:?} scale of the layer (row {r}, column {c}: {v} vs {f}); configure the layer with {needed}",
                                file.kind_name()
                            ),
                        });
                    }
                }
            }
        }
        // A matrix without weights keeps its stored value, or 0.
        Ok(first.unwrap_or_else(|| file.as_slice().first().copied().unwrap_or(0.0)))
    };
    Ok(match granularity {
        Granularity::PerTensor => Scales::PerTensor(one(0, n, 0, k)?),
        Granularity::PerChannel => Scales::PerRow(
            (0..n)
                .map(|r| one(r, r + 1, 0, k))
                .collect::<Result<_, _>>()?,
        ),
        Granularity::PerGroup { group_size } => {
            let groups = k.div_ceil(group_size);
            let mut scales = Vec::with_capacity(n * groups);
            for r in 0..n {
                for j in 0..groups {
                    scales.push(one(
                        r,
                        r + 1,
                        j * group_size,
                        ((j + 1) * group_size).min(k),
                    )?);
                }
            }
            Scales::PerGroup { group_size, scales }
        }
    })
}

fn model_device<M: Module>(model: &M) -> Result<burn::tensor::Device, ImportError> {
    model
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| ImportError::Apply {
            tensor: String::new(),
            what: "the model has no parameters".into(),
        })
}

/// A training-state ternary layer of a model: its checkpoint path (no enum variant names),
/// scheme codes and latent weight dims.
struct TernaryLayer {
    path: String,
    scheme: Vec<i64>,
    dims: Vec<usize>,
}

#[derive(Default)]
struct TernaryLayers {
    path: Vec<(String, String)>,
    scheme: Option<Vec<i64>>,
    layers: Vec<TernaryLayer>,
}

impl TernaryLayers {
    /// The field being visited when it belongs to a ternary layer.
    fn ternary_field(&self) -> Option<&str> {
        let (name, container) = self.path.last()?;
        matches!(
            container.as_str(),
            "Struct:TernaryLinear" | "Struct:TernaryConv2d"
        )
        .then_some(name.as_str())
    }

    fn layer_path(&self) -> String {
        let n = self.path.len().saturating_sub(1);
        self.path[..n]
            .iter()
            .filter(|(_, c)| !c.starts_with("Enum:"))
            .map(|(p, _)| p.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl ModuleVisitor for TernaryLayers {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        if self.ternary_field() == Some("scheme") {
            self.scheme = param
                .val()
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .ok();
        }
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.ternary_field() == Some("weight") {
            let dims = param.val().dims().to_vec();
            // An already packed layer has an empty latent weight: nothing to load into it.
            if let Some(scheme) = self.scheme.take().filter(|_| dims[0] > 0) {
                let path = self.layer_path();
                self.layers.push(TernaryLayer { path, scheme, dims });
            }
        }
    }
}

/// Loads an already-ternary checkpoint: for every `<layer>.weight_scale` in the file,
/// `<layer>.weight` must hold only −1, 0 and +1, and the layer (a training-state
/// `TernaryLinear`/`TernaryConv2d` of `model`) is packed from those values and scales exactly.
/// Ternary layers without a `weight_scale` are quantized as in [`load_packed`].
pub fn load_ternary<M: Module>(
    model: &M,
    path: &Path,
    options: &ImportOptions,
) -> Result<M, ImportError> {
    let mut tensors = read_tensors(path, options)?;
    let scale_keys: Vec<String> = tensors
        .keys()
        .filter(|k| k.ends_with(".weight_scale"))
        .cloned()
        .collect();
    let device = model_device(model)?;
    let mut finder = TernaryLayers::default();
    model.visit(&mut finder);
    let mut given = HashMap::new();
    for key in scale_keys {
        let layer = key.trim_end_matches(".weight_scale").to_string();
        // A scale for a stock layer would be dropped and its {-1, 0, 1} values loaded unscaled.
        if !finder.layers.iter().any(|l| l.path == layer) {
            return Err(ImportError::Apply {
                tensor: key,
                what: format!("{layer} is not a training-state ternary layer of the model"),
            });
        }
        let weight_key = format!("{layer}.weight");
        let scales = tensors.remove(&key).expect("listed above");
        let weight = tensors
            .get(&weight_key)
            .ok_or_else(|| ImportError::Missing {
                keys: vec![weight_key.clone()],
            })?;
        check_ternary(&weight_key, weight)?;
        let rows = weight.shape().first().copied().unwrap_or(0);
        let s = check_scales(&key, scales, rows)?;
        given.insert(layer, s);
    }
    let model = apply(model, tensors, options, &HashMap::new())?;
    let given = given
        .into_iter()
        .map(|(layer, s)| {
            let n = s.len();
            (
                layer,
                Tensor::<1>::from_data(TensorData::new(s, [n]), &device),
            )
        })
        .collect();
    Ok(freeze_with_scales(model, given)?)
}

fn check_ternary(name: &str, data: &TensorData) -> Result<(), ImportError> {
    let converted;
    let values: &[f32] = if data.dtype() == DType::F32 {
        data.as_slice().map_err(|e| ImportError::BadTensor {
            tensor: name.to_string(),
            what: format!("{e:?}"),
        })?
    } else {
        converted = data
            .clone()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| ImportError::BadTensor {
                tensor: name.to_string(),
                what: format!("{e:?}"),
            })?;
        &converted
    };
    match first_non_ternary(values) {
        Some((index, value)) => Err(ImportError::NotTernary {
            tensor: name.to_string(),
            index,
            value,
        }),
        None => Ok(()),
    }
}

/// `Some((index, value))` of the first value not in {−1, 0, +1}.
pub(crate) fn first_non_ternary(values: &[f32]) -> Option<(usize, f32)> {
    // A float is −1, −0, 0 or +1 exactly when its bits without the sign are 0 or those of
    // 1.0; chunks are checked without branches (vectorized) and searched only on failure.
    let off = |v: &f32| {
        let a = v.to_bits() & 0x7fff_ffff;
        u32::from((a != 0) & (a != 0x3f80_0000))
    };
    values
        .chunks(4096)
        .enumerate()
        .find(|(_, c)| c.iter().fold(0, |acc, v| acc | off(v)) != 0)
        .and_then(|(i, c)| {
            let j = c.iter().position(|v| off(v) != 0)?;
            Some((i * 4096 + j, c[j]))
        })
}

fn check_scales(name: &str, data: TensorData, rows: usize) -> Result<Vec<f32>, ImportError> {
    let s = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ImportError::BadScale {
            tensor: name.to_string(),
            what: format!("{e:?}"),
        })?;
    validate_scales(name, s, rows)
}

/// The scales of a BitNet-style `<weight>_scale` tensor: 1 (per tensor) or `rows` (per output
/// channel) values, each finite and ≥ 0; else [`ImportError::BadScale`] naming `name`.
pub(crate) fn validate_scales(
    name: &str,
    s: Vec<f32>,
    rows: usize,
) -> Result<Vec<f32>, ImportError> {
    let bad = |what: String| ImportError::BadScale {
        tensor: name.to_string(),
        what,
    };
    if s.len() != 1 && s.len() != rows {
        return Err(bad(format!(
            "{} scales for a weight with {rows} output channels (expected 1 or {rows})",
            s.len()
        )));
    }
    if let Some((i, v)) = s
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
    {
        return Err(bad(format!(
            "scale {v} at index {i} is not a finite value ≥ 0"
        )));
    }
    Ok(s)
}
