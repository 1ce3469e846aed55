#![doc = include_str!("guide.md")]

mod convert;
mod fmt;
mod ops;
mod tensor;

pub use ops::broadcast_shape;
pub use tensor::TritTensor;
pub use ternary_kernels::trit::{BinaryOp, TritCounts, UnaryOp};
