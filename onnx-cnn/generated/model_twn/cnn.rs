// Generated from ONNX "../fixtures/cnn.onnx" by burn-onnx
extern crate alloc;
use burn::prelude::*;
use burn::tensor::Bytes;
use burn_store::BurnpackStore;
use burn_store::ModuleSnapshot;


#[derive(Module, Debug)]
pub struct Model {
    conv2d1: burn_ternary::nn::TernaryConv2d,
    conv2d2: burn_ternary::nn::TernaryConv2d,
    linear1: burn_ternary::nn::TernaryLinear,
    #[module(skip)]
    device: Device,
}


extern crate std;

impl Default for Model {
    fn default() -> Self {
        Self::from_file(
            concat!(env!("CARGO_MANIFEST_DIR"), "/generated/model_twn/cnn.bpk"),
            &Default::default(),
        )
    }
}

impl Model {
    /// Load model weights from a burnpack file.
    pub fn from_file<P: AsRef<std::path::Path>>(file: P, device: &Device) -> Self {
        let mut model = Self::new(device);
        let mut store = BurnpackStore::from_file(&file);
        model
            .load_from(&mut store)
            .unwrap_or_else(|e| {
                panic!("Failed to load burnpack file {}: {e}", file.as_ref().display())
            });
        model
    }

    /// Load model weights from in-memory bytes.
    ///
    /// The bytes must be the contents of a `.bpk` file.
    pub fn from_bytes(bytes: Bytes, device: &Device) -> Self {
        let mut model = Self::new(device);
        let mut store = BurnpackStore::from_bytes(Some(bytes));
        model
            .load_from(&mut store)
            .unwrap_or_else(|e| panic!("Failed to load burnpack bytes: {e}"));
        model
    }
}

impl Model {
    #[allow(unused_variables)]
    pub fn new(device: &Device) -> Self {
        let conv2d1 = burn_ternary::nn::TernaryConv2dConfig::new(
                [1usize, 8usize],
                [3usize, 3usize],
            )
            .with_stride([1usize, 1usize])
            .with_padding([1usize, 1usize])
            .with_dilation([1usize, 1usize])
            .with_groups(1usize)
            .with_bias(true)
            .with_quantizer(burn_ternary::quant::TernaryQuantizer::Twn)
            .with_granularity(burn_ternary::quant::Granularity::PerTensor)
            .with_activation(burn_ternary::quant::ActivationQuant::Int8PerToken)
            .init(device);
        let conv2d2 = burn_ternary::nn::TernaryConv2dConfig::new(
                [8usize, 16usize],
                [3usize, 3usize],
            )
            .with_stride([2usize, 2usize])
            .with_padding([1usize, 1usize])
            .with_dilation([1usize, 1usize])
            .with_groups(1usize)
            .with_bias(true)
            .with_quantizer(burn_ternary::quant::TernaryQuantizer::Twn)
            .with_granularity(burn_ternary::quant::Granularity::PerTensor)
            .with_activation(burn_ternary::quant::ActivationQuant::Int8PerToken)
            .init(device);
        let linear1 = burn_ternary::nn::TernaryLinearConfig::new(256usize, 10usize)
            .with_bias(true)
            .with_quantizer(burn_ternary::quant::TernaryQuantizer::Twn)
            .with_granularity(burn_ternary::quant::Granularity::PerTensor)
            .with_activation(burn_ternary::quant::ActivationQuant::Int8PerToken)
            .init(device);
        Self {
            conv2d1,
            conv2d2,
            linear1,
            device: device.clone(),
        }
    }

    #[allow(clippy::let_and_return, clippy::approx_constant)]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let conv2d1_out1 = self.conv2d1.forward(x);
        let relu1_out1 = burn::tensor::activation::relu(conv2d1_out1);
        let conv2d2_out1 = self.conv2d2.forward(relu1_out1);
        let relu2_out1 = burn::tensor::activation::relu(conv2d2_out1);
        let flatten1_out1 = {
            let leading_dim = relu2_out1.shape()[..1].iter().product::<usize>() as i32;
            relu2_out1.reshape::<2, _>([leading_dim, -1])
        };
        let linear1_out1 = self.linear1.forward(flatten1_out1);
        linear1_out1
    }
}
