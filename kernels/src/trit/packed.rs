//! [`PackedTrits`]: a sequence of trits, four per byte, the layout every trit kernel reads.
//!
//! Trit `i` lives in byte `i / 4`, in bits `2·(i % 4) + 1 .. 2·(i % 4)` (the first trit in
//! the lowest bits), as the code `t + 1`: `00` = −1, `01` = 0, `10` = +1; `11` is invalid.
//! The code and the order of the four lanes within a byte are those of the weight format
//! [`crate::PackedI2`]; unlike it, a trit buffer has no 128-trit blocks: it is one flat
//! sequence of any length, so a `u64` read little-endian holds trits `32 w .. 32 w + 32` in
//! order. The `4 · ceil(len / 4) − len` padding lanes of the last byte hold the code of 0
//! (`01`), and every operation keeps them so, so equal buffers are equal bytewise
//! (`PartialEq` compares bytes).

use rayon::prelude::*;

use crate::error::{KernelError, Result};

/// Trits per byte.
pub const TRITS_PER_BYTE: usize = 4;
/// A byte of four zero trits (code `01` in every lane): the padding code.
pub(crate) const ZERO_BYTE: u8 = 0x55;
/// Trits below which conversions and element-wise operations stay on the calling thread
/// (2¹⁸ trits = 64 KiB packed: a few microseconds of work, about rayon's wake-up cost).
pub const PAR_MIN_TRITS: usize = 1 << 18;

/// The four trits of every byte value, `[i8; 4]` in lane order; code 3 reads as 0 (only
/// reachable through unchecked bytes, never in a valid buffer).
const UNPACK: [[i8; 4]; 256] = {
    let mut t = [[0i8; 4]; 256];
    let mut b = 0;
    while b < 256 {
        let mut l = 0;
        while l < 4 {
            let c = (b >> (2 * l)) & 3;
            t[b][l] = if c == 3 { 0 } else { c as i8 - 1 };
            l += 1;
        }
        b += 1;
    }
    t
};

/// A sequence of `len` trits packed four per byte (module docs). Build with
/// [`PackedTrits::from_i8`], [`PackedTrits::zeros`], the float conversions, or the
/// element-wise operations; read with [`PackedTrits::to_i8`] or [`PackedTrits::get`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PackedTrits {
    len: usize,
    bytes: Vec<u8>,
}

/// The byte of four trits `v` (each in {−1, 0, +1}).
#[inline(always)]
fn pack4(v: &[i8]) -> u8 {
    v.iter()
        .enumerate()
        .fold(0u8, |b, (l, &t)| b | (((t + 1) as u8) << (2 * l)))
}

/// Bytes holding `len` trits.
#[inline]
pub(crate) fn bytes_for(len: usize) -> usize {
    len.div_ceil(TRITS_PER_BYTE)
}

/// Trit-parallel chunking: `(trits, bytes)` per rayon task for `len` trits, a multiple of
/// 64 bytes, or everything in one task below [`PAR_MIN_TRITS`].
pub(crate) fn chunk_bytes(len: usize) -> usize {
    let n = bytes_for(len).max(1);
    if len < PAR_MIN_TRITS {
        return n;
    }
    let per_thread = n.div_ceil(rayon::current_num_threads());
    per_thread.div_ceil(64).max(1) * 64
}

impl PackedTrits {
    /// `len` zero trits.
    pub fn zeros(len: usize) -> Self {
        Self {
            len,
            bytes: vec![ZERO_BYTE; bytes_for(len)],
        }
    }

    /// Packs `values` (each in {−1, 0, +1}).
    ///
    /// # Errors
    /// [`KernelError::NotTernary`] naming the first index whose value is outside {−1, 0, 1}.
    pub fn from_i8(values: &[i8]) -> Result<Self> {
        if values.iter().any(|v| !(-1..=1).contains(v)) {
            let index = values
                .iter()
                .position(|v| !(-1..=1).contains(v))
                .expect("found above");
            return Err(KernelError::NotTernary {
                index,
                value: values[index],
            });
        }
        Ok(Self::pack_with(values.len(), values, |v| v))
    }

    /// Packs `src` (`len` elements) through `f`, which maps each to {−1, 0, +1}.
    pub(crate) fn pack_with<T: Copy + Sync>(
        len: usize,
        src: &[T],
        f: impl Fn(T) -> i8 + Sync,
    ) -> Self {
        debug_assert_eq!(src.len(), len);
        let mut bytes = vec![ZERO_BYTE; bytes_for(len)];
        let chunk = chunk_bytes(len);
        bytes
            .par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk * TRITS_PER_BYTE))
            .for_each(|(out, src)| {
                let whole = src.chunks_exact(TRITS_PER_BYTE);
                let rest = whole.remainder();
                for (o, s) in out.iter_mut().zip(whole) {
                    *o = pack4(&[f(s[0]), f(s[1]), f(s[2]), f(s[3])]);
                }
                if !rest.is_empty() {
                    let mut t = [0i8; 4];
                    for (t, &s) in t.iter_mut().zip(rest) {
                        *t = f(s);
                    }
                    out[out.len() - 1] = pack4(&t);
                }
            });
        Self { len, bytes }
    }

    /// All trits as i8 in {−1, 0, +1}.
    pub fn to_i8(&self) -> Vec<i8> {
        let mut out = vec![0i8; self.bytes.len() * TRITS_PER_BYTE];
        let chunk = chunk_bytes(self.len);
        out.par_chunks_mut(chunk * TRITS_PER_BYTE)
            .zip(self.bytes.par_chunks(chunk))
            .for_each(|(o, b)| {
                for (o, &b) in o.chunks_exact_mut(TRITS_PER_BYTE).zip(b) {
                    o.copy_from_slice(&UNPACK[b as usize]);
                }
            });
        out.truncate(self.len);
        out
    }

    /// Wraps packed bytes (the layout of the module docs), validating every code.
    ///
    /// # Errors
    /// [`KernelError::Length`] unless `bytes.len() == ceil(len / 4)`;
    /// [`KernelError::BadCode`] for a code 3; [`KernelError::TritPadding`] for a padding lane
    /// that is not the code of 0.
    pub fn from_bytes(len: usize, bytes: Vec<u8>) -> Result<Self> {
        if bytes.len() != bytes_for(len) {
            return Err(KernelError::Length {
                what: "packed trits (ceil(len / 4) bytes)",
                expected: bytes_for(len),
                actual: bytes.len(),
            });
        }
        if let Some(offset) = bytes.iter().position(|&b| b & (b >> 1) & 0x55 != 0) {
            return Err(KernelError::BadCode { offset, code: 3 });
        }
        let s = Self { len, bytes };
        if let Some(index) = (s.len..s.bytes.len() * TRITS_PER_BYTE).find(|&i| s.code(i) != 1) {
            return Err(KernelError::TritPadding {
                index,
                code: s.code(index),
            });
        }
        Ok(s)
    }

    /// Number of trits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no trits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed bytes, `ceil(len / 4)` of them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The packed bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The 2-bit code at any lane, padding included.
    #[inline]
    fn code(&self, i: usize) -> u8 {
        (self.bytes[i / TRITS_PER_BYTE] >> (2 * (i % TRITS_PER_BYTE))) & 3
    }

    /// Trit `i`.
    ///
    /// # Panics
    /// When `i ≥ len`.
    #[inline]
    pub fn get(&self, i: usize) -> i8 {
        assert!(
            i < self.len,
            "trit index {i} out of range for length {}",
            self.len
        );
        self.code(i) as i8 - 1
    }

    /// Sets trit `i` to `t`.
    ///
    /// # Errors
    /// [`KernelError::NotTernary`] when `t ∉ {−1, 0, 1}` (the buffer is unchanged).
    ///
    /// # Panics
    /// When `i ≥ len`.
    pub fn set(&mut self, i: usize, t: i8) -> Result<()> {
        assert!(
            i < self.len,
            "trit index {i} out of range for length {}",
            self.len
        );
        if !(-1..=1).contains(&t) {
            return Err(KernelError::NotTernary { index: i, value: t });
        }
        let (b, s) = (i / TRITS_PER_BYTE, 2 * (i % TRITS_PER_BYTE));
        self.bytes[b] = (self.bytes[b] & !(3 << s)) | (((t + 1) as u8) << s);
        Ok(())
    }

    /// A copy of trits `range`, realigned to start at lane 0 of byte 0 (the kernels work on
    /// whole bytes; a view starting mid-byte is shifted once here).
    ///
    /// # Panics
    /// When the range is decreasing or ends past `len`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        let (start, end) = (range.start, range.end);
        assert!(
            start <= end && end <= self.len,
            "trit range {start}..{end} out of bounds for length {}",
            self.len
        );
        let len = end - start;
        let first = start / TRITS_PER_BYTE;
        let shift = 2 * (start % TRITS_PER_BYTE);
        let src = &self.bytes[first..];
        let mut bytes: Vec<u8> = if shift == 0 {
            src[..bytes_for(len)].to_vec()
        } else {
            (0..bytes_for(len))
                .map(|j| {
                    let next = src.get(j + 1).copied().unwrap_or(ZERO_BYTE);
                    (src[j] >> shift) | (next << (8 - shift))
                })
                .collect()
        };
        fix_padding(&mut bytes, len);
        Self { len, bytes }
    }

    /// Mutable packed bytes for the kernels; the caller restores the padding.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Rewrites the padding lanes of the last byte to the code of 0.
    pub(crate) fn fix_padding(&mut self) {
        fix_padding(&mut self.bytes, self.len);
    }
}

/// Rewrites the lanes of `bytes` past trit `len` in its last byte to the code of 0.
fn fix_padding(bytes: &mut [u8], len: usize) {
    let used = len % TRITS_PER_BYTE;
    if used != 0
        && let Some(last) = bytes.last_mut()
    {
        let keep = (1u8 << (2 * used)) - 1;
        *last = (*last & keep) | (ZERO_BYTE & !keep);
    }
}

impl std::fmt::Debug for PackedTrits {
    /// `PackedTrits(5: +-0+0)`: `+`, `0`, `-` per trit, the first 256 then `…`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 256;
        write!(f, "PackedTrits({}: ", self.len)?;
        for i in 0..self.len.min(SHOWN) {
            f.write_str(["-", "0", "+"][(self.get(i) + 1) as usize])?;
        }
        if self.len > SHOWN {
            f.write_str("…")?;
        }
        f.write_str(")")
    }
}
