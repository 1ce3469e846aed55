//! Trit tensors: N-d arrays of balanced-ternary digits (−1, 0, +1) on the CPU, packed four per
//! byte, with NumPy-style broadcasting and views over the kernel crate's packed trit kernels
//! (`ternary_kernels::trit`). See [`TritTensor`].

mod convert;
mod fmt;
mod ops;
mod tensor;

pub use ops::broadcast_shape;
pub use tensor::TritTensor;
pub use ternary_kernels::trit::{BinaryOp, TritCounts, UnaryOp};
