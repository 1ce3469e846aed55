//! Criterion: W2A8 and exact-f32 GEMV (M = 1) for every ISA the host supports.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ternary_kernels::QuantizedActivations;
use ternary_kernels::cpu::kernels;
use ternary_kernels::random::XorShift;

fn gemv(c: &mut Criterion) {
    for (k, n) in [(2560, 2560), (4096, 4096), (4096, 14336)] {
        let mut rng = XorShift::new(1);
        let w = rng.packed(n, k);
        let x = rng.f32s(k);
        let mut y = vec![0f32; n];
        let mut g = c.benchmark_group(format!("gemv_{k}x{n}"));
        g.throughput(Throughput::Elements((k * n) as u64));
        for kernel in kernels() {
            let name = kernel.isa().name();
            let mut q = QuantizedActivations::default();
            g.bench_function(format!("w2a8_{name}"), |b| {
                b.iter(|| {
                    q.quantize_into(&x, 1, k).unwrap();
                    kernel.matmul_w2a8(&q, &w, None, &mut y).unwrap();
                    black_box(&y);
                })
            });
            g.bench_function(format!("f32_{name}"), |b| {
                b.iter(|| {
                    kernel.matmul_f32(&x, 1, &w, None, &mut y).unwrap();
                    black_box(&y);
                })
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = gemv
}
criterion_main!(benches);
