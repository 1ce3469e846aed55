//! Criterion: quantize + pack throughput (one thread), both quantizers, per row.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ternary_kernels::random::XorShift;
use ternary_kernels::{Granularity, Method, PackedI2, PackedT1};

fn pack(c: &mut Criterion) {
    let (n, k) = (2048, 2048);
    let w = XorShift::new(3).f32s(n * k);
    let mut g = c.benchmark_group("pack_2048x2048");
    g.throughput(Throughput::Elements((n * k) as u64));
    for method in [Method::AbsMean, Method::Twn] {
        g.bench_function(format!("{method:?}_per_row"), |b| {
            b.iter(|| black_box(PackedI2::quantize(&w, n, k, method, Granularity::PerRow).unwrap()))
        });
    }
    let p = PackedI2::quantize(&w, n, k, Method::AbsMean, Granularity::PerRow).unwrap();
    g.bench_function("i2_to_t1", |b| b.iter(|| black_box(PackedT1::from_i2(&p))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = pack
}
criterion_main!(benches);
