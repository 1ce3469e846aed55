//! The dense 16-bit products (`cpu::matmul_half`): every ISA's kernel bit-identical to the
//! scalar twin on random shapes (ragged K, zero-size dimensions, the threaded path), for f16
//! and bf16, with signed zeros, subnormals and non-finite values; the twin itself within the
//! rounding bound of an exact (f64) dot product; the 16-bit conversions over their whole domain.

use proptest::prelude::*;
use ternary_kernels::KernelError;
use ternary_kernels::cpu::{self, HalfKind, HalfMatrixRef, Isa};
use ternary_kernels::random::XorShift;

fn scalar() -> &'static cpu::Kernel {
    cpu::kernels()
        .iter()
        .find(|k| k.isa() == Isa::Scalar)
        .expect("the scalar reference is always available")
}

/// Bits, with every NaN the same (NaN payloads are unspecified).
fn canonical(v: &[f32]) -> Vec<u32> {
    v.iter()
        .map(|x| if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() })
        .collect()
}

/// Weights of `kind` from N(0, 1)-ish f32s, with a sprinkling of ±0, subnormals and (when
/// `special`) ±∞ and NaN.
fn weights(rng: &mut XorShift, len: usize, kind: HalfKind, special: bool) -> Vec<u16> {
    (0..len)
        .map(|_| {
            let r = rng.next_u64() % 64;
            let v = match r {
                0 => 0.0,
                1 => -0.0,
                2 => 1e-7,   // an f16 subnormal; a normal bf16
                3 => -3e-39, // a bf16 subnormal; zero in f16
                4 if special => f32::INFINITY,
                5 if special => f32::NAN,
                _ => rng.next_f32() * 4.0 - 2.0,
            };
            kind.from_f32(v)
        })
        .collect()
}

fn activations(rng: &mut XorShift, len: usize, special: bool) -> Vec<f32> {
    (0..len)
        .map(|_| match rng.next_u64() % 64 {
            0 => -0.0,
            1 => 1e-40,
            2 if special => f32::NEG_INFINITY,
            _ => rng.next_f32() * 2.0 - 1.0,
        })
        .collect()
}

fn kind_of(bf16: bool) -> HalfKind {
    if bf16 { HalfKind::Bf16 } else { HalfKind::F16 }
}

fn check_all_isas(m: usize, n: usize, k: usize, kind: HalfKind, special: bool, seed: u64) {
    let mut rng = XorShift::new(seed);
    let w = weights(&mut rng, n * k, kind, special);
    let x = activations(&mut rng, m * k, special);
    let wm = HalfMatrixRef::new(&w, n, k, kind).unwrap();
    // Different sentinels: an output no task wrote shows up as a mismatch, and (finite
    // inputs) as a NaN left in the reference.
    let mut want = vec![f32::NAN; m * n];
    scalar().matmul_half(&x, m, wm, &mut want).unwrap();
    if !special {
        assert!(want.iter().all(|v| !v.is_nan()), "every output written");
    }
    for kernel in cpu::kernels() {
        let mut got = vec![-12345.0f32; m * n];
        kernel.matmul_half(&x, m, wm, &mut got).unwrap();
        assert_eq!(
            canonical(&got),
            canonical(&want),
            "{:?} {kind:?} m={m} n={n} k={k}",
            kernel.isa()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_isa_equals_the_scalar_twin_bit_for_bit(
        m in 0usize..7,
        n in 0usize..19,
        k in prop_oneof![0usize..40, Just(16), Just(32), Just(64), 100usize..300],
        bf16: bool,
        special: bool,
        seed: u64,
    ) {
        check_all_isas(m, n, k, kind_of(bf16), special, seed);
    }
}

#[test]
fn threaded_products_equal_the_scalar_twin() {
    // Above the parallel threshold, several tasks and weight-row blocks, ragged everywhere.
    for (m, n, k) in [(1, 1000, 777), (5, 333, 1030), (9, 130, 2561)] {
        for kind in [HalfKind::F16, HalfKind::Bf16] {
            check_all_isas(m, n, k, kind, false, (m * n + k) as u64);
        }
    }
}

#[test]
fn the_twin_is_a_dot_product_within_its_rounding_bound() {
    let mut rng = XorShift::new(5);
    let (m, n, k) = (3, 17, 333);
    for kind in [HalfKind::F16, HalfKind::Bf16] {
        let w = weights(&mut rng, n * k, kind, false);
        let x = activations(&mut rng, m * k, false);
        let mut got = vec![0f32; m * n];
        scalar()
            .matmul_half(&x, m, HalfMatrixRef::new(&w, n, k, kind).unwrap(), &mut got)
            .unwrap();
        for i in 0..m {
            for j in 0..n {
                let (mut exact, mut mag) = (0f64, 0f64);
                for c in 0..k {
                    let p = f64::from(kind.to_f32(w[j * k + c])) * f64::from(x[i * k + c]);
                    exact += p;
                    mag += p.abs();
                }
                // k/16 + 4 roundings per lane and tree, each ≤ 2⁻²⁴ of the magnitude.
                let bound = mag * ((k / 16 + 5) as f64) * f64::from(f32::EPSILON);
                let g = f64::from(got[i * n + j]);
                assert!(
                    (g - exact).abs() <= bound + 1e-30,
                    "{kind:?} ({i}, {j}): {g} vs {exact} (bound {bound})"
                );
            }
        }
    }
}

#[test]
fn conversions_round_trip_over_the_whole_16_bit_domain() {
    for kind in [HalfKind::F16, HalfKind::Bf16] {
        for bits in 0..=u16::MAX {
            let v = kind.to_f32(bits);
            if v.is_nan() {
                assert!(
                    kind.to_f32(kind.from_f32(v)).is_nan(),
                    "{kind:?} {bits:#06x}"
                );
            } else {
                assert_eq!(kind.from_f32(v), bits, "{kind:?} {bits:#06x} = {v}");
            }
        }
    }
    // bf16 is the upper half of an f32; f16's largest finite value and smallest subnormal.
    assert_eq!(HalfKind::Bf16.to_f32(0x3f80), 1.0);
    assert_eq!(HalfKind::F16.to_f32(0x7bff), 65504.0);
    assert_eq!(HalfKind::F16.to_f32(0x0001), 2f32.powi(-24));
}

fn no_cols_ref() -> HalfMatrixRef<'static> {
    HalfMatrixRef::new(&[], 4, 0, HalfKind::F16).unwrap()
}

#[test]
fn wrong_lengths_are_typed_errors() {
    let w = vec![0u16; 12];
    assert!(matches!(
        HalfMatrixRef::new(&w, 5, 3, HalfKind::F16),
        Err(KernelError::Length {
            expected: 15,
            actual: 12,
            ..
        })
    ));
    assert!(matches!(
        HalfMatrixRef::new(&w, usize::MAX, 3, HalfKind::F16),
        Err(KernelError::ShapeOverflow { .. })
    ));
    let wm = HalfMatrixRef::new(&w, 4, 3, HalfKind::Bf16).unwrap();
    let mut out = vec![0f32; 8];
    assert!(matches!(
        cpu::matmul_half(&[0.0; 5], 2, wm, &mut out),
        Err(KernelError::Length {
            what: "activations",
            expected: 6,
            actual: 5
        })
    ));
    assert!(matches!(
        cpu::matmul_half(&[0.0; 6], 2, wm, &mut out[..7]),
        Err(KernelError::Length {
            what: "output",
            expected: 8,
            actual: 7
        })
    ));
    // Zero-size dimensions: nothing to do, no error.
    cpu::matmul_half(&[], 0, wm, &mut []).unwrap();
    let empty = HalfMatrixRef::new(&[], 0, 3, HalfKind::F16).unwrap();
    cpu::matmul_half(&[0.0; 6], 2, empty, &mut []).unwrap();
    // m · n overflowing with k = 0 (no activations to check it by): a typed error, no write.
    assert!(matches!(
        cpu::matmul_half(&[], 1 << 63, no_cols_ref(), &mut []),
        Err(KernelError::ShapeOverflow { .. })
    ));
    // k = 0: every output is an empty sum, +0.0.
    let no_cols = HalfMatrixRef::new(&[], 4, 0, HalfKind::F16).unwrap();
    let mut out = vec![f32::NAN; 8];
    cpu::matmul_half(&[], 2, no_cols, &mut out).unwrap();
    assert!(out.iter().all(|v| v.to_bits() == 0));
}
