//! llama.cpp's GGUF layout of a BitNet model: tensor names, hyper-parameter keys.
//!
//! llama.cpp's converter (`convert_hf_to_gguf.py`, `BitnetModel`, architecture `bitnet`) keeps
//! the Hugging Face weights in their order — no permutation of the query/key rows, RoPE in the
//! `rotate_half` ("NeoX") pairing — and renames them after gguf's tensor table:
//!
//! | GGUF | Hugging Face |
//! |---|---|
//! | `token_embd.weight` | `model.embed_tokens.weight` |
//! | `output_norm.weight` | `model.norm.weight` |
//! | `output.weight` (absent: tied) | `lm_head.weight` |
//! | `blk.N.attn_norm.weight` | `model.layers.N.input_layernorm.weight` |
//! | `blk.N.attn_q` / `attn_k` / `attn_v` / `attn_output` `.weight` | `…self_attn.q_proj` / `k_proj` / `v_proj` / `o_proj.weight` |
//! | `blk.N.attn_sub_norm.weight` | `…self_attn.attn_sub_norm.weight` |
//! | `blk.N.ffn_norm.weight` | `…post_attention_layernorm.weight` |
//! | `blk.N.ffn_gate` / `ffn_up` / `ffn_down` `.weight` | `…mlp.gate_proj` / `up_proj` / `down_proj.weight` |
//! | `blk.N.ffn_sub_norm.weight` | `…mlp.ffn_sub_norm.weight` |
//!
//! The FFN activation is `<arch>.hidden_activation` (llama.cpp's `LLM_KV_HIDDEN_ACT`):
//! llama.cpp's `bitnet` graph runs SiLU when the key is absent (the 1bitLLM models), while
//! BitNet b1.58-2B-4T and everything this crate runs use squared ReLU (`relu2`). So a file of
//! architecture `bitnet` must say `relu2` (the export writes it); bitnet.cpp's own
//! architecture names (`bitnet-b1.58`, `bitnet-25`) are its 2B-4T ports, squared ReLU without
//! the key; any other value is refused by key.
//!
//! It writes the hyper-parameters as `bitnet.*` keys (`context_length`, `embedding_length`,
//! `feed_forward_length`, `block_count`, `attention.head_count`, `attention.head_count_kv`,
//! `attention.layer_norm_rms_epsilon`, `rope.freq_base`, `rope.scaling.type` = `linear` with
//! `rope.scaling.factor` 1) and the tokenizer's `tokenizer.ggml.bos_token_id` /
//! `eos_token_id`. Tested on a file made with gguf's own writer from a `transformers` model
//! (`fixtures/make_llama_gguf_fixture.py`). bitnet.cpp's fork names its architectures
//! `bitnet-b1.58` and `bitnet-25` with the same tensor names; those files are read the same way
//! but no such file was available here to test.

use std::collections::BTreeMap;

use burn_ternary::import::gguf::METADATA_KEY;
use burn_ternary::import::model_file::Stored;
use serde_json::{Value, json};

use crate::config::BitNetConfig;

/// The architecture llama.cpp's converter writes for BitNet models.
pub const ARCHITECTURE: &str = "bitnet";

/// `general.architecture` values read with this layout.
pub const READ_ARCHITECTURES: [&str; 3] = ["bitnet", "bitnet-b1.58", "bitnet-25"];

/// The per-layer names: GGUF suffix, Hugging Face suffix.
const LAYER: [(&str, &str); 11] = [
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_sub_norm", "self_attn.attn_sub_norm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
    ("ffn_sub_norm", "mlp.ffn_sub_norm"),
];

const GLOBAL: [(&str, &str); 3] = [
    ("token_embd", "model.embed_tokens"),
    ("output_norm", "model.norm"),
    ("output", "lm_head"),
];

/// The Hugging Face name of a llama.cpp BitNet tensor name, `None` for a name outside the
/// layout.
pub fn hf_name(gguf: &str) -> Option<String> {
    let base = gguf.strip_suffix(".weight")?;
    if let Some((_, hf)) = GLOBAL.iter().find(|(g, _)| *g == base) {
        return Some(format!("{hf}.weight"));
    }
    let rest = base.strip_prefix("blk.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (_, hf) = LAYER.iter().find(|(g, _)| *g == suffix)?;
    Some(format!("model.layers.{layer}.{hf}.weight"))
}

/// The llama.cpp name of a Hugging Face BitNet tensor name, `None` outside the layout.
pub fn gguf_name(hf: &str) -> Option<String> {
    let base = hf.strip_suffix(".weight")?;
    if let Some((g, _)) = GLOBAL.iter().find(|(_, h)| *h == base) {
        return Some(format!("{g}.weight"));
    }
    let rest = base.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (g, _) = LAYER.iter().find(|(_, h)| *h == suffix)?;
    Some(format!("blk.{layer}.{g}.weight"))
}

/// The GGUF key/values a model file read from GGUF carries (under [`METADATA_KEY`], typed as
/// `burn_ternary::import::gguf` writes them), by key; empty for other files.
pub fn key_values(metadata: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    let Some(list) = metadata
        .get(METADATA_KEY)
        .and_then(|text| serde_json::from_str::<Vec<Value>>(text).ok())
    else {
        return BTreeMap::new();
    };
    list.into_iter()
        .filter_map(|pair| Some((pair.get(0)?.as_str()?.to_string(), pair.get(1)?.clone())))
        .collect()
}

/// A typed GGUF value as a number (integers as they are, `f32_bits`/`f64_bits` decoded).
fn number(v: &Value) -> Option<f64> {
    let (tag, x) = v.as_object()?.iter().next()?;
    match tag.as_str() {
        // The f32's shortest decimal form, so that 1e-5 written as f32 reads back as 1e-5.
        "f32_bits" => f32::from_bits(u32::try_from(x.as_u64()?).ok()?)
            .to_string()
            .parse()
            .ok(),
        "f64_bits" => Some(f64::from_bits(x.as_u64()?)),
        "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "u64" | "i64" => x.as_f64(),
        _ => None,
    }
}

fn string(v: &Value) -> Option<&str> {
    v.get("str")?.as_str()
}

/// `general.architecture` when it is one of [`READ_ARCHITECTURES`].
pub fn architecture(kv: &BTreeMap<String, Value>) -> Option<&str> {
    kv.get("general.architecture")
        .and_then(string)
        .filter(|a| READ_ARCHITECTURES.contains(a))
}

/// The model's config from llama.cpp's keys of architecture `arch` (see the module docs) and
/// the tensors (the vocabulary is `token_embd`'s rows when `<arch>.vocab_size` is absent; the
/// embeddings are tied when there is no `output.weight`). Errors name the key and value:
/// a missing size, a RoPE scaling other than linear × 1, a partial rotary dimension.
pub fn config(
    arch: &str,
    kv: &BTreeMap<String, Value>,
    tensors: &BTreeMap<String, Stored>,
) -> Result<BitNetConfig, String> {
    let key = |k: &str| format!("{arch}.{k}");
    let num = |k: &str| -> Result<Option<f64>, String> {
        match kv.get(&key(k)) {
            None => Ok(None),
            Some(v) => number(v)
                .map(Some)
                .ok_or_else(|| format!("{} = {v} is not a number", key(k))),
        }
    };
    let size = |k: &str| -> Result<u64, String> {
        let v = num(k)?.ok_or_else(|| format!("{} is missing", key(k)))?;
        (v >= 1.0 && v.fract() == 0.0 && v <= u32::MAX as f64)
            .then_some(v as u64)
            .ok_or_else(|| format!("{} = {v} is not a positive integer", key(k)))
    };
    match (kv.get(&key("hidden_activation")).and_then(string), arch) {
        (Some("relu2"), _) | (None, "bitnet-b1.58" | "bitnet-25") => {}
        (Some(other), _) => {
            return Err(format!(
                "{} = {other:?}: BitNet b1.58 uses \"relu2\" (squared ReLU), nothing else is implemented",
                key("hidden_activation")
            ));
        }
        (None, _) => {
            return Err(format!(
                "{} is missing: llama.cpp runs such a `{arch}` file with SiLU (the 1bitLLM models), which is not implemented; a BitNet b1.58 (squared ReLU) file says \"relu2\" there",
                key("hidden_activation")
            ));
        }
    }
    if let Some(kind) = kv.get(&key("rope.scaling.type")).and_then(string) {
        let factor = num("rope.scaling.factor")?.unwrap_or(1.0);
        if kind != "none" && !(kind == "linear" && factor == 1.0) {
            return Err(format!(
                "{} = {kind:?} with factor {factor}: only unscaled RoPE is supported",
                key("rope.scaling.type")
            ));
        }
    }
    let hidden = size("embedding_length")?;
    let heads = size("attention.head_count")?;
    let head_dim = match num("attention.key_length")? {
        Some(_) => size("attention.key_length")?,
        None => hidden / heads.max(1),
    };
    if let Some(rot) = num("rope.dimension_count")?
        && rot != head_dim as f64
    {
        return Err(format!(
            "{} = {rot}: RoPE on part of a head ({head_dim}) is not supported",
            key("rope.dimension_count")
        ));
    }
    let vocab = match num("vocab_size")? {
        Some(_) => size("vocab_size")?,
        None => tensors
            .get("token_embd.weight")
            .map(|t| t.shape()[0] as u64)
            .ok_or("token_embd.weight is missing (the vocabulary size comes from it)")?,
    };
    let mut json = json!({
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": size("feed_forward_length")?,
        "num_hidden_layers": size("block_count")?,
        "num_attention_heads": heads,
        "num_key_value_heads": match num("attention.head_count_kv")? {
            Some(_) => size("attention.head_count_kv")?,
            None => heads,
        },
        "head_dim": head_dim,
        "max_position_embeddings": size("context_length")?,
        // llama.cpp's defaults when a file leaves them out.
        "rms_norm_eps": num("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
        "rope_theta": num("rope.freq_base")?.unwrap_or(10_000.0),
        "tie_word_embeddings": !tensors.contains_key("output.weight"),
    });
    for (gguf_key, hf_key) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
    ] {
        if let Some(id) = kv.get(gguf_key).and_then(number) {
            json[hf_key] = json!(id as u64);
        }
    }
    BitNetConfig::from_json(&json)
}

/// The `general.*` and `bitnet.*` key/values of `config` as llama.cpp's converter writes them
/// (plus `bitnet.hidden_activation = "relu2"`, see the module docs), in the typed form of
/// [`METADATA_KEY`]. Only the first EOS id is written (GGUF's `tokenizer.ggml.eos_token_id`
/// holds one).
pub fn metadata(config: &BitNetConfig, name: &str) -> Value {
    let a = ARCHITECTURE;
    let u32_ = |v: usize| json!({ "u32": v });
    let f32_ = |v: f64| json!({ "f32_bits": (v as f32).to_bits() });
    let mut list = vec![
        json!(["general.architecture", { "str": a }]),
        json!(["general.name", { "str": name }]),
        json!([format!("{a}.vocab_size"), u32_(config.vocab_size)]),
        json!([
            format!("{a}.context_length"),
            u32_(config.max_position_embeddings)
        ]),
        json!([format!("{a}.embedding_length"), u32_(config.hidden_size)]),
        json!([
            format!("{a}.feed_forward_length"),
            u32_(config.intermediate_size)
        ]),
        json!([format!("{a}.block_count"), u32_(config.num_hidden_layers)]),
        json!([
            format!("{a}.attention.head_count"),
            u32_(config.num_attention_heads)
        ]),
        json!([
            format!("{a}.attention.head_count_kv"),
            u32_(config.num_key_value_heads)
        ]),
        json!([format!("{a}.attention.key_length"), u32_(config.head_dim)]),
        json!([format!("{a}.attention.value_length"), u32_(config.head_dim)]),
        json!([format!("{a}.rope.dimension_count"), u32_(config.head_dim)]),
        json!([format!("{a}.rope.freq_base"), f32_(config.rope_theta)]),
        json!([
            format!("{a}.attention.layer_norm_rms_epsilon"),
            f32_(config.rms_norm_eps)
        ]),
        json!([format!("{a}.rope.scaling.type"), { "str": "linear" }]),
        json!([format!("{a}.hidden_activation"), { "str": "relu2" }]),
        json!([format!("{a}.rope.scaling.factor"), f32_(1.0)]),
    ];
    if let Some(bos) = config.bos_token_id {
        list.push(json!(["tokenizer.ggml.bos_token_id", u32_(bos as usize)]));
    }
    if let Some(&eos) = config.eos_token_id.first() {
        list.push(json!(["tokenizer.ggml.eos_token_id", u32_(eos as usize)]));
    }
    Value::Array(list)
}
