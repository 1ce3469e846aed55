//! Every kernel the host supports against the scalar reference.

use proptest::prelude::*;
use ternary_kernels::cpu::{Isa, Kernel, kernels};
use ternary_kernels::{KernelError, MAX_K_W2A8, PackedI2, QuantizedActivations, Scales};

fn scalar() -> &'static Kernel {
    &kernels()[0]
}

fn random_case(
    m: usize,
    n: usize,
    k: usize,
    seed: u64,
) -> (PackedI2, QuantizedActivations, Vec<f32>) {
    // xorshift: deterministic per seed, no extra dependency.
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let t: Vec<i8> = (0..n * k).map(|_| (next() % 3) as i8 - 1).collect();
    let scales = Scales::PerRow((0..n).map(|_| (next() % 1000) as f32 / 250.0).collect());
    let w = PackedI2::from_ternary(&t, n, k, scales).unwrap();
    let q: Vec<i8> = (0..m * k)
        .map(|_| (next() % 255) as i8)
        .map(|v| v.max(-127))
        .collect();
    let xs = (0..m).map(|_| (next() % 100) as f32 / 997.0).collect();
    let x = QuantizedActivations::from_i8(&q, m, k, xs).unwrap();
    let xf = (0..m * k)
        .map(|_| (next() % 20001) as f32 / 1000.0 - 10.0)
        .collect();
    (w, x, xf)
}

fn w2a8_i32(kernel: &Kernel, x: &QuantizedActivations, w: &PackedI2) -> Vec<i32> {
    let mut out = vec![0; x.m() * w.n()];
    kernel.matmul_w2a8_i32(x, w, &mut out).unwrap();
    out
}

fn check_all_isas(m: usize, n: usize, k: usize, seed: u64) -> Result<(), TestCaseError> {
    let (w, x, xf) = random_case(m, n, k, seed);
    let reference = w2a8_i32(scalar(), &x, &w);
    let mut ref_f = vec![0f32; m * n];
    scalar().matmul_w2a8(&x, &w, None, &mut ref_f).unwrap();
    let mut ref_exact = vec![0f32; m * n];
    scalar()
        .matmul_f32(&xf, m, &w, None, &mut ref_exact)
        .unwrap();
    for kernel in kernels() {
        // Integer sums must be identical before any scale is applied ...
        prop_assert_eq!(
            &w2a8_i32(kernel, &x, &w),
            &reference,
            "{:?} {}x{}x{}",
            kernel.isa(),
            m,
            n,
            k
        );
        // ... and the shared epilogue keeps the scaled outputs identical too.
        let mut f = vec![0f32; m * n];
        kernel.matmul_w2a8(&x, &w, None, &mut f).unwrap();
        prop_assert_eq!(
            f.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            ref_f.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // Exact-f32 mode differs only in summation order: bound by Σ|x| · scale · ε · K.
        let mut e = vec![0f32; m * n];
        kernel.matmul_f32(&xf, m, &w, None, &mut e).unwrap();
        for i in 0..m {
            let l1: f32 = xf[i * k..(i + 1) * k].iter().map(|v| v.abs()).sum();
            for j in 0..n {
                let tol = l1 * w.scales().get(j) * f32::EPSILON * (k as f32).sqrt().max(4.0);
                let (a, b) = (e[i * n + j], ref_exact[i * n + j]);
                prop_assert!(
                    (a - b).abs() <= tol,
                    "{:?} f32 ({i},{j}): {a} vs {b}",
                    kernel.isa()
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn every_isa_matches_scalar_bit_exactly_on_random_shapes(
        m in 0usize..10, n in 0usize..40, k in 0usize..700, seed in any::<u64>()
    ) {
        check_all_isas(m, n, k, seed)?;
    }
}

#[test]
fn every_isa_matches_scalar_on_block_edges() {
    for k in [0, 1, 127, 128, 129, 255, 256, 257, 383, 384, 385] {
        for (m, n) in [(1, 1), (1, 9), (2, 5), (4, 4), (5, 17), (7, 3)] {
            check_all_isas(m, n, k, (k * 31 + m * 7 + n) as u64).unwrap();
        }
    }
}

#[test]
fn every_isa_matches_scalar_on_threaded_tiles() {
    // Large enough to be split into rayon tiles along M and N, with ragged tile edges.
    for (m, n, k) in [
        (1, 1031, 2049),
        (3, 517, 1000),
        (130, 259, 1100),
        (67, 64, 4096),
    ] {
        check_all_isas(m, n, k, (m * n + k) as u64).unwrap();
    }
}

/// All weights +1, all activations ±127, K at the exact-accumulation bound and one past it.
#[test]
fn w2a8_accumulator_is_exact_at_max_k_and_rejects_one_more() {
    let k = MAX_K_W2A8;
    // 254 · K must fit in i32; one more weight would not.
    assert!(254 * k as i64 <= i32::MAX as i64 && 254 * (k as i64 + 1) > i32::MAX as i64);
    let w = PackedI2::from_ternary(&vec![1i8; k], 1, k, Scales::PerTensor(1.0)).unwrap();
    for sign in [127i8, -127] {
        let x = QuantizedActivations::from_i8(&vec![sign; k], 1, k, vec![1.0]).unwrap();
        for kernel in kernels() {
            let mut out = [0i32];
            kernel.matmul_w2a8_i32(&x, &w, &mut out).unwrap();
            assert_eq!(out[0] as i64, sign as i64 * k as i64, "{:?}", kernel.isa());
        }
    }
    let k = MAX_K_W2A8 + 1;
    let w = PackedI2::from_ternary(&vec![1i8; k], 1, k, Scales::PerTensor(1.0)).unwrap();
    let x = QuantizedActivations::from_i8(&vec![127; k], 1, k, vec![1.0]).unwrap();
    for kernel in kernels() {
        let mut out = [0i32];
        assert_eq!(
            kernel.matmul_w2a8_i32(&x, &w, &mut out),
            Err(KernelError::KTooLarge { k, max: MAX_K_W2A8 })
        );
    }
}

#[test]
fn all_zero_rows_multiply_to_zero() {
    let w = PackedI2::from_ternary(&[0i8; 3 * 300], 3, 300, Scales::PerTensor(0.0)).unwrap();
    let x: Vec<f32> = (0..600).map(|i| i as f32 - 250.0).collect();
    let q = QuantizedActivations::quantize(&x, 2, 300).unwrap();
    for kernel in kernels() {
        let mut y = [1f32; 6];
        kernel.matmul_w2a8(&q, &w, None, &mut y).unwrap();
        assert_eq!(y, [0.0; 6]);
        let mut y = [1f32; 6];
        kernel.matmul_f32(&x, 2, &w, None, &mut y).unwrap();
        assert_eq!(y, [0.0; 6]);
    }
}

#[test]
fn shape_errors_are_reported() {
    let w = PackedI2::from_ternary(&[1i8; 8], 2, 4, Scales::PerTensor(1.0)).unwrap();
    let x = QuantizedActivations::quantize(&[1.0; 5], 1, 5).unwrap();
    let k = &kernels()[0];
    let mut y = [0f32; 2];
    assert!(matches!(
        k.matmul_w2a8(&x, &w, None, &mut y),
        Err(KernelError::Shape { .. })
    ));
    let x = QuantizedActivations::quantize(&[1.0; 4], 1, 4).unwrap();
    let mut y3 = [0f32; 3];
    assert!(matches!(
        k.matmul_w2a8(&x, &w, None, &mut y3),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        k.matmul_w2a8(&x, &w, Some(&[1.0]), &mut y),
        Err(KernelError::Length { what: "bias", .. })
    ));
    assert!(matches!(
        k.matmul_f32(&[1.0; 3], 1, &w, None, &mut y),
        Err(KernelError::Length { .. })
    ));
}

#[test]
fn bias_and_scales_apply_in_both_modes() {
    let w =
        PackedI2::from_ternary(&[1, -1, 0, 1, 1, 1], 2, 3, Scales::PerRow(vec![0.5, 2.0])).unwrap();
    let x = [1.0f32, 2.0, 4.0];
    let mut y = [0f32; 2];
    ternary_kernels::cpu::matmul_f32(&x, 1, &w, Some(&[10.0, 20.0]), &mut y).unwrap();
    assert_eq!(
        y,
        [(1.0 - 2.0) * 0.5 + 10.0, (1.0 + 2.0 + 4.0) * 2.0 + 20.0]
    );
    let q = QuantizedActivations::quantize(&x, 1, 3).unwrap();
    ternary_kernels::cpu::matmul_w2a8(&q, &w, Some(&[10.0, 20.0]), &mut y).unwrap();
    // x quantises exactly here (4 → 127, 2 → 63.5 → 64, 1 → 31.75 → 32): ±1 LSB of 4/127.
    let lsb = 4.0 / 127.0;
    assert!((y[0] - 9.5).abs() <= 0.5 * 2.0 * lsb && (y[1] - 34.0).abs() <= 2.0 * 3.0 * lsb);
}

#[test]
fn host_reports_its_kernels() {
    let isas: Vec<Isa> = kernels().iter().map(|k| k.isa()).collect();
    assert_eq!(isas[0], Isa::Scalar);
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        assert!(isas.contains(&Isa::Avx2));
    }
}
