//! The ternary 2-D convolution: every kernel the host supports against the direct-convolution
//! references (bit-exact integer sums) and against an f64 convolution of the dequantised
//! weights (exact-f32 within rounding, W2A8 within the documented quantization bound).

use proptest::prelude::*;
use ternary_kernels::cpu::{Kernel, conv2d_f32_reference, conv2d_w2a8_i32_reference, kernels};
use ternary_kernels::format::GROUP_SIZES;
use ternary_kernels::random::XorShift;
use ternary_kernels::{
    Conv2dParams, KernelError, MAX_K_W2A8, PackedI2, PackedI2Ref, QuantizedActivations,
    QuantizedImages, Scales,
};

fn scalar() -> &'static Kernel {
    &kernels()[0]
}

/// Random weights (per-row or per-tensor scales), input in [−2, 2) with some exact zeros,
/// and a bias.
struct Case {
    p: Conv2dParams,
    w: PackedI2,
    x: Vec<f32>,
    bias: Vec<f32>,
}

fn case(p: Conv2dParams, seed: u64) -> Case {
    // One seed in five takes group scales (of 64, 128 or 256 columns by the seed).
    let group = (seed % 5 == 1).then(|| GROUP_SIZES[(seed / 5 % 3) as usize]);
    case_with(p, seed, group)
}

/// [`case`] with per-group scales of `group` columns when given.
fn case_with(p: Conv2dParams, seed: u64, group: Option<usize>) -> Case {
    let mut rng = XorShift::new(seed);
    let k = p.k();
    let t = rng.ternary(p.out_channels * k);
    let scales = if let Some(group_size) = group {
        Scales::PerGroup {
            group_size,
            scales: (0..p.out_channels * k.div_ceil(group_size))
                .map(|_| rng.next_f32().abs() * 2.0)
                .collect(),
        }
    } else if seed.is_multiple_of(3) {
        Scales::PerTensor(rng.next_f32().abs() + 0.01)
    } else {
        Scales::PerRow(
            (0..p.out_channels)
                .map(|_| rng.next_f32().abs() * 2.0)
                .collect(),
        )
    };
    let w = PackedI2::from_ternary(&t, p.out_channels, k, scales).unwrap();
    let x = (0..p.input_len().unwrap())
        .map(|_| {
            let v = rng.next_f32() * 2.0;
            if v.abs() < 0.1 { 0.0 } else { v }
        })
        .collect();
    let bias = (0..p.out_channels).map(|_| rng.next_f32()).collect();
    Case { p, w, x, bias }
}

/// One output of the f64 convolution with dequantised weights (each weight times its own
/// row or group scale), with the magnitudes the tolerances need: `Σ|w·x|·scale` and
/// `Σ|w|·scale`.
struct Ref {
    y: f64,
    abs_wx: f64,
    abs_w: f64,
}

/// Plain f64 convolution (independent of the crate's reference), NCHW.
fn reference_f64(c: &Case, x: &[f32], bias: Option<&[f32]>) -> Vec<Ref> {
    let p = &c.p;
    let (oh, ow) = p.out_hw().unwrap();
    let cg = p.in_channels / p.groups;
    let ng = p.out_channels / p.groups;
    let [kh, kw] = p.kernel;
    let t = c.w.to_ternary();
    let k = p.k();
    let mut out = Vec::new();
    for b in 0..p.batch {
        for o in 0..p.out_channels {
            let g = o / ng;
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut y, mut abs_wx, mut abs_w) = (0f64, 0f64, 0f64);
                    for ci in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let col = (ci * kh + ky) * kw + kx;
                                let s = f64::from(c.w.scales().at(o, col, k));
                                let wv = f64::from(t[o * k + col]) * s;
                                let iy = (oy * p.stride[0] + ky * p.dilation[0]) as isize
                                    - p.padding[0] as isize;
                                let ix = (ox * p.stride[1] + kx * p.dilation[1]) as isize
                                    - p.padding[1] as isize;
                                let inside = (0..p.height as isize).contains(&iy)
                                    && (0..p.width as isize).contains(&ix);
                                let xv = if inside {
                                    let ch = g * cg + ci;
                                    f64::from(
                                        x[((b * p.in_channels + ch) * p.height + iy as usize)
                                            * p.width
                                            + ix as usize],
                                    )
                                } else {
                                    0.0
                                };
                                y += wv * xv;
                                abs_wx += (wv * xv).abs();
                                abs_w += wv.abs();
                            }
                        }
                    }
                    let bv = bias.map_or(0.0, |v| f64::from(v[o]));
                    out.push(Ref {
                        y: y + bv,
                        abs_wx,
                        abs_w,
                    });
                }
            }
        }
    }
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// Everything that must hold for one convolution on every kernel of the host.
fn check_every_isa(c: &Case) -> Result<(), TestCaseError> {
    let p = &c.p;
    let n_out = p.output_len().unwrap();
    let img = p.in_channels * p.height * p.width;
    let bias = Some(&c.bias[..]);
    let eps = f64::from(f32::EPSILON);
    let k = p.k() as f64;

    // Integer sums: every ISA equals the direct-convolution reference exactly.
    let q = QuantizedImages::quantize(&c.x, p.batch, img).unwrap();
    let mut expect_i32 = vec![0i32; n_out];
    conv2d_w2a8_i32_reference(&q, p, &c.w, &mut expect_i32).unwrap();
    let mut expect_w2a8 = vec![0f32; n_out];
    scalar()
        .conv2d_w2a8(&q, p, &c.w, bias, &mut expect_w2a8)
        .unwrap();
    let mut expect_f32 = vec![0f32; n_out];
    conv2d_f32_reference(&c.x, p, &c.w, bias, &mut expect_f32).unwrap();
    let exact = reference_f64(c, &c.x, bias);

    for kernel in kernels() {
        let isa = kernel.isa();
        let mut got = vec![i32::MIN; n_out];
        kernel.conv2d_w2a8_i32(&q, p, &c.w, &mut got).unwrap();
        prop_assert_eq!(&got, &expect_i32, "{:?} i32 {:?}", isa, p);

        // The scaled W2A8 output: one epilogue, so the same bits on every ISA ...
        let mut y8 = vec![f32::NAN; n_out];
        kernel.conv2d_w2a8(&q, p, &c.w, bias, &mut y8).unwrap();
        prop_assert_eq!(bits(&y8), bits(&expect_w2a8), "{:?} w2a8 {:?}", isa, p);

        // ... exact f32 within summation-order rounding of the f64 convolution ...
        let mut yf = vec![f32::NAN; n_out];
        kernel.conv2d_f32(&c.x, p, &c.w, bias, &mut yf).unwrap();
        for (i, (r, &v)) in exact.iter().zip(&yf).enumerate() {
            let tol = r.abs_wx * eps * k.sqrt().max(4.0) + 2.0 * eps * (r.y.abs() + 1.0);
            prop_assert!(
                (f64::from(v) - r.y).abs() <= tol,
                "{:?} f32 out[{}] = {} vs {} (tol {}) {:?}",
                isa,
                i,
                v,
                r.y,
                tol,
                p
            );
        }
        // ... and the scalar kernel sums an im2col row in the reference's column order.
        if kernel.isa() == scalar().isa() {
            prop_assert_eq!(bits(&yf), bits(&expect_f32), "scalar f32 {:?}", p);
        }

        // The fused ReLU is the unfused output through Burn's `relu` rule (NaN kept,
        // −0.0 → +0.0), bit for bit, on every path (GEMM, direct, group scales).
        let relu = |v: &[f32]| -> Vec<u32> {
            v.iter()
                .map(|&v| if v.is_nan() || v > 0.0 { v } else { 0.0 })
                .map(f32::to_bits)
                .collect()
        };
        let pr = p.with_relu(true);
        let mut fused = vec![f32::NAN; n_out];
        kernel.conv2d_w2a8(&q, &pr, &c.w, bias, &mut fused).unwrap();
        prop_assert_eq!(bits(&fused), relu(&y8), "{:?} w2a8+relu {:?}", isa, p);
        kernel
            .conv2d_f32(&c.x, &pr, &c.w, bias, &mut fused)
            .unwrap();
        prop_assert_eq!(bits(&fused), relu(&yf), "{:?} f32+relu {:?}", isa, p);
        let mut sums = vec![i32::MIN; n_out];
        kernel.conv2d_w2a8_i32(&q, &pr, &c.w, &mut sums).unwrap();
        prop_assert_eq!(&sums, &expect_i32, "{:?} i32 ignores relu {:?}", isa, p);

        // The fused residual adds what `out` holds on entry before the ReLU: the unfused
        // output plus the residual, then `relu`, bit for bit.
        let residual: Vec<f32> = (0..n_out)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0)
            .collect();
        let plus =
            |v: &[f32]| -> Vec<f32> { v.iter().zip(&residual).map(|(a, r)| a + r).collect() };
        let prr = pr.with_residual(true);
        let mut fused = residual.clone();
        kernel
            .conv2d_w2a8(&q, &prr, &c.w, bias, &mut fused)
            .unwrap();
        prop_assert_eq!(bits(&fused), relu(&plus(&y8)), "{:?} w2a8+res {:?}", isa, p);
        let mut fused = residual.clone();
        kernel
            .conv2d_f32(&c.x, &p.with_residual(true), &c.w, bias, &mut fused)
            .unwrap();
        prop_assert_eq!(bits(&fused), bits(&plus(&yf)), "{:?} f32+res {:?}", isa, p);

        // W2A8 against exact: |Δy| ≤ (s_b / 2) · Σ|w|·w_scale, plus f32 rounding.
        for (i, (r, &v)) in exact.iter().zip(&y8).enumerate() {
            let b = i / (n_out / p.batch);
            let bound = 0.5 * f64::from(q.scales()[b]) * r.abs_w;
            let tol = bound * (1.0 + 1e-4) + 8.0 * eps * (r.abs_wx + r.y.abs() + 1.0);
            prop_assert!(
                (f64::from(v) - r.y).abs() <= tol,
                "{:?} w2a8 out[{}] = {} vs {} (bound {}) {:?}",
                isa,
                i,
                v,
                r.y,
                bound,
                p
            );
        }
    }
    Ok(())
}

fn run(p: Conv2dParams, seed: u64) {
    check_every_isa(&case(p, seed)).unwrap();
}

fn conv(batch: usize, cin: usize, hw: [usize; 2], cout: usize, kernel: [usize; 2]) -> Conv2dParams {
    Conv2dParams::new(batch, cin, hw, cout, kernel)
}

#[test]
fn conv2d_every_isa_matches_references_on_strides_paddings_dilations() {
    let mut seed = 1;
    for stride in [1, 2, 3] {
        for pad in [0, 1, 2] {
            for dil in [1, 2] {
                let p = conv(2, 3, [9, 11], 5, [3, 3])
                    .with_stride([stride, stride])
                    .with_padding([pad, pad])
                    .with_dilation([dil, dil]);
                run(p, seed);
                seed += 1;
            }
        }
    }
}

#[test]
fn conv2d_w2a8_every_isa_matches_scalar_on_grouped_strided() {
    // Two groups, anisotropic stride / padding / dilation, odd sizes.
    let p = conv(3, 6, [13, 7], 4, [3, 2])
        .with_groups(2)
        .with_stride([2, 1])
        .with_padding([1, 2])
        .with_dilation([1, 2]);
    run(p, 7);
    // Groups of one input and two output channels.
    run(
        conv(2, 4, [6, 6], 8, [3, 3])
            .with_groups(4)
            .with_padding([1, 1]),
        8,
    );
}

#[test]
fn conv2d_every_isa_matches_references_on_depthwise() {
    for (stride, pad) in [(1, 1), (2, 1), (1, 0)] {
        let p = conv(2, 16, [10, 9], 16, [3, 3])
            .with_groups(16)
            .with_stride([stride, stride])
            .with_padding([pad, pad]);
        run(p, 11 + stride as u64);
    }
}

#[test]
fn conv2d_every_isa_matches_references_on_pointwise() {
    // 1×1 stride 1 unpadded (the transposing gather), and 1×1 with stride or padding.
    run(conv(3, 20, [5, 7], 9, [1, 1]), 21);
    run(conv(1, 130, [4, 4], 3, [1, 1]), 22); // K crosses a 128-column block
    run(conv(2, 8, [7, 7], 5, [1, 1]).with_stride([2, 2]), 23);
    run(conv(2, 8, [5, 5], 5, [1, 1]).with_padding([1, 0]), 24);
}

#[test]
fn conv2d_every_isa_matches_references_when_kernel_covers_the_input() {
    // One output position per image: the convolution is a dense layer.
    run(conv(3, 4, [5, 6], 7, [5, 6]), 31);
    run(conv(2, 2, [3, 3], 3, [5, 5]).with_padding([1, 1]), 32);
    // A kernel wider than the image, padding making room for exactly one position.
    run(conv(1, 1, [1, 1], 2, [3, 3]).with_padding([1, 1]), 33);
}

#[test]
fn conv2d_every_isa_matches_references_when_k_crosses_128_column_blocks() {
    // K = 14·9 = 126, 15·9 = 135, 29·9 = 261, 43·3·2 = 258 (and 256 = 128·2 exactly).
    for (cin, kernel) in [
        (14, [3, 3]),
        (15, [3, 3]),
        (29, [3, 3]),
        (43, [3, 2]),
        (64, [2, 2]),
    ] {
        run(
            conv(2, cin, [6, 5], 6, kernel).with_padding([1, 1]),
            cin as u64,
        );
    }
}

#[test]
fn conv2d_every_isa_matches_references_on_wide_kernel_rows() {
    // Window rows of one and two 16-byte words (f32: ≤ 4, ≤ 8 taps; int8: ≤ 16, ≤ 32) and
    // beyond (element by element), inside the image and on its border.
    for (i, kw) in [3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33]
        .into_iter()
        .enumerate()
    {
        let p = conv(2, 3, [5, 40], 4, [2, kw]).with_padding([1, kw / 2]);
        run(p, 60 + i as u64);
        run(p.with_stride([1, 2]).with_padding([0, 1]), 80 + i as u64);
    }
}

#[test]
fn conv2d_every_isa_matches_references_on_threaded_blocks() {
    // Large enough to be split into rayon tasks whose position blocks cross output rows.
    run(conv(3, 16, [19, 17], 24, [3, 3]).with_padding([1, 1]), 41);
    run(
        conv(1, 32, [33, 31], 20, [3, 3])
            .with_padding([1, 1])
            .with_stride([2, 2]),
        42,
    );
    run(conv(5, 24, [12, 12], 48, [1, 1]), 43);
    // The direct path (K ≤ 32) threaded too: depthwise, a 1-channel and an RGB first layer.
    run(
        conv(2, 64, [17, 17], 64, [3, 3])
            .with_groups(64)
            .with_padding([1, 1]),
        44,
    );
    run(conv(4, 1, [28, 28], 32, [3, 3]).with_padding([1, 1]), 45);
    run(conv(3, 3, [32, 32], 16, [3, 3]).with_padding([1, 1]), 46);
}

#[test]
fn conv2d_f32_direct_path_is_bit_exact_on_every_isa() {
    // K ≤ 32 never reaches the raw kernels: every ISA sums in the reference's column order.
    for (i, p) in [
        conv(2, 1, [9, 7], 5, [3, 3]).with_padding([1, 1]),
        conv(2, 3, [8, 8], 4, [3, 3])
            .with_padding([1, 1])
            .with_stride([2, 2]),
        conv(1, 8, [6, 6], 8, [2, 2])
            .with_groups(8)
            .with_dilation([2, 2]),
    ]
    .into_iter()
    .enumerate()
    {
        assert!(p.k() <= 32);
        let c = case(p, 90 + i as u64);
        let n = p.output_len().unwrap();
        let mut expect = vec![0f32; n];
        conv2d_f32_reference(&c.x, &p, &c.w, Some(&c.bias), &mut expect).unwrap();
        for kernel in kernels() {
            let mut y = vec![f32::NAN; n];
            kernel
                .conv2d_f32(&c.x, &p, &c.w, Some(&c.bias), &mut y)
                .unwrap();
            assert_eq!(bits(&y), bits(&expect), "{:?} {p:?}", kernel.isa());
        }
    }
}

#[test]
fn conv2d_with_empty_batch_or_channels_returns_empty_or_bias_only_output() {
    for p in [conv(0, 3, [5, 5], 4, [3, 3]), conv(2, 3, [5, 5], 0, [3, 3])] {
        let c = case(p, 51);
        let q = QuantizedImages::quantize(&c.x, p.batch, 75).unwrap();
        for kernel in kernels() {
            assert_eq!(p.output_len().unwrap(), 0);
            kernel
                .conv2d_f32(&c.x, &p, &c.w, Some(&c.bias), &mut [])
                .unwrap();
            kernel
                .conv2d_w2a8(&q, &p, &c.w, Some(&c.bias), &mut [])
                .unwrap();
            kernel.conv2d_w2a8_i32(&q, &p, &c.w, &mut []).unwrap();
        }
    }
    // No input channels: K = 0, every output is its bias.
    // (The owning constructors refuse rows without columns; a borrowed view can hold them.)
    let p = conv(2, 0, [4, 4], 3, [3, 3]);
    let w = PackedI2Ref::new(&[], 3, 0, &[1.0]).unwrap();
    let q = QuantizedImages::quantize(&[], 2, 0).unwrap();
    let bias = [1.0, -2.0, 0.5];
    let expect: Vec<f32> = (0..2)
        .flat_map(|_| bias.iter().flat_map(|&b| [b; 4]))
        .collect();
    for kernel in kernels() {
        let mut y = vec![f32::NAN; 24];
        kernel.conv2d_f32(&[], &p, w, Some(&bias), &mut y).unwrap();
        assert_eq!(y, expect, "{:?}", kernel.isa());
        let mut y = vec![f32::NAN; 24];
        kernel.conv2d_w2a8(&q, &p, w, Some(&bias), &mut y).unwrap();
        assert_eq!(y, expect, "{:?}", kernel.isa());
    }
}

#[test]
fn conv2d_bad_params_are_typed_errors() {
    let ok = conv(1, 4, [5, 5], 2, [3, 3]);
    assert_eq!(ok.out_hw(), Ok((3, 3)));
    assert_eq!(ok.k(), 36);
    let cases = [
        (
            ok.with_stride([0, 1]),
            KernelError::ConvZero { what: "stride" },
        ),
        (
            ok.with_dilation([1, 0]),
            KernelError::ConvZero { what: "dilation" },
        ),
        (
            conv(1, 4, [5, 5], 2, [0, 3]),
            KernelError::ConvZero { what: "kernel" },
        ),
        (ok.with_groups(0), KernelError::ConvZero { what: "groups" }),
        (
            ok.with_groups(3),
            KernelError::ConvGroups {
                what: "in_channels",
                groups: 3,
                channels: 4,
            },
        ),
        (
            ok.with_groups(4),
            KernelError::ConvGroups {
                what: "out_channels",
                groups: 4,
                channels: 2,
            },
        ),
        (
            conv(1, 4, [2, 5], 2, [3, 3]),
            KernelError::ConvKernelTooLarge {
                axis: "height",
                extent: 3,
                padded: 2,
            },
        ),
        (
            ok.with_dilation([1, 3]),
            KernelError::ConvKernelTooLarge {
                axis: "width",
                extent: 7,
                padded: 5,
            },
        ),
    ];
    let w = PackedI2::from_ternary(&[0; 72], 2, 36, Scales::PerTensor(1.0)).unwrap();
    let x = vec![0.5f32; 100];
    let q = QuantizedImages::quantize(&x, 1, 100).unwrap();
    for (p, err) in cases {
        assert_eq!(p.out_hw(), Err(err.clone()), "{p:?}");
        assert_eq!(p.output_len(), Err(err.clone()), "{p:?}");
        for kernel in kernels() {
            let mut y = vec![0f32; 18];
            let mut yi = vec![0i32; 18];
            assert_eq!(
                kernel.conv2d_f32(&x, &p, &w, None, &mut y),
                Err(err.clone())
            );
            assert_eq!(
                kernel.conv2d_w2a8(&q, &p, &w, None, &mut y),
                Err(err.clone())
            );
            assert_eq!(
                kernel.conv2d_w2a8_i32(&q, &p, &w, &mut yi),
                Err(err.clone())
            );
        }
        assert_eq!(
            conv2d_f32_reference(&x, &p, &w, None, &mut [0f32; 18]),
            Err(err.clone())
        );
        assert_eq!(
            conv2d_w2a8_i32_reference(&q, &p, &w, &mut [0i32; 18]),
            Err(err)
        );
    }
}

#[test]
fn conv2d_operand_shape_errors_are_reported() {
    let p = conv(1, 4, [5, 5], 2, [3, 3]);
    let w = PackedI2::from_ternary(&[0; 72], 2, 36, Scales::PerTensor(1.0)).unwrap();
    let x = vec![0.5f32; 100];
    let q = QuantizedImages::quantize(&x, 1, 100).unwrap();
    let k = scalar();
    let mut y = vec![0f32; 18];
    assert!(matches!(
        k.conv2d_f32(&x[..99], &p, &w, None, &mut y),
        Err(KernelError::Length {
            what: "input images",
            expected: 100,
            actual: 99
        })
    ));
    assert!(matches!(
        k.conv2d_f32(&x, &p, &w, None, &mut y[..17]),
        Err(KernelError::Length { what: "output", .. })
    ));
    assert!(matches!(
        k.conv2d_w2a8(&q, &p, &w, Some(&[1.0]), &mut y),
        Err(KernelError::Length { what: "bias", .. })
    ));
    let w3 = PackedI2::from_ternary(&[0; 108], 3, 36, Scales::PerTensor(1.0)).unwrap();
    assert!(matches!(
        k.conv2d_f32(&x, &p, &w3, None, &mut y),
        Err(KernelError::Shape {
            left: 3,
            right: 2,
            ..
        })
    ));
    let w35 = PackedI2::from_ternary(&[0; 70], 2, 35, Scales::PerTensor(1.0)).unwrap();
    assert!(matches!(
        k.conv2d_f32(&x, &p, &w35, None, &mut y),
        Err(KernelError::Shape {
            left: 35,
            right: 36,
            ..
        })
    ));
    // Quantised as two images of 50 instead of one of 100.
    let q2 = QuantizedImages::quantize(&x, 2, 50).unwrap();
    assert!(matches!(
        k.conv2d_w2a8_i32(&q2, &p, &w, &mut [0; 18]),
        Err(KernelError::Shape {
            left: 2,
            right: 1,
            ..
        })
    ));
}

/// All weights +1, all activations ±127, K at the exact-accumulation bound and one past it.
#[test]
fn conv2d_w2a8_is_exact_at_max_k_and_rejects_one_more() {
    let k = MAX_K_W2A8;
    let p = conv(1, k, [1, 1], 1, [1, 1]);
    let w = PackedI2::from_ternary(&vec![1i8; k], 1, k, Scales::PerTensor(1.0)).unwrap();
    for sign in [127i8, -127] {
        let q = QuantizedImages::from_i8(&vec![sign; k], 1, k, vec![1.0]).unwrap();
        for kernel in kernels() {
            let mut out = [0i32];
            kernel.conv2d_w2a8_i32(&q, &p, &w, &mut out).unwrap();
            assert_eq!(
                i64::from(out[0]),
                i64::from(sign) * k as i64,
                "{:?}",
                kernel.isa()
            );
        }
    }
    let k = MAX_K_W2A8 + 1;
    let p = conv(1, k, [1, 1], 1, [1, 1]);
    let w = PackedI2::from_ternary(&vec![1i8; k], 1, k, Scales::PerTensor(1.0)).unwrap();
    let q = QuantizedImages::from_i8(&vec![127; k], 1, k, vec![1.0]).unwrap();
    for kernel in kernels() {
        assert_eq!(
            kernel.conv2d_w2a8_i32(&q, &p, &w, &mut [0]),
            Err(KernelError::KTooLarge { k, max: MAX_K_W2A8 })
        );
    }
}

#[test]
fn quantized_images_match_the_row_quantizer_bit_for_bit() {
    let mut rng = XorShift::new(5);
    let mut x = rng.f32s(3 * 257);
    x[257..514].fill(0.0); // an all-zero image has scale 0 and zeros
    x[600] = 40.0; // one outlier sets its image's step
    let q = QuantizedImages::quantize(&x, 3, 257).unwrap();
    for b in 0..3 {
        let row = QuantizedActivations::quantize(&x[b * 257..(b + 1) * 257], 1, 257).unwrap();
        assert_eq!(&q.data()[b * 257..(b + 1) * 257], &row.data()[..257]);
        assert_eq!(q.scales()[b].to_bits(), row.scales()[0].to_bits());
    }
    assert_eq!(q.scales()[1], 0.0);
    // Reusing the buffers for a larger, threaded batch gives the one-shot result.
    let big = rng.f32s(9 * 10_000);
    let mut r = q.clone();
    r.quantize_into(&big, 9, 10_000).unwrap();
    assert_eq!(r, QuantizedImages::quantize(&big, 9, 10_000).unwrap());
    for b in 0..9 {
        let row =
            QuantizedActivations::quantize(&big[b * 10_000..(b + 1) * 10_000], 1, 10_000).unwrap();
        assert_eq!(
            &r.data()[b * 10_000..(b + 1) * 10_000],
            &row.data()[..10_000]
        );
    }
}

#[test]
fn quantized_images_reject_non_finite_and_bad_lengths() {
    let mut x = vec![1.0f32; 12];
    x[7] = f32::NAN;
    assert!(matches!(
        QuantizedImages::quantize(&x, 2, 6),
        Err(KernelError::NonFinite {
            what: "activations",
            index: 7,
            ..
        })
    ));
    // The threaded path reports the first non-finite value too, and leaves no images.
    let mut big = vec![0.5f32; 3 * 40_000];
    big[40_000 + 17] = f32::INFINITY;
    big[2 * 40_000 + 3] = f32::NAN;
    let mut q = QuantizedImages::quantize(&big[..40_000], 1, 40_000).unwrap();
    assert!(matches!(
        q.quantize_into(&big, 3, 40_000),
        Err(KernelError::NonFinite { what: "activations", index: 40_017, value }) if value == f32::INFINITY
    ));
    assert_eq!((q.batch(), q.data().len(), q.scales().len()), (0, 0, 0));
    assert!(matches!(
        QuantizedImages::quantize(&[1.0; 11], 2, 6),
        Err(KernelError::Length {
            what: "activations",
            expected: 12,
            actual: 11
        })
    ));
    assert!(matches!(
        QuantizedImages::from_i8(&[0, -128], 1, 2, vec![1.0]),
        Err(KernelError::ActivationRange { index: 1, .. })
    ));
    assert!(matches!(
        QuantizedImages::from_i8(&[0, 1], 1, 2, vec![-1.0]),
        Err(KernelError::BadScale { index: 0, .. })
    ));
}

#[test]
fn pointwise_conv2d_w2a8_equals_the_gemm_over_pixels() {
    // A 1×1 convolution is the matrix product of the pixel-major input with the weights.
    let (batch, cin, hw, cout) = (2, 150, 12, 7);
    let mut rng = XorShift::new(9);
    let w = rng.packed(cout, cin);
    let qv: Vec<i8> = (0..batch * cin * hw)
        .map(|_| (rng.next_u64() % 255) as i8)
        .map(|v| v.max(-127))
        .collect();
    let q = QuantizedImages::from_i8(&qv, batch, cin * hw, vec![1.0; batch]).unwrap();
    let p = conv(batch, cin, [3, 4], cout, [1, 1]);
    for kernel in kernels() {
        let mut y = vec![0i32; batch * cout * hw];
        kernel.conv2d_w2a8_i32(&q, &p, &w, &mut y).unwrap();
        for b in 0..batch {
            let pixels: Vec<i8> = (0..hw)
                .flat_map(|px| (0..cin).map(move |c| (b, c, px)))
                .map(|(b, c, px)| qv[(b * cin + c) * hw + px])
                .collect();
            let a = QuantizedActivations::from_i8(&pixels, hw, cin, vec![1.0; hw]).unwrap();
            let mut g = vec![0i32; hw * cout];
            kernel.matmul_w2a8_i32(&a, &w, &mut g).unwrap();
            for o in 0..cout {
                for px in 0..hw {
                    assert_eq!(
                        y[(b * cout + o) * hw + px],
                        g[px * cout + o],
                        "{:?}",
                        kernel.isa()
                    );
                }
            }
        }
    }
}

fn arb_params() -> impl Strategy<Value = Conv2dParams> {
    (
        (0usize..3, 1usize..4, 1usize..6, 0usize..5),
        (1usize..12, 1usize..12, 1usize..5, 1usize..5),
        (
            1usize..4,
            1usize..4,
            0usize..3,
            0usize..3,
            1usize..3,
            1usize..3,
        ),
    )
        .prop_map(
            |((batch, groups, cg, ng), (h, w, kh, kw), (sh, sw, ph, pw, dh, dw))| Conv2dParams {
                batch,
                in_channels: cg * groups,
                height: h,
                width: w,
                out_channels: ng * groups,
                kernel: [kh, kw],
                stride: [sh, sw],
                padding: [ph, pw],
                dilation: [dh, dw],
                groups,
                relu: false,
                residual: false,
            },
        )
        .prop_filter("the kernel must fit the padded input", |p| {
            p.out_hw().is_ok()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn conv2d_every_isa_matches_references_on_random_shapes(p in arb_params(), seed in any::<u64>()) {
        check_every_isa(&case(p, seed))?;
    }
}

/// Group scales along K = [c, ky, kx]: several groups per output channel (ragged or not),
/// grouped and strided convolutions, one and many images.
#[test]
fn conv2d_with_group_scales_matches_references_on_every_isa() {
    let shapes = [
        conv(2, 16, [9, 9], 8, [3, 3]).with_padding([1, 1]), // K = 144
        conv(1, 64, [6, 7], 12, [3, 3]).with_stride([2, 1]), // K = 576
        conv(2, 32, [8, 8], 16, [3, 3])
            .with_groups(2)
            .with_dilation([2, 1]), // K = 144 per group
        conv(1, 130, [5, 5], 5, [1, 1]),                     // pointwise, K = 130
        conv(3, 8, [12, 12], 6, [5, 5]).with_padding([2, 2]), // K = 200
    ];
    for (i, p) in shapes.into_iter().enumerate() {
        for gs in GROUP_SIZES {
            let c = case_with(p, (i * 7 + gs) as u64, Some(gs));
            check_every_isa(&c).unwrap();
            // The raw group kernels are bit-exact, so exact-f32 convolutions are too.
            let n = p.output_len().unwrap();
            let mut expect = vec![0f32; n];
            scalar()
                .conv2d_f32(&c.x, &p, &c.w, Some(&c.bias), &mut expect)
                .unwrap();
            for kernel in kernels() {
                let mut y = vec![f32::NAN; n];
                kernel
                    .conv2d_f32(&c.x, &p, &c.w, Some(&c.bias), &mut y)
                    .unwrap();
                assert_eq!(bits(&y), bits(&expect), "{:?} f32 {p:?}", kernel.isa());
            }
        }
    }
}

/// Group scales with one group per row act per channel, bit for bit, on both paths (direct,
/// K ≤ 32, and GEMM); and a weight of zero columns with group scales gives the bias.
#[test]
fn conv2d_with_one_scale_group_per_row_equals_per_channel_scales() {
    for p in [
        conv(2, 3, [8, 8], 4, [3, 3]).with_padding([1, 1]), // K = 27, direct
        conv(1, 7, [6, 6], 5, [3, 3]),                      // K = 63, GEMM
    ] {
        for gs in GROUP_SIZES {
            let c = case_with(p, gs as u64, Some(gs));
            let rows = Scales::PerRow(c.w.scales().as_slice().to_vec());
            let per_row =
                PackedI2::from_ternary(&c.w.to_ternary(), p.out_channels, p.k(), rows).unwrap();
            let q =
                QuantizedImages::quantize(&c.x, p.batch, p.input_len().unwrap() / p.batch).unwrap();
            let n = p.output_len().unwrap();
            for kernel in kernels() {
                let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
                kernel
                    .conv2d_w2a8(&q, &p, &c.w, Some(&c.bias), &mut a)
                    .unwrap();
                kernel
                    .conv2d_w2a8(&q, &p, &per_row, Some(&c.bias), &mut b)
                    .unwrap();
                assert_eq!(bits(&a), bits(&b), "{:?} w2a8 {p:?}", kernel.isa());
                kernel.conv2d_f32(&c.x, &p, &c.w, None, &mut a).unwrap();
                kernel.conv2d_f32(&c.x, &p, &per_row, None, &mut b).unwrap();
                assert_eq!(bits(&a), bits(&b), "{:?} f32 {p:?}", kernel.isa());
            }
        }
    }
    let p = conv(2, 0, [3, 3], 3, [1, 1]);
    let w = PackedI2Ref::with_group_scales(&[], 3, 0, 64, &[]).unwrap();
    let q = QuantizedImages::from_i8(&[], 2, 0, vec![1.0, 1.0]).unwrap();
    let bias = [1.0, -0.0, 2.0];
    let expect: Vec<f32> = (0..2 * 3 * 9).map(|i| 0.0 + bias[i / 9 % 3]).collect();
    for kernel in kernels() {
        let mut y = vec![f32::NAN; 54];
        kernel.conv2d_f32(&[], &p, w, Some(&bias), &mut y).unwrap();
        assert_eq!(bits(&y), bits(&expect));
        let mut y = vec![f32::NAN; 54];
        kernel.conv2d_w2a8(&q, &p, w, Some(&bias), &mut y).unwrap();
        assert_eq!(bits(&y), bits(&expect));
        let mut y = vec![f32::NAN; 54];
        conv2d_f32_reference(&[], &p, w, Some(&bias), &mut y).unwrap();
        assert_eq!(bits(&y), bits(&expect));
    }
}

#[test]
fn fused_relu_and_residual_keep_nan_on_every_isa() {
    // Exact-f32 mode with a NaN pixel: every output whose window reads it with a non-zero tap
    // is NaN before and after the fused ReLU and residual (Burn's relu keeps NaN).
    let p = conv(1, 2, [5, 5], 3, [3, 3]).with_padding([1, 1]);
    let mut c = case(p, 12);
    c.x[7] = f32::NAN;
    let n = p.output_len().unwrap();
    let mut plain = vec![0f32; n];
    scalar()
        .conv2d_f32(&c.x, &p, &c.w, Some(&c.bias), &mut plain)
        .unwrap();
    assert!(
        plain.iter().any(|v| v.is_nan()),
        "the case must reach the NaN"
    );
    let residual: Vec<f32> = (0..n).map(|i| i as f32 * -0.25).collect();
    for kernel in kernels() {
        let mut got = residual.clone();
        let fused = p.with_relu(true).with_residual(true);
        kernel
            .conv2d_f32(&c.x, &fused, &c.w, Some(&c.bias), &mut got)
            .unwrap();
        for (i, (&g, &y)) in got.iter().zip(&plain).enumerate() {
            let v = y + residual[i];
            let want = if v.is_nan() || v > 0.0 { v } else { 0.0 };
            assert_eq!(g.to_bits(), want.to_bits(), "{:?} out[{i}]", kernel.isa());
        }
    }
}
