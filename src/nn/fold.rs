//! Batch norm folding: a batch norm in inference form is an affine map per channel,
//! `y ↦ (y − mean) · γ / √(var + ε) + β` (Ioffe & Szegedy, arXiv:1502.03167), so after a
//! convolution it can be merged into the convolution's per-channel scale and bias.

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use crate::error::TernaryError;

/// The f32 values of a rank-1 tensor.
pub(crate) fn to_vec(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

/// One batch norm as per-channel factors `a = γ / √(var + ε)` and the bias that replaces a
/// layer's bias `b`: `(b − mean) · a + β`.
pub(crate) struct BatchNormFold {
    /// Factor per channel.
    pub a: Vec<f32>,
    /// The folded bias per channel.
    pub bias: Vec<f32>,
    /// A variance `v` with `v + ε = 1` exactly in f32.
    identity_var: f32,
}

impl BatchNormFold {
    /// The fold of `bn` after a layer with `channels` outputs and bias `bias` (none = 0).
    ///
    /// # Errors
    /// [`TernaryError::Fold`] naming `layer` when the channel counts differ, a folded factor
    /// or bias is not finite, or no f32 variance makes the identity.
    pub fn new(
        bn: &BatchNorm,
        channels: usize,
        bias: Option<Tensor<1>>,
        layer: &str,
    ) -> Result<Self, TernaryError> {
        let err = |reason: String| TernaryError::Fold {
            layer: layer.into(),
            reason,
        };
        let gamma = to_vec(bn.gamma.val());
        if gamma.len() != channels {
            return Err(err(format!(
                "batch norm has {} channels, the layer {channels}",
                gamma.len()
            )));
        }
        let beta = to_vec(bn.beta.val());
        let mean = to_vec(bn.running_mean.value());
        let var = to_vec(bn.running_var.value());
        let bias = bias.map_or(vec![0.0; channels], to_vec);
        // Burn adds ε as an f32 scalar to the f32 variance.
        let eps = bn.epsilon as f32;
        let identity_var = identity_variance(eps)
            .ok_or_else(|| err(format!("no f32 variance v has v + {eps:e} = 1")))?;
        let mut a = Vec::with_capacity(channels);
        let mut folded = Vec::with_capacity(channels);
        for c in 0..channels {
            let f = gamma[c] / (var[c] + eps).sqrt();
            let b = (bias[c] - mean[c]) * f + beta[c];
            if !(f.is_finite() && b.is_finite()) {
                return Err(err(format!(
                    "channel {c}: gamma {}, beta {}, mean {}, var {}, bias {} give factor {f}, bias {b}",
                    gamma[c], beta[c], mean[c], var[c], bias[c]
                )));
            }
            a.push(f);
            folded.push(b);
        }
        Ok(Self {
            a,
            bias: folded,
            identity_var,
        })
    }

    /// The folded bias as the layer's bias parameter (the old one's id kept when it had one).
    pub fn bias_param(&self, old: Option<Param<Tensor<1>>>, device: &Device) -> Param<Tensor<1>> {
        let bias = Tensor::<1>::from_floats(self.bias.as_slice(), device);
        match old {
            Some(p) => p.map(|_| bias),
            None => Param::from_tensor(bias).set_require_grad(false),
        }
    }

    /// Turns `bn` into the identity: `γ = 1`, `β = 0`, mean 0, variance `v` with
    /// `v + ε = 1`, so `(x − 0) / √1 · 1 + 0 = x` exactly.
    pub fn make_identity(&self, bn: &mut BatchNorm) {
        let n = [self.a.len()];
        let device = bn.gamma.val().device();
        bn.gamma = bn.gamma.clone().map(|_| Tensor::ones(n, &device));
        bn.beta = bn.beta.clone().map(|_| Tensor::zeros(n, &device));
        bn.running_mean = RunningState::new(Tensor::zeros(n, &device));
        bn.running_var = RunningState::new(Tensor::full(n, self.identity_var, &device));
    }
}

/// A variance `v` with `v + eps == 1` in f32, searched near `1 − eps`.
fn identity_variance(eps: f32) -> Option<f32> {
    let mut v = 1.0f32 - eps;
    for _ in 0..8 {
        match (v + eps).total_cmp(&1.0) {
            std::cmp::Ordering::Equal => return Some(v),
            std::cmp::Ordering::Less => v = v.next_up(),
            std::cmp::Ordering::Greater => v = v.next_down(),
        }
    }
    None
}

/// Folds an inference-mode batch norm that follows a full-precision Burn [`Conv2d`] into its
/// weights and bias (`w ← w · a` per output channel, `b ← (b − mean) · a + β`), and turns
/// `bn` into the identity, as [`TernaryConv2d::fold_batch_norm`](super::TernaryConv2d::fold_batch_norm)
/// does for packed layers: the f32 first layer of a ternary CNN gets the same treatment.
///
/// # Errors
/// [`TernaryError::Fold`] when the channel counts differ or a folded value is not finite;
/// the layer and `bn` are then unchanged.
pub fn fold_batch_norm_conv2d(conv: &mut Conv2d, bn: &mut BatchNorm) -> Result<(), TernaryError> {
    let c_out = conv.weight.dims()[0];
    let fold = BatchNormFold::new(bn, c_out, conv.bias.as_ref().map(|b| b.val()), "Conv2d")?;
    let device = conv.weight.val().device();
    let a = Tensor::<1>::from_floats(fold.a.as_slice(), &device).reshape([c_out, 1, 1, 1]);
    let weight = conv.weight.val() * a;
    conv.weight = conv.weight.clone().map(|_| weight);
    conv.bias = Some(fold.bias_param(conv.bias.take(), &device));
    fold.make_identity(bn);
    Ok(())
}
