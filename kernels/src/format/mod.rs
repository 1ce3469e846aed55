//! Packed ternary weight formats and their serialised form.

pub mod gguf;
mod header;
pub mod hf_bitnet;
pub mod i2;
pub mod i2s;
mod scales;
pub mod t1;
pub mod tq;

pub use i2::{PackedI2, PackedI2Ref};
pub use scales::{GROUP_SIZES, Scales, check_group_size, flat_group_size, group_count};
pub use t1::PackedT1;
