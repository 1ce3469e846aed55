//! The configuration enums shared by every ternary module.

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

/// Whether one scale covers the whole weight or each output channel has its own.
#[derive(Config, Debug, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One scale per tensor.
    PerTensor,
    /// One scale per output channel (output feature of a linear layer, filter of a conv).
    PerChannel,
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
