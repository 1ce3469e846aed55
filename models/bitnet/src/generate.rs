//! Token sampling and the generation loop (prefill the prompt once, then one cached decode
//! step per new token).

use std::time::{Duration, Instant};

use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::BitNetError;
use crate::model::BitNet;

/// How the next token is chosen from the logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingConfig {
    /// Softmax temperature; `0` = greedy (argmax, ties to the lowest id).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (`0` = all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`
    /// (nucleus sampling; `1.0` = all).
    pub top_p: f32,
    /// Seed of the random generator: the same seed, model and prompt give the same text.
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// A seeded sampler (see [`SamplingConfig`]).
#[derive(Debug)]
pub struct Sampler {
    config: SamplingConfig,
    rng: StdRng,
}

impl Sampler {
    /// A sampler. Panics (naming the value) on a negative or non-finite temperature or a
    /// `top_p` outside (0, 1].
    pub fn new(config: SamplingConfig) -> Self {
        assert!(
            config.temperature.is_finite() && config.temperature >= 0.0,
            "Sampler: temperature {} must be finite and ≥ 0",
            config.temperature
        );
        assert!(
            config.top_p > 0.0 && config.top_p <= 1.0,
            "Sampler: top_p {} must be in (0, 1]",
            config.top_p
        );
        Self {
            config,
            rng: StdRng::seed_from_u64(config.seed),
        }
    }

    /// The next token for one row of logits `[vocab]`.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let argmax = || {
            let mut best = 0;
            for (i, &l) in logits.iter().enumerate() {
                if l > logits[best] {
                    best = i;
                }
            }
            best as u32
        };
        if self.config.temperature == 0.0 || logits.len() <= 1 {
            return argmax();
        }
        // Candidates sorted by logit (stable: ties keep the lower id first).
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if self.config.top_k > 0 {
            order.truncate(self.config.top_k);
        }
        let max = logits[order[0]];
        let t = self.config.temperature;
        let mut probs: Vec<f64> = order
            .iter()
            .map(|&i| (((logits[i] - max) / t) as f64).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.config.top_p < 1.0 {
            let mut acc = 0.0;
            let keep = probs
                .iter()
                .position(|&p| {
                    acc += p;
                    acc >= f64::from(self.config.top_p)
                })
                .map_or(probs.len(), |i| i + 1);
            order.truncate(keep);
            probs.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut r = self.rng.random::<f64>() * total;
        for (&i, &p) in order.iter().zip(&probs) {
            if r < p {
                return i as u32;
            }
            r -= p;
        }
        order[order.len() - 1] as u32
    }
}

/// What a [`generate`] call produced and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The new tokens (the stop token included when one ended the run).
    pub tokens: Vec<u32>,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Time of the prompt's forward (and the first token's sampling).
    pub prefill: Duration,
    /// Time of the decode steps (one forward per token after the first).
    pub decode: Duration,
    /// Whether a stop token ended the run.
    pub stopped: bool,
}

impl Generation {
    /// Prompt tokens per second of the prefill.
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.as_secs_f64()
    }

    /// New tokens per second of the decode steps (`tokens − 1` forwards).
    pub fn decode_tokens_per_s(&self) -> f64 {
        (self.tokens.len().saturating_sub(1)) as f64 / self.decode.as_secs_f64()
    }
}

/// Checks a prompt against the model: non-empty, ids in the vocabulary, and prompt plus `new`
/// tokens within `max_position_embeddings`.
pub fn check_prompt(model: &BitNet, prompt: &[u32], new: usize) -> Result<(), BitNetError> {
    let c = &model.config;
    if prompt.is_empty() {
        return Err(BitNetError::EmptyPrompt);
    }
    if let Some((position, &id)) = prompt
        .iter()
        .enumerate()
        .find(|(_, id)| **id as usize >= c.vocab_size)
    {
        return Err(BitNetError::TokenOutOfRange {
            id,
            position,
            vocab: c.vocab_size,
        });
    }
    if prompt.len() + new > c.max_position_embeddings {
        return Err(BitNetError::ContextOverflow {
            prompt: prompt.len(),
            new,
            context: c.max_position_embeddings,
        });
    }
    Ok(())
}

/// Generates up to `max_new` tokens after `prompt`, calling `on_token` with each new token as
/// soon as it is chosen (for streaming). Stops early at one of the config's EOS ids unless
/// `ignore_eos`.
///
/// The loop runs on a thread of rayon's pool, the one the CPU kernels fork onto: a decode
/// step is ~200 small matrix-vector products, and each one forked from a thread outside the
/// pool pays a hand-off both ways to workers that have fallen asleep between products
/// (measured here: 81 µs instead of 30 µs for a 640 × 2560 GEMV after a 200 µs pause; the
/// decode GEMVs now run on the kernels' spinning pool, and what stays is the prompt's GEMMs:
/// prefill 116 → 136 tokens/s at 2B shapes). So `on_token` runs on a rayon worker: it must not
/// block waiting for other rayon work (with one rayon thread that would never run), and
/// generations started from several threads at once may run one inside another's waits.
///
/// Errors: see [`check_prompt`] (checked before any compute).
pub fn generate(
    model: &BitNet,
    prompt: &[u32],
    max_new: usize,
    sampler: &mut Sampler,
    ignore_eos: bool,
    on_token: impl FnMut(u32) + Send,
) -> Result<Generation, BitNetError> {
    check_prompt(model, prompt, max_new)?;
    let mut result = None;
    rayon::scope(|_| {
        result = Some(generate_here(
            model, prompt, max_new, sampler, ignore_eos, on_token,
        ))
    });
    result.expect("the scope ran the generation")
}

fn generate_here(
    model: &BitNet,
    prompt: &[u32],
    max_new: usize,
    sampler: &mut Sampler,
    ignore_eos: bool,
    mut on_token: impl FnMut(u32),
) -> Result<Generation, BitNetError> {
    let device = model.embed_tokens.val().device();
    let mut cache = model.new_cache();
    let mut tokens = Vec::with_capacity(max_new);
    let mut stopped = false;
    let mut input: Vec<u32> = prompt.to_vec();
    let start = Instant::now();
    let mut prefill = Duration::ZERO;
    while tokens.len() < max_new {
        let t = input.len();
        let ids: Vec<i32> = input.iter().map(|&id| id as i32).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, t]), &device);
        // Only the last position's logits are needed: the LM head (vocab × hidden, the
        // largest matrix of the model) runs on one row, not on every prompt token.
        let hidden = model.hidden(ids, Some(&mut cache)).narrow(1, t - 1, 1);
        let last: Vec<f32> = model
            .logits(hidden)
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .expect("f32 logits");
        let next = sampler.sample(&last);
        if tokens.is_empty() {
            prefill = start.elapsed();
        }
        tokens.push(next);
        on_token(next);
        if !ignore_eos && model.config.eos_token_id.contains(&next) {
            stopped = true;
            break;
        }
        input = vec![next];
    }
    let decode = start.elapsed() - prefill;
    Ok(Generation {
        tokens,
        prompt_tokens: prompt.len(),
        prefill,
        decode,
        stopped,
    })
}
