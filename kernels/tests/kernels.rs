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

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// The first index where two outputs differ, with both values (short failure messages).
fn first_difference<T: PartialEq + Copy>(a: &[T], b: &[T]) -> Option<(usize, T, T)> {
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (&x, &y))| (i, x, y))
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
        let got = w2a8_i32(kernel, &x, &w);
        prop_assert_eq!(
            first_difference(&got, &reference),
            None,
            "{:?} w2a8 {}x{}x{}",
            kernel.isa(),
            m,
            n,
            k
        );
        // ... and the shared epilogue keeps the scaled outputs identical too.
        let mut f = vec![0f32; m * n];
        kernel.matmul_w2a8(&x, &w, None, &mut f).unwrap();
        prop_assert_eq!(first_difference(&bits(&f), &bits(&ref_f)), None);
        // Exact f32 sums each output in column order on every ISA: bit-identical too.
        let mut e = vec![0f32; m * n];
        kernel.matmul_f32(&xf, m, &w, None, &mut e).unwrap();
        prop_assert_eq!(
            first_difference(&bits(&e), &bits(&ref_exact)),
            None,
            "{:?} f32 {}x{}x{}",
            kernel.isa(),
            m,
            n,
            k
        );
    }
    Ok(())
}

/// Row counts: every small M, and around the panel kernels' row tiles (12, 8, 4, 2, 1 rows)
/// and their sums.
fn rows() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=9,
        prop::sample::select(vec![11, 12, 13, 16, 20, 23, 24, 25, 37])
    ]
}

/// Column counts: around one 16-lane group, the 32-column panel and the 64-column tile of
/// the few-row f32 kernel.
fn cols() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..40,
        prop::sample::select(vec![
            15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 95, 97, 129
        ])
    ]
}

/// K: anything up to 5 blocks, and around the block (128) and W2A8 panel chunk (512) edges.
fn depth() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..700,
        prop::sample::select(vec![
            127, 128, 129, 255, 256, 257, 511, 512, 513, 639, 1023, 1025
        ])
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn every_isa_matches_scalar_bit_exactly_on_random_shapes(
        m in rows(), n in cols(), k in depth(), seed in any::<u64>()
    ) {
        check_all_isas(m, n, k, seed)?;
    }
}

#[test]
fn every_isa_matches_scalar_on_block_edges() {
    for k in [
        1, 127, 128, 129, 255, 256, 257, 383, 384, 385, 511, 512, 513,
    ] {
        for (m, n) in [
            (1, 1),
            (1, 9),
            (2, 5),
            (4, 4),
            (5, 17),
            (7, 3),
            (8, 16),
            (12, 32),
            (13, 33),
            (4, 65),
        ] {
            check_all_isas(m, n, k, (k * 31 + m * 7 + n) as u64).unwrap();
        }
    }
}

#[test]
fn every_isa_matches_scalar_with_no_rows_or_columns() {
    for (m, n, k) in [(0, 0, 0), (3, 0, 0), (0, 5, 130), (0, 0, 200)] {
        check_all_isas(m, n, k, 5).unwrap();
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
        (200, 97, 640),
    ] {
        check_all_isas(m, n, k, (m * n + k) as u64).unwrap();
    }
}

/// The dense-matmul semantics of exact f32 (see `cpu::scalar`): an infinite or NaN
/// activation reaches every output of its row through zero weights too (`0 · ∞ = NaN`), and
/// every ISA agrees with the scalar twin — NaN where it has NaN, the same bits elsewhere.
#[test]
fn f32_non_finite_activations_follow_dense_semantics_on_every_isa() {
    let k = 300;
    // Row 0: weights +1, 0, −1 at column 7; the other columns alternate +1 / −1 / 0.
    let mut t = vec![0i8; 3 * k];
    for (r, row) in t.chunks_exact_mut(k).enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = ((c + r) % 3) as i8 - 1;
        }
        row[7] = 1 - r as i8;
    }
    let w = PackedI2::from_ternary(&t, 3, k, Scales::PerTensor(1.0)).unwrap();
    for m in [1, 2, 5, 9, 13] {
        let mut x: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.25 - 2.0).collect();
        x[7] = f32::INFINITY; // row 0
        if m > 1 {
            x[k + 7] = f32::NAN; // row 1
        }
        if m > 2 {
            x[2 * k + 7] = f32::NEG_INFINITY; // row 2 (and row 3 stays finite)
            x[2 * k + 8] = f32::INFINITY;
        }
        let mut expect = vec![0f32; m * 3];
        scalar().matmul_f32(&x, m, &w, None, &mut expect).unwrap();
        // Row 0: +∞ through +1, NaN through 0, −∞ through −1.
        assert_eq!(expect[0], f32::INFINITY);
        assert!(expect[1].is_nan());
        assert_eq!(expect[2], f32::NEG_INFINITY);
        if m > 1 {
            assert!(expect[3..6].iter().all(|v| v.is_nan()));
        }
        if m > 3 {
            assert!(expect[9..12].iter().all(|v| v.is_finite()));
        }
        for kernel in kernels() {
            let mut got = vec![0f32; m * 3];
            kernel.matmul_f32(&x, m, &w, None, &mut got).unwrap();
            for (i, (a, b)) in got.iter().zip(&expect).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{:?} m={m} output {i}: {a} vs {b}",
                    kernel.isa()
                );
            }
        }
    }
}

/// All weights +1, all activations ±127, K at the exact-accumulation bound and one past it.
#[test]
fn w2a8_accumulator_is_exact_at_max_k_and_rejects_one_more() {
    let k = MAX_K_W2A8;
    // 254 · K must fit in i32; one more weight would not.
    assert!(254 * k as i64 <= i32::MAX as i64 && 254 * (k as i64 + 1) > i32::MAX as i64);
    let w = PackedI2::from_ternary(&vec![1i8; k], 1, k, Scales::PerTensor(1.0)).unwrap();
    // One row takes the K-lane kernels, nine the column-panel GEMM (8 + 1 rows).
    for (m, sign) in [(1, 127i8), (1, -127), (9, 127), (9, -127)] {
        let x = QuantizedActivations::from_i8(&vec![sign; m * k], m, k, vec![1.0; m]).unwrap();
        for kernel in kernels() {
            let mut out = vec![0i32; m];
            kernel.matmul_w2a8_i32(&x, &w, &mut out).unwrap();
            for v in out {
                assert_eq!(v as i64, sign as i64 * k as i64, "{:?} m={m}", kernel.isa());
            }
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
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        assert!(isas.contains(&Isa::Avx2));
    }
}

/// Group-scaled weights (`n × k`, groups of `group_size` columns) with scales of every kind
/// (ordinary, zero of both signs, subnormal, large), int8 and f32 activations and a bias.
fn group_case(
    m: usize,
    n: usize,
    k: usize,
    group_size: usize,
    seed: u64,
) -> (PackedI2, QuantizedActivations, Vec<f32>, Vec<f32>) {
    let mut rng = ternary_kernels::random::XorShift::new(seed);
    let t = rng.ternary(n * k);
    let scales = (0..n * k.div_ceil(group_size))
        .map(|_| match rng.next_u64() % 16 {
            0 => 0.0,
            1 => -0.0,
            2 => f32::from_bits(1 + (rng.next_u64() % 1000) as u32),
            3 => 1e30,
            _ => rng.next_f32().abs() * 4.0,
        })
        .collect();
    let w = PackedI2::from_ternary(&t, n, k, Scales::PerGroup { group_size, scales }).unwrap();
    let q: Vec<i8> = (0..m * k)
        .map(|_| ((rng.next_u64() % 255) as i8).max(-127))
        .collect();
    let xs = (0..m).map(|_| rng.next_f32().abs() / 100.0).collect();
    let x = QuantizedActivations::from_i8(&q, m, k, xs).unwrap();
    // Wide dynamic range: a different summation order would round differently.
    let xf = (0..m * k)
        .map(|_| rng.next_f32() * 2f32.powi((rng.next_u64() % 30) as i32 - 15))
        .collect();
    let bias = (0..n).map(|_| rng.next_f32()).collect();
    (w, x, xf, bias)
}

/// The group-scale definition written out independently of the crate: exact integer sums
/// per group, `S · (xs · ws)` (W2A8) or the column-order f32 sum times `ws` (exact f32),
/// accumulated in group order starting from the first product, then `+ bias`.
fn group_oracle(
    w: &PackedI2,
    x: &QuantizedActivations,
    xf: &[f32],
    bias: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (m, n, k) = (x.m(), w.n(), w.k());
    let Scales::PerGroup { group_size, scales } = w.scales() else {
        panic!("group scales expected")
    };
    let groups = k.div_ceil(*group_size);
    let t = w.to_ternary();
    let (mut y8, mut yf) = (vec![0f32; m * n], vec![0f32; m * n]);
    for i in 0..m {
        let xq = &x.data()[i * x.k_padded()..][..k];
        for j in 0..n {
            let (mut a8, mut af) = (0f32, 0f32);
            for g in 0..groups {
                let cols = g * group_size..((g + 1) * group_size).min(k);
                let s: i64 = cols
                    .clone()
                    .map(|c| i64::from(t[j * k + c]) * i64::from(xq[c]))
                    .sum();
                let mut p = 0f32;
                for c in cols {
                    p += f32::from(t[j * k + c]) * xf[i * k + c];
                }
                let ws = scales[j * groups + g];
                let (t8, tf) = ((s as i32) as f32 * (x.scales()[i] * ws), p * ws);
                (a8, af) = if g == 0 { (t8, tf) } else { (a8 + t8, af + tf) };
            }
            y8[i * n + j] = a8 + bias[j];
            yf[i * n + j] = af + bias[j];
        }
    }
    (y8, yf)
}

/// NaN-aware bit equality (a large scale times a large sum may overflow to ±inf, and
/// `inf − inf` is NaN; NaN payloads are unspecified).
fn same_bits(a: &[f32], b: &[f32]) -> Option<(usize, f32, f32)> {
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()))
        .map(|(i, (&x, &y))| (i, x, y))
}

fn check_group_isas(
    m: usize,
    n: usize,
    k: usize,
    group_size: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let (w, x, xf, bias) = group_case(m, n, k, group_size, seed);
    let (oracle8, oraclef) = group_oracle(&w, &x, &xf, &bias);
    let mut ref8 = vec![0f32; m * n];
    scalar()
        .matmul_w2a8(&x, &w, Some(&bias), &mut ref8)
        .unwrap();
    let mut reff = vec![0f32; m * n];
    scalar()
        .matmul_f32(&xf, m, &w, Some(&bias), &mut reff)
        .unwrap();
    // The scalar twin is the definition ...
    prop_assert_eq!(
        same_bits(&ref8, &oracle8),
        None,
        "scalar w2a8 vs definition"
    );
    prop_assert_eq!(same_bits(&reff, &oraclef), None, "scalar f32 vs definition");
    let reference_i32 = w2a8_i32(scalar(), &x, &w);
    for kernel in kernels() {
        // ... every ISA equals it bit for bit, and integer sums ignore the scales.
        let mut y = vec![0f32; m * n];
        kernel.matmul_w2a8(&x, &w, Some(&bias), &mut y).unwrap();
        prop_assert_eq!(
            same_bits(&y, &ref8),
            None,
            "{:?} w2a8 {}x{}x{} groups of {}",
            kernel.isa(),
            m,
            n,
            k,
            group_size
        );
        let mut y = vec![0f32; m * n];
        kernel.matmul_f32(&xf, m, &w, Some(&bias), &mut y).unwrap();
        prop_assert_eq!(
            same_bits(&y, &reff),
            None,
            "{:?} f32 {}x{}x{} groups of {}",
            kernel.isa(),
            m,
            n,
            k,
            group_size
        );
        prop_assert_eq!(
            first_difference(&w2a8_i32(kernel, &x, &w), &reference_i32),
            None
        );
    }
    Ok(())
}

fn group_size() -> impl Strategy<Value = usize> {
    prop::sample::select(ternary_kernels::format::GROUP_SIZES.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn group_scaled_kernels_match_scalar_bit_exactly_on_every_isa(
        m in rows(), n in cols(), k in depth(), gs in group_size(), seed in any::<u64>()
    ) {
        check_group_isas(m, n, k, gs, seed)?;
    }
}

#[test]
fn group_scaled_kernels_match_scalar_on_group_and_block_edges() {
    for gs in ternary_kernels::format::GROUP_SIZES {
        for k in [
            1, 63, 64, 65, 127, 128, 129, 191, 192, 255, 256, 257, 383, 384, 511, 512, 513, 640,
            1000, 1025,
        ] {
            for (m, n) in [
                (1, 1),
                (1, 9),
                (1, 33),
                (2, 5),
                (3, 17),
                (5, 40),
                (8, 16),
                (13, 33),
            ] {
                check_group_isas(m, n, k, gs, (k * 31 + m * 7 + n + gs) as u64).unwrap();
            }
        }
    }
}

#[test]
fn group_scaled_kernels_match_scalar_on_threaded_tiles() {
    for (m, n, k, gs) in [
        (1, 1031, 2049, 64),
        (1, 700, 4096, 256),
        (3, 517, 1000, 128),
        (130, 259, 1100, 64),
        (67, 64, 4096, 256),
        (200, 97, 640, 128),
    ] {
        check_group_isas(m, n, k, gs, (m * n + k) as u64).unwrap();
    }
}

/// One group per row (K ≤ group size) is the per-row product, bit for bit.
#[test]
fn one_group_per_row_equals_per_row_scales() {
    for gs in ternary_kernels::format::GROUP_SIZES {
        for k in [1, 50, gs - 1, gs] {
            let (w, x, xf, bias) = group_case(5, 37, k, gs, k as u64);
            let rows = Scales::PerRow(w.scales().as_slice().to_vec());
            let per_row = PackedI2::from_ternary(&w.to_ternary(), 37, k, rows).unwrap();
            for kernel in kernels() {
                let (mut a, mut b) = (vec![0f32; 5 * 37], vec![0f32; 5 * 37]);
                kernel.matmul_w2a8(&x, &w, Some(&bias), &mut a).unwrap();
                kernel
                    .matmul_w2a8(&x, &per_row, Some(&bias), &mut b)
                    .unwrap();
                assert_eq!(bits(&a), bits(&b), "{:?} w2a8 k={k}", kernel.isa());
                kernel.matmul_f32(&xf, 5, &w, None, &mut a).unwrap();
                kernel.matmul_f32(&xf, 5, &per_row, None, &mut b).unwrap();
                assert_eq!(bits(&a), bits(&b), "{:?} f32 k={k}", kernel.isa());
            }
        }
    }
}

/// A borrowed view with group scales multiplies like the owned matrix; zero columns (no
/// groups) give the bias.
#[test]
fn group_scaled_views_and_empty_k() {
    let (w, x, xf, bias) = group_case(3, 20, 300, 128, 9);
    let view = ternary_kernels::PackedI2Ref::with_group_scales(
        w.data(),
        20,
        300,
        128,
        w.scales().as_slice(),
    )
    .unwrap();
    for kernel in kernels() {
        let (mut a, mut b) = (vec![0f32; 60], vec![0f32; 60]);
        kernel.matmul_w2a8(&x, &w, Some(&bias), &mut a).unwrap();
        kernel.matmul_w2a8(&x, view, Some(&bias), &mut b).unwrap();
        assert_eq!(bits(&a), bits(&b));
        kernel.matmul_f32(&xf, 3, &w, Some(&bias), &mut a).unwrap();
        kernel
            .matmul_f32(&xf, 3, view, Some(&bias), &mut b)
            .unwrap();
        assert_eq!(bits(&a), bits(&b));
    }
    let empty = ternary_kernels::PackedI2Ref::with_group_scales(&[], 4, 0, 64, &[]).unwrap();
    let x0 = QuantizedActivations::from_i8(&[], 2, 0, vec![1.0, 1.0]).unwrap();
    let b = [1.0, -0.0, 0.0, -2.5];
    for kernel in kernels() {
        let mut y = [f32::NAN; 8];
        kernel.matmul_w2a8(&x0, empty, Some(&b), &mut y).unwrap();
        assert_eq!(bits(&y), bits(&[1.0, 0.0, 0.0, -2.5, 1.0, 0.0, 0.0, -2.5]));
        let mut y = [f32::NAN; 8];
        kernel.matmul_f32(&[], 2, empty, None, &mut y).unwrap();
        assert_eq!(y, [0.0; 8]);
    }
}

/// All weights +1 and activations ±127 over whole groups: a group of 256 sums to
/// ±127 · 256 = ±32 512, the most a group can hold, exactly — with codes of 2, AVX2's i16
/// lanes sit exactly at their bound (`I16_GROUP_BOUND` = 64 steps × 2 × 2 × 127).
#[test]
fn w2a8_group_sums_are_exact_for_full_groups_of_extreme_values() {
    for gs in ternary_kernels::format::GROUP_SIZES {
        let (n, k) = (40, 4 * gs + 3);
        let groups = k.div_ceil(gs);
        let scales: Vec<f32> = (0..n * groups).map(|i| 1.0 + (i % 7) as f32).collect();
        let w = PackedI2::from_ternary(
            &vec![1i8; n * k],
            n,
            k,
            Scales::PerGroup {
                group_size: gs,
                scales: scales.clone(),
            },
        )
        .unwrap();
        for m in [1, 2, 9, 13] {
            for sign in [127i8, -127] {
                let x =
                    QuantizedActivations::from_i8(&vec![sign; m * k], m, k, vec![0.5; m]).unwrap();
                let mut expect = vec![0f32; m * n];
                for (i, y) in expect.iter_mut().enumerate() {
                    let j = i % n;
                    let mut acc = 0f32;
                    for g in 0..groups {
                        let cols = (((g + 1) * gs).min(k) - g * gs) as i32;
                        let t = (i32::from(sign) * cols) as f32 * (0.5 * scales[j * groups + g]);
                        acc = if g == 0 { t } else { acc + t };
                    }
                    *y = acc + 0.0;
                }
                for kernel in kernels() {
                    let mut y = vec![0f32; m * n];
                    kernel.matmul_w2a8(&x, &w, None, &mut y).unwrap();
                    assert_eq!(bits(&y), bits(&expect), "{:?} gs={gs} m={m}", kernel.isa());
                }
            }
        }
    }
}
