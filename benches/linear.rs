//! Packed `TernaryLinear` vs `nn::Linear` (f32) on Flex, through the whole Burn stack, and
//! the raw kernel on the same packed weights (the extension's overhead), in one run.
//!
//! `cargo bench --bench linear` prints one line per shape and mode: medians in µs and the
//! ratios. Shapes are `M × K → N`. The packed layer and the raw kernel are timed interleaved,
//! and the overhead is the median of their per-pair ratios.

use std::hint::black_box;
use std::time::Instant;

use burn::nn::LinearConfig;
use burn::tensor::{Device, Distribution, Tensor};
use burn_ternary::kernels::{PackedI2Ref, QuantizedActivations, cpu};
use burn_ternary::nn::{TernaryLinear, TernaryLinearConfig, freeze};
use burn_ternary::quant::ActivationQuant;

fn median(t: &mut [f64]) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn median_us(mut f: impl FnMut()) -> f64 {
    f();
    let mut t = Vec::new();
    let start = Instant::now();
    while t.len() < 9 || (start.elapsed().as_secs_f64() < 1.0 && t.len() < 500) {
        let s = Instant::now();
        f();
        t.push(s.elapsed().as_secs_f64() * 1e6);
    }
    median(&mut t)
}

/// Times `a` and `b` interleaved (alternating which goes first), so that the drift of a noisy
/// machine hits both alike. Returns the median of each in µs and the median of the per-pair
/// ratios `a / b`.
fn paired_us(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64, f64) {
    a();
    b();
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    let time = |f: &mut dyn FnMut()| {
        let s = Instant::now();
        f();
        s.elapsed().as_secs_f64() * 1e6
    };
    while ta.len() < 21 || (start.elapsed().as_secs_f64() < 2.0 && ta.len() < 1000) {
        let (x, y) = if ta.len() % 2 == 0 {
            let x = time(&mut a);
            (x, time(&mut b))
        } else {
            let y = time(&mut b);
            (time(&mut a), y)
        };
        ta.push(x);
        tb.push(y);
        ratio.push(x / y);
    }
    (median(&mut ta), median(&mut tb), median(&mut ratio))
}

/// The packed bytes and scales of a frozen layer, read back from its parameters.
fn kernel_weights(layer: &TernaryLinear) -> (Vec<u8>, Vec<f32>) {
    let words: Vec<i32> = layer
        .packed
        .val()
        .into_data()
        .convert::<i32>()
        .try_to_vec()
        .unwrap();
    let scales: Vec<f32> = layer.scales.val().into_data().try_to_vec().unwrap();
    (words.iter().flat_map(|w| w.to_le_bytes()).collect(), scales)
}

fn main() {
    let device = Device::flex();
    println!(
        "{:<18} {:<5} {:>10} {:>10} {:>10} {:>8} {:>9}",
        "shape", "mode", "linear_us", "packed_us", "kernel_us", "speedup", "overhead"
    );
    for (m, k, n) in [(1, 4096, 4096), (1, 2560, 6912), (128, 2560, 2560)] {
        let dense = LinearConfig::new(k, n).init(&device);
        let x = Tensor::<2>::random([m, k], Distribution::Default, &device);
        let xs: Vec<f32> = x.clone().into_data().try_to_vec().unwrap();
        let t_dense = median_us(|| {
            black_box(dense.forward(x.clone()).into_data());
        });
        for mode in [ActivationQuant::Int8PerToken, ActivationQuant::None] {
            let layer = TernaryLinearConfig::new(k, n)
                .with_activation(mode)
                .with_bias(false)
                .init(&device);
            let layer = freeze(layer).unwrap();
            let (bytes, scales) = kernel_weights(&layer);
            let w = PackedI2Ref::new(&bytes, n, k, &scales).unwrap();
            let mut y = vec![0f32; m * n];
            let mut q = QuantizedActivations::default();
            let kernel = || {
                if mode == ActivationQuant::Int8PerToken {
                    q.quantize_into(&xs, m, k).unwrap();
                    cpu::matmul_w2a8(&q, w, None, &mut y).unwrap();
                } else {
                    cpu::matmul_f32(&xs, m, w, None, &mut y).unwrap();
                }
                black_box(&y);
            };
            let layer_call = || {
                black_box(layer.forward(x.clone()).into_data());
            };
            let (t_packed, t_kernel, overhead) = paired_us(layer_call, kernel);
            println!(
                "{:<18} {:<5} {:>10.1} {:>10.1} {:>10.1} {:>7.1}x {:>8.1}%",
                format!("{m}x{k}->{n}"),
                if mode == ActivationQuant::None {
                    "f32"
                } else {
                    "w2a8"
                },
                t_dense,
                t_packed,
                t_kernel,
                t_dense / t_packed,
                100.0 * (overhead - 1.0)
            );
        }
    }
}
