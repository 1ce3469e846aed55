//! Imports `fixtures/cnn.onnx` (a PyTorch CNN exported to ONNX), runs it as imported, freezes
//! its ternary layers to packed 2-bit weights, runs it again, and compares both against
//! PyTorch's own outputs for the same input.
//!
//! ```text
//! cargo run --release -p onnx-cnn
//! ```

use std::error::Error;

use burn::tensor::{Device, Tensor};
use burn_ternary::nn::freeze;
use onnx_cnn::{fixture_io, layers, load, load_f32, weight_bytes};

fn max_rel_err(got: Tensor<2>, want: &[f32]) -> f32 {
    let got: Vec<f32> = got
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("f32 output");
    let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0f32, |a, (g, w)| a.max((g - w).abs() / scale))
}

fn main() -> Result<(), Box<dyn Error>> {
    let device = Device::flex();
    let (x, y_f32, y_ternary) = fixture_io()?;
    let x = Tensor::<4>::from_data(x, &device);

    let stock = load_f32(&device)?;
    println!(
        "stock import (every layer f32): max |y − y_pytorch| / max |y_pytorch| = {:.2e}",
        max_rel_err(stock.forward(x.clone()), &y_f32)
    );

    let model = load(&device)?;
    for (field, ty) in layers(&model) {
        println!("  {field}: {ty}");
    }
    let before = weight_bytes(&model);
    println!(
        "ternary import (training state, fake-quantized): vs PyTorch's ternarized model {:.2e}",
        max_rel_err(model.forward(x.clone()), &y_ternary)
    );

    let packed = freeze(model)?;
    let after = weight_bytes(&packed);
    let y = packed.forward(x);
    println!(
        "frozen (conv2d2 + linear1 packed, 2-bit): vs PyTorch's ternarized model {:.2e}",
        max_rel_err(y, &y_ternary)
    );
    println!(
        "weight storage: {before} B imported → {after} B frozen ({:.1}× smaller)",
        before as f64 / after as f64
    );
    Ok(())
}
