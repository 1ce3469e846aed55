//! The byte-moving converters between the I2 layout and ggml's `TQ2_0` / bitnet.cpp's `I2_S`
//! agree with the trit-by-trit codecs (their definition), and `PackedI2::from_packed_rows` /
//! `write_ternary` agree with `from_ternary` / `to_ternary`, over random matrices, every lane
//! value, zero rows and hostile bytes.

use proptest::prelude::*;
use ternary_kernels::format::{i2s, tq};
use ternary_kernels::{KernelError, PackedI2, Scales};

fn matrix(n: usize, k: usize, codes: &[i8]) -> PackedI2 {
    let values: Vec<i8> = (0..n * k).map(|i| codes[i % codes.len()]).collect();
    PackedI2::from_ternary(&values, n, k, Scales::PerTensor(1.0)).unwrap()
}

proptest! {
    #[test]
    fn tq2_0_bytes_equal_the_codec(
        n in 0usize..5,
        blocks in 1usize..4,
        codes in proptest::collection::vec(-1i8..=1, 1..700),
        bits in proptest::collection::vec(any::<u16>(), 1..8),
    ) {
        let k = 256 * blocks;
        let m = matrix(n, k, &codes);
        let d: Vec<u16> = (0..n * blocks).map(|i| bits[i % bits.len()]).collect();
        let mut fast = vec![0u8; d.len() * tq::TQ2_0_BLOCK_BYTES];
        tq::tq2_0_from_i2(m.data(), &d, &mut fast).unwrap();
        let mut slow = vec![0u8; fast.len()];
        tq::encode_tq2_0(&m.to_ternary(), &d, &mut slow).unwrap();
        prop_assert_eq!(&fast, &slow);
        let mut rows = vec![0u8; m.data().len()];
        let mut back = vec![0u16; d.len()];
        tq::tq2_0_to_i2(&fast, &mut rows, &mut back).unwrap();
        prop_assert_eq!(&rows[..], m.data());
        prop_assert_eq!(back, d);
    }

    #[test]
    fn i2_s_bytes_equal_the_codec(
        n in 0usize..5,
        blocks in 1usize..4,
        codes in proptest::collection::vec(-1i8..=1, 1..700),
        scale in any::<u32>(),
    ) {
        let k = 128 * blocks;
        let m = matrix(n, k, &codes);
        let scale = f32::from_bits(scale);
        let mut fast = vec![0u8; i2s::i2_s_bytes(n, k).unwrap()];
        i2s::i2_s_from_i2(m.data(), scale, &mut fast).unwrap();
        let mut slow = vec![0u8; fast.len()];
        i2s::encode_i2_s(&m.to_ternary(), n, k, scale, &mut slow).unwrap();
        prop_assert_eq!(&fast, &slow);
        let mut rows = vec![0u8; m.data().len()];
        let back = i2s::i2_s_to_i2(&fast, &mut rows).unwrap();
        prop_assert_eq!(back.to_bits(), scale.to_bits());
        prop_assert_eq!(&rows[..], m.data());
    }

    #[test]
    fn packed_rows_and_ternary_agree(
        n in 0usize..6,
        k in 1usize..400,
        codes in proptest::collection::vec(-1i8..=1, 1..900),
    ) {
        let m = matrix(n, k, &codes);
        let again = PackedI2::from_packed_rows(n, k, m.scales().clone(), m.data().to_vec()).unwrap();
        prop_assert_eq!(&again, &m);
        let mut t = vec![7i8; n * k];
        m.write_ternary(&mut t);
        let slow: Vec<i8> = (0..n * k).map(|i| m.get(i / k, i % k)).collect();
        prop_assert_eq!(t, slow);
    }
}

#[test]
fn hostile_bytes_are_refused_with_their_offset() {
    // Code 3 in the second TQ2_0 block, byte 5.
    let mut tq2 = vec![0x55u8; 2 * tq::TQ2_0_BLOCK_BYTES];
    tq2[tq::TQ2_0_BLOCK_BYTES + 5] = 0b0011_0101;
    let mut rows = vec![0u8; 128];
    let mut d = vec![0u16; 2];
    assert_eq!(
        tq::tq2_0_to_i2(&tq2, &mut rows, &mut d),
        Err(KernelError::BadCode {
            offset: tq::TQ2_0_BLOCK_BYTES + 5,
            code: 3
        })
    );
    let mut i2s_bytes = vec![0x55u8; 32 + 32];
    i2s_bytes[17] = 0xc0;
    let mut rows = vec![0u8; 32];
    assert!(matches!(
        i2s::i2_s_to_i2(&i2s_bytes, &mut rows),
        Err(KernelError::BadCode { offset: 17, .. })
    ));
    assert!(matches!(
        i2s::i2_s_to_i2(&i2s_bytes[..40], &mut rows),
        Err(KernelError::Truncated { .. })
    ));
    // Rows with a code 3, non-zero padding, or the wrong length.
    let k = 130;
    let mut data = matrix(1, k, &[1, 0, -1]).data().to_vec();
    assert_eq!(data.len(), 64);
    let mut bad = data.clone();
    bad[3] |= 0b11;
    assert!(matches!(
        PackedI2::from_packed_rows(1, k, Scales::PerTensor(1.0), bad),
        Err(KernelError::BadCode { offset: 3, .. })
    ));
    data[32 + 2] = (data[32 + 2] & !3) | 2; // column 130 (padding) set to +1
    assert!(matches!(
        PackedI2::from_packed_rows(1, k, Scales::PerTensor(1.0), data),
        Err(KernelError::BadPadding { row: 0, col: 130 })
    ));
    assert!(matches!(
        PackedI2::from_packed_rows(1, k, Scales::PerTensor(1.0), vec![0x55; 63]),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        PackedI2::from_packed_rows(2, 0, Scales::PerTensor(1.0), Vec::new()),
        Err(KernelError::EmptyRows { .. })
    ));
}
