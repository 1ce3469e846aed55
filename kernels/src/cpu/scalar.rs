//! The scalar reference: the definition of correct for every other implementation.
//!
//! Both functions compute raw, unscaled dot products over the padded K:
//! * `w2a8`: `out[i·ldo + j] = Σ_c code(w_j, c) · x[i·ldx + c]` with codes in {0, 1, 2}
//!   (the driver subtracts `Σ x` to turn codes back into weights);
//! * `f32`: `out[i·ldo + j] = Σ_c w_j[c] · x[i·ldx + c]` with `w ∈ {−1, 0, +1}`, summed in
//!   column order by adding, subtracting or skipping.
//!
//! Safety contract shared by every ISA (see [`super::dispatch::W2a8Fn`]): `w` points at `n`
//! rows of `row_bytes` bytes; `x` at `m` rows of stride `ldx ≥ 4·row_bytes`; `out` at `m` rows
//! of stride `ldo ≥ n` that no one else touches during the call.

use crate::format::i2::{BLOCK, BLOCK_BYTES};

/// # Safety
/// See the module docs.
#[allow(clippy::too_many_arguments)] // the raw-kernel contract shared by every ISA
pub(crate) unsafe fn w2a8(
    w: *const u8,
    row_bytes: usize,
    n: usize,
    x: *const i8,
    ldx: usize,
    m: usize,
    out: *mut i32,
    ldo: usize,
) {
    for i in 0..m {
        // SAFETY: row i of x holds 4·row_bytes readable values (contract).
        let xr = unsafe { std::slice::from_raw_parts(x.add(i * ldx), row_bytes * 4) };
        for j in 0..n {
            // SAFETY: row j of w holds row_bytes readable bytes (contract).
            let wr = unsafe { std::slice::from_raw_parts(w.add(j * row_bytes), row_bytes) };
            let mut acc = 0i32;
            for (b, block) in wr.chunks_exact(BLOCK_BYTES).enumerate() {
                for s in 0..4 {
                    for (jj, &byte) in block.iter().enumerate() {
                        let code = i32::from((byte >> (2 * s)) & 3);
                        acc += code * i32::from(xr[b * BLOCK + 32 * s + jj]);
                    }
                }
            }
            // SAFETY: (i, j) lies inside the caller's exclusive output tile.
            unsafe { *out.add(i * ldo + j) = acc };
        }
    }
}

/// # Safety
/// See the module docs.
#[allow(clippy::too_many_arguments)] // the raw-kernel contract shared by every ISA
pub(crate) unsafe fn f32(
    w: *const u8,
    row_bytes: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
) {
    for i in 0..m {
        // SAFETY: row i of x holds 4·row_bytes readable values (contract).
        let xr = unsafe { std::slice::from_raw_parts(x.add(i * ldx), row_bytes * 4) };
        for j in 0..n {
            // SAFETY: row j of w holds row_bytes readable bytes (contract).
            let wr = unsafe { std::slice::from_raw_parts(w.add(j * row_bytes), row_bytes) };
            let mut acc = 0f32;
            for (c, &xv) in xr.iter().enumerate() {
                match crate::format::i2::code_at(wr, c) {
                    2 => acc += xv,
                    0 => acc -= xv,
                    _ => {}
                }
            }
            // SAFETY: (i, j) lies inside the caller's exclusive output tile.
            unsafe { *out.add(i * ldo + j) = acc };
        }
    }
}
