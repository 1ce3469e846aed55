//! `burn-ternary`: convert checkpoints to packed ternary files, inspect them, and run the
//! kernel report.
//!
//! ```sh
//! burn-ternary convert model.safetensors -o model.ternary.safetensors
//! burn-ternary inspect model.ternary.safetensors
//! burn-ternary bench --quick
//! ```

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use burn_ternary::import::container::{self, Action, ConvertOptions, DEFAULT_EXCLUDE};
use burn_ternary::import::{ImportError, ImportOptions};
use burn_ternary::kernels::quant::{Granularity, Method};
use burn_ternary::kernels::report::{self, ReportArgs};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "burn-ternary", version, about = "Ternary checkpoints for Burn")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Quantizer {
    /// BitNet b1.58: threshold 0.5·mean|W|, scale mean|W|.
    Absmean,
    /// TWN: threshold 0.7·mean|W|, scale mean of the kept |W|.
    Twn,
}

#[derive(Clone, Copy, ValueEnum)]
enum Scale {
    /// One scale per output channel.
    PerChannel,
    /// One scale per tensor.
    PerTensor,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a safetensors or PyTorch checkpoint (recognised by content) into a packed
    /// ternary (2-bit) safetensors file. Names, dtypes and bytes of every tensor that is not
    /// ternarized are kept exactly (a `<name>_scale` folded into its packed weight excepted); weights already in {-1, 0, 1} are packed without loss
    /// (with their `<name>_scale` when present); embeddings and LM heads are kept by default.
    Convert {
        /// Input checkpoint.
        input: PathBuf,
        /// Output file (safetensors container with packed weights).
        #[arg(short, long)]
        output: PathBuf,
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
        /// `(?i)embed|(^|\.)(lm_head|wte|wpe)\.`).
        #[arg(long)]
        no_default_exclude: bool,
        /// Rename keys: REGEX=REPLACEMENT (repeatable).
        #[arg(long = "remap", value_parser = parse_remap)]
        remap: Vec<(String, String)>,
        /// State dict under this key of a PyTorch checkpoint.
        #[arg(long)]
        top_level_key: Option<String>,
    },
    /// List the tensors of a packed file (or any checkpoint): shape, format, bits per weight,
    /// scale kind.
    Inspect {
        /// File to read.
        file: PathBuf,
    },
    /// The kernel report: our kernels against an f32 matmul, same run.
    Bench {
        #[command(flatten)]
        report: ReportArgs,
    },
}

fn quantizer_name(q: Quantizer) -> &'static str {
    match q {
        Quantizer::Absmean => "absmean",
        Quantizer::Twn => "twn",
    }
}

fn scale_name(s: Scale) -> &'static str {
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

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// A progress bar on stderr while tensors are converted (only on a terminal).
fn progress_bar() -> impl FnMut(usize, usize) {
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

fn convert(cmd: Command) -> Result<(), ImportError> {
    let Command::Convert {
        input,
        output,
        quantizer,
        scale,
        min_elements,
        include,
        exclude,
        no_default_exclude,
        remap,
        top_level_key,
    } = cmd
    else {
        unreachable!("called for convert only")
    };
    let mut import = ImportOptions::new();
    for (from, to) in remap {
        import = import.with_key_remapping(from, to);
    }
    if let Some(key) = top_level_key {
        import = import.with_top_level_key(key);
    }
    let options = ConvertOptions {
        method: match quantizer {
            Quantizer::Absmean => Method::AbsMean,
            Quantizer::Twn => Method::Twn,
        },
        granularity: match scale {
            Scale::PerChannel => Granularity::PerRow,
            Scale::PerTensor => Granularity::PerTensor,
        },
        min_elements,
        include,
        exclude,
        default_exclude: !no_default_exclude,
        import,
    };
    let report = container::convert(&input, &output, &options, progress_bar())?;
    println!(
        "{:<40} {:>18} {:>6} {:>11} {:>11} {:>11} {:>7}  what",
        "tensor", "shape", "dtype", "before", "f16", "after", "vs f16"
    );
    let mut default_excluded = 0;
    for t in &report.tensors {
        let what = match &t.action {
            Action::Quantized => format!(
                "ternary: {} {}",
                quantizer_name(quantizer),
                scale_name(scale)
            ),
            Action::Lossless {
                scale_from: Some(s),
            } => {
                format!("ternary, lossless: values already ternary, scales from {s}")
            }
            Action::Lossless { scale_from: None } => {
                "ternary, lossless: values already ternary, scale 1".into()
            }
            Action::FoldedScale { into } => format!("folded into {into}'s packed scales"),
            Action::Kept { reason } => {
                if reason.contains("default exclusion") {
                    default_excluded += 1;
                }
                format!("kept: {reason}")
            }
        };
        let ratio = if t.output_bytes == 0 {
            "-".to_string()
        } else {
            format!("{:.1}x", t.f16_bytes as f64 / t.output_bytes as f64)
        };
        println!(
            "{:<40} {:>18} {:>6} {:>11} {:>11} {:>11} {:>7}  {what}",
            t.name,
            format!("{:?}", t.shape),
            t.source_dtype,
            human(t.source_bytes),
            human(t.f16_bytes),
            human(t.output_bytes),
            ratio,
        );
    }
    if default_excluded > 0 {
        println!(
            "{default_excluded} embedding / LM head tensor(s) kept in their dtype by the default \
             exclusion {DEFAULT_EXCLUDE:?} (--no-default-exclude ternarizes them)"
        );
    }
    let f16 = report.f16_bytes();
    println!(
        "total: {} ({}) -> {} file ({:.2}x smaller than f16, {:.2}x smaller than the source)",
        human(report.source_bytes()),
        human(f16),
        human(report.file_bytes),
        f16 as f64 / report.file_bytes.max(1) as f64,
        report.source_bytes() as f64 / report.file_bytes.max(1) as f64
    );
    if report.ternary_weights > 0 {
        println!(
            "quantized {} weights in {:.1} ms: {:.0} M weights/s (one thread)",
            report.ternary_weights,
            1e3 * report.quantize_seconds,
            report.ternary_weights as f64 / report.quantize_seconds.max(1e-9) / 1e6
        );
    }
    println!("wrote {}", output.display());
    Ok(())
}

fn inspect(file: PathBuf) -> Result<(), ImportError> {
    let tensors = container::inspect(&file)?;
    println!(
        "{:<40} {:>18} {:>20} {:>9} {:>12} {:>11}",
        "tensor", "shape", "format", "bits/w", "scales", "bytes"
    );
    for t in &tensors {
        println!(
            "{:<40} {:>18} {:>20} {:>9.2} {:>12} {:>11}",
            t.name,
            format!("{:?}", t.shape),
            t.format,
            t.bits_per_weight,
            t.scale_kind,
            human(t.bytes)
        );
    }
    let total: u64 = tensors.iter().map(|t| t.bytes).sum();
    println!("{} tensors, {}", tensors.len(), human(total));
    Ok(())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        cmd @ Command::Convert { .. } => convert(cmd),
        Command::Inspect { file } => inspect(file),
        Command::Bench { report } => {
            report::run(&report);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
