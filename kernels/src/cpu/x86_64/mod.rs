//! x86-64 kernels. Each file has one `#[target_feature]` entry point per operation; the tiles
//! they call are `#[inline(always)]` so they compile with the entry point's features.

pub(crate) mod avx2;
pub(crate) mod avx512;
