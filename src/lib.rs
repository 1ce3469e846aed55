//! # burn-ternary
//!
//! The Burn 0.22 integration of the `ternary-kernels` crate.
#![warn(missing_docs)]

pub use ternary_kernels as kernels;
