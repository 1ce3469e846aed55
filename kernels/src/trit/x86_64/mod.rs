//! x86-64 trit kernels. Each file wraps its register type in a private newtype that
//! implements [`super::logic::Lanes`], so the formulas of `logic.rs` compile to that ISA's
//! instructions inside the file's `#[target_feature]` entry points; tails go to the scalar
//! twin.

pub(crate) mod avx2;
pub(crate) mod avx512;
