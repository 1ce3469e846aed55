//! `T1`: the 1.6-bit base-3 format for storage and transport.
//!
//! The `n × k` weights are read row-major as one stream of trits `t = w + 1 ∈ {0, 1, 2}`;
//! each group of five consecutive trits `t0..t4` becomes one byte
//! `t0 + 3·t1 + 9·t2 + 27·t3 + 81·t4 ∈ [0, 242]` (3⁵ = 243 ≤ 256, so 8/5 = 1.6 bits per
//! weight). A final partial group is padded with trit 1 (weight 0). Bytes above 242 are
//! invalid. There is no per-row padding, so the payload is `ceil(n·k / 5)` bytes.
//! Scales and header are those of [`PackedI2`]; conversion to and from `I2` is lossless.

use super::header::{self, FormatCode};
use super::{PackedI2, Scales};
use crate::error::{KernelError, Result};

/// Trits per byte.
pub const TRITS_PER_BYTE: usize = 5;
/// The largest valid byte, 3⁵ − 1.
pub const MAX_BYTE: u8 = 242;
const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// A ternary matrix in the base-3 layout described in the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedT1 {
    n: usize,
    k: usize,
    scales: Scales,
    data: Vec<u8>,
}

impl PackedT1 {
    /// Packs ternary values (`n × k`, row-major) with their scales.
    pub fn from_ternary(values: &[i8], n: usize, k: usize, scales: Scales) -> Result<Self> {
        // Reuse the I2 validation, then transcode: one checked path for both formats.
        Ok(Self::from_i2(&PackedI2::from_ternary(
            values, n, k, scales,
        )?))
    }

    /// Losslessly transcodes a 2-bit matrix.
    pub fn from_i2(m: &PackedI2) -> Self {
        let t = m.to_ternary();
        let data = t
            .chunks(TRITS_PER_BYTE)
            .map(|g| {
                (0..TRITS_PER_BYTE)
                    .map(|i| g.get(i).map_or(1, |&w| (w + 1) as u8) * POW3[i])
                    .sum()
            })
            .collect();
        Self {
            n: m.n(),
            k: m.k(),
            scales: m.scales().clone(),
            data,
        }
    }

    /// Losslessly transcodes back to the 2-bit format the kernels read.
    pub fn to_i2(&self) -> PackedI2 {
        let k = self.k;
        PackedI2::pack_with(self.n, k, self.scales.clone(), |r, c| {
            let i = r * k + c;
            trit(self.data[i / TRITS_PER_BYTE], i % TRITS_PER_BYTE)
        })
    }

    /// All weights as i8 in {−1, 0, +1}, row-major.
    pub fn to_ternary(&self) -> Vec<i8> {
        (0..self.n * self.k)
            .map(|i| trit(self.data[i / TRITS_PER_BYTE], i % TRITS_PER_BYTE) as i8 - 1)
            .collect()
    }

    /// Output rows.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Columns.
    pub fn k(&self) -> usize {
        self.k
    }
    /// The scales.
    pub fn scales(&self) -> &Scales {
        &self.scales
    }
    /// The packed payload, `ceil(n·k/5)` bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// Payload plus scale bytes.
    pub fn storage_bytes(&self) -> usize {
        self.data.len() + 4 * self.scales.len()
    }

    /// Serialises with the versioned header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.storage_bytes());
        header::write(
            &mut out,
            FormatCode::T1,
            self.n,
            self.k,
            TRITS_PER_BYTE as u32,
            &self.scales,
        );
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses and validates a buffer written by [`PackedT1::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let p = header::read(bytes, FormatCode::T1, TRITS_PER_BYTE as u32, |n, k| {
            n.checked_mul(k)?
                .checked_add(TRITS_PER_BYTE - 1)
                .map(|t| t / TRITS_PER_BYTE)
        })?;
        if let Some(i) = p.payload.iter().position(|&b| b > MAX_BYTE) {
            return Err(KernelError::BadCode {
                offset: p.payload_offset + i,
                code: p.payload[i],
            });
        }
        let total = p.n * p.k;
        if let Some(&last) = p.payload.last() {
            let used = total - (p.payload.len() - 1) * TRITS_PER_BYTE;
            if let Some(i) = (used..TRITS_PER_BYTE).find(|&i| trit(last, i) != 1) {
                return Err(KernelError::BadPadding {
                    row: p.n.saturating_sub(1),
                    col: p.k + i - used,
                });
            }
        }
        Ok(Self {
            n: p.n,
            k: p.k,
            scales: p.scales,
            data: p.payload.to_vec(),
        })
    }
}

#[inline]
fn trit(byte: u8, i: usize) -> u8 {
    byte / POW3[i] % 3
}
