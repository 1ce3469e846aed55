//! Export of a (trained or fine-tuned) [`BitNet`] to the formats other tools read: a Hugging
//! Face BitNet model directory (`config.json`, `model.safetensors` with packed `uint8`
//! projections and their `weight_scale`, `tokenizer.json`) and GGUF (`TQ2_0`, `TQ1_0` or
//! `I2_S` projections).
//!
//! Both go through the interop writers of `burn_ternary::import` from one [`ModelFile`]: the
//! projections as the packed matrices the model's W2A8 kernels run (codes and per-tensor
//! scales exactly; BitNet b1.58 has one scale per tensor), every other tensor (embeddings,
//! norms, an untied LM head) as F32, all named as transformers names them, with the
//! model's `config.json` embedded so that [`crate::load()`] reads either output back.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Tensor;
use burn_ternary::import::container::{FORMAT, PackedInfo};
use burn_ternary::import::gguf::{self, GgufTernary};
use burn_ternary::import::hf_bitnet::{self, CONFIG_KEY, LinearClass};
use burn_ternary::import::model_file::{ModelFile, PackedTensor, Stored};
use burn_ternary::import::raw::RawTensor;
use safetensors::tensor::Dtype;

use crate::error::BitNetError;
use crate::gguf_names;
use crate::model::{BitNet, Projection};

/// The model as a [`ModelFile`]: projections packed (a projection still in the training
/// state is frozen first, as [`BitNet::freeze`] would), the rest F32, transformers' names,
/// `config.json` under [`CONFIG_KEY`].
///
/// Errors: [`BitNetError::Tensor`] naming a projection that cannot be packed (non-finite
/// latent weights, a dense baseline projection) or whose packed words are corrupt.
pub fn model_file(model: &BitNet) -> Result<ModelFile, BitNetError> {
    let config = &model.config;
    let mut tensors = BTreeMap::new();
    let mut put = |name: &str, raw: RawTensor| {
        tensors.insert(name.to_string(), Stored::Plain(raw));
    };
    put(
        "model.embed_tokens.weight",
        f32_tensor(model.embed_tokens.val()),
    );
    if let Some(head) = &model.lm_head {
        put("lm_head.weight", f32_tensor(head.val()));
    }
    put("model.norm.weight", f32_vector(model.norm.weight.val()));
    for (i, layer) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        let attn = &layer.self_attn;
        let mlp = &layer.mlp;
        let projections: [(&str, &Projection); 7] = [
            ("self_attn.q_proj", &attn.q_proj),
            ("self_attn.k_proj", &attn.k_proj),
            ("self_attn.v_proj", &attn.v_proj),
            ("self_attn.o_proj", &attn.o_proj),
            ("mlp.gate_proj", &mlp.gate_proj),
            ("mlp.up_proj", &mlp.up_proj),
            ("mlp.down_proj", &mlp.down_proj),
        ];
        for (suffix, linear) in projections {
            let name = format!("{p}.{suffix}.weight");
            let packed = packed(&name, linear)?;
            let info = PackedInfo {
                format: FORMAT.into(),
                shape: vec![packed.n(), packed.k()],
                quantizer: "absmean".into(),
                granularity: burn_ternary::import::model_file::scale_kind(packed.scales()),
                source_dtype: "F32".into(),
                scale_from: None,
            };
            tensors.insert(
                name,
                Stored::Packed(PackedTensor {
                    packed,
                    info,
                    source_bytes: 0,
                }),
            );
        }
        let norms = [
            ("input_layernorm", &layer.input_layernorm),
            ("post_attention_layernorm", &layer.post_attention_layernorm),
            ("self_attn.attn_sub_norm", &attn.attn_sub_norm),
            ("mlp.ffn_sub_norm", &mlp.ffn_sub_norm),
        ];
        for (suffix, n) in norms {
            let raw = f32_vector(n.weight.val());
            tensors.insert(format!("{p}.{suffix}.weight"), Stored::Plain(raw));
        }
    }
    let mut metadata = BTreeMap::new();
    metadata.insert(
        CONFIG_KEY.to_string(),
        serde_json::to_string_pretty(&config.to_json()).expect("a JSON value serializes"),
    );
    Ok(ModelFile { tensors, metadata })
}

/// Writes a Hugging Face BitNet model directory `dir` (created if missing): `config.json`
/// (with `quantization_config` for `class`), `model.safetensors` (each written atomically)
/// and, when given, a copy of `tokenizer` as `tokenizer.json`. `AutoBitLinear` stores the
/// absmean scale itself and is exact; `BitLinear` stores its inverse (the writer notes any
/// scale whose inverse does not round-trip in f32). Returns those notes, by tensor.
///
/// Errors: [`BitNetError::Import`] from the writer (I/O, a sharded checkpoint already in
/// `dir`); as [`model_file`].
pub fn export_hf(
    model: &BitNet,
    dir: &Path,
    class: LinearClass,
    tokenizer: Option<&Path>,
) -> Result<BTreeMap<String, String>, BitNetError> {
    let file = model_file(model)?;
    std::fs::create_dir_all(dir).map_err(|source| BitNetError::io(dir, source))?;
    let (_, notes) = hf_bitnet::write(dir, &file, class)?;
    if let Some(src) = tokenizer {
        let dst = dir.join("tokenizer.json");
        let tmp = dir.join("tokenizer.json.tmp");
        std::fs::copy(src, &tmp)
            .and_then(|_| std::fs::rename(&tmp, &dst))
            .map_err(|source| BitNetError::io(&dst, source))?;
    }
    Ok(notes)
}

/// Writes the model as one GGUF v3 file at `path` (atomically) with its projections in
/// `ternary` and the rest F32; the `config.json` rides along as a metadata key so that
/// [`crate::load()`] reads the file back. A projection whose rows are not whole blocks of the
/// type (256 weights for `TQ1_0`/`TQ2_0`, 128 for `I2_S`) is written as F32, exactly, as
/// llama.cpp does; the returned notes say which.
///
/// Errors: as [`model_file`] and the GGUF writer.
pub fn export_gguf(
    model: &BitNet,
    path: &Path,
    ternary: GgufTernary,
) -> Result<Vec<String>, BitNetError> {
    let file = model_file(model)?;
    let (_, notes) = gguf::write(path, &file, ternary)?;
    Ok(notes
        .into_iter()
        .map(|n| format!("{}: {}", n.tensor, n.what))
        .collect())
}

/// Writes the model as one GGUF v3 file at `path` in llama.cpp's BitNet layout
/// ([`crate::gguf_names`]: architecture `bitnet`, `blk.N.*` tensor names, `bitnet.*`
/// hyper-parameter keys, `bitnet.hidden_activation = "relu2"`) with its projections in
/// `ternary`, the rest F32, atomically; [`crate::load()`] reads it back. Not written: the
/// tokenizer's vocabulary (`tokenizer.ggml.*` beyond BOS/EOS), which llama.cpp needs to run the
/// file (burn-ternary reads `tokenizer.json`). `I2_S` is bitnet.cpp's type, which mainline
/// llama.cpp does not read; `TQ2_0`/`TQ1_0` are llama.cpp's. Returns the writer's notes.
///
/// Errors: [`BitNetError::Tensor`] for an untied LM head (llama.cpp's `bitnet` architecture has
/// no output tensor; write Hugging Face names with [`export_gguf`]); as [`export_gguf`].
pub fn export_gguf_llama(
    model: &BitNet,
    path: &Path,
    ternary: GgufTernary,
    name: &str,
) -> Result<Vec<String>, BitNetError> {
    if model.lm_head.is_some() {
        return Err(BitNetError::Tensor {
            name: "lm_head.weight".into(),
            msg: "llama.cpp's bitnet architecture ties the LM head to the embeddings (no output tensor): export this model with Hugging Face names".into(),
        });
    }
    let hf = model_file(model)?;
    let mut tensors = BTreeMap::new();
    for (hf_name, t) in hf.tensors {
        let gguf = gguf_names::gguf_name(&hf_name).ok_or_else(|| BitNetError::Tensor {
            name: hf_name.clone(),
            msg: "has no llama.cpp BitNet name".into(),
        })?;
        tensors.insert(gguf, t);
    }
    let mut metadata = BTreeMap::new();
    metadata.insert(
        gguf::METADATA_KEY.to_string(),
        gguf_names::metadata(&model.config, name).to_string(),
    );
    let (_, notes) = gguf::write(path, &ModelFile { tensors, metadata }, ternary)?;
    Ok(notes
        .into_iter()
        .map(|n| format!("{}: {}", n.tensor, n.what))
        .collect())
}

fn packed(name: &str, projection: &Projection) -> Result<ternary_kernels::PackedI2, BitNetError> {
    let error = |msg: String| BitNetError::Tensor {
        name: name.to_string(),
        msg,
    };
    let linear = projection.ternary().ok_or_else(|| {
        error("a dense f32 projection (a full-precision baseline): BitNet formats hold ternary projections".into())
    })?;
    let frozen;
    let linear = if linear.is_packed() {
        linear
    } else {
        frozen = linear.clone().freeze().map_err(|e| error(e.to_string()))?;
        &frozen
    };
    linear
        .to_packed()
        .map_err(|e| error(e.to_string()))?
        .ok_or_else(|| error("not packed after freezing".into()))
}

fn f32_tensor(t: Tensor<2>) -> RawTensor {
    let shape = t.dims().to_vec();
    let values: Vec<f32> = t
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("f32 data");
    RawTensor {
        dtype: Dtype::F32,
        shape,
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn f32_vector(t: Tensor<1>) -> RawTensor {
    let mut raw = f32_tensor(t.unsqueeze::<2>());
    raw.shape.remove(0);
    raw
}
