//! The `#[backend_extension]` that makes packed ternary ops native Burn ops: the trait, one
//! file per backend implementation, and a reference built from plain primitive ops.

mod autodiff;
#[cfg(feature = "cube")]
mod cube;
mod extension;
mod flex;
pub(crate) mod reference;
#[cfg(feature = "remote")]
pub mod remote;

pub use extension::TernaryBackend;
