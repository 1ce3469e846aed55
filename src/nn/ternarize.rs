//! `ternarize`: make the stock `nn::Linear` / `nn::Conv2d` layers of any Burn model train
//! ternary, through `Module::apply_reparameterization`. The stored parameter stays the latent
//! f32 weight; every forward sees `w + (q(w) − w).detach()`.

use burn::module::{Module, Param, Reparameterization, Reparameterizer};
use burn::tensor::Tensor;

use crate::quant::{Granularity, TernaryQuantizer, fake_ternarize};

/// The straight-through ternary reparameterization of one weight.
#[derive(Module, Debug)]
pub struct TernaryReparam {
    #[module(skip)]
    quantizer: TernaryQuantizer,
    #[module(skip)]
    granularity: Granularity,
}

impl Reparameterization for TernaryReparam {
    const NAME: &'static str = "ternary";

    fn apply<const D: usize>(&self, base: Tensor<D>) -> Tensor<D> {
        // nn::Linear stores [d_input, d_output] (channels on dim 1); nn::Conv2d leads with
        // channels_out.
        let channel_dim = if D == 2 { 1 } else { 0 };
        fake_ternarize(base, self.quantizer, self.granularity, channel_dim)
    }
}

/// Chooses which parameters become ternary: weights of rank 2 (linear) and 4 (conv2d) whose
/// path ends in `weight` and passes the filter.
pub struct Ternarizer<F = fn(&str) -> bool> {
    quantizer: TernaryQuantizer,
    granularity: Granularity,
    filter: F,
}

impl Ternarizer {
    /// Every linear and conv2d weight.
    pub fn new(quantizer: TernaryQuantizer, granularity: Granularity) -> Self {
        Self {
            quantizer,
            granularity,
            filter: |_| true,
        }
    }
}

impl<F: FnMut(&str) -> bool> Ternarizer<F> {
    /// Only the weights whose path (e.g. `"fc1.weight"`) the filter accepts, e.g. to keep the
    /// first and last layers in full precision.
    pub fn with_filter<G: FnMut(&str) -> bool>(self, filter: G) -> Ternarizer<G> {
        Ternarizer {
            quantizer: self.quantizer,
            granularity: self.granularity,
            filter,
        }
    }
}

impl<F: FnMut(&str) -> bool> Reparameterizer for Ternarizer<F> {
    type Reparam = TernaryReparam;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<TernaryReparam>) {
        let wanted = (D == 2 || D == 4) && path.ends_with("weight") && (self.filter)(path);
        let reparam = wanted.then_some(TernaryReparam {
            quantizer: self.quantizer,
            granularity: self.granularity,
        });
        (param, reparam)
    }
}

/// Makes every stock linear/conv2d weight of `model` train ternary (straight-through).
pub fn ternarize<M: Module>(model: M, quantizer: TernaryQuantizer, granularity: Granularity) -> M {
    model.apply_reparameterization(Ternarizer::new(quantizer, granularity))
}
