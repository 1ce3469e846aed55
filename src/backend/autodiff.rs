//! Autodiff: the forward runs the inner backend's op; the backward is straight-through, the
//! gradient reaching `x` through the dequantized ternary weights (`∂y/∂x = W_deq`), also in
//! W2A8 mode where the activation rounding is treated as the identity.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, AutodiffBackend, Backend};

use burn::tensor::ops::ConvOptions;

use super::TernaryBackend;
use crate::ops::TernaryConvOptions;

#[derive(Debug)]
struct LinearBackward;

impl<B: Backend + TernaryBackend> Backward<B, 1> for LinearBackward {
    type State = (IntTensor<B>, FloatTensor<B>, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (packed, scales, k) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            let w = B::ternary_dequantize(packed, scales, k);
            B::float_matmul(grad, w)
        });
    }
}

#[derive(Debug)]
struct Conv2dBackward;

impl<B: Backend + TernaryBackend> Backward<B, 1> for Conv2dBackward {
    type State = (
        FloatTensor<B>,
        IntTensor<B>,
        FloatTensor<B>,
        TernaryConvOptions,
    );

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, packed, scales, o) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            // Straight through: ∂y/∂x of the convolution with the dequantized filters, also
            // in W2A8 mode (the activation rounding counts as the identity).
            let c_in = burn::backend::TensorMetadata::shape(&x)[1];
            let [kh, kw] = o.kernel_size;
            let cg = c_in / o.groups;
            let w = B::ternary_dequantize(packed, scales, cg * kh * kw);
            let c_out = burn::backend::TensorMetadata::shape(&w)[0];
            let w = B::float_reshape(w, burn::tensor::Shape::new([c_out, cg, kh, kw]));
            let options = ConvOptions::new(o.stride, o.padding, o.dilation, o.groups);
            B::conv2d_x_backward(x, w, grad, options)
        });
    }
}

impl<B: Backend + TernaryBackend, C: CheckpointStrategy> TernaryBackend for Autodiff<B, C> {
    fn ternary_linear(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        k: usize,
        int8_activations: bool,
    ) -> FloatTensor<Self> {
        // Packed weights are frozen: only x is differentiated.
        let scales = scales.into_primitive();
        match LinearBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                (packed.clone(), scales.clone(), k),
                B::ternary_linear(x.into_primitive(), packed, scales, k, int8_activations),
            ),
            OpsKind::UnTracked(prep) => prep.finish(B::ternary_linear(
                x.into_primitive(),
                packed,
                scales,
                k,
                int8_activations,
            )),
        }
    }

    fn ternary_conv2d(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        options: TernaryConvOptions,
        int8_activations: bool,
    ) -> FloatTensor<Self> {
        // Packed filters are frozen: only x is differentiated.
        let scales = scales.into_primitive();
        match Conv2dBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                prep.finish(
                    (x.clone(), packed.clone(), scales.clone(), options),
                    B::ternary_conv2d(x, packed, scales, options, int8_activations),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ternary_conv2d(
                x.into_primitive(),
                packed,
                scales,
                options,
                int8_activations,
            )),
        }
    }

    fn ternary_dequantize(
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        k: usize,
    ) -> FloatTensor<Self> {
        // A constant: the packed weights carry no gradient.
        Autodiff::<B, C>::from_inner(B::ternary_dequantize(packed, scales.into_primitive(), k))
    }
}
