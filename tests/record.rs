//! Saving and loading a packed model: identical outputs, ≥ 7.5× smaller than f16.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Device, Distribution, Tensor};
use burn_ternary::nn::{TernaryLinear, TernaryLinearConfig, freeze};

#[derive(Module, Debug)]
struct Mlp {
    fc1: TernaryLinear,
    fc2: TernaryLinear,
}

impl Mlp {
    fn new(device: &Device, packed: bool) -> Self {
        let c1 = TernaryLinearConfig::new(1024, 1024);
        let c2 = TernaryLinearConfig::new(1024, 512);
        if packed {
            Self {
                fc1: c1.init_packed(device),
                fc2: c2.init_packed(device),
            }
        } else {
            Self {
                fc1: c1.init(device),
                fc2: c2.init(device),
            }
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2
            .forward(burn::tensor::activation::relu(self.fc1.forward(x)))
    }
}

/// Casts float parameters to f16: the "same model saved in f16" baseline.
struct ToF16;
impl ModuleMapper for ToF16 {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        p.map(|t| t.cast(DType::F16))
    }
}

#[test]
fn packed_model_round_trips_and_is_much_smaller_than_f16() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("bt-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = Mlp::new(&device, false);
    let f16_path = dir.join("f16.bpk");
    model.clone().map(&mut ToF16).save_file(&f16_path).unwrap();

    let packed = freeze(model).unwrap();
    assert!(packed.fc1.is_packed() && packed.fc2.is_packed());
    let x = Tensor::<2>::random([3, 1024], Distribution::Default, &device);
    let expected = packed.forward(x.clone());
    let path = dir.join("packed.bpk");
    packed.save_file(&path).unwrap();

    let loaded = Mlp::new(&device, true).load_file(&path);
    loaded
        .forward(x)
        .into_data()
        .assert_eq(&expected.into_data(), true);

    let (f16, ours) = (
        std::fs::metadata(&f16_path).unwrap().len(),
        std::fs::metadata(&path).unwrap().len(),
    );
    let ratio = f16 as f64 / ours as f64;
    assert!(
        ratio >= 7.5,
        "packed record {ours} B vs f16 {f16} B: only {ratio:.2}x smaller"
    );
    std::fs::remove_dir_all(&dir).ok();
}
