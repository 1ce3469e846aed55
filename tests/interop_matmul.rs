//! A layer loaded from another tool's file multiplies like its dequantized dense weight: for
//! every ternary tensor of the GGUF fixture (per-row and 256-group scales) and of the Hugging
//! Face BitNet fixtures (per-tensor scales), on every CPU kernel of the host, `x · Wᵀ` in
//! exact-f32 mode equals the f64 product with the effective weights within f32 accumulation
//! error, and W2A8 within the int8 activation rounding bound.
//!
//! Bounds (per output `y_j = Σ_i x_i · w_ji`, `S_j = Σ_i |x_i · w_ji|`, `K` terms):
//! * exact f32: `|y − y64| ≤ (K + 2) · 2⁻²³ · S_j` (every partial sum, group fold and scale product rounds once);
//! * W2A8: activations rounded to `round(x / s) · s` with `s = max|x| / 127` per row, so each
//!   term moves by at most `s/2 · |w|`: `|y − y64| ≤ (s/2) · Σ_i |w_ji| + (K + 2) · 2⁻²³ · S_j`.

use std::path::Path;

use burn_ternary::import::ImportOptions;
use burn_ternary::import::model_file::{self, Stored};
use burn_ternary::kernels::cpu;
use burn_ternary::kernels::random::XorShift;
use burn_ternary::kernels::{PackedI2, QuantizedActivations};

fn packed_tensors(path: &Path) -> Vec<(String, PackedI2)> {
    model_file::read(path, &ImportOptions::new())
        .unwrap()
        .tensors
        .into_iter()
        .filter_map(|(name, t)| match t {
            Stored::Packed(p) => Some((name, p.packed)),
            _ => None,
        })
        .collect()
}

#[test]
fn loaded_layers_multiply_like_their_dense_weights() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut layers = packed_tensors(&root.join("gguf/ternary.gguf"));
    layers.extend(packed_tensors(&root.join("hf_bitnet/bitlinear")));
    layers.extend(packed_tensors(&root.join("hf_bitnet/autobitlinear")));
    assert!(layers.len() >= 30);
    let mut rng = XorShift::new(13);
    let m = 3;
    for (name, w) in &layers {
        let (n, k) = (w.n(), w.k());
        let dense = w.dequantize();
        let x: Vec<f32> = (0..m * k).map(|_| rng.next_f32() * 4.0 - 2.0).collect();
        let q = QuantizedActivations::quantize(&x, m, k).unwrap();
        for kernel in cpu::kernels() {
            let mut y = vec![0f32; m * n];
            kernel.matmul_f32(&x, m, w, None, &mut y).unwrap();
            let mut y8 = vec![0f32; m * n];
            kernel.matmul_w2a8(&q, w, None, &mut y8).unwrap();
            for i in 0..m {
                let row = &x[i * k..(i + 1) * k];
                let s = row.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                for j in 0..n {
                    let wr = &dense[j * k..(j + 1) * k];
                    let exact: f64 = row
                        .iter()
                        .zip(wr)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    let mag: f64 = row
                        .iter()
                        .zip(wr)
                        .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                        .sum();
                    let wsum: f64 = wr.iter().map(|&b| f64::from(b).abs()).sum();
                    let f32_bound = (k + 2) as f64 * f64::from(f32::EPSILON) * mag + 1e-30;
                    let got = f64::from(y[i * n + j]);
                    assert!(
                        (got - exact).abs() <= f32_bound,
                        "{name} ({}) f32 row {i} col {j}: {got} vs {exact}",
                        kernel.isa().name()
                    );
                    let got8 = f64::from(y8[i * n + j]);
                    let w2a8_bound = f64::from(s) / 2.0 * wsum * (1.0 + 1e-6) + f32_bound;
                    assert!(
                        (got8 - exact).abs() <= w2a8_bound,
                        "{name} ({}) W2A8 row {i} col {j}: {got8} vs {exact} (bound {w2a8_bound})",
                        kernel.isa().name()
                    );
                }
            }
        }
    }
}
