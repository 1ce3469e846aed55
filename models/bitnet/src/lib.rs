//! BitNet b1.58 language models on burn-ternary.
//!
//! The architecture is Hugging Face `transformers`' `BitNetForCausalLM` (BitNet b1.58,
//! arXiv:2402.17764; the 2B-4T model, arXiv:2504.12285): a Llama-style decoder with RMSNorm,
//! rotary position embeddings (RoPE, `rotate_half` convention), grouped-query attention, an
//! extra RMSNorm before `o_proj` and before `down_proj` ("sub-norms"), a squared-ReLU gated FFN,
//! and every projection a BitLinear layer — absmean ternary weights with one scale per tensor
//! and per-token int8 (absmax) activations — built from [`burn_ternary::nn::TernaryLinear`].
//! Embeddings, norms and the LM head stay in floating point; for generation the LM head can
//! run as bf16/f16 on the host ([`BitNet::with_half_lm_head`]).
//!
//! * [`BitNetConfig`]: every hyper-parameter, read from `config.json`;
//! * [`BitNet`]: the model, its forward over a [`KvCache`];
//! * [`load`](mod@load): a Hugging Face model directory (packed `uint8` weights or bf16 master
//!   weights, sharded or not) or a GGUF file through `burn_ternary::import`;
//! * [`generate`](mod@generate): sampling (greedy, temperature, top-k, top-p, seeded) and a
//!   streaming generation loop; [`Tokenizer`]: `tokenizer.json` through the `tokenizers` crate;
//! * [`train`](mod@train): QAT training and fine-tuning through burn-train (next-token loss,
//!   AdamW, warm-up + cosine schedule, atomic checkpoints, resume);
//! * [`export`](mod@export): a trained model to a Hugging Face BitNet directory or GGUF;
//! * [`gguf_names`]: llama.cpp's GGUF layout of BitNet models (read by [`load`](mod@load), written
//!   by [`export::export_gguf_llama`]).

pub mod config;
pub mod error;
pub mod export;
pub mod generate;
pub mod gguf_names;
pub mod load;
pub mod model;
pub mod tokenizer;
pub mod train;

pub use config::BitNetConfig;
pub use error::BitNetError;
pub use generate::{Generation, Sampler, SamplingConfig};
pub use load::{LoadOptions, load};
pub use model::{BitNet, HalfHead, KvCache};
pub use ternary_kernels::cpu::HalfKind;
pub use tokenizer::Tokenizer;
pub use train::{TokenWindows, TrainOptions, TrainReport};
