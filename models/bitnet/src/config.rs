//! `config.json` of a BitNet b1.58 model, as `transformers`' `BitNetConfig` writes it.

use std::path::Path;

use serde_json::Value;

use crate::error::BitNetError;

/// The hyper-parameters of a [`BitNet`](crate::BitNet) model (names as in `BitNetConfig`).
///
/// Defaults for absent keys are `BitNetConfig`'s own (transformers 5.24): `num_key_value_heads`
/// = `num_attention_heads`, `rms_norm_eps` 1e-5, `rope_theta` 500 000,
/// `max_position_embeddings` 2048, `tie_word_embeddings` false, `hidden_act` `"relu2"`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BitNetConfig {
    /// Vocabulary size (rows of the embedding and of the LM head).
    pub vocab_size: usize,
    /// Model width `d`.
    pub hidden_size: usize,
    /// FFN width (`gate_proj`/`up_proj` outputs).
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention: each serves
    /// `num_attention_heads / num_key_value_heads` query heads).
    pub num_key_value_heads: usize,
    /// Width of one head (`hidden_size / num_attention_heads` unless given).
    pub head_dim: usize,
    /// Context length in positions; longer inputs are refused.
    pub max_position_embeddings: usize,
    /// ε of every RMSNorm.
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// Whether the LM head is the embedding matrix (no `lm_head.weight` stored).
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids (generation stops at any of them).
    pub eos_token_id: Vec<u32>,
}

impl BitNetConfig {
    /// Reads `config.json`. Errors ([`BitNetError::Config`], naming the key and value): a
    /// missing size, `hidden_act` other than `relu2`, `attention_bias` true, a RoPE type other
    /// than `default`, heads that do not divide the widths, a zero size.
    pub fn from_file(path: &Path) -> Result<Self, BitNetError> {
        let text = std::fs::read_to_string(path).map_err(|e| BitNetError::Config {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let json: Value = serde_json::from_str(&text).map_err(|e| BitNetError::Config {
            path: path.to_path_buf(),
            msg: format!("not JSON: {e}"),
        })?;
        Self::from_json(&json).map_err(|msg| BitNetError::Config {
            path: path.to_path_buf(),
            msg,
        })
    }

    /// The config of a parsed `config.json` object; the error says which key is wrong.
    pub fn from_json(json: &Value) -> Result<Self, String> {
        let size = |key: &str| -> Result<usize, String> {
            match json.get(key) {
                Some(v) => v
                    .as_u64()
                    .filter(|&n| n > 0)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("{key} = {v} is not a positive integer")),
                None => Err(format!("{key} is missing")),
            }
        };
        let optional_size = |key: &str, default: usize| -> Result<usize, String> {
            match json.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(_) => size(key),
            }
        };
        let float = |v: &Value, key: &str| -> Result<f64, String> {
            v.as_f64()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| format!("{key} = {v} is not a positive number"))
        };
        if let Some(act) = json.get("hidden_act")
            && act != "relu2"
        {
            return Err(format!(
                "hidden_act = {act}: BitNet b1.58 uses \"relu2\" (squared ReLU), nothing else is implemented"
            ));
        }
        if json.get("attention_bias") == Some(&Value::Bool(true)) {
            return Err("attention_bias = true is not supported (BitNet has no biases)".into());
        }
        let vocab_size = size("vocab_size")?;
        let hidden_size = size("hidden_size")?;
        let intermediate_size = size("intermediate_size")?;
        let num_hidden_layers = size("num_hidden_layers")?;
        let num_attention_heads = size("num_attention_heads")?;
        let num_key_value_heads = optional_size("num_key_value_heads", num_attention_heads)?;
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(format!(
                "num_attention_heads = {num_attention_heads} is not a multiple of num_key_value_heads = {num_key_value_heads}"
            ));
        }
        let head_dim = match json.get("head_dim") {
            None | Some(Value::Null) => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(format!(
                        "hidden_size = {hidden_size} is not a multiple of num_attention_heads = {num_attention_heads}"
                    ));
                }
                hidden_size / num_attention_heads
            }
            Some(_) => size("head_dim")?,
        };
        if head_dim % 2 != 0 {
            return Err(format!("head_dim = {head_dim} is odd: RoPE rotates pairs"));
        }
        let max_position_embeddings = optional_size("max_position_embeddings", 2048)?;
        let rms_norm_eps = match json.get("rms_norm_eps") {
            None | Some(Value::Null) => 1e-5,
            Some(v) => float(v, "rms_norm_eps")?,
        };
        // transformers ≥ 5 writes `rope_parameters`; older files a top-level `rope_theta`.
        let rope = json
            .get("rope_parameters")
            .or_else(|| json.get("rope_scaling"));
        if let Some(rope) = rope.filter(|r| !r.is_null()) {
            let kind = rope
                .get("rope_type")
                .or_else(|| rope.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("default");
            if kind != "default" {
                return Err(format!(
                    "rope_type = {kind:?} is not supported (only the default RoPE)"
                ));
            }
        }
        let rope_theta = match json
            .get("rope_parameters")
            .and_then(|r| r.get("rope_theta"))
            .or_else(|| json.get("rope_theta"))
        {
            None | Some(Value::Null) => 500_000.0,
            Some(v) => float(v, "rope_theta")?,
        };
        let tie_word_embeddings = match json.get("tie_word_embeddings") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(format!("tie_word_embeddings = {v} is not a boolean")),
        };
        let id = |v: &Value| -> Result<u32, String> {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| (n as usize) < vocab_size)
                .ok_or_else(|| format!("token id {v} is not in the vocabulary of {vocab_size}"))
        };
        let bos_token_id = match json.get("bos_token_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(id(v)?),
        };
        let eos_token_id = match json.get("eos_token_id") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids.iter().map(id).collect::<Result<_, _>>()?,
            Some(v) => vec![id(v)?],
        };
        Ok(Self {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings,
            rms_norm_eps,
            rope_theta,
            tie_word_embeddings,
            bos_token_id,
            eos_token_id,
        })
    }

    /// `config.json` as transformers writes a `BitNetConfig` (`model_type` `bitnet`,
    /// `architectures` `["BitNetForCausalLM"]`, `hidden_act` `relu2`, top-level `rope_theta`
    /// as transformers 4.x reads it): what an exported model directory carries.
    /// [`BitNetConfig::from_json`] reads it back to the same config. The quantization block is
    /// added by the writer of the weights.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "architectures": ["BitNetForCausalLM"],
            "model_type": "bitnet",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "hidden_act": "relu2",
            "attention_bias": false,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "use_cache": true,
            "torch_dtype": "float32",
        })
    }

    /// BitNet-b1.58-2B-4T's shapes (`microsoft/bitnet-b1.58-2B-4T`'s `config.json`): for
    /// benchmarks with random weights.
    pub fn bitnet_b1_58_2b_4t() -> Self {
        Self {
            vocab_size: 128_256,
            hidden_size: 2560,
            intermediate_size: 6912,
            num_hidden_layers: 30,
            num_attention_heads: 20,
            num_key_value_heads: 5,
            head_dim: 128,
            max_position_embeddings: 4096,
            rms_norm_eps: 1e-5,
            rope_theta: 500_000.0,
            tie_word_embeddings: true,
            bos_token_id: Some(128_000),
            eos_token_id: vec![128_001],
        }
    }

    /// Width of the query projection (`num_attention_heads · head_dim`).
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of the key and value projections (`num_key_value_heads · head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// `(name suffix, [out, in])` of each BitLinear projection in one decoder layer, in
    /// checkpoint order.
    pub fn projections(&self) -> [(&'static str, [usize; 2]); 7] {
        let (d, f) = (self.hidden_size, self.intermediate_size);
        [
            ("self_attn.q_proj", [self.q_dim(), d]),
            ("self_attn.k_proj", [self.kv_dim(), d]),
            ("self_attn.v_proj", [self.kv_dim(), d]),
            ("self_attn.o_proj", [d, self.q_dim()]),
            ("mlp.gate_proj", [f, d]),
            ("mlp.up_proj", [f, d]),
            ("mlp.down_proj", [d, f]),
        ]
    }
}
