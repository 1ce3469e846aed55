//! The kernel report: our W2A8 and exact-f32 kernels against an f32 matmul of the same shape
//! through the `gemm` crate (what Burn's Flex backend multiplies with), measured in one run.
//! Run by the `ternary-bench` binary and by `burn-ternary bench`.
//!
//! Shapes are written `K×N` (input features × output features). Every figure is the median
//! of repeated timings. `--json` prints one object per line.

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;

use crate::cpu::{Kernel, kernels};
use crate::random::XorShift;
use crate::{Granularity, Method, PackedI2, QuantizedActivations};

/// The f32 baseline: `y[m×n] = x[m×k] · Wᵀ` for row-major `W[n×k]`, through the `gemm`
/// crate Burn's Flex backend multiplies with. Panics on buffers of the wrong length.
pub fn gemm_f32(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
    par: gemm::Parallelism,
) {
    assert!(
        y.len() == m * n && x.len() == m * k && w.len() == n * k,
        "gemm_f32: buffers {}/{}/{} for m={m} k={k} n={n}",
        y.len(),
        x.len(),
        w.len()
    );
    // SAFETY: y is m×n row-major (rs = n, cs = 1); x is m×k row-major; W is n×k row-major,
    // read as the k×n matrix Wᵀ (row stride 1, column stride k); lengths checked above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Options of the report.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReportArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Thread counts to measure (default: 1 and all cores).
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Only these ISAs (scalar, avx2, avx512bw, avx512vnni); default: every SIMD ISA.
    #[arg(long, value_delimiter = ',')]
    pub isa: Vec<String>,
    /// Fewer repetitions and no 8192×28672 shape: a smoke run.
    #[arg(long)]
    pub quick: bool,
}

/// Bytes a buffer set must exceed so that cycling through it evicts L3 (32 MiB on the dev
/// machine; 4× for margin on larger parts).
const ROTATE_BYTES: usize = 128 << 20;
/// Packed weights larger than this are timed from DRAM (rotated); smaller ones stay hot.
const L3_BYTES: usize = 32 << 20;

#[derive(Default)]
struct Row {
    op: &'static str,
    m: usize,
    k: usize,
    n: usize,
    mode: &'static str,
    isa: String,
    threads: usize,
    seconds: f64,
    gmacs: f64,
    baseline_gmacs: Option<f64>,
    weight_bytes: usize,
    gbs: f64,
    read_gbs: Option<f64>,
    rotated: bool,
}

impl Row {
    /// Ours over the baseline, when there is one.
    fn speedup(&self) -> Option<f64> {
        self.baseline_gmacs.map(|b| self.gmacs / b)
    }

    /// Percent of the measured read bandwidth, when it was measured.
    fn pct_of_read_bw(&self) -> Option<f64> {
        self.read_gbs.map(|r| 100.0 * self.gbs / r)
    }

    fn json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".into(), |v| format!("{v:.3}"));
        format!(
            "{{\"op\":\"{}\",\"m\":{},\"k\":{},\"n\":{},\"mode\":\"{}\",\"isa\":\"{}\",\"threads\":{},\
             \"seconds\":{:.9},\"gmacs\":{:.3},\"baseline_gmacs\":{},\"speedup\":{},\"weight_bytes\":{},\
             \"gbs\":{:.3},\"read_gbs\":{},\"pct_of_read_bw\":{},\"rotated\":{}}}",
            self.op,
            self.m,
            self.k,
            self.n,
            self.mode,
            self.isa,
            self.threads,
            self.seconds,
            self.gmacs,
            opt(self.baseline_gmacs),
            opt(self.speedup()),
            self.weight_bytes,
            self.gbs,
            opt(self.read_gbs),
            opt(self.pct_of_read_bw()),
            self.rotated
        )
    }

    fn table(&self) -> String {
        let speed = self.speedup().map_or("-".into(), |s| format!("{s:.1}x"));
        let pct = self
            .pct_of_read_bw()
            .map_or("-".into(), |p| format!("{p:.0}%"));
        format!(
            "{:<6} {:>4} {:>6} {:>6} {:<5} {:<11} {:>2} {:>10.1} {:>8.1} {:>8} {:>7} {:>7.1} {:>5}",
            self.op,
            self.m,
            self.k,
            self.n,
            self.mode,
            self.isa,
            self.threads,
            self.seconds * 1e6,
            self.gmacs,
            self.baseline_gmacs
                .map_or("-".into(), |b| format!("{b:.1}")),
            speed,
            self.gbs,
            pct
        )
    }
}

/// Median seconds of `f` over enough repetitions (≥ `min_reps`, ≥ ~0.25 s in total).
fn median_time(min_reps: usize, mut f: impl FnMut(usize)) -> f64 {
    f(0); // warm-up: page faults, thread wake-up, lazy init
    let mut times = Vec::new();
    let start = Instant::now();
    let mut i = 1;
    while times.len() < min_reps || (start.elapsed().as_secs_f64() < 0.25 && times.len() < 200) {
        let t = Instant::now();
        f(i);
        times.push(t.elapsed().as_secs_f64());
        i += 1;
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// How many copies of a `bytes`-sized buffer make a rotation that misses in L3.
fn copies_for(bytes: usize, rotate: bool) -> usize {
    if rotate {
        ROTATE_BYTES.div_ceil(bytes.max(1)).max(2)
    } else {
        1
    }
}

fn stream_gbs(reps: usize) -> f64 {
    let words = (1usize << 30) / 8; // 1 GiB
    let buf: Vec<u64> = (0..words as u64).collect();
    let threads = rayon::current_num_threads();
    let t = median_time(reps, |_| {
        // One contiguous share per thread, eight independent lanes so the loop vectorises
        // and the core keeps many loads in flight.
        let s: u64 = buf
            .par_chunks(words.div_ceil(threads))
            .map(|c| {
                let mut acc = [0u64; 8];
                for line in c.chunks_exact(8) {
                    for (a, v) in acc.iter_mut().zip(line) {
                        *a = a.wrapping_add(*v);
                    }
                }
                acc.iter().fold(0u64, |a, &v| a.wrapping_add(v))
            })
            .reduce(|| 0, u64::wrapping_add);
        black_box(s);
    });
    (words * 8) as f64 / t / 1e9
}

fn baseline_f32(m: usize, k: usize, n: usize, threads: usize, rotate: bool, reps: usize) -> f64 {
    let mut rng = XorShift::new(7);
    let copies = copies_for(n * k * 4, rotate);
    let ws: Vec<Vec<f32>> = (0..copies).map(|_| rng.f32s(n * k)).collect();
    let x = rng.f32s(m * k);
    let mut y = vec![0f32; m * n];
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let t = median_time(reps, |i| {
        let w = &ws[i % copies];
        gemm_f32(&mut y, &x, w, m, k, n, par);
        black_box(&y);
    });
    (m * n * k) as f64 / t / 1e9
}

#[allow(clippy::too_many_arguments)]
fn ours(
    kernel: &Kernel,
    mode: &'static str,
    op: &'static str,
    m: usize,
    k: usize,
    n: usize,
    threads: usize,
    rotate: bool,
    reps: usize,
) -> Row {
    let mut rng = XorShift::new(11);
    let bytes = rng.packed(1, k).storage_bytes() * n;
    let copies = copies_for(bytes, rotate);
    let ws: Vec<PackedI2> = (0..copies).map(|_| rng.packed(n, k)).collect();
    let x = rng.f32s(m * k);
    let mut y = vec![0f32; m * n];
    let mut q = QuantizedActivations::default();
    let t = median_time(reps, |i| {
        let w = &ws[i % copies];
        if mode == "w2a8" {
            // The activation quantisation is part of what a layer pays: time it too.
            q.quantize_into(&x, m, k).expect("finite input");
            kernel
                .matmul_w2a8(&q, w, None, &mut y)
                .expect("shapes match");
        } else {
            kernel
                .matmul_f32(&x, m, w, None, &mut y)
                .expect("shapes match");
        }
        black_box(&y);
    });
    let weight_bytes = ws[0].storage_bytes();
    Row {
        op,
        m,
        k,
        n,
        mode,
        isa: kernel.isa().name().into(),
        threads,
        seconds: t,
        gmacs: (m * n * k) as f64 / t / 1e9,
        weight_bytes,
        gbs: weight_bytes as f64 / t / 1e9,
        rotated: copies > 1,
        ..Row::default()
    }
}

fn pack_row(reps: usize) -> Row {
    let (n, k) = (4096, 4096);
    let w = XorShift::new(3).f32s(n * k);
    let t = median_time(reps, |_| {
        black_box(
            PackedI2::quantize(&w, n, k, Method::AbsMean, Granularity::PerRow).expect("finite"),
        );
    });
    Row {
        op: "pack",
        m: 0,
        k,
        n,
        mode: "absmean",
        isa: "scalar".into(),
        threads: 1,
        seconds: t,
        // For a pack row `gmacs` is giga-weights per second.
        gmacs: (n * k) as f64 / t / 1e9,
        weight_bytes: n * k * 4,
        gbs: (n * k * 4) as f64 / t / 1e9,
        ..Row::default()
    }
}

/// Measures and prints the report.
pub fn run(args: &ReportArgs) {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = if args.threads.is_empty() {
        let mut t = vec![1, cores];
        t.dedup();
        t
    } else {
        args.threads.clone()
    };
    let selected: Vec<&Kernel> = kernels()
        .iter()
        .filter(|k| {
            if args.isa.is_empty() {
                k.isa().name() != "scalar"
            } else {
                args.isa.iter().any(|name| name == k.isa().name())
            }
        })
        .collect();
    let reps = if args.quick { 3 } else { 7 };
    let mut gemv: Vec<(usize, usize)> = vec![
        (2560, 2560),
        (2560, 6912),
        (6912, 2560),
        (4096, 4096),
        (4096, 14336),
    ];
    if !args.quick {
        gemv.push((8192, 28672));
    }
    let gemm_shapes = [(128, 2560, 2560), (512, 4096, 4096)];

    if !args.json {
        println!(
            "kernels on this host: {:?}",
            kernels().iter().map(|k| k.isa().name()).collect::<Vec<_>>()
        );
        println!(
            "{:<6} {:>4} {:>6} {:>6} {:<5} {:<11} {:>2} {:>10} {:>8} {:>8} {:>7} {:>7} {:>5}",
            "op",
            "m",
            "k",
            "n",
            "mode",
            "isa",
            "th",
            "time_us",
            "gmac/s",
            "f32_base",
            "speedup",
            "GB/s",
            "%bw"
        );
    }
    let emit = |r: &Row| {
        if args.json {
            println!("{}", r.json());
        } else {
            println!("{}", r.table());
        }
    };
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .expect("thread pool");
        pool.install(|| {
            let read = stream_gbs(reps);
            emit(&Row {
                op: "stream",
                mode: "read",
                isa: "-".into(),
                threads: t,
                seconds: (1u64 << 30) as f64 / read / 1e9,
                weight_bytes: 1 << 30,
                gbs: read,
                read_gbs: Some(read),
                ..Row::default()
            });
            for &(k, n) in &gemv {
                let rotate = n * k / 4 > L3_BYTES;
                let base = baseline_f32(1, k, n, t, rotate, reps);
                for kernel in &selected {
                    for mode in ["w2a8", "f32"] {
                        let mut r = ours(kernel, mode, "gemv", 1, k, n, t, rotate, reps);
                        r.baseline_gmacs = Some(base);
                        r.read_gbs = Some(read);
                        emit(&r);
                    }
                }
            }
            for &(m, k, n) in &gemm_shapes {
                let base = baseline_f32(m, k, n, t, false, reps);
                for kernel in &selected {
                    let mut r = ours(kernel, "w2a8", "gemm", m, k, n, t, false, reps);
                    r.baseline_gmacs = Some(base);
                    emit(&r);
                }
            }
        });
    }
    emit(&pack_row(reps));
}
