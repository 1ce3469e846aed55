//! Errors of the kernel crate: one enum for every fallible boundary (quantizers, formats, kernels).

use thiserror::Error;

/// Everything that can go wrong in `ternary-kernels`. Every variant names the offending values.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum KernelError {
    /// An input value that must be finite was NaN or ±Inf.
    #[error("non-finite value {value} at index {index} of {what}")]
    NonFinite {
        /// Which input held the value.
        what: &'static str,
        /// Flat index of the value.
        index: usize,
        /// The value itself.
        value: f32,
    },
    /// A slice does not have the length its declared shape needs.
    #[error("{what}: expected {expected} elements, got {actual}")]
    Length {
        /// Which slice.
        what: &'static str,
        /// Length implied by the shape.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// Two operands disagree on a dimension.
    #[error("shape mismatch: {what} ({left} vs {right})")]
    Shape {
        /// Which dimension.
        what: &'static str,
        /// First operand's size.
        left: usize,
        /// Second operand's size.
        right: usize,
    },
    /// An i8 value that should be ternary is not in {-1, 0, +1}.
    #[error("value {value} at index {index} is not ternary (-1, 0 or +1)")]
    NotTernary {
        /// Flat index of the value.
        index: usize,
        /// The value.
        value: i8,
    },
    /// A quantised activation lies outside [−127, 127] (−128 has no positive twin).
    #[error("activation {value} at index {index} is outside [-127, 127]")]
    ActivationRange {
        /// Flat index.
        index: usize,
        /// The value.
        value: i8,
    },
    /// A scale is negative, NaN or infinite.
    #[error("invalid scale {value} at index {index}")]
    BadScale {
        /// Index of the scale.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A group size of [`crate::Scales::PerGroup`] is not one of
    /// [`crate::format::GROUP_SIZES`] (64, 128, 256).
    #[error("unsupported scale group size {group_size} (expected 64, 128 or 256 columns)")]
    BadGroupSize {
        /// The group size given.
        group_size: usize,
    },
    /// The reduction length exceeds what the integer accumulator can hold exactly.
    #[error("K = {k} exceeds the exact-accumulation bound {max} of the W2A8 kernels")]
    KTooLarge {
        /// Requested K.
        k: usize,
        /// The bound, see [`crate::MAX_K_W2A8`].
        max: usize,
    },
    /// A serialised buffer ended before the data it declares.
    #[error(
        "buffer too short: {what} needs {needed} bytes at offset {offset}, only {available} left"
    )]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Byte offset of the read.
        offset: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A serialised buffer has bytes after its payload.
    #[error("{extra} trailing bytes after the payload at offset {offset}")]
    TrailingBytes {
        /// Offset where the payload ended.
        offset: usize,
        /// How many bytes follow.
        extra: usize,
    },
    /// The buffer does not start with the format's magic bytes.
    #[error("bad magic {found:02x?}, expected {expected:02x?}")]
    BadMagic {
        /// Bytes found.
        found: [u8; 4],
        /// Bytes expected.
        expected: [u8; 4],
    },
    /// A header field holds a value this version does not know.
    #[error("unsupported {field} {value} in header")]
    Unsupported {
        /// The header field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A serialized matrix declares rows but no columns: no bytes back the claim.
    #[error("a serialized {n} x 0 matrix: rows without columns are refused")]
    EmptyRows {
        /// Declared rows.
        n: u64,
    },
    /// Declared dimensions overflow the address space.
    #[error("shape {n} x {k} overflows")]
    ShapeOverflow {
        /// Rows.
        n: u64,
        /// Columns.
        k: u64,
    },
    /// A convolution's stride, dilation, kernel size or group count is zero.
    #[error("conv2d {what} is zero")]
    ConvZero {
        /// Which parameter (`"stride"`, `"dilation"`, `"kernel"` or `"groups"`).
        what: &'static str,
    },
    /// A convolution's group count does not divide one of its channel counts.
    #[error("conv2d groups = {groups} does not divide {what} = {channels}")]
    ConvGroups {
        /// Which channel count (`"in_channels"` or `"out_channels"`).
        what: &'static str,
        /// The group count.
        groups: usize,
        /// The channel count.
        channels: usize,
    },
    /// A convolution's dilated kernel is larger than its zero-padded input along one axis.
    #[error("conv2d kernel extent {extent} exceeds the padded input {padded} along the {axis}")]
    ConvKernelTooLarge {
        /// `"height"` or `"width"`.
        axis: &'static str,
        /// `dilation · (kernel − 1) + 1`.
        extent: usize,
        /// `size + 2 · padding`.
        padded: usize,
    },
    /// A max-pooling window that cannot be applied to its input.
    #[error(
        "max_pool2d: {what} (kernel {kernel:?}, stride {stride:?}, padding {padding:?}, input {input:?})"
    )]
    Pool {
        /// What is wrong.
        what: &'static str,
        /// Window `[kh, kw]`.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// Padding.
        padding: [usize; 2],
        /// Input plane `[h, w]`.
        input: [usize; 2],
    },
    /// A packed code is not a valid trit (2-bit code 3, or a base-3 byte above 242).
    #[error("invalid trit code {code} at byte offset {offset}")]
    BadCode {
        /// Byte offset within the payload.
        offset: usize,
        /// The code (2-bit value, or whole base-3 byte).
        code: u8,
    },
    /// A length is not a whole number of a format's blocks.
    #[error("{what}: {len} is not a multiple of the block size {block}")]
    NotBlockMultiple {
        /// Which length.
        what: &'static str,
        /// The length given.
        len: usize,
        /// The block size it must be a multiple of.
        block: usize,
    },
    /// A padding lane of a packed trit buffer (past its length) holds something other than
    /// the code of 0.
    #[error("packed trits: padding lane {index} holds code {code}, not the code of 0")]
    TritPadding {
        /// Lane index (≥ the buffer's length).
        index: usize,
        /// The code found (2-bit, or a base-3 digit for the 5-per-byte storage).
        code: u8,
    },
    /// A threshold is negative, NaN or infinite.
    #[error("invalid threshold {value} (must be finite and >= 0)")]
    BadThreshold {
        /// The threshold given.
        value: f32,
    },
    /// A minimum or maximum over no elements.
    #[error("{what} over {rows} rows of zero elements has no value")]
    EmptyReduction {
        /// Which reduction (`"min"` or `"max"`).
        what: &'static str,
        /// Rows asked for.
        rows: usize,
    },
    /// Padding past K in a row holds something other than a zero weight.
    #[error("non-zero padding at row {row}, column {col}")]
    BadPadding {
        /// Row.
        row: usize,
        /// Column (≥ K).
        col: usize,
    },
}

/// Result alias of the kernel crate.
pub type Result<T> = std::result::Result<T, KernelError>;
