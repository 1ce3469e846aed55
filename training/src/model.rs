//! The MNIST network: conv + batch norm + ReLU + pooling, then linear layers. Every hidden
//! conv/linear is ternary; the first conv and the classifier stay full precision by default,
//! as in TWN (`ternary_all` makes them ternary too; `full_precision` makes all of them f32).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor};
use burn::train::ClassificationOutput;
use burn_ternary::TernaryError;
use burn_ternary::nn::{TernaryConv2d, TernaryConv2dConfig, TernaryLinear, TernaryLinearConfig};
use burn_ternary::ops::{ConvEpilogue, FusedMaxPool};
use burn_ternary::quant::{ActivationQuant, Granularity, TernaryQuantizer};

/// An image classifier: logits for a batch of images. [`classifier_steps`] gives it the
/// burn-train steps (cross-entropy loss, classification output).
pub trait Classifier {
    /// Logits `[b, classes]` for images `[b, c, h, w]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<2>;

    /// The inference form of a packed model: each batch norm after a packed ternary conv
    /// folded into it, and the ReLU / max pooling after it fused into the conv op (see
    /// [`Conv::fuse`]). Same outputs up to f32 rounding. Nothing to do by default.
    ///
    /// # Errors
    /// [`TernaryError::Fold`] when a batch norm cannot be folded.
    fn fuse(self) -> Result<Self, TernaryError>
    where
        Self: Sized,
    {
        Ok(self)
    }

    /// Loss and logits for a batch.
    fn classify(&self, images: Tensor<4>, targets: Tensor<1, Int>) -> ClassificationOutput {
        let output = self.forward(images);
        let loss = CrossEntropyLossConfig::new()
            .init(&output.device())
            .forward(output.clone(), targets.clone());
        ClassificationOutput {
            loss,
            output,
            targets,
        }
    }
}

/// Implements burn-train's `TrainStep` and `InferenceStep` on [`ImageBatch`](crate::data::ImageBatch) for a
/// [`Classifier`] (a macro because both traits are foreign to this crate).
macro_rules! classifier_steps {
    ($model:ty) => {
        impl burn::train::TrainStep for $model {
            type Input = $crate::data::ImageBatch;
            type Output = burn::train::ClassificationOutput;

            fn step(
                &self,
                batch: $crate::data::ImageBatch,
            ) -> burn::train::TrainOutput<burn::train::ClassificationOutput> {
                let item = $crate::model::Classifier::classify(self, batch.images, batch.targets);
                burn::train::TrainOutput::new(self, item.loss.backward(), item)
            }
        }

        impl burn::train::InferenceStep for $model {
            type Input = $crate::data::ImageBatch;
            type Output = burn::train::ClassificationOutput;

            fn step(&self, batch: $crate::data::ImageBatch) -> burn::train::ClassificationOutput {
                $crate::model::Classifier::classify(self, batch.images, batch.targets)
            }
        }
    };
}
pub(crate) use classifier_steps;

/// Which layers are ternary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Hidden layers ternary; first conv and classifier f32 (TWN's choice).
    Ternary,
    /// Every conv and linear ternary.
    TernaryAll,
    /// Every layer f32: the baseline.
    Full,
}

impl Precision {
    /// Which layers are ternary, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Precision::Ternary => {
                "hidden layers ternary (TWN, per channel), first conv and classifier f32 as in TWN"
            }
            Precision::TernaryAll => "every conv and linear ternary (TWN, per channel)",
            Precision::Full => "full precision (f32 baseline)",
        }
    }
}

/// A conv layer that is either full precision or ternary.
// A handful of layers built once per model: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Conv {
    /// f32.
    Full(Conv2d),
    /// Ternary.
    Ternary(TernaryConv2d),
    /// Packed ternary with the following batch norm folded in and the ReLU / pooling after
    /// it in its epilogue: the inference form [`Conv::fuse`] makes. Save the model before
    /// fusing: a fused model's record names this variant (and not `Ternary`), and the
    /// epilogue is not part of it.
    Fused(TernaryConv2d),
    /// f32 with the following batch norm folded in and the ReLU / pooling after it run as one
    /// epilogue op: the inference form of a [`Conv::Full`] layer.
    FusedFull(FusedConv2d),
}

/// An f32 convolution (batch norm folded in) followed by a [`ConvEpilogue`].
#[derive(Module, Debug)]
pub struct FusedConv2d {
    conv: Conv2d,
    #[module(skip)]
    epilogue: ConvEpilogue,
}

impl Conv {
    /// A 3×3 convolution, stride 1, padding 1, no bias; a ternary one quantizes its input
    /// as `activation` says.
    pub fn new(
        c_in: usize,
        c_out: usize,
        ternary: bool,
        activation: ActivationQuant,
        device: &Device,
    ) -> Self {
        Self::with_geometry(c_in, c_out, 3, 1, ternary, activation, device)
    }

    /// A `kernel × kernel` convolution with `stride` and "same" padding (`kernel / 2`). The
    /// f32 layer has no bias (batch norm follows); the ternary one keeps its f32 bias (a
    /// handful of values). Ternary layers use TWN per output channel and quantize their input
    /// as `activation` says.
    pub fn with_geometry(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        ternary: bool,
        activation: ActivationQuant,
        device: &Device,
    ) -> Self {
        let pad = kernel / 2;
        if ternary {
            Conv::Ternary(
                TernaryConv2dConfig::new([c_in, c_out], [kernel, kernel])
                    .with_stride([stride, stride])
                    .with_padding([pad, pad])
                    .with_quantizer(TernaryQuantizer::Twn)
                    .with_granularity(Granularity::PerChannel)
                    .with_activation(activation)
                    .init(device),
            )
        } else {
            Conv::Full(
                Conv2dConfig::new([c_in, c_out], [kernel, kernel])
                    .with_stride([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                    .with_bias(false)
                    .init(device),
            )
        }
    }

    /// Applies the convolution.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Conv::Full(c) => c.forward(x),
            Conv::Ternary(c) | Conv::Fused(c) => c.forward(x),
            Conv::FusedFull(f) => f.epilogue.apply(f.conv.forward(x)),
        }
    }

    /// `conv → bn → ReLU (if relu) → pool (if given)`; a fused layer runs all of it as its
    /// own forward (its batch norm is the identity by then).
    pub fn forward_block(
        &self,
        x: Tensor<4>,
        bn: &BatchNorm,
        with_relu: bool,
        pool: Option<&MaxPool2d>,
    ) -> Tensor<4> {
        if let Conv::Fused(_) | Conv::FusedFull(_) = self {
            return self.forward(x);
        }
        let y = bn.forward(self.forward(x));
        let y = if with_relu { relu(y) } else { y };
        match pool {
            Some(p) => p.forward(y),
            None => y,
        }
    }

    /// `relu(bn(conv(x)) + residual)`, a residual block's second half; a fused layer (from
    /// [`Conv::fuse_residual`]) adds the residual and applies the ReLU in its conv op.
    pub fn forward_residual_block(
        &self,
        x: Tensor<4>,
        bn: &BatchNorm,
        residual: Tensor<4>,
    ) -> Tensor<4> {
        match self {
            Conv::Fused(c) => c.forward_residual(x, residual),
            _ => relu(self.forward_block(x, bn, false, None) + residual),
        }
    }

    /// The inference form of [`Conv::forward_residual_block`]: `bn` folded in as in
    /// [`Conv::fuse`]; a packed layer also takes the residual add and the ReLU into its op.
    ///
    /// # Errors
    /// Those of [`Conv::fuse`].
    pub fn fuse_residual(self, bn: &mut BatchNorm) -> Result<Self, TernaryError> {
        match self.fuse(bn, false, None)? {
            Conv::Fused(c) => {
                let relu = ConvEpilogue {
                    relu: true,
                    max_pool: None,
                };
                Ok(Conv::Fused(c.with_epilogue(relu)))
            }
            other => Ok(other),
        }
    }

    /// The inference form of [`Conv::forward_block`]: `bn` folded into the layer (a packed
    /// ternary layer's scales and bias, an f32 layer's weights and bias; `bn` is left as the
    /// identity), the ReLU and pooling run as one epilogue (fused into the packed conv op).
    /// Unpacked ternary layers, and pooling the epilogue cannot run
    /// ([`FusedMaxPool::from_layer`]), are left as they are.
    ///
    /// # Errors
    /// Those of [`TernaryConv2d::fold_batch_norm`] and
    /// [`fold_batch_norm_conv2d`](burn_ternary::nn::fold_batch_norm_conv2d).
    pub fn fuse(
        self,
        bn: &mut BatchNorm,
        with_relu: bool,
        pool: Option<&MaxPool2d>,
    ) -> Result<Self, TernaryError> {
        let max_pool = pool.map(FusedMaxPool::from_layer);
        if max_pool == Some(None) {
            return Ok(self);
        }
        let epilogue = ConvEpilogue {
            relu: with_relu,
            max_pool: max_pool.flatten(),
        };
        match self {
            Conv::Ternary(mut c) if c.is_packed() => {
                c.fold_batch_norm(bn)?;
                Ok(Conv::Fused(c.with_epilogue(epilogue)))
            }
            Conv::Full(mut conv) => {
                burn_ternary::nn::fold_batch_norm_conv2d(&mut conv, bn)?;
                Ok(Conv::FusedFull(FusedConv2d { conv, epilogue }))
            }
            other => Ok(other),
        }
    }
}

/// A linear layer that is either full precision or ternary.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Dense {
    /// f32.
    Full(Linear),
    /// Ternary.
    Ternary(TernaryLinear),
}

impl Dense {
    /// A linear layer with bias; ternary layers use TWN per output channel and quantize
    /// their input as `activation` says.
    pub fn new(
        d_in: usize,
        d_out: usize,
        ternary: bool,
        activation: ActivationQuant,
        device: &Device,
    ) -> Self {
        if ternary {
            Dense::Ternary(
                TernaryLinearConfig::new(d_in, d_out)
                    .with_quantizer(TernaryQuantizer::Twn)
                    .with_granularity(Granularity::PerChannel)
                    .with_activation(activation)
                    .init(device),
            )
        } else {
            Dense::Full(LinearConfig::new(d_in, d_out).init(device))
        }
    }

    /// Applies the layer.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Dense::Full(l) => l.forward(x),
            Dense::Ternary(l) => l.forward(x),
        }
    }
}

/// conv(1→32) · BN · ReLU · pool → conv(32→64) · BN · ReLU · pool → conv(64→64) · BN · ReLU
/// → linear(3136→256) · BN · ReLU · dropout → linear(256→10).
#[derive(Module, Debug)]
pub struct MnistNet {
    conv1: Conv,
    bn1: BatchNorm,
    conv2: Conv,
    bn2: BatchNorm,
    conv3: Conv,
    bn3: BatchNorm,
    fc1: Dense,
    bn4: BatchNorm,
    fc2: Dense,
    pool: MaxPool2d,
    dropout: Dropout,
}

impl MnistNet {
    /// A freshly initialised network whose ternary layers quantize their inputs as
    /// `activation` says.
    pub fn new(precision: Precision, activation: ActivationQuant, device: &Device) -> Self {
        let hidden = precision != Precision::Full;
        let edges = precision == Precision::TernaryAll;
        let a = activation;
        Self {
            conv1: Conv::new(1, 32, edges, a, device),
            bn1: BatchNormConfig::new(32).init(device),
            conv2: Conv::new(32, 64, hidden, a, device),
            bn2: BatchNormConfig::new(64).init(device),
            conv3: Conv::new(64, 64, hidden, a, device),
            bn3: BatchNormConfig::new(64).init(device),
            fc1: Dense::new(64 * 7 * 7, 256, hidden, a, device),
            bn4: BatchNormConfig::new(256).init(device),
            fc2: Dense::new(256, 10, edges, a, device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            dropout: DropoutConfig::new(0.25).init(),
        }
    }

    /// Logits `[b, 10]` for images `[b, 1, 28, 28]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let pool = Some(&self.pool);
        let x = self.conv1.forward_block(x, &self.bn1, true, pool);
        let x = self.conv2.forward_block(x, &self.bn2, true, pool);
        let x = self.conv3.forward_block(x, &self.bn3, true, None);
        let x = x.flatten::<2>(1, 3);
        let x = self
            .dropout
            .forward(relu(self.bn4.forward(self.fc1.forward(x))));
        self.fc2.forward(x)
    }
}

impl Classifier for MnistNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        MnistNet::forward(self, x)
    }

    fn fuse(mut self) -> Result<Self, TernaryError> {
        let pool = Some(&self.pool);
        self.conv1 = self.conv1.fuse(&mut self.bn1, true, pool)?;
        self.conv2 = self.conv2.fuse(&mut self.bn2, true, pool)?;
        self.conv3 = self.conv3.fuse(&mut self.bn3, true, None)?;
        Ok(self)
    }
}

classifier_steps!(MnistNet);
