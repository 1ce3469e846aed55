//! Generates two models from `fixtures/cnn.onnx` with the ternary overrides:
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

use burn_onnx::ModelGen;
use burn_ternary_onnx::{Granularity, LayerKind, Quantizer, TernaryOnnx};

fn main() {
    let onnx = "../fixtures/cnn.onnx";
    println!("cargo:rerun-if-changed={onnx}");

    let mut ternary = ModelGen::new();
    ternary.input(onnx).out_dir("model/");
    TernaryOnnx::new()
        .quantizer(Quantizer::AbsMean)
        .granularity(Granularity::PerChannel)
        .select(|layer| !(layer.kind == LayerKind::Conv2d && layer.field == "conv2d1"))
        .register(&mut ternary);
    ternary.run_from_script();

    let mut f32 = ModelGen::new();
    f32.input(onnx).out_dir("model_f32/");
    TernaryOnnx::new().select(|_| false).register(&mut f32);
    f32.run_from_script();

    // The other settings: the training-state forward (from the generated config) and the frozen
    // one (from the scheme codes written into the .bpk) must agree.
    let mut twn = ModelGen::new();
    twn.input(onnx).out_dir("model_twn/");
    TernaryOnnx::new()
        .quantizer(Quantizer::Twn)
        .granularity(Granularity::PerTensor)
        .int8_activations(true)
        .register(&mut twn);
    twn.run_from_script();

    let seq = "../fixtures/seq.onnx";
    println!("cargo:rerun-if-changed={seq}");
    for (dir, ternary) in [("model_seq/", true), ("model_seq_f32/", false)] {
        let mut model_gen = ModelGen::new();
        model_gen.input(seq).out_dir(dir);
        TernaryOnnx::new()
            .select(move |_| ternary)
            .register(&mut model_gen);
        model_gen.run_from_script();
    }
}
