//! Errors at the boundary of the Burn integration.

use thiserror::Error;

/// Errors of `burn-ternary`. Shape contract violations inside tensor code panic with the
/// values instead, as Burn's own ops do.
#[derive(Debug, Error)]
pub enum TernaryError {
    /// Packing a layer failed (typically a NaN/Inf weight giving a non-finite scale).
    #[error("cannot pack {layer}: {source}")]
    Pack {
        /// Which layer.
        layer: String,
        /// The kernel crate's reason.
        #[source]
        source: ternary_kernels::KernelError,
    },
    /// Batch norm could not be folded into a packed layer.
    #[error("cannot fold batch norm into {layer}: {reason}")]
    Fold {
        /// Which layer.
        layer: String,
        /// Why, with the offending values.
        reason: String,
    },
}
