//! The GGUF container (ggml / llama.cpp's model file format, versions 2 and 3): a reader that
//! validates every claim a file makes before it believes it, and a deterministic writer.
//!
//! # Layout (all integers little-endian)
//!
//! | field | type |
//! |---|---|
//! | magic | `b"GGUF"` |
//! | version | `u32` — 3 is current; 2 has the same layout; 1 (32-bit counts) is refused |
//! | tensor count, metadata count | `u64`, `u64` |
//! | metadata | per entry: key (string), value type (`u32`), value |
//! | tensor infos | per tensor: name (string), `n_dims: u32` (≤ 4), `dims: [u64; n_dims]`, GGML type (`u32`), offset (`u64`) |
//! | padding | zeros up to a multiple of the alignment |
//! | tensor data | each tensor at `data_start + offset`, offsets multiples of the alignment |
//!
//! A string is a `u64` byte length and that many bytes (UTF-8 by the specification; metadata
//! string *values* are kept as raw bytes so that nothing is lost, keys and tensor names must be
//! UTF-8). The alignment is `general.alignment` (a `u32`, a non-zero power of two) or 32. Dims are
//! in ggml order: `dims[0]` is the contiguous axis (a PyTorch `[out, in]` weight has
//! `dims = [in, out]`); [`TensorInfo::shape`] gives the row-major shape.
//!
//! # What the reader checks
//!
//! Every count and length is checked against the bytes that remain before anything is allocated
//! from it; every tensor's type must be a GGML type this crate knows ([`GgmlType`]), its row
//! length a multiple of the type's block size, its element and byte counts must not overflow, its
//! offset must be aligned, its data must lie inside the file and must not overlap another tensor's.
//! Duplicate keys and tensor names, arrays nested deeper than [`MAX_ARRAY_DEPTH`], booleans other
//! than 0 or 1 are refused. Each refusal is a [`GgufError`] naming the key, tensor or offset.
//!
//! Reference: the GGUF specification in ggml's `docs/gguf.md`, and the `gguf` Python package's
//! reader and writer (the fixtures under `fixtures/gguf/` were written by it).

use std::io::{self, Read, Write};

use thiserror::Error;

/// The four magic bytes at the start of every GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The version this writer writes.
pub const GGUF_VERSION: u32 = 3;
/// Alignment of tensor data when `general.alignment` is absent, in bytes.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that sets the alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml's `GGML_MAX_DIMS`: the most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;
/// The largest `general.alignment` accepted (1 MiB). The specification allows any power of
/// two, but every file seen uses 32; a larger claim would make the writer pad with that many
/// zero bytes per tensor, so a tiny hostile file could demand gigabytes.
pub const MAX_ALIGNMENT: u32 = 1 << 20;
/// How deeply metadata arrays may nest (arrays of arrays of …); deeper files are refused so that
/// a hostile file cannot exhaust the stack.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Everything that can be wrong with a GGUF file or a tensor handed to the writer.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GgufError {
    /// The file does not start with `GGUF`.
    #[error("not a GGUF file: magic bytes {found:02x?}, expected \"GGUF\"")]
    BadMagic {
        /// The first four bytes (fewer when the file is shorter).
        found: Vec<u8>,
    },
    /// A version other than 2 or 3.
    #[error("GGUF version {version} is not supported (versions 2 and 3 are)")]
    Version {
        /// The version field.
        version: u32,
    },
    /// The file ends inside a field.
    #[error(
        "truncated GGUF: {what} needs {needed} bytes at offset {offset}, only {available} left"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Byte offset of the read.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// A count (tensors, metadata entries, array elements) larger than the rest of the file could
    /// possibly hold.
    #[error(
        "{what} at offset {offset} claims {count} entries, more than the {available} bytes left can hold"
    )]
    CountTooLarge {
        /// Which count.
        what: String,
        /// Byte offset of the count.
        offset: u64,
        /// The claimed count.
        count: u64,
        /// Bytes left after the count.
        available: u64,
    },
    /// A key or tensor name is not UTF-8.
    #[error("{what} at offset {offset} is not valid UTF-8")]
    Utf8 {
        /// Which string.
        what: String,
        /// Byte offset of its length field.
        offset: u64,
    },
    /// A metadata value type id outside 0..=12.
    #[error("metadata key {key:?}: unknown value type {id} at offset {offset}")]
    ValueType {
        /// The key.
        key: String,
        /// The type id.
        id: u32,
        /// Byte offset of the type id.
        offset: u64,
    },
    /// A boolean stored as something other than 0 or 1.
    #[error("metadata key {key:?}: boolean byte {value} at offset {offset} is neither 0 nor 1")]
    Bool {
        /// The key.
        key: String,
        /// The byte.
        value: u8,
        /// Its offset.
        offset: u64,
    },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`].
    #[error("metadata key {key:?}: arrays nested deeper than {max}")]
    Nesting {
        /// The key.
        key: String,
        /// The limit.
        max: usize,
    },
    /// A metadata array handed to the writer whose elements are not all of its declared type, or
    /// that nests deeper than [`MAX_ARRAY_DEPTH`].
    #[error(
        "metadata key {key:?}: array elements differ from the declared element type or nest too deeply"
    )]
    ArrayType {
        /// The key.
        key: String,
    },
    /// The same metadata key twice.
    #[error("metadata key {key:?} appears twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// `general.alignment` is not a `u32` non-zero power of two of at most [`MAX_ALIGNMENT`].
    #[error("general.alignment must be a u32 power of two from 1 to 1 MiB, found {value}")]
    Alignment {
        /// The value, as written.
        value: String,
    },
    /// The same tensor name twice.
    #[error("tensor name {name:?} appears twice")]
    DuplicateTensor {
        /// The name.
        name: String,
    },
    /// A GGML type id this crate does not know (a newer ggml, or a fork's private type).
    #[error("tensor {name:?}: unknown GGML type id {id}")]
    UnknownType {
        /// The tensor.
        name: String,
        /// The type id.
        id: u32,
    },
    /// More than [`MAX_DIMS`] dimensions.
    #[error("tensor {name:?}: {n_dims} dimensions, at most 4 are allowed")]
    TooManyDims {
        /// The tensor.
        name: String,
        /// The claimed count.
        n_dims: u32,
    },
    /// The element or byte count of a tensor overflows 64 bits.
    #[error("tensor {name:?}: dims {dims:?} overflow")]
    DimsOverflow {
        /// The tensor.
        name: String,
        /// Its dims (ggml order).
        dims: Vec<u64>,
    },
    /// A row length that is not a whole number of the type's blocks.
    #[error("tensor {name:?}: row length {row} is not a multiple of the {ty} block size {block}")]
    PartialBlock {
        /// The tensor.
        name: String,
        /// `dims[0]`.
        row: u64,
        /// The type's name.
        ty: &'static str,
        /// Its block size in elements.
        block: u64,
    },
    /// A tensor offset that is not a multiple of the alignment.
    #[error("tensor {name:?}: offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned {
        /// The tensor.
        name: String,
        /// Its offset (relative to the data section).
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// A tensor's data extends past the end of the file.
    #[error(
        "tensor {name:?}: data at file bytes [{start}, {end}) lies outside the file's {len} bytes"
    )]
    OutOfRange {
        /// The tensor.
        name: String,
        /// Absolute start offset.
        start: u64,
        /// Absolute end offset (exclusive).
        end: u64,
        /// File length.
        len: u64,
    },
    /// Two tensors' data overlap.
    #[error(
        "tensors {first:?} and {second:?} overlap: data offsets {first_offset} (+{first_len} bytes) and {second_offset}"
    )]
    Overlap {
        /// The tensor with the lower offset.
        first: String,
        /// Its offset.
        first_offset: u64,
        /// Its byte length.
        first_len: u64,
        /// The tensor that starts inside it.
        second: String,
        /// Its offset.
        second_offset: u64,
    },
    /// The writer was given data of the wrong length for a tensor's type and dims.
    #[error("tensor {name:?}: {ty} with dims {dims:?} needs {expected} bytes, {actual} given")]
    DataLength {
        /// The tensor.
        name: String,
        /// Its type.
        ty: &'static str,
        /// Its dims.
        dims: Vec<u64>,
        /// Bytes the type and dims need.
        expected: u64,
        /// Bytes given.
        actual: u64,
    },
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, GgufError>;

/// A GGML tensor type, by its id in ggml's `enum ggml_type` (and `gguf.GGMLQuantizationType`).
///
/// Only ids whose block layout is known are representable; [`GgmlType::from_id`] refuses the rest.
/// The ternary types are `TQ1_0` (34) and `TQ2_0` (35) from llama.cpp, and `I2_S` (36) from
/// bitnet.cpp's ggml fork (its byte size is not block-based: see [`GgmlType::byte_size`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType {
    id: u32,
    name: &'static str,
    block: u64,
    type_size: u64,
}

/// `(id, name, elements per block, bytes per block)`, as in ggml's type traits
/// (`GGML_QUANT_SIZES` of the `gguf` package); `I2_S` adds a 32-byte trailer per tensor.
const TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (36, "I2_S", 128, 32),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

impl GgmlType {
    /// `F32`: little-endian IEEE binary32.
    pub const F32: GgmlType = GgmlType::known(0);
    /// `F16`: little-endian IEEE binary16.
    pub const F16: GgmlType = GgmlType::known(1);
    /// `BF16`: the upper half of a binary32.
    pub const BF16: GgmlType = GgmlType::known(30);
    /// `TQ1_0`: 256 trits in 54 bytes (base-3 packing, one f16 scale).
    pub const TQ1_0: GgmlType = GgmlType::known(34);
    /// `TQ2_0`: 256 trits in 66 bytes (2 bits each, one f16 scale).
    pub const TQ2_0: GgmlType = GgmlType::known(35);
    /// `I2_S`: bitnet.cpp's 2-bit layout with one f32 scale per tensor.
    pub const I2_S: GgmlType = GgmlType::known(36);

    const fn known(id: u32) -> GgmlType {
        let mut i = 0;
        while i < TYPES.len() {
            let (tid, name, block, type_size) = TYPES[i];
            if tid == id {
                return GgmlType {
                    id,
                    name,
                    block,
                    type_size,
                };
            }
            i += 1;
        }
        panic!("not a known GGML type id");
    }

    /// The type with ggml id `id`, or `None` for an id this crate does not know.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TYPES
            .iter()
            .find(|t| t.0 == id)
            .map(|&(id, name, block, type_size)| GgmlType {
                id,
                name,
                block,
                type_size,
            })
    }

    /// ggml's type id.
    pub fn id(self) -> u32 {
        self.id
    }

    /// ggml's name of the type (`"TQ2_0"`).
    pub fn name(self) -> &'static str {
        self.name
    }

    /// Elements per block (1 for the plain types).
    pub fn block_size(self) -> u64 {
        self.block
    }

    /// Bytes of a tensor with `dims` (ggml order), or `None` when the count overflows `u64`.
    /// The caller checks that `dims[0]` is a multiple of [`GgmlType::block_size`].
    ///
    /// `I2_S` (bitnet.cpp, rows of whole 128-weight blocks): `elements / 4` bytes of 2-bit
    /// codes followed by a 32-byte slot whose first 4 bytes hold the tensor's f32 scale
    /// (see [`crate::format::i2s`]).
    pub fn byte_size(self, dims: &[u64]) -> Option<u64> {
        let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
        let blocks = (elements / self.block).checked_mul(self.type_size)?;
        if self.id == GgmlType::I2_S.id {
            return blocks.checked_add(crate::format::i2s::TRAILER_BYTES as u64);
        }
        Some(blocks)
    }
}

/// The type of a metadata value, by its GGUF id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    /// `u8`
    U8 = 0,
    /// `i8`
    I8 = 1,
    /// `u16`
    U16 = 2,
    /// `i16`
    I16 = 3,
    /// `u32`
    U32 = 4,
    /// `i32`
    I32 = 5,
    /// `f32`
    F32 = 6,
    /// `bool` (one byte, 0 or 1)
    Bool = 7,
    /// string (`u64` length + bytes)
    String = 8,
    /// array (element type `u32`, `u64` count, elements)
    Array = 9,
    /// `u64`
    U64 = 10,
    /// `i64`
    I64 = 11,
    /// `f64`
    F64 = 12,
}

impl ValueType {
    fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The fewest bytes a value of this type occupies (a string's or array's header).
    fn min_bytes(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// One metadata value. Floats are kept as written (their bits survive a round trip); strings are
/// raw bytes ([`MetadataValue::as_str`] reads them as UTF-8).
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// `u8`
    U8(u8),
    /// `i8`
    I8(i8),
    /// `u16`
    U16(u16),
    /// `i16`
    I16(i16),
    /// `u32`
    U32(u32),
    /// `i32`
    I32(i32),
    /// `f32`
    F32(f32),
    /// `bool`
    Bool(bool),
    /// A string's bytes.
    String(Vec<u8>),
    /// An array: its element type and elements (all of that type).
    Array(ValueType, Vec<MetadataValue>),
    /// `u64`
    U64(u64),
    /// `i64`
    I64(i64),
    /// `f64`
    F64(f64),
}

impl MetadataValue {
    /// The value's GGUF type.
    pub fn value_type(&self) -> ValueType {
        match self {
            MetadataValue::U8(_) => ValueType::U8,
            MetadataValue::I8(_) => ValueType::I8,
            MetadataValue::U16(_) => ValueType::U16,
            MetadataValue::I16(_) => ValueType::I16,
            MetadataValue::U32(_) => ValueType::U32,
            MetadataValue::I32(_) => ValueType::I32,
            MetadataValue::F32(_) => ValueType::F32,
            MetadataValue::Bool(_) => ValueType::Bool,
            MetadataValue::String(_) => ValueType::String,
            MetadataValue::Array(..) => ValueType::Array,
            MetadataValue::U64(_) => ValueType::U64,
            MetadataValue::I64(_) => ValueType::I64,
            MetadataValue::F64(_) => ValueType::F64,
        }
    }

    /// A string value as UTF-8, `None` for other types or invalid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// An unsigned or non-negative signed integer value as `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(v.into()),
            MetadataValue::U16(v) => Some(v.into()),
            MetadataValue::U32(v) => Some(v.into()),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A float value (`f32` widened) as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// One tensor's entry in the file's tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name, exactly as stored.
    pub name: String,
    /// Dimensions in ggml order (`dims[0]` contiguous).
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
}

impl TensorInfo {
    /// Row-major shape (ggml dims reversed): `[out, in]` for a linear weight.
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }

    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF file borrowing its bytes (typically a memory map).
#[derive(Debug, Clone)]
pub struct GgufFile<'a> {
    bytes: &'a [u8],
    /// The file's version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, MetadataValue)>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Alignment of the data section and of every tensor offset, in bytes.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

/// A bounds-checked little-endian cursor over the file.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                available: self.remaining(),
            });
        }
        let n = n as usize; // fits: n <= remaining <= usize::MAX
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        let b = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A count that will be used to allocate: refused when `count · min_bytes` exceeds what is
    /// left, so no allocation is ever larger than the file.
    fn count(&mut self, min_bytes: u64, what: impl Fn() -> String) -> Result<usize> {
        let offset = self.pos as u64;
        let count = self.u64(&what)?;
        let available = self.remaining();
        if count.saturating_mul(min_bytes) > available {
            return Err(GgufError::CountTooLarge {
                what: what(),
                offset,
                count,
                available,
            });
        }
        Ok(count as usize)
    }

    fn string_bytes(&mut self, what: impl Fn() -> String) -> Result<&'a [u8]> {
        let len = self.u64(&what)?;
        self.take(len, what)
    }

    fn utf8(&mut self, what: impl Fn() -> String) -> Result<String> {
        let offset = self.pos as u64;
        let b = self.string_bytes(&what)?;
        String::from_utf8(b.to_vec()).map_err(|_| GgufError::Utf8 {
            what: what(),
            offset,
        })
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: usize) -> Result<MetadataValue> {
        let what = || format!("value of metadata key {key:?}");
        Ok(match ty {
            ValueType::U8 => MetadataValue::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => MetadataValue::I8(self.array::<1>(what)?[0] as i8),
            ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => MetadataValue::U32(u32::from_le_bytes(self.array(what)?)),
            ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => MetadataValue::U64(u64::from_le_bytes(self.array(what)?)),
            ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => {
                let offset = self.pos as u64;
                match self.array::<1>(what)?[0] {
                    0 => MetadataValue::Bool(false),
                    1 => MetadataValue::Bool(true),
                    value => {
                        return Err(GgufError::Bool {
                            key: key.to_owned(),
                            value,
                            offset,
                        });
                    }
                }
            }
            ValueType::String => MetadataValue::String(self.string_bytes(what)?.to_vec()),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::Nesting {
                        key: key.to_owned(),
                        max: MAX_ARRAY_DEPTH,
                    });
                }
                let elem = self.value_type(key)?;
                let count = self.count(elem.min_bytes(), || {
                    format!("array of metadata key {key:?}")
                })?;
                let mut values = Vec::with_capacity(count);
                for _ in 0..count {
                    values.push(self.value(elem, key, depth + 1)?);
                }
                MetadataValue::Array(elem, values)
            }
        })
    }

    fn value_type(&mut self, key: &str) -> Result<ValueType> {
        let offset = self.pos as u64;
        let id = self.u32(|| format!("value type of metadata key {key:?}"))?;
        ValueType::from_id(id).ok_or_else(|| GgufError::ValueType {
            key: key.to_owned(),
            id,
            offset,
        })
    }
}

/// Smallest encoded tensor info: empty name (8), `n_dims` (4), type (4), offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 24;
/// Smallest encoded metadata entry: empty key (8), type (4), a one-byte value.
const MIN_METADATA_BYTES: u64 = 13;

impl<'a> GgufFile<'a> {
    /// Parses and validates a whole GGUF file held in memory (or memory-mapped).
    ///
    /// # Errors
    ///
    /// A [`GgufError`] for the first thing wrong, naming the key, tensor or offset; see the module
    /// docs for the list of checks. Nothing is allocated from a size the file claims before it is
    /// checked against the file's length.
    pub fn parse(bytes: &'a [u8]) -> Result<GgufFile<'a>> {
        let mut c = Cursor { bytes, pos: 0 };
        let magic = bytes.get(..4).unwrap_or(bytes);
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic {
                found: magic.to_vec(),
            });
        }
        c.pos = 4;
        let version = c.u32(|| "version".into())?;
        if version != 2 && version != 3 {
            return Err(GgufError::Version { version });
        }
        let n_tensors = c.u64(|| "tensor count".into())?;
        let n_kv_offset = c.pos as u64;
        let n_kv = c.u64(|| "metadata count".into())?;
        let available = c.remaining();
        if n_kv.saturating_mul(MIN_METADATA_BYTES) > available {
            return Err(GgufError::CountTooLarge {
                what: "metadata count".into(),
                offset: n_kv_offset,
                count: n_kv,
                available,
            });
        }
        if n_tensors.saturating_mul(MIN_TENSOR_INFO_BYTES) > available {
            return Err(GgufError::CountTooLarge {
                what: "tensor count".into(),
                offset: 8,
                count: n_tensors,
                available,
            });
        }

        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut keys = std::collections::HashSet::new();
        for i in 0..n_kv {
            let key = c.utf8(|| format!("key of metadata entry {i}"))?;
            let ty = c.value_type(&key)?;
            let value = c.value(ty, &key, 0)?;
            if !keys.insert(key.clone()) {
                return Err(GgufError::DuplicateKey { key });
            }
            metadata.push((key, value));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            None => DEFAULT_ALIGNMENT,
            Some((_, MetadataValue::U32(a))) if a.is_power_of_two() && *a <= MAX_ALIGNMENT => {
                u64::from(*a)
            }
            Some((_, v)) => {
                return Err(GgufError::Alignment {
                    value: format!("{v:?}"),
                });
            }
        };

        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut names = std::collections::HashSet::new();
        for i in 0..n_tensors {
            let name = c.utf8(|| format!("name of tensor {i}"))?;
            let info = read_tensor_info(&mut c, name)?;
            if !names.insert(info.name.clone()) {
                return Err(GgufError::DuplicateTensor { name: info.name });
            }
            if info.offset % alignment != 0 {
                return Err(GgufError::Misaligned {
                    name: info.name,
                    offset: info.offset,
                    alignment,
                });
            }
            tensors.push(info);
        }

        let header_end = c.pos as u64;
        let data_offset = header_end.next_multiple_of(alignment);
        let len = bytes.len() as u64;
        for t in &tensors {
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.size));
            match (start, end) {
                (Some(_), Some(end)) if end <= len => {}
                _ => {
                    return Err(GgufError::OutOfRange {
                        name: t.name.clone(),
                        start: data_offset.saturating_add(t.offset),
                        end: data_offset.saturating_add(t.offset).saturating_add(t.size),
                        len,
                    });
                }
            }
        }
        // Zero-byte tensors occupy nothing and overlap nothing.
        let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.size > 0).collect();
        by_offset.sort_by_key(|t| t.offset);
        for pair in by_offset.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            // In range (checked above), so the sum cannot overflow.
            if a.offset + a.size > b.offset {
                return Err(GgufError::Overlap {
                    first: a.name.clone(),
                    first_offset: a.offset,
                    first_len: a.size,
                    second: b.name.clone(),
                    second_offset: b.offset,
                });
            }
        }

        Ok(GgufFile {
            bytes,
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }

    /// The metadata value under `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The bytes of `tensor` (an entry of [`GgufFile::tensors`]; ranges were checked by `parse`).
    pub fn data(&self, tensor: &TensorInfo) -> &'a [u8] {
        let start = (self.data_offset + tensor.offset) as usize;
        &self.bytes[start..start + tensor.size as usize]
    }
}

fn read_tensor_info(c: &mut Cursor<'_>, name: String) -> Result<TensorInfo> {
    let n_dims = c.u32(|| format!("dimension count of tensor {name:?}"))?;
    if n_dims as usize > MAX_DIMS {
        return Err(GgufError::TooManyDims { name, n_dims });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(c.u64(|| format!("dims of tensor {name:?}"))?);
    }
    let id = c.u32(|| format!("type of tensor {name:?}"))?;
    let offset = c.u64(|| format!("offset of tensor {name:?}"))?;
    let Some(ty) = GgmlType::from_id(id) else {
        return Err(GgufError::UnknownType { name, id });
    };
    let size = tensor_size(&name, ty, &dims)?;
    Ok(TensorInfo {
        name,
        dims,
        ty,
        offset,
        size,
    })
}

/// Byte size of a tensor, after checking its row is whole blocks and nothing overflows.
fn tensor_size(name: &str, ty: GgmlType, dims: &[u64]) -> Result<u64> {
    let row = dims.first().copied().unwrap_or(1);
    if row % ty.block_size() != 0 {
        return Err(GgufError::PartialBlock {
            name: name.to_owned(),
            row,
            ty: ty.name(),
            block: ty.block_size(),
        });
    }
    // Every size must also be addressable on this machine.
    ty.byte_size(dims)
        .filter(|&s| usize::try_from(s).is_ok())
        .ok_or_else(|| GgufError::DimsOverflow {
            name: name.to_owned(),
            dims: dims.to_vec(),
        })
}

/// Builds a GGUF v3 file: metadata and tensors in the order they are added, each tensor at the
/// next multiple of the alignment after the previous one, padding zero-filled. The same inputs
/// always give the same bytes.
#[derive(Debug, Clone, Default)]
pub struct GgufWriter<'d> {
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<(String, GgmlType, Vec<u64>, &'d [u8])>,
}

impl<'d> GgufWriter<'d> {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a metadata entry. A `general.alignment` entry sets the alignment of the data.
    ///
    /// # Errors
    ///
    /// [`GgufError::DuplicateKey`] for a key already added; [`GgufError::Alignment`] for a
    /// `general.alignment` that is not a `u32` non-zero power of two.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: MetadataValue) -> Result<()> {
        let key = key.into();
        if self.metadata.iter().any(|(k, _)| *k == key) {
            return Err(GgufError::DuplicateKey { key });
        }
        if key == ALIGNMENT_KEY
            && !matches!(value, MetadataValue::U32(a) if a.is_power_of_two() && a <= MAX_ALIGNMENT)
        {
            return Err(GgufError::Alignment {
                value: format!("{value:?}"),
            });
        }
        if !homogeneous(&value, 0) {
            return Err(GgufError::ArrayType { key });
        }
        self.metadata.push((key, value));
        Ok(())
    }

    /// Appends a tensor with dims in ggml order and its encoded bytes.
    ///
    /// # Errors
    ///
    /// [`GgufError::DuplicateTensor`], [`GgufError::TooManyDims`], [`GgufError::PartialBlock`],
    /// [`GgufError::DimsOverflow`], or [`GgufError::DataLength`] when `data` is not exactly the
    /// size the type and dims need.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        dims: &[u64],
        data: &'d [u8],
    ) -> Result<()> {
        let name = name.into();
        if self.tensors.iter().any(|t| t.0 == name) {
            return Err(GgufError::DuplicateTensor { name });
        }
        if dims.len() > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                name,
                n_dims: dims.len() as u32,
            });
        }
        let expected = tensor_size(&name, ty, dims)?;
        if expected != data.len() as u64 {
            return Err(GgufError::DataLength {
                name,
                ty: ty.name(),
                dims: dims.to_vec(),
                expected,
                actual: data.len() as u64,
            });
        }
        self.tensors.push((name, ty, dims.to_vec(), data));
        Ok(())
    }

    fn alignment(&self) -> u64 {
        match self.metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            Some((_, MetadataValue::U32(a))) => u64::from(*a),
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// Writes the whole file to `w`; returns the bytes written.
    ///
    /// # Errors
    ///
    /// Whatever `w` returns.
    pub fn write_to<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<u64> {
        let alignment = self.alignment();
        let mut header = Vec::new();
        header.extend_from_slice(&GGUF_MAGIC);
        header.extend_from_slice(&GGUF_VERSION.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut header, key.as_bytes());
            header.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
            put_value(&mut header, value);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for (name, ty, dims, data) in &self.tensors {
            put_string(&mut header, name.as_bytes());
            header.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&ty.id().to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len() as u64).next_multiple_of(alignment);
        }
        let data_offset = (header.len() as u64).next_multiple_of(alignment);
        w.write_all(&header)?;
        let mut written = header.len() as u64;
        for ((_, _, _, data), &start) in self.tensors.iter().zip(&offsets) {
            // Padding is streamed, never allocated.
            io::copy(&mut io::repeat(0).take(data_offset + start - written), w)?;
            w.write_all(data)?;
            written = data_offset + start + data.len() as u64;
        }
        // A file without tensor data still ends at the aligned data offset.
        if written < data_offset {
            io::copy(&mut io::repeat(0).take(data_offset - written), w)?;
            written = data_offset;
        }
        Ok(written)
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out)
            .expect("writing to a Vec cannot fail");
        out
    }
}

/// True when every array in `value` holds only elements of its declared type and arrays nest
/// no deeper than the reader accepts.
fn homogeneous(value: &MetadataValue, depth: usize) -> bool {
    match value {
        MetadataValue::Array(elem, values) => {
            depth < MAX_ARRAY_DEPTH
                && values
                    .iter()
                    .all(|v| v.value_type() == *elem && homogeneous(v, depth + 1))
        }
        _ => true,
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

fn put_value(out: &mut Vec<u8>, value: &MetadataValue) {
    match value {
        MetadataValue::U8(v) => out.push(*v),
        MetadataValue::I8(v) => out.push(*v as u8),
        MetadataValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::Bool(v) => out.push(u8::from(*v)),
        MetadataValue::String(s) => put_string(out, s),
        MetadataValue::Array(elem, values) => {
            out.extend_from_slice(&(*elem as u32).to_le_bytes());
            out.extend_from_slice(&(values.len() as u64).to_le_bytes());
            for v in values {
                put_value(out, v);
            }
        }
        MetadataValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}
