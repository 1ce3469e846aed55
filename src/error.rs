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

/// A [`crate::trit::TritTensor`] operation that cannot be done, naming the shapes or values.
#[derive(Debug, Error)]
pub enum TritError {
    /// Shapes that do not broadcast (or do not fit the operation).
    #[error("{op}: shapes {lhs:?} and {rhs:?} do not broadcast")]
    Shape {
        /// The operation.
        op: &'static str,
        /// The first operand's shape.
        lhs: Vec<usize>,
        /// The second operand's shape (or the target shape).
        rhs: Vec<usize>,
    },
    /// A buffer whose length is not the shape's element count.
    #[error("shape {shape:?} needs {} trits, the buffer holds {len}", shape.iter().product::<usize>())]
    Length {
        /// The shape asked for.
        shape: Vec<usize>,
        /// The elements given.
        len: usize,
    },
    /// An operation over no tensors (`cat` / `stack` of an empty list).
    #[error("{op} of no tensors")]
    Empty {
        /// The operation.
        op: &'static str,
    },
    /// A value that is not a trit, a non-finite float, a reduction over nothing: the kernel
    /// crate's error, which names the index and value.
    #[error(transparent)]
    Kernel(#[from] ternary_kernels::KernelError),
    /// A Burn integer tensor holding a value that is not a trit.
    #[error("value {value} at flat index {index} is not a trit (-1, 0, 1)")]
    NotTrit {
        /// Flat row-major index.
        index: usize,
        /// The value.
        value: i64,
    },
    /// Reading a Burn tensor's data failed.
    #[error("reading tensor data: {0}")]
    Data(String),
}
