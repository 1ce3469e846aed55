//! Build-time hooks that make `burn-onnx` generate ternary layers.
//!
//! `burn-onnx` turns an `.onnx` file into Rust source and a `.bpk` weight file from a build
//! script. [`TernaryOnnx::register`] adds op overrides to that generator so the layers that
//! carry weights come out as `burn_ternary` modules instead of stock Burn ones:
//!
//! | ONNX | burn-onnx node | generated field |
//! |------|----------------|-----------------|
//! | `Gemm` (`transB = 1`) | `Linear` | `TernaryLinear` |
//! | `MatMul` with a constant 2-D weight, with or without a following `Add` of a bias | `Linear` | `TernaryLinear` |
//! | `Conv` with a 4-D constant weight | `Conv2d` | `TernaryConv2d` |
//!
//! onnx-ir itself turns `Gemm` and `MatMul` with a constant weight into its `Linear` node, so one
//! override covers both; a `MatMul` of two runtime tensors (attention scores, say) keeps
//! burn-onnx's own code.
//!
//! The generated layers are in the training state with the ONNX weights as latent weights:
//! the model reproduces the ONNX model's float outputs as soon as it is loaded, can be
//! fine-tuned with straight-through training, and `burn_ternary::nn::freeze(model)` turns
//! every selected layer into packed 2-bit weights. Layers a [`TernaryOnnx::select`] filter
//! leaves out (the first convolution and the classifier, say) are generated as stock
//! `nn::Conv2d` / `nn::Linear` and stay full precision.
//!
//! ```no_run
//! // build.rs
//! use burn_onnx::ModelGen;
//! use burn_ternary_onnx::TernaryOnnx;
//!
//! let mut model_gen = ModelGen::new();
//! model_gen.input("model.onnx").out_dir("model/");
//! TernaryOnnx::new()
//!     .select(|layer| layer.weight != "conv1.weight")
//!     .register(&mut model_gen);
//! model_gen.run_from_script();
//! ```
//!
//! The crate depending on the generated code needs `burn`, `burn-store` and `burn-ternary`.

use std::fmt;
use std::sync::Arc;

use burn_onnx::ModelGen;
use burn_onnx::ext::proc_macro2::{Ident, Span, TokenStream};
use burn_onnx::ext::quote::quote;
use burn_onnx::ext::{
    Argument, CodegenContext, Field, Node, NodeType, OpOverride, PackError, PackTensor,
    ProcessError, TensorData, arg_to_ident, bridge, create_deferred_tensor,
};
use onnx_ir::padding::{AutoPad, PaddingConfig2d};

/// Weight quantizer of the generated layers (`burn_ternary::quant::TernaryQuantizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantizer {
    /// BitNet b1.58: threshold at half the mean absolute value.
    AbsMean,
    /// Ternary weight networks: threshold at 0.7 × the mean absolute value.
    Twn,
}

/// Scale granularity of the generated layers (`burn_ternary::quant::Granularity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One scale for the whole weight tensor.
    PerTensor,
    /// One scale per output channel.
    PerChannel,
}

/// The kind of layer a weighted ONNX node becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// `Gemm`, or `MatMul` (+ `Add`) with a constant weight.
    Linear,
    /// `Conv` with 2-D kernels.
    Conv2d,
}

/// What a [`TernaryOnnx::select`] filter sees of a weighted node.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    /// The field name in the generated model (`linear1`, `conv2d2`, ...).
    pub field: &'a str,
    /// The name of the weight initializer in the ONNX file (`conv2.weight` for a PyTorch
    /// export; folded or renamed constants get names such as `onnx::Conv_20`).
    pub weight: &'a str,
    /// Linear or convolution.
    pub kind: LayerKind,
    /// The weight's shape as the ONNX file stores it.
    pub shape: &'a [usize],
}

type Filter = dyn Fn(&Layer<'_>) -> bool + Send + Sync;

/// Settings shared by the overrides.
#[derive(Clone)]
struct Settings {
    quantizer: Quantizer,
    granularity: Granularity,
    int8_activations: bool,
    filter: Arc<Filter>,
}

/// Op overrides for `burn-onnx`'s `ModelGen` that route weighted layers to `burn_ternary`.
#[derive(Clone)]
pub struct TernaryOnnx {
    settings: Settings,
}

impl fmt::Debug for TernaryOnnx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TernaryOnnx")
            .field("quantizer", &self.settings.quantizer)
            .field("granularity", &self.settings.granularity)
            .field("int8_activations", &self.settings.int8_activations)
            .finish_non_exhaustive()
    }
}

impl Default for TernaryOnnx {
    fn default() -> Self {
        Self::new()
    }
}

impl TernaryOnnx {
    /// Absmean, per-channel scales, float activations, every weighted layer ternary.
    pub fn new() -> Self {
        Self {
            settings: Settings {
                quantizer: Quantizer::AbsMean,
                granularity: Granularity::PerChannel,
                int8_activations: false,
                filter: Arc::new(|_| true),
            },
        }
    }

    /// The weight quantizer.
    pub fn quantizer(mut self, quantizer: Quantizer) -> Self {
        self.settings.quantizer = quantizer;
        self
    }

    /// The scale granularity.
    pub fn granularity(mut self, granularity: Granularity) -> Self {
        self.settings.granularity = granularity;
        self
    }

    /// Quantize activations to int8 per token (BitNet W2A8) instead of exact float inputs.
    pub fn int8_activations(mut self, on: bool) -> Self {
        self.settings.int8_activations = on;
        self
    }

    /// Which weighted layers become ternary; the others are generated as stock full-precision
    /// Burn layers.
    pub fn select(mut self, filter: impl Fn(&Layer<'_>) -> bool + Send + Sync + 'static) -> Self {
        self.settings.filter = Arc::new(filter);
        self
    }

    /// Registers the `Linear` and `Conv2d` overrides on `model_gen`.
    ///
    /// # Panics
    ///
    /// As `ModelGen::register_op_override`: if overrides for these node types are already
    /// registered.
    pub fn register(self, model_gen: &mut ModelGen) -> &mut ModelGen {
        model_gen
            .register_op_override(LinearOverride(self.settings.clone()))
            .register_op_override(ConvOverride(self.settings))
    }
}

impl Settings {
    fn selected(&self, field: &str, weight: &Argument, kind: LayerKind) -> bool {
        let shape = weight.ty.static_shape_known().unwrap_or_default();
        (self.filter)(&Layer {
            field,
            weight: &weight.name,
            kind,
            shape: &shape,
        })
    }

    /// `[quantizer, granularity, activation]` as `burn_ternary` records them (its
    /// `nn::packing::scheme_codes`).
    fn scheme_codes(&self) -> [i32; 3] {
        [
            match self.quantizer {
                Quantizer::AbsMean => 0,
                Quantizer::Twn => 1,
            },
            match self.granularity {
                Granularity::PerTensor => 0,
                Granularity::PerChannel => 1,
            },
            i32::from(self.int8_activations),
        ]
    }

    /// `.with_quantizer(..).with_granularity(..).with_activation(..)` for a config builder.
    fn scheme_tokens(&self) -> TokenStream {
        let quantizer = match self.quantizer {
            Quantizer::AbsMean => quote! { burn_ternary::quant::TernaryQuantizer::AbsMean },
            Quantizer::Twn => quote! { burn_ternary::quant::TernaryQuantizer::Twn },
        };
        let granularity = match self.granularity {
            Granularity::PerTensor => quote! { burn_ternary::quant::Granularity::PerTensor },
            Granularity::PerChannel => quote! { burn_ternary::quant::Granularity::PerChannel },
        };
        let activation = if self.int8_activations {
            quote! { burn_ternary::quant::ActivationQuant::Int8PerToken }
        } else {
            quote! { burn_ternary::quant::ActivationQuant::None }
        };
        quote! {
            .with_quantizer(#quantizer)
            .with_granularity(#granularity)
            .with_activation(#activation)
        }
    }

    /// The tensors a ternary layer in the training state holds besides its weight and bias:
    /// the scheme codes and the empty packed words and scales.
    fn state_tensors(&self, field: &str, k: usize) -> Result<Vec<PackTensor>, ProcessError> {
        let words = ternary_kernels::format::i2::padded_k(k)
            .ok_or_else(|| codegen_error(format!("{field}: k = {k} is too large to pack")))?
            / 16;
        let scheme = TensorData::new(self.scheme_codes().to_vec(), [3]);
        let packed = TensorData::new(Vec::<i32>::new(), [0, words]);
        let scales = TensorData::new(Vec::<f32>::new(), [0]);
        Ok(vec![
            bridge::from_data(scheme, format!("{field}.scheme"), None),
            bridge::from_data(packed, format!("{field}.packed"), None),
            bridge::from_data(scales, format!("{field}.scales"), None),
        ])
    }
}

/// The concrete node inside an override's target type (burn-onnx hands each override only
/// nodes of the type it registered for; anything else is an error, not a panic).
macro_rules! expect_node {
    ($node:expr, $variant:ident) => {
        match $node {
            Node::$variant(n) => n,
            other => {
                return Err(codegen_error(format!(
                    "{}: not a {} node",
                    other.name(),
                    stringify!($variant)
                )));
            }
        }
    };
}

fn codegen_error(message: String) -> ProcessError {
    ProcessError::Custom(message)
}

fn static_shape(arg: &Argument, what: &str, node: &str) -> Result<Vec<usize>, ProcessError> {
    arg.ty
        .static_shape_known()
        .ok_or_else(|| codegen_error(format!("{node}: the {what} shape is not known statically")))
}

/// The weight of a node, if it is a constant known at build time.
fn constant_weight(node: &[Argument]) -> Option<&Argument> {
    node.get(1)
        .filter(|w| w.is_static() || w.is_constant())
        .filter(|w| w.ty.static_shape_known().is_some())
}

/// A deferred `[rows, cols] → [cols, rows]` copy of a constant 2-D weight.
fn transposed_tensor(weight: &Argument, path: String) -> Result<PackTensor, ProcessError> {
    let shape = static_shape(weight, "weight", &path)?;
    let [rows, cols] = shape[..] else {
        return Err(codegen_error(format!(
            "{path}: weight {shape:?} is not 2-D"
        )));
    };
    let dtype = match &weight.ty {
        burn_onnx::ext::ArgType::Tensor(t) => t.dtype,
        _ => return Err(codegen_error(format!("{path}: weight is not a tensor"))),
    };
    let arg = weight.clone();
    let name = path.clone();
    Ok(bridge::deferred(
        path,
        dtype,
        [cols, rows].into(),
        None,
        move || -> Result<TensorData, PackError> {
            let data = arg.value().ok_or_else(|| {
                PackError::ValidationError(format!("{name}: the weight data is missing"))
            })?;
            let elem = data.dtype().size();
            let src = data.as_bytes();
            if src.len() != rows * cols * elem {
                return Err(PackError::ValidationError(format!(
                    "{name}: {} bytes for a [{rows}, {cols}] weight",
                    src.len()
                )));
            }
            let mut dst = vec![0u8; src.len()];
            for (r, row) in src.chunks_exact(cols * elem).enumerate() {
                for (c, value) in row.chunks_exact(elem).enumerate() {
                    let at = (c * rows + r) * elem;
                    dst[at..at + elem].copy_from_slice(value);
                }
            }
            Ok(TensorData::from_bytes_vec(dst, [cols, rows], data.dtype()))
        },
    ))
}

fn deferred(arg: &Argument, path: String) -> Result<PackTensor, ProcessError> {
    create_deferred_tensor(arg, &path)
        .ok_or_else(|| codegen_error(format!("{path}: no constant data to store")))
}

fn field_ident(name: &str) -> Ident {
    Ident::new(name, Span::call_site())
}

/// `let out = self.field.forward(input);`
fn forward_field(
    name: &str,
    inputs: &[Argument],
    outputs: &[Argument],
    ctx: &mut CodegenContext<'_, '_>,
) -> TokenStream {
    let input = ctx.arg(&inputs[0]);
    let output = arg_to_ident(&outputs[0]);
    let field = field_ident(name);
    quote! { let #output = self.#field.forward(#input); }
}

/// A linear layer's field: ternary when selected, stock otherwise.
fn linear_field(
    settings: &Settings,
    name: &str,
    weight: &Argument,
    [d_input, d_output]: [usize; 2],
    bias: bool,
) -> Field {
    let ident = field_ident(name);
    if settings.selected(name, weight, LayerKind::Linear) {
        let scheme = settings.scheme_tokens();
        Field::new(
            name,
            quote! { burn_ternary::nn::TernaryLinear },
            quote! {
                let #ident = burn_ternary::nn::TernaryLinearConfig::new(#d_input, #d_output)
                    .with_bias(#bias)
                    #scheme
                    .init(device);
            },
        )
    } else {
        Field::new(
            name,
            quote! { burn::nn::Linear },
            quote! {
                let #ident = burn::nn::LinearConfig::new(#d_input, #d_output)
                    .with_bias(#bias)
                    .init(device);
            },
        )
    }
}

struct LinearOverride(Settings);

impl LinearOverride {
    fn dims(node: &onnx_ir::linear::LinearNode) -> Result<[usize; 2], ProcessError> {
        let shape = static_shape(&node.inputs[1], "weight", &node.name)?;
        let [a, b] = shape[..] else {
            return Err(codegen_error(format!(
                "{}: weight {shape:?} is not 2-D",
                node.name
            )));
        };
        Ok(if node.config.transpose_weight {
            [b, a]
        } else {
            [a, b]
        })
    }
}

impl OpOverride for LinearOverride {
    fn target(&self) -> NodeType {
        NodeType::Linear
    }

    fn field(&self, node: &Node) -> Result<Option<Field>, ProcessError> {
        let node = expect_node!(node, Linear);
        let bias = node.inputs.get(2).is_some_and(|b| !b.is_optional());
        let dims = Self::dims(node)?;
        Ok(Some(linear_field(
            &self.0,
            &node.name,
            &node.inputs[1],
            dims,
            bias,
        )))
    }

    fn collect_tensors(&self, node: &Node, field: &str) -> Result<Vec<PackTensor>, ProcessError> {
        let node = expect_node!(node, Linear);
        let weight = &node.inputs[1];
        let path = format!("{field}.weight");
        let mut tensors = vec![if node.config.transpose_weight {
            transposed_tensor(weight, path)?
        } else {
            deferred(weight, path)?
        }];
        if let Some(bias) = node.inputs.get(2).filter(|b| !b.is_optional()) {
            tensors.push(deferred(bias, format!("{field}.bias"))?);
        }
        if self.0.selected(&node.name, weight, LayerKind::Linear) {
            let [d_input, _] = Self::dims(node)?;
            tensors.extend(self.0.state_tensors(field, d_input)?);
        }
        Ok(tensors)
    }

    fn forward(
        &self,
        node: &Node,
        ctx: &mut CodegenContext<'_, '_>,
    ) -> Result<TokenStream, ProcessError> {
        let node = expect_node!(node, Linear);
        Ok(forward_field(&node.name, &node.inputs, &node.outputs, ctx))
    }
}

struct ConvOverride(Settings);

/// Geometry of a Conv node the overrides can express.
struct ConvGeometry {
    c_in: usize,
    c_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    /// `(top, left, bottom, right)`.
    padding: [usize; 4],
    bias: bool,
}

impl ConvGeometry {
    fn of(node: &onnx_ir::conv2d::Conv2dNode) -> Result<Self, ProcessError> {
        let name = &node.name;
        let weight = constant_weight(&node.inputs).ok_or_else(|| {
            codegen_error(format!(
                "{name}: Conv with a runtime weight cannot become a ternary layer"
            ))
        })?;
        let shape = static_shape(weight, "weight", name)?;
        let [c_out, c_in_g, _, _] = shape[..] else {
            return Err(codegen_error(format!(
                "{name}: Conv weight {shape:?} is not 4-D"
            )));
        };
        let c = &node.config;
        let padding = match (&c.auto_pad, &c.padding) {
            (AutoPad::NotSet, PaddingConfig2d::Explicit(t, l, b, r)) => [*t, *l, *b, *r],
            (AutoPad::NotSet | AutoPad::Valid, PaddingConfig2d::Valid) | (AutoPad::Valid, _) => {
                [0; 4]
            }
            (auto_pad, _) => {
                return Err(codegen_error(format!(
                    "{name}: auto_pad {auto_pad:?} is not supported by the ternary override; \
                     export the model with explicit pads"
                )));
            }
        };
        Ok(Self {
            c_in: c_in_g * c.groups,
            c_out,
            kernel: c.kernel_size,
            stride: c.stride,
            dilation: c.dilation,
            groups: c.groups,
            padding,
            bias: node.inputs.get(2).is_some_and(|b| !b.is_optional()),
        })
    }
}

impl OpOverride for ConvOverride {
    fn target(&self) -> NodeType {
        NodeType::Conv2d
    }

    fn field(&self, node: &Node) -> Result<Option<Field>, ProcessError> {
        let node = expect_node!(node, Conv2d);
        let g = ConvGeometry::of(node)?;
        let ident = field_ident(&node.name);
        let (c_in, c_out, groups, bias) = (g.c_in, g.c_out, g.groups, g.bias);
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let [dh, dw] = g.dilation;
        let [top, left, bottom, right] = g.padding;
        if self
            .0
            .selected(&node.name, &node.inputs[1], LayerKind::Conv2d)
        {
            if top != bottom || left != right {
                return Err(codegen_error(format!(
                    "{}: asymmetric padding {:?} (top, left, bottom, right); TernaryConv2d \
                     pads symmetrically",
                    node.name, g.padding
                )));
            }
            let scheme = self.0.scheme_tokens();
            Ok(Some(Field::new(
                &node.name,
                quote! { burn_ternary::nn::TernaryConv2d },
                quote! {
                    let #ident = burn_ternary::nn::TernaryConv2dConfig::new([#c_in, #c_out], [#kh, #kw])
                        .with_stride([#sh, #sw])
                        .with_padding([#top, #left])
                        .with_dilation([#dh, #dw])
                        .with_groups(#groups)
                        .with_bias(#bias)
                        #scheme
                        .init(device);
                },
            )))
        } else {
            Ok(Some(Field::new(
                &node.name,
                quote! { burn::nn::conv::Conv2d },
                quote! {
                    let #ident = burn::nn::conv::Conv2dConfig::new([#c_in, #c_out], [#kh, #kw])
                        .with_stride([#sh, #sw])
                        .with_padding(burn::nn::PaddingConfig2d::Explicit(#top, #left, #bottom, #right))
                        .with_dilation([#dh, #dw])
                        .with_groups(#groups)
                        .with_bias(#bias)
                        .init(device);
                },
            )))
        }
    }

    fn collect_tensors(&self, node: &Node, field: &str) -> Result<Vec<PackTensor>, ProcessError> {
        let node = expect_node!(node, Conv2d);
        let g = ConvGeometry::of(node)?;
        let weight = &node.inputs[1];
        let mut tensors = vec![deferred(weight, format!("{field}.weight"))?];
        if g.bias {
            tensors.push(deferred(&node.inputs[2], format!("{field}.bias"))?);
        }
        if self.0.selected(&node.name, weight, LayerKind::Conv2d) {
            let k = g.c_in / g.groups * g.kernel[0] * g.kernel[1];
            tensors.extend(self.0.state_tensors(field, k)?);
        }
        Ok(tensors)
    }

    fn forward(
        &self,
        node: &Node,
        ctx: &mut CodegenContext<'_, '_>,
    ) -> Result<TokenStream, ProcessError> {
        let node = expect_node!(node, Conv2d);
        ConvGeometry::of(node)?;
        Ok(forward_field(&node.name, &node.inputs, &node.outputs, ctx))
    }
}
