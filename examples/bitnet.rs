//! `cargo run --release --example bitnet -- --model DIR --prompt "..." -n 64`
//!
//! Loads a BitNet b1.58 model (a Hugging Face BitNet directory: `config.json`, packed or bf16
//! master safetensors, `tokenizer.json`), generates text from a prompt on the CPU with the
//! packed W2A8 kernels and a KV cache, streaming each token, and prints prefill and decode
//! tokens per second.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn_ternary::quant::ActivationQuant;
use burn_ternary_bitnet::generate::generate;
use burn_ternary_bitnet::{HalfKind, LoadOptions, Sampler, SamplingConfig, Tokenizer, load};
use clap::Parser;

/// Generate text with a BitNet b1.58 model (Hugging Face directory) on burn-ternary's packed
/// ternary kernels: prefill and decode tokens/s are printed at the end.
#[derive(Parser)]
#[command(name = "bitnet")]
struct Args {
    /// Model directory: config.json, model.safetensors (or shards + index), tokenizer.json.
    #[arg(long)]
    model: PathBuf,
    /// tokenizer.json to use (default: the model directory's).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// The prompt (the tokenizer adds BOS).
    #[arg(long)]
    prompt: String,
    /// New tokens to generate at most.
    #[arg(short = 'n', long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Sample among the k most likely tokens only (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling: the smallest set of tokens whose probability reaches p.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Random seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep generating after an end-of-sequence token.
    #[arg(long)]
    ignore_eos: bool,
    /// Device: flex (the CPU kernels), wgpu (the CubeCL kernels) or vulkan.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Exact f32 activations instead of BitNet's per-token int8 (W2A8).
    #[arg(long)]
    f32_activations: bool,
    /// The LM head's format: f32 (as loaded), or bf16 / f16 (rounded to nearest, exact for
    /// a checkpoint stored in that type; half the bytes per decode step, computed on the CPU).
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16", "f16"])]
    lm_head: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if !(args.temperature.is_finite() && args.temperature >= 0.0) {
        return Err(format!("--temperature {} must be ≥ 0", args.temperature).into());
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        return Err(format!("--top-p {} must be in (0, 1]", args.top_p).into());
    }
    let device = training::run::parse_device(&args.device)?;
    let started = Instant::now();
    let activation = if args.f32_activations {
        ActivationQuant::None
    } else {
        ActivationQuant::Int8PerToken
    };
    let head = match args.lm_head.as_str() {
        "bf16" => Some(HalfKind::Bf16),
        "f16" => Some(HalfKind::F16),
        _ => None,
    };
    let model = load(&args.model, LoadOptions { activation }, &device)?
        .fuse_projections()
        .with_half_lm_head(head);
    let tokenizer_path = args
        .tokenizer
        .clone()
        .unwrap_or_else(|| args.model.join("tokenizer.json"));
    let tokenizer = Tokenizer::from_file(&tokenizer_path)?;
    tokenizer.check(&model.config)?;
    let c = &model.config;
    eprintln!(
        "loaded {} in {:.2} s: {} layers, hidden {}, {} heads ({} kv), vocab {}, context {}, LM head {}",
        args.model.display(),
        started.elapsed().as_secs_f64(),
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.vocab_size,
        c.max_position_embeddings,
        args.lm_head
    );
    let prompt = tokenizer.encode(&args.prompt)?;
    let mut sampler = Sampler::new(SamplingConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
    });
    // Stream: decode the prompt and everything generated so far, print what was added (a
    // token's text can depend on its neighbours, e.g. a leading space or a split UTF-8 char).
    let mut generated = prompt.clone();
    let base = tokenizer.decode(&prompt)?;
    let mut shown = base.len();
    // `Stdout` rather than its lock: the callback runs on a rayon thread (see `generate`).
    let mut stdout = std::io::stdout();
    write!(stdout, "{base}")?;
    stdout.flush()?;
    let mut stream_error = None;
    let out = generate(
        &model,
        &prompt,
        args.max_new_tokens,
        &mut sampler,
        args.ignore_eos,
        |token| {
            generated.push(token);
            match tokenizer.decode(&generated) {
                Ok(text) if text.len() >= shown && text.is_char_boundary(shown) => {
                    let _ = write!(stdout, "{}", &text[shown..]);
                    let _ = stdout.flush();
                    shown = text.len();
                }
                Ok(_) => {}
                Err(e) => stream_error = Some(e),
            }
        },
    )?;
    writeln!(stdout)?;
    if let Some(e) = stream_error {
        return Err(e.into());
    }
    eprintln!(
        "prompt {} tokens: prefill {:.1} tokens/s ({:.3} s); {} new tokens: decode {:.2} tokens/s{}",
        out.prompt_tokens,
        out.prefill_tokens_per_s(),
        out.prefill.as_secs_f64(),
        out.tokens.len(),
        out.decode_tokens_per_s(),
        if out.stopped { " (stopped at EOS)" } else { "" }
    );
    Ok(())
}
