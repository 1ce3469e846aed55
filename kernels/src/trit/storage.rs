//! [`PackedTrits5`]: trits five per byte (base 3, 1.6 bits per trit) for storage and
//! transport, converted losslessly to and from the four-per-byte [`PackedTrits`] the
//! kernels read.
//!
//! As in the weight format [`crate::PackedT1`], each group of five consecutive trits
//! `t0..t4` becomes the byte `d0 + 3·d1 + 9·d2 + 27·d3 + 81·d4 ∈ [0, 242]` with digits
//! `d = t + 1` (3⁵ = 243 ≤ 256); a final partial group is padded with digit 1 (trit 0), so
//! equal sequences are equal bytewise. Bytes above 242 are invalid.
//!
//! Conversion works on 20 trits at a time (5 bytes of 2-bit codes = 4 base-3 bytes) through
//! two tables: 10 bits of codes → base-3 byte (1024 entries) and back (243 entries).

use super::packed::PackedTrits;
use crate::error::{KernelError, Result};

/// Trits per storage byte.
pub const TRITS_PER_BYTE5: usize = 5;
/// The largest valid storage byte, 3⁵ − 1.
pub const MAX_BYTE5: u8 = 242;
/// Trits per conversion step: five code bytes, four storage bytes.
const STEP: usize = 20;

/// Five 2-bit codes (10 bits, lane 0 lowest) → their base-3 byte; a code 3 (never in a
/// valid buffer) reads as digit 1.
static TO_BASE3: [u8; 1024] = {
    let mut t = [0u8; 1024];
    let mut v = 0;
    while v < 1024 {
        let (mut b, mut p, mut l) = (0u32, 1u32, 0);
        while l < 5 {
            let c = (v >> (2 * l)) & 3;
            b += (if c == 3 { 1 } else { c as u32 }) * p;
            p *= 3;
            l += 1;
        }
        t[v] = b as u8;
        v += 1;
    }
    t
};

/// A base-3 byte → its five 2-bit codes (10 bits, lane 0 lowest).
static FROM_BASE3: [u16; 243] = {
    let mut t = [0u16; 243];
    let mut b = 0;
    while b < 243 {
        let (mut v, mut r, mut l) = (0u16, b, 0);
        while l < 5 {
            v |= ((r % 3) as u16) << (2 * l);
            r /= 3;
            l += 1;
        }
        t[b] = v;
        b += 1;
    }
    t
};

/// A sequence of `len` trits packed five per byte (module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackedTrits5 {
    len: usize,
    bytes: Vec<u8>,
}

/// Digit `l` (0..5) of a base-3 byte.
#[inline]
fn digit(b: u8, l: usize) -> u8 {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    b / POW3[l] % 3
}

impl PackedTrits5 {
    /// Losslessly transcodes a four-per-byte buffer.
    pub fn from_packed(p: &PackedTrits) -> Self {
        let len = p.len();
        let src = p.as_bytes();
        let mut bytes = Vec::with_capacity(len.div_ceil(TRITS_PER_BYTE5));
        let steps = len / STEP;
        for s in src[..steps * 5].chunks_exact(5) {
            let mut w = [0u8; 8];
            w[..5].copy_from_slice(s);
            let v = u64::from_le_bytes(w);
            for j in 0..4 {
                bytes.push(TO_BASE3[((v >> (10 * j)) & 0x3FF) as usize]);
            }
        }
        let done = steps * STEP;
        for g in (done..len).step_by(TRITS_PER_BYTE5) {
            let b = (0..TRITS_PER_BYTE5).rev().fold(0u8, |b, l| {
                let d = if g + l < len {
                    (p.get(g + l) + 1) as u8
                } else {
                    1
                };
                b * 3 + d
            });
            bytes.push(b);
        }
        Self { len, bytes }
    }

    /// Losslessly transcodes back to the four-per-byte layout the kernels read.
    pub fn to_packed(&self) -> PackedTrits {
        let len = self.len;
        let mut out = PackedTrits::zeros(len);
        let steps = len / STEP;
        let dst = out.bytes_mut();
        for (s, d) in self.bytes[..steps * 4]
            .chunks_exact(4)
            .zip(dst.chunks_exact_mut(5))
        {
            let v = s.iter().enumerate().fold(0u64, |v, (j, &b)| {
                v | u64::from(FROM_BASE3[b as usize]) << (10 * j)
            });
            d.copy_from_slice(&v.to_le_bytes()[..5]);
        }
        for i in steps * STEP..len {
            let t = digit(self.bytes[i / TRITS_PER_BYTE5], i % TRITS_PER_BYTE5) as i8 - 1;
            out.set(i, t).expect("a digit is 0, 1 or 2");
        }
        out
    }

    /// Packs `values` (each in {−1, 0, +1}).
    ///
    /// # Errors
    /// [`KernelError::NotTernary`] naming the first value outside {−1, 0, 1}.
    pub fn from_i8(values: &[i8]) -> Result<Self> {
        Ok(Self::from_packed(&PackedTrits::from_i8(values)?))
    }

    /// All trits as i8 in {−1, 0, +1}.
    pub fn to_i8(&self) -> Vec<i8> {
        (0..self.len)
            .map(|i| digit(self.bytes[i / TRITS_PER_BYTE5], i % TRITS_PER_BYTE5) as i8 - 1)
            .collect()
    }

    /// Wraps storage bytes, validating every byte and the padding digits.
    ///
    /// # Errors
    /// [`KernelError::Length`] unless `bytes.len() == ceil(len / 5)`;
    /// [`KernelError::BadCode`] for a byte above 242; [`KernelError::TritPadding`] for a
    /// padding digit other than 1 (trit 0).
    pub fn from_bytes(len: usize, bytes: Vec<u8>) -> Result<Self> {
        let expected = len.div_ceil(TRITS_PER_BYTE5);
        if bytes.len() != expected {
            return Err(KernelError::Length {
                what: "packed trits (ceil(len / 5) bytes)",
                expected,
                actual: bytes.len(),
            });
        }
        if let Some(offset) = bytes.iter().position(|&b| b > MAX_BYTE5) {
            return Err(KernelError::BadCode {
                offset,
                code: bytes[offset],
            });
        }
        if let Some(&last) = bytes.last() {
            let used = len - (bytes.len() - 1) * TRITS_PER_BYTE5;
            if let Some(l) = (used..TRITS_PER_BYTE5).find(|&l| digit(last, l) != 1) {
                return Err(KernelError::TritPadding {
                    index: len + l - used,
                    code: digit(last, l),
                });
            }
        }
        Ok(Self { len, bytes })
    }

    /// Number of trits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no trits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The storage bytes, `ceil(len / 5)` of them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The storage bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl From<&PackedTrits> for PackedTrits5 {
    fn from(p: &PackedTrits) -> Self {
        Self::from_packed(p)
    }
}

impl From<&PackedTrits5> for PackedTrits {
    fn from(p: &PackedTrits5) -> Self {
        p.to_packed()
    }
}
