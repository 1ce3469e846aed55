//! Hugging Face BitNet packed weights (`transformers`' `integrations/bitnet.py`,
//! `pack_weights` / `unpack_weights`), as a pure codec.
//!
//! A ternary `[out, in]` weight is stored as `uint8 [R, in]` with `R = ⌈out / 4⌉`: the
//! **output axis** is packed, in four contiguous blocks of `R` rows (not interleaved). Byte
//! `[r, c]` (offset `r·in + c`) holds, each as the 2-bit code `w + 1`:
//!
//! ```text
//! bits 1..0: row r     bits 3..2: row r + R     bits 5..4: row r + 2R     bits 7..6: row r + 3R
//! ```
//!
//! The column axis is untouched. When `out` is not a multiple of 4 the fields of rows
//! `out..4R` are 0 (`pack_weights` zero-fills; `unpack_weights` would read them as −1 rows,
//! and neither of transformers' layer classes can load such a tensor). Code 3 has no ternary
//! meaning (`unpack_weights` reads it as +2) and is refused. The per-tensor `weight_scale`
//! lives in its own tensor; see the importer for its two conventions.
//!
//! Verified against fixtures written by transformers 5.24 itself (`fixtures/hf_bitnet/`).

use super::tq::check_output;
use crate::error::{KernelError, Result};

/// Packed rows of an `out`-row weight: `⌈out / 4⌉`.
pub fn packed_rows(out: usize) -> usize {
    out.div_ceil(4)
}

/// Checks a packed buffer of `packed` bytes and a code buffer of `codes` values against an
/// `out × cols` weight; returns the packed row count `⌈out/4⌉`.
fn check_lengths(packed: usize, codes: usize, out: usize, cols: usize) -> Result<usize> {
    let r = packed_rows(out);
    let overflow = KernelError::ShapeOverflow {
        n: out as u64,
        k: cols as u64,
    };
    let expected = r.checked_mul(cols).ok_or(overflow.clone())?;
    check_output("packed Hugging Face BitNet weight", packed, expected)?;
    check_output("codes", codes, out.checked_mul(cols).ok_or(overflow)?)?;
    Ok(r)
}

/// Decodes a packed `uint8 [⌈out/4⌉, cols]` weight into `out × cols` codes in {−1, 0, +1}.
///
/// # Errors
/// [`KernelError::Length`] when `packed` or `codes` has the wrong length;
/// [`KernelError::BadCode`] for a code 3 (its byte offset); [`KernelError::BadPadding`] for a
/// non-zero field of a row past `out` (`row` is the unpacked row index).
pub fn unpack(packed: &[u8], out: usize, cols: usize, codes: &mut [i8]) -> Result<()> {
    let r = check_lengths(packed.len(), codes.len(), out, cols)?;
    if let Some(offset) = packed.iter().position(|&b| b & (b >> 1) & 0x55 != 0) {
        return Err(KernelError::BadCode { offset, code: 3 });
    }
    if cols == 0 {
        return Ok(());
    }
    for (rr, src) in packed.chunks_exact(cols).enumerate() {
        for lane in 0..4 {
            let row = lane * r + rr;
            let shift = 2 * lane;
            if row < out {
                let dst = &mut codes[row * cols..(row + 1) * cols];
                for (d, &b) in dst.iter_mut().zip(src) {
                    *d = ((b >> shift) & 3) as i8 - 1;
                }
            } else if let Some(col) = src.iter().position(|&b| (b >> shift) & 3 != 0) {
                return Err(KernelError::BadPadding { row, col });
            }
        }
    }
    Ok(())
}

/// Packs `out × cols` codes in {−1, 0, +1} into `uint8 [⌈out/4⌉, cols]` (the layout of
/// `pack_weights`, padding fields zero).
///
/// # Errors
/// [`KernelError::Length`] for wrong lengths; [`KernelError::NotTernary`] naming the first
/// code outside {−1, 0, +1}.
pub fn pack(codes: &[i8], out: usize, cols: usize, packed: &mut [u8]) -> Result<()> {
    let r = check_lengths(packed.len(), codes.len(), out, cols)?;
    if let Some((index, &value)) = codes
        .iter()
        .enumerate()
        .find(|(_, c)| !(-1..=1).contains(*c))
    {
        return Err(KernelError::NotTernary { index, value });
    }
    packed.fill(0);
    if cols == 0 {
        return Ok(());
    }
    for (row, src) in codes.chunks_exact(cols).enumerate() {
        let (lane, rr) = (row / r, row % r);
        let dst = &mut packed[rr * cols..(rr + 1) * cols];
        for (d, &c) in dst.iter_mut().zip(src) {
            *d |= ((c + 1) as u8) << (2 * lane);
        }
    }
    Ok(())
}
