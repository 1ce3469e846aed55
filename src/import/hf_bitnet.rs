//! Hugging Face BitNet checkpoints (`transformers`' `quant_method: "bitnet"`) read into
//! burn-ternary's packed form without loss.
//!
//! A checkpoint is a directory: `config.json` with a `quantization_config` whose
//! `quant_method` is `"bitnet"`, and `model.safetensors` or shards listed by
//! `model.safetensors.index.json`. Converted linear layers store a packed `uint8
//! [⌈out/4⌉, in]` weight (layout: [`ternary_kernels::format::hf_bitnet`]) and a per-tensor
//! `<layer>.weight_scale` (`[1]`, usually bf16) whose meaning depends on `linear_class`:
//!
//! * `"bitlinear"` (the default): the layer computes `y / weight_scale`, so the effective
//!   weight is `code / weight_scale` — the stored scale is the *inverse* absmean;
//! * `"autobitlinear"`, `quantization_mode: "offline"`: `y · weight_scale`, effective weight
//!   `code · weight_scale`; the weight may also be stored unpacked as float codes `[out, in]`.
//! * `"autobitlinear"`, `"online"` (the bf16 "master weight" repos): linear weights are plain
//!   floats without a scale; they are read as plain tensors and `convert` quantizes them.
//!
//! The packed matrix gets the effective per-tensor scale (`1.0 / weight_scale` computed in
//! f32 for `bitlinear`, exactly what transformers multiplies by), and the `weight_scale` tensor
//! is folded in. Every packed weight's shape is checked against `config.json` (Llama-style
//! `q/k/v/o_proj`, `gate/up/down_proj`); a mismatch, a missing `weight_scale`, a code 3 and a
//! non-finite or negative scale are typed errors naming the tensor. `config.json` is kept in
//! the metadata under [`CONFIG_KEY`]. Other tensors (embeddings, norms) are kept as stored.
//!
//! Spec and fixtures: `fixtures/hf_bitnet/README.md` (made with transformers 5.24 itself).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::Dtype;
use serde_json::Value;
use ternary_kernels::format::hf_bitnet;
use ternary_kernels::{PackedI2, Scales};

use super::ImportError;
use super::container::{FORMAT, PackedInfo};
use super::model_file::{ModelFile, PackedTensor, Stored};
use super::raw::{self, RawTensor};

/// Metadata key holding the source's `config.json` text.
pub const CONFIG_KEY: &str = "__hf_config__";

/// The two ways a converted layer's `weight_scale` is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearClass {
    /// `BitLinear`: divides by `weight_scale` (stores 1 / absmean).
    BitLinear,
    /// `AutoBitLinear`: multiplies by `weight_scale` (stores absmean).
    AutoBitLinear,
}

/// The parsed `config.json` of a BitNet checkpoint, when `dir` is one.
fn config(dir: &Path) -> Result<Option<Value>, ImportError> {
    let path = dir.join("config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| ImportError::format(&path, e))?;
    let is_bitnet = v
        .pointer("/quantization_config/quant_method")
        .and_then(Value::as_str)
        == Some("bitnet");
    Ok(is_bitnet.then_some(v))
}

/// Whether `path` is a directory holding a Hugging Face BitNet checkpoint.
pub fn is_checkpoint(path: &Path) -> bool {
    path.is_dir() && matches!(config(path), Ok(Some(_)))
}

/// The `(out, in)` a Llama-style BitNet linear layer must have, from `config.json`.
fn expected_shape(cfg: &Value, layer: &str) -> Option<(usize, usize)> {
    let get = |k: &str| cfg.get(k).and_then(Value::as_u64).map(|v| v as usize);
    let hidden = get("hidden_size")?;
    let heads = get("num_attention_heads")?;
    let kv = get("num_key_value_heads").unwrap_or(heads);
    let head_dim = get("head_dim").unwrap_or(hidden / heads.max(1));
    let inter = get("intermediate_size")?;
    let last = layer.rsplit('.').next()?;
    Some(match last {
        "q_proj" => (heads * head_dim, hidden),
        "k_proj" | "v_proj" => (kv * head_dim, hidden),
        "o_proj" => (hidden, heads * head_dim),
        "gate_proj" | "up_proj" => (inter, hidden),
        "down_proj" => (hidden, inter),
        _ => return None,
    })
}

/// A safetensors file of the checkpoint and the tensor names the index assigns to it (`None`
/// for a single `model.safetensors`).
type Shard = (PathBuf, Option<Vec<String>>);

/// The safetensors files of the checkpoint.
fn shards(dir: &Path) -> Result<Vec<Shard>, ImportError> {
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Ok(vec![(dir.join("model.safetensors"), None)]);
    }
    let text = std::fs::read_to_string(&index).map_err(|source| ImportError::Io {
        path: index.clone(),
        source,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| ImportError::format(&index, e))?;
    let map = v
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| ImportError::format(&index, "no weight_map object"))?;
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .filter(|f| !f.contains('/') && !f.contains('\\') && !f.starts_with('.'))
            .ok_or_else(|| {
                ImportError::format(
                    &index,
                    format!("weight_map entry of {name} is not a file name in the directory"),
                )
            })?;
        files
            .entry(file.to_string())
            .or_default()
            .push(name.clone());
    }
    Ok(files
        .into_iter()
        .map(|(f, names)| (dir.join(f), Some(names)))
        .collect())
}

/// The f32 value of a `[1]` (or scalar) float scale tensor.
fn scale_value(name: &str, t: &RawTensor) -> Result<f32, ImportError> {
    if t.numel() != 1 || !t.is_quantizable_float() {
        return Err(ImportError::BadScale {
            tensor: name.to_string(),
            what: format!(
                "expected one float, found {:?} of shape {:?}",
                t.dtype, t.shape
            ),
        });
    }
    Ok(raw::to_f32(name, t)?[0])
}

/// Reads a Hugging Face BitNet checkpoint directory (see the module docs).
///
/// Errors: [`ImportError::Io`] / [`ImportError::Format`] for unreadable files, an index
/// naming a missing tensor or shard, or a tensor in two shards; [`ImportError::ShapeMismatch`]
/// when a packed weight does not have the shape `config.json` implies;
/// [`ImportError::Missing`] for a packed weight without its `weight_scale`;
/// [`ImportError::BadScale`] for a scale that is not one finite value (> 0 for `bitlinear`,
/// ≥ 0 otherwise); [`ImportError::BadTensor`] for a code 3 or non-zero padding (named, with
/// the byte offset).
pub fn read(dir: &Path) -> Result<ModelFile, ImportError> {
    let cfg_path = dir.join("config.json");
    let cfg = config(dir)?.ok_or_else(|| {
        ImportError::format(
            dir,
            if cfg_path.exists() {
                "a directory whose config.json has no quantization_config.quant_method \"bitnet\": not a Hugging Face BitNet checkpoint"
            } else {
                "a directory without config.json: expected a model file or a Hugging Face BitNet checkpoint directory"
            },
        )
    })?;
    let q = &cfg["quantization_config"];
    let class = match q
        .get("linear_class")
        .and_then(Value::as_str)
        .unwrap_or("bitlinear")
    {
        "bitlinear" => LinearClass::BitLinear,
        "autobitlinear" => LinearClass::AutoBitLinear,
        other => {
            return Err(ImportError::format(
                &cfg_path,
                format!("unknown linear_class {other:?}"),
            ));
        }
    };
    let online = match q
        .get("quantization_mode")
        .and_then(Value::as_str)
        .unwrap_or("offline")
    {
        "offline" => false,
        "online" => class == LinearClass::AutoBitLinear,
        other => {
            return Err(ImportError::format(
                &cfg_path,
                format!("unknown quantization_mode {other:?}"),
            ));
        }
    };

    let mut tensors: BTreeMap<String, RawTensor> = BTreeMap::new();
    for (shard, names) in shards(dir)? {
        let read = raw::read_safetensors(&shard)?;
        if let Some(missing) = names
            .iter()
            .flatten()
            .find(|n| !read.iter().any(|(r, _)| r == *n))
        {
            return Err(ImportError::format(
                &shard,
                format!("the index places {missing} in this shard, which does not hold it"),
            ));
        }
        for (name, t) in read {
            if tensors.insert(name.clone(), t).is_some() {
                return Err(ImportError::format(
                    &shard,
                    format!("tensor {name} is in two shards"),
                ));
            }
        }
    }

    let mut file = ModelFile::default();
    let mut folded = Vec::new();
    for (name, t) in &tensors {
        let Some(layer) = name.strip_suffix(".weight") else {
            continue;
        };
        let scale_name = format!("{name}_scale");
        let packed = t.dtype == Dtype::U8 && t.shape.len() == 2;
        let unpacked = class == LinearClass::AutoBitLinear
            && tensors.contains_key(&scale_name)
            && t.is_quantizable_float()
            && t.shape.len() == 2;
        if online || !(packed || unpacked) {
            continue;
        }
        let Some(s) = tensors.get(&scale_name) else {
            return Err(ImportError::Missing {
                keys: vec![scale_name],
            });
        };
        let (out, cols) = match expected_shape(&cfg, layer) {
            Some(shape) => shape,
            None if packed => (4 * t.shape[0], t.shape[1]),
            None => (t.shape[0], t.shape[1]),
        };
        let stored = if packed {
            vec![hf_bitnet::packed_rows(out), cols]
        } else {
            vec![out, cols]
        };
        if t.shape != stored {
            return Err(ImportError::ShapeMismatch {
                tensor: name.clone(),
                expected: stored,
                found: t.shape.clone(),
            });
        }
        let codes = if packed {
            let mut codes = vec![0i8; out * cols];
            hf_bitnet::unpack(&t.bytes, out, cols, &mut codes)
                .map_err(|e| ImportError::tensor(name, e))?;
            codes
        } else {
            let v = raw::to_f32(name, t)?;
            if let Some((index, value)) = super::first_non_ternary(&v) {
                return Err(ImportError::NotTernary {
                    tensor: name.clone(),
                    index,
                    value,
                });
            }
            v.iter().map(|&x| x as i8).collect()
        };
        let ws = scale_value(&scale_name, s)?;
        let scale = match class {
            LinearClass::BitLinear => 1.0 / ws,
            LinearClass::AutoBitLinear => ws,
        };
        let ok = ws.is_finite() && scale.is_finite() && scale >= 0.0;
        if !ok || (class == LinearClass::BitLinear && ws <= 0.0) {
            return Err(ImportError::BadScale {
                tensor: scale_name,
                what: format!("weight_scale {ws} gives the effective scale {scale}"),
            });
        }
        let packed_matrix = PackedI2::from_ternary(&codes, out, cols, Scales::PerTensor(scale))
            .map_err(|e| ImportError::tensor(name, e))?;
        let info = PackedInfo {
            format: FORMAT.into(),
            shape: vec![out, cols],
            quantizer: "given".into(),
            granularity: "per-tensor".into(),
            source_dtype: match class {
                LinearClass::BitLinear => "HF BitNet bitlinear".into(),
                LinearClass::AutoBitLinear => "HF BitNet autobitlinear".into(),
            },
            scale_from: Some(scale_name.clone()),
        };
        file.tensors.insert(
            name.clone(),
            Stored::Packed(PackedTensor {
                packed: packed_matrix,
                info,
                source_bytes: (t.bytes.len() + s.bytes.len()) as u64,
            }),
        );
        folded.push(scale_name);
    }
    for (name, t) in tensors {
        if !file.tensors.contains_key(&name) && !folded.contains(&name) {
            file.tensors.insert(name, Stored::Plain(t));
        }
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| ImportError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    file.metadata.insert(CONFIG_KEY.into(), text);
    Ok(file)
}

/// Writes `file` as a Hugging Face BitNet checkpoint directory `dir` (`config.json` +
/// `model.safetensors`, each written atomically) with `class`'s scale convention: every packed
/// matrix becomes a packed `uint8 [⌈out/4⌉, in]` weight and an F32 `[1]` `weight_scale`
/// (`1 / scale` for `bitlinear`, `scale` for `autobitlinear`); other tensors are kept as
/// stored. `config.json` is the source's ([`CONFIG_KEY`]) with `quantization_config` set to
/// this class, `offline`. Returns each tensor's bytes and, per tensor, a note when the inverse
/// of a `bitlinear` scale does not give the scale back exactly in f32.
///
/// Errors: [`ImportError::Format`] when the model has no source `config.json` (a BitNet
/// config cannot be invented) or `dir` already holds a sharded checkpoint;
/// [`ImportError::BadTensor`] naming a packed tensor that is not a matrix, whose scales
/// differ between rows or groups (BitNet has one per tensor), a zero scale for `bitlinear`
/// (no inverse), or a name whose `_scale` sibling already exists; [`ImportError::Io`].
#[allow(clippy::type_complexity)]
pub fn write(
    dir: &Path,
    file: &ModelFile,
    class: LinearClass,
) -> Result<(BTreeMap<String, u64>, BTreeMap<String, String>), ImportError> {
    use super::container::{Out, write_file_atomically, write_safetensors};
    let text = file.metadata.get(CONFIG_KEY).ok_or_else(|| {
        ImportError::format(
            dir,
            "a Hugging Face BitNet checkpoint needs its config.json: convert from a BitNet checkpoint directory (its config is carried in the metadata)",
        )
    })?;
    let mut cfg: Value = serde_json::from_str(text).map_err(|e| ImportError::format(dir, e))?;
    let q = cfg
        .as_object_mut()
        .ok_or_else(|| ImportError::format(dir, "config.json is not an object"))?
        .entry("quantization_config")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(q) = q.as_object_mut() {
        q.insert("quant_method".into(), "bitnet".into());
        q.insert(
            "linear_class".into(),
            match class {
                LinearClass::BitLinear => "bitlinear",
                LinearClass::AutoBitLinear => "autobitlinear",
            }
            .into(),
        );
        q.insert("quantization_mode".into(), "offline".into());
    }
    if dir.join("model.safetensors.index.json").exists() {
        return Err(ImportError::format(
            dir,
            "already holds a sharded checkpoint (model.safetensors.index.json); write to an empty directory",
        ));
    }

    let mut out: BTreeMap<String, Out> = BTreeMap::new();
    let mut notes = BTreeMap::new();
    for (name, t) in &file.tensors {
        match t {
            Stored::Opaque(o) => return Err(super::container::opaque_refused(name, o)),
            Stored::Plain(r) => {
                out.insert(name.clone(), Out::of(r));
            }
            Stored::Packed(p) => {
                let (n, k) = (p.packed.n(), p.packed.k());
                if p.info.shape != [n, k] {
                    return Err(ImportError::tensor(
                        name,
                        format!(
                            "shape {:?}: BitNet packs linear weights (matrices)",
                            p.info.shape
                        ),
                    ));
                }
                let s = p.packed.scales().uniform().ok_or_else(|| {
                    ImportError::tensor(
                        name,
                        "scales differ between rows or groups: a BitNet weight_scale is one value per tensor",
                    )
                })?;
                let stored = match class {
                    LinearClass::AutoBitLinear => s,
                    LinearClass::BitLinear if s > 0.0 => {
                        let inv = 1.0 / s;
                        if 1.0 / inv != s {
                            notes.insert(
                                name.clone(),
                                format!(
                                    "bitlinear stores 1/scale: {s:e} comes back as {:e}",
                                    1.0 / inv
                                ),
                            );
                        }
                        inv
                    }
                    LinearClass::BitLinear => {
                        return Err(ImportError::tensor(
                            name,
                            "scale 0: bitlinear stores 1/scale, which 0 does not have",
                        ));
                    }
                };
                let scale_name = format!("{name}_scale");
                if file.tensors.contains_key(&scale_name) {
                    return Err(ImportError::tensor(
                        name,
                        format!("{scale_name} already exists as a tensor"),
                    ));
                }
                let mut packed = vec![0u8; hf_bitnet::packed_rows(n) * k];
                hf_bitnet::pack(&p.packed.to_ternary(), n, k, &mut packed)
                    .map_err(|e| ImportError::tensor(name, e))?;
                out.insert(
                    name.clone(),
                    Out::bytes(Dtype::U8, vec![hf_bitnet::packed_rows(n), k], packed),
                );
                out.insert(
                    scale_name,
                    Out::bytes(Dtype::F32, vec![1], stored.to_le_bytes().to_vec()),
                );
            }
        }
    }
    let mut meta: BTreeMap<String, String> = file
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != CONFIG_KEY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.entry("format".into()).or_insert_with(|| "pt".into());
    std::fs::create_dir_all(dir).map_err(|source| ImportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut sizes: BTreeMap<String, u64> = out
        .iter()
        .map(|(k, o)| (k.clone(), o.len() as u64))
        .collect();
    // A packed weight's report size includes its scale tensor.
    for name in file.tensors.keys() {
        if let Some(s) = sizes.get(&format!("{name}_scale")).copied() {
            *sizes.get_mut(name).expect("written") += s;
        }
    }
    write_file_atomically(&dir.join("model.safetensors"), |w| {
        write_safetensors(w, &out, &meta).map(|_| ())
    })?;
    let json = serde_json::to_string_pretty(&cfg).expect("a JSON value") + "\n";
    write_file_atomically(&dir.join("config.json"), |w| w.write_all(json.as_bytes()))?;
    Ok((sizes, notes))
}
