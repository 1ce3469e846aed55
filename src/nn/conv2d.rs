//! `TernaryConv2d`: a 2-D convolution with ternary filters, with the same two states as
//! [`super::TernaryLinear`]. The packed forward is the backend extension's native ternary
//! convolution (on Flex the kernel crate's implicit-im2col conv, in exact-f32 or per-image
//! W2A8 mode); the training forward is Burn's `conv2d` with fake-ternarized filters and, in
//! W2A8 mode, per-image fake-quantized input — the same lowering, so QAT trains what
//! inference runs.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Int, Tensor};

use super::fold;
use super::packing::{self, int_param, int_zeros, row_words, scheme_codes, scheme_tensor};
use crate::error::TernaryError;
use crate::ops::{
    ConvEpilogue, TernaryConvOptions, check_fused, conv2d_im2col, ternary_conv2d_fused,
    ternary_conv2d_per_patch, ternary_conv2d_residual,
};
use crate::quant::{
    ActivationQuant, Granularity, TernaryQuantizer, fake_quantize_activations, fake_ternarize,
    ternarize, ternarize_for_packing,
};

/// Configuration of a [`TernaryConv2d`].
#[derive(Config, Debug)]
pub struct TernaryConv2dConfig {
    /// `[channels_in, channels_out]`.
    pub channels: [usize; 2],
    /// Kernel height and width.
    pub kernel_size: [usize; 2],
    /// Stride.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Dilation.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Groups.
    #[config(default = "1")]
    pub groups: usize,
    /// Symmetric zero padding.
    #[config(default = "[0, 0]")]
    pub padding: [usize; 2],
    /// Whether to add a bias.
    #[config(default = false)]
    pub bias: bool,
    /// Weight quantizer.
    #[config(default = "TernaryQuantizer::AbsMean")]
    pub quantizer: TernaryQuantizer,
    /// One scale per tensor or per filter.
    #[config(default = "Granularity::PerTensor")]
    pub granularity: Granularity,
    /// Activation quantization: [`ActivationQuant::Int8PerImage`] (W2A8 on the integer
    /// kernels, one scale per image), [`ActivationQuant::None`] (exact f32), or the legacy
    /// per-patch [`ActivationQuant::Int8PerToken`].
    #[config(default = "ActivationQuant::None")]
    pub activation: ActivationQuant,
    /// Initializer of the latent weights (as `nn::Conv2d`).
    #[config(
        default = "Initializer::KaimingUniform{gain:0.577_350_269_189_625_8, fan_out_only:false}"
    )]
    pub initializer: Initializer,
}

/// A 2-D convolution with ternary filters.
#[derive(Module, Debug)]
pub struct TernaryConv2d {
    /// `[quantizer, granularity, activation]` codes recorded with the weights.
    pub scheme: Param<Tensor<1, Int>>,
    /// Latent weights `[c_out, c_in/groups, kh, kw]`; `[0, ..]` once packed.
    pub weight: Param<Tensor<4>>,
    /// Packed `I2` words `[c_out, words]`, one row per filter; `[0, ..]` while training.
    pub packed: Param<Tensor<2, Int>>,
    /// Scales: `[1]`, `[c_out]`, or `[c_out · ceil(K / g)]` (row-major, per group of `g` of a
    /// filter's `K = c_in/groups · kh · kw` values); `[0]` while training.
    pub scales: Param<Tensor<1>>,
    /// Bias `[c_out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Stride.
    pub stride: [usize; 2],
    /// Kernel size.
    pub kernel_size: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
    /// Groups.
    pub groups: usize,
    /// Padding.
    pub padding: [usize; 2],
    /// Input channels.
    pub channels_in: usize,
    /// Weight quantizer.
    #[module(skip)]
    pub quantizer: TernaryQuantizer,
    /// Scale granularity.
    #[module(skip)]
    pub granularity: Granularity,
    /// Activation quantization.
    #[module(skip)]
    pub activation: ActivationQuant,
    /// What `forward` applies after the convolution and bias (ReLU, max pooling); nothing
    /// by default. Not part of the record: set it again after loading
    /// ([`TernaryConv2d::with_epilogue`]).
    #[module(skip)]
    pub epilogue: ConvEpilogue,
}

impl TernaryConv2dConfig {
    fn k(&self) -> usize {
        self.channels[0] / self.groups * self.kernel_size[0] * self.kernel_size[1]
    }

    /// A layer in the training state.
    pub fn init(&self, device: &Device) -> TernaryConv2d {
        self.granularity.check("TernaryConv2dConfig");
        assert!(
            self.groups > 0
                && self.channels[0].is_multiple_of(self.groups)
                && self.channels[1].is_multiple_of(self.groups),
            "TernaryConv2d: groups {} must divide channels {:?}",
            self.groups,
            self.channels
        );
        let [kh, kw] = self.kernel_size;
        let fan_in = self.channels[0] / self.groups * kh * kw;
        let fan_out = self.channels[1] / self.groups * kh * kw;
        let shape = [self.channels[1], self.channels[0] / self.groups, kh, kw];
        let weight = self
            .initializer
            .init_with(shape, Some(fan_in), Some(fan_out), device);
        self.build(weight, device)
    }

    /// A layer in the packed state with zero weights: the shape to load a packed record into.
    pub fn init_packed(&self, device: &Device) -> TernaryConv2d {
        let [kh, kw] = self.kernel_size;
        let shape = [0, self.channels[0] / self.groups, kh, kw];
        let mut layer = self.build(Param::from_tensor(Tensor::zeros(shape, device)), device);
        layer.packed = int_param(int_zeros([self.channels[1], row_words(self.k())], device));
        self.granularity.check("TernaryConv2dConfig");
        let n = self.granularity.scale_count(self.channels[1], self.k());
        layer.scales = Param::from_tensor(Tensor::zeros([n], device)).set_require_grad(false);
        layer
    }

    fn build(&self, weight: Param<Tensor<4>>, device: &Device) -> TernaryConv2d {
        let [kh, kw] = self.kernel_size;
        let fan_in = self.channels[0] / self.groups * kh * kw;
        let bias = self.bias.then(|| {
            self.initializer
                .init_with([self.channels[1]], Some(fan_in), None, device)
        });
        let codes = scheme_codes(self.quantizer, self.granularity, self.activation);
        TernaryConv2d {
            scheme: int_param(scheme_tensor(codes, device)),
            weight,
            packed: int_param(int_zeros([0, row_words(self.k())], device)),
            scales: Param::from_tensor(Tensor::zeros([0], device)).set_require_grad(false),
            bias,
            stride: self.stride,
            kernel_size: self.kernel_size,
            dilation: self.dilation,
            groups: self.groups,
            padding: self.padding,
            channels_in: self.channels[0],
            quantizer: self.quantizer,
            granularity: self.granularity,
            activation: self.activation,
            epilogue: ConvEpilogue::default(),
        }
    }
}

impl TernaryConv2d {
    /// True once the layer holds packed weights.
    pub fn is_packed(&self) -> bool {
        self.packed.val().dims()[0] > 0
    }

    fn k(&self) -> usize {
        self.channels_in / self.groups * self.kernel_size[0] * self.kernel_size[1]
    }

    fn options(&self) -> TernaryConvOptions {
        TernaryConvOptions {
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }
    }

    /// The ternary values and scales the training forward uses (weight layout; per group, each
    /// weight's own group scale).
    pub fn ternary_weights(&self) -> (Tensor<4>, Tensor<4>) {
        ternarize(self.weight.val(), self.quantizer, self.granularity, 0)
    }

    /// The effective (dequantized) filters `[c_out, c_in/groups, kh, kw]` of either state.
    pub fn effective_weight(&self) -> Tensor<4> {
        if self.is_packed() {
            let w = crate::ops::ternary_dequantize(self.packed.val(), self.scales.val(), self.k());
            let c_out = w.dims()[0];
            let [kh, kw] = self.kernel_size;
            w.reshape([c_out, self.channels_in / self.groups, kh, kw])
        } else {
            let (t, s) = self.ternary_weights();
            t * s
        }
    }

    /// Converts to the packed state with the ternary values the training forward used.
    pub fn freeze(self) -> Result<Self, TernaryError> {
        if self.is_packed() {
            return Ok(self);
        }
        let (rows, s) =
            ternarize_for_packing(self.weight.val(), self.quantizer, self.granularity, 0);
        let (packed, scales) = packing::pack(rows, s, "TernaryConv2d")?;
        let device = packed.device();
        let [kh, kw] = self.kernel_size;
        let empty = [0, self.channels_in / self.groups, kh, kw];
        Ok(Self {
            weight: self.weight.map(|_| Tensor::zeros(empty, &device)),
            packed: self.packed.map(|_| packed),
            scales: self.scales.map(|_| scales),
            ..self
        })
    }

    /// Applies the convolution, the bias and the layer's [`ConvEpilogue`] (nothing by
    /// default; see [`TernaryConv2d::with_epilogue`]).
    ///
    /// # Shapes
    /// - input: `[batch, channels_in, h, w]` → `[batch, channels_out, h_out, w_out]`, pooled
    ///   to the window's output size when the epilogue pools
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let dims = input.dims();
        assert_eq!(
            dims[1], self.channels_in,
            "TernaryConv2d: input {dims:?} must have {} channels",
            self.channels_in
        );
        match self.native_int8() {
            Some(int8) => ternary_conv2d_fused(
                input,
                self.packed.val(),
                self.scales.val(),
                self.bias.as_ref().map(|b| b.val()),
                self.options(),
                self.epilogue,
                int8,
            ),
            None => self.epilogue.apply(self.forward_unfused(input)),
        }
    }

    /// `epilogue(conv(x) + bias + residual)`: a residual connection added before the epilogue
    /// (in the packed state one fused op; while training, Burn ops).
    ///
    /// # Shapes
    /// - input: `[batch, channels_in, h, w]`, residual: the convolution's output
    ///   `[batch, channels_out, h_out, w_out]` → that, pooled when the epilogue pools
    pub fn forward_residual(&self, input: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
        let bias = self.bias.as_ref().map(|b| b.val());
        match self.native_int8() {
            Some(int8) => ternary_conv2d_residual(
                input,
                self.packed.val(),
                self.scales.val(),
                bias,
                residual,
                self.options(),
                self.epilogue,
                int8,
            ),
            None => {
                // The packed op's contract, so Burn's add cannot broadcast a residual of
                // another shape here.
                let c_out = if self.is_packed() {
                    self.packed.val().dims()[0]
                } else {
                    self.weight.val().dims()[0]
                };
                let op = "TernaryConv2d::forward_residual";
                check_fused(
                    op,
                    &input,
                    c_out,
                    bias,
                    Some(&residual),
                    self.options(),
                    self.epilogue,
                );
                self.epilogue.apply(self.forward_unfused(input) + residual)
            }
        }
    }

    /// The activation mode of the backend's native packed conv op (`Some(int8)`), or `None`
    /// when the layer runs as Burn ops: in the training state, and the legacy per-patch W2A8.
    fn native_int8(&self) -> Option<bool> {
        let int8 = match self.activation {
            ActivationQuant::None => false,
            ActivationQuant::Int8PerImage => true,
            ActivationQuant::Int8PerToken => return None,
        };
        self.is_packed().then_some(int8)
    }

    /// Convolution and bias as Burn ops, without the epilogue: the training forward
    /// (fake-ternarized filters, fake-quantized input as the activation mode says) and the
    /// legacy packed per-patch W2A8 path.
    fn forward_unfused(&self, input: Tensor<4>) -> Tensor<4> {
        let bias = self.bias.as_ref().map(|b| b.val());
        if self.is_packed() {
            // Only the legacy per-patch mode gets here (see `native_int8`).
            let (packed, scales) = (self.packed.val(), self.scales.val());
            return ternary_conv2d_per_patch(input, packed, scales, bias, self.options());
        }
        let w = fake_ternarize(self.weight.val(), self.quantizer, self.granularity, 0);
        let options = ConvOptions::new(self.stride, self.padding, self.dilation, self.groups);
        match self.activation {
            ActivationQuant::None => conv2d(input, w, bias, options),
            ActivationQuant::Int8PerImage => {
                // One int8 scale per image over all of its C·H·W values, as the packed
                // op quantizes the feature map before its integer convolution.
                let [b, c, h, wd] = input.dims();
                let x = fake_quantize_activations(input.reshape([b, c * h * wd]))
                    .reshape([b, c, h, wd]);
                conv2d(x, w, bias, options)
            }
            ActivationQuant::Int8PerToken => {
                // Per im2col row (one output position's patch), as the legacy packed
                // path does.
                let c_out = w.dims()[0];
                let n_g = c_out / self.groups;
                let w_rows = w.reshape([c_out, self.k()]);
                conv2d_im2col(input, self.options(), c_out, bias, |rows, g| {
                    let w_g = w_rows.clone().narrow(0, g * n_g, n_g);
                    fake_quantize_activations(rows).matmul(w_g.transpose())
                })
            }
        }
    }

    /// The same layer with `epilogue` applied by `forward` after the convolution and bias
    /// (fused into the convolution op in the packed state; separate Burn ops while
    /// training, so gradients flow as through `relu` and `max_pool2d`).
    pub fn with_epilogue(self, epilogue: ConvEpilogue) -> Self {
        Self { epilogue, ..self }
    }

    /// Folds an inference-mode batch norm that follows this packed layer into its scales and
    /// bias, and turns `bn` into the identity, so `bn.forward(conv.forward(x))` is unchanged
    /// (up to f32 rounding) and the batch norm can be skipped.
    ///
    /// With `a = γ / √(running_var + ε)` per channel, the new scale is `scale · |a|`, the
    /// filter's ternary codes are negated where `a < 0`, and the new bias is
    /// `(bias − running_mean) · a + β`: batch norm (Ioffe & Szegedy, arXiv:1502.03167) in
    /// inference form is an affine map per channel. The identity left in `bn` is `γ = 1`,
    /// `β = 0`, `mean = 0` and a variance `v` with `v + ε = 1` exactly in f32, so the same
    /// module structure saved after folding and run unfused gives the same outputs. The
    /// folded layer has one scale per channel (one per channel and group when it had group
    /// scales) and a bias (its granularity and recorded scheme say so), so the template it is
    /// loaded into needs `with_bias(true)` and that granularity.
    ///
    /// # Errors
    /// [`TernaryError::Fold`] when the layer is not packed, the batch norm's channel count
    /// differs, a folded scale or bias is not finite, or no f32 variance makes the identity;
    /// the layer and `bn` are then unchanged.
    pub fn fold_batch_norm(&mut self, bn: &mut burn::nn::BatchNorm) -> Result<(), TernaryError> {
        let layer = "TernaryConv2d";
        if !self.is_packed() {
            return Err(TernaryError::Fold {
                layer: layer.into(),
                reason: "the layer is not packed (call freeze first)".into(),
            });
        }
        let (c_out, k) = (self.packed.val().dims()[0], self.k());
        let bias = self.bias.as_ref().map(|b| b.val());
        let fold = fold::BatchNormFold::new(bn, c_out, bias, layer)?;
        let scales = fold::to_vec(self.scales.val());
        // Scales per channel: 1 per tensor becomes 1 per channel; per channel and per group
        // keep their count.
        let per_channel = if scales.len() == 1 {
            1
        } else {
            scales.len() / c_out.max(1)
        };
        let mut new_scales = Vec::with_capacity(c_out * per_channel);
        for (c, a) in fold.a.iter().enumerate() {
            for j in 0..per_channel {
                let old = scales[if scales.len() == 1 {
                    0
                } else {
                    c * per_channel + j
                }];
                let s = old * a.abs();
                if !s.is_finite() {
                    return Err(TernaryError::Fold {
                        layer: layer.into(),
                        reason: format!("channel {c}: scale {old} times |{a}| is {s}"),
                    });
                }
                new_scales.push(s);
            }
        }
        let device = self.packed.val().device();
        // The ternary codes, negated on channels whose batch norm factor is negative.
        let codes =
            crate::ops::ternary_dequantize(self.packed.val(), Tensor::ones([1], &device), k);
        let signs: Vec<f32> = fold
            .a
            .iter()
            .map(|a| if *a < 0.0 { -1.0 } else { 1.0 })
            .collect();
        let codes = codes * Tensor::<1>::from_floats(signs.as_slice(), &device).reshape([c_out, 1]);
        let scales = Tensor::<1>::from_floats(new_scales.as_slice(), &device);
        let (packed, scales) = packing::pack(codes, scales, layer)?;
        self.packed = self.packed.clone().map(|_| packed);
        self.scales = self.scales.clone().map(|_| scales);
        self.bias = Some(fold.bias_param(self.bias.take(), &device));
        // One scale per channel now (or still per group), whatever the layer had: say so in
        // the recorded scheme too, so a saved folded layer loads into a template of that granularity.
        if !matches!(self.granularity, Granularity::PerGroup { .. }) {
            self.granularity = Granularity::PerChannel;
        }
        let codes = scheme_codes(self.quantizer, self.granularity, self.activation);
        self.scheme = self.scheme.clone().map(|_| scheme_tensor(codes, &device));
        fold.make_identity(bn);
        Ok(())
    }
}
