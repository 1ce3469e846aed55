//! `cargo run --release --example bitnet_train -- --text FILE`
//!
//! Trains a small BitNet b1.58 model from scratch on a plain-text file (or fine-tunes one from a
//! Hugging Face BitNet directory with `--init`) with quantization-aware training — ternary
//! weights and int8 activations in every forward, straight-through gradients — through
//! burn-train, then freezes it and exports it as a Hugging Face BitNet directory and a GGUF
//! file that the `bitnet` example (and transformers / llama.cpp-family readers) load. Prints
//! the loss curve, validation loss and perplexity per epoch, step time, and a sample.
//! Checkpoints are written after every epoch; `--resume` continues an interrupted run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use burn::data::dataset::Dataset;
use burn::module::Module;
use burn_ternary::import::gguf::GgufTernary;
use burn_ternary::import::hf_bitnet::LinearClass;
use burn_ternary_bitnet::export::{export_gguf, export_gguf_llama, export_hf};
use burn_ternary_bitnet::generate::generate;
use burn_ternary_bitnet::train::{
    END_OF_TEXT_ID, byte_level_tokenizer, epoch_loss, last_complete_checkpoint, loss_curve, train,
};
use burn_ternary_bitnet::{
    BitNet, BitNetConfig, LoadOptions, Sampler, SamplingConfig, TokenWindows, Tokenizer,
    TrainOptions, load,
};
use clap::Parser;

/// Train (or fine-tune) a BitNet b1.58 model with QAT on a text file and export it.
#[derive(Parser)]
#[command(name = "bitnet_train")]
struct Args {
    /// Plain-text training corpus (UTF-8); its last --valid-fraction is held out.
    #[arg(long)]
    text: PathBuf,
    /// Output directory: checkpoints, metric logs, config.json, tokenizer.json, the exported
    /// model (hf/, model-<type>.gguf).
    #[arg(long, default_value = "artifacts/bitnet-train")]
    out: PathBuf,
    /// Fine-tune this Hugging Face BitNet directory instead of training from scratch (its
    /// config and tokenizer are used; packed weights are unfrozen exactly).
    #[arg(long)]
    init: Option<PathBuf>,
    /// tokenizer.json to train with (default: --init's, else a byte-level tokenizer).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Continue the run in --out after its last complete epoch.
    #[arg(long)]
    resume: bool,
    /// Decoder layers (from scratch).
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Model width (from scratch).
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// FFN width (from scratch).
    #[arg(long, default_value_t = 768)]
    intermediate: usize,
    /// Attention heads (from scratch).
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Key/value heads (from scratch; grouped-query attention when fewer than --heads).
    #[arg(long, default_value_t = 2)]
    kv_heads: usize,
    /// Tokens per training window.
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    /// Windows per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Passes over the corpus.
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1.5e-3)]
    lr: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f32,
    /// Held-out fraction of the corpus (its tail).
    #[arg(long, default_value_t = 0.1)]
    valid_fraction: f64,
    /// Seed of the initial weights and of the data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// GGUF type of the exported projections: tq2_0, tq1_0, i2_s, or none.
    #[arg(long, default_value = "tq2_0")]
    gguf: String,
    /// Train the same architecture with dense f32 projections instead of BitLinear: the
    /// full-precision baseline QAT is compared with (from scratch only; nothing is exported).
    #[arg(long)]
    full_precision: bool,
    /// Device: flex (CPU), wgpu or vulkan (`wgpu:cpu`, `wgpu:N`, `vulkan:N` for one of
    /// several adapters).
    #[arg(long, default_value = "flex")]
    device: String,
    /// Train data-parallel on several devices instead of `--device`, comma-separated (e.g.
    /// `wgpu:0,wgpu:1`): one worker per device on its share of the windows, gradients summed
    /// on the first device. Part of the run's settings (it sets the steps per epoch).
    #[arg(long, value_delimiter = ',')]
    devices: Vec<String>,
}

/// What a run was started with, written to `OUT/run.json` so that `--resume` continues the
/// same run (same windows, batches, schedule) whatever the flags say now.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct RunSettings {
    seq_len: usize,
    batch: usize,
    epochs: usize,
    lr: f64,
    warmup: usize,
    weight_decay: f32,
    valid_fraction: f64,
    seed: u64,
    full_precision: bool,
    /// Devices trained on (`--devices`, or `--device`); absent in runs from before the flag.
    #[serde(default)]
    devices: Vec<String>,
}

impl RunSettings {
    fn of(args: &Args) -> Self {
        Self {
            seq_len: args.seq_len,
            batch: args.batch,
            epochs: args.epochs,
            lr: args.lr,
            warmup: args.warmup,
            weight_decay: args.weight_decay,
            valid_fraction: args.valid_fraction,
            seed: args.seed,
            full_precision: args.full_precision,
            devices: if args.devices.is_empty() {
                vec![args.device.clone()]
            } else {
                args.devices.clone()
            },
        }
    }
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
    let gguf = match args.gguf.as_str() {
        "tq2_0" => Some(GgufTernary::Tq2_0),
        "tq1_0" => Some(GgufTernary::Tq1_0),
        "i2_s" => Some(GgufTernary::I2S),
        "none" => None,
        other => return Err(format!("--gguf {other:?}: tq2_0, tq1_0, i2_s or none").into()),
    };
    // Device names are checked before anything is written; a resumed run then uses its own.
    let parse = |names: &[String]| -> Result<Vec<burn::tensor::Device>, String> {
        names
            .iter()
            .map(|n| training::run::parse_device(n))
            .collect()
    };
    parse(&RunSettings::of(args).devices)?;
    let text =
        std::fs::read_to_string(&args.text).map_err(|e| format!("{}: {e}", args.text.display()))?;
    std::fs::create_dir_all(&args.out)?;
    let config_path = args.out.join("config.json");
    let tokenizer_path = args.out.join("tokenizer.json");
    let settings_path = args.out.join("run.json");
    // Before anything is written: a run that holds checkpoints is only ever resumed.
    let ckpt = args.out.join("checkpoint");
    let any_checkpoint = training::checkpoint::AtomicFileCheckpointer::last_epoch(&ckpt, "model");
    if any_checkpoint.is_some() && !args.resume {
        return Err(format!(
            "{} already holds checkpoints: pass --resume to continue that run, or choose another --out",
            ckpt.display()
        )
        .into());
    }
    let resuming = args.resume && last_complete_checkpoint(&ckpt).is_some();
    if args.resume && !resuming {
        println!(
            "--resume: no complete checkpoint in {}, starting the run",
            ckpt.display()
        );
    }
    let settings = if resuming && settings_path.exists() {
        let saved: RunSettings = serde_json::from_str(&std::fs::read_to_string(&settings_path)?)
            .map_err(|e| format!("{}: {e}", settings_path.display()))?;
        if saved != RunSettings::of(args) {
            println!(
                "resuming with the run's own settings from {} (the flags given now differ): {saved:?}",
                settings_path.display()
            );
        }
        saved
    } else {
        RunSettings::of(args)
    };
    let mut devices = if settings.devices.is_empty() {
        parse(std::slice::from_ref(&args.device))?
    } else {
        parse(&settings.devices)?
    };
    let device = devices.remove(0);

    // The run's config and tokenizer are written once; a resumed run reads them back, so it
    // continues the same model whatever the shape flags say now.
    if args.full_precision && args.init.is_some() {
        return Err("--full-precision trains the f32 baseline from scratch: drop --init".into());
    }
    let (model, tokenizer) = if resuming && config_path.exists() {
        let config = BitNetConfig::from_file(&config_path)?;
        let model = if settings.full_precision {
            BitNet::init_dense(&config, &device)
        } else {
            BitNet::init(&config, &device)
        };
        (model, Tokenizer::from_file(&tokenizer_path)?)
    } else {
        let (model, source) = match &args.init {
            Some(dir) => {
                let model = load(dir, LoadOptions::default(), &device)?.unfreeze();
                (
                    model,
                    Some(args.tokenizer.clone().unwrap_or(dir.join("tokenizer.json"))),
                )
            }
            None => {
                let source = args.tokenizer.clone();
                let vocab = match &source {
                    Some(path) => Tokenizer::from_file(path)?.vocab_size(),
                    None => 257,
                };
                device.seed(args.seed);
                let config = scratch_config(args, vocab)?;
                let model = if args.full_precision {
                    BitNet::init_dense(&config, &device)
                } else {
                    BitNet::init(&config, &device)
                };
                (model, source)
            }
        };
        match source {
            Some(path) => copy_atomic(&path, &tokenizer_path)?,
            None => {
                let tmp = tokenizer_path.with_extension("json.tmp");
                byte_level_tokenizer()?
                    .save(&tmp, true)
                    .map_err(|e| format!("{}: {e}", tmp.display()))?;
                std::fs::rename(&tmp, &tokenizer_path)?;
            }
        }
        write_atomic(
            &config_path,
            &serde_json::to_string_pretty(&model.config.to_json())?,
        )?;
        write_atomic(&settings_path, &serde_json::to_string_pretty(&settings)?)?;
        let tokenizer = Tokenizer::from_file(&tokenizer_path)?;
        (model, tokenizer)
    };
    tokenizer.check(&model.config)?;

    let clock = Instant::now();
    let tokens = tokenizer.encode(&text)?;
    let encode_s = clock.elapsed().as_secs_f64();
    let (train_set, valid_set) =
        TokenWindows::split(tokens, settings.seq_len, settings.valid_fraction)?;
    let c = &model.config;
    let params: usize = model.num_params();
    println!(
        "{}: {} training / {} validation windows of {} tokens (encoded in {encode_s:.2} s) | model: {} layers, hidden {}, ffn {}, {} heads ({} kv), vocab {}, {:.2} M parameters | {}",
        args.text.display(),
        train_set.len(),
        valid_set.len(),
        settings.seq_len,
        c.num_hidden_layers,
        c.hidden_size,
        c.intermediate_size,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.vocab_size,
        params as f64 / 1e6,
        if settings.full_precision {
            "full precision: dense f32 projections (the baseline, not BitNet)"
        } else {
            "QAT: ternary weights (absmean), int8 activations per token"
        }
    );

    let mut options = TrainOptions::new(&args.out);
    options.epochs = settings.epochs;
    options.batch_size = settings.batch;
    options.lr = settings.lr;
    options.warmup_steps = settings.warmup;
    options.weight_decay = settings.weight_decay;
    options.seed = settings.seed;
    options.extra_devices = devices;
    options.resume = args.resume;
    let sample_prompt: String = text
        .chars()
        .skip(text.chars().count() * 9 / 10)
        .take(24)
        .collect();
    let (trained, report) = train(model, train_set, valid_set, &options, &device)?;
    let steps = report.steps_per_epoch * settings.epochs.saturating_sub(report.resumed_after);
    if steps == 0 {
        println!(
            "all {} epochs were already trained: the last checkpoint is exported",
            settings.epochs
        );
    } else {
        println!(
            "trained {} steps in {:.1} s: {:.3} s/step, {:.0} tokens/s{}",
            steps,
            report.seconds,
            report.seconds / steps.max(1) as f64,
            (steps * report.tokens_per_step) as f64 / report.seconds,
            if report.resumed_after > 0 {
                format!(" (resumed after epoch {})", report.resumed_after)
            } else {
                String::new()
            }
        );
    }
    print_curve(&args.out, settings.epochs, report.steps_per_epoch);
    if settings.full_precision {
        println!("full-precision baseline: nothing to pack or export");
        return Ok(());
    }

    let packed = trained.freeze()?;
    let hf = args.out.join("hf");
    export_hf(
        &packed,
        &hf,
        LinearClass::AutoBitLinear,
        Some(&tokenizer_path),
    )?;
    println!(
        "exported {} (Hugging Face BitNet, autobitlinear)",
        hf.display()
    );
    if let Some(ty) = gguf {
        let name = format!("model-{}.gguf", args.gguf);
        let path = args.out.join(&name);
        // llama.cpp's BitNet layout when it can hold the model (tied embeddings), else the
        // Hugging Face names with the config embedded; `load` reads either.
        let notes = if packed.lm_head.is_none() {
            export_gguf_llama(&packed, &path, ty, "bitnet_train")?
        } else {
            println!(
                "  gguf: untied LM head: Hugging Face tensor names (llama.cpp's bitnet layout ties it)"
            );
            export_gguf(&packed, &path, ty)?
        };
        for note in notes.iter().take(2) {
            println!("  gguf: {note}");
        }
        if notes.len() > 2 {
            println!(
                "  gguf: … and {} more notes of the same kind",
                notes.len() - 2
            );
        }
        println!("exported {}", path.display());
    }

    let prompt = tokenizer.encode(&sample_prompt)?;
    let mut sampler = Sampler::new(SamplingConfig {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: args.seed,
    });
    let out = generate(&packed, &prompt, 64, &mut sampler, false, |_| {})?;
    let mut all = prompt.clone();
    all.extend(&out.tokens);
    println!(
        "sample (greedy, packed W2A8 model): {:?}",
        tokenizer.decode(&all)?
    );
    println!(
        "run it: cargo run --release --example bitnet -- --model {} --prompt {:?} -n 64",
        hf.display(),
        sample_prompt
    );
    Ok(())
}

/// The model a from-scratch run trains: the flags' shapes, a context of twice the window,
/// the byte-level tokenizer's end-of-text token as EOS when it is in use.
fn scratch_config(args: &Args, vocab: usize) -> Result<BitNetConfig, Box<dyn std::error::Error>> {
    let mut json = serde_json::json!({
        "vocab_size": vocab,
        "hidden_size": args.hidden,
        "intermediate_size": args.intermediate,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "max_position_embeddings": (2 * args.seq_len).max(256),
        "rope_theta": 10000.0,
        "tie_word_embeddings": true,
    });
    if args.tokenizer.is_none() {
        json["eos_token_id"] = serde_json::json!(END_OF_TEXT_ID);
    }
    BitNetConfig::from_json(&json).map_err(|e| format!("model shape: {e}").into())
}

/// Training loss every tenth of the run (mean of the steps in between) and each epoch's
/// validation loss.
fn print_curve(out: &Path, epochs: usize, steps_per_epoch: usize) {
    let curve = loss_curve(out, epochs);
    if curve.is_empty() {
        return;
    }
    let chunk = curve.len().div_ceil(10);
    let points: Vec<String> = curve
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| {
            format!(
                "step {}: {:.3}",
                i * chunk + c.len(),
                c.iter().sum::<f64>() / c.len() as f64
            )
        })
        .collect();
    println!("training loss (mean per span): {}", points.join(", "));
    for e in 1..=epochs {
        if let Some(v) = epoch_loss(out, "valid", e) {
            println!(
                "epoch {e} (steps {}–{}): validation loss {v:.3}, perplexity {:.2}",
                (e - 1) * steps_per_epoch + 1,
                e * steps_per_epoch,
                v.exp()
            );
        }
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn copy_atomic(from: &Path, to: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = to.with_extension("json.tmp");
    std::fs::copy(from, &tmp).map_err(|e| format!("{}: {e}", from.display()))?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}
