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
///
/// With [`Granularity::PerGroup`] the scales have the weight's full shape (each weight's own
/// group scale), and the groups run along the weight's reduction axis: a linear weight
/// `[d_input, d_output]` (`channel_dim = 1`) groups its input features, a conv filter
/// `[c_out, c_in/groups, kh, kw]` (`channel_dim = 0`) its flattened `c_in/groups · kh · kw`
/// values.
///
/// # Panics
/// With group scales, unless `channel_dim` is 0, or 1 of a 2-D weight (the two layouts the
/// layers use), or the group size is not 64, 128 or 256.
pub fn ternarize<const D: usize>(
    w: Tensor<D>,
    quantizer: TernaryQuantizer,
    granularity: Granularity,
    channel_dim: usize,
) -> (Tensor<D>, Tensor<D>) {
    let w = w.detach();
    if let Granularity::PerGroup { group_size } = granularity {
        granularity.check("ternarize");
        let dims = w.dims();
        let (t, s) = ternarize_rows(to_rows(w, channel_dim), quantizer, group_size);
        let [n, k] = t.dims();
        let s = expand_groups(s, n, k, group_size);
        return (
            from_rows(t, dims, channel_dim),
            from_rows(s, dims, channel_dim),
        );
    }
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

/// The ternary values as `[n, k]` rows (one per output channel, the reduction axis along
/// the row: what the packed formats store) and their scales flat: `[1]`, `[n]`, or
/// `[n · ceil(k / group_size)]` row-major. What `freeze` packs.
pub(crate) fn ternarize_for_packing<const D: usize>(
    w: Tensor<D>,
    quantizer: TernaryQuantizer,
    granularity: Granularity,
    channel_dim: usize,
) -> (Tensor<2>, Tensor<1>) {
    match granularity {
        Granularity::PerGroup { group_size } => {
            granularity.check("ternarize");
            let (t, s) = ternarize_rows(to_rows(w.detach(), channel_dim), quantizer, group_size);
            let count = s.shape().num_elements();
            (t, s.reshape([count]))
        }
        _ => {
            let (t, s) = ternarize(w, quantizer, granularity, channel_dim);
            let count = s.shape().num_elements();
            (to_rows(t, channel_dim), s.reshape([count]))
        }
    }
}

/// `[n, k]` rows of a weight whose output channels run along `channel_dim` (0, or 1 of a 2-D
/// linear weight `[in, out]`): the layout the packed formats store.
pub(crate) fn to_rows<const D: usize>(w: Tensor<D>, channel_dim: usize) -> Tensor<2> {
    let dims = w.dims();
    match (D, channel_dim) {
        (2, 1) => w.reshape([dims[0], dims[1]]).transpose(),
        (_, 0) => {
            let k = dims[1..].iter().product::<usize>();
            w.reshape([dims[0], k])
        }
        _ => panic!(
            "ternary weights of shape {dims:?} with output channels on dim {channel_dim}: group scales need them on dim 0, or dim 1 of a 2-D weight"
        ),
    }
}

/// The inverse of [`to_rows`].
fn from_rows<const D: usize>(rows: Tensor<2>, dims: [usize; D], channel_dim: usize) -> Tensor<D> {
    if channel_dim == 0 {
        rows.reshape(dims)
    } else {
        rows.transpose().reshape(dims)
    }
}

/// Per-group ternarization of `[n, k]` rows: the values `[n, k]` and one scale per row and
/// group of `g` columns, `[n, ceil(k/g)]` (the last group ragged: its mean divides by its own
/// column count).
fn ternarize_rows(w: Tensor<2>, quantizer: TernaryQuantizer, g: usize) -> (Tensor<2>, Tensor<2>) {
    let [n, k] = w.dims();
    let groups = k.div_ceil(g);
    if n == 0 || k == 0 {
        let device = w.device();
        return (w, Tensor::zeros([n, groups], &device));
    }
    let abs = w.clone().abs();
    let expand = |s: Tensor<2>| expand_groups(s, n, k, g);
    let mean = group_sums(abs.clone(), g) / group_counts(k, g, &w.device());
    match quantizer {
        TernaryQuantizer::AbsMean => {
            let r = w / expand(mean.clone());
            let t = r.clone().greater_equal_elem(0.5).float() - r.lower_equal_elem(-0.5).float();
            (t, mean)
        }
        TernaryQuantizer::Twn => {
            let delta = expand(mean) * 0.7;
            let t = w.clone().greater(delta.clone()).float() - w.lower(delta.neg()).float();
            let kept = t.clone().abs();
            let sum = group_sums(abs * kept.clone(), g);
            let count = group_sums(kept, g).clamp_min(1.0);
            (t, sum / count)
        }
    }
}

/// Sums of `[n, k]` rows over each group of `g` columns: `[n, ceil(k/g)]`.
fn group_sums(x: Tensor<2>, g: usize) -> Tensor<2> {
    let [n, k] = x.dims();
    let groups = k.div_ceil(g);
    let padded = groups * g;
    let x = if padded > k {
        let device = x.device();
        Tensor::cat(vec![x, Tensor::zeros([n, padded - k], &device)], 1)
    } else {
        x
    };
    x.reshape([n, groups, g]).sum_dim(2).reshape([n, groups])
}

/// Columns in each group, `[1, ceil(k/g)]`: `g`, the last one `k − (groups − 1)·g`.
fn group_counts(k: usize, g: usize, device: &burn::tensor::Device) -> Tensor<2> {
    let groups = k.div_ceil(g);
    let counts: Vec<f32> = (0..groups).map(|i| (k - i * g).min(g) as f32).collect();
    Tensor::<1>::from_floats(counts.as_slice(), device).reshape([1, groups])
}

/// `[n, groups]` group scales spread over the `[n, k]` columns they cover.
fn expand_groups(s: Tensor<2>, n: usize, k: usize, g: usize) -> Tensor<2> {
    let groups = k.div_ceil(g);
    if n == 0 || k == 0 {
        return Tensor::zeros([n, k], &s.device());
    }
    s.reshape([n, groups, 1])
        .expand([n, groups, g])
        .reshape([n, groups * g])
        .slice([0..n, 0..k])
}

/// Means of `[n, k]` rows over each group of `g` columns, spread back over the columns
/// (`[n, k]`).
pub(crate) fn group_means_expanded(x: Tensor<2>, g: usize) -> Tensor<2> {
    let [n, k] = x.dims();
    if n == 0 || k == 0 {
        return x;
    }
    let device = x.device();
    expand_groups(group_sums(x, g) / group_counts(k, g, &device), n, k, g)
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
        Granularity::PerGroup { .. } => unreachable!("group scales are reduced by group_sums"),
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
