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
    /// BitNet-style int8 per token (per row of the last dimension), absmax scaling.
    Int8PerToken,
}
