//! Criterion: the GGUF ternary codecs (`TQ1_0`, `TQ2_0`, `I2_S`) on one thread, decode and
//! encode of a 40 M-weight tensor, against a plain copy of the same trits as the baseline.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ternary_kernels::format::i2s::{decode_i2_s, encode_i2_s, i2_s_bytes};
use ternary_kernels::format::tq::{
    QK_K, TQ1_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES, decode_tq1_0, decode_tq2_0, encode_tq1_0,
    encode_tq2_0,
};
use ternary_kernels::random::XorShift;

/// 156 250 blocks of 256 = 15 625 rows of 2 560 = 40 M weights.
const WEIGHTS: usize = 40_000_000;

fn codecs(c: &mut Criterion) {
    let blocks = WEIGHTS / QK_K;
    let mut rng = XorShift::new(40);
    let t = rng.ternary(WEIGHTS);
    let scales: Vec<u16> = (0..blocks)
        .map(|_| rng.next_u64() as u16 & 0x7bff)
        .collect();
    let mut codes = vec![0i8; WEIGHTS];
    let mut s = vec![0u16; blocks];
    let mut g = c.benchmark_group("ggml_codecs_40M");
    g.throughput(Throughput::Elements(WEIGHTS as u64));

    g.bench_function("baseline_copy_trits", |b| {
        b.iter(|| codes.copy_from_slice(black_box(&t)))
    });

    let mut tq2 = vec![0u8; blocks * TQ2_0_BLOCK_BYTES];
    g.bench_function("tq2_0_encode", |b| {
        b.iter(|| encode_tq2_0(black_box(&t), &scales, &mut tq2).unwrap())
    });
    g.bench_function("tq2_0_decode", |b| {
        b.iter(|| decode_tq2_0(black_box(&tq2), &mut codes, &mut s).unwrap())
    });

    let mut tq1 = vec![0u8; blocks * TQ1_0_BLOCK_BYTES];
    g.bench_function("tq1_0_encode", |b| {
        b.iter(|| encode_tq1_0(black_box(&t), &scales, &mut tq1).unwrap())
    });
    g.bench_function("tq1_0_decode", |b| {
        b.iter(|| decode_tq1_0(black_box(&tq1), &mut codes, &mut s).unwrap())
    });

    let (n, k) = (WEIGHTS / 2560, 2560);
    let mut i2s = vec![0u8; i2_s_bytes(n, k).unwrap()];
    g.bench_function("i2_s_encode", |b| {
        b.iter(|| encode_i2_s(black_box(&t), n, k, 0.5, &mut i2s).unwrap())
    });
    g.bench_function("i2_s_decode", |b| {
        b.iter(|| black_box(decode_i2_s(black_box(&i2s), n, k, &mut codes).unwrap()))
    });
    g.finish();
    assert!(codes == t);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = codecs
}
criterion_main!(benches);
