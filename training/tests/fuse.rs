//! `Classifier::fuse`, the inference form of a packed model (batch norms folded into the convs,
//! ReLU and max pooling fused), gives the outputs of the model as frozen.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Distribution, Tensor, Tolerance};
use burn_ternary::nn::freeze;
use burn_ternary::quant::ActivationQuant;
use training::model::{Classifier, MnistNet, Precision};
use training::resnet::ResNet20;

/// Sets every vector parameter and buffer (biases, batch norm γ, β and running statistics)
/// to values in [0.5, 1.5), so each batch norm is a real affine map.
struct Perturb;

impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D != 1 {
            return param;
        }
        param.map(|t| {
            let dims = t.dims();
            Tensor::random(dims, Distribution::Uniform(0.5, 1.5), &t.device())
        })
    }
}

fn check<M: Classifier + Module>(model: M, x: Tensor<4>, tol: Tolerance<f32>) {
    let packed = freeze(model.map(&mut Perturb)).unwrap();
    let want = packed.forward(x.clone());
    let got = packed.fuse().unwrap().forward(x);
    assert_eq!(got.dims(), want.dims());
    got.into_data()
        .assert_approx_eq::<f32>(&want.into_data(), tol);
}

#[test]
fn fused_mnist_and_resnet_give_the_frozen_models_outputs() {
    let device = Device::flex();
    device.seed(3);
    let mnist = Tensor::<4>::random([3, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let cifar = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    // Exact f32 activations: only rounding differs. W2A8: a rounding difference may move an
    // activation across an int8 rounding tie in the next layer, one step of max|x|/127.
    let cases = [
        (ActivationQuant::None, Tolerance::rel_abs(1e-4, 1e-4)),
        (
            ActivationQuant::Int8PerImage,
            Tolerance::rel_abs(2e-2, 2e-2),
        ),
    ];
    for (act, tol) in cases {
        for precision in [Precision::Ternary, Precision::TernaryAll] {
            check(MnistNet::new(precision, act, &device), mnist.clone(), tol);
            check(
                ResNet20::new(precision, 1, 10, act, &device),
                cifar.clone(),
                tol,
            );
        }
    }
}
