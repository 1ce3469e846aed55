//! Round trips, packed sizes and hostile buffers for both packed formats.

use proptest::prelude::*;
use ternary_kernels::format::{GROUP_SIZES, i2, t1};
use ternary_kernels::{KernelError, PackedI2, PackedT1, Scales};

/// Every kind of valid scale value: zeros of both signs, subnormals, the largest finite
/// value, and ordinary values.
fn scale_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(0.0f32),
        Just(-0.0f32),
        Just(f32::from_bits(1)),
        Just(f32::MIN_POSITIVE / 3.0),
        Just(f32::MAX),
        0f32..10.0,
    ]
}

/// Ternary matrices with per-tensor, per-row and per-group scales (group sizes 64, 128, 256;
/// K ragged or not, up to several groups of 256; zero rows and columns; all-zero rows).
fn ternary_matrix() -> impl Strategy<Value = (Vec<i8>, usize, usize, Scales)> {
    (
        0usize..6,
        prop_oneof![0usize..300, 500usize..800],
        0usize..5,
        any::<bool>(),
    )
        .prop_flat_map(|(n, k, kind, zero_rows)| {
            let scales = match kind {
                0 => scale_value().prop_map(Scales::PerTensor).boxed(),
                1 => prop::collection::vec(scale_value(), n)
                    .prop_map(Scales::PerRow)
                    .boxed(),
                _ => {
                    let group_size = GROUP_SIZES[kind - 2];
                    prop::collection::vec(scale_value(), n * k.div_ceil(group_size))
                        .prop_map(move |scales| Scales::PerGroup { group_size, scales })
                        .boxed()
                }
            };
            let values = if zero_rows {
                Just(vec![0i8; n * k]).boxed()
            } else {
                prop::collection::vec(-1i8..=1, n * k).boxed()
            };
            (values, Just(n), Just(k), scales)
        })
}

/// The scales' bit patterns: `PartialEq` on f32 cannot tell `-0.0` from `0.0`.
fn scale_bits(s: &Scales) -> (Option<usize>, usize, Vec<u32>) {
    let kind = match s {
        Scales::PerTensor(_) => 0,
        Scales::PerRow(_) => 1,
        Scales::PerGroup { .. } => 2,
    };
    (
        s.group_size(),
        kind,
        s.as_slice().iter().map(|v| v.to_bits()).collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn rows_packed_one_at_a_time_equal_the_whole_matrix((t, n, k, scales) in ternary_matrix()) {
        prop_assume!(k > 0 || n == 0);
        let whole = PackedI2::from_ternary(&t, n, k, scales.clone()).unwrap();
        let row_bytes = i2::padded_k(k).unwrap() / 4;
        let mut data = vec![0xffu8; n * row_bytes];
        for (codes, dst) in t.chunks(k.max(1)).zip(data.chunks_mut(row_bytes.max(1))) {
            i2::pack_row_codes(dst, codes).unwrap();
        }
        prop_assert_eq!(PackedI2::from_packed_rows(n, k, scales, data).unwrap(), whole);
    }

    #[test]
    fn i2_and_t1_round_trip_losslessly((t, n, k, scales) in ternary_matrix()) {
        if k == 0 && n > 0 {
            // Rows without columns cannot be read back from bytes, so no constructor makes
            // them: what a constructor accepts, the reader reads.
            let empty = KernelError::EmptyRows { n: n as u64 };
            prop_assert_eq!(PackedI2::from_ternary(&t, n, k, scales.clone()), Err(empty.clone()));
            prop_assert_eq!(PackedT1::from_ternary(&t, n, k, scales.clone()), Err(empty.clone()));
            let w = vec![0f32; 0];
            prop_assert_eq!(
                PackedI2::quantize(&w, n, k, ternary_kernels::Method::AbsMean, ternary_kernels::Granularity::PerRow),
                Err(empty)
            );
            return Ok(());
        }
        let a = PackedI2::from_ternary(&t, n, k, scales.clone()).unwrap();
        prop_assert_eq!(a.to_ternary(), t.clone());
        for r in 0..n { for c in 0..k { prop_assert_eq!(a.get(r, c), t[r * k + c]); } }
        let b = PackedT1::from_i2(&a);
        prop_assert_eq!(b.to_ternary(), t.clone());
        prop_assert_eq!(b.to_i2(), a.clone());
        let a2 = PackedI2::from_bytes(&a.to_bytes()).unwrap();
        prop_assert_eq!(&a2, &a);
        prop_assert_eq!(scale_bits(a2.scales()), scale_bits(&scales));
        prop_assert_eq!(a2.to_bytes(), a.to_bytes());
        let b2 = PackedT1::from_bytes(&b.to_bytes()).unwrap();
        prop_assert_eq!(&b2, &b);
        prop_assert_eq!(scale_bits(b2.scales()), scale_bits(&scales));
        prop_assert_eq!(scale_bits(b.to_i2().scales()), scale_bits(&scales));
        prop_assert_eq!(b2.to_bytes(), b.to_bytes());
        // Dequantisation reads each weight's own row and group scale.
        let d = a.dequantize();
        for r in 0..n {
            for c in 0..k {
                let s = match &scales {
                    Scales::PerTensor(s) => *s,
                    Scales::PerRow(v) => v[r],
                    Scales::PerGroup { group_size, scales } => {
                        scales[r * k.div_ceil(*group_size) + c / group_size]
                    }
                };
                prop_assert_eq!(d[r * k + c].to_bits(), (f32::from(t[r * k + c]) * s).to_bits());
            }
        }
        prop_assert_eq!(PackedT1::from_ternary(&t, n, k, scales).unwrap(), b);
    }

    #[test]
    fn reading_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = PackedI2::from_bytes(&bytes);
        let _ = PackedT1::from_bytes(&bytes);
    }

    #[test]
    fn every_truncation_of_a_valid_buffer_is_an_error((t, n, k, scales) in ternary_matrix()) {
        prop_assume!(k > 0 || n == 0, "rows without columns are refused by the constructors");
        let a = PackedI2::from_ternary(&t, n, k, scales).unwrap();
        let bytes = a.to_bytes();
        for cut in [0, 1, 31, 32, bytes.len().saturating_sub(1)] {
            if cut < bytes.len() {
                prop_assert!(PackedI2::from_bytes(&bytes[..cut]).is_err());
            }
        }
        let t1 = PackedT1::from_i2(&a).to_bytes();
        prop_assert!(PackedT1::from_bytes(&t1[..t1.len() - 1]).is_err());
    }
}

#[test]
fn packed_sizes_stay_within_two_and_one_point_six_bits() {
    for (n, k) in [(4096, 4096), (2560, 6912), (17, 1000), (1, 128), (3, 5)] {
        let t = vec![1i8; n * k];
        let a = PackedI2::from_ternary(&t, n, k, Scales::PerRow(vec![1.0; n])).unwrap();
        let b = PackedT1::from_i2(&a);
        // 2 bits per weight plus the padding of each row's last block.
        let padded = n * i2::padded_k(k).unwrap();
        assert_eq!(a.data().len() * 8, 2 * padded);
        assert_eq!(a.storage_bytes(), a.data().len() + 4 * n);
        if k % i2::BLOCK == 0 {
            assert_eq!(a.data().len() * 8, 2 * n * k);
        }
        // 1.6 bits per weight plus the last byte's padding.
        assert_eq!(b.data().len(), (n * k).div_ceil(t1::TRITS_PER_BYTE));
        assert!(b.data().len() as f64 * 8.0 <= 1.6 * (n * k) as f64 + 8.0);
    }
}

fn sample() -> PackedI2 {
    let t: Vec<i8> = (0..2 * 130).map(|i| (i % 3) as i8 - 1).collect();
    PackedI2::from_ternary(&t, 2, 130, Scales::PerRow(vec![0.5, 1.5])).unwrap()
}

#[test]
fn a_row_packer_refuses_a_wrong_length_and_a_non_ternary_value() {
    let mut dst = [0u8; 32];
    assert_eq!(
        i2::pack_row_codes(&mut dst[..31], &[1, 0, -1]),
        Err(KernelError::Length {
            what: "packed row bytes (padded_k(k) / 4)",
            expected: 32,
            actual: 31
        })
    );
    assert_eq!(
        i2::pack_row_codes(&mut dst, &[1, 0, 2]),
        Err(KernelError::NotTernary { index: 2, value: 2 })
    );
}

#[test]
fn short_buffer_is_truncated_error() {
    let b = sample().to_bytes();
    assert!(matches!(
        PackedI2::from_bytes(&b[..10]),
        Err(KernelError::Truncated { what: "header", .. })
    ));
    assert!(matches!(
        PackedI2::from_bytes(&b[..34]),
        Err(KernelError::Truncated { what: "scales", .. })
    ));
    assert!(matches!(
        PackedI2::from_bytes(&b[..b.len() - 1]),
        Err(KernelError::Truncated {
            what: "payload",
            ..
        })
    ));
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut b = sample().to_bytes();
    b.push(0x55);
    assert!(matches!(
        PackedI2::from_bytes(&b),
        Err(KernelError::TrailingBytes { extra: 1, .. })
    ));
}

#[test]
fn bad_magic_version_format_and_kind_are_errors() {
    let b = sample().to_bytes();
    let mut m = b.clone();
    m[0] = b'X';
    assert!(matches!(
        PackedI2::from_bytes(&m),
        Err(KernelError::BadMagic { .. })
    ));
    let mut v = b.clone();
    v[4] = 2;
    assert!(matches!(
        PackedI2::from_bytes(&v),
        Err(KernelError::Unsupported {
            field: "version",
            ..
        })
    ));
    assert!(matches!(
        PackedT1::from_bytes(&b),
        Err(KernelError::Unsupported {
            field: "format",
            ..
        })
    ));
    let mut s = b.clone();
    s[7] = 9;
    assert!(matches!(
        PackedI2::from_bytes(&s),
        Err(KernelError::Unsupported {
            field: "scale kind",
            ..
        })
    ));
    let mut r = b;
    r[30] = 1;
    assert!(matches!(
        PackedI2::from_bytes(&r),
        Err(KernelError::Unsupported {
            field: "reserved",
            ..
        })
    ));
}

#[test]
fn huge_declared_shapes_fail_before_allocating() {
    let mut b = sample().to_bytes();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        PackedI2::from_bytes(&b),
        Err(KernelError::ShapeOverflow { .. })
    ));
    // Plausible but enormous: 2^40 rows. Must be a truncation error, not an allocation.
    let mut b = sample().to_bytes();
    b[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        PackedI2::from_bytes(&b),
        Err(KernelError::Truncated { .. })
    ));
}

/// Found by the `packed_formats` fuzz target: 2^60 rows of zero columns cost no payload
/// bytes, so every row-walking consumer spun on a bare claim.
#[test]
fn rows_without_columns_are_refused() {
    let mut b = Vec::from(&b"TRNY"[..]);
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&[1, 0]); // I2, one scale
    b.extend_from_slice(&(1u64 << 60).to_le_bytes()); // n
    b.extend_from_slice(&0u64.to_le_bytes()); // k
    b.extend_from_slice(&128u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&1.0f32.to_le_bytes());
    assert_eq!(
        PackedI2::from_bytes(&b),
        Err(KernelError::EmptyRows { n: 1 << 60 })
    );
    let mut t = b.clone();
    t[6] = 2; // T1
    t[24..28].copy_from_slice(&5u32.to_le_bytes());
    assert_eq!(
        PackedT1::from_bytes(&t),
        Err(KernelError::EmptyRows { n: 1 << 60 })
    );
}

#[test]
fn trit_code_three_and_base3_overflow_are_errors() {
    let mut b = sample().to_bytes();
    let payload = 32 + 8;
    b[payload + 5] = 0b0000_1100; // lane 1 holds code 3
    assert_eq!(
        PackedI2::from_bytes(&b),
        Err(KernelError::BadCode {
            offset: payload + 5,
            code: 3
        })
    );
    let mut t = PackedT1::from_i2(&sample()).to_bytes();
    t[payload] = 243;
    assert_eq!(
        PackedT1::from_bytes(&t),
        Err(KernelError::BadCode {
            offset: payload,
            code: 243
        })
    );
}

#[test]
fn nonzero_padding_and_bad_scales_are_errors() {
    let mut b = sample().to_bytes();
    // Row 0 column 130 (block 1, lane 0, byte 2): code 2 instead of the zero code 1.
    let payload = 32 + 8;
    b[payload + 32 + 2] = 0b0101_0110;
    assert_eq!(
        PackedI2::from_bytes(&b),
        Err(KernelError::BadPadding { row: 0, col: 130 })
    );
    let mut b = sample().to_bytes();
    b[32..36].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(
        PackedI2::from_bytes(&b),
        Err(KernelError::BadScale { index: 0, .. })
    ));
    assert!(matches!(
        PackedI2::from_ternary(&[0, 1], 1, 2, Scales::PerTensor(-1.0)),
        Err(KernelError::BadScale { .. })
    ));
    assert!(matches!(
        PackedI2::from_ternary(&[0, 1], 1, 2, Scales::PerRow(vec![1.0, 1.0])),
        Err(KernelError::Length { .. })
    ));
    assert_eq!(
        PackedI2::from_ternary(&[0, 2], 1, 2, Scales::PerTensor(1.0)),
        Err(KernelError::NotTernary { index: 1, value: 2 })
    );
}

#[test]
fn the_documented_bit_layout_holds() {
    // Weight 0 → bits 1..0 of byte 0; weight 33 → bits 3..2 of byte 1; weight 127 → bits 7..6
    // of byte 31; weight 128 starts block 1 at byte 32.
    let mut t = vec![0i8; 256];
    t[0] = 1;
    t[33] = -1;
    t[127] = 1;
    t[128] = -1;
    let a = PackedI2::from_ternary(&t, 1, 256, Scales::PerTensor(1.0)).unwrap();
    let d = a.data();
    assert_eq!(d[0], 0b01_01_01_10);
    assert_eq!(d[1], 0b01_01_00_01);
    assert_eq!(d[31], 0b10_01_01_01);
    assert_eq!(d[32], 0b01_01_01_00);
    // Base-3: the first five trits (w+1) are 2, 1, 1, 1, 1 → 2 + 3 + 9 + 27 + 81 = 122.
    assert_eq!(PackedT1::from_i2(&a).data()[0], 122);
}

/// A 2 × 300 matrix with 128-column scale groups (3 per row, the last ragged).
fn grouped_sample() -> PackedI2 {
    let t: Vec<i8> = (0..2 * 300).map(|i| (i % 3) as i8 - 1).collect();
    let scales = vec![0.5, -0.0, f32::from_bits(3), 1.5, 0.0, 2.0];
    PackedI2::from_ternary(
        &t,
        2,
        300,
        Scales::PerGroup {
            group_size: 128,
            scales,
        },
    )
    .unwrap()
}

#[test]
fn group_scales_serialise_with_kind_two_and_the_group_size() {
    let a = grouped_sample();
    let b = a.to_bytes();
    assert_eq!(b[7], 2, "scale kind");
    assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 128);
    // 6 scales, then 2 rows of 3 blocks of 32 bytes.
    assert_eq!(b.len(), 32 + 6 * 4 + 2 * 96);
    assert_eq!(&b[32 + 4..32 + 8], &(-0.0f32).to_le_bytes());
    assert_eq!(PackedI2::from_bytes(&b).unwrap().to_bytes(), b);
    let t1 = PackedT1::from_i2(&a).to_bytes();
    assert_eq!((t1[7], &t1[28..32]), (2, &128u32.to_le_bytes()[..]));
}

#[test]
fn group_sizes_other_than_64_128_256_are_typed_errors() {
    for bad in [0, 1, 32, 63, 65, 96, 192, 512, usize::MAX] {
        let scales = Scales::PerGroup {
            group_size: bad,
            scales: vec![1.0; 4],
        };
        assert_eq!(
            PackedI2::from_ternary(&[0; 8], 2, 4, scales.clone()),
            Err(KernelError::BadGroupSize { group_size: bad })
        );
        assert_eq!(
            PackedT1::from_ternary(&[0; 8], 2, 4, scales),
            Err(KernelError::BadGroupSize { group_size: bad })
        );
        assert_eq!(
            ternary_kernels::PackedI2Ref::with_group_scales(&[0x55; 64], 2, 4, bad, &[1.0; 2]),
            Err(KernelError::BadGroupSize { group_size: bad })
        );
    }
    let msg = KernelError::BadGroupSize { group_size: 96 }.to_string();
    assert!(msg.contains("96"), "{msg}");
    // In the bytes: the group word of a kind-2 header.
    for bad in [0u32, 1, 100, 512, u32::MAX] {
        let mut b = grouped_sample().to_bytes();
        b[28..32].copy_from_slice(&bad.to_le_bytes());
        assert_eq!(
            PackedI2::from_bytes(&b),
            Err(KernelError::BadGroupSize {
                group_size: bad as usize
            })
        );
        let mut t = PackedT1::from_i2(&grouped_sample()).to_bytes();
        t[28..32].copy_from_slice(&bad.to_le_bytes());
        assert_eq!(
            PackedT1::from_bytes(&t),
            Err(KernelError::BadGroupSize {
                group_size: bad as usize
            })
        );
    }
}

#[test]
fn group_scale_counts_and_values_are_checked() {
    let t = vec![1i8; 2 * 130];
    let gs = |scales: Vec<f32>| Scales::PerGroup {
        group_size: 64,
        scales,
    };
    // ceil(130 / 64) = 3 groups per row: 6 scales.
    assert!(PackedI2::from_ternary(&t, 2, 130, gs(vec![1.0; 6])).is_ok());
    for wrong in [0, 2, 3, 5, 7, 12] {
        assert!(matches!(
            PackedI2::from_ternary(&t, 2, 130, gs(vec![1.0; wrong])),
            Err(KernelError::Length { expected: 6, actual, .. }) if actual == wrong
        ));
    }
    for (index, value) in [
        (0, -1.0),
        (4, f32::NAN),
        (5, f32::INFINITY),
        (2, -f32::MIN_POSITIVE),
    ] {
        let mut v = vec![1.0; 6];
        v[index] = value;
        assert!(matches!(
            PackedI2::from_ternary(&t, 2, 130, gs(v)),
            Err(KernelError::BadScale { index: i, .. }) if i == index
        ));
    }
    // Serialised: a NaN group scale is refused on reading too.
    let mut b = grouped_sample().to_bytes();
    b[32 + 8..32 + 12].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(
        PackedI2::from_bytes(&b),
        Err(KernelError::BadScale { index: 2, .. })
    ));
    // Zero rows: no scales at all.
    let e = PackedI2::from_ternary(&[], 0, 300, gs(vec![])).unwrap();
    assert_eq!(PackedI2::from_bytes(&e.to_bytes()).unwrap(), e);
    assert!(matches!(
        PackedI2::from_ternary(&[], 0, 300, gs(vec![1.0])),
        Err(KernelError::Length { expected: 0, .. })
    ));
}

#[test]
fn hostile_group_headers_fail_before_allocating() {
    // Kinds 0 and 1 keep the group word reserved.
    let mut b = sample().to_bytes();
    b[28..32].copy_from_slice(&64u32.to_le_bytes());
    assert_eq!(
        PackedI2::from_bytes(&b),
        Err(KernelError::Unsupported {
            field: "reserved",
            value: 64
        })
    );
    // 2^40 rows of 4 groups: 2^42 claimed scales, far past the buffer. A truncation error,
    // not an allocation.
    let mut b = grouped_sample().to_bytes();
    b[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        PackedI2::from_bytes(&b),
        Err(KernelError::Truncated { .. })
    ));
    // n · groups overflows: a shape error.
    let mut b = grouped_sample().to_bytes();
    b[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
    b[16..24].copy_from_slice(&(1u64 << 10).to_le_bytes());
    assert!(matches!(
        PackedI2::from_bytes(&b),
        Err(KernelError::ShapeOverflow { .. })
    ));
    let mut t = PackedT1::from_i2(&grouped_sample()).to_bytes();
    t[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        PackedT1::from_bytes(&t),
        Err(KernelError::Truncated { .. })
    ));
    // A per-row buffer relabelled as groups of 64 claims more scales than it holds.
    let mut b = sample().to_bytes();
    b[7] = 2;
    b[28..32].copy_from_slice(&64u32.to_le_bytes());
    assert!(PackedI2::from_bytes(&b).is_err());
    // Every truncation of a grouped buffer is an error.
    let b = grouped_sample().to_bytes();
    for cut in 0..b.len() {
        assert!(PackedI2::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
    }
}
