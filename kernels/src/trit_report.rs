//! The trit kernel report: our packed trit ops (the best ISA, [`crate::trit::best`])
//! against a byte-per-trit `i8` implementation in the same run, and against the host's
//! read bandwidth. Run by the `trit-bench` binary.
//!
//! The baseline stores one trit per `i8` and runs the plainest loops (`(x + y).clamp(-1,
//! 1)`, `x * y`, `(x < y) as i8`, an `i64` sum), which the compiler vectorises, split across
//! the same rayon pool in one contiguous share per thread — the byte-per-trit design of the
//! engine issue 15 describes. Ours and the baseline of one row are timed in alternation and
//! reported as medians (see `report::median_times`); each sample repeats its call for
//! ~200 µs, so cache-sized buffers are timed hot.
//!
//! Units: a *trit-op* is one element of one op (a binary op on `n` trits is `n` trit-ops;
//! `sum` and `dot` are `n` too). GB/s counts the bytes an op reads and writes in its own
//! layout: for ours `n / 4` per packed operand and result, for the baseline `n`. The `read`
//! rows are a `u64` sum over a buffer as large as the packed op's traffic (both operands and
//! the result of a binary op), the same pool: `%read` is our GB/s over that figure.

use std::hint::black_box;

use rayon::prelude::*;

use crate::random::XorShift;
use crate::report::median_times;

/// Each timing sample repeats its closure until it lasts about this long, so a closure's
/// buffers are back in cache after the other closure of its row ran (a baseline's 3 MB of
/// `i8` evicts our 0.75 MB from a 2 MB L2): only the first call of a sample pays for that.
const SAMPLE_SECONDS: f64 = 200e-6;

/// [`median_times`] over samples of `calls` back-to-back calls each, per call; `calls` is
/// set per closure from one timed call so a sample lasts about [`SAMPLE_SECONDS`].
fn median_per_call(min_reps: usize, fs: &mut [Box<dyn FnMut(usize) + '_>]) -> Vec<f64> {
    let calls: Vec<usize> = fs
        .iter_mut()
        .map(|f| {
            f(0);
            let t = std::time::Instant::now();
            f(0);
            (SAMPLE_SECONDS / t.elapsed().as_secs_f64().max(1e-9)).ceil() as usize
        })
        .collect();
    let mut batched: Vec<Box<dyn FnMut(usize) + '_>> = fs
        .iter_mut()
        .zip(&calls)
        .map(|(f, &c)| {
            Box::new(move |i| {
                for _ in 0..c {
                    f(i)
                }
            }) as Box<dyn FnMut(usize) + '_>
        })
        .collect();
    median_times(min_reps, &mut batched)
        .into_iter()
        .zip(&calls)
        .map(|(t, &c)| t / c as f64)
        .collect()
}
use crate::trit::{BinaryOp, PackedTrits, UnaryOp, best};

/// Options of the trit report.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TritReportArgs {
    /// Thread counts to measure (default: 1 and 2).
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Trits per operand (default: 1000000 and 100000000).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// Only these ops (add, sub, mul, min, max, eq, ne, lt, le, gt, ge, neg, sum, dot);
    /// default: all.
    #[arg(long, value_delimiter = ',')]
    pub op: Vec<String>,
    /// Minimum repetitions per timing (default 20).
    #[arg(long, default_value_t = 20)]
    pub reps: usize,
}

/// One op of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Binary(BinaryOp),
    Neg,
    Sum,
    Dot,
}

impl Op {
    fn all() -> Vec<Op> {
        let mut v: Vec<Op> = BinaryOp::ALL.iter().map(|&o| Op::Binary(o)).collect();
        v.extend([Op::Neg, Op::Sum, Op::Dot]);
        v
    }

    fn name(self) -> &'static str {
        match self {
            Op::Binary(o) => o.name(),
            Op::Neg => "neg",
            Op::Sum => "sum",
            Op::Dot => "dot",
        }
    }

    /// Operands read and results written, in buffers of `n` elements.
    fn buffers(self) -> (usize, usize) {
        match self {
            Op::Binary(_) => (2, 1),
            Op::Neg => (1, 1),
            Op::Sum => (1, 0),
            Op::Dot => (2, 0),
        }
    }
}

/// The byte-per-trit baseline of a binary op: one plain loop per op.
fn i8_binary(op: BinaryOp, a: &[i8], b: &[i8], out: &mut [i8]) {
    fn zip(a: &[i8], b: &[i8], out: &mut [i8], f: impl Fn(i8, i8) -> i8 + Sync) {
        let chunk = a.len().div_ceil(rayon::current_num_threads()).max(1);
        out.par_chunks_mut(chunk)
            .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
            .for_each(|(o, (a, b))| {
                for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                    *o = f(x, y);
                }
            });
    }
    match op {
        BinaryOp::Add => zip(a, b, out, |x, y| (x + y).clamp(-1, 1)),
        BinaryOp::Sub => zip(a, b, out, |x, y| (x - y).clamp(-1, 1)),
        BinaryOp::Mul => zip(a, b, out, |x, y| x * y),
        BinaryOp::Min => zip(a, b, out, |x, y| x.min(y)),
        BinaryOp::Max => zip(a, b, out, |x, y| x.max(y)),
        BinaryOp::Eq => zip(a, b, out, |x, y| (x == y) as i8),
        BinaryOp::Ne => zip(a, b, out, |x, y| (x != y) as i8),
        BinaryOp::Lt => zip(a, b, out, |x, y| (x < y) as i8),
        BinaryOp::Le => zip(a, b, out, |x, y| (x <= y) as i8),
        BinaryOp::Gt => zip(a, b, out, |x, y| (x > y) as i8),
        BinaryOp::Ge => zip(a, b, out, |x, y| (x >= y) as i8),
    }
}

fn i8_neg(a: &[i8], out: &mut [i8]) {
    let chunk = a.len().div_ceil(rayon::current_num_threads()).max(1);
    out.par_chunks_mut(chunk)
        .zip(a.par_chunks(chunk))
        .for_each(|(o, a)| o.iter_mut().zip(a).for_each(|(o, &x)| *o = -x));
}

fn i8_sum(a: &[i8]) -> i64 {
    let chunk = a.len().div_ceil(rayon::current_num_threads()).max(1);
    a.par_chunks(chunk)
        .map(|c| c.iter().map(|&x| i64::from(x)).sum::<i64>())
        .sum()
}

fn i8_dot(a: &[i8], b: &[i8]) -> i64 {
    let chunk = a.len().div_ceil(rayon::current_num_threads()).max(1);
    a.par_chunks(chunk)
        .zip(b.par_chunks(chunk))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| i64::from(x * y))
                .sum::<i64>()
        })
        .sum()
}

/// A `u64` sum over `words`, one contiguous share per thread, eight lanes so the loop
/// vectorises; with 512-bit loads where the host has AVX-512 F, so the reference reads as
/// wide as our kernels do.
fn read_sum(words: &[u64]) -> u64 {
    #[inline(always)]
    fn lanes(c: &[u64]) -> u64 {
        let mut acc = [0u64; 8];
        for line in c.chunks_exact(8) {
            for (a, v) in acc.iter_mut().zip(line) {
                *a = a.wrapping_add(*v);
            }
        }
        acc.iter().fold(0u64, |a, &v| a.wrapping_add(v))
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn lanes_avx512(c: &[u64]) -> u64 {
        lanes(c)
    }
    #[cfg(target_arch = "x86_64")]
    let wide = is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let wide = false;
    let chunk = words.len().div_ceil(rayon::current_num_threads()).max(8);
    words
        .par_chunks(chunk)
        .map(|c| {
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: the host has AVX-512 F (detected above).
                return unsafe { lanes_avx512(c) };
            }
            let _ = wide;
            lanes(c)
        })
        .reduce(|| 0, u64::wrapping_add)
}

struct Row {
    op: &'static str,
    trits: usize,
    threads: usize,
    ours_s: f64,
    base_s: f64,
    ours_bytes: usize,
    base_bytes: usize,
    read_gbs: f64,
}

impl Row {
    fn print(&self) {
        let n = self.trits as f64;
        let ours_g = n / self.ours_s / 1e9;
        let base_g = n / self.base_s / 1e9;
        let ours_gbs = self.ours_bytes as f64 / self.ours_s / 1e9;
        let base_gbs = self.base_bytes as f64 / self.base_s / 1e9;
        println!(
            "{:<5} {:>11} {:>2} {:>10.1} {:>9.1} {:>8.1} {:>9.2} {:>8.1} {:>7.1}x {:>8.1} {:>6.0}%",
            self.op,
            self.trits,
            self.threads,
            self.ours_s * 1e6,
            ours_g,
            ours_gbs,
            base_g,
            base_gbs,
            ours_g / base_g,
            self.read_gbs,
            100.0 * ours_gbs / self.read_gbs
        );
    }
}

/// Runs the trit report and prints its table.
pub fn run(args: &TritReportArgs) {
    let threads = if args.threads.is_empty() {
        vec![1, 2]
    } else {
        args.threads.clone()
    };
    let sizes = if args.sizes.is_empty() {
        vec![1_000_000, 100_000_000]
    } else {
        args.sizes.clone()
    };
    let ops: Vec<Op> = Op::all()
        .into_iter()
        .filter(|o| args.op.is_empty() || args.op.iter().any(|n| n == o.name()))
        .collect();
    println!(
        "trit kernels: ours = packed 4 trits/byte, ISA {}; i8 = one byte per trit, plain loops",
        best().isa().name()
    );
    println!(
        "{:<5} {:>11} {:>2} {:>10} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "op",
        "trits",
        "th",
        "ours_us",
        "G_trit/s",
        "GB/s",
        "i8_G/s",
        "i8_GB/s",
        "speedup",
        "read",
        "%read"
    );
    for &n in &sizes {
        let mut rng = XorShift::new(n as u64);
        let (a8, b8) = (rng.ternary(n), rng.ternary(n));
        let (a, b) = (
            PackedTrits::from_i8(&a8).expect("ternary"),
            PackedTrits::from_i8(&b8).expect("ternary"),
        );
        let mut out = PackedTrits::zeros(n);
        let mut out8 = vec![0i8; n];
        let packed = a.as_bytes().len();
        for &t in &threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("a rayon pool");
            pool.install(|| {
                // Read bandwidth at the size of a packed binary op's traffic.
                let words = vec![1u64; (3 * packed).div_ceil(8)];
                let rt = median_per_call(
                    args.reps,
                    &mut [Box::new(|_| {
                        black_box(read_sum(black_box(&words)));
                    })],
                );
                let read_gbs = (words.len() * 8) as f64 / rt[0] / 1e9;
                println!(
                    "read  {:>11} {t:>2} {:>10.1}  (u64 sum over {} bytes: {read_gbs:.1} GB/s)",
                    n,
                    rt[0] * 1e6,
                    words.len() * 8
                );
                for &op in &ops {
                    let k = best();
                    let (ins, outs) = op.buffers();
                    let times = {
                        let (a, b, a8, b8) = (&a, &b, &a8, &b8);
                        let (out, out8) = (&mut out, &mut out8);
                        let ours: Box<dyn FnMut(usize) + '_> = match op {
                            Op::Binary(o) => Box::new(move |_| {
                                k.binary_into(o, a, b, out).expect("equal lengths");
                                black_box(&*out);
                            }),
                            Op::Neg => Box::new(move |_| {
                                k.unary_into(UnaryOp::Neg, a, out);
                                black_box(&*out);
                            }),
                            Op::Sum => Box::new(move |_| {
                                black_box(k.sum(black_box(a)));
                            }),
                            Op::Dot => Box::new(move |_| {
                                black_box(k.dot(black_box(a), b).expect("equal lengths"));
                            }),
                        };
                        let base: Box<dyn FnMut(usize) + '_> = match op {
                            Op::Binary(o) => Box::new(move |_| {
                                i8_binary(o, a8, b8, out8);
                                black_box(&*out8);
                            }),
                            Op::Neg => Box::new(move |_| {
                                i8_neg(a8, out8);
                                black_box(&*out8);
                            }),
                            Op::Sum => Box::new(move |_| {
                                black_box(i8_sum(black_box(a8)));
                            }),
                            Op::Dot => Box::new(move |_| {
                                black_box(i8_dot(black_box(a8), b8));
                            }),
                        };
                        median_per_call(args.reps, &mut [ours, base])
                    };
                    Row {
                        op: op.name(),
                        trits: n,
                        threads: t,
                        ours_s: times[0],
                        base_s: times[1],
                        ours_bytes: (ins + outs) * packed,
                        base_bytes: (ins + outs) * n,
                        read_gbs,
                    }
                    .print();
                }
            });
        }
    }
}
