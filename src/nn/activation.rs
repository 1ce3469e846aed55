//! `TernaryActivation`: activations quantized to trits with a straight-through estimator.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

/// Configuration of a [`TernaryActivation`].
#[derive(Config, Debug)]
pub struct TernaryActivationConfig {
    /// The dead zone's half-width θ: `|x| ≤ θ` gives 0 (initial value when learned).
    #[config(default = 0.5)]
    pub threshold: f64,
    /// Whether θ is a trained parameter (one per layer).
    #[config(default = false)]
    pub learn_threshold: bool,
}

impl TernaryActivationConfig {
    /// The module.
    ///
    /// # Panics
    /// When the threshold is not in `(0, 1)` (the surrogate's ramp needs room on both sides).
    pub fn init(&self, device: &Device) -> TernaryActivation {
        assert!(
            self.threshold > 0.0 && self.threshold < 1.0,
            "TernaryActivation: threshold {} must be in (0, 1)",
            self.threshold
        );
        let theta = Param::from_tensor(Tensor::from_floats([self.threshold as f32], device));
        TernaryActivation {
            threshold: if self.learn_threshold {
                theta
            } else {
                theta.set_require_grad(false)
            },
        }
    }
}

/// Ternary activation: `t = sign(x) · [|x| > θ]`, values in {−1, 0, +1}, so that the next
/// layer's inputs are trits (a fully ternary network: trit × trit products, computed at
/// inference by popcount dot products, see [`crate::trit`]).
///
/// Training uses a straight-through estimator whose backward is that of the surrogate
/// `s(x, θ) = sign(x) · clamp((|x| − θ) / w + ½, 0, 1)` with ramp width `w = 2·min(θ, 1 − θ)`:
/// the forward value is exactly `t`, and gradients flow to `x` (slope `1/w` on the ramp
/// around `±θ`, 0 elsewhere and at exactly `x = 0`) and, when learned, to θ (slope
/// `−sign(x)/w` on the ramp). At
/// θ = ½ the surrogate is `clamp(x, −1, 1)`: the usual hard-tanh STE of binary and ternary
/// networks (Hubara et al., arXiv:1609.07061; TWN, arXiv:1605.04711, for the dead zone).
///
/// # Shapes
/// - input: `[...]` → output: the same shape.
#[derive(Module, Debug)]
pub struct TernaryActivation {
    /// θ, `[1]`; trained when the config says so.
    pub threshold: Param<Tensor<1>>,
}

impl TernaryActivation {
    /// Applies the activation (see the type docs).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let theta = self.threshold.val();
        // w = 2·min(θ, 1 − θ): a ramp that stays inside (0, 1) in |x|; a constant for the
        // gradient (θ's gradient is the ramp's shift only).
        let width = theta
            .clone()
            .detach()
            .min_pair(theta.clone().detach().neg().add_scalar(1.0))
            .mul_scalar(2.0)
            .clamp_min(1e-3);
        let dims = x.dims();
        let theta = reshape_scalar::<D>(theta).expand(dims);
        let width = reshape_scalar::<D>(width).expand(dims);
        let sign = x.clone().sign();
        let mag = x.clone().abs();
        let hard = sign.clone() * mag.clone().greater(theta.clone()).float();
        let soft = sign * ((mag - theta) / width).add_scalar(0.5).clamp(0.0, 1.0);
        soft.clone() + (hard - soft).detach()
    }

    /// The current threshold θ.
    pub fn threshold_value(&self) -> f32 {
        self.threshold
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 data")[0]
    }
}

fn reshape_scalar<const D: usize>(t: Tensor<1>) -> Tensor<D> {
    t.reshape([1; D])
}
