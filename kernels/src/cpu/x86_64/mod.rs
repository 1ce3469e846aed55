//! x86-64 kernels. Each file has one `#[target_feature]` entry point per operation; the tiles
//! they call are `#[inline(always)]` so they compile with the entry point's features.

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod dense;

/// Whether the scale group being summed ends at column `end` of a row of `kp` columns: at
/// every multiple of the group size, and at the end of the (ragged) last group.
#[inline(always)]
fn group_ends(end: usize, size: usize, kp: usize) -> bool {
    end.is_multiple_of(size) || end == kp
}
