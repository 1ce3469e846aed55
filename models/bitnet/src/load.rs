//! Building a [`BitNet`] from a checkpoint: a Hugging Face BitNet directory (`config.json` +
//! safetensors, sharded or not, packed `uint8` weights with `weight_scale` or bf16 master
//! weights) read through `burn_ternary::import`, the same reader `burn-ternary convert` uses.
//!
//! Packed weights keep their codes and scales exactly (BitLinear's inverted scale and
//! AutoBitLinear's direct one both come out as the dequantization scale); master weights are
//! quantized on load with BitNet's absmean per tensor (f64 mean: codes equal transformers',
//! the scale within 2 ulp of torch's f32 mean, see `fixtures/hf_bitnet/README.md`).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use burn_ternary::import::container::row_scaled_ternary;
use burn_ternary::import::model_file::{self, Stored};
use burn_ternary::import::{ImportOptions, gguf, hf_bitnet, raw};
use burn_ternary::nn::TernaryLinear;
use burn_ternary::quant::ActivationQuant;
use ternary_kernels::quant::{Granularity, Method};
use ternary_kernels::{PackedI2, Scales};

use crate::config::BitNetConfig;
use crate::error::BitNetError;
use crate::gguf_names;
use crate::model::{Attention, BitNet, DecoderLayer, Mlp, Projection, RmsNorm};

/// How to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Activations of the projections: [`ActivationQuant::Int8PerToken`] (BitNet's W2A8, the
    /// default) or [`ActivationQuant::None`] (exact f32 activations).
    pub activation: ActivationQuant,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            activation: ActivationQuant::Int8PerToken,
        }
    }
}

/// Loads a Hugging Face BitNet model directory with packed projections (see the module docs),
/// or one file (GGUF `TQ1_0`/`TQ2_0`/`I2_S`, packed safetensors) that `burn-ternary convert`
/// made from such a directory (it embeds the directory's `config.json`).
///
/// Errors: [`BitNetError::Config`] for `config.json`; [`BitNetError::Import`] for what the
/// checkpoint reader refuses (a missing shard, a code 3, a missing `weight_scale`, …);
/// [`BitNetError::MissingTensor`] / [`BitNetError::Shape`] when the weights do not match the
/// config; [`BitNetError::Tensor`] for a tensor of a kind that cannot be that layer.
pub fn load(path: &Path, options: LoadOptions, device: &Device) -> Result<BitNet, BitNetError> {
    if path.is_dir() {
        let config = BitNetConfig::from_file(&path.join("config.json"))?;
        let file = model_file::read(path, &ImportOptions::new())?;
        return from_tensors(&config, file.tensors, options, device);
    }
    let file = model_file::read(path, &ImportOptions::new())?;
    // A GGUF named as llama.cpp names BitNet models (no embedded Hugging Face config).
    let kv = gguf_names::key_values(&file.metadata);
    if !file.metadata.contains_key(hf_bitnet::CONFIG_KEY)
        && let Some(arch) = gguf_names::architecture(&kv)
    {
        let config =
            gguf_names::config(arch, &kv, &file.tensors).map_err(|msg| BitNetError::Config {
                path: path.to_path_buf(),
                msg,
            })?;
        let mut tensors = BTreeMap::new();
        for (name, t) in file.tensors {
            let hf = gguf_names::hf_name(&name).ok_or_else(|| BitNetError::Tensor {
                name: name.clone(),
                msg: format!("not a tensor of llama.cpp's {arch} layout"),
            })?;
            tensors.insert(hf, t);
        }
        return from_tensors(&config, tensors, options, device);
    }
    let config = embedded_config(path, &file.metadata)?;
    from_tensors(&config, file.tensors, options, device)
}

/// The Hugging Face `config.json` that `burn-ternary convert` embeds (under
/// [`hf_bitnet::CONFIG_KEY`]) when it converts a Hugging Face BitNet directory to one file
/// (GGUF or packed safetensors); in a GGUF file it is one of the key/values.
fn embedded_config(
    path: &Path,
    metadata: &BTreeMap<String, String>,
) -> Result<BitNetConfig, BitNetError> {
    let from_gguf = || -> Option<String> {
        let list: Vec<serde_json::Value> =
            serde_json::from_str(metadata.get(gguf::METADATA_KEY)?).ok()?;
        list.iter().find_map(|pair| {
            (pair.get(0)?.as_str()? == hf_bitnet::CONFIG_KEY)
                .then(|| pair.get(1)?.get("str")?.as_str().map(str::to_string))?
        })
    };
    let text = metadata
        .get(hf_bitnet::CONFIG_KEY)
        .cloned()
        .or_else(from_gguf)
        .ok_or_else(|| BitNetError::Config {
            path: path.to_path_buf(),
            msg: format!(
                "no embedded Hugging Face config ({}) and no llama.cpp BitNet architecture ({:?}): load a model directory, a file converted from one by `burn-ternary convert`, or a GGUF of llama.cpp's BitNet layout",
                hf_bitnet::CONFIG_KEY,
                gguf_names::READ_ARCHITECTURES
            ),
        })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| BitNetError::Config {
        path: path.to_path_buf(),
        msg: format!("embedded config is not JSON: {e}"),
    })?;
    BitNetConfig::from_json(&json).map_err(|msg| BitNetError::Config {
        path: path.to_path_buf(),
        msg,
    })
}

/// Builds the model from checkpoint tensors named as transformers names them
/// (`model.layers.N.self_attn.q_proj.weight`, …).
pub fn from_tensors(
    config: &BitNetConfig,
    mut tensors: BTreeMap<String, Stored>,
    options: LoadOptions,
    device: &Device,
) -> Result<BitNet, BitNetError> {
    let d = config.hidden_size;
    let mut src = Source {
        tensors: &mut tensors,
        eps: config.rms_norm_eps,
        device,
    };
    let embed = {
        let shape = [config.vocab_size, d];
        let w = src.float("model.embed_tokens.weight", &shape)?;
        Tensor::from_data(TensorData::new(w, shape), device)
    };
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for i in 0..config.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let [q, k, v, o, gate, up, down] = config.projections().map(|(suffix, shape)| {
            let name = format!("{p}.{suffix}.weight");
            projection(&name, src.take(&name, &shape), options.activation, device)
        });
        layers.push(DecoderLayer {
            input_layernorm: src.norm(format!("{p}.input_layernorm.weight"), d)?,
            self_attn: Attention {
                q_proj: q?,
                k_proj: k?,
                v_proj: v?,
                o_proj: o?,
                attn_sub_norm: src.norm(
                    format!("{p}.self_attn.attn_sub_norm.weight"),
                    config.q_dim(),
                )?,
                heads: config.num_attention_heads,
                kv_heads: config.num_key_value_heads,
                head_dim: config.head_dim,
                fused_qkv: None,
            },
            post_attention_layernorm: src
                .norm(format!("{p}.post_attention_layernorm.weight"), d)?,
            mlp: Mlp {
                gate_proj: gate?,
                up_proj: up?,
                down_proj: down?,
                ffn_sub_norm: src.norm(
                    format!("{p}.mlp.ffn_sub_norm.weight"),
                    config.intermediate_size,
                )?,
                fused_gate_up: None,
            },
        });
    }
    let final_norm = src.norm("model.norm.weight".into(), d)?;
    let lm_head = if config.tie_word_embeddings {
        None
    } else {
        let shape = [config.vocab_size, d];
        let w = src.float("lm_head.weight", &shape)?;
        Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(w, shape),
            device,
        )))
    };
    // transformers ties (overwrites) a stored head when the config says tied.
    if config.tie_word_embeddings {
        tensors.remove("lm_head.weight");
    }
    if let Some(name) = tensors.keys().next() {
        return Err(BitNetError::Tensor {
            name: name.clone(),
            msg: format!(
                "not part of a BitNetForCausalLM with this config.json ({} unused tensors; BitLinear's optional use_rms_norm is not supported)",
                tensors.len()
            ),
        });
    }
    Ok(BitNet::from_parts(
        config, embed, layers, final_norm, lm_head,
    ))
}

fn sign(x: f32) -> i8 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

/// A GGUF `TQ1_0`/`TQ2_0` matrix carries one scale per 256-column block; a BitNet projection
/// one per tensor. Equal block scales (what converting a BitNet model writes) become that one
/// scale, exactly; scales constant along each row become per-row scales; anything else is
/// refused by name (a `TernaryLinear` holds no group scales).
///
/// The scale of a block whose weights are all zero reaches no output (`0 · s`), and
/// llama.cpp's quantizer writes `0` for such a block (its absmax): a finite scale of an
/// all-zero block is left out of the comparison, so one empty block does not turn a tensor
/// with a single scale into a refusal. A row with only zero blocks takes the tensor's scale.
fn collapse_groups(name: &str, packed: PackedI2) -> Result<PackedI2, BitNetError> {
    let Some(g) = packed.scales().group_size() else {
        return Ok(packed);
    };
    let (n, k) = (packed.n(), packed.k());
    let all = packed.scales().as_slice();
    let groups = all.len().checked_div(n).unwrap_or(0);
    let scales = if all.iter().all(|s| s.to_bits() == all[0].to_bits()) {
        Scales::PerTensor(all.first().copied().unwrap_or(0.0))
    } else {
        let zero_group =
            |j: usize, grp: usize| (grp * g..((grp + 1) * g).min(k)).all(|c| packed.get(j, c) == 0);
        // The one scale of each row over its non-zero blocks (`None`: every block zero).
        let mut rows: Vec<Option<f32>> = vec![None; n];
        for (j, row) in rows.iter_mut().enumerate() {
            for grp in 0..groups {
                let s = all[j * groups + grp];
                if s.is_finite() && zero_group(j, grp) {
                    continue;
                }
                match *row {
                    None => *row = Some(s),
                    Some(r) if r.to_bits() == s.to_bits() => {}
                    Some(r) => {
                        return Err(BitNetError::Tensor {
                            name: name.to_string(),
                            msg: format!(
                                "{g}-column group scales that differ along row {j} ({r} and {s} in blocks with non-zero weights): a BitNet projection has one scale per tensor or per row"
                            ),
                        });
                    }
                }
            }
        }
        let first = rows.iter().flatten().next().copied().unwrap_or(0.0);
        if rows
            .iter()
            .flatten()
            .all(|s| s.to_bits() == first.to_bits())
        {
            Scales::PerTensor(first)
        } else {
            Scales::PerRow(rows.iter().map(|s| s.unwrap_or(first)).collect())
        }
    };
    let data = packed.data().to_vec();
    PackedI2::from_packed_rows(n, k, scales, data).map_err(|e| BitNetError::Tensor {
        name: name.to_string(),
        msg: e.to_string(),
    })
}

/// The checkpoint's tensors, taken one by one with their shapes checked.
struct Source<'a> {
    tensors: &'a mut BTreeMap<String, Stored>,
    eps: f64,
    device: &'a Device,
}

impl Source<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Stored, BitNetError> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| BitNetError::MissingTensor {
                name: name.to_string(),
                expected: shape.to_vec(),
            })?;
        if t.shape() != shape {
            return Err(BitNetError::Shape {
                name: name.to_string(),
                expected: shape.to_vec(),
                actual: t.shape().to_vec(),
            });
        }
        Ok(t)
    }

    fn float(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, BitNetError> {
        match self.take(name, shape)? {
            Stored::Plain(t) => Ok(raw::to_f32(name, &t)?),
            _ => Err(BitNetError::Tensor {
                name: name.to_string(),
                msg: "a ternary or opaque tensor where a float tensor (embedding / norm) belongs"
                    .into(),
            }),
        }
    }

    fn norm(&mut self, name: String, width: usize) -> Result<RmsNorm, BitNetError> {
        let w = self.float(&name, &[width])?;
        Ok(RmsNorm::from_weight(
            Tensor::from_data(TensorData::new(w, [width]), self.device),
            self.eps,
        ))
    }
}

/// A projection from its checkpoint tensor: packed codes as they are, a float master weight
/// quantized with absmean per tensor.
fn projection(
    name: &str,
    stored: Result<Stored, BitNetError>,
    activation: ActivationQuant,
    device: &Device,
) -> Result<Projection, BitNetError> {
    let packed = match stored? {
        Stored::Packed(p) => collapse_groups(name, p.packed)?,
        Stored::Plain(t) => {
            let [n, k] = [t.shape[0], t.shape[1]];
            let w = raw::to_f32(name, &t)?;
            let error = |e: ternary_kernels::KernelError| BitNetError::Tensor {
                name: name.to_string(),
                msg: e.to_string(),
            };
            // Already ternary (0 or ±s per row: a dequantized export) is packed back exactly;
            // anything else is a master weight, quantized as BitNet does.
            match row_scaled_ternary(&w, n, k, Granularity::PerTensor) {
                Some(scales) => {
                    let codes: Vec<i8> = w.iter().map(|&x| sign(x)).collect();
                    PackedI2::from_ternary(&codes, n, k, scales).map_err(error)?
                }
                None => PackedI2::quantize(&w, n, k, Method::AbsMean, Granularity::PerTensor)
                    .map_err(error)?,
            }
        }
        Stored::Opaque(o) => {
            return Err(BitNetError::Tensor {
                name: name.to_string(),
                msg: format!("ggml type {} is not ternary", o.type_name),
            });
        }
    };
    Ok(Projection::Ternary(TernaryLinear::from_packed(
        &packed, None, activation, device,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `[2, 512]` matrix with 256-column group scales.
    fn grouped(values: &[i8], scales: Vec<f32>) -> PackedI2 {
        PackedI2::from_ternary(
            values,
            2,
            512,
            Scales::PerGroup {
                group_size: 256,
                scales,
            },
        )
        .unwrap()
    }

    fn ones_except_block(zero: Option<(usize, usize)>) -> Vec<i8> {
        let mut v = vec![1i8; 2 * 512];
        if let Some((row, block)) = zero {
            v[row * 512 + block * 256..row * 512 + (block + 1) * 256].fill(0);
        }
        v
    }

    #[test]
    fn equal_block_scales_become_one_scale() {
        let p = collapse_groups("w", grouped(&ones_except_block(None), vec![0.5; 4])).unwrap();
        assert_eq!(p.scales(), &Scales::PerTensor(0.5));
    }

    #[test]
    fn the_scale_of_an_all_zero_block_is_ignored() {
        // llama.cpp writes scale 0 for a block of zeros: still one scale for the tensor.
        let values = ones_except_block(Some((1, 0)));
        let p = collapse_groups("w", grouped(&values, vec![0.5, 0.5, 0.0, 0.5])).unwrap();
        assert_eq!(p.scales(), &Scales::PerTensor(0.5));
        assert_eq!(p.to_ternary(), values, "codes unchanged");
        // Per-row scales with a zero block in one row.
        let p = collapse_groups("w", grouped(&values, vec![0.5, 0.5, 0.0, 0.25])).unwrap();
        assert_eq!(p.scales(), &Scales::PerRow(vec![0.5, 0.25]));
        // A row of zero blocks only takes the tensor's scale.
        let mut values = ones_except_block(None);
        values[512..].fill(0);
        let p = collapse_groups("w", grouped(&values, vec![0.5, 0.5, 0.0, 0.0])).unwrap();
        assert_eq!(p.scales(), &Scales::PerTensor(0.5));
    }

    #[test]
    fn scales_that_differ_on_non_zero_blocks_are_refused_by_name() {
        let err = collapse_groups(
            "blk.0.attn_q.weight",
            grouped(&ones_except_block(None), vec![0.5, 0.25, 0.5, 0.5]),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("blk.0.attn_q.weight") && msg.contains("row 0"),
            "{msg}"
        );
    }
}
