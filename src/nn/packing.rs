//! Turning ternary values and scales (tensors) into packed `I2` parameters.

use burn::module::{Param, ParamId};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use ternary_kernels::{PackedI2, Scales, format::i2};

use crate::error::TernaryError;
use crate::quant::ActivationQuant;
use crate::quant::{Granularity, TernaryQuantizer};

/// Packed i32 words per row of a matrix with `k` columns.
pub(crate) fn row_words(k: usize) -> usize {
    i2::padded_k(k).expect("k fits usize") / 16
}

/// Packs `[n, k]` ternary values (floats in {−1, 0, +1}) with 1, `n` or `n · groups` (row-major
/// per group of 64, 128 or 256 columns) scales into the
/// `[n, row_words]` i32 word tensor and the scale tensor the extension op takes.
pub(crate) fn pack(
    values: Tensor<2>,
    scales: Tensor<1>,
    layer: &str,
) -> Result<(Tensor<2, Int>, Tensor<1>), TernaryError> {
    let device = values.device();
    let [n, k] = values.dims();
    let t: Vec<i8> = values
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
        .into_iter()
        .map(|v| v as i8)
        .collect();
    let s: Vec<f32> = scales
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 data");
    let s = Scales::from_flat(n, k, s).map_err(|source| TernaryError::Pack {
        layer: layer.to_string(),
        source,
    })?;
    let packed = PackedI2::from_ternary(&t, n, k, s).map_err(|source| TernaryError::Pack {
        layer: layer.to_string(),
        source,
    })?;
    Ok(to_tensors(&packed, &device))
}

/// The tensors of an already packed matrix.
pub(crate) fn to_tensors(
    packed: &PackedI2,
    device: &burn::tensor::Device,
) -> (Tensor<2, Int>, Tensor<1>) {
    let words: Vec<i32> = packed
        .data()
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let w = row_words(packed.k());
    // Flat: [1], [n] or [n · groups] row-major; the count tells the kind (see
    // `ternary_kernels::format::flat_group_size`).
    let scales = packed.scales().as_slice().to_vec();
    let ns = scales.len();
    (
        Tensor::from_data(
            TensorData::new(words, [packed.n(), w]),
            (device, DType::I32),
        ),
        Tensor::from_data(TensorData::new(scales, [ns]), device),
    )
}

/// The scheme codes persisted with each ternary layer.
pub(crate) fn scheme_codes(q: TernaryQuantizer, g: Granularity, a: ActivationQuant) -> [i32; 3] {
    [
        match q {
            TernaryQuantizer::AbsMean => 0,
            TernaryQuantizer::Twn => 1,
        },
        match g {
            Granularity::PerTensor => 0,
            Granularity::PerChannel => 1,
            // The group size itself (64, 128, 256): never 0 or 1.
            Granularity::PerGroup { group_size } => group_size as i32,
        },
        match a {
            ActivationQuant::None => 0,
            ActivationQuant::Int8PerToken => 1,
            ActivationQuant::Int8PerImage => 2,
        },
    ]
}

/// Decodes [`scheme_codes`]; unknown codes fall back to the defaults.
pub(crate) fn scheme_from_codes(c: &[i64]) -> (TernaryQuantizer, Granularity) {
    let q = if c.first() == Some(&1) {
        TernaryQuantizer::Twn
    } else {
        TernaryQuantizer::AbsMean
    };
    let g = match c.get(1) {
        Some(&1) => Granularity::PerChannel,
        Some(&g) if ternary_kernels::format::GROUP_SIZES.contains(&(g as usize)) => {
            Granularity::PerGroup {
                group_size: g as usize,
            }
        }
        _ => Granularity::PerTensor,
    };
    (q, g)
}

pub(crate) fn scheme_tensor(codes: [i32; 3], device: &burn::tensor::Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(codes.to_vec(), [3]), (device, DType::I32))
}

/// An int parameter (not trainable by construction: optimizers only update floats).
pub(crate) fn int_param<const D: usize>(t: Tensor<D, Int>) -> Param<Tensor<D, Int>> {
    Param::initialized(ParamId::new(), t)
}

/// Zeros of the i32 dtype the packed words use.
pub(crate) fn int_zeros<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D, Int> {
    Tensor::zeros(shape, (device, DType::I32))
}
