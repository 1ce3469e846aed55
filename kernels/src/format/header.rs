//! The versioned header both packed formats serialise with.
//!
//! ```text
//! offset size field
//!  0      4   magic       b"TRNY"
//!  4      2   version     u16 LE, currently 1
//!  6      1   format      1 = I2 (2-bit), 2 = T1 (base-3)
//!  7      1   scale kind  0 = per tensor (1 scale), 1 = per row (n scales),
//!                         2 = per group (n · ceil(k / group) scales, row-major [n, groups])
//!  8      8   n           u64 LE, output rows
//! 16      8   k           u64 LE, logical columns (before padding)
//! 24      4   block       u32 LE, I2: weights per block (128); T1: trits per byte (5)
//! 28      4   group       u32 LE, scale kind 2: columns per group (64, 128 or 256);
//!                         otherwise reserved, must be 0
//! 32    4*s   scales      f32 LE, bit patterns kept exactly (−0.0 and subnormals included)
//! ..          payload     format-specific, exact length implied by the fields above
//! ```
//!
//! Scale kind 2 reuses the reserved word, so version-1 buffers of kinds 0 and 1 read as
//! before, and a reader without group scales refuses kind 2 by its scale-kind code.

use bytemuck::{Pod, Zeroable};

use super::Scales;
use super::scales::{check_group_size, group_count};
use crate::error::{KernelError, Result};

pub(crate) const MAGIC: [u8; 4] = *b"TRNY";
pub(crate) const VERSION: u16 = 1;
pub(crate) const HEADER_BYTES: usize = std::mem::size_of::<RawHeader>();

/// The format byte of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FormatCode {
    I2 = 1,
    T1 = 2,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RawHeader {
    magic: [u8; 4],
    version: u16,
    format: u8,
    scale_kind: u8,
    n: u64,
    k: u64,
    block: u32,
    /// The group size for scale kind 2, else 0.
    group: u32,
}

/// A validated header plus the scales that follow it.
pub(crate) struct Parsed<'a> {
    pub n: usize,
    pub k: usize,
    pub scales: Scales,
    /// The payload, exactly as long as `payload_len` said.
    pub payload: &'a [u8],
    /// Offset of the payload in the whole buffer (for error messages).
    pub payload_offset: usize,
}

pub(crate) fn write(
    out: &mut Vec<u8>,
    format: FormatCode,
    n: usize,
    k: usize,
    block: u32,
    scales: &Scales,
) {
    let raw = RawHeader {
        magic: MAGIC,
        version: VERSION.to_le(),
        format: format as u8,
        scale_kind: scales.kind_code(),
        n: (n as u64).to_le(),
        k: (k as u64).to_le(),
        block: block.to_le(),
        // Group sizes are 64, 128 or 256 (checked when the scales were built).
        group: (scales.group_size().unwrap_or(0) as u32).to_le(),
    };
    out.extend_from_slice(bytemuck::bytes_of(&raw));
    for s in scales.as_slice() {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// Parses and validates the header. `payload_len(n, k)` returns the exact payload size, or
/// `None` when it overflows. Nothing is allocated before the buffer is known to hold it all.
pub(crate) fn read(
    bytes: &[u8],
    format: FormatCode,
    block: u32,
    payload_len: impl Fn(usize, usize) -> Option<usize>,
) -> Result<Parsed<'_>> {
    if bytes.len() < HEADER_BYTES {
        return Err(KernelError::Truncated {
            what: "header",
            offset: 0,
            needed: HEADER_BYTES,
            available: bytes.len(),
        });
    }
    let raw: RawHeader = bytemuck::pod_read_unaligned(&bytes[..HEADER_BYTES]);
    if raw.magic != MAGIC {
        return Err(KernelError::BadMagic {
            found: raw.magic,
            expected: MAGIC,
        });
    }
    let version = u16::from_le(raw.version);
    if version != VERSION {
        return Err(KernelError::Unsupported {
            field: "version",
            value: version.into(),
        });
    }
    if raw.format != format as u8 {
        return Err(KernelError::Unsupported {
            field: "format",
            value: raw.format.into(),
        });
    }
    if u32::from_le(raw.block) != block {
        return Err(KernelError::Unsupported {
            field: "block",
            value: u32::from_le(raw.block).into(),
        });
    }
    let group = u32::from_le(raw.group);
    if raw.scale_kind != 2 && group != 0 {
        return Err(KernelError::Unsupported {
            field: "reserved",
            value: group.into(),
        });
    }
    let (n64, k64) = (u64::from_le(raw.n), u64::from_le(raw.k));
    let overflow = KernelError::ShapeOverflow { n: n64, k: k64 };
    let n = usize::try_from(n64).map_err(|_| overflow.clone())?;
    let k = usize::try_from(k64).map_err(|_| overflow.clone())?;
    n.checked_mul(k).ok_or(overflow.clone())?;
    // n rows of nothing cost no bytes, so n would be bounded by nothing in the file; anything
    // that walks the rows (or allocates an output per row) would trust a bare claim.
    if k == 0 && n > 0 {
        return Err(KernelError::EmptyRows { n: n64 });
    }
    let payload = payload_len(n, k).ok_or(overflow.clone())?;
    let n_scales = match raw.scale_kind {
        0 => 1,
        1 => n,
        2 => {
            let group_size = usize::try_from(group).unwrap_or(usize::MAX);
            check_group_size(group_size)?;
            n.checked_mul(group_count(k, group_size))
                .ok_or(overflow.clone())?
        }
        other => {
            return Err(KernelError::Unsupported {
                field: "scale kind",
                value: other.into(),
            });
        }
    };
    let scale_bytes = n_scales.checked_mul(4).ok_or(overflow.clone())?;
    let payload_offset = HEADER_BYTES
        .checked_add(scale_bytes)
        .ok_or(overflow.clone())?;
    let end = payload_offset.checked_add(payload).ok_or(overflow)?;
    let rest = bytes.len() - HEADER_BYTES;
    if rest < scale_bytes {
        return Err(KernelError::Truncated {
            what: "scales",
            offset: HEADER_BYTES,
            needed: scale_bytes,
            available: rest,
        });
    }
    if bytes.len() < end {
        return Err(KernelError::Truncated {
            what: "payload",
            offset: payload_offset,
            needed: payload,
            available: bytes.len() - payload_offset,
        });
    }
    if bytes.len() > end {
        return Err(KernelError::TrailingBytes {
            offset: end,
            extra: bytes.len() - end,
        });
    }
    let values: Vec<f32> = bytes[HEADER_BYTES..payload_offset]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let scales = match raw.scale_kind {
        0 => Scales::PerTensor(values[0]),
        1 => Scales::PerRow(values),
        _ => Scales::PerGroup {
            group_size: group as usize,
            scales: values,
        },
    };
    scales.validate(n, k)?;
    Ok(Parsed {
        n,
        k,
        scales,
        payload: &bytes[payload_offset..end],
        payload_offset,
    })
}
