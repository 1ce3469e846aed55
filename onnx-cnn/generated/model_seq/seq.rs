// Generated from ONNX "../fixtures/seq.onnx" by burn-onnx
extern crate alloc;
use burn::prelude::*;
use burn::tensor::Bytes;
use burn_store::BurnpackStore;
use burn_store::ModuleSnapshot;


#[derive(Module, Debug)]
pub struct Model {
    linear1: burn_ternary::nn::TernaryLinear,
    linear2: burn_ternary::nn::TernaryLinear,
    #[module(skip)]
    device: Device,
}


extern crate std;

impl Default for Model {
    fn default() -> Self {
        Self::from_file(
            concat!(env!("CARGO_MANIFEST_DIR"), "/generated/model_seq/seq.bpk"),
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
        let linear1 = burn_ternary::nn::TernaryLinearConfig::new(32usize, 48usize)
            .with_bias(true)
            .with_quantizer(burn_ternary::quant::TernaryQuantizer::AbsMean)
            .with_granularity(burn_ternary::quant::Granularity::PerChannel)
            .with_activation(burn_ternary::quant::ActivationQuant::None)
            .init(device);
        let linear2 = burn_ternary::nn::TernaryLinearConfig::new(48usize, 16usize)
            .with_bias(false)
            .with_quantizer(burn_ternary::quant::TernaryQuantizer::AbsMean)
            .with_granularity(burn_ternary::quant::Granularity::PerChannel)
            .with_activation(burn_ternary::quant::ActivationQuant::None)
            .init(device);
        Self {
            linear1,
            linear2,
            device: device.clone(),
        }
    }

    #[allow(clippy::let_and_return, clippy::approx_constant)]
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let linear1_out1 = self.linear1.forward(x);
        let relu1_out1 = burn::tensor::activation::relu(linear1_out1);
        let linear2_out1 = self.linear2.forward(relu1_out1);
        linear2_out1
    }
}
