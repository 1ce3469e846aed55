//! ggml's ternary block types `TQ2_0` and `TQ1_0` (llama.cpp / GGUF), as pure block codecs.
//!
//! Both types cut a tensor, flattened row-major (GGUF's `ne[0]` fastest), into blocks of
//! [`QK_K`] = 256 weights. Every block carries one scale `d`, an IEEE-754 binary16 stored
//! little-endian as the block's last two bytes, and every weight is `d × t` with the trit
//! `t ∈ {−1, 0, +1}` stored as the code `t + 1 ∈ {0, 1, 2}` (ggml's quantizer writes
//! `lroundf(x / d) + 1` with `d = max |x|` of the block, rounded to f16). These codecs move
//! trits and the raw bits of `d` and nothing else: a scale is never widened, rounded or
//! judged, so every one of the 65 536 f16 bit patterns (−0, subnormals, ±∞, NaN payloads)
//! survives a round trip, and deciding whether a scale is acceptable is the caller's job.
//! Layouts follow ggml's `block_tq1_0` / `block_tq2_0` (`ggml-common.h`) and
//! `quantize_row_tq{1,2}_0_ref` / `dequantize_row_tq{1,2}_0` (`ggml-quants.c`, "Ternary
//! (de)-quantization (BitNet b1.58 and TriLMs)"), read from ggml-org/llama.cpp.
//!
//! # `TQ2_0` (type id 35): 66 bytes per block, 2.0625 bits per weight
//!
//! ```text
//! bytes 0..64   qs   four 2-bit codes per byte
//! bytes 64..66  d    f16 scale, little-endian
//! ```
//!
//! The 256 weights are two halves of 128; half `h` lives in bytes `32h .. 32h + 32`, and
//! byte `32h + m` holds weight `128h + 32l + m` in bits `2l + 1 .. 2l` for `l = 0..4`
//! (lane 0 in the low bits). Code 3 is never written by ggml; its dequantizer would read it
//! as `2·d`, a weight no ternary format can hold, so [`decode_tq2_0`] refuses it with
//! [`KernelError::BadCode`] naming the byte offset.
//!
//! # `TQ1_0` (type id 34): 54 bytes per block, 1.6875 bits per weight
//!
//! ```text
//! bytes 0..48   qs   five trits per byte
//! bytes 48..52  qh   four trits per byte
//! bytes 52..54  d    f16 scale, little-endian
//! ```
//!
//! Weights go to bytes in three regions, each byte holding one weight from each of several
//! equal runs (stride = the region's byte count):
//!
//! | weights     | bytes     | byte `b + m` holds weights                    |
//! |-------------|-----------|-----------------------------------------------|
//! | `0..160`    | `0..32`   | `m + 32n` for trit `n = 0..5`                 |
//! | `160..240`  | `32..48`  | `160 + m + 16n` for `n = 0..5`                |
//! | `240..256`  | `48..52`  | `240 + m + 4n` for `n = 0..4`                 |
//!
//! A byte's trits `c₀ … c₄` (codes 0..2, `c₀` the most significant) form
//! `v = Σ cₙ·3^(4−n) ∈ 0..243`, stored as the fixed-point fraction `⌈v · 256 / 243⌉`; a `qh`
//! byte has only four trits, `c₄ = 0`. Trit `n` comes back as
//! `((byte · 3ⁿ mod 256) · 3) >> 8`: multiplying by `3ⁿ` (wrapping in a `u8`, as ggml's
//! `uint8_t` does) shifts trit `n` to the top of the fraction, and `· 3 >> 8` reads it off.
//!
//! **Bytes the encoder never writes are accepted.** Only 243 of the 256 `qs` values and 81
//! of the 256 `qh` values are ever produced, but ggml's dequantizer and its dot products
//! (`dequantize_row_tq1_0`, `ggml_vec_dot_tq1_0_q8_K_generic` and the SIMD twins, which all
//! apply the formula above) give every byte a meaning, and that meaning is always five valid
//! trits: `((q · 3) >> 8) ≤ 765 >> 8 = 2`. A file llama.cpp runs is therefore read with
//! exactly the weights llama.cpp uses, and nothing unrepresentable is let through. The cost
//! is that such a byte is not reproduced: re-encoding writes the canonical byte of the same
//! trits (and `0` as `qh`'s unused fifth trit), so decode→encode is byte-exact for every
//! payload ggml's quantizer writes and weight-exact for all payloads.
//!
//! # Shapes and errors
//!
//! All functions take whole blocks: `codes.len()` a multiple of 256 (else
//! [`KernelError::NotBlockMultiple`]), `scales.len()` = `codes.len() / 256` and the byte
//! slice exactly that many blocks long ([`KernelError::Length`]; a short payload to decode is
//! [`KernelError::Truncated`], a long one [`KernelError::TrailingBytes`]). Encoders refuse a
//! code outside {−1, 0, +1} with [`KernelError::NotTernary`] naming its index. On error the
//! output slices hold unspecified values (blocks before the offending one are written).
//! Each block is decoded and encoded without per-weight branches, in loops the compiler
//! vectorizes.

use crate::error::{KernelError, Result};

/// Weights per block of both types (ggml's `QK_K`).
pub const QK_K: usize = 256;
/// Bytes per `TQ1_0` block: 48 `qs` + 4 `qh` + 2 (`d`).
pub const TQ1_0_BLOCK_BYTES: usize = 54;
/// Bytes per `TQ2_0` block: 64 `qs` + 2 (`d`).
pub const TQ2_0_BLOCK_BYTES: usize = 66;
/// `GGML_TYPE_TQ1_0` in `ggml.h` and GGUF tensor infos.
pub const GGML_TYPE_TQ1_0: u32 = 34;
/// `GGML_TYPE_TQ2_0` in `ggml.h` and GGUF tensor infos.
pub const GGML_TYPE_TQ2_0: u32 = 35;

/// `3ⁿ` for the trit positions of a `TQ1_0` byte, in `u16` so the products vectorize.
const POW3: [u16; 5] = [1, 3, 9, 27, 81];

/// Decodes `TQ2_0` blocks (layout in the module docs) into trits and raw f16 scale bits.
///
/// `bytes` holds `scales.len()` blocks of [`TQ2_0_BLOCK_BYTES`]; `codes` receives their
/// `256 · scales.len()` weights in {−1, 0, +1} (weight `i` of block `b` at `256b + i`),
/// `scales[b]` the bits of block `b`'s `d`. The dequantized weight is `f16(d) × code`.
///
/// # Errors
/// [`KernelError::NotBlockMultiple`] / [`KernelError::Length`] when the output slices do
/// not describe whole blocks, [`KernelError::Truncated`] / [`KernelError::TrailingBytes`]
/// when `bytes` is shorter / longer than those blocks, [`KernelError::BadCode`] (code 3, the
/// byte offset into `bytes`) for a 2-bit code ggml never writes.
pub fn decode_tq2_0(bytes: &[u8], codes: &mut [i8], scales: &mut [u16]) -> Result<()> {
    let blocks = whole_blocks("TQ2_0", codes.len(), scales.len())?;
    check_payload("TQ2_0 blocks", bytes.len(), blocks * TQ2_0_BLOCK_BYTES)?;
    let (src, _) = bytes.as_chunks::<TQ2_0_BLOCK_BYTES>();
    let (dst, _) = codes.as_chunks_mut::<QK_K>();
    for (b, ((block, out), d)) in src.iter().zip(dst).zip(scales).enumerate() {
        if !decode_tq2_0_block(block, out) {
            return Err(first_code3(&block[..64], b * TQ2_0_BLOCK_BYTES));
        }
        *d = u16::from_le_bytes([block[64], block[65]]);
    }
    Ok(())
}

/// Encodes trits and raw f16 scale bits as `TQ2_0` blocks, the bytes ggml's
/// `quantize_row_tq2_0_ref` writes for weights `f16(d) × code`.
///
/// `codes` holds `256 · scales.len()` weights in {−1, 0, +1}; `out` receives
/// `scales.len()` blocks of [`TQ2_0_BLOCK_BYTES`].
///
/// # Errors
/// [`KernelError::NotBlockMultiple`] / [`KernelError::Length`] for slices that are not whole,
/// matching blocks, [`KernelError::NotTernary`] (its flat index) for a code outside
/// {−1, 0, +1}.
pub fn encode_tq2_0(codes: &[i8], scales: &[u16], out: &mut [u8]) -> Result<()> {
    let blocks = whole_blocks("TQ2_0", codes.len(), scales.len())?;
    check_output("TQ2_0 output bytes", out.len(), blocks * TQ2_0_BLOCK_BYTES)?;
    let (src, _) = codes.as_chunks::<QK_K>();
    let (dst, _) = out.as_chunks_mut::<TQ2_0_BLOCK_BYTES>();
    for (b, ((c, block), &d)) in src.iter().zip(dst).zip(scales).enumerate() {
        if !all_ternary(c) {
            return Err(first_non_ternary(c, b * QK_K));
        }
        for h in 0..2 {
            for m in 0..32 {
                let mut byte = 0u8;
                for l in 0..4 {
                    byte |= code_of(c[128 * h + 32 * l + m]) << (2 * l);
                }
                block[32 * h + m] = byte;
            }
        }
        block[64..].copy_from_slice(&d.to_le_bytes());
    }
    Ok(())
}

/// Decodes `TQ1_0` blocks (layout in the module docs) into trits and raw f16 scale bits.
///
/// Shapes as [`decode_tq2_0`] with [`TQ1_0_BLOCK_BYTES`] per block. Every byte value is
/// accepted and read as ggml reads it (see the module docs), so the only errors are about
/// lengths.
///
/// # Errors
/// [`KernelError::NotBlockMultiple`] / [`KernelError::Length`] when the output slices do
/// not describe whole blocks, [`KernelError::Truncated`] / [`KernelError::TrailingBytes`]
/// when `bytes` is shorter / longer than those blocks.
pub fn decode_tq1_0(bytes: &[u8], codes: &mut [i8], scales: &mut [u16]) -> Result<()> {
    let blocks = whole_blocks("TQ1_0", codes.len(), scales.len())?;
    check_payload("TQ1_0 blocks", bytes.len(), blocks * TQ1_0_BLOCK_BYTES)?;
    let (src, _) = bytes.as_chunks::<TQ1_0_BLOCK_BYTES>();
    let (dst, _) = codes.as_chunks_mut::<QK_K>();
    for ((block, out), d) in src.iter().zip(dst).zip(scales) {
        decode_tq1_0_block(block, out);
        *d = u16::from_le_bytes([block[52], block[53]]);
    }
    Ok(())
}

/// Encodes trits and raw f16 scale bits as `TQ1_0` blocks, the bytes ggml's
/// `quantize_row_tq1_0_ref` writes for weights `f16(d) × code`.
///
/// Shapes as [`encode_tq2_0`] with [`TQ1_0_BLOCK_BYTES`] per block.
///
/// # Errors
/// [`KernelError::NotBlockMultiple`] / [`KernelError::Length`] for slices that are not whole,
/// matching blocks, [`KernelError::NotTernary`] (its flat index) for a code outside
/// {−1, 0, +1}.
pub fn encode_tq1_0(codes: &[i8], scales: &[u16], out: &mut [u8]) -> Result<()> {
    let blocks = whole_blocks("TQ1_0", codes.len(), scales.len())?;
    check_output("TQ1_0 output bytes", out.len(), blocks * TQ1_0_BLOCK_BYTES)?;
    let (src, _) = codes.as_chunks::<QK_K>();
    let (dst, _) = out.as_chunks_mut::<TQ1_0_BLOCK_BYTES>();
    for (b, ((c, block), &d)) in src.iter().zip(dst).zip(scales).enumerate() {
        if !all_ternary(c) {
            return Err(first_non_ternary(c, b * QK_K));
        }
        // Horner over the run's trits, most significant first, so the first weight of a
        // byte's run is its top trit.
        for m in 0..32 {
            let mut v = 0u16;
            for n in 0..5 {
                v = 3 * v + code_of(c[m + 32 * n]) as u16;
            }
            block[m] = fraction_of(v);
        }
        for m in 0..16 {
            let mut v = 0u16;
            for n in 0..5 {
                v = 3 * v + code_of(c[160 + m + 16 * n]) as u16;
            }
            block[32 + m] = fraction_of(v);
        }
        for m in 0..4 {
            let mut v = 0u16;
            for n in 0..4 {
                v = 3 * v + code_of(c[240 + m + 4 * n]) as u16;
            }
            // Four trits in the top positions: the fifth (least significant) is 0.
            block[48 + m] = fraction_of(3 * v);
        }
        block[52..].copy_from_slice(&d.to_le_bytes());
    }
    Ok(())
}

/// Writes one block's 256 trits; false when some 2-bit code is 3.
#[inline(always)]
fn decode_tq2_0_block(block: &[u8; TQ2_0_BLOCK_BYTES], out: &mut [i8; QK_K]) -> bool {
    let mut threes = 0u8;
    for h in 0..2 {
        for l in 0..4 {
            for m in 0..32 {
                out[128 * h + 32 * l + m] = ((block[32 * h + m] >> (2 * l)) & 3) as i8 - 1;
            }
        }
    }
    for &q in &block[..64] {
        // A lane is 3 exactly when both of its bits are set.
        threes |= q & (q >> 1);
    }
    threes & 0x55 == 0
}

/// Writes one `TQ1_0` block's 256 trits (the three regions of the module docs).
#[inline(always)]
fn decode_tq1_0_block(block: &[u8; TQ1_0_BLOCK_BYTES], out: &mut [i8; QK_K]) {
    for (n, &p) in POW3.iter().enumerate() {
        for m in 0..32 {
            out[32 * n + m] = trit(block[m], p);
        }
    }
    for (n, &p) in POW3.iter().enumerate() {
        for m in 0..16 {
            out[160 + 16 * n + m] = trit(block[32 + m], p);
        }
    }
    for (n, &p) in POW3[..4].iter().enumerate() {
        for m in 0..4 {
            out[240 + 4 * n + m] = trit(block[48 + m], p);
        }
    }
}

/// The trit at weight `p = 3ⁿ` of a base-3 fraction byte, as −1, 0 or +1.
#[inline(always)]
fn trit(byte: u8, p: u16) -> i8 {
    // `& 0xFF` is ggml's wrap of the `uint8_t` product; the result is at most 2.
    let q = (byte as u16 * p) & 0xFF;
    ((q * 3) >> 8) as i8 - 1
}

/// `⌈v · 256 / 243⌉` for `v < 243`: `v · 256 ≤ 61 952` fits a `u16`, the result is ≤ 255.
#[inline(always)]
fn fraction_of(v: u16) -> u8 {
    (v * 256).div_ceil(243) as u8
}

/// The stored code of a trit already known to be in {−1, 0, +1}.
#[inline(always)]
fn code_of(t: i8) -> u8 {
    (t as u8).wrapping_add(1)
}

/// True when every value is in {−1, 0, +1}: one max over the block, no branch per value.
#[inline(always)]
fn all_ternary(c: &[i8; QK_K]) -> bool {
    c.iter().fold(0u8, |acc, &t| acc.max(code_of(t))) <= 2
}

/// Block count implied by the output / input slices of one call.
pub(crate) fn whole_blocks(what: &'static str, codes: usize, scales: usize) -> Result<usize> {
    if !codes.is_multiple_of(QK_K) {
        return Err(KernelError::NotBlockMultiple {
            what,
            len: codes,
            block: QK_K,
        });
    }
    let blocks = codes / QK_K;
    if scales != blocks {
        return Err(KernelError::Length {
            what: "scales (one per 256-weight block)",
            expected: blocks,
            actual: scales,
        });
    }
    Ok(blocks)
}

/// A payload to decode must be exactly `expected` bytes.
pub(crate) fn check_payload(what: &'static str, len: usize, expected: usize) -> Result<()> {
    if len < expected {
        return Err(KernelError::Truncated {
            what,
            offset: 0,
            needed: expected,
            available: len,
        });
    }
    if len > expected {
        return Err(KernelError::TrailingBytes {
            offset: expected,
            extra: len - expected,
        });
    }
    Ok(())
}

/// An output buffer must be exactly `expected` bytes.
pub(crate) fn check_output(what: &'static str, len: usize, expected: usize) -> Result<()> {
    if len != expected {
        return Err(KernelError::Length {
            what,
            expected,
            actual: len,
        });
    }
    Ok(())
}

/// The error for the first byte of `qs` holding a 2-bit code 3 (`base`: its offset).
#[cold]
pub(crate) fn first_code3(qs: &[u8], base: usize) -> KernelError {
    let at = qs
        .iter()
        .position(|&q| q & (q >> 1) & 0x55 != 0)
        .expect("the caller found a code 3");
    KernelError::BadCode {
        offset: base + at,
        code: 3,
    }
}

/// The error for the first value of `c` outside {−1, 0, +1} (`base`: its flat index).
#[cold]
pub(crate) fn first_non_ternary(c: &[i8], base: usize) -> KernelError {
    let (at, &value) = c
        .iter()
        .enumerate()
        .find(|&(_, &t)| !(-1..=1).contains(&t))
        .expect("the caller found a non-ternary value");
    KernelError::NotTernary {
        index: base + at,
        value,
    }
}

/// Bytes of 2-bit codes per `TQ2_0` block.
const TQ2_0_QS: usize = QK_K / 4;

/// Writes `TQ2_0` blocks straight from [`crate::PackedI2`] rows of a matrix whose row length
/// is a multiple of 256 (so its rows have no padding and lie back to back). The two layouts
/// agree byte for byte — byte `32h + m` of a 256-weight block holds weight `128h + 32l + m` in
/// lane `l` in both — so each block is its 64 code bytes and its scale bits.
///
/// `i2`: `blocks · 64` bytes ([`crate::PackedI2::data`]); `scales`: one f16 bit pattern per
/// block; `out`: `blocks · 66` bytes.
///
/// # Errors
/// [`KernelError::Length`] when the three lengths disagree.
pub fn tq2_0_from_i2(i2: &[u8], scales: &[u16], out: &mut [u8]) -> Result<()> {
    check_output("I2 rows for TQ2_0", i2.len(), scales.len() * TQ2_0_QS)?;
    check_output("TQ2_0 output", out.len(), scales.len() * TQ2_0_BLOCK_BYTES)?;
    for ((src, &d), dst) in i2
        .chunks_exact(TQ2_0_QS)
        .zip(scales)
        .zip(out.chunks_exact_mut(TQ2_0_BLOCK_BYTES))
    {
        dst[..TQ2_0_QS].copy_from_slice(src);
        dst[TQ2_0_QS..].copy_from_slice(&d.to_le_bytes());
    }
    Ok(())
}

/// Reads `TQ2_0` blocks straight into [`crate::PackedI2`] rows (the inverse of
/// [`tq2_0_from_i2`]): code bytes copied, scale bits to `scales`.
///
/// # Errors
/// [`KernelError::Length`] / [`KernelError::Truncated`] / [`KernelError::TrailingBytes`] for
/// mismatched lengths; [`KernelError::BadCode`] for a code 3, at its byte offset in `bytes`.
pub fn tq2_0_to_i2(bytes: &[u8], i2: &mut [u8], scales: &mut [u16]) -> Result<()> {
    check_output("I2 rows from TQ2_0", i2.len(), scales.len() * TQ2_0_QS)?;
    check_payload(
        "TQ2_0 blocks",
        bytes.len(),
        scales.len() * TQ2_0_BLOCK_BYTES,
    )?;
    for (b, ((src, dst), d)) in bytes
        .chunks_exact(TQ2_0_BLOCK_BYTES)
        .zip(i2.chunks_exact_mut(TQ2_0_QS))
        .zip(scales.iter_mut())
        .enumerate()
    {
        let qs = &src[..TQ2_0_QS];
        // A lane holds code 3 exactly when both of its bits are set.
        if qs.iter().fold(0u8, |acc, &q| acc | (q & (q >> 1) & 0x55)) != 0 {
            return Err(first_code3(qs, b * TQ2_0_BLOCK_BYTES));
        }
        dst.copy_from_slice(qs);
        *d = u16::from_le_bytes([src[TQ2_0_QS], src[TQ2_0_QS + 1]]);
    }
    Ok(())
}
