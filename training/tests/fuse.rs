//! `Classifier::fuse`, the inference form of a model (batch norms folded into the convs,
//! ReLU, max pooling and residual adds fused), gives the outputs of the model as frozen.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Distribution, Tensor, Tolerance};
use burn_ternary::nn::freeze;
use burn_ternary::quant::ActivationQuant;
use training::model::{Classifier, MnistNet, Precision};
use training::resnet::ResNet20;

/// Sets every vector parameter and buffer (biases, batch norm γ, β and running statistics)
/// to values in [0.5, 1.5), and batch norm γ to ±[0.5, 1.5) (every other channel negative),
/// so each batch norm is a real affine map, sign flips included.
///
/// With `norms_only`, only batch norm fields change, and the running means and β are small
/// shifts in [−0.25, 0.25) so that pre-activations fall on both sides of a ternary
/// activation's ±θ.
#[derive(Default)]
struct Perturb {
    field: String,
    norms_only: bool,
}

impl ModuleMapper for Perturb {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.field = name.to_string();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let field = self.field.as_str();
        let norm = ["running_mean", "running_var", "gamma", "beta"].contains(&field);
        if D != 1 || (self.norms_only && !norm) {
            return param;
        }
        let gamma = field == "gamma";
        let shift = self.norms_only && (field == "running_mean" || field == "beta");
        param.map(|t| {
            let dims = t.dims();
            let v = Tensor::random(dims, Distribution::Uniform(0.5, 1.5), &t.device());
            if gamma {
                let signs: Vec<f32> = (0..dims[0])
                    .map(|c| if c % 2 == 0 { -1.0 } else { 1.0 })
                    .collect();
                v * Tensor::<1>::from_floats(signs.as_slice(), &t.device()).reshape(dims)
            } else if shift {
                (v - 1.0) * 0.5
            } else {
                v
            }
        })
    }
}

/// The variants of the model's `Conv` layers, by name.
#[derive(Default)]
struct Variants {
    names: Vec<String>,
}

impl ModuleVisitor for Variants {
    fn enter_module(&mut self, name: &str, container: &str) {
        if container == "Enum:Conv" {
            self.names.push(name.to_string());
        }
    }
}

fn variants<M: Module>(m: &M) -> Vec<String> {
    let mut v = Variants::default();
    m.visit(&mut v);
    v.names
}

/// Returns how many of the model's convs were fused.
fn check<M: Classifier + Module>(model: M, pack: bool, x: Tensor<4>, tol: Tolerance<f32>) -> usize {
    let model = model.map(&mut Perturb::default());
    let model = if pack { freeze(model).unwrap() } else { model };
    let want = model.forward(x.clone());
    let fused = model.fuse().unwrap();
    let got = fused.forward(x);
    assert_eq!(got.dims(), want.dims());
    got.into_data()
        .assert_approx_eq::<f32>(&want.into_data(), tol);
    let names = variants(&fused);
    assert!(
        !names.iter().any(|n| n == "Ternary" || n == "Full"),
        "every conv is fused: {names:?}"
    );
    names.iter().filter(|n| n.starts_with("Fused")).count()
}

#[test]
fn fused_mnist_and_resnet_give_the_unfused_models_outputs() {
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
        for precision in [Precision::Ternary, Precision::TernaryAll, Precision::Full] {
            let pack = precision != Precision::Full;
            let tol = if pack { tol } else { cases[0].1 };
            let m = MnistNet::new(precision, act, &device);
            assert_eq!(check(m, pack, mnist.clone(), tol), 3, "MNIST: 3 convs");
            // 21 convs: the stem, 2 in each of 9 blocks, 2 projection shortcuts.
            let r = ResNet20::new(precision, 1, 10, act, &device);
            assert_eq!(
                check(r, pack, cifar.clone(), tol),
                21,
                "ResNet-20: 21 convs"
            );
        }
    }
}

#[test]
fn trit_form_gives_the_packed_models_logits() {
    use training::trit_mlp::TritMlp;
    let device = Device::flex();
    device.seed(9);
    for activation in [ActivationQuant::Int8PerImage, ActivationQuant::None] {
        let model = TritMlp::new(activation, &device).map(&mut Perturb {
            norms_only: true,
            ..Perturb::default()
        });
        let packed = freeze(model).unwrap();
        let trit = packed.trit_form().unwrap();
        // MNIST-like normalized pixels: mostly background, some bright strokes.
        let x = Tensor::<4>::random([64, 1, 28, 28], Distribution::Uniform(-0.5, 2.8), &device);
        let pixels: Vec<f32> = x
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        let want: Vec<f32> = packed
            .forward(x)
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        let got = trit.logits(&pixels);
        assert_eq!(got.len(), want.len());
        // The hidden trits depend on the input (not all thresholds saturated): logits differ
        // between images.
        assert!(
            want.chunks(10).any(|r| r != &want[..10]),
            "{activation:?}: constant logits"
        );
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            scale > 0.0 && diff <= 1e-4 * scale.max(1.0),
            "{activation:?}: logits differ by {diff} (max |logit| {scale})"
        );
    }
}
