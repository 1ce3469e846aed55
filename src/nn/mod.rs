//! Ternary modules in the burn-nn style, and the one-call conversions of whole models.

mod activation;
mod conv2d;
mod fold;
mod freeze;
mod linear;
mod packing;
mod ternarize;

pub use activation::{TernaryActivation, TernaryActivationConfig};
pub use conv2d::{TernaryConv2d, TernaryConv2dConfig};
pub use fold::fold_batch_norm_conv2d;
pub use freeze::freeze;
pub(crate) use freeze::{freeze_with, freeze_with_scales};
pub use linear::{TernaryLinear, TernaryLinearConfig};
pub(crate) use packing::{pack, scheme_from_codes, to_tensors};
pub use ternarize::{Ternarizer, TernaryReparam, ternarize};
