//! Straight-through fake quantization from plain tensor ops, so training runs on every Burn
//! device under Autodiff. The forward sees ternary weights (and int8 activations); the
//! backward treats the rounding as the identity: `w + (q(w) − w).detach()`.

use burn::tensor::Tensor;

use super::{Granularity, TernaryQuantizer};

/// Ternary values in {−1, 0, +1} and their scales for a weight whose output channels run
/// along `channel_dim`. Scales broadcast against the weight (size 1 on every other dim).
///
/// The formulas are those of `ternary_kernels::quant`, so packing these values gives the
/// same layer the training forward used.
pub fn ternarize<const D: usize>(
    w: Tensor<D>,
    quantizer: TernaryQuantizer,
    granularity: Granularity,
    channel_dim: usize,
) -> (Tensor<D>, Tensor<D>) {
    let w = w.detach();
    let abs = w.clone().abs();
    let mean = group_mean(abs.clone(), granularity, channel_dim);
    match quantizer {
        TernaryQuantizer::AbsMean => {
            // γ = 0 only for an all-zero group: w/γ is NaN there and every compare is false.
            let r = w / mean.clone();
            let t = r.clone().greater_equal_elem(0.5).float() - r.lower_equal_elem(-0.5).float();
            (t, mean)
        }
        TernaryQuantizer::Twn => {
            let delta = mean * 0.7;
            let t = w.clone().greater(delta.clone()).float() - w.lower(delta.neg()).float();
            let kept = t.clone().abs();
            let sum = group_sum(abs * kept.clone(), granularity, channel_dim);
            let count = group_sum(kept, granularity, channel_dim).clamp_min(1.0);
            (t, sum / count)
        }
    }
}

fn group_sum<const D: usize>(x: Tensor<D>, g: Granularity, channel_dim: usize) -> Tensor<D> {
    reduce(x, g, channel_dim, |t, d| t.sum_dim(d))
}

fn group_mean<const D: usize>(x: Tensor<D>, g: Granularity, channel_dim: usize) -> Tensor<D> {
    reduce(x, g, channel_dim, |t, d| t.mean_dim(d))
}

fn reduce<const D: usize>(
    mut x: Tensor<D>,
    g: Granularity,
    channel_dim: usize,
    op: impl Fn(Tensor<D>, usize) -> Tensor<D>,
) -> Tensor<D> {
    match g {
        Granularity::PerTensor => {
            // Flatten into the last dim, so one reduction divides by the full count.
            let mut flat = [1usize; D];
            flat[D - 1] = x.shape().num_elements();
            op(x.reshape(flat), D - 1)
        }
        Granularity::PerChannel => {
            for d in (0..D).filter(|&d| d != channel_dim) {
                x = op(x, d);
            }
            x
        }
    }
}

/// `w + (t·s − w).detach()`: ternary in the forward, identity in the backward.
pub fn fake_ternarize<const D: usize>(
    w: Tensor<D>,
    quantizer: TernaryQuantizer,
    granularity: Granularity,
    channel_dim: usize,
) -> Tensor<D> {
    let (t, s) = ternarize(w.clone(), quantizer, granularity, channel_dim);
    w.clone() + (t * s - w).detach()
}

/// Per-token int8 fake quantization of the last dimension with a straight-through backward:
/// `round(x · 127 / max|x|) · max|x| / 127`; all-zero rows stay zero.
pub fn fake_quantize_activations<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let q = {
        let x = x.clone().detach();
        let amax = x.clone().abs().max_dim(D - 1).clamp_min(f32::MIN_POSITIVE);
        // 127 / max|x| as one division, as the int8 kernels compute it (not (1/max)·127).
        let inv = amax.ones_like().mul_scalar(127.0) / amax.clone();
        (x * inv).round().clamp(-127.0, 127.0) * (amax / 127.0)
    };
    x.clone() + (q - x).detach()
}
