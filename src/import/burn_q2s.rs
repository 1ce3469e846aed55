//! Burn's own 2-bit quantized tensors (`QuantValue::Q2S`, symmetric, what Burn's quantizer
//! makes with `Calibration::AbsMean`) ↔ burn-ternary's packed form, without loss.
//!
//! A Q2S tensor holds values in {−1, 0, +1} (the 2-bit range Burn allows for Q2S) and f32
//! scales, per tensor or per block; a value means `q · scale` (symmetric mode). Burn packs the
//! values into `u32`s along the innermost dimension (`QuantStore::PackedU32(0)`) or stores one
//! i8 each (`Native`, what its Flex backend produces); its own [`QuantizedBytes`] decodes both,
//! so no bit layout is repeated here.
//!
//! Which scales map:
//! * per tensor ↔ [`Scales::PerTensor`];
//! * per block of `[1, g]` (one row, `g` columns) with `g` = 64 or 128 ↔
//!   [`Scales::PerGroup`] of `g` columns (a ragged last block of a row as in both formats).
//!   Burn's block extents are bytes, so 256-column groups have no Q2S form.
//!
//! Everything else is refused with a typed error naming the tensor: another value type, a
//! two-level scheme (block scales over a per-tensor scale), blocks spanning several rows, scale
//! dtypes other than f32 on write (the packed scales are f32; narrower ones would round).

use burn::tensor::quantization::{
    QuantMode, QuantScheme, QuantStore, QuantValue, QuantizedBytes, ScaleDtype,
};
use burn::tensor::{DType, TensorData};
use ternary_kernels::{PackedI2, Scales};

use super::ImportError;

/// A Burn Q2S tensor's data (`[n, …]`, flattened to `[n, rest]`) as a packed matrix.
///
/// Errors: [`ImportError::BadTensor`] naming `name` for data that is not Q2S symmetric, a
/// two-level or multi-row block scheme, a block width other than 64 or 128, or invalid scales;
/// [`ImportError::NotTernary`] for a value outside {−1, 0, +1} (Q2S can hold −2).
pub fn from_q2s(name: &str, data: &TensorData) -> Result<PackedI2, ImportError> {
    let DType::QFloat(scheme) = data.dtype() else {
        return Err(ImportError::tensor(
            name,
            format!("dtype {:?} is not a quantized tensor", data.dtype()),
        ));
    };
    if scheme.value != QuantValue::Q2S || scheme.mode != QuantMode::Symmetric {
        return Err(ImportError::tensor(
            name,
            format!(
                "{:?} {:?} is not Burn's ternary Q2S (symmetric)",
                scheme.value, scheme.mode
            ),
        ));
    }
    if scheme.block_scale().is_some() && scheme.tensor_scale().is_some() {
        return Err(ImportError::tensor(
            name,
            "a two-level Q2S scheme (block scales over a per-tensor scale) is not supported",
        ));
    }
    let shape = data.shape().as_slice().to_vec();
    let n = shape.first().copied().unwrap_or(1);
    let numel: usize = shape.iter().product();
    let k = numel.checked_div(n).unwrap_or(0);
    let group = match scheme.block_size() {
        None => None,
        Some(block) => {
            let dims = block.to_dim_vec(shape.len());
            let g = *dims.last().unwrap_or(&1) as usize;
            if dims[..dims.len().saturating_sub(1)].iter().any(|&d| d != 1) || shape.len() != 2 {
                return Err(ImportError::tensor(
                    name,
                    format!(
                        "Q2S blocks {dims:?} on shape {shape:?}: only one-row blocks of a matrix map to group scales"
                    ),
                ));
            }
            Some(g)
        }
    };
    let bytes = QuantizedBytes {
        bytes: data.bytes().clone(),
        scheme,
        shape: data.shape().clone(),
    };
    let guarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bytes.into_vec_i8()));
    let (values, scales) = guarded
        .map_err(|_| ImportError::tensor(name, "Burn could not decode the quantized bytes"))?;
    if let Some((index, &value)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !(-1..=1).contains(*v))
    {
        return Err(ImportError::NotTernary {
            tensor: name.to_string(),
            index,
            value: f32::from(value),
        });
    }
    let scales = match group {
        None => Scales::PerTensor(scales.block[0]),
        Some(group_size) => Scales::PerGroup {
            group_size,
            scales: scales.block,
        },
    };
    PackedI2::from_ternary(&values, n, k, scales).map_err(|e| ImportError::tensor(name, e))
}

/// A packed matrix as a Burn Q2S tensor of `shape` (`shape[0] = n`, the rest multiplying to
/// `k`): values stored natively (one i8 each, as Burn's Flex backend holds Q2S), f32 scales
/// per tensor, or per `[1, g]` block for 64/128-column group scales (the matrix must then be
/// 2-D). Load it with `Tensor::from_data(data, (&device, data.dtype()))`.
///
/// Errors: [`ImportError::BadTensor`] naming `name` for per-row scales (Burn has no per-row
/// level; the nearest, a `[1, k]` block, needs `k` < 256), 256-column groups, or a shape that
/// does not hold the matrix.
pub fn to_q2s(name: &str, p: &PackedI2, shape: &[usize]) -> Result<TensorData, ImportError> {
    let numel: usize = shape.iter().product();
    if shape.first() != Some(&p.n()) || numel != p.n() * p.k() {
        return Err(ImportError::tensor(
            name,
            format!("shape {shape:?} does not hold a {}x{} matrix", p.n(), p.k()),
        ));
    }
    let base = QuantScheme::default()
        .with_value(QuantValue::Q2S)
        .with_mode(QuantMode::Symmetric)
        // `TensorData::quantized` stores one i8 per value whatever the scheme says, so the
        // scheme must say so too (Flex's own Q2S tensors are `Native` as well).
        .with_store(QuantStore::Native);
    let (scheme, scales) = match p.scales() {
        Scales::PerTensor(s) => (base.per_tensor(ScaleDtype::F32), vec![*s]),
        Scales::PerGroup { group_size, scales } if *group_size < 256 && shape.len() == 2 => (
            base.per_block([1u8, *group_size as u8], ScaleDtype::F32),
            scales.clone(),
        ),
        Scales::PerRow(v) if p.k() < 256 && p.k() > 0 && shape.len() == 2 => (
            base.per_block([1u8, p.k() as u8], ScaleDtype::F32),
            v.clone(),
        ),
        other => {
            return Err(ImportError::tensor(
                name,
                format!(
                    "{} scales on shape {shape:?} have no Q2S form (per tensor, or one-row blocks of at most 255 columns)",
                    super::model_file::scale_kind(other)
                ),
            ));
        }
    };
    Ok(TensorData::quantized(
        p.to_ternary(),
        shape.to_vec(),
        scheme,
        &scales,
        None,
    ))
}
