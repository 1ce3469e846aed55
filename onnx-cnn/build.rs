//! The models in `generated/` are what burn-onnx's `ModelGen` makes of the ONNX fixtures with
//! the ternary overrides. A user's crate runs exactly this code in its own `build.rs`; here the
//! output is committed instead, so that building and testing the workspace does not compile
//! the ONNX import stack (burn-onnx, onnx-ir, protobuf and a second, host-side Burn) for the
//! build script: that stack alone is ~180 compilation units, ~16 minutes on 2 cores.
//!
//! `scripts/check-onnx-generated.sh` runs the generator (`--features onnx-cnn/regenerate`),
//! rewrites `generated/` and the fingerprint of its inputs (`generated/INPUTS`); the test
//! `generated_code_is_current` fails whenever those inputs (the ONNX fixtures,
//! burn-ternary-onnx's sources, the burn-onnx version) no longer match the fingerprint.
//!
//! * `model/cnn.rs`: `conv2d2` and `linear1` become ternary layers; `conv2d1` (the first
//!   convolution, with the batch norm PyTorch folded into it on export) stays a stock
//!   full-precision `Conv2d`, as BitNet keeps its input layer;
//! * `model_f32/cnn.rs`: the filter selects nothing, so every layer is a stock Burn layer —
//!   the same generator, checked against PyTorch's f32 outputs;
//! * `model_twn/cnn.rs`: every layer ternary with TWN, per-tensor scales, int8 activations;
//! * `model_seq/seq.rs` and `model_seq_f32/seq.rs` from `fixtures/seq.onnx`: linear layers on a
//!   3-D input, exported as `MatMul` + `Add` and a bare `MatMul` with `[in, out]` weights (onnx-ir
//!   makes both `Linear` nodes, untransposed) — the path `cnn.onnx` (a `Gemm`) does not take.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "regenerate")]
    regenerate::run();
}

#[cfg(feature = "regenerate")]
mod regenerate {
    use std::path::{Path, PathBuf};

    use burn_onnx::ModelGen;
    use burn_ternary_onnx::{Granularity, LayerKind, Quantizer, TernaryOnnx};

    pub fn run() {
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        let onnx = "../fixtures/cnn.onnx";
        let seq = "../fixtures/seq.onnx";
        println!("cargo:rerun-if-changed={onnx}");
        println!("cargo:rerun-if-changed={seq}");
        // A hand edit of the committed output reruns the generator, which reverts it.
        println!("cargo:rerun-if-changed=generated");

        let generate = |input: &str, dir: &str, overrides: TernaryOnnx| {
            let mut model_gen = ModelGen::new();
            model_gen.input(input).out_dir(&format!("{dir}/"));
            overrides.register(&mut model_gen);
            model_gen.run_from_script();
        };
        generate(
            onnx,
            "model",
            TernaryOnnx::new()
                .quantizer(Quantizer::AbsMean)
                .granularity(Granularity::PerChannel)
                .select(|layer| !(layer.kind == LayerKind::Conv2d && layer.field == "conv2d1")),
        );
        generate(onnx, "model_f32", TernaryOnnx::new().select(|_| false));
        // The other settings: the training-state forward (from the generated config) and the
        // frozen one (from the scheme codes written into the .bpk) must agree.
        generate(
            onnx,
            "model_twn",
            TernaryOnnx::new()
                .quantizer(Quantizer::Twn)
                .granularity(Granularity::PerTensor)
                .int8_activations(true),
        );
        generate(seq, "model_seq", TernaryOnnx::new().select(|_| true));
        generate(seq, "model_seq_f32", TernaryOnnx::new().select(|_| false));

        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("generated");
        for (dir, name) in [
            ("model", "cnn"),
            ("model_f32", "cnn"),
            ("model_twn", "cnn"),
            ("model_seq", "seq"),
            ("model_seq_f32", "seq"),
        ] {
            let to = target.join(dir);
            std::fs::create_dir_all(&to).expect("create generated/");
            // The generated `Default` names the weights by the absolute path they were written
            // to; the committed code names them relative to this crate instead.
            let written = out.join(dir).join(format!("{name}.bpk"));
            let code = std::fs::read_to_string(out.join(dir).join(format!("{name}.rs")))
                .expect("generated code");
            let quoted = format!("{:?}", written.display().to_string());
            assert!(
                code.contains(&quoted),
                "generated {dir}/{name}.rs no longer names its weights as {quoted}"
            );
            let code = code.replace(
                &quoted,
                &format!("concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/generated/{dir}/{name}.bpk\")"),
            );
            let weights = std::fs::read(&written).expect("generated weights");
            write_if_changed(&to.join(format!("{name}.rs")), code.as_bytes());
            // Burnpack records a fresh random parameter id per tensor on every run: the weights
            // are rewritten only when a name, dtype, shape, value or metadata entry changed.
            let bpk = to.join(format!("{name}.bpk"));
            if content(&bpk) != content(&written) {
                std::fs::write(&bpk, &weights).expect("write generated/");
            }
        }
    }

    /// What a Burnpack file holds apart from its parameter ids (`None` when it does not read).
    #[allow(clippy::type_complexity)]
    fn content(path: &Path) -> Option<(Vec<(String, String, String)>, Vec<Vec<u8>>, String)> {
        let reader = burn_pack::Reader::from_file(path).ok()?;
        let meta = format!("{:?} {:?}", reader.metadata(), reader.scalars());
        let names: Vec<String> = reader
            .tensor_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let data = names
            .iter()
            .map(|n| reader.tensor_data(n).ok())
            .collect::<Option<Vec<_>>>()?;
        let tensors = burn_pack::Reader::from_file(path)
            .ok()?
            .into_tensors()
            .ok()?;
        let info = tensors
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    format!("{:?}", t.dtype),
                    format!("{:?}", t.shape),
                )
            })
            .collect();
        Some((info, data, meta))
    }

    /// Leaves an unchanged file untouched, so a regeneration that changes nothing does not
    /// make cargo rebuild the crate that includes it.
    fn write_if_changed(path: &Path, bytes: &[u8]) {
        if std::fs::read(path).ok().as_deref() != Some(bytes) {
            std::fs::write(path, bytes).expect("write generated/");
        }
    }
}
