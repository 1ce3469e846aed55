//! `burn-ternary`: convert checkpoints between formats (packed ternary safetensors, GGUF
//! `TQ1_0`/`TQ2_0`/`I2_S`, plain safetensors), inspect them, verify two files hold the same
//! weights, run the kernel report, and (feature `remote`) serve devices to Burn Remote clients.
//! One file per subcommand.
//!
//! ```sh
//! burn-ternary convert model.safetensors -o model.ternary.safetensors
//! burn-ternary convert model.ternary.safetensors -o model.gguf --to gguf-tq2_0
//! burn-ternary inspect model.gguf
//! burn-ternary verify model.ternary.safetensors model.gguf
//! burn-ternary bench --quick
//! burn-ternary serve --port 3000 --device flex
//! ```

mod convert;
mod inspect;
#[cfg(feature = "remote")]
mod serve;
mod verify;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use burn_ternary::kernels::report::{self, ReportArgs};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "burn-ternary", version, about = "Ternary checkpoints for Burn")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Quantizer {
    /// BitNet b1.58: threshold 0.5·mean|W|, scale mean|W|.
    Absmean,
    /// TWN: threshold 0.7·mean|W|, scale mean of the kept |W|.
    Twn,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Scale {
    /// One scale per output channel.
    PerChannel,
    /// One scale per tensor.
    PerTensor,
}

/// What `convert` writes.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum To {
    /// burn-ternary's packed safetensors (2-bit codes, f32 scales; lossless).
    Packed,
    /// GGUF, ternary tensors as llama.cpp's TQ1_0 (1.69 bits/weight, f16 block scales).
    #[value(name = "gguf-tq1_0")]
    GgufTq1_0,
    /// GGUF, ternary tensors as llama.cpp's TQ2_0 (2.06 bits/weight, f16 block scales).
    #[value(name = "gguf-tq2_0")]
    GgufTq2_0,
    /// GGUF, ternary tensors as bitnet.cpp's I2_S (2 bits/weight, one f32 scale per tensor).
    #[value(name = "gguf-i2_s")]
    GgufI2S,
    /// A Hugging Face BitNet checkpoint directory, linear_class bitlinear (transformers'
    /// default: weight_scale holds 1/scale); needs a BitNet checkpoint as the source.
    HfBitnet,
    /// A Hugging Face BitNet checkpoint directory, linear_class autobitlinear (weight_scale
    /// holds the scale).
    HfAutobitlinear,
    /// Plain safetensors, ternary tensors dequantized to f32 (exact).
    F32,
    /// Plain safetensors, ternary tensors dequantized to f16 (rounding reported).
    F16,
    /// Plain safetensors, ternary tensors dequantized to bf16 (rounding reported).
    Bf16,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Convert a model file between formats. The input's format is recognised by content:
    /// safetensors, PyTorch, burn-ternary packed safetensors, GGUF (TQ1_0, TQ2_0, I2_S
    /// tensors are read as ternary), or a Hugging Face BitNet checkpoint directory. Float weights of plain checkpoints are ternarized (weights
    /// already in {-1, 0, 1} without loss, with their `<name>_scale` when present; embeddings
    /// and LM heads kept by default); tensors that are already ternary are carried over
    /// unchanged, and then (as for dense targets) float tensors are kept unless --include names
    /// them. Names, dtypes and bytes of every other tensor are kept exactly. Whatever the
    /// target format cannot hold exactly is either refused (naming the tensor) or reported.
    Convert {
        /// Input file.
        input: PathBuf,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
        /// Output format [default: packed; an output named *.gguf needs an explicit GGUF type].
        #[arg(long, value_enum)]
        to: Option<To>,
        /// Quantizer.
        #[arg(long, value_enum, default_value = "absmean")]
        quantizer: Quantizer,
        /// Scale granularity.
        #[arg(long, value_enum, default_value = "per-channel")]
        scale: Scale,
        /// Ternarize float tensors of rank 2–4 with at least this many elements.
        #[arg(long, default_value_t = 1024)]
        min_elements: usize,
        /// Ternarize only tensors whose name matches REGEX (repeatable; default: names
        /// ending in `weight`).
        #[arg(long = "include", value_name = "REGEX")]
        include: Vec<String>,
        /// Keep tensors whose name matches REGEX unchanged (repeatable; adds to the default
        /// exclusion).
        #[arg(long = "exclude", value_name = "REGEX")]
        exclude: Vec<String>,
        /// Ternarize embeddings and LM heads too (drops the default exclusion
        /// `(?i)embed|token_embd|(^|\.)(lm_head|wte|wpe)\.|^output\.weight$`).
        #[arg(long)]
        no_default_exclude: bool,
        /// Rename keys: REGEX=REPLACEMENT (repeatable).
        #[arg(long = "remap", value_parser = parse_remap)]
        remap: Vec<(String, String)>,
        /// State dict under this key of a PyTorch checkpoint.
        #[arg(long)]
        top_level_key: Option<String>,
    },
    /// List the tensors of a file (packed safetensors, GGUF, safetensors, PyTorch): shape,
    /// format, bits per weight, scale kind. Ternary payloads are decoded and checked.
    Inspect {
        /// File to read.
        file: PathBuf,
    },
    /// Decode two files (any formats `convert` reads) and report, tensor by tensor, whether
    /// their effective weights (code × scale for ternary tensors) are identical. Exit status:
    /// 0 identical, 1 different, 2 an error.
    Verify {
        /// First file.
        a: PathBuf,
        /// Second file.
        b: PathBuf,
    },
    /// The kernel report: our kernels against an f32 matmul, same run.
    Bench {
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Serve devices to Burn Remote clients over websocket, with the ternary ops registered:
    /// a client opens `--device ws://HOST:PORT` (burn::remote::RemoteHost::websocket) and its
    /// packed layers run here on our kernels. Prints the address, then runs until Ctrl+C or
    /// SIGTERM (exit status 0). Unencrypted, no authentication: bind to a trusted network.
    #[cfg(feature = "remote")]
    Serve {
        /// Address to listen on (0.0.0.0: every interface).
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// TCP port (0: any free port, printed).
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Devices to host, comma-separated, all of one backend: flex, wgpu, wgpu:cpu, wgpu:N,
        /// vulkan, vulkan:N. Clients pick one by position (`ws://HOST:PORT#N`).
        #[arg(long, value_delimiter = ',', default_value = "flex")]
        device: Vec<String>,
    },
}

pub(crate) fn quantizer_name(q: Quantizer) -> &'static str {
    match q {
        Quantizer::Absmean => "absmean",
        Quantizer::Twn => "twn",
    }
}

pub(crate) fn scale_name(s: Scale) -> &'static str {
    match s {
        Scale::PerChannel => "per-channel",
        Scale::PerTensor => "per-tensor",
    }
}

fn parse_remap(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| format!("expected REGEX=REPLACEMENT, got {s:?}"))
}

pub(crate) fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// A progress bar on stderr while tensors are converted (only on a terminal).
pub(crate) fn progress_bar() -> impl FnMut(usize, usize) {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if !tty {
            return;
        }
        let width = 30;
        let filled = done * width / total.max(1);
        eprint!(
            "\r  converting [{}{}] {done}/{total} tensors",
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        if done == total {
            eprintln!();
        }
        std::io::stderr().flush().ok();
    }
}

fn main() -> ExitCode {
    // `burn-ternary inspect FILE | head` closes stdout early: end as a program killed by
    // SIGPIPE would (status 141), without a panic message.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info)
    }));
    let result: Result<ExitCode, Box<dyn std::error::Error>> = match Cli::parse().command {
        cmd @ Command::Convert { .. } => convert::run(cmd)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Inspect { file } => inspect::run(file)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Verify { a, b } => verify::run(&a, &b).map_err(Into::into),
        Command::Bench { report } => {
            report::run(&report);
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "remote")]
        Command::Serve { bind, port, device } => {
            serve::run(bind, port, &device).map(|()| ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}
