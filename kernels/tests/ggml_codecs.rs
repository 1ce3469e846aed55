//! The ggml ternary block codecs (`TQ1_0`, `TQ2_0`) and bitnet.cpp's `I2_S`: bit-exact round
//! trips over the whole domain, agreement with slow references transcribed loop by loop from
//! ggml's / bitnet.cpp's C (`quantize_row_tq*_0_ref`, `dequantize_row_tq*_0`,
//! `quantize_i2_s`, `dequantize_row_i2_s`), and typed errors for hostile payloads.

use proptest::prelude::*;
use ternary_kernels::KernelError;
use ternary_kernels::format::i2s::{self, decode_i2_s, encode_i2_s, i2_s_bytes};
use ternary_kernels::format::tq::{
    QK_K, TQ1_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES, decode_tq1_0, decode_tq2_0, encode_tq1_0,
    encode_tq2_0,
};
use ternary_kernels::random::XorShift;

// ---- slow references, one statement per line of the C they transcribe ----

/// `quantize_row_tq2_0_ref` given the codes `xi = t + 1` instead of floats.
fn ref_encode_tq2_0(t: &[i8], d: &[u16]) -> Vec<u8> {
    let mut y = Vec::new();
    for (i, x) in t.chunks(QK_K).enumerate() {
        let mut qs = [0u8; 64];
        let mut p = 0;
        for j in (0..64).step_by(32) {
            for m in 0..32 {
                let mut q = 0u8;
                for n in 0..4 {
                    let xi = (x[p + m + n * 32] + 1) as u8;
                    q += (xi & 3) << (2 * n);
                }
                qs[j + m] = q;
            }
            p += 4 * 32;
        }
        y.extend_from_slice(&qs);
        y.extend_from_slice(&d[i].to_le_bytes());
    }
    y
}

/// `dequantize_row_tq2_0`, returning codes − 1 (so 3 comes back as 2) and the raw `d`.
fn ref_decode_tq2_0(bytes: &[u8]) -> (Vec<i8>, Vec<u16>) {
    let (mut y, mut ds) = (Vec::new(), Vec::new());
    for x in bytes.chunks(TQ2_0_BLOCK_BYTES) {
        ds.push(u16::from_le_bytes([x[64], x[65]]));
        for j in (0..64).step_by(32) {
            for l in 0..4 {
                for m in 0..32 {
                    let q = (x[j + m] >> (l * 2)) & 3;
                    y.push(q as i8 - 1);
                }
            }
        }
    }
    (y, ds)
}

/// `quantize_row_tq1_0_ref` given the codes `xi = t + 1` instead of floats.
// The ceiling division is spelled as in the C, not as `div_ceil`, to stay a transcription.
#[allow(clippy::manual_div_ceil)]
fn ref_encode_tq1_0(t: &[i8], d: &[u16]) -> Vec<u8> {
    let ceil_div = |q: u32| ((q * 256 + (243 - 1)) / 243) as u8;
    let mut y = Vec::new();
    for (i, x) in t.chunks(QK_K).enumerate() {
        let (mut qs, mut qh) = ([0u8; 48], [0u8; 4]);
        let mut p = 0;
        for j in (0..48 - 48 % 32).step_by(32) {
            for m in 0..32 {
                let mut q = 0u32;
                for n in 0..5 {
                    q = q * 3 + (x[p + m + n * 32] + 1) as u32;
                }
                qs[j + m] = ceil_div(q);
            }
            p += 5 * 32;
        }
        for j in (48 - 48 % 32..48).step_by(16) {
            for m in 0..16 {
                let mut q = 0u32;
                for n in 0..5 {
                    q = q * 3 + (x[p + m + n * 16] + 1) as u32;
                }
                qs[j + m] = ceil_div(q);
            }
            p += 5 * 16;
        }
        for j in 0..4 {
            let mut q = 0u32;
            for m in 0..4 {
                q = q * 3 + (x[p + j + m * 4] + 1) as u32;
            }
            q *= 3;
            qh[j] = ceil_div(q);
        }
        y.extend_from_slice(&qs);
        y.extend_from_slice(&qh);
        y.extend_from_slice(&d[i].to_le_bytes());
    }
    y
}

/// Trit `n` of a base-3 fraction byte straight from the definition: `((b·3ⁿ mod 256)·3) / 256`.
fn ref_trit(b: u8, n: u32) -> i8 {
    let q = (b as u32 * 3u32.pow(n)) % 256;
    (q * 3 / 256) as i8 - 1
}

/// `dequantize_row_tq1_0`, returning trits and the raw `d`.
fn ref_decode_tq1_0(bytes: &[u8]) -> (Vec<i8>, Vec<u16>) {
    let (mut y, mut ds) = (Vec::new(), Vec::new());
    for x in bytes.chunks(TQ1_0_BLOCK_BYTES) {
        let (qs, qh) = (&x[..48], &x[48..52]);
        ds.push(u16::from_le_bytes([x[52], x[53]]));
        for j in (0..48 - 48 % 32).step_by(32) {
            for n in 0..5 {
                for m in 0..32 {
                    y.push(ref_trit(qs[j + m], n));
                }
            }
        }
        for j in (48 - 48 % 32..48).step_by(16) {
            for n in 0..5 {
                for m in 0..16 {
                    y.push(ref_trit(qs[j + m], n));
                }
            }
        }
        for n in 0..4 {
            for &h in qh {
                y.push(ref_trit(h, n));
            }
        }
    }
    (y, ds)
}

/// `quantize_i2_s` (x86, `QK_I2_S = 128`) given `q8 = t + 1` instead of floats.
fn ref_encode_i2_s(t: &[i8], scale: f32) -> Vec<u8> {
    let n = t.len();
    let mut dst = vec![0u8; n / 4 + 32];
    for i in 0..n / 128 {
        for j in 0..128 {
            let group_idx = j / 32;
            let group_pos = j % 32;
            let temp = ((t[i * 128 + j] + 1) as u8) << (6 - 2 * group_idx);
            dst[i * 32 + group_pos] |= temp;
        }
    }
    dst[n / 4..n / 4 + 4].copy_from_slice(&scale.to_le_bytes());
    dst
}

/// `dequantize_row_i2_s` over `n` weights, returning codes − 1 (3 comes back as 2).
fn ref_decode_i2_s(x: &[u8], n: usize) -> Vec<i8> {
    let mut y = vec![0i8; n];
    let mut done = 0;
    let mut x = x;
    while done < n {
        for gp in 0..32 {
            let b = x[gp];
            for (g, shift) in [6, 4, 2, 0].into_iter().enumerate() {
                y[done + g * 32 + gp] = ((b >> shift) & 3) as i8 - 1;
            }
        }
        x = &x[32..];
        done += 128;
    }
    y
}

/// `blocks` blocks of random trits, every third block all zero.
fn trits_with_zero_blocks(rng: &mut XorShift, blocks: usize) -> Vec<i8> {
    let mut t = rng.ternary(blocks * QK_K);
    for b in (0..blocks).step_by(3) {
        t[b * QK_K..(b + 1) * QK_K].fill(0);
    }
    t
}

/// Every f16 bit pattern, once: 0, −0 (0x8000), subnormals, ±∞ and NaNs included.
fn all_f16_bits() -> Vec<u16> {
    (0..=u16::MAX).collect()
}

// ---- TQ2_0 ----

#[test]
fn tq2_0_round_trips_every_f16_scale_and_matches_ggml_reference_bytes() {
    let scales = all_f16_bits();
    let t = trits_with_zero_blocks(&mut XorShift::new(20), scales.len());
    let mut bytes = vec![0u8; scales.len() * TQ2_0_BLOCK_BYTES];
    encode_tq2_0(&t, &scales, &mut bytes).unwrap();
    assert!(bytes == ref_encode_tq2_0(&t, &scales));
    let (mut t2, mut s2) = (vec![9i8; t.len()], vec![1u16; scales.len()]);
    decode_tq2_0(&bytes, &mut t2, &mut s2).unwrap();
    assert!(t2 == t);
    assert_eq!(s2, scales);
    assert!(ref_decode_tq2_0(&bytes) == (t, scales));
}

#[test]
fn tq2_0_decodes_every_byte_without_code_3_like_ggml() {
    // Each block's 64 qs bytes all hold one value; values with a lane of 3 are refused below.
    let values: Vec<u8> = (0..=255u8).filter(|b| b & (b >> 1) & 0x55 == 0).collect();
    assert_eq!(values.len(), 81);
    let mut bytes = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        bytes.extend_from_slice(&[v; 64]);
        bytes.extend_from_slice(&(i as u16).to_le_bytes());
    }
    let mut t = vec![0i8; values.len() * QK_K];
    let mut s = vec![0u16; values.len()];
    decode_tq2_0(&bytes, &mut t, &mut s).unwrap();
    assert!(ref_decode_tq2_0(&bytes) == (t, s));
}

#[test]
fn tq2_0_code_3_is_refused_with_its_byte_offset_in_every_lane() {
    let t = XorShift::new(21).ternary(3 * QK_K);
    let mut good = vec![0u8; 3 * TQ2_0_BLOCK_BYTES];
    encode_tq2_0(&t, &[0x3c00; 3], &mut good).unwrap();
    for offset in [
        0,
        31,
        63,
        TQ2_0_BLOCK_BYTES + 17,
        2 * TQ2_0_BLOCK_BYTES + 40,
    ] {
        for lane in 0..4 {
            let mut bad = good.clone();
            bad[offset] |= 3 << (2 * lane);
            let (mut c, mut s) = (vec![0i8; 3 * QK_K], vec![0u16; 3]);
            assert_eq!(
                decode_tq2_0(&bad, &mut c, &mut s),
                Err(KernelError::BadCode { offset, code: 3 })
            );
        }
    }
    // The scale bytes are not codes: 0xFF there is a NaN scale, not a code 3.
    let mut nan = good.clone();
    nan[64] = 0xff;
    nan[65] = 0xff;
    let (mut c, mut s) = (vec![0i8; 3 * QK_K], vec![0u16; 3]);
    decode_tq2_0(&nan, &mut c, &mut s).unwrap();
    assert_eq!(s[0], 0xffff);
}

// ---- TQ1_0 ----

#[test]
fn tq1_0_round_trips_every_f16_scale_and_matches_ggml_reference_bytes() {
    let scales = all_f16_bits();
    let t = trits_with_zero_blocks(&mut XorShift::new(10), scales.len());
    let mut bytes = vec![0u8; scales.len() * TQ1_0_BLOCK_BYTES];
    encode_tq1_0(&t, &scales, &mut bytes).unwrap();
    assert!(bytes == ref_encode_tq1_0(&t, &scales));
    let (mut t2, mut s2) = (vec![9i8; t.len()], vec![1u16; scales.len()]);
    decode_tq1_0(&bytes, &mut t2, &mut s2).unwrap();
    assert!(t2 == t);
    assert_eq!(s2, scales);
    assert!(ref_decode_tq1_0(&bytes) == (t, scales));
}

#[test]
fn tq1_0_decodes_all_256_byte_values_in_every_position_like_the_definition() {
    // Block v holds byte v in all 52 qs / qh positions, so every value meets every position.
    let mut bytes = Vec::new();
    for v in 0..=255u8 {
        bytes.extend_from_slice(&[v; 52]);
        bytes.extend_from_slice(&u16::from(v).wrapping_mul(257).to_le_bytes());
    }
    let mut t = vec![0i8; 256 * QK_K];
    let mut s = vec![0u16; 256];
    decode_tq1_0(&bytes, &mut t, &mut s).unwrap();
    assert!(ref_decode_tq1_0(&bytes) == (t.clone(), s));
    // Every byte decodes to valid trits, so nothing is refused.
    assert!(t.iter().all(|v| (-1..=1).contains(v)));
}

#[test]
fn tq1_0_canonical_bytes_are_exactly_the_encoder_images_and_others_re_encode_canonically() {
    // Decode→encode reproduces a byte exactly when ggml's quantizer can write it: 243 `qs`
    // values (5 trits) and 81 `qh` values (4 trits + a zero).
    let mut bytes = Vec::new();
    for v in 0..=255u8 {
        bytes.extend_from_slice(&[v; 52]);
        bytes.extend_from_slice(&[0, 0]);
    }
    let mut t = vec![0i8; 256 * QK_K];
    let mut s = vec![0u16; 256];
    decode_tq1_0(&bytes, &mut t, &mut s).unwrap();
    let mut again = vec![0u8; bytes.len()];
    encode_tq1_0(&t, &s, &mut again).unwrap();
    let kept = |pos: usize| {
        (0..256)
            .filter(|&v| again[v * TQ1_0_BLOCK_BYTES + pos] == v as u8)
            .count()
    };
    assert!((0..48).all(|pos| kept(pos) == 243));
    assert!((48..52).all(|pos| kept(pos) == 81));
    // Whatever the byte, the weights survive the second trip.
    let mut t3 = vec![0i8; t.len()];
    decode_tq1_0(&again, &mut t3, &mut s).unwrap();
    assert!(t3 == t);
    // The canonical bytes are the ceilings ⌈v·256/243⌉ and decode to v's base-3 digits.
    for v in 0..243u32 {
        let b = ((v * 256).div_ceil(243)) as u8;
        let digits: Vec<i8> = (0..5).map(|n| ref_trit(b, n)).collect();
        let expect: Vec<i8> = (0..5)
            .map(|n| (v / 3u32.pow(4 - n) % 3) as i8 - 1)
            .collect();
        assert_eq!(digits, expect, "v = {v}");
    }
}

// ---- shapes and hostile lengths, both types ----

type Decode = fn(&[u8], &mut [i8], &mut [u16]) -> ternary_kernels::Result<()>;
type Encode = fn(&[i8], &[u16], &mut [u8]) -> ternary_kernels::Result<()>;
const TYPES: [(&str, usize, Encode, Decode); 2] = [
    ("TQ1_0", TQ1_0_BLOCK_BYTES, encode_tq1_0, decode_tq1_0),
    ("TQ2_0", TQ2_0_BLOCK_BYTES, encode_tq2_0, decode_tq2_0),
];

#[test]
fn zero_blocks_encode_and_decode_to_nothing() {
    for (_, _, encode, decode) in TYPES {
        encode(&[], &[], &mut []).unwrap();
        decode(&[], &mut [], &mut []).unwrap();
    }
    encode_i2_s(&[], 0, 128, -0.0, &mut [0xAA; 32]).unwrap();
    let s = decode_i2_s(&[0; 32], 3, 0, &mut []).unwrap();
    assert_eq!(s.to_bits(), 0);
}

#[test]
fn ragged_block_counts_and_mismatched_lengths_are_typed_errors() {
    for (name, bb, encode, decode) in TYPES {
        for len in [1, QK_K - 1, QK_K + 1, 2 * QK_K - 1] {
            let err = KernelError::NotBlockMultiple {
                what: name,
                len,
                block: QK_K,
            };
            let blocks = len.div_ceil(QK_K);
            let mut out = vec![0u8; blocks * bb];
            assert_eq!(
                encode(&vec![0; len], &vec![0; blocks], &mut out),
                Err(err.clone())
            );
            let (mut c, mut s) = (vec![0; len], vec![0; blocks]);
            assert_eq!(decode(&out, &mut c, &mut s), Err(err));
        }
        let scales_err = KernelError::Length {
            what: "scales (one per 256-weight block)",
            expected: 2,
            actual: 3,
        };
        assert_eq!(
            encode(&[0; 2 * QK_K], &[0; 3], &mut vec![0; 2 * bb]),
            Err(scales_err.clone())
        );
        assert_eq!(
            decode(&vec![0; 2 * bb], &mut [0; 2 * QK_K], &mut [0; 3]),
            Err(scales_err)
        );
        for actual in [2 * bb - 1, 2 * bb + 1, 0] {
            assert!(matches!(
                encode(&[0; 2 * QK_K], &[0; 2], &mut vec![0; actual]),
                Err(KernelError::Length { expected, actual: a, .. }) if expected == 2 * bb && a == actual
            ));
        }
    }
}

#[test]
fn truncated_and_overlong_payloads_are_typed_errors() {
    for (_, bb, encode, decode) in TYPES {
        let t = XorShift::new(5).ternary(2 * QK_K);
        let mut bytes = vec![0u8; 2 * bb];
        encode(&t, &[0x3c00, 0x8000], &mut bytes).unwrap();
        for cut in [0, 1, bb - 1, bb, 2 * bb - 1] {
            let (mut c, mut s) = (vec![0; 2 * QK_K], vec![0; 2]);
            assert!(matches!(
                decode(&bytes[..cut], &mut c, &mut s),
                Err(KernelError::Truncated { offset: 0, needed, available, .. })
                    if needed == 2 * bb && available == cut
            ));
        }
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 3]);
        let (mut c, mut s) = (vec![0; 2 * QK_K], vec![0; 2]);
        assert_eq!(
            decode(&long, &mut c, &mut s),
            Err(KernelError::TrailingBytes {
                offset: 2 * bb,
                extra: 3
            })
        );
    }
}

#[test]
fn non_ternary_codes_are_refused_with_their_index() {
    for (_, bb, encode, _) in TYPES {
        for (index, value) in [
            (0, 2),
            (255, -2),
            (256 + 77, i8::MIN),
            (2 * QK_K - 1, i8::MAX),
        ] {
            let mut t = XorShift::new(6).ternary(2 * QK_K);
            t[index] = value;
            let mut out = vec![0u8; 2 * bb];
            assert_eq!(
                encode(&t, &[0, 0], &mut out),
                Err(KernelError::NotTernary { index, value })
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn tq_codecs_round_trip_any_trits_and_scales(
        blocks in 0usize..6,
        seed in any::<u64>(),
        scales in prop::collection::vec(any::<u16>(), 6),
    ) {
        let t = XorShift::new(seed).ternary(blocks * QK_K);
        let s = &scales[..blocks];
        for (_, bb, encode, decode) in TYPES {
            let mut bytes = vec![0u8; blocks * bb];
            encode(&t, s, &mut bytes).unwrap();
            let (mut t2, mut s2) = (vec![0i8; t.len()], vec![0u16; blocks]);
            decode(&bytes, &mut t2, &mut s2).unwrap();
            prop_assert_eq!(&t2, &t);
            prop_assert_eq!(&s2[..], s);
        }
    }
}

// ---- I2_S ----

#[test]
fn i2_s_size_is_a_quarter_byte_per_weight_plus_32() {
    assert_eq!(i2_s_bytes(0, 0), Ok(32));
    assert_eq!(i2_s_bytes(1, 128), Ok(64));
    assert_eq!(i2_s_bytes(6912, 2560), Ok(6912 * 2560 / 4 + 32));
    for k in [1, 64, 127, 129, 255] {
        assert_eq!(
            i2_s_bytes(2, k),
            Err(KernelError::NotBlockMultiple {
                what: "I2_S row length k",
                len: k,
                block: i2s::BLOCK
            })
        );
    }
    assert_eq!(
        i2_s_bytes(usize::MAX, 128),
        Err(KernelError::ShapeOverflow {
            n: usize::MAX as u64,
            k: 128
        })
    );
}

#[test]
fn i2_s_matches_bitnet_reference_and_round_trips_scale_bits() {
    let (n, k) = (5, 384);
    let mut t = XorShift::new(36).ternary(n * k);
    t[128..256].fill(0);
    let odd_scales = [
        0.0f32,
        -0.0,
        f32::from_bits(1), // smallest subnormal
        f32::MIN_POSITIVE,
        -1.5,
        f32::INFINITY,
        f32::from_bits(0x7fc0_1234), // NaN with a payload
        0.0421,
    ];
    for scale in odd_scales {
        let mut out = vec![0xAAu8; i2_s_bytes(n, k).unwrap()];
        encode_i2_s(&t, n, k, scale, &mut out).unwrap();
        assert!(out == ref_encode_i2_s(&t, scale));
        let mut t2 = vec![9i8; n * k];
        let s2 = decode_i2_s(&out, n, k, &mut t2).unwrap();
        assert_eq!(s2.to_bits(), scale.to_bits());
        assert!(t2 == t);
        assert!(ref_decode_i2_s(&out, n * k) == t);
    }
}

#[test]
fn i2_s_ignores_the_unused_trailer_bytes() {
    let (n, k) = (2, 128);
    let t = XorShift::new(7).ternary(n * k);
    let mut out = vec![0u8; i2_s_bytes(n, k).unwrap()];
    encode_i2_s(&t, n, k, 0.5, &mut out).unwrap();
    assert!(out[n * k / 4 + 4..].iter().all(|&b| b == 0));
    out[n * k / 4 + 4..].fill(0xEE);
    let mut t2 = vec![0i8; n * k];
    assert_eq!(decode_i2_s(&out, n, k, &mut t2), Ok(0.5));
    assert!(t2 == t);
}

#[test]
fn i2_s_hostile_payloads_are_typed_errors() {
    let (n, k) = (3, 256);
    let t = XorShift::new(8).ternary(n * k);
    let size = i2_s_bytes(n, k).unwrap();
    let mut good = vec![0u8; size];
    encode_i2_s(&t, n, k, 1.0, &mut good).unwrap();
    let mut codes = vec![0i8; n * k];
    // Code 3 in each lane, in several blocks.
    for offset in [0, 31, 32, 100, n * k / 4 - 1] {
        for lane in 0..4 {
            let mut bad = good.clone();
            bad[offset] |= 3 << (2 * lane);
            assert_eq!(
                decode_i2_s(&bad, n, k, &mut codes),
                Err(KernelError::BadCode { offset, code: 3 })
            );
        }
    }
    // 0xFF in the scale is a NaN scale, not a code.
    let mut nan = good.clone();
    nan[n * k / 4..n * k / 4 + 4].fill(0xff);
    assert!(decode_i2_s(&nan, n, k, &mut codes).unwrap().is_nan());
    for cut in [0, 1, size - 32, size - 1] {
        assert!(matches!(
            decode_i2_s(&good[..cut], n, k, &mut codes),
            Err(KernelError::Truncated { needed, available, .. }) if needed == size && available == cut
        ));
    }
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        decode_i2_s(&long, n, k, &mut codes),
        Err(KernelError::TrailingBytes {
            offset: size,
            extra: 1
        })
    );
    assert!(matches!(
        decode_i2_s(&good, n, k, &mut codes[1..]),
        Err(KernelError::Length { expected, actual, .. }) if expected == n * k && actual == n * k - 1
    ));
    assert!(matches!(
        decode_i2_s(&good, n, 129, &mut codes),
        Err(KernelError::NotBlockMultiple { len: 129, .. })
    ));
    let mut bad_t = t.clone();
    bad_t[300] = -3;
    assert_eq!(
        encode_i2_s(&bad_t, n, k, 1.0, &mut vec![0; size]),
        Err(KernelError::NotTernary {
            index: 300,
            value: -3
        })
    );
    assert!(matches!(
        encode_i2_s(&t, n, k, 1.0, &mut vec![0; size + 1]),
        Err(KernelError::Length { expected, .. }) if expected == size
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn i2_s_round_trips_any_shape(n in 0usize..5, kb in 0usize..4, seed in any::<u64>(), bits in any::<u32>()) {
        let k = kb * i2s::BLOCK;
        let t = XorShift::new(seed).ternary(n * k);
        let scale = f32::from_bits(bits);
        let mut out = vec![0u8; i2_s_bytes(n, k).unwrap()];
        encode_i2_s(&t, n, k, scale, &mut out).unwrap();
        let mut t2 = vec![0i8; n * k];
        let s2 = decode_i2_s(&out, n, k, &mut t2).unwrap();
        prop_assert_eq!(s2.to_bits(), bits);
        prop_assert_eq!(t2, t);
    }
}
