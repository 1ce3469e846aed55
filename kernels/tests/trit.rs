//! Packed trits: every op against a plain `i8` reference, every ISA bit-exact against the
//! scalar twin, the formulas over all nine operand pairs at every lane position, and round
//! trips through both packings over their whole domains.

use proptest::prelude::*;
use ternary_kernels::random::XorShift;
use ternary_kernels::trit::{
    BinaryOp, COUNT_LUT_ROUNDS, DOT_LUT_ROUNDS, Isa, Kernel, PAR_MIN_TRITS, PackedTrits,
    PackedTrits5, TritCounts, UnaryOp, kernels,
};
use ternary_kernels::{KernelError, Method};

fn scalar() -> &'static Kernel {
    let k = &kernels()[0];
    assert_eq!(k.isa(), Isa::Scalar);
    k
}

fn pack(v: &[i8]) -> PackedTrits {
    PackedTrits::from_i8(v).unwrap()
}

/// Lengths around every boundary: bytes, u64 words, AVX2 and AVX-512 registers, the rayon
/// threshold.
const LENGTHS: &[usize] = &[
    0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513,
    1000, 4097,
];

fn big_lengths() -> [usize; 2] {
    [PAR_MIN_TRITS + 13, 3 * PAR_MIN_TRITS + 257]
}

fn counts_ref(v: &[i8]) -> TritCounts {
    let c = |t| v.iter().filter(|&&x| x == t).count() as u64;
    TritCounts {
        neg: c(-1),
        zero: c(0),
        pos: c(1),
    }
}

fn dot_ref(a: &[i8], b: &[i8]) -> i64 {
    a.iter().zip(b).map(|(&x, &y)| i64::from(x * y)).sum()
}

/// Every op of every kernel on `a`, `b` against the i8 reference and the scalar twin.
fn check_all(a: &[i8], b: &[i8], c: &[i8]) -> Result<(), TestCaseError> {
    let (pa, pb, pc) = (pack(a), pack(b), pack(c));
    for k in kernels() {
        let isa = k.isa();
        for op in BinaryOp::ALL {
            let want: Vec<i8> = a.iter().zip(b).map(|(&x, &y)| op.apply(x, y)).collect();
            let got = k.binary(op, &pa, &pb).unwrap();
            prop_assert_eq!(
                got.to_i8(),
                want.clone(),
                "{:?} {:?} len {}",
                isa,
                op,
                a.len()
            );
            // Bytewise, padding included: the defined padding makes buffers comparable.
            prop_assert_eq!(&got, &pack(&want), "{:?} {:?} bytes", isa, op);
            prop_assert_eq!(&got, &scalar().binary(op, &pa, &pb).unwrap());
            if op.is_comparison() {
                let mask = k.compare_mask(op, &pa, &pb).unwrap();
                prop_assert_eq!(mask.len(), a.len().div_ceil(64));
                for (i, &w) in want.iter().enumerate() {
                    prop_assert_eq!((mask[i / 64] >> (i % 64)) & 1, w as u64);
                }
                let used = a.len() % 64;
                if used != 0 {
                    prop_assert_eq!(mask.last().unwrap() >> used, 0, "mask bits past len");
                }
            }
        }
        for op in UnaryOp::ALL {
            let want: Vec<i8> = a.iter().map(|&x| op.apply(x)).collect();
            let got = k.unary(op, &pa);
            prop_assert_eq!(&got, &pack(&want), "{:?} {:?}", isa, op);
        }
        let want: Vec<i8> = (0..a.len())
            .map(|i| if c[i] != 0 { a[i] } else { b[i] })
            .collect();
        prop_assert_eq!(
            &k.select(&pc, &pa, &pb).unwrap(),
            &pack(&want),
            "{:?} select",
            isa
        );
        prop_assert_eq!(k.count(&pa), counts_ref(a), "{:?} count", isa);
        prop_assert_eq!(k.sum(&pa), a.iter().map(|&x| i64::from(x)).sum::<i64>());
        prop_assert_eq!(k.dot(&pa, &pb).unwrap(), dot_ref(a, b), "{:?} dot", isa);
    }
    Ok(())
}

fn random3(len: usize, seed: u64) -> (Vec<i8>, Vec<i8>, Vec<i8>) {
    let mut r = XorShift::new(seed);
    (r.ternary(len), r.ternary(len), r.ternary(len))
}

#[test]
fn every_op_of_every_isa_matches_the_i8_reference_at_boundary_lengths() {
    for (i, &len) in LENGTHS.iter().chain(&big_lengths()).enumerate() {
        let (a, b, c) = random3(len, i as u64);
        check_all(&a, &b, &c).unwrap();
    }
}

/// Lane position `i` of a 2304-trit buffer sees pair `(i + s) % 9` under shift `s`: over the
/// nine shifts every position of every register width (≤ 256 lanes) meets all nine pairs.
#[test]
fn formulas_hold_for_all_nine_pairs_at_every_lane_position_on_every_isa() {
    let pairs: Vec<(i8, i8)> = (-1..=1)
        .flat_map(|x| (-1..=1).map(move |y| (x, y)))
        .collect();
    let len = 9 * 256;
    for s in 0..9 {
        let a: Vec<i8> = (0..len).map(|i| pairs[(i + s) % 9].0).collect();
        let b: Vec<i8> = (0..len).map(|i| pairs[(i + s) % 9].1).collect();
        let c: Vec<i8> = (0..len).map(|i| pairs[(i + 2 * s) % 9].0).collect();
        check_all(&a, &b, &c).unwrap();
    }
}

#[test]
fn lut_counters_hold_at_their_bound_with_every_trit_positive() {
    // All +1 maximises every per-byte counter of the nibble-table kernels; lengths sit at
    // the round bound (in 64-byte registers), one register past it and one trit past that.
    for rounds in [COUNT_LUT_ROUNDS, DOT_LUT_ROUNDS] {
        for len in [
            rounds * 256,
            (rounds + 1) * 256,
            (rounds + 1) * 256 + 1,
            2 * rounds * 256,
        ] {
            let ones = vec![1i8; len];
            let neg = vec![-1i8; len];
            let p = pack(&ones);
            let n = pack(&neg);
            for k in kernels() {
                assert_eq!(k.count(&p).pos, len as u64, "{:?} {len}", k.isa());
                assert_eq!(k.dot(&p, &p).unwrap(), len as i64, "{:?} {len}", k.isa());
                assert_eq!(k.dot(&n, &n).unwrap(), len as i64, "{:?} {len}", k.isa());
                assert_eq!(k.dot(&p, &n).unwrap(), -(len as i64), "{:?} {len}", k.isa());
                assert_eq!(k.count(&n).neg, len as u64, "{:?} {len}", k.isa());
                assert_eq!(k.count(&PackedTrits::zeros(len)).zero, len as u64);
            }
        }
    }
}

fn trits(max: usize) -> impl Strategy<Value = Vec<i8>> {
    prop::collection::vec(-1i8..=1, 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn every_isa_matches_the_reference_on_random_lengths(len in 0usize..1500, seed in any::<u64>()) {
        let (a, b, c) = random3(len, seed);
        check_all(&a, &b, &c)?;
    }

    #[test]
    fn slices_at_any_offset_equal_packing_the_sub_slice(
        v in trits(700), s in 0usize..700, e in 0usize..700, seed in any::<u64>()
    ) {
        let (s, e) = (s.min(v.len()), e.min(v.len()));
        let (s, e) = (s.min(e), s.max(e));
        let p = pack(&v);
        let sub = p.slice(s..e);
        prop_assert_eq!(&sub, &pack(&v[s..e]));
        // Ops on a realigned view match the reference on the sub-slice.
        let (b, c, _) = random3(e - s, seed);
        check_all(&v[s..e], &b, &c)?;
        prop_assert_eq!(sub.dot(&pack(&b)).unwrap(), dot_ref(&v[s..e], &b));
    }

    #[test]
    fn row_reductions_match_the_reference(
        rows in 0usize..9, cols in prop_oneof![0usize..40, 250usize..300], seed in any::<u64>()
    ) {
        let mut r = XorShift::new(seed);
        let (a, b) = (r.ternary(rows * cols), r.ternary(rows * cols));
        let (pa, pb) = (pack(&a), pack(&b));
        for k in kernels() {
            let counts = k.count_rows(&pa, rows, cols).unwrap();
            let sums = k.sum_rows(&pa, rows, cols).unwrap();
            let dots = k.dot_rows(&pa, &pb, rows, cols).unwrap();
            prop_assert_eq!(counts.len(), rows);
            for row in 0..rows {
                let (ra, rb) = (&a[row * cols..(row + 1) * cols], &b[row * cols..(row + 1) * cols]);
                prop_assert_eq!(counts[row], counts_ref(ra));
                prop_assert_eq!(sums[row], ra.iter().map(|&x| i64::from(x)).sum::<i64>());
                prop_assert_eq!(dots[row], dot_ref(ra, rb));
            }
            if cols == 0 && rows > 0 {
                prop_assert_eq!(k.min_rows(&pa, rows, cols), Err(KernelError::EmptyReduction { what: "min", rows }));
            } else {
                let mins = k.min_rows(&pa, rows, cols).unwrap();
                let maxs = k.max_rows(&pa, rows, cols).unwrap();
                for row in 0..rows {
                    let ra = &a[row * cols..(row + 1) * cols];
                    prop_assert_eq!(mins[row], *ra.iter().min().unwrap());
                    prop_assert_eq!(maxs[row], *ra.iter().max().unwrap());
                }
            }
        }
    }

    #[test]
    fn packings_round_trip_on_random_sequences(v in trits(300)) {
        let p = pack(&v);
        let p5 = PackedTrits5::from_packed(&p);
        prop_assert_eq!(p5.as_bytes().len(), v.len().div_ceil(5));
        prop_assert_eq!(p5.to_i8(), v.clone());
        prop_assert_eq!(&p5, &PackedTrits5::from_i8(&v).unwrap());
        prop_assert_eq!(&p5.to_packed(), &p);
        prop_assert_eq!(&PackedTrits5::from_bytes(v.len(), p5.as_bytes().to_vec()).unwrap(), &p5);
        prop_assert_eq!(&PackedTrits::from_bytes(v.len(), p.as_bytes().to_vec()).unwrap(), &p);
        prop_assert_eq!(p.to_i8(), v);
    }

    #[test]
    fn float_conversions_match_their_definitions(
        x in prop::collection::vec(-3f32..3.0, 0..300), t in 0f32..2.0, scale in 0f32..4.0
    ) {
        let p = PackedTrits::from_f32_threshold(&x, t).unwrap();
        let want: Vec<i8> = x.iter().map(|&v| if v.abs() > t { v.signum() as i8 } else { 0 }).collect();
        prop_assert_eq!(p.to_i8(), want.clone());
        let f = p.to_f32(scale);
        prop_assert_eq!(f, want.iter().map(|&t| f32::from(t) * scale).collect::<Vec<_>>());
        for method in [Method::AbsMean, Method::Twn] {
            let (q, s) = PackedTrits::quantize(&x, method).unwrap();
            if x.is_empty() {
                prop_assert_eq!((q.len(), s), (0, 0.0));
                continue;
            }
            let w = ternary_kernels::quant::quantize(&x, 1, x.len(), method, ternary_kernels::Granularity::PerTensor).unwrap();
            prop_assert_eq!(q.to_i8(), w.values);
            prop_assert_eq!(s.to_bits(), w.scales.get(0).to_bits());
        }
    }
}

#[test]
fn absmean_follows_bitnet_round_clip() {
    // mean|x| = 1: x / γ rounds half away from zero, clipped to ±1.
    let x = [2.0f32, -0.49, 0.5, -1.01, 0.0, 0.0];
    let sum: f32 = x.iter().map(|v| v.abs()).sum();
    let (q, s) = PackedTrits::quantize(&x, Method::AbsMean).unwrap();
    assert_eq!(s, sum / x.len() as f32);
    let want: Vec<i8> = x
        .iter()
        .map(|v| (v / s).clamp(-1.0, 1.0).round() as i8)
        .collect();
    assert_eq!(q.to_i8(), want);
}

#[test]
fn every_five_trit_storage_byte_round_trips() {
    for b in 0..=242u8 {
        let p5 = PackedTrits5::from_bytes(5, vec![b]).unwrap();
        let p = p5.to_packed();
        let mut r = b;
        let want: Vec<i8> = (0..5)
            .map(|_| {
                let d = r % 3;
                r /= 3;
                d as i8 - 1
            })
            .collect();
        assert_eq!(p.to_i8(), want, "byte {b}");
        assert_eq!(PackedTrits5::from_packed(&p).as_bytes(), [b]);
        assert_eq!(p5.to_i8(), want);
    }
    for b in 243..=255u8 {
        assert_eq!(
            PackedTrits5::from_bytes(5, vec![b]),
            Err(KernelError::BadCode { offset: 0, code: b })
        );
    }
    // Twenty trits (one conversion step) of every digit at every position.
    for s in 0..3 {
        let v: Vec<i8> = (0..60).map(|i| ((i + s) % 3) as i8 - 1).collect();
        assert_eq!(PackedTrits5::from_i8(&v).unwrap().to_packed().to_i8(), v);
    }
}

#[test]
fn every_four_trit_code_byte_round_trips() {
    let valid: Vec<u8> = (0..=255u8).filter(|b| b & (b >> 1) & 0x55 == 0).collect();
    assert_eq!(valid.len(), 81);
    for &b in &valid {
        let p = PackedTrits::from_bytes(4, vec![b]).unwrap();
        let want: Vec<i8> = (0..4).map(|l| ((b >> (2 * l)) & 3) as i8 - 1).collect();
        assert_eq!(p.to_i8(), want);
        let p5 = PackedTrits5::from_packed(&p);
        assert_eq!(p5.to_i8(), want);
        assert_eq!(p5.to_packed().as_bytes(), [b]);
        assert_eq!(pack(&want).as_bytes(), [b]);
        for (i, &t) in want.iter().enumerate() {
            assert_eq!(p.get(i), t);
        }
    }
    for b in (0..=255u8).filter(|b| b & (b >> 1) & 0x55 != 0) {
        assert_eq!(
            PackedTrits::from_bytes(4, vec![b]),
            Err(KernelError::BadCode { offset: 0, code: 3 })
        );
    }
}

#[test]
fn padding_is_the_zero_code_and_is_validated() {
    assert_eq!(pack(&[1, -1, 0]).as_bytes(), [0b01_01_00_10]);
    assert_eq!(PackedTrits::zeros(6).as_bytes(), [0x55, 0x55]);
    assert_eq!(
        PackedTrits::from_bytes(3, vec![0b10_01_00_10]),
        Err(KernelError::TritPadding { index: 3, code: 2 })
    );
    assert!(matches!(
        PackedTrits::from_bytes(3, vec![0x55, 0x55]),
        Err(KernelError::Length {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    // Digit 1 pads the storage form: trits 0..3 of byte 1+3+9 = -1,-1,-1 then 0, 0.
    assert_eq!(
        PackedTrits5::from_i8(&[-1, -1, -1]).unwrap().as_bytes(),
        [27 + 81]
    );
    assert_eq!(
        PackedTrits5::from_bytes(3, vec![0]),
        Err(KernelError::TritPadding { index: 3, code: 0 })
    );
    // A comparison makes 0 == 0 true; the padding lanes must still read as zero codes.
    let a = pack(&[0, 0, 0, 0, 0]);
    for k in kernels() {
        assert_eq!(
            k.binary(BinaryOp::Eq, &a, &a).unwrap().as_bytes(),
            [0xAA, 0x56]
        );
    }
}

#[test]
fn errors_name_the_offending_values() {
    assert_eq!(
        PackedTrits::from_i8(&[0, 1, 2, -5]),
        Err(KernelError::NotTernary { index: 2, value: 2 })
    );
    assert_eq!(
        PackedTrits5::from_i8(&[-2]),
        Err(KernelError::NotTernary {
            index: 0,
            value: -2
        })
    );
    let mut p = pack(&[0; 5]);
    assert_eq!(
        p.set(4, 3),
        Err(KernelError::NotTernary { index: 4, value: 3 })
    );
    p.set(4, -1).unwrap();
    assert_eq!(p.to_i8(), [0, 0, 0, 0, -1]);
    assert_eq!(
        p.add(&pack(&[0; 4])),
        Err(KernelError::Shape {
            what: "binary trit op lengths",
            left: 5,
            right: 4
        })
    );
    assert!(matches!(
        p.dot(&pack(&[0; 6])),
        Err(KernelError::Shape {
            left: 5,
            right: 6,
            ..
        })
    ));
    assert!(matches!(
        scalar().count_rows(&p, 2, 3),
        Err(KernelError::Length {
            expected: 6,
            actual: 5,
            ..
        })
    ));
    assert_eq!(
        PackedTrits::from_f32_threshold(&[0.0, f32::NAN], 0.5)
            .unwrap_err()
            .to_string(),
        "non-finite value NaN at index 1 of trit conversion input"
    );
    assert_eq!(
        PackedTrits::from_f32_threshold(&[0.0], -1.0),
        Err(KernelError::BadThreshold { value: -1.0 })
    );
}

#[test]
#[should_panic(expected = "trit index 5 out of range for length 5")]
fn get_past_the_end_panics_with_the_index() {
    pack(&[0; 5]).get(5);
}

#[test]
fn signs_of_integers_cover_the_extremes() {
    let x = [i8::MIN, -1, 0, 1, i8::MAX];
    assert_eq!(PackedTrits::sign_i8(&x).to_i8(), [-1, -1, 0, 1, 1]);
    let y = [i32::MIN, -7, 0, 9, i32::MAX];
    assert_eq!(PackedTrits::sign_i32(&y).to_i8(), [-1, -1, 0, 1, 1]);
}

#[test]
fn whole_buffer_reductions_and_masks() {
    let v = [1i8, -1, 0, 1, 1];
    let p = pack(&v);
    assert_eq!(
        p.count(),
        TritCounts {
            neg: 1,
            zero: 1,
            pos: 3
        }
    );
    assert_eq!((p.sum(), p.min(), p.max()), (2, Some(-1), Some(1)));
    assert_eq!(
        (PackedTrits::zeros(0).min(), PackedTrits::zeros(0).max()),
        (None, None)
    );
    assert_eq!(pack(&[-1, -1]).max(), Some(-1));
    let q = pack(&[1, 1, 1, 0, -1]);
    let m = p.compare_mask(BinaryOp::Lt, &q).unwrap();
    assert_eq!(m, [0b00110]);
    assert_eq!(
        PackedTrits::select_mask(&m, &p, &q).unwrap().to_i8(),
        [1, -1, 0, 0, -1]
    );
    // select_mask across words: every 3rd trit from a.
    let mut r = XorShift::new(7);
    let (a, b) = (r.ternary(200), r.ternary(200));
    let mut mask = vec![0u64; 4];
    for i in (0..200).step_by(3) {
        mask[i / 64] |= 1 << (i % 64);
    }
    let want: Vec<i8> = (0..200)
        .map(|i| if i % 3 == 0 { a[i] } else { b[i] })
        .collect();
    assert_eq!(
        PackedTrits::select_mask(&mask, &pack(&a), &pack(&b)).unwrap(),
        pack(&want)
    );
    assert!(PackedTrits::select_mask(&mask[..3], &pack(&a), &pack(&b)).is_err());
}

#[test]
fn the_kernel_list_follows_the_host() {
    let isas: Vec<Isa> = kernels().iter().map(Kernel::isa).collect();
    assert_eq!(isas[0], Isa::Scalar);
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        assert_eq!(isas.contains(&Isa::Avx2), is_x86_feature_detected!("avx2"));
        assert_eq!(isas.contains(&Isa::Avx512Bw), avx512);
        assert_eq!(
            isas.contains(&Isa::Avx512Vpopcnt),
            avx512 && is_x86_feature_detected!("avx512vpopcntdq")
        );
    }
    eprintln!("trit kernels on this host: {isas:?}");
}

#[test]
fn matmul_of_every_isa_matches_the_i8_reference_on_ragged_shapes() {
    let mut r = XorShift::new(77);
    for &(m, n, k) in &[
        (0, 3, 5),
        (3, 0, 5),
        (2, 3, 0),
        (1, 1, 1),
        (3, 5, 7),
        (4, 9, 64),
        (5, 3, 257),
        (7, 11, 784),
        (2, 2, 4099),
    ] {
        let (a, b) = (r.ternary(m * k), r.ternary(n * k));
        let want: Vec<i64> = (0..m)
            .flat_map(|i| {
                let (a, b) = (&a, &b);
                (0..n).map(move |j| dot_ref(&a[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]))
            })
            .collect();
        for kernel in kernels() {
            let got = kernel.matmul(&pack(&a), &pack(&b), m, n, k).unwrap();
            assert_eq!(got, want, "{:?} {m}x{n}x{k}", kernel.isa());
        }
    }
    let err = scalar()
        .matmul(&pack(&[1, 0, 1]), &pack(&[1]), 1, 1, 2)
        .unwrap_err();
    assert!(matches!(err, KernelError::Length { .. }), "{err}");
}
