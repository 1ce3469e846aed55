//! `cargo run --release --example infer_bench`
//!
//! Whole-model inference on the CPU (Flex): the f32 model (stock Burn layers), the same f32
//! model in fused inference form, the packed ternary model with exact f32 activations, and
//! the packed model with int8 activations (W2A8, one scale per image), for the MNIST CNN,
//! ResNet-20 and an MLP 784-1024-1024-10, at batch 1 and batch 128. The variants of a model
//! are timed **interleaved** (the order rotates every round), each figure is the median over
//! rounds, and the ratios are against the stock f32 model of the same run. Weights are
//! random (speed does not depend on them); the ternary models are the examples'
//! architectures (hidden layers ternary, first conv and classifier f32, TWN per channel),
//! frozen with `burn_ternary::nn::freeze` and put in inference form with
//! `Classifier::fuse` (batch norms folded into the convs, ReLU and max pooling fused; skip
//! that with `--no-fuse`).
//!
//! Peak memory: a counting global allocator records the bytes the model holds once it has run
//! (its weights after packing, and buffers kept between calls) plus the highest transient
//! allocation during one forward pass.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};
use burn_ternary::nn::freeze;
use burn_ternary::quant::ActivationQuant;
use clap::Parser;
use training::model::{Classifier, Dense, MnistNet, Precision};
use training::resnet::ResNet20;

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Whole-model inference benchmark: f32 vs packed exact-f32 vs packed W2A8.
#[derive(Parser)]
#[command(name = "infer_bench")]
struct Args {
    /// Rounds of interleaved timing (each round times every variant once).
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    /// Seconds each variant should run per round at least (several forwards are averaged).
    #[arg(long, default_value_t = 0.05)]
    min_seconds: f64,
    /// Only these models (mnist, resnet20, mlp); default all.
    #[arg(long)]
    model: Vec<String>,
    /// Only these batch sizes; default 1 and 128.
    #[arg(long)]
    batch: Vec<usize>,
    /// One JSON object per line instead of the table.
    #[arg(long)]
    json: bool,
    /// Only these variants (f32, f32-fused, exact, w2a8; default all), e.g. to profile one.
    /// Ratios need the f32 baseline in the run.
    #[arg(long, value_parser = KEYS)]
    variant: Vec<String>,
    /// Run the packed models as frozen, without folding batch norms into the packed convs
    /// and fusing ReLU / max pooling into them (`Classifier::fuse`).
    #[arg(long)]
    no_fuse: bool,
}

/// 784 → 1024 → 1024 → 10 with ReLU; the hidden layers ternary unless full precision.
#[derive(Module, Debug)]
struct Mlp {
    fc1: Dense,
    fc2: Dense,
    out: Linear,
}

impl Mlp {
    fn new(precision: Precision, activation: ActivationQuant, device: &Device) -> Self {
        let t = precision != Precision::Full;
        Self {
            fc1: Dense::new(784, 1024, t, activation, device),
            fc2: Dense::new(1024, 1024, t, activation, device),
            out: LinearConfig::new(1024, 10).init(device),
        }
    }
}

impl Classifier for Mlp {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = x.flatten::<2>(1, 3);
        let x = relu(self.fc1.forward(x));
        let x = relu(self.fc2.forward(x));
        self.out.forward(x)
    }
}

/// The variants, in column order: the f32 model with stock Burn layers (the baseline), the
/// same f32 model in the fused inference form the packed models get (`Classifier::fuse`:
/// batch norms folded, ReLU / max pooling as one op; shows what fusion alone buys), and the
/// packed models.
const VARIANTS: [&str; N] = ["f32", "f32 fused", "packed exact-f32", "packed W2A8"];
/// `--variant` names of [`VARIANTS`], same order.
const KEYS: [&str; N] = ["f32", "f32-fused", "exact", "w2a8"];
const N: usize = 4;

/// A model as the benchmark runs it.
type Forward = Box<dyn Fn(Tensor<4>) -> Tensor<2>>;

/// Builds variant `v` of `model` and runs it once on `x` (Burn initialises parameters
/// lazily, on first use), returning the forward closure and the bytes it then holds: its
/// weights and any buffers kept for later calls.
fn build(model: &str, v: usize, x: &Tensor<4>, fuse: bool, device: &Device) -> (Forward, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    let (precision, activation) = match v {
        0 | 1 => (Precision::Full, ActivationQuant::None),
        2 => (Precision::Ternary, ActivationQuant::None),
        _ => (Precision::Ternary, ActivationQuant::Int8PerImage),
    };
    fn boxed<M: Classifier + Module + 'static>(m: M, pack: bool, fuse: bool) -> Forward {
        let m = if pack { freeze(m).expect("freeze") } else { m };
        let m = if fuse { m.fuse().expect("fuse") } else { m };
        Box::new(move |x| m.forward(x))
    }
    let pack = v >= 2;
    // The baseline is never fused; "f32 fused" always is; the packed ones unless --no-fuse.
    let fuse = v == 1 || (pack && fuse);
    let f = match model {
        "mnist" => boxed(MnistNet::new(precision, activation, device), pack, fuse),
        "resnet20" => boxed(
            ResNet20::new(precision, 1, 10, activation, device),
            pack,
            fuse,
        ),
        "mlp" => boxed(Mlp::new(precision, activation, device), pack, fuse),
        other => panic!("unknown model {other:?} (mnist, resnet20, mlp)"),
    };
    let _ = f(x.clone()).into_data();
    (f, LIVE.load(Ordering::Relaxed).saturating_sub(before))
}

fn input_shape(model: &str, batch: usize) -> [usize; 4] {
    match model {
        "resnet20" => [batch, 3, 32, 32],
        _ => [batch, 1, 28, 28],
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Row {
    model: String,
    batch: usize,
    variant: &'static str,
    images_per_s: f64,
    ratio: f64,
    model_bytes: usize,
    peak_bytes: usize,
}

fn run(model: &str, batch: usize, args: &Args, device: &Device) -> Vec<Row> {
    let shape = input_shape(model, batch);
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let selected: Vec<usize> = (0..N)
        .filter(|&v| args.variant.is_empty() || args.variant.iter().any(|a| a == KEYS[v]))
        .collect();
    // Build and run each variant once and drop it, so state created lazily on first use and
    // shared by later models (thread pools, thread-local scratch) is not charged to whichever
    // variant happens to be built first.
    for &v in &selected {
        drop(build(model, v, &x, !args.no_fuse, device));
    }
    let variants: Vec<Option<(Forward, usize)>> = (0..N)
        .map(|v| {
            selected
                .contains(&v)
                .then(|| build(model, v, &x, !args.no_fuse, device))
        })
        .collect();
    // Warm up; measure each forward's transient peak on the way.
    let mut peaks = [0usize; N];
    let mut iters = [1usize; N];
    for (v, (f, _)) in variants
        .iter()
        .enumerate()
        .filter_map(|(v, f)| Some((v, f.as_ref()?)))
    {
        let _ = f(x.clone()).into_data();
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let clock = Instant::now();
        let out = f(x.clone()).into_data();
        let dt = clock.elapsed().as_secs_f64();
        drop(out);
        peaks[v] = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        iters[v] = ((args.min_seconds / dt.max(1e-6)).ceil() as usize).clamp(1, 10_000);
    }
    let mut times: [Vec<f64>; N] = Default::default();
    for round in 0..args.rounds {
        for i in 0..selected.len() {
            let v = selected[(round + i) % selected.len()];
            let f = &variants[v].as_ref().expect("selected").0;
            let clock = Instant::now();
            for _ in 0..iters[v] {
                // `into_data` waits for the result: nothing is left pending.
                let _ = f(x.clone()).into_data();
            }
            times[v].push(clock.elapsed().as_secs_f64() / iters[v] as f64);
        }
    }
    let per_s: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            if t.is_empty() {
                f64::NAN
            } else {
                batch as f64 / median(t)
            }
        })
        .collect();
    selected
        .iter()
        .map(|&v| {
            let held = variants[v].as_ref().map_or(0, |(_, bytes)| *bytes);
            Row {
                model: model.to_string(),
                batch,
                variant: VARIANTS[v],
                images_per_s: per_s[v],
                ratio: per_s[v] / per_s[0],
                model_bytes: held,
                peak_bytes: held + peaks[v],
            }
        })
        .collect()
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() {
    let mut args = Args::parse();
    args.rounds = args.rounds.max(1);
    let device = Device::flex();
    device.seed(7);
    let models = if args.model.is_empty() {
        vec!["mnist".to_string(), "resnet20".into(), "mlp".into()]
    } else {
        args.model.clone()
    };
    let batches = if args.batch.is_empty() {
        vec![1, 128]
    } else {
        args.batch.clone()
    };
    if !args.json {
        println!(
            "Flex (CPU), {} hardware threads, {} interleaved rounds, medians",
            std::thread::available_parallelism().map_or(1, usize::from),
            args.rounds
        );
        println!(
            "{:<9} {:>5}  {:<17} {:>11} {:>8} {:>11} {:>11}",
            "model", "batch", "variant", "images/s", "vs f32", "model MiB", "peak MiB"
        );
    }
    for model in &models {
        for &batch in &batches {
            for r in run(model, batch, &args, &device) {
                // Without the f32 baseline in the run (--variant) there is no ratio.
                let ratio = if r.ratio.is_finite() {
                    format!("{:.3}", r.ratio)
                } else {
                    "null".into()
                };
                if args.json {
                    println!(
                        "{{\"model\":\"{}\",\"batch\":{},\"variant\":\"{}\",\"images_per_s\":{:.2},\"ratio_vs_f32\":{},\"model_bytes\":{},\"peak_bytes\":{}}}",
                        r.model,
                        r.batch,
                        r.variant,
                        r.images_per_s,
                        ratio,
                        r.model_bytes,
                        r.peak_bytes
                    );
                } else {
                    println!(
                        "{:<9} {:>5}  {:<17} {:>11.1} {:>7.2}x {:>11.2} {:>11.2}",
                        r.model,
                        r.batch,
                        r.variant,
                        r.images_per_s,
                        r.ratio,
                        mib(r.model_bytes),
                        mib(r.peak_bytes)
                    );
                }
            }
        }
    }
}
