//! `TernaryLinear`: a linear layer whose weights are ternary.
//!
//! One type has two states. **Training**: latent f32 weights, forward with straight-through
//! fake quantization (plain tensor ops, so every device and Autodiff work). **Packed**: after
//! [`TernaryLinear::freeze`] (or [`crate::nn::freeze`] on a whole model) the latent weights
//! are replaced by 2-bit packed words and scales, and the forward is the backend extension's
//! ternary GEMM. The record of a packed layer holds ≤ 2 bits per weight.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::{Device, Int, Tensor};

use super::packing::{self, int_param, int_zeros, row_words, scheme_codes, scheme_tensor};
use crate::error::TernaryError;
use crate::ops::ternary_linear;
use crate::quant::{
    ActivationQuant, Granularity, TernaryQuantizer, fake_quantize_activations, fake_ternarize,
    group_means_expanded, ternarize, ternarize_for_packing,
};

/// Configuration of a [`TernaryLinear`].
#[derive(Config, Debug)]
pub struct TernaryLinearConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether to add a (full-precision) bias.
    #[config(default = true)]
    pub bias: bool,
    /// Weight quantizer.
    #[config(default = "TernaryQuantizer::AbsMean")]
    pub quantizer: TernaryQuantizer,
    /// One scale per tensor, per output feature, or per output feature and group of input
    /// features.
    #[config(default = "Granularity::PerTensor")]
    pub granularity: Granularity,
    /// Activation quantization.
    #[config(default = "ActivationQuant::None")]
    pub activation: ActivationQuant,
    /// Initializer of the latent weights (as `nn::Linear`).
    #[config(
        default = "Initializer::KaimingUniform{gain:0.577_350_269_189_625_8, fan_out_only:false}"
    )]
    pub initializer: Initializer,
}

/// A linear layer with ternary weights. See the module docs for its two states.
#[derive(Module, Debug)]
pub struct TernaryLinear {
    /// `[quantizer, granularity, activation]` codes, recorded with the weights so a checkpoint
    /// knows how to be packed.
    pub scheme: Param<Tensor<1, Int>>,
    /// Latent weights `[d_input, d_output]` (as `nn::Linear`); `[0, d_output]` once packed.
    pub weight: Param<Tensor<2>>,
    /// Packed `I2` words `[d_output, ceil(d_input/128)·8]`; `[0, ..]` while training.
    pub packed: Param<Tensor<2, Int>>,
    /// Scales of the packed weights: `[1]`, `[d_output]`, or `[d_output · ceil(d_input / g)]`
    /// (row-major, per group of `g` input features); `[0]` while training.
    pub scales: Param<Tensor<1>>,
    /// Bias `[d_output]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Input features.
    pub d_input: usize,
    /// Weight quantizer.
    #[module(skip)]
    pub quantizer: TernaryQuantizer,
    /// Scale granularity.
    #[module(skip)]
    pub granularity: Granularity,
    /// Activation quantization.
    #[module(skip)]
    pub activation: ActivationQuant,
}

impl TernaryLinearConfig {
    /// A layer in the training state.
    ///
    /// # Panics
    /// When a group size is not 64, 128 or 256.
    pub fn init(&self, device: &Device) -> TernaryLinear {
        self.granularity.check("TernaryLinearConfig");
        let weight = self.initializer.init_with(
            [self.d_input, self.d_output],
            Some(self.d_input),
            Some(self.d_output),
            device,
        );
        self.build(weight, device)
    }

    /// A layer in the packed state with zero weights: the shape to load a packed record into.
    ///
    /// # Panics
    /// When a group size is not 64, 128 or 256.
    pub fn init_packed(&self, device: &Device) -> TernaryLinear {
        self.granularity.check("TernaryLinearConfig");
        let mut layer = self.build(
            Param::from_tensor(Tensor::zeros([0, self.d_output], device)),
            device,
        );
        layer.packed = int_param(int_zeros([self.d_output, row_words(self.d_input)], device));
        let n_scales = self.granularity.scale_count(self.d_output, self.d_input);
        layer.scales =
            Param::from_tensor(Tensor::zeros([n_scales], device)).set_require_grad(false);
        layer
    }

    fn build(&self, weight: Param<Tensor<2>>, device: &Device) -> TernaryLinear {
        let bias = self.bias.then(|| {
            self.initializer.init_with(
                [self.d_output],
                Some(self.d_input),
                Some(self.d_output),
                device,
            )
        });
        let codes = scheme_codes(self.quantizer, self.granularity, self.activation);
        TernaryLinear {
            scheme: int_param(scheme_tensor(codes, device)),
            weight,
            packed: int_param(int_zeros([0, row_words(self.d_input)], device)),
            scales: Param::from_tensor(Tensor::zeros([0], device)).set_require_grad(false),
            bias,
            d_input: self.d_input,
            quantizer: self.quantizer,
            granularity: self.granularity,
            activation: self.activation,
        }
    }
}

impl TernaryLinear {
    /// A layer in the packed state holding `packed` (`n = d_output` rows of `k = d_input`
    /// codes) with its per-tensor, per-row or per-group scales, unchanged: how a checkpoint
    /// read by [`crate::import`] (GGUF `TQ1_0`/`TQ2_0` with their 256-column block scales,
    /// Hugging Face BitNet, Burn `Q2S`, packed safetensors) becomes a layer. `bias` is `[n]`;
    /// `activation` chooses exact f32 or int8 (W2A8) inputs.
    ///
    /// # Panics
    /// When `bias` is not `[n]`.
    pub fn from_packed(
        packed: &ternary_kernels::PackedI2,
        bias: Option<Tensor<1>>,
        activation: ActivationQuant,
        device: &Device,
    ) -> Self {
        let (n, k) = (packed.n(), packed.k());
        if let Some(b) = &bias {
            assert_eq!(
                b.dims(),
                [n],
                "TernaryLinear::from_packed: bias {:?} for {n} output features",
                b.dims()
            );
        }
        let granularity = match packed.scales() {
            ternary_kernels::Scales::PerTensor(_) => Granularity::PerTensor,
            ternary_kernels::Scales::PerRow(_) => Granularity::PerChannel,
            ternary_kernels::Scales::PerGroup { group_size, .. } => Granularity::PerGroup {
                group_size: *group_size,
            },
        };
        let (words, scales) = packing::to_tensors(packed, device);
        let config = TernaryLinearConfig::new(k, n)
            .with_bias(false)
            .with_granularity(granularity)
            .with_activation(activation);
        let mut layer = config.build(Param::from_tensor(Tensor::zeros([0, n], device)), device);
        layer.packed = int_param(words);
        layer.scales = Param::from_tensor(scales).set_require_grad(false);
        layer.bias = bias.map(Param::from_tensor);
        layer
    }

    /// True once the layer holds packed weights.
    pub fn is_packed(&self) -> bool {
        self.packed.val().dims()[0] > 0
    }

    /// Output features.
    pub fn d_output(&self) -> usize {
        self.weight.val().dims()[1]
    }

    /// The ternary values `[d_input, d_output]` and scales the training forward uses: `[1, 1]`
    /// per tensor, `[1, d_output]` per channel, `[d_input, d_output]` (each weight's own
    /// group scale) per group.
    pub fn ternary_weights(&self) -> (Tensor<2>, Tensor<2>) {
        ternarize(self.weight.val(), self.quantizer, self.granularity, 1)
    }

    /// The effective (dequantized) weights `[d_input, d_output]` of either state.
    pub fn effective_weight(&self) -> Tensor<2> {
        if self.is_packed() {
            crate::ops::ternary_dequantize(self.packed.val(), self.scales.val(), self.d_input)
                .transpose()
        } else {
            let (t, s) = self.ternary_weights();
            t * s
        }
    }

    /// Converts to the packed state with exactly the ternary values and scales the training
    /// forward used. Errors (naming the layer) on non-finite weights.
    pub fn freeze(self) -> Result<Self, TernaryError> {
        if self.is_packed() {
            return Ok(self);
        }
        let (rows, s) =
            ternarize_for_packing(self.weight.val(), self.quantizer, self.granularity, 1);
        let (packed, scales) = packing::pack(rows, s, "TernaryLinear")?;
        let device = packed.device();
        let n = self.d_output();
        Ok(Self {
            weight: self.weight.map(|_| Tensor::zeros([0, n], &device)),
            packed: self.packed.map(|_| packed),
            scales: self.scales.map(|_| scales),
            ..self
        })
    }

    /// Back to the training state from the packed one, for fine-tuning a packed (imported)
    /// model with QAT: latent weights chosen so that the training forward's quantizer gives
    /// back exactly the packed codes and, up to the f32 rounding of a mean, the packed scales.
    /// With absmean, `latent = code · scale / p` where `p` is the fraction of non-zero codes of
    /// the scale's group (tensor or output feature), since `mean|latent| = scale` and
    /// `|latent| / scale = 1/p ≥ 1` rounds to the code; with TWN, `latent = code · scale`. The
    /// latent weights a checkpoint was trained from are not in it, so they are not recovered.
    /// A layer already in the training state is returned as it is.
    pub fn unfreeze(self) -> Self {
        if !self.is_packed() {
            return self;
        }
        // [d_input, d_output]: code · scale.
        let effective = self.effective_weight();
        let latent = match self.quantizer {
            TernaryQuantizer::Twn => effective,
            TernaryQuantizer::AbsMean => {
                let nonzero = effective.clone().abs().greater_elem(0.0).float();
                let p = match self.granularity {
                    Granularity::PerTensor => nonzero.mean().unsqueeze::<2>(),
                    Granularity::PerChannel => nonzero.mean_dim(0),
                    // [d_input, d_output]: the fraction of its group, at each weight.
                    Granularity::PerGroup { group_size } => {
                        group_means_expanded(nonzero.transpose(), group_size).transpose()
                    }
                };
                // An all-zero group has p = 0 and latent 0 (0 / tiny), not NaN.
                effective / p.clamp_min(f32::MIN_POSITIVE)
            }
        };
        let device = latent.device();
        let words = row_words(self.d_input);
        Self {
            weight: self.weight.map(|_| latent),
            packed: self.packed.map(|_| int_zeros([0, words], &device)),
            scales: self.scales.map(|_| Tensor::zeros([0], &device)),
            ..self
        }
    }

    /// The packed weights as a [`ternary_kernels::PackedI2`]: `n = d_output` rows of
    /// `k = d_input` codes with the layer's per-tensor, per-row or per-group scales — what a checkpoint
    /// writer (`burn_ternary::import`) takes. `Ok(None)` in the training state.
    ///
    /// # Errors
    /// [`TernaryError::Pack`] when the layer's packed words are not a valid `I2` matrix (a
    /// code 3, non-zero padding: a corrupted record).
    pub fn to_packed(&self) -> Result<Option<ternary_kernels::PackedI2>, TernaryError> {
        if !self.is_packed() {
            return Ok(None);
        }
        let words: Vec<i32> = self
            .packed
            .val()
            .into_data()
            .convert::<i32>()
            .try_into_vec()
            .expect("i32 data");
        let scales: Vec<f32> = self
            .scales
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .expect("f32 data");
        let n = words.len() / row_words(self.d_input).max(1);
        let bytes = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let err = |source| TernaryError::Pack {
            layer: "TernaryLinear".into(),
            source,
        };
        let scales = ternary_kernels::Scales::from_flat(n, self.d_input, scales).map_err(err)?;
        ternary_kernels::PackedI2::from_packed_rows(n, self.d_input, scales, bytes)
            .map(Some)
            .map_err(err)
    }

    /// The packed layer applied to trit inputs (`[m, d_input]`, e.g. the outputs of a
    /// [`TernaryActivation`](super::TernaryActivation)) as a trit × trit product: exact integer
    /// dot products by popcount (`ternary_kernels::trit::Kernel::matmul`, no
    /// multiplications), then one multiply by the output's scale and the bias. Equals
    /// [`TernaryLinear::forward`] on the same values as floats up to f32 rounding. Returns
    /// `[m, d_output]` on `device`.
    ///
    /// # Errors
    /// [`TernaryError::Pack`] when the layer is not packed ([`TernaryLinear::freeze`] first),
    /// its words are corrupt, or it has more than one scale group per row (the trit product
    /// gives one integer dot per output).
    ///
    /// # Panics
    /// When the inputs' width is not `d_input` (names both).
    pub fn forward_trits(
        &self,
        input: &crate::trit::TritTensor<2>,
        device: &Device,
    ) -> Result<Tensor<2>, TernaryError> {
        let [m, k] = input.dims();
        assert_eq!(
            k, self.d_input,
            "TernaryLinear::forward_trits: inputs of width {k}, d_input = {}",
            self.d_input
        );
        let packed = self.to_packed()?.ok_or_else(|| TernaryError::Pack {
            layer: "TernaryLinear::forward_trits".into(),
            source: ternary_kernels::KernelError::Length {
                what: "packed rows (the layer is in the training state: freeze it first)",
                expected: self.d_output(),
                actual: 0,
            },
        })?;
        let n = packed.n();
        if let Some(g) = packed.scales().group_size().filter(|&g| g < k) {
            // One integer dot per output cannot be split into its groups afterwards.
            return Err(TernaryError::Pack {
                layer: "TernaryLinear::forward_trits".into(),
                source: ternary_kernels::KernelError::Length {
                    what: "scale groups per row (trit products take one scale per output; this layer has one per group of 64–256 inputs)",
                    expected: 1,
                    actual: k.div_ceil(g),
                },
            });
        }
        let weights = ternary_kernels::trit::PackedTrits::from_i8(&packed.to_ternary())
            .expect("packed codes are trits");
        let dots = ternary_kernels::trit::best()
            .matmul(&input.packed(), &weights, m, n, k)
            .map_err(|source| TernaryError::Pack {
                layer: "TernaryLinear::forward_trits".into(),
                source,
            })?;
        let scales: Vec<f32> = (0..n).map(|r| packed.scales().at(r, 0, k)).collect();
        let bias: Vec<f32> = match &self.bias {
            Some(b) => b
                .val()
                .into_data()
                .convert::<f32>()
                .try_into_vec()
                .expect("f32 data"),
            None => vec![0.0; n],
        };
        let out: Vec<f32> = dots
            .iter()
            .enumerate()
            .map(|(i, &d)| d as f32 * scales[i % n] + bias[i % n])
            .collect();
        Ok(Tensor::from_data(
            burn::tensor::TensorData::new(out, [m, n]),
            device,
        ))
    }

    /// Applies the layer.
    ///
    /// # Shapes
    /// - input: `[..., d_input]` → `[..., d_output]`
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let dims = input.dims();
        assert_eq!(
            dims[D - 1],
            self.d_input,
            "TernaryLinear: input {dims:?} does not end in d_input = {}",
            self.d_input
        );
        if self.is_packed() {
            let n = self.packed.val().dims()[0];
            let m = dims[..D - 1].iter().product();
            let x = input.reshape([m, self.d_input]);
            let int8 = self.activation != ActivationQuant::None;
            let y = ternary_linear(x, self.packed.val(), self.scales.val(), self.d_input, int8);
            let y = match &self.bias {
                // The bias is kept in f32; the output follows the input's float type.
                Some(b) => {
                    let dtype = y.dtype();
                    y + b.val().cast(dtype).unsqueeze::<2>()
                }
                None => y,
            };
            let mut out = dims;
            out[D - 1] = n;
            y.reshape(out)
        } else {
            let x = match self.activation {
                ActivationQuant::None => input,
                // Per row of the last dimension; for the usual [batch, features] input that is
                // one scale per sample, i.e. per image.
                ActivationQuant::Int8PerToken | ActivationQuant::Int8PerImage => {
                    fake_quantize_activations(input)
                }
            };
            let w = fake_ternarize(self.weight.val(), self.quantizer, self.granularity, 1);
            burn::tensor::module::linear(x, w, self.bias.as_ref().map(|b| b.val()))
        }
    }
}
