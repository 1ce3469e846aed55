//! Importing the PyTorch fixtures (`fixtures/make_fixtures.py`): stock layers reproduce
//! PyTorch's f32 outputs; ternary layers (quantize on load, or an already-ternary BitNet-style
//! checkpoint) reproduce PyTorch's ternarized outputs.
//!
//! Tolerances: f32 imports within 1e-4 relative (+1e-5 absolute) of PyTorch. Ternary imports
//! compute the same products of {−1, 0, +1}·scale and the same activations in f32, only in a
//! different order (the packed kernel sums ±x first and applies the scale once), so they too
//! agree within 1e-4 relative; the bound is pure f32 rounding, K·ε·Σ|w·x|, far below it here.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use burn_ternary::import::{ImportOptions, load, load_packed, load_ternary, read_tensors};
use burn_ternary::nn::{TernaryConv2d, TernaryConv2dConfig, TernaryLinear, TernaryLinearConfig};
use burn_ternary::quant::Granularity;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// `x`, `y_f32`, `y_ternary` of a fixture.
fn io(name: &str) -> (TensorData, Vec<f32>, Vec<f32>) {
    let t = read_tensors(
        &fixture(&format!("{name}_io.safetensors")),
        &ImportOptions::new(),
    )
    .unwrap();
    let v = |k: &str| t[k].clone().try_into_vec::<f32>().unwrap();
    (t["x"].clone(), v("y_f32"), v("y_ternary"))
}

fn assert_close(got: Tensor<2>, want: &[f32], what: &str) {
    let got: Vec<f32> = got.into_data().try_into_vec().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs() + 1e-5,
            "{what}: output {i} is {g}, PyTorch gives {w}"
        );
    }
}

/// A linear layer of either kind, so one struct describes both imports.
#[allow(clippy::large_enum_variant)] // a handful of layers per model
#[derive(Module, Debug)]
enum Dense {
    Stock(Linear),
    Ternary(TernaryLinear),
}

impl Dense {
    fn new(d_in: usize, d_out: usize, ternary: bool, device: &Device) -> Self {
        if ternary {
            Dense::Ternary(
                TernaryLinearConfig::new(d_in, d_out)
                    .with_granularity(Granularity::PerChannel)
                    .init(device),
            )
        } else {
            Dense::Stock(LinearConfig::new(d_in, d_out).init(device))
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Dense::Stock(l) => l.forward(x),
            Dense::Ternary(l) => l.forward(x),
        }
    }
}

#[derive(Module, Debug)]
struct Mlp {
    fc1: Dense,
    fc2: Dense,
    head: Linear,
}

impl Mlp {
    fn new(ternary: bool, device: &Device) -> Self {
        Self {
            fc1: Dense::new(32, 64, ternary, device),
            fc2: Dense::new(64, 16, ternary, device),
            head: LinearConfig::new(16, 10).init(device),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = relu(self.fc1.forward(x));
        let x = relu(self.fc2.forward(x));
        self.head.forward(x)
    }
}

#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
enum Conv {
    Stock(Conv2d),
    Ternary(TernaryConv2d),
}

#[derive(Module, Debug)]
struct Cnn {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv,
    fc: Dense,
}

impl Cnn {
    fn new(ternary: bool, device: &Device) -> Self {
        let conv2 = if ternary {
            Conv::Ternary(
                TernaryConv2dConfig::new([8, 16], [3, 3])
                    .with_stride([2, 2])
                    .with_padding([1, 1])
                    .with_bias(true)
                    .with_granularity(Granularity::PerChannel)
                    .init(device),
            )
        } else {
            Conv::Stock(
                Conv2dConfig::new([8, 16], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device),
            )
        };
        Self {
            conv1: Conv2dConfig::new([1, 8], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            bn1: BatchNormConfig::new(8).init(device),
            conv2,
            fc: Dense::new(256, 10, ternary, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let x = relu(match &self.conv2 {
            Conv::Stock(c) => c.forward(x),
            Conv::Ternary(c) => c.forward(x),
        });
        self.fc.forward(x.flatten::<2>(1, 3))
    }
}

fn is_packed(d: &Dense) -> bool {
    matches!(d, Dense::Ternary(l) if l.is_packed())
}

#[test]
fn mlp_f32_import_reproduces_pytorch_from_pt_and_safetensors() {
    let device = Device::flex();
    let (x, y, _) = io("mlp");
    for file in ["mlp.pt", "mlp.safetensors"] {
        let model = load(
            &Mlp::new(false, &device),
            &fixture(file),
            &ImportOptions::new(),
        )
        .unwrap();
        let out = model.forward(Tensor::from_data(x.clone(), &device));
        assert_close(out, &y, file);
    }
}

#[test]
fn mlp_ternary_imports_reproduce_pytorch_ternarized_outputs() {
    let device = Device::flex();
    let (x, _, y_t) = io("mlp");
    let x = || Tensor::<2>::from_data(x.clone(), &device);
    let template = Mlp::new(true, &device);
    for file in ["mlp.pt", "mlp.safetensors"] {
        // Training state: the fake-quant forward is the ternarized network.
        let latent = load(&template, &fixture(file), &ImportOptions::new()).unwrap();
        assert_close(latent.forward(x()), &y_t, &format!("{file} latent"));
        // Quantize on load: packed layers, same outputs.
        let packed = load_packed(&template, &fixture(file), &ImportOptions::new()).unwrap();
        assert!(is_packed(&packed.fc1) && is_packed(&packed.fc2));
        assert_close(packed.forward(x()), &y_t, &format!("{file} packed"));
    }
    // An already-ternary checkpoint packs without loss to the same network.
    let bitnet = load_ternary(
        &template,
        &fixture("mlp_bitnet.safetensors"),
        &ImportOptions::new(),
    )
    .unwrap();
    assert!(is_packed(&bitnet.fc1));
    assert_close(bitnet.forward(x()), &y_t, "bitnet");
}

#[test]
fn cnn_imports_with_batch_norm_and_ternary_conv() {
    let device = Device::flex();
    let (x, y, y_t) = io("cnn");
    let x = || Tensor::<4>::from_data(x.clone(), &device);
    let f32_model = load(
        &Cnn::new(false, &device),
        &fixture("cnn.pt"),
        &ImportOptions::new(),
    )
    .unwrap();
    assert_close(f32_model.forward(x()), &y, "cnn f32");
    let template = Cnn::new(true, &device);
    let packed = load_packed(
        &template,
        &fixture("cnn.safetensors"),
        &ImportOptions::new(),
    )
    .unwrap();
    assert!(matches!(&packed.conv2, Conv::Ternary(c) if c.is_packed()));
    assert_close(packed.forward(x()), &y_t, "cnn packed");
    let bitnet = load_ternary(
        &template,
        &fixture("cnn_bitnet.safetensors"),
        &ImportOptions::new(),
    )
    .unwrap();
    assert_close(bitnet.forward(x()), &y_t, "cnn bitnet");
}

#[test]
fn key_remapping_renames_before_applying() {
    let device = Device::flex();
    let (x, y, _) = io("mlp");
    // A model whose first layer is called `input` loads `fc1.*` through a remap.
    #[derive(Module, Debug)]
    struct Renamed {
        input: Linear,
        fc2: Linear,
        head: Linear,
    }
    let model = Renamed {
        input: LinearConfig::new(32, 64).init(&device),
        fc2: LinearConfig::new(64, 16).init(&device),
        head: LinearConfig::new(16, 10).init(&device),
    };
    let options = ImportOptions::new().with_key_remapping("^fc1\\.(.*)", "input.$1");
    let m = load(&model, &fixture("mlp.safetensors"), &options).unwrap();
    let h = relu(m.input.forward(Tensor::from_data(x, &device)));
    let out = m.head.forward(relu(m.fc2.forward(h)));
    assert_close(out, &y, "remapped");
}
