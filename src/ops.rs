//! Tensor-level ternary ops: thin wrappers that route through `Dispatch` to the
//! [`TernaryBackend`] implementation of the tensor's device.

use burn::backend::Dispatch;
use burn::tensor::module::unfold4d;
use burn::tensor::ops::UnfoldOptions;
use burn::tensor::{Int, Tensor};

use crate::backend::TernaryBackend;

/// `x[m, k] · Wᵀ` for packed `W` (`[n, row_words]` i32 words of the `I2` layout) with 1, `n`
/// or `n · ceil(k/g)` scales (per tensor, per row, or per row and group of `g` = 64, 128, 256
/// columns, row-major). `int8_activations` selects W2A8 (BitNet) over exact f32 activations;
/// with group scales the integer sums (exact) are scaled per group, then added in f32.
///
/// # Shapes
/// - x: `[m, k]`, packed: `[n, ceil(k/128)·8]`, scales: `[1]`, `[n]` or `[n · ceil(k/g)]` →
///   `[m, n]`
pub fn ternary_linear(
    x: Tensor<2>,
    packed: Tensor<2, Int>,
    scales: Tensor<1>,
    k: usize,
    int8_activations: bool,
) -> Tensor<2> {
    let [m, kx] = x.dims();
    assert_eq!(
        kx, k,
        "ternary_linear: input [{m}, {kx}] does not match k = {k}"
    );
    Tensor::from_dispatch(<Dispatch as TernaryBackend>::ternary_linear(
        x.into_dispatch(),
        packed.into_dispatch(),
        scales.into_dispatch(),
        k,
        int8_activations,
    ))
}

/// The dequantized `[n, k]` weights of a packed matrix.
pub fn ternary_dequantize(packed: Tensor<2, Int>, scales: Tensor<1>, k: usize) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as TernaryBackend>::ternary_dequantize(
        packed.into_dispatch(),
        scales.into_dispatch(),
        k,
    ))
}

/// Convolution options of [`ternary_conv2d`] (symmetric zero padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TernaryConvOptions {
    /// Kernel height and width.
    pub kernel_size: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Zero padding on each side.
    pub padding: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
    /// Groups: channels are split into this many independent convolutions.
    pub groups: usize,
}

impl TernaryConvOptions {
    /// Output height and width for an `h × w` input:
    /// `(size + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`.
    ///
    /// # Panics
    /// When the padded input is smaller than the kernel's span, or a stride, dilation or
    /// kernel size is zero (the values are in the message).
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        let out = |size: usize, i: usize| {
            assert!(
                self.stride[i] > 0 && self.dilation[i] > 0 && self.kernel_size[i] > 0,
                "ternary_conv2d: kernel {:?}, stride {:?} and dilation {:?} must be positive",
                self.kernel_size,
                self.stride,
                self.dilation
            );
            let span = self.dilation[i] * (self.kernel_size[i] - 1) + 1;
            assert!(
                size + 2 * self.padding[i] >= span,
                "ternary_conv2d: input {h}x{w} with padding {:?} is smaller than the kernel span",
                self.padding
            );
            (size + 2 * self.padding[i] - span) / self.stride[i] + 1
        };
        (out(h, 0), out(w, 1))
    }
}

/// The max pooling stage of a [`ConvEpilogue`]: PyTorch's `MaxPool2d` with `ceil_mode =
/// false` and symmetric padding (padding pixels are never the maximum; NaN propagates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FusedMaxPool {
    /// Window height and width.
    pub kernel_size: [usize; 2],
    /// Stride.
    pub stride: [usize; 2],
    /// Padding on each side, at most half the window.
    pub padding: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
}

impl FusedMaxPool {
    /// A `kernel_size` window with stride = window (non-overlapping), no padding, no dilation:
    /// `MaxPool2dConfig::new(kernel_size)`'s defaults.
    pub fn new(kernel_size: [usize; 2]) -> Self {
        Self {
            kernel_size,
            stride: kernel_size,
            padding: [0, 0],
            dilation: [1, 1],
        }
    }

    /// Sets the stride.
    pub fn with_stride(self, stride: [usize; 2]) -> Self {
        Self { stride, ..self }
    }

    /// Sets the padding (each side, at most half the window).
    pub fn with_padding(self, padding: [usize; 2]) -> Self {
        Self { padding, ..self }
    }

    /// Sets the dilation.
    pub fn with_dilation(self, dilation: [usize; 2]) -> Self {
        Self { dilation, ..self }
    }

    /// The kernel crate's parameters of this window, with ReLU applied to the inputs first
    /// when `relu` is set.
    pub fn params(&self, relu: bool) -> ternary_kernels::cpu::MaxPool2dParams {
        ternary_kernels::cpu::MaxPool2dParams::new(self.kernel_size)
            .with_stride(self.stride)
            .with_padding(self.padding)
            .with_dilation(self.dilation)
            .with_relu(relu)
    }

    /// The pooling of a Burn [`MaxPool2d`](burn::nn::pool::MaxPool2d) layer, when the fused
    /// epilogue can run it: `ceil_mode` off and `Valid` or symmetric `Explicit` padding of at
    /// most half the window. `None` otherwise (run the layer itself then).
    pub fn from_layer(pool: &burn::nn::pool::MaxPool2d) -> Option<Self> {
        use burn::nn::PaddingConfig2d;
        let padding = match pool.padding {
            PaddingConfig2d::Valid => [0, 0],
            PaddingConfig2d::Explicit(top, left, bottom, right)
                if top == bottom && left == right =>
            {
                [top, left]
            }
            _ => return None,
        };
        let fits = (0..2).all(|i| padding[i] <= pool.kernel_size[i] / 2);
        (!pool.ceil_mode && fits).then_some(Self {
            kernel_size: pool.kernel_size,
            stride: pool.stride,
            padding,
            dilation: pool.dilation,
        })
    }

    /// Output height and width for an `h × w` input (`ceil_mode = false`).
    ///
    /// # Panics
    /// When a size is zero, the padding exceeds half the window, or the dilated window is
    /// larger than the padded input (the values are in the message).
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        self.params(false)
            .out_hw([h, w])
            .unwrap_or_else(|e| panic!("fused max pooling: {e}"))
    }
}

/// What a fused packed convolution applies to its output after the scale and bias, in this
/// order: ReLU (`max(y, 0)`, NaN kept, as Burn's `relu`), then max pooling. The default is
/// nothing (the plain convolution).
///
/// Fusing saves the passes over the feature map that separate Burn ops would make; with
/// batch norm folded into the filters' scales and bias
/// ([`TernaryConv2d::fold_batch_norm`](crate::nn::TernaryConv2d::fold_batch_norm)),
/// `conv → BN → ReLU → max pool` becomes one op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConvEpilogue {
    /// Apply ReLU.
    pub relu: bool,
    /// Then max-pool.
    pub max_pool: Option<FusedMaxPool>,
}

impl ConvEpilogue {
    /// True when the epilogue does nothing.
    pub fn is_identity(&self) -> bool {
        !self.relu && self.max_pool.is_none()
    }

    /// Applies the epilogue to `y` `[batch, channels, h, w]` through the backend
    /// extension's `conv_epilogue` op: the kernel crate's max pooling on Flex, the backend's
    /// own `relu` and `max_pool2d` elsewhere and under Autodiff (so gradients flow as through
    /// those ops). Same values as [`burn::tensor::activation::relu`] followed by
    /// [`burn::tensor::module::max_pool2d`].
    ///
    /// # Panics
    /// When the pooling window does not fit `h × w`.
    pub fn apply(&self, y: Tensor<4>) -> Tensor<4> {
        if self.is_identity() {
            return y;
        }
        if let Some(p) = self.max_pool {
            let [_, _, h, w] = y.dims();
            p.output_size(h, w);
        }
        Tensor::<4>::from_dispatch(<Dispatch as TernaryBackend>::conv_epilogue(
            y.into_dispatch(),
            *self,
        ))
    }
}

/// [`ternary_conv2d`] with the bias and a [`ConvEpilogue`] (ReLU, max pooling) computed in
/// the same op: on Flex the bias and ReLU run in the kernel's output loop and the pooling in a
/// second pass over the conv's output (the kernel crate's max pooling, no Burn op in between);
/// elsewhere the backend's conv followed by its own ops.
///
/// # Shapes
/// - x: `[batch, c_in, h, w]` → `[batch, c_out, h', w']`, where `h', w'` are the conv's output
///   size, pooled when the epilogue pools
///
/// # Panics
/// As [`ternary_conv2d`], and when the pooling window does not fit the conv's output.
pub fn ternary_conv2d_fused(
    x: Tensor<4>,
    packed: Tensor<2, Int>,
    scales: Tensor<1>,
    bias: Option<Tensor<1>>,
    options: TernaryConvOptions,
    epilogue: ConvEpilogue,
    int8_activations: bool,
) -> Tensor<4> {
    let c_out = packed.dims()[0];
    let bias = check_fused(
        "ternary_conv2d_fused",
        &x,
        c_out,
        bias,
        None,
        options,
        epilogue,
    );
    Tensor::<4>::from_dispatch(<Dispatch as TernaryBackend>::ternary_conv2d_fused(
        x.into_dispatch(),
        packed.into_dispatch(),
        scales.into_dispatch(),
        bias.into_dispatch(),
        options,
        epilogue,
        int8_activations,
    ))
}

/// The shape contract of the fused conv ops, checked with the values in the message: groups
/// divide the channels, the kernel fits, the pooling window fits the conv's output, the bias
/// has `c_out` values and the residual (when given) is the conv's output shape. Returns the
/// bias, `+0.0` per channel when absent (what the kernels add without one).
pub(crate) fn check_fused(
    op: &str,
    x: &Tensor<4>,
    c_out: usize,
    bias: Option<Tensor<1>>,
    residual: Option<&Tensor<4>>,
    options: TernaryConvOptions,
    epilogue: ConvEpilogue,
) -> Tensor<1> {
    let [batch, c_in, h, w] = x.dims();
    let g = options.groups;
    assert!(
        g > 0 && c_in.is_multiple_of(g) && c_out.is_multiple_of(g),
        "{op}: groups {g} must divide c_in {c_in} and c_out {c_out}"
    );
    let (oh, ow) = options.output_size(h, w);
    if let Some(r) = residual {
        assert_eq!(
            r.dims(),
            [batch, c_out, oh, ow],
            "{op}: residual {:?} must be the conv output {:?}",
            r.dims(),
            [batch, c_out, oh, ow]
        );
    }
    if let Some(p) = epilogue.max_pool {
        p.output_size(oh, ow);
    }
    match bias {
        Some(b) => {
            assert_eq!(
                b.dims(),
                [c_out],
                "{op}: bias {:?} must have c_out = {c_out} values",
                b.dims()
            );
            b
        }
        None => Tensor::zeros([c_out], &x.device()),
    }
}

/// [`ternary_conv2d_fused`] with a residual connection: `epilogue(conv(x) + bias + residual)`
/// (a ResNet block's second conv, with its batch norm folded in, the shortcut added and the
/// ReLU applied in one op). On Flex the residual is added in the kernel's output loop.
///
/// # Shapes
/// - x: `[batch, c_in, h, w]`, residual: `[batch, c_out, h_out, w_out]` (the conv's output)
///   → the same, pooled when the epilogue pools
///
/// # Panics
/// As [`ternary_conv2d_fused`], and when `residual` is not the conv's output shape.
#[allow(clippy::too_many_arguments)] // the fused op's operands
pub fn ternary_conv2d_residual(
    x: Tensor<4>,
    packed: Tensor<2, Int>,
    scales: Tensor<1>,
    bias: Option<Tensor<1>>,
    residual: Tensor<4>,
    options: TernaryConvOptions,
    epilogue: ConvEpilogue,
    int8_activations: bool,
) -> Tensor<4> {
    let name = "ternary_conv2d_residual";
    let c_out = packed.dims()[0];
    let bias = check_fused(name, &x, c_out, bias, Some(&residual), options, epilogue);
    Tensor::<4>::from_dispatch(<Dispatch as TernaryBackend>::ternary_conv2d_residual(
        x.into_dispatch(),
        packed.into_dispatch(),
        scales.into_dispatch(),
        bias.into_dispatch(),
        residual.into_dispatch(),
        options,
        epilogue,
        int8_activations,
    ))
}

/// 2-D convolution with packed ternary filters through the backend extension's native conv
/// op (on Flex: the kernel crate's implicit-im2col convolution; elsewhere the dequantized
/// reference), plus the bias. `int8_activations` is W2A8 with one int8 scale per image.
///
/// The packed matrix has one row per output channel and `k = c_in/groups · kh · kw` columns
/// in the order of a flattened `[c_out, c_in/groups, kh, kw]` weight.
///
/// # Shapes
/// - x: `[batch, c_in, h, w]` → `[batch, c_out, h_out, w_out]`
///
/// # Panics
/// When the groups do not divide the channels, or the input is smaller than the kernel span.
pub fn ternary_conv2d(
    x: Tensor<4>,
    packed: Tensor<2, Int>,
    scales: Tensor<1>,
    bias: Option<Tensor<1>>,
    options: TernaryConvOptions,
    int8_activations: bool,
) -> Tensor<4> {
    let [_, c_in, h, w] = x.dims();
    let c_out = packed.dims()[0];
    let g = options.groups;
    assert!(
        g > 0 && c_in.is_multiple_of(g) && c_out.is_multiple_of(g),
        "ternary_conv2d: groups {g} must divide c_in {c_in} and c_out {c_out}"
    );
    options.output_size(h, w);
    let y = Tensor::<4>::from_dispatch(<Dispatch as TernaryBackend>::ternary_conv2d(
        x.into_dispatch(),
        packed.into_dispatch(),
        scales.into_dispatch(),
        options,
        int8_activations,
    ));
    match bias {
        Some(b) => {
            let dtype = y.dtype();
            y + b.cast(dtype).reshape([1, c_out, 1, 1])
        }
        None => y,
    }
}

/// The legacy per-patch W2A8 convolution ([`ActivationQuant::Int8PerToken`] on a conv):
/// im2col (`unfold4d`) and the ternary GEMM of [`ternary_linear`] with one int8 scale per
/// patch, one GEMM per group. It materialises the whole im2col matrix; new models use
/// [`ternary_conv2d`] with per-image activations.
///
/// [`ActivationQuant::Int8PerToken`]: crate::quant::ActivationQuant::Int8PerToken
///
/// # Shapes
/// - x: `[batch, c_in, h, w]` → `[batch, c_out, h_out, w_out]`
pub fn ternary_conv2d_per_patch(
    x: Tensor<4>,
    packed: Tensor<2, Int>,
    scales: Tensor<1>,
    bias: Option<Tensor<1>>,
    options: TernaryConvOptions,
) -> Tensor<4> {
    let int8_activations = true;
    let c_out = packed.dims()[0];
    let n_g = c_out / options.groups.max(1);
    let per_tensor = scales.dims()[0] == 1;
    conv2d_im2col(x, options, c_out, bias, |rows, g| {
        let k = rows.dims()[1];
        let packed_g = packed.clone().narrow(0, g * n_g, n_g);
        let scales_g = if per_tensor {
            scales.clone()
        } else {
            scales.clone().narrow(0, g * n_g, n_g)
        };
        ternary_linear(rows, packed_g, scales_g, k, int8_activations)
    })
}

/// A convolution as im2col + one GEMM per group: `gemm(rows [batch·L, k], group)` returns
/// `[batch·L, c_out/groups]`.
pub(crate) fn conv2d_im2col(
    x: Tensor<4>,
    options: TernaryConvOptions,
    c_out: usize,
    bias: Option<Tensor<1>>,
    gemm: impl Fn(Tensor<2>, usize) -> Tensor<2>,
) -> Tensor<4> {
    let [batch, c_in, h, w] = x.dims();
    let [kh, kw] = options.kernel_size;
    let g = options.groups;
    assert!(
        g > 0 && c_in.is_multiple_of(g) && c_out.is_multiple_of(g),
        "ternary_conv2d: groups {g} must divide c_in {c_in} and c_out {c_out}"
    );
    let (h_out, w_out) = options.output_size(h, w);
    let k = c_in / g * kh * kw;
    // [batch, c_in·kh·kw, L], channel-major like a flattened [c_out, c_in/g, kh, kw] weight.
    let cols = unfold4d(
        x,
        options.kernel_size,
        UnfoldOptions::new(options.stride, options.padding, options.dilation),
    );
    let l = h_out * w_out;
    let outputs: Vec<Tensor<2>> = (0..g)
        .map(|gi| {
            let rows = cols
                .clone()
                .narrow(1, gi * k, k)
                .swap_dims(1, 2)
                .reshape([batch * l, k]);
            gemm(rows, gi)
        })
        .collect();
    let y = Tensor::cat(outputs, 1); // [batch·L, c_out]
    let y = y
        .reshape([batch, l, c_out])
        .swap_dims(1, 2)
        .reshape([batch, c_out, h_out, w_out]);
    match bias {
        Some(b) => y + b.reshape([1, c_out, 1, 1]),
        None => y,
    }
}
