//! Conversions into and out of [`PackedTrits`] beyond `i8`: signs of integers, floats by a
//! threshold or by the weight quantizers (BitNet b1.58 absmean, arXiv:2402.17764; TWN,
//! arXiv:1605.04711, through [`crate::quant`]), and back to scaled floats.

use rayon::prelude::*;

use super::packed::{PackedTrits, TRITS_PER_BYTE, chunk_bytes};
use crate::error::{KernelError, Result};
use crate::quant::{self, Granularity, Method};

/// The first non-finite value of `x`, as an error.
fn check_finite(x: &[f32]) -> Result<()> {
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(KernelError::NonFinite {
            what: "trit conversion input",
            index,
            value: x[index],
        }),
    }
}

impl PackedTrits {
    /// `sign(x)` of each value: −1, 0 or +1.
    pub fn sign_i8(x: &[i8]) -> Self {
        Self::pack_with(x.len(), x, |v| v.signum())
    }

    /// `sign(x)` of each value: −1, 0 or +1.
    pub fn sign_i32(x: &[i32]) -> Self {
        Self::pack_with(x.len(), x, |v| v.signum() as i8)
    }

    /// `sign(x)` where `|x| > threshold`, else 0 (so `threshold = 0` gives the sign).
    ///
    /// # Errors
    /// [`KernelError::BadThreshold`] for a negative, NaN or infinite threshold;
    /// [`KernelError::NonFinite`] naming the first NaN or ±Inf in `x`.
    pub fn from_f32_threshold(x: &[f32], threshold: f32) -> Result<Self> {
        if !(threshold.is_finite() && threshold >= 0.0) {
            return Err(KernelError::BadThreshold { value: threshold });
        }
        check_finite(x)?;
        Ok(Self::pack_with(x.len(), x, |v| {
            (v > threshold) as i8 - (v < -threshold) as i8
        }))
    }

    /// Ternarises `x` with one scale for the whole buffer: [`Method::AbsMean`] (BitNet
    /// b1.58: `γ = mean|x|`, `t = round(clamp(x / γ, −1, 1))`, scale `γ`) or
    /// [`Method::Twn`]; the rules of [`crate::quant`]. Returns the trits and the scale, so
    /// `x ≈ scale · t`. An empty or all-zero input gives zeros and scale 0.
    ///
    /// # Errors
    /// [`KernelError::NonFinite`] for NaN or ±Inf in `x`.
    pub fn quantize(x: &[f32], method: Method) -> Result<(Self, f32)> {
        if x.is_empty() {
            return Ok((Self::zeros(0), 0.0));
        }
        let t = quant::quantize(x, 1, x.len(), method, Granularity::PerTensor)?;
        let scale = t.scales.get(0);
        Ok((Self::pack_with(t.values.len(), &t.values, |v| v), scale))
    }

    /// `scale · t` for each trit.
    pub fn to_f32(&self, scale: f32) -> Vec<f32> {
        let lut = [-scale, 0.0, scale];
        let mut out = vec![0f32; self.as_bytes().len() * TRITS_PER_BYTE];
        let chunk = chunk_bytes(self.len());
        out.par_chunks_mut(chunk * TRITS_PER_BYTE)
            .zip(self.as_bytes().par_chunks(chunk))
            .for_each(|(o, b)| {
                for (o, &b) in o.chunks_exact_mut(TRITS_PER_BYTE).zip(b) {
                    for (l, o) in o.iter_mut().enumerate() {
                        // Codes are 0..=2 in a valid buffer.
                        *o = lut[((b >> (2 * l)) & 3).min(2) as usize];
                    }
                }
            });
        out.truncate(self.len());
        out
    }
}
