//! Criterion: W2A8 GEMM (M = 128, 512) for every SIMD ISA, against the f32 `gemm` crate.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ternary_kernels::QuantizedActivations;
use ternary_kernels::cpu::{Isa, kernels};
use ternary_kernels::random::XorShift;
use ternary_kernels::report::gemm_f32;

fn gemm_bench(c: &mut Criterion) {
    for (m, k, n) in [(128, 2560, 2560), (512, 4096, 4096)] {
        let mut rng = XorShift::new(2);
        let w = rng.packed(n, k);
        let x = rng.f32s(m * k);
        let q = QuantizedActivations::quantize(&x, m, k).unwrap();
        let mut y = vec![0f32; m * n];
        let mut g = c.benchmark_group(format!("gemm_{m}x{k}x{n}"));
        g.throughput(Throughput::Elements((m * k * n) as u64));
        for kernel in kernels().iter().filter(|k| k.isa() != Isa::Scalar) {
            g.bench_function(format!("w2a8_{}", kernel.isa().name()), |b| {
                b.iter(|| {
                    kernel.matmul_w2a8(&q, &w, None, &mut y).unwrap();
                    black_box(&y);
                })
            });
        }
        let wf = rng.f32s(n * k);
        let threads = rayon::current_num_threads();
        g.bench_function("f32_gemm_crate", |b| {
            b.iter(|| {
                gemm_f32(&mut y, &x, &wf, m, k, n, gemm::Parallelism::Rayon(threads));
                black_box(&y);
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = gemm_bench
}
criterion_main!(benches);
