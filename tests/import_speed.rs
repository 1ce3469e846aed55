//! Quantize-on-load throughput through the Burn model path (`import::load_packed`): one
//! 11008×4096 `TernaryLinear` read from safetensors, loaded, and packed. A measurement, not a
//! check — run it by hand:
//!
//! `cargo test --release --workspace --test import_speed -- --ignored --nocapture`

use std::collections::HashMap;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use burn_ternary::import::{ImportOptions, load_packed};
use burn_ternary::nn::{TernaryLinear, TernaryLinearConfig};
use burn_ternary::quant::Granularity;
use safetensors::tensor::{Dtype, TensorView};

#[derive(Module, Debug)]
struct One {
    up: TernaryLinear,
}

#[test]
#[ignore = "a timing run, not a check"]
fn load_packed_throughput() {
    let (n, k) = (11008usize, 4096usize);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let w: Vec<u8> = (0..n * k)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5).to_le_bytes()
        })
        .collect();
    let path = std::env::temp_dir().join(format!("bt-speed-{}.safetensors", std::process::id()));
    let view = TensorView::new(Dtype::F32, vec![n, k], &w).unwrap();
    safetensors::serialize_to_file(
        [("up.weight", view)],
        None::<HashMap<String, String>>,
        &path,
    )
    .unwrap();
    let device = Device::flex();
    let template = One {
        up: TernaryLinearConfig::new(k, n)
            .with_bias(false)
            .with_granularity(Granularity::PerChannel)
            .init(&device),
    };
    let mut times = Vec::new();
    for _ in 0..3 {
        let clock = Instant::now();
        let m = load_packed(&template, &path, &ImportOptions::new()).unwrap();
        times.push(clock.elapsed().as_secs_f64());
        assert!(m.up.is_packed());
    }
    times.sort_by(f64::total_cmp);
    let t = times[1];
    println!(
        "load_packed {n}x{k} f32: median {:.3} s of {times:?} -> {:.0} M weights/s (whole path, {} cores)",
        t,
        (n * k) as f64 / t / 1e6,
        std::thread::available_parallelism().map_or(1, |c| c.get())
    );
    std::fs::remove_file(&path).ok();
}
