//! The loop nest shared by every ISA: register tiles of `MR × NR` outputs over an `m × n`
//! block, with the remainder rows and columns handled by smaller instantiations of the same
//! tile. Each ISA's `tile::<MR, NR>` computes full-K dot products for its tile.
//!
//! It is a macro rather than a generic function so each expansion sits inside the ISA's
//! `#[target_feature]` entry point and its tiles inline there.

/// Expands to the tile loops. `$tile` is a path to `unsafe fn tile<const MR, const NR>(w,
/// row_bytes, x, ldx, out, ldo)`; `$gemv_nr` is the tile width for a single activation row,
/// `$nr` the width for `m > 1` (tiles there are 4 rows high).
macro_rules! drive_tiles {
    ($tile:ident, $w:expr, $row_bytes:expr, $n:expr, $x:expr, $ldx:expr, $m:expr,
     $out:expr, $ldo:expr, gemv_nr = $gemv_nr:literal, nr = $nr:literal) => {{
        let (w, rb, n, x, ldx, m, out, ldo) = ($w, $row_bytes, $n, $x, $ldx, $m, $out, $ldo);
        if m == 1 {
            let full = n / $gemv_nr * $gemv_nr;
            for j in (0..full).step_by($gemv_nr) {
                $tile::<1, $gemv_nr>(w.add(j * rb), rb, x, ldx, out.add(j), ldo);
            }
            for j in full..n {
                $tile::<1, 1>(w.add(j * rb), rb, x, ldx, out.add(j), ldo);
            }
        } else {
            // Rows of x outer: a 4-row tile of int8 activations (4·K bytes) stays in L1 while
            // every weight row of the task streams past it from L2.
            let full_n = n / $nr * $nr;
            let mut i = 0;
            while i < m {
                let xi = x.add(i * ldx);
                let rows = (m - i).min(4);
                for j in (0..full_n).step_by($nr) {
                    let (wj, oi) = (w.add(j * rb), out.add(i * ldo + j));
                    match rows {
                        1 => $tile::<1, $nr>(wj, rb, xi, ldx, oi, ldo),
                        2 => $tile::<2, $nr>(wj, rb, xi, ldx, oi, ldo),
                        3 => $tile::<3, $nr>(wj, rb, xi, ldx, oi, ldo),
                        _ => $tile::<4, $nr>(wj, rb, xi, ldx, oi, ldo),
                    }
                }
                for j in full_n..n {
                    let (wj, oi) = (w.add(j * rb), out.add(i * ldo + j));
                    match rows {
                        1 => $tile::<1, 1>(wj, rb, xi, ldx, oi, ldo),
                        2 => $tile::<2, 1>(wj, rb, xi, ldx, oi, ldo),
                        3 => $tile::<3, 1>(wj, rb, xi, ldx, oi, ldo),
                        _ => $tile::<4, 1>(wj, rb, xi, ldx, oi, ldo),
                    }
                }
                i += 4;
            }
        }
    }};
}

pub(crate) use drive_tiles;
