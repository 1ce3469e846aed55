//! Remote (`burn-remote`): on a client device the ternary ops are not computed but shipped,
//! each as one custom operation ([`CustomOpIr`]) carrying the ids of its input tensors (whose
//! data already lives on the server) and its non-tensor arguments as scalars; the server runs
//! the same op of its own backend ([`TernaryBackend`] for Flex or Cube) through the handlers
//! [`register`] adds. Under Autodiff the graph stays on the client, as for every other op, and
//! the straight-through backward ships `ternary_dequantize`.
//!
//! The op ids carry a protocol version ([`PROTOCOL`]): a server built with another encoding
//! of the arguments does not know the ids, and refuses the op instead of misreading it.

use burn::backend::ir::{
    BackendIr, CustomOpIr, HandleContainer, OperationOutput, ScalarIr, TensorIr,
};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Remote, RemoteDevice, TensorMetadata};
use burn::remote::CustomOpClient;
use burn::server::RemoteServer;
use burn::tensor::{DType, Shape};

use super::TernaryBackend;
use super::extension::{
    conv2d_shape, dequantize_shape, epilogue_shape, fused_conv2d_shape, linear_shape,
};
use crate::ops::{ConvEpilogue, FusedMaxPool, TernaryConvOptions};

/// Version of the argument encoding, part of every op id.
pub const PROTOCOL: u32 = 1;

/// The custom-operation ids of the ternary ops, in [`TernaryBackend`]'s order.
pub mod op {
    /// [`TernaryBackend::ternary_linear`](super::TernaryBackend::ternary_linear).
    pub const LINEAR: &str = "burn_ternary/1/linear";
    /// [`TernaryBackend::ternary_conv2d`](super::TernaryBackend::ternary_conv2d).
    pub const CONV2D: &str = "burn_ternary/1/conv2d";
    /// [`TernaryBackend::ternary_conv2d_fused`](super::TernaryBackend::ternary_conv2d_fused).
    pub const CONV2D_FUSED: &str = "burn_ternary/1/conv2d_fused";
    /// [`TernaryBackend::ternary_conv2d_residual`](super::TernaryBackend::ternary_conv2d_residual).
    pub const CONV2D_RESIDUAL: &str = "burn_ternary/1/conv2d_residual";
    /// [`TernaryBackend::conv_epilogue`](super::TernaryBackend::conv_epilogue).
    pub const CONV_EPILOGUE: &str = "burn_ternary/1/conv_epilogue";
    /// [`TernaryBackend::ternary_dequantize`](super::TernaryBackend::ternary_dequantize).
    pub const DEQUANTIZE: &str = "burn_ternary/1/dequantize";
    /// Every id, as [`register`](super::register) installs them.
    pub const ALL: [&str; 6] = [
        LINEAR,
        CONV2D,
        CONV2D_FUSED,
        CONV2D_RESIDUAL,
        CONV_EPILOGUE,
        DEQUANTIZE,
    ];
}

// ---------------------------------------------------------------------------------------------
// Argument encoding: flat lists of `ScalarIr`, written and read in one order.

fn push_pair(s: &mut Vec<ScalarIr>, v: [usize; 2]) {
    s.extend(v.map(|x| ScalarIr::UInt(x as u64)));
}

fn push_options(s: &mut Vec<ScalarIr>, o: &TernaryConvOptions) {
    push_pair(s, o.kernel_size);
    push_pair(s, o.stride);
    push_pair(s, o.padding);
    push_pair(s, o.dilation);
    s.push(ScalarIr::UInt(o.groups as u64));
}

fn push_epilogue(s: &mut Vec<ScalarIr>, e: &ConvEpilogue) {
    s.push(ScalarIr::Bool(e.relu));
    s.push(ScalarIr::Bool(e.max_pool.is_some()));
    if let Some(p) = &e.max_pool {
        push_pair(s, p.kernel_size);
        push_pair(s, p.stride);
        push_pair(s, p.padding);
        push_pair(s, p.dilation);
    }
}

/// Reads an op's scalars back in the order they were written; a list that does not match the
/// op is a client/server mismatch and panics naming the op and the value (the server ends that
/// client's session, as for any failing op).
struct Scalars<'a> {
    id: &'a str,
    values: std::slice::Iter<'a, ScalarIr>,
}

impl<'a> Scalars<'a> {
    fn new(ir: &'a CustomOpIr) -> Self {
        Self {
            id: &ir.id,
            values: ir.scalars.iter(),
        }
    }

    fn uint(&mut self) -> usize {
        match self.values.next() {
            Some(ScalarIr::UInt(v)) => usize::try_from(*v).unwrap_or_else(|_| {
                panic!("custom op {}: argument {v} does not fit usize", self.id)
            }),
            other => panic!(
                "custom op {}: expected an unsigned argument, got {other:?}",
                self.id
            ),
        }
    }

    fn flag(&mut self) -> bool {
        match self.values.next() {
            Some(ScalarIr::Bool(v)) => *v,
            other => panic!(
                "custom op {}: expected a bool argument, got {other:?}",
                self.id
            ),
        }
    }

    fn pair(&mut self) -> [usize; 2] {
        [self.uint(), self.uint()]
    }

    fn options(&mut self) -> TernaryConvOptions {
        TernaryConvOptions {
            kernel_size: self.pair(),
            stride: self.pair(),
            padding: self.pair(),
            dilation: self.pair(),
            groups: self.uint(),
        }
    }

    fn epilogue(&mut self) -> ConvEpilogue {
        let relu = self.flag();
        let max_pool = self.flag().then(|| FusedMaxPool {
            kernel_size: self.pair(),
            stride: self.pair(),
            padding: self.pair(),
            dilation: self.pair(),
        });
        ConvEpilogue { relu, max_pool }
    }

    /// Ends the reading: extra values are a mismatch too.
    fn done(mut self) {
        if let Some(extra) = self.values.next() {
            panic!("custom op {}: unexpected extra argument {extra:?}", self.id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client: ship the op.

/// Registers custom op `id` on `device` with one output of `shape` and `dtype`.
fn ship(
    device: &RemoteDevice,
    id: &'static str,
    inputs: Vec<TensorIr>,
    shape: Shape,
    dtype: DType,
    scalars: Vec<ScalarIr>,
) -> FloatTensor<Remote> {
    let client = CustomOpClient::new(device);
    let out = TensorIr::uninit(client.create_empty_handle(), shape, dtype);
    client
        .register(CustomOpIr::with_scalars(id, &inputs, &[out], scalars))
        .output()
}

/// Ships one of the three conv ops: `[x, packed, scales]`, then `rest` (bias, residual) as
/// inputs; the options, the epilogue (fused ops only) and the activation mode as scalars.
fn ship_conv(
    id: &'static str,
    [x, packed, scales]: [FloatTensor<Remote>; 3],
    rest: Vec<FloatTensor<Remote>>,
    options: TernaryConvOptions,
    epilogue: Option<ConvEpilogue>,
    int8_activations: bool,
) -> FloatTensor<Remote> {
    let device = x.device();
    let (xs, ps) = (x.shape(), packed.shape());
    let shape = match &epilogue {
        Some(e) => fused_conv2d_shape(&xs, &ps, &options, e),
        None => conv2d_shape(&xs, &ps, &options),
    };
    let dtype = x.dtype();
    let mut scalars = Vec::new();
    push_options(&mut scalars, &options);
    if let Some(e) = &epilogue {
        push_epilogue(&mut scalars, e);
    }
    scalars.push(ScalarIr::Bool(int8_activations));
    let inputs = [x, packed, scales]
        .into_iter()
        .chain(rest)
        .map(|t| t.into_ir())
        .collect();
    ship(&device, id, inputs, shape, dtype, scalars)
}

impl TernaryBackend for Remote {
    fn ternary_linear(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        k: usize,
        int8_activations: bool,
    ) -> FloatTensor<Self> {
        let device = x.device();
        let (shape, dtype) = (linear_shape(&x.shape(), &packed.shape()), x.dtype());
        let scalars = vec![ScalarIr::UInt(k as u64), ScalarIr::Bool(int8_activations)];
        let inputs = vec![x.into_ir(), packed.into_ir(), scales.into_ir()];
        ship(&device, op::LINEAR, inputs, shape, dtype, scalars)
    }

    fn ternary_conv2d(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        options: TernaryConvOptions,
        int8_activations: bool,
    ) -> FloatTensor<Self> {
        let conv = [x, packed, scales];
        ship_conv(op::CONV2D, conv, vec![], options, None, int8_activations)
    }

    fn ternary_conv2d_fused(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: TernaryConvOptions,
        epilogue: ConvEpilogue,
        int8_activations: bool,
    ) -> FloatTensor<Self> {
        let conv = [x, packed, scales];
        let (id, epilogue) = (op::CONV2D_FUSED, Some(epilogue));
        ship_conv(id, conv, vec![bias], options, epilogue, int8_activations)
    }

    fn ternary_conv2d_residual(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        options: TernaryConvOptions,
        epilogue: ConvEpilogue,
        int8_activations: bool,
    ) -> FloatTensor<Self> {
        let conv = [x, packed, scales];
        let (id, epilogue) = (op::CONV2D_RESIDUAL, Some(epilogue));
        ship_conv(
            id,
            conv,
            vec![bias, residual],
            options,
            epilogue,
            int8_activations,
        )
    }

    fn conv_epilogue(x: FloatTensor<Self>, epilogue: ConvEpilogue) -> FloatTensor<Self> {
        let device = x.device();
        let (shape, dtype) = (epilogue_shape(&x.shape(), &epilogue), x.dtype());
        let mut scalars = Vec::new();
        push_epilogue(&mut scalars, &epilogue);
        ship(
            &device,
            op::CONV_EPILOGUE,
            vec![x.into_ir()],
            shape,
            dtype,
            scalars,
        )
    }

    fn ternary_dequantize(
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        k: usize,
    ) -> FloatTensor<Self> {
        let device = scales.device();
        let (shape, dtype) = (dequantize_shape(&packed.shape(), &k), scales.dtype());
        let inputs = vec![packed.into_ir(), scales.into_ir()];
        ship(
            &device,
            op::DEQUANTIZE,
            inputs,
            shape,
            dtype,
            vec![ScalarIr::UInt(k as u64)],
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Server: run the op on the hosted backend.

/// The op's `N` input tensors and its one output; a mismatch (a client of another protocol)
/// panics naming the op.
fn operands<const N: usize>(ir: &CustomOpIr) -> (&[TensorIr; N], &TensorIr) {
    match (
        <&[TensorIr; N]>::try_from(ir.inputs.as_slice()),
        ir.outputs.as_slice(),
    ) {
        (Ok(inputs), [out]) => (inputs, out),
        _ => panic!(
            "custom op {}: expected {N} inputs and 1 output, got {} and {}",
            ir.id,
            ir.inputs.len(),
            ir.outputs.len()
        ),
    }
}

/// One handler's frame: the op's `N` inputs and its arguments go to `op` (which reads the
/// arguments in the order the client wrote them), the result is registered as the op's
/// output; arguments left over are a mismatch.
fn run<B: BackendIr, const N: usize>(
    h: &mut HandleContainer<B::Handle>,
    ir: &CustomOpIr,
    op: impl FnOnce(&mut HandleContainer<B::Handle>, &[TensorIr; N], &mut Scalars) -> FloatTensor<B>,
) {
    let (inputs, out) = operands::<N>(ir);
    let mut args = Scalars::new(ir);
    let y = op(h, inputs, &mut args);
    args.done();
    h.register_float_tensor::<B>(&out.id, y);
}

/// `server` with a handler for every id of [`op::ALL`], running [`TernaryBackend`] of `B`,
/// the backend of the devices it hosts (`Flex`, or `Cube` for wgpu / Vulkan / CUDA devices;
/// Burn refuses to start a server whose handlers are for another backend).
///
/// # Panics
/// The handlers panic, naming the op and the value, on an op whose tensors or arguments do
/// not match what this version's client sends, and on the shape contracts of the ops
/// themselves; Burn's server then ends that client's session (its next read fails) and keeps
/// serving the others.
pub fn register<B: BackendIr + TernaryBackend>(server: RemoteServer) -> RemoteServer {
    fn float<B: BackendIr>(h: &mut HandleContainer<B::Handle>, t: &TensorIr) -> FloatTensor<B> {
        h.get_float_tensor::<B>(t)
    }
    fn int<B: BackendIr>(h: &mut HandleContainer<B::Handle>, t: &TensorIr) -> IntTensor<B> {
        h.get_int_tensor::<B>(t)
    }
    server
        .with_custom_op::<B, _>(op::LINEAR, |h, ir, _| {
            run::<B, 3>(h, ir, |h, [x, p, s], a| {
                let (x, p, s) = (float::<B>(h, x), int::<B>(h, p), float::<B>(h, s));
                B::ternary_linear(x, p, s, a.uint(), a.flag())
            })
        })
        .with_custom_op::<B, _>(op::CONV2D, |h, ir, _| {
            run::<B, 3>(h, ir, |h, [x, p, s], a| {
                let (x, p, s) = (float::<B>(h, x), int::<B>(h, p), float::<B>(h, s));
                B::ternary_conv2d(x, p, s, a.options(), a.flag())
            })
        })
        .with_custom_op::<B, _>(op::CONV2D_FUSED, |h, ir, _| {
            run::<B, 4>(h, ir, |h, [x, p, s, b], a| {
                let (x, p, s) = (float::<B>(h, x), int::<B>(h, p), float::<B>(h, s));
                let b = float::<B>(h, b);
                B::ternary_conv2d_fused(x, p, s, b, a.options(), a.epilogue(), a.flag())
            })
        })
        .with_custom_op::<B, _>(op::CONV2D_RESIDUAL, |h, ir, _| {
            run::<B, 5>(h, ir, |h, [x, p, s, b, r], a| {
                let (x, p, s) = (float::<B>(h, x), int::<B>(h, p), float::<B>(h, s));
                let (b, r) = (float::<B>(h, b), float::<B>(h, r));
                let (options, epilogue) = (a.options(), a.epilogue());
                B::ternary_conv2d_residual(x, p, s, b, r, options, epilogue, a.flag())
            })
        })
        .with_custom_op::<B, _>(op::CONV_EPILOGUE, |h, ir, _| {
            run::<B, 1>(h, ir, |h, [x], a| {
                B::conv_epilogue(float::<B>(h, x), a.epilogue())
            })
        })
        .with_custom_op::<B, _>(op::DEQUANTIZE, |h, ir, _| {
            run::<B, 2>(h, ir, |h, [p, s], a| {
                B::ternary_dequantize(int::<B>(h, p), float::<B>(h, s), a.uint())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_with(scalars: Vec<ScalarIr>) -> CustomOpIr {
        CustomOpIr::with_scalars("t", &[], &[], scalars)
    }

    #[test]
    fn conv_arguments_round_trip() {
        let options = TernaryConvOptions {
            kernel_size: [3, 5],
            stride: [2, 1],
            padding: [1, 2],
            dilation: [1, 3],
            groups: 4,
        };
        for max_pool in [
            None,
            Some(FusedMaxPool {
                kernel_size: [3, 2],
                stride: [2, 2],
                padding: [1, 0],
                dilation: [1, 2],
            }),
        ] {
            for relu in [false, true] {
                let epilogue = ConvEpilogue { relu, max_pool };
                let mut s = Vec::new();
                push_options(&mut s, &options);
                push_epilogue(&mut s, &epilogue);
                s.push(ScalarIr::Bool(true));
                let ir = op_with(s);
                let mut a = Scalars::new(&ir);
                assert_eq!(a.options(), options);
                assert_eq!(a.epilogue(), epilogue);
                assert!(a.flag());
                a.done();
            }
        }
    }

    #[test]
    #[should_panic(expected = "unexpected extra argument")]
    fn extra_arguments_are_refused() {
        let ir = op_with(vec![ScalarIr::UInt(3), ScalarIr::UInt(4)]);
        let mut a = Scalars::new(&ir);
        a.uint();
        a.done();
    }

    #[test]
    #[should_panic(expected = "expected a bool argument, got Some(UInt(1))")]
    fn a_wrong_kind_is_refused() {
        let ir = op_with(vec![ScalarIr::UInt(1)]);
        Scalars::new(&ir).flag();
    }

    #[test]
    fn ids_carry_the_protocol_version() {
        for id in op::ALL {
            assert!(id.starts_with(&format!("burn_ternary/{PROTOCOL}/")), "{id}");
        }
    }
}
