//! Criterion: the ternary conv2d (W2A8 with per-image quantization included, and exact f32)
//! for every SIMD ISA, against an f32 im2col + `gemm` crate convolution of the same shape,
//! at ResNet-20 (CIFAR-10) and the MNIST CNN's conv shapes, batch 128, 3×3, padding 1.
//!
//! The baseline lowers each image to its `[OH·OW × C·9]` patch matrix and multiplies it by
//! the f32 weights with `gemm` straight into the NCHW output, images in parallel on rayon —
//! a stronger baseline than a whole-batch unfold followed by one GEMM and a transpose.

use std::cell::RefCell;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use ternary_kernels::cpu::{Isa, kernels};
use ternary_kernels::random::XorShift;
use ternary_kernels::{Conv2dParams, QuantizedImages};

/// `(name, batch, channels in, height = width, channels out)`, 3×3 kernels, padding 1.
const SHAPES: [(&str, usize, usize, usize, usize); 6] = [
    ("resnet20_16x32x32", 128, 16, 32, 16),
    ("resnet20_32x16x16", 128, 32, 16, 32),
    ("resnet20_64x8x8", 128, 64, 8, 64),
    ("mnist_conv1_1x28x28", 128, 1, 28, 32),
    ("mnist_conv2_32x14x14", 128, 32, 14, 64),
    ("mnist_conv3_64x7x7", 128, 64, 7, 64),
];

thread_local! {
    static PATCHES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The f32 baseline: per image, im2col into `[L × K]` (pixel-major rows, zeros at padding)
/// and `out[o, p] = Σ_k w[o, k] · patch[p, k]` with `gemm`, images in parallel.
fn im2col_gemm(p: &Conv2dParams, x: &[f32], w: &[f32], out: &mut [f32]) {
    let (oh, ow) = p.out_hw().unwrap();
    let (l, k, [kh, kw]) = (oh * ow, p.k(), p.kernel);
    let (c, h, wd, oc) = (p.in_channels, p.height, p.width, p.out_channels);
    out.par_chunks_mut(oc * l)
        .zip(x.par_chunks(c * h * wd))
        .for_each(|(y, img)| {
            PATCHES.with_borrow_mut(|buf| {
                buf.clear();
                buf.resize(l * k, 0.0);
                for oy in 0..oh {
                    for ox in 0..ow {
                        let row = &mut buf[(oy * ow + ox) * k..][..k];
                        for ci in 0..c {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy + ky).checked_sub(p.padding[0]).filter(|&v| v < h);
                                    let ix =
                                        (ox + kx).checked_sub(p.padding[1]).filter(|&v| v < wd);
                                    if let (Some(iy), Some(ix)) = (iy, ix) {
                                        row[(ci * kh + ky) * kw + kx] =
                                            img[(ci * h + iy) * wd + ix];
                                    }
                                }
                            }
                        }
                    }
                }
                // SAFETY: y is oc × l row-major (rs = l, cs = 1); w is oc × k row-major;
                // the patches are l × k row-major, read as the k × l matrix (rs = 1, cs = k).
                unsafe {
                    gemm::gemm(
                        oc,
                        l,
                        k,
                        y.as_mut_ptr(),
                        1,
                        l as isize,
                        false,
                        w.as_ptr(),
                        1,
                        k as isize,
                        buf.as_ptr(),
                        k as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            });
        });
}

fn conv_bench(c: &mut Criterion) {
    for (name, batch, cin, hw, cout) in SHAPES {
        let p = Conv2dParams::new(batch, cin, [hw, hw], cout, [3, 3]).with_padding([1, 1]);
        let mut rng = XorShift::new(3);
        let w = rng.packed(cout, p.k());
        let x = rng.f32s(p.input_len().unwrap());
        let bias = rng.f32s(cout);
        let mut y = vec![0f32; p.output_len().unwrap()];
        let mut q = QuantizedImages::default();
        let (oh, ow) = p.out_hw().unwrap();
        let mut g = c.benchmark_group(format!("conv_{name}"));
        g.throughput(Throughput::Elements(
            (batch * oh * ow * cout * p.k()) as u64,
        ));
        for kernel in kernels().iter().filter(|k| k.isa() != Isa::Scalar) {
            g.bench_function(format!("w2a8_{}", kernel.isa().name()), |b| {
                b.iter(|| {
                    q.quantize_into(&x, batch, cin * hw * hw).unwrap();
                    kernel.conv2d_w2a8(&q, &p, &w, Some(&bias), &mut y).unwrap();
                    black_box(&y);
                })
            });
        }
        // VNNI only changes the int8 product; its f32 path is AVX-512BW's.
        for kernel in kernels()
            .iter()
            .filter(|k| matches!(k.isa(), Isa::Avx2 | Isa::Avx512Bw))
        {
            g.bench_function(format!("f32_{}", kernel.isa().name()), |b| {
                b.iter(|| {
                    kernel.conv2d_f32(&x, &p, &w, Some(&bias), &mut y).unwrap();
                    black_box(&y);
                })
            });
        }
        let wf = w.dequantize();
        g.bench_function("f32_im2col_gemm", |b| {
            b.iter(|| {
                im2col_gemm(&p, &x, &wf, &mut y);
                black_box(&y);
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = conv_bench
}
criterion_main!(benches);
