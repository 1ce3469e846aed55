//! The trit kernel report: our packed trit ops (the best ISA, [`crate::trit::best`])
//! against a byte-per-trit `i8` implementation in the same run, and against the host's
//! read bandwidth. Run by the `trit-bench` binary.
//!
//! The baseline stores one trit per `i8` and runs the plainest loops (`(x + y).clamp(-1,
//! 1)`, `x * y`, `(x < y) as i8`, an `i64` sum), which the compiler vectorises, split across
//! the same rayon pool in one contiguous share per thread — the byte-per-trit design of the
//! engine issue 15 describes. Ours and the baseline of one row are timed in alternation and
//! reported as medians (see `report::median_times`); each sample repeats its call for
//! ~200 µs, so cache-sized buffers are timed hot. Working sets above 32 MiB rotate through
//! copies that together exceed 512 MiB (twice the dev VM's reported L3), so they are timed
//! from DRAM; the row's read reference rotates likewise.
//!
//! Units: a *trit-op* is one element of one op (a binary op on `n` trits is `n` trit-ops;
//! `sum` and `dot` are `n` too). GB/s counts the bytes an op reads and writes in its own
//! layout: for ours `n / 4` per packed operand and result, for the baseline `n`. `read` is a
//! `u64` sum over a buffer as large as the packed op's traffic (both operands and the result
//! of a binary op), on the same pool, timed in alternation with the row's two ops: `%read`
//! is our GB/s over it (stores count as bytes moved, though a store costs the memory system
//! more than a read), `%rd_in` the same for the bytes our op reads alone.

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

/// A `u64` sum over `words`, one contiguous share per thread: four independent 512-bit
/// accumulators where the host has AVX-512 F (as wide as our kernels read), else eight
/// lanes the compiler vectorises.
fn read_sum(words: &[u64]) -> u64 {
    fn lanes(c: &[u64]) -> u64 {
        let mut acc = [0u64; 8];
        for line in c.chunks_exact(8) {
            for (a, v) in acc.iter_mut().zip(line) {
                *a = a.wrapping_add(*v);
            }
        }
        let tail = c.chunks_exact(8).remainder();
        acc.iter().chain(tail).fold(0u64, |a, &v| a.wrapping_add(v))
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn lanes_avx512(c: &[u64]) -> u64 {
        use std::arch::x86_64::*;
        let mut acc = [_mm512_setzero_si512(); 4];
        let blocks = c.chunks_exact(32);
        let tail = blocks.remainder();
        for block in blocks {
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: `block` holds 32 words; words 8j..8j+8 are in it.
                let v = unsafe { _mm512_loadu_si512(block.as_ptr().add(8 * j).cast()) };
                *a = _mm512_add_epi64(*a, v);
            }
        }
        let s = _mm512_add_epi64(
            _mm512_add_epi64(acc[0], acc[1]),
            _mm512_add_epi64(acc[2], acc[3]),
        );
        (_mm512_reduce_add_epi64(s) as u64).wrapping_add(lanes(tail))
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
    /// The part of `ours_bytes` that is read (the operands).
    ours_in_bytes: usize,
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
            "{:<5} {:>11} {:>2} {:>10.1} {:>9.1} {:>8.1} {:>9.2} {:>8.1} {:>7.1}x {:>8.1} {:>6.0}% {:>6.0}%",
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
            100.0 * ours_gbs / self.read_gbs,
            100.0 * (self.ours_in_bytes as f64 / self.ours_s / 1e9) / self.read_gbs
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
        "{:<5} {:>11} {:>2} {:>10} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7}",
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
        "%read",
        "%rd_in"
    );
    for &n in &sizes {
        let mut rng = XorShift::new(n as u64);
        let (a8, b8) = (rng.ternary(n), rng.ternary(n));
        let (a, b) = (
            PackedTrits::from_i8(&a8).expect("ternary"),
            PackedTrits::from_i8(&b8).expect("ternary"),
        );
        let packed = a.as_bytes().len();
        let (c, c8) = (copies(3 * packed), copies(3 * n));
        let set = Set {
            a: vec![a; c],
            b: vec![b; c],
            out: vec![PackedTrits::zeros(n); c],
            a8: vec![a8; c8],
            b8: vec![b8; c8],
            out8: vec![vec![0i8; n]; c8],
            // The read reference: as many bytes as the largest packed op moves, per copy.
            words: vec![1u64; c * (3 * packed).div_ceil(8)],
        };
        if c > 1 {
            println!(
                "{n} trits: rotating {c} packed / {c8} i8 buffer sets (> {} MiB, beyond L3)",
                ROTATE_BYTES >> 20
            );
        }
        for &t in &threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("a rayon pool");
            pool.install(|| {
                for &op in &ops {
                    let times = time_row(op, &set, args.reps);
                    let (ins, outs) = op.buffers();
                    let read_bytes = ((ins + outs) * packed).div_ceil(8) * 8;
                    Row {
                        op: op.name(),
                        trits: n,
                        threads: t,
                        ours_s: times[0],
                        base_s: times[1],
                        ours_bytes: (ins + outs) * packed,
                        ours_in_bytes: ins * packed,
                        base_bytes: (ins + outs) * n,
                        read_gbs: read_bytes as f64 / times[2] / 1e9,
                    }
                    .print();
                }
            });
        }
    }
}

/// The buffers of one size: `copies` of each, cycled through call by call.
struct Set {
    a: Vec<PackedTrits>,
    b: Vec<PackedTrits>,
    out: Vec<PackedTrits>,
    a8: Vec<Vec<i8>>,
    b8: Vec<Vec<i8>>,
    out8: Vec<Vec<i8>>,
    words: Vec<u64>,
}

/// Working sets above this are timed from DRAM: the buffers rotate through copies that
/// together exceed [`ROTATE_BYTES`].
const DRAM_BYTES: usize = 32 << 20;
/// Bytes a rotation must exceed: twice the dev VM's reported 260 MiB L3.
const ROTATE_BYTES: usize = 512 << 20;

/// Copies of a working set of `bytes` to rotate through: 1 when it is cache-sized.
fn copies(bytes: usize) -> usize {
    if bytes > DRAM_BYTES {
        ROTATE_BYTES.div_ceil(bytes).max(2)
    } else {
        1
    }
}

/// `[ours, i8 baseline, read]` seconds per call of `op` on `set`, in alternation.
fn time_row(op: Op, set: &Set, reps: usize) -> [f64; 3] {
    let k = best();
    let (c, c8) = (set.a.len(), set.a8.len());
    let mut outs: Vec<PackedTrits> = set.out.clone();
    let mut outs8: Vec<Vec<i8>> = set.out8.clone();
    let (mut r, mut r8, mut rr) = (0usize, 0usize, 0usize);
    let ours: Box<dyn FnMut(usize) + '_> = Box::new(move |_| {
        r = (r + 1) % c;
        let (a, b, out) = (&set.a[r], &set.b[r], &mut outs[r]);
        match op {
            Op::Binary(o) => k.binary_into(o, a, b, out).expect("equal lengths"),
            Op::Neg => k.unary_into(UnaryOp::Neg, a, out),
            Op::Sum => {
                black_box(k.sum(black_box(a)));
            }
            Op::Dot => {
                black_box(k.dot(black_box(a), b).expect("equal lengths"));
            }
        }
        black_box(&*out);
    });
    let base: Box<dyn FnMut(usize) + '_> = Box::new(move |_| {
        r8 = (r8 + 1) % c8;
        let (a, b, out) = (&set.a8[r8], &set.b8[r8], &mut outs8[r8]);
        match op {
            Op::Binary(o) => i8_binary(o, a, b, out),
            Op::Neg => i8_neg(a, out),
            Op::Sum => {
                black_box(i8_sum(black_box(a)));
            }
            Op::Dot => {
                black_box(i8_dot(black_box(a), b));
            }
        }
        black_box(&*out);
    });
    let (ins, outn) = op.buffers();
    let span = ((ins + outn) * set.a[0].as_bytes().len()).div_ceil(8);
    let stride = set.words.len() / c;
    let read: Box<dyn FnMut(usize) + '_> = Box::new(move |_| {
        rr = (rr + 1) % c;
        black_box(read_sum(black_box(
            &set.words[rr * stride..rr * stride + span],
        )));
    });
    let t = median_per_call(reps, &mut [ours, base, read]);
    [t[0], t[1], t[2]]
}
