//! `burn-ternary convert`: any supported model file to any other (see `Command::Convert`).

use burn_ternary::import::container::{self, Action, ConvertOptions, DEFAULT_EXCLUDE, Target};
use burn_ternary::import::gguf::GgufTernary;
use burn_ternary::import::hf_bitnet::LinearClass;
use burn_ternary::import::{ImportError, ImportOptions};
use burn_ternary::kernels::quant::{Granularity, Method};
use safetensors::tensor::Dtype;

use crate::{Command, Quantizer, Scale, To, human, progress_bar, quantizer_name, scale_name};

/// `packed` unless the output's name says GGUF, which has three ternary types to choose from.
fn default_target(output: &std::path::Path) -> Result<To, ImportError> {
    let gguf = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if gguf {
        return Err(ImportError::Format {
            path: output.to_path_buf(),
            what: "the output is named .gguf: say which ternary type to write with --to gguf-tq2_0, gguf-tq1_0 or gguf-i2_s (without --to, convert writes packed safetensors)".into(),
        });
    }
    Ok(To::Packed)
}

pub(crate) fn run(cmd: Command) -> Result<(), ImportError> {
    let Command::Convert {
        input,
        output,
        to,
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
        target: match to.map_or_else(|| default_target(&output), Ok)? {
            To::Packed => Target::Packed,
            To::GgufTq1_0 => Target::Gguf(GgufTernary::Tq1_0),
            To::GgufTq2_0 => Target::Gguf(GgufTernary::Tq2_0),
            To::GgufI2S => Target::Gguf(GgufTernary::I2S),
            To::HfBitnet => Target::HfBitnet(LinearClass::BitLinear),
            To::HfAutobitlinear => Target::HfBitnet(LinearClass::AutoBitLinear),
            To::F32 => Target::Dense(Dtype::F32),
            To::F16 => Target::Dense(Dtype::F16),
            To::Bf16 => Target::Dense(Dtype::BF16),
        },
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
            Action::Carried { from } => format!("ternary in the source ({from}): carried over"),
            Action::Kept { reason } => {
                if reason.contains("default exclusion") {
                    default_excluded += 1;
                }
                format!("kept: {reason}")
            }
        };
        let what = match &t.note {
            Some(note) => format!("{what}; {note}"),
            None => what,
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
    // "3.40x larger" rather than "0.29x smaller".
    let versus = |reference: u64| {
        let (file, reference) = (report.file_bytes.max(1) as f64, reference.max(1) as f64);
        if file <= reference {
            format!("{:.2}x smaller", reference / file)
        } else {
            format!("{:.2}x larger", file / reference)
        }
    };
    println!(
        "total: {} in the source ({} in f16) -> {} file ({} than f16, {} than the source)",
        human(report.source_bytes()),
        human(f16),
        human(report.file_bytes),
        versus(f16),
        versus(report.source_bytes())
    );
    if report.ternary_weights > 0 {
        println!(
            "quantized {} weights in {:.1} ms: {:.0} M weights/s (one thread)",
            report.ternary_weights,
            1e3 * report.quantize_seconds,
            report.ternary_weights as f64 / report.quantize_seconds.max(1e-9) / 1e6
        );
    }
    let weights: usize = report
        .tensors
        .iter()
        .filter(|t| t.ternary)
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    if weights > 0 {
        let total = report.read_seconds + report.quantize_seconds + report.write_seconds;
        println!(
            "{weights} ternary weights: read {:.1} ms, quantize {:.1} ms, write {:.1} ms ({:.0} M weights/s end to end, one thread)",
            1e3 * report.read_seconds,
            1e3 * report.quantize_seconds,
            1e3 * report.write_seconds,
            weights as f64 / total.max(1e-9) / 1e6
        );
        if report.encode_seconds > 0.0 {
            println!(
                "decoded {weights} weights to the dense target in {:.1} ms: {:.0} M weights/s (one thread); the rest of the write is file I/O",
                1e3 * report.encode_seconds,
                weights as f64 / report.encode_seconds / 1e6
            );
        }
    }
    println!("wrote {}", output.display());
    Ok(())
}
