//! `cargo run --release --example mnist_trit -- --help`
//!
//! Trains a fully ternary MLP on MNIST — ternary weights and ternary activations — with
//! burn-train, packs it, then runs the packed model two ways and reports each one's test
//! accuracy and speed: the W2A8 path (trits as int8 inputs on the W2A8 GEMM) and the trit path
//! (popcount trit × trit products, thresholds folded per output). `--eval FILE` skips training.

use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::tensor::{Int, Tensor};
use burn_ternary::nn::freeze;
use training::data::MnistBatcher;
use training::model::Classifier;
use training::run::{artifact_dir, parse_device, test_data};
use training::trit_mlp::{MnistTritTask, TritMlp};

const ABOUT: &str = "Train a fully ternary MLP on MNIST (ternary weights and ternary \
activations, straight-through estimators, burn-train), pack it, and compare its two inference \
paths on the test set: W2A8 (int8 inputs) and trit x trit popcount products.";

fn main() {
    let args = training::Args::parse_for("mnist_trit", ABOUT);
    if let Err(e) = run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: training::Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.full_precision || args.ternary_all {
        return Err(
            "this network is ternary everywhere: --full-precision / --ternary-all do not apply"
                .into(),
        );
    }
    let path = match &args.eval {
        Some(p) => p.clone(),
        None => {
            training::trit_mlp::run(args.clone())?;
            artifact_dir::<MnistTritTask>(&args).join("model-packed.bpk")
        }
    };
    let device = parse_device(&args.device)?;
    let model = freeze(TritMlp::new(args.activation(), &device))?.try_load_file(&path)?;
    let trit = model.trit_form()?;
    let test = test_data::<MnistTritTask>(&args)?;
    let n = test.len();
    let items: Vec<_> = (0..n).filter_map(|i| test.get(i).ok()).collect();
    let labels: Vec<usize> = items.iter().map(|it| usize::from(it.label)).collect();

    // Both paths over the whole test set in batches of `b`; returns (seconds, correct).
    let w2a8 = |b: usize| -> (f64, usize) {
        let clock = Instant::now();
        let mut correct = 0;
        for chunk in items.chunks(b) {
            let batch = MnistBatcher.batch(chunk.to_vec(), &device);
            let pred: Tensor<1, Int> = model.forward(batch.images).argmax(1).flatten(0, 1);
            correct += pred.equal(batch.targets).int().sum().into_scalar::<i64>() as usize;
        }
        (clock.elapsed().as_secs_f64(), correct)
    };
    let trits = |b: usize| -> (f64, usize) {
        let clock = Instant::now();
        let mut correct = 0;
        for (c, chunk) in items.chunks(b).enumerate() {
            let batch = MnistBatcher.batch(chunk.to_vec(), &device);
            let pixels: Vec<f32> = batch
                .images
                .into_data()
                .convert::<f32>()
                .try_into_vec()
                .expect("f32");
            let logits = trit.logits(&pixels);
            for (i, row) in logits.chunks(10).enumerate() {
                let best = (0..10)
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap_or(0);
                correct += usize::from(best == labels[c * b + i]);
            }
        }
        (clock.elapsed().as_secs_f64(), correct)
    };
    println!(
        "{}: {n} test images | W2A8: int8 inputs, W2A8 GEMM | trit: popcount trit x trit, folded thresholds",
        path.display()
    );
    for batch in [128usize, 1] {
        let (mut tw, mut tt) = (vec![], vec![]);
        let (mut cw, mut ct) = (0, 0);
        for _ in 0..3 {
            let (s, c) = w2a8(batch);
            tw.push(s);
            cw = c;
            let (s, c) = trits(batch);
            tt.push(s);
            ct = c;
        }
        tw.sort_by(f64::total_cmp);
        tt.sort_by(f64::total_cmp);
        let (w, t) = (tw[1], tt[1]);
        println!(
            "batch {batch:>3}: W2A8 {:.2}% in {w:.3} s ({:.0} img/s) | trit {:.2}% in {t:.3} s ({:.0} img/s) | trit / W2A8 speed {:.2}x (medians of 3, interleaved)",
            100.0 * cw as f64 / n as f64,
            n as f64 / w,
            100.0 * ct as f64 / n as f64,
            n as f64 / t,
            w / t
        );
    }
    Ok(())
}
