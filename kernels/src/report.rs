//! The kernel report: our W2A8 and exact-f32 kernels against an f32 matmul of the same shape
//! through the `gemm` crate (what Burn's Flex backend multiplies with), measured in one run.
//! Run by the `ternary-bench` binary and by `burn-ternary bench`.
//!
//! Shapes are written `K×N` (input features × output features). Every figure is the median
//! of repeated timings; ours and the baseline of one shape are timed in alternation (one
//! repetition of each in turn), so a noisy neighbour slows both alike. `--json` prints one
//! object per line with the same fields as the table.
//!
//! Each of our rows names the scales of its packed weights (`--scales`): per tensor, per row,
//! or per row and group of 64, 128 or 256 columns (`group64` …), so group-scaled kernels are
//! measured next to the per-row ones, against the same baseline.
//!
//! Reference rows, measured in the same run: `stream` (the host's DRAM read bandwidth, for
//! the `%bw` of GEMV rows) and `vnni_peak` (independent `vpdpbusd` on zmm registers: the
//! int8 MAC ceiling, for the `%peak` of W2A8 GEMM rows; skipped where the host has no
//! AVX-512 VNNI).

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
    /// Only these operations (gemv, gemm); default: both.
    #[arg(long, value_delimiter = ',')]
    pub op: Vec<String>,
    /// Only these modes (w2a8, f32); default: both.
    #[arg(long, value_delimiter = ',')]
    pub mode: Vec<String>,
    /// Fewer repetitions and no 8192×28672 shape: a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Scales of the packed weights (tensor, row, group64, group128, group256); default: row
    /// and group128.
    #[arg(long, value_delimiter = ',')]
    pub scales: Vec<String>,
}

/// How the packed weights of a row are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScaleKind {
    Tensor,
    Row,
    /// Per row and group of this many columns.
    Group(usize),
}

impl ScaleKind {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "tensor" => Some(Self::Tensor),
            "row" => Some(Self::Row),
            _ => name
                .strip_prefix("group")
                .and_then(|g| g.parse().ok())
                .filter(|g| crate::format::GROUP_SIZES.contains(g))
                .map(Self::Group),
        }
    }

    fn name(self) -> String {
        match self {
            Self::Tensor => "tensor".into(),
            Self::Row => "row".into(),
            Self::Group(g) => format!("group{g}"),
        }
    }

    /// A random packed `n × k` matrix with these scales.
    fn packed(self, rng: &mut XorShift, n: usize, k: usize) -> PackedI2 {
        match self {
            Self::Tensor => {
                let t = rng.ternary(n * k);
                PackedI2::from_ternary(&t, n, k, crate::Scales::PerTensor(0.5))
                    .expect("valid by construction")
            }
            Self::Row => rng.packed(n, k),
            Self::Group(g) => rng.packed_groups(n, k, g),
        }
    }
}

impl ReportArgs {
    /// Whether rows of `op` in `mode` are wanted.
    fn wants(&self, op: &str, mode: &str) -> bool {
        (self.op.is_empty() || self.op.iter().any(|o| o == op))
            && (self.mode.is_empty() || self.mode.iter().any(|m| m == mode))
    }
}

/// Bytes a buffer set must exceed so that cycling through it evicts L3 (32 MiB on the dev
/// machine; 4× for margin on larger parts).
const ROTATE_BYTES: usize = 128 << 20;
/// Packed weights larger than this are timed from DRAM (rotated); smaller ones stay hot.
const L3_BYTES: usize = 32 << 20;
/// `vpdpbusd` rounds per peak-loop call: long enough that the call overhead vanishes.
const PEAK_ITERS: usize = 1 << 20;

#[derive(Default)]
struct Row {
    op: &'static str,
    m: usize,
    k: usize,
    n: usize,
    mode: &'static str,
    scales: String,
    isa: String,
    threads: usize,
    seconds: f64,
    gmacs: f64,
    baseline_gmacs: Option<f64>,
    weight_bytes: usize,
    gbs: f64,
    read_gbs: Option<f64>,
    peak_gmacs: Option<f64>,
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

    /// Percent of the measured `vpdpbusd` peak, when it was measured.
    fn pct_of_peak(&self) -> Option<f64> {
        self.peak_gmacs.map(|p| 100.0 * self.gmacs / p)
    }

    fn json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".into(), |v| format!("{v:.3}"));
        format!(
            "{{\"op\":\"{}\",\"m\":{},\"k\":{},\"n\":{},\"mode\":\"{}\",\"scales\":\"{}\",\"isa\":\"{}\",\"threads\":{},\
             \"seconds\":{:.9},\"gmacs\":{:.3},\"baseline_gmacs\":{},\"speedup\":{},\"weight_bytes\":{},\
             \"gbs\":{:.3},\"read_gbs\":{},\"pct_of_read_bw\":{},\"peak_gmacs\":{},\"pct_of_peak\":{},\
             \"rotated\":{}}}",
            self.op,
            self.m,
            self.k,
            self.n,
            self.mode,
            self.scales,
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
            opt(self.peak_gmacs),
            opt(self.pct_of_peak()),
            self.rotated
        )
    }

    fn table(&self) -> String {
        let speed = self.speedup().map_or("-".into(), |s| format!("{s:.2}x"));
        let pct = |p: Option<f64>| p.map_or("-".into(), |p| format!("{p:.0}%"));
        format!(
            "{:<9} {:>4} {:>6} {:>6} {:<6} {:<8} {:<11} {:>2} {:>10.1} {:>8.1} {:>8} {:>7} {:>7.1} {:>5} {:>5}",
            self.op,
            self.m,
            self.k,
            self.n,
            self.mode,
            self.scales,
            self.isa,
            self.threads,
            self.seconds * 1e6,
            self.gmacs,
            self.baseline_gmacs
                .map_or("-".into(), |b| format!("{b:.1}")),
            speed,
            self.gbs,
            pct(self.pct_of_read_bw()),
            pct(self.pct_of_peak())
        )
    }
}

/// Median seconds of each timed closure. Every round runs each closure once, in turn, so
/// all of them see the same machine conditions; rounds go on until there are `min_reps`
/// and ~0.25 s per closure have passed (at most 200).
pub(crate) fn median_times(min_reps: usize, fs: &mut [Box<dyn FnMut(usize) + '_>]) -> Vec<f64> {
    for f in fs.iter_mut() {
        f(0); // warm-up: page faults, thread wake-up, lazy init
    }
    let mut times = vec![Vec::new(); fs.len()];
    let start = Instant::now();
    let budget = 0.25 * fs.len() as f64;
    let mut i = 1;
    while i <= min_reps || (start.elapsed().as_secs_f64() < budget && i <= 200) {
        for (f, t) in fs.iter_mut().zip(&mut times) {
            let s = Instant::now();
            f(i);
            t.push(s.elapsed().as_secs_f64());
        }
        i += 1;
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

/// How many copies of a `bytes`-sized buffer make a rotation that misses in L3.
fn copies_for(bytes: usize, rotate: bool) -> usize {
    if rotate {
        ROTATE_BYTES.div_ceil(bytes.max(1)).max(2)
    } else {
        1
    }
}

/// The host's DRAM read bandwidth in GB/s with the current rayon pool: the median of `reps`
/// timed sums over a 1 GiB buffer (one contiguous share per thread, eight independent lanes).
pub fn stream_gbs(reps: usize) -> f64 {
    let words = (1usize << 30) / 8; // 1 GiB
    let buf: Vec<u64> = (0..words as u64).collect();
    let threads = rayon::current_num_threads();
    let t = median_times(
        reps,
        &mut [Box::new(|_| {
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
        })],
    );
    (words * 8) as f64 / t[0] / 1e9
}

/// The `vpdpbusd` peak of the current pool, G int8 MAC/s: every thread runs the peak loop.
fn vnni_peak(reps: usize) -> Option<(f64, f64)> {
    crate::cpu::dpbusd_peak(0)?;
    let threads = rayon::current_num_threads();
    let t = median_times(
        reps,
        &mut [Box::new(|_| {
            let s: i64 = (0..threads)
                .into_par_iter()
                .map(|_| crate::cpu::dpbusd_peak(black_box(PEAK_ITERS)).unwrap_or(0))
                .sum();
            black_box(s);
        })],
    );
    let macs = (threads * PEAK_ITERS * crate::cpu::DPBUSD_PEAK_MACS_PER_ITER) as f64;
    Some((t[0], macs / t[0] / 1e9))
}

/// A timed f32 baseline: `gemm_f32` on `copies` rotated weight matrices.
fn baseline_f32<'a>(
    x: &'a [f32],
    ws: &'a [Vec<f32>],
    (m, k, n): (usize, usize, usize),
    threads: usize,
) -> Box<dyn FnMut(usize) + 'a> {
    let mut y = vec![0f32; m * n];
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    Box::new(move |i| {
        gemm_f32(&mut y, x, &ws[i % ws.len()], m, k, n, par);
        black_box(&y);
    })
}

/// One of our kernels, timed in `mode` on `copies` rotated packed matrices. W2A8 includes
/// the activation quantisation: it is part of what a layer pays.
fn ours<'a>(
    kernel: &'a Kernel,
    mode: &'static str,
    x: &'a [f32],
    ws: &'a [PackedI2],
    (m, k, n): (usize, usize, usize),
) -> Box<dyn FnMut(usize) + 'a> {
    let mut y = vec![0f32; m * n];
    let mut q = QuantizedActivations::default();
    Box::new(move |i| {
        let w = &ws[i % ws.len()];
        if mode == "w2a8" {
            q.quantize_into(x, m, k).expect("finite input");
            kernel
                .matmul_w2a8(&q, w, None, &mut y)
                .expect("shapes match");
        } else {
            kernel
                .matmul_f32(x, m, w, None, &mut y)
                .expect("shapes match");
        }
        black_box(&y);
    })
}

/// Times the f32 baseline and each (kernel, mode, scales) on one shape in alternation;
/// returns the rows of ours with the baseline filled in.
#[allow(clippy::too_many_arguments)] // one shape's whole measurement
fn measure_shape(
    kernels: &[&Kernel],
    modes: &[&'static str],
    scales: &[ScaleKind],
    op: &'static str,
    (m, k, n): (usize, usize, usize),
    threads: usize,
    rotate: bool,
    reps: usize,
) -> Vec<Row> {
    let mut rng = XorShift::new(7);
    let x = rng.f32s(m * k);
    let wf: Vec<Vec<f32>> = (0..copies_for(n * k * 4, rotate))
        .map(|_| rng.f32s(n * k))
        .collect();
    let wps: Vec<Vec<PackedI2>> = scales
        .iter()
        .map(|&kind| {
            let packed_bytes = kind.packed(&mut rng, 1, k).storage_bytes() * n;
            (0..copies_for(packed_bytes, rotate))
                .map(|_| kind.packed(&mut rng, n, k))
                .collect()
        })
        .collect();
    let mut cases: Vec<(&Kernel, &'static str, usize)> = Vec::new();
    let mut fs = vec![baseline_f32(&x, &wf, (m, k, n), threads)];
    for &kernel in kernels {
        for &mode in modes {
            for (s, wp) in wps.iter().enumerate() {
                cases.push((kernel, mode, s));
                fs.push(ours(kernel, mode, &x, wp, (m, k, n)));
            }
        }
    }
    let t = median_times(reps, &mut fs);
    let macs = (m * n * k) as f64;
    cases
        .iter()
        .zip(&t[1..])
        .map(|(&(kernel, mode, s), &secs)| {
            let weight_bytes = wps[s][0].storage_bytes();
            Row {
                op,
                m,
                k,
                n,
                mode,
                scales: scales[s].name(),
                isa: kernel.isa().name().into(),
                threads,
                seconds: secs,
                gmacs: macs / secs / 1e9,
                baseline_gmacs: Some(macs / t[0] / 1e9),
                weight_bytes,
                gbs: weight_bytes as f64 / secs / 1e9,
                rotated: wps[s].len() > 1,
                ..Row::default()
            }
        })
        .collect()
}

fn pack_row(reps: usize) -> Row {
    let (n, k) = (4096, 4096);
    let w = XorShift::new(3).f32s(n * k);
    let t = median_times(
        reps,
        &mut [Box::new(|_| {
            black_box(
                PackedI2::quantize(&w, n, k, Method::AbsMean, Granularity::PerRow).expect("finite"),
            );
        })],
    )[0];
    Row {
        op: "pack",
        m: 0,
        k,
        n,
        mode: "absmean",
        scales: "row".into(),
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
    let scale_names: Vec<String> = if args.scales.is_empty() {
        vec!["row".into(), "group128".into()]
    } else {
        args.scales.clone()
    };
    let scales: Vec<ScaleKind> = scale_names
        .iter()
        .map(|name| {
            ScaleKind::parse(name).unwrap_or_else(|| {
                panic!("--scales: unknown kind {name:?} (tensor, row, group64, group128, group256)")
            })
        })
        .collect();
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
    let w2a8_gemm = [(128, 2560, 2560), (512, 4096, 4096)];
    // The exact-f32 GEMM from a single row up to a batch, against the same f32 GEMM.
    let f32_gemm = [
        (1, 2560, 2560),
        (8, 2560, 2560),
        (32, 2560, 2560),
        (128, 2560, 2560),
        (512, 2560, 2560),
        (512, 4096, 4096),
    ];

    if !args.json {
        println!(
            "kernels on this host: {:?}",
            kernels().iter().map(|k| k.isa().name()).collect::<Vec<_>>()
        );
        println!(
            "{:<9} {:>4} {:>6} {:>6} {:<6} {:<8} {:<11} {:>2} {:>10} {:>8} {:>8} {:>7} {:>7} {:>5} {:>5}",
            "op",
            "m",
            "k",
            "n",
            "mode",
            "scales",
            "isa",
            "th",
            "time_us",
            "gmac/s",
            "f32_base",
            "speedup",
            "GB/s",
            "%bw",
            "%peak"
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
                scales: "-".into(),
                isa: "-".into(),
                threads: t,
                seconds: (1u64 << 30) as f64 / read / 1e9,
                weight_bytes: 1 << 30,
                gbs: read,
                read_gbs: Some(read),
                ..Row::default()
            });
            let peak = vnni_peak(reps).map(|(seconds, gmacs)| {
                emit(&Row {
                    op: "vnni_peak",
                    mode: "dpbusd",
                    scales: "-".into(),
                    isa: "avx512vnni".into(),
                    threads: t,
                    seconds,
                    gmacs,
                    peak_gmacs: Some(gmacs),
                    ..Row::default()
                });
                gmacs
            });
            if peak.is_none() && !args.json {
                println!("vnni_peak: skipped, this host has no AVX-512 VNNI");
            }
            let gemv_modes: Vec<&'static str> = ["w2a8", "f32"]
                .into_iter()
                .filter(|m| args.wants("gemv", m))
                .collect();
            for &(k, n) in gemv.iter().filter(|_| !gemv_modes.is_empty()) {
                let rotate = n * k / 4 > L3_BYTES;
                let shape = (1, k, n);
                let rows = measure_shape(
                    &selected,
                    &gemv_modes,
                    &scales,
                    "gemv",
                    shape,
                    t,
                    rotate,
                    reps,
                );
                for mut r in rows {
                    r.read_gbs = Some(read);
                    emit(&r);
                }
            }
            for &shape in w2a8_gemm.iter().filter(|_| args.wants("gemm", "w2a8")) {
                let rows =
                    measure_shape(&selected, &["w2a8"], &scales, "gemm", shape, t, false, reps);
                for mut r in rows {
                    r.peak_gmacs = peak;
                    emit(&r);
                }
            }
            for &shape in f32_gemm.iter().filter(|_| args.wants("gemm", "f32")) {
                for r in measure_shape(&selected, &["f32"], &scales, "gemm", shape, t, false, reps)
                {
                    emit(&r);
                }
            }
        });
    }
    emit(&pack_row(reps));
}
