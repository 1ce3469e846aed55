//! bitnet.cpp's `I2_S` tensor type (microsoft/BitNet), as a pure codec.
//!
//! `GGML_TYPE_I2_S` is type id **36** in the ggml fork bitnet.cpp builds
//! (`3rdparty/llama.cpp`, Eddie-Wang1120/llama.cpp; upstream ggml has no such type and
//! used 36 for a since-removed `IQ4_NL_4_4`). Unlike ggml's block types it carries **one f32
//! scale per tensor**, stored inside the tensor's data after the codes.
//!
//! # Layout of an `n × k` tensor (GGUF `ne = [k, n]`, row-major, `k` contiguous)
//!
//! ```text
//! bytes 0 .. n·k/4                 codes, 128-weight blocks of 32 bytes
//! bytes n·k/4 .. n·k/4 + 4         scale, f32 little-endian
//! bytes n·k/4 + 4 .. n·k/4 + 32    unused (alignment)
//! ```
//!
//! The flattened weights `w[0 .. n·k]` are cut into blocks of [`BLOCK`] = 128, block `b` in
//! bytes `32b .. 32b + 32`. Byte `32b + m` (0 ≤ m < 32) holds four weights, group `g`
//! (0..4) in bits `7 − 2g .. 6 − 2g`:
//!
//! ```text
//! byte 32b+m:  bits 7..6       bits 5..4          bits 3..2          bits 1..0
//!              w[128b + m]     w[128b + 32 + m]   w[128b + 64 + m]   w[128b + 96 + m]
//! ```
//!
//! Codes are `w + 1`: 0 → −1, 1 → 0, 2 → +1. The dequantized weight is `scale × w`.
//! (This is [`crate::format::i2`]'s layout with the four lanes in the opposite bit order and
//! no per-row padding.)
//!
//! Sources read (no bitnet.cpp build or converter output was available to check against):
//!
//! * `quantize_i2_s` in microsoft/BitNet `src/ggml-bitnet-mad.cpp`, x86 path (`QK_I2_S`
//!   = 128; `ACT_PARALLEL`, which `include/gemm-config.h` defines): writes
//!   `q8 << (6 − 2·(j / 32))` into byte `j % 32` of block `i`, with `q8` = 1 when
//!   `|x| < 1e-6`, else 2 or 0 by sign; `i2_scale = max |x|` over the whole tensor (a
//!   double, stored as f32 at `dst + n/4`); returns `nrow · row_size / 4 + 32`. The 28 bytes
//!   after the scale are never written by it.
//! * `dequantize_row_i2_s` in the fork's `ggml/src/ggml-quants.c`: the same 128 / 32
//!   layout, `map2bit = {−1, 0, +1, 0}`.
//! * `ggml_nbytes` in the fork's `ggml/src/ggml.c`: for `GGML_TYPE_I2_S` (whose type traits
//!   claim `blck_size = 1`, `type_size = 1`) the size is `n·k / 4 + 32`.
//! * The AVX2 `ggml_vec_dot_i2_i8_s` reads rows at `row · k / 4` bytes in 32-byte blocks of
//!   128 weights and multiplies the raw codes 0..3 with the activations (the −1 offset is
//!   applied through the activation sum), so a row must be a whole number of blocks.
//!
//! Decisions that follow:
//!
//! * `k` must be a multiple of 128 ([`KernelError::NotBlockMultiple`]): the kernel above
//!   cannot run anything else, and `quantize_i2_s` silently drops a ragged tail.
//! * Code 3 is refused ([`KernelError::BadCode`], byte offset): `dequantize_row_i2_s` reads
//!   it as 0 but the dot product as +2, so the file has no single meaning.
//! * The scale's bits are returned and written unchanged (−0, NaN, negative included);
//!   whether a scale is acceptable is the caller's decision. The unused 28 bytes are ignored
//!   on decode (the quantizer leaves whatever its buffer held) and written as zeros.
//! * Only the 128 / 32 layout is implemented. Built for ARM NEON, `quantize_i2_s` packs
//!   64-weight blocks of 16 bytes (groups of 16) instead, and the file does not say which it
//!   holds; microsoft/BitNet issues #585 and #598 report that published `I2_S` files use
//!   128 / 32 on every architecture and treat the NEON packing as a bug. A weight-parallel
//!   build (without `ACT_PARALLEL`) interleaves four rows per byte instead; it is not the
//!   default and not implemented either.

use super::tq::{check_output, check_payload, first_code3, first_non_ternary};
use crate::error::{KernelError, Result};

/// `GGML_TYPE_I2_S` in bitnet.cpp's ggml fork.
pub const GGML_TYPE_I2_S: u32 = 36;
/// Weights per block (bitnet.cpp's `QK_I2_S` on x86).
pub const BLOCK: usize = 128;
/// Bytes per block.
pub const BLOCK_BYTES: usize = BLOCK / 4;
/// Bytes after the codes: the f32 scale and 28 unused bytes.
pub const TRAILER_BYTES: usize = 32;

/// Size in bytes of an `n × k` `I2_S` tensor's data: `n·k / 4 + 32` (ggml's `ggml_nbytes`).
///
/// # Errors
/// [`KernelError::NotBlockMultiple`] when `k` is not a multiple of [`BLOCK`],
/// [`KernelError::ShapeOverflow`] when the size does not fit a `usize`.
pub fn i2_s_bytes(n: usize, k: usize) -> Result<usize> {
    if !k.is_multiple_of(BLOCK) {
        return Err(KernelError::NotBlockMultiple {
            what: "I2_S row length k",
            len: k,
            block: BLOCK,
        });
    }
    n.checked_mul(k / 4)
        .and_then(|codes| codes.checked_add(TRAILER_BYTES))
        .ok_or(KernelError::ShapeOverflow {
            n: n as u64,
            k: k as u64,
        })
}

/// Decodes an `n × k` `I2_S` tensor (layout in the module docs): writes the `n·k` weights,
/// row-major in {−1, 0, +1}, to `codes` and returns the per-tensor scale, so weight `i` is
/// `scale × codes[i]`.
///
/// # Errors
/// [`KernelError::NotBlockMultiple`] / [`KernelError::ShapeOverflow`] as [`i2_s_bytes`],
/// [`KernelError::Length`] when `codes.len() != n·k`, [`KernelError::Truncated`] /
/// [`KernelError::TrailingBytes`] when `bytes` is not exactly [`i2_s_bytes`] long,
/// [`KernelError::BadCode`] (code 3, the byte offset) for a code bitnet.cpp never writes.
/// On error `codes` holds unspecified values.
pub fn decode_i2_s(bytes: &[u8], n: usize, k: usize, codes: &mut [i8]) -> Result<f32> {
    let size = i2_s_bytes(n, k)?;
    let weights = (size - TRAILER_BYTES) * 4;
    check_output("I2_S codes (n·k)", codes.len(), weights)?;
    check_payload("I2_S tensor data", bytes.len(), size)?;
    let (payload, trailer) = bytes.split_at(size - TRAILER_BYTES);
    let (src, _) = payload.as_chunks::<BLOCK_BYTES>();
    let (dst, _) = codes.as_chunks_mut::<BLOCK>();
    for (b, (block, out)) in src.iter().zip(dst).enumerate() {
        let mut threes = 0u8;
        for g in 0..4 {
            for m in 0..32 {
                out[32 * g + m] = ((block[m] >> (6 - 2 * g)) & 3) as i8 - 1;
            }
        }
        for &q in block {
            threes |= q & (q >> 1);
        }
        if threes & 0x55 != 0 {
            return Err(first_code3(block, b * BLOCK_BYTES));
        }
    }
    Ok(f32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]))
}

/// Encodes `n × k` row-major weights in {−1, 0, +1} and a per-tensor `scale` as `I2_S`
/// tensor data (layout in the module docs) into `out`, which must be [`i2_s_bytes`] long.
/// The scale's bits are stored unchanged; the 28 unused bytes are zeroed.
///
/// # Errors
/// [`KernelError::NotBlockMultiple`] / [`KernelError::ShapeOverflow`] as [`i2_s_bytes`],
/// [`KernelError::Length`] when `codes` or `out` has the wrong length,
/// [`KernelError::NotTernary`] (its flat index) for a value outside {−1, 0, +1}. On error
/// `out` holds unspecified bytes.
pub fn encode_i2_s(codes: &[i8], n: usize, k: usize, scale: f32, out: &mut [u8]) -> Result<()> {
    let size = i2_s_bytes(n, k)?;
    check_output("I2_S codes (n·k)", codes.len(), (size - TRAILER_BYTES) * 4)?;
    check_output("I2_S output bytes", out.len(), size)?;
    let (payload, trailer) = out.split_at_mut(size - TRAILER_BYTES);
    let (src, _) = codes.as_chunks::<BLOCK>();
    let (dst, _) = payload.as_chunks_mut::<BLOCK_BYTES>();
    for (b, (c, block)) in src.iter().zip(dst).enumerate() {
        let max = c
            .iter()
            .fold(0u8, |acc, &t| acc.max((t as u8).wrapping_add(1)));
        if max > 2 {
            return Err(first_non_ternary(c, b * BLOCK));
        }
        for m in 0..32 {
            let mut byte = 0u8;
            for g in 0..4 {
                byte |= (c[32 * g + m] as u8).wrapping_add(1) << (6 - 2 * g);
            }
            block[m] = byte;
        }
    }
    trailer.fill(0);
    trailer[..4].copy_from_slice(&scale.to_le_bytes());
    Ok(())
}

/// A byte with its four 2-bit lanes in reverse order: I2's lane `l` is I2_S's lane `3 − l`.
/// Reversing twice is the identity.
const REVERSED_LANES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let v = b as u8;
        t[b] = (v & 3) << 6 | ((v >> 2) & 3) << 4 | ((v >> 4) & 3) << 2 | v >> 6;
        b += 1;
    }
    t
};

/// Writes an `I2_S` tensor straight from [`crate::PackedI2`] rows of a matrix whose row
/// length is a multiple of 128 (no padding, rows back to back): the two layouts differ only in
/// the order of the four lanes of each byte.
///
/// `i2`: `n·k/4` bytes ([`crate::PackedI2::data`]); `out`: `n·k/4 + 32` bytes.
///
/// # Errors
/// [`KernelError::Length`] when `out` is not `i2.len() + 32` bytes.
pub fn i2_s_from_i2(i2: &[u8], scale: f32, out: &mut [u8]) -> Result<()> {
    check_output("I2_S output", out.len(), i2.len() + TRAILER_BYTES)?;
    let (codes, trailer) = out.split_at_mut(i2.len());
    for (d, &s) in codes.iter_mut().zip(i2) {
        *d = REVERSED_LANES[s as usize];
    }
    trailer.fill(0);
    trailer[..4].copy_from_slice(&scale.to_le_bytes());
    Ok(())
}

/// Reads an `I2_S` tensor straight into [`crate::PackedI2`] rows (the inverse of
/// [`i2_s_from_i2`]) and returns its scale.
///
/// # Errors
/// [`KernelError::Truncated`] / [`KernelError::TrailingBytes`] when `bytes` is not
/// `i2.len() + 32` long; [`KernelError::BadCode`] for a code 3, at its byte offset.
pub fn i2_s_to_i2(bytes: &[u8], i2: &mut [u8]) -> Result<f32> {
    check_payload("I2_S tensor", bytes.len(), i2.len() + TRAILER_BYTES)?;
    let (codes, trailer) = bytes.split_at(i2.len());
    if codes
        .iter()
        .fold(0u8, |acc, &q| acc | (q & (q >> 1) & 0x55))
        != 0
    {
        return Err(first_code3(codes, 0));
    }
    for (d, &s) in i2.iter_mut().zip(codes) {
        *d = REVERSED_LANES[s as usize];
    }
    Ok(f32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]))
}
