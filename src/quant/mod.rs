//! Quantization schemes and the straight-through fake quantization built from tensor ops.

mod fake;
mod scheme;

pub use fake::{fake_quantize_activations, fake_ternarize, ternarize};
pub(crate) use fake::{group_means_expanded, ternarize_for_packing, to_rows};
pub use scheme::{ActivationQuant, Granularity, TernaryQuantizer};
