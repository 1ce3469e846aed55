//! The configuration enums shared by every ternary module.

// `Granularity`'s variants are the field's names (per tensor / channel / group); `Config`'s
// derive copies them into a serde twin, so the lint is allowed for the module, not the enum.
#![allow(clippy::enum_variant_names)]

use burn::config::Config;

/// How latent f32 weights become ternary values and a scale.
#[derive(Config, Debug, Copy, PartialEq, Eq, Hash)]
pub enum TernaryQuantizer {
    /// BitNet b1.58 (arXiv:2402.17764): `γ = mean|W|`, `RoundClip(W/γ, −1, 1)`, scale `γ`.
    AbsMean,
    /// Ternary Weight Networks (arXiv:1605.04711): `Δ = 0.7·mean|W|`, scale = mean of the
    /// kept `|W|`.
    Twn,
}

/// Whether one scale covers the whole weight, each output channel has its own, or each
/// output channel has one per group of consecutive input columns.
#[derive(Config, Debug, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One scale per tensor.
    PerTensor,
    /// One scale per output channel (output feature of a linear layer, filter of a conv).
    PerChannel,
    /// One scale per output channel and per group of `group_size` consecutive columns of its
    /// reduction axis K (a linear layer's input features; a conv filter's
    /// `c_in/groups · kh · kw` values in that order), the last group ragged when
    /// `group_size` does not divide K. `group_size` is 64, 128 or 256
    /// ([`ternary_kernels::GROUP_SIZES`](ternary_kernels::format::GROUP_SIZES)): the block
    /// scales of ggml's `TQ1_0`/`TQ2_0` (256) and of Burn's per-block `Q2S` (64, 128). The
    /// packed scale tensor is `[n · ceil(K / group_size)]`, row-major.
    PerGroup {
        /// Columns per group: 64, 128 or 256.
        group_size: usize,
    },
}

impl Granularity {
    /// The number of scales of an `n × k` weight (`n` output channels, `k` reduction
    /// columns) at this granularity.
    pub fn scale_count(&self, n: usize, k: usize) -> usize {
        match self {
            Granularity::PerTensor => 1,
            Granularity::PerChannel => n,
            Granularity::PerGroup { group_size } => n * k.div_ceil((*group_size).max(1)),
        }
    }

    /// Panics naming the value unless a group size is one of 64, 128, 256.
    pub(crate) fn check(&self, layer: &str) {
        if let Granularity::PerGroup { group_size } = self {
            assert!(
                ternary_kernels::format::GROUP_SIZES.contains(group_size),
                "{layer}: group size {group_size} is not one of 64, 128, 256"
            );
        }
    }
}

/// What happens to a layer's input activations.
#[derive(Config, Debug, Copy, PartialEq, Eq, Hash)]
pub enum ActivationQuant {
    /// Exact f32 activations.
    None,
    /// BitNet-style int8 per token (per row of the last dimension), absmax scaling. On a
    /// convolution: per output position, over its patch (each patch quantized on its own, so
    /// the feature map is quantized once per patch that reads it — the slow legacy lowering;
    /// prefer [`ActivationQuant::Int8PerImage`]).
    Int8PerToken,
    /// Int8 with one absmax scale per sample over its whole input (`C·H·W` values of an image;
    /// the feature vector of a linear layer's input row). A convolution's feature map is then
    /// quantized once and every patch reads the same int8 values, so the packed conv runs on
    /// the integer (VNNI) kernels. Error bound: each activation moves by at most
    /// `max|x| / 254` of its sample. On a linear layer it is per row of the last dimension,
    /// as [`ActivationQuant::Int8PerToken`] (one row per sample for `[batch, features]`).
    Int8PerImage,
}
