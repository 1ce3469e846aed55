//! [`TritTensor`] to and from Burn tensors, `f32` quantizers, and serialization.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ternary_kernels::quant::Method;
use ternary_kernels::trit::{PackedTrits, PackedTrits5};

use super::tensor::TritTensor;
use crate::error::TritError;

fn dims<const D: usize>(shape: &[usize]) -> [usize; D] {
    std::array::from_fn(|d| shape[d])
}

impl<const D: usize> TritTensor<D> {
    /// A Burn `Int` tensor's values, which must all be −1, 0 or 1.
    ///
    /// # Errors
    /// [`TritError::NotTrit`] naming the first index whose value is not a trit.
    pub fn from_int(t: Tensor<D, Int>) -> Result<Self, TritError> {
        let shape = t.dims();
        let v: Vec<i64> = t
            .into_data()
            .convert::<i64>()
            .try_into_vec()
            .map_err(|e| TritError::Data(format!("{e:?}")))?;
        let values: Vec<i8> = v
            .iter()
            .enumerate()
            .map(|(index, &value)| {
                (-1..=1)
                    .contains(&value)
                    .then_some(value as i8)
                    .ok_or(TritError::NotTrit { index, value })
            })
            .collect::<Result<_, _>>()?;
        Self::from_i8(&values, shape)
    }

    /// The signs of a Burn float tensor's values with a dead zone: `+1` above `threshold`,
    /// `−1` below `−threshold`, else 0.
    ///
    /// # Errors
    /// [`TritError::Kernel`] for a NaN or infinite value (naming its index).
    pub fn from_float_threshold(t: Tensor<D>, threshold: f32) -> Result<Self, TritError> {
        let shape = t.dims();
        let v = float_values(t)?;
        Self::from_packed(PackedTrits::from_f32_threshold(&v, threshold)?, shape)
    }

    /// A Burn float tensor quantized to trits with one scale, as the weight quantizers do
    /// ([`Method::AbsMean`]: BitNet b1.58's `round(clamp(x / mean|x|, −1, 1))`;
    /// [`Method::Twn`]). Returns the trits and the scale: `x ≈ scale · t`.
    ///
    /// # Errors
    /// [`TritError::Kernel`] for a NaN or infinite value.
    pub fn quantize(t: Tensor<D>, method: Method) -> Result<(Self, f32), TritError> {
        let shape = t.dims();
        let v = float_values(t)?;
        let (p, scale) = PackedTrits::quantize(&v, method)?;
        Ok((Self::from_packed(p, shape)?, scale))
    }

    /// The trits as a Burn `Int` tensor on `device`.
    pub fn to_int(&self, device: &Device) -> Tensor<D, Int> {
        let v: Vec<i64> = self.to_i8().into_iter().map(i64::from).collect();
        Tensor::from_data(TensorData::new(v, self.shape), device)
    }

    /// `scale · t` as a Burn float tensor on `device`.
    pub fn to_float(&self, scale: f32, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.packed().to_f32(scale), self.shape),
            device,
        )
    }
}

fn float_values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, TritError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec()
        .map_err(|e| TritError::Data(format!("{e:?}")))
}

/// The serialized form: the shape and the trits in row-major order, five per byte (the
/// storage packing, `PackedTrits5`).
#[derive(Serialize, Deserialize)]
struct Stored {
    shape: Vec<usize>,
    trits5: Vec<u8>,
}

impl<const D: usize> Serialize for TritTensor<D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Stored {
            shape: self.shape.to_vec(),
            trits5: PackedTrits5::from_packed(&self.packed()).into_bytes(),
        }
        .serialize(s)
    }
}

impl<'de, const D: usize> Deserialize<'de> for TritTensor<D> {
    /// Checks the rank, the byte count against the shape and every byte (a byte above
    /// 3⁵ − 1 is not five trits); errors name what is wrong.
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        use serde::de::Error;
        let stored = Stored::deserialize(d)?;
        if stored.shape.len() != D {
            return Err(De::Error::custom(format!(
                "a {}-d shape {:?} for a {D}-d TritTensor",
                stored.shape.len(),
                stored.shape
            )));
        }
        let n = stored
            .shape
            .iter()
            .try_fold(1usize, |a, &b| a.checked_mul(b))
            .ok_or_else(|| De::Error::custom(format!("shape {:?} overflows", stored.shape)))?;
        let p5 = PackedTrits5::from_bytes(n, stored.trits5).map_err(De::Error::custom)?;
        Self::from_packed(p5.to_packed(), dims(&stored.shape)).map_err(De::Error::custom)
    }
}
