//! The same packed and training layers on wgpu (Cube; lavapipe on CPU-only machines) and on
//! Flex. The Cube path dequantizes on the device with primitive ops (see `backend::cube`).
#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::tensor::{Device, DeviceKind, Distribution, Tensor, Tolerance};
use burn_ternary::nn::{TernaryConv2dConfig, TernaryLinear, TernaryLinearConfig, freeze};
use burn_ternary::quant::{ActivationQuant, Granularity};

fn gpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

#[test]
fn packed_linear_on_wgpu_equals_flex_in_both_modes() {
    let cpu = Device::flex();
    for activation in [ActivationQuant::None, ActivationQuant::Int8PerToken] {
        let layer = TernaryLinearConfig::new(300, 70)
            .with_granularity(Granularity::PerChannel)
            .with_activation(activation)
            .init(&cpu);
        let packed: TernaryLinear = freeze(layer).unwrap();
        let x = Tensor::<2>::random([5, 300], Distribution::Normal(0.0, 1.0), &cpu);
        let on_cpu = packed.forward(x.clone());
        let on_gpu = packed.to_device(&gpu()).forward(x.to_device(&gpu()));
        on_gpu.to_device(&cpu).into_data().assert_approx_eq::<f32>(
            &on_cpu.into_data(),
            // W2A8 may round an exact activation tie differently: one int8 step.
            Tolerance::rel_abs(1e-4, 5e-3),
        );
    }
}

#[test]
fn packed_conv2d_on_wgpu_equals_flex() {
    let cpu = Device::flex();
    let layer = TernaryConv2dConfig::new([4, 8], [3, 3])
        .with_padding([1, 1])
        .with_groups(2)
        .init(&cpu);
    let packed = layer.freeze().unwrap();
    let x = Tensor::<4>::random([2, 4, 6, 5], Distribution::Default, &cpu);
    let on_cpu = packed.forward(x.clone());
    let on_gpu = packed.to_device(&gpu()).forward(x.to_device(&gpu()));
    on_gpu
        .to_device(&cpu)
        .into_data()
        .assert_approx_eq::<f32>(&on_cpu.into_data(), Tolerance::rel_abs(1e-4, 1e-5));
}

#[test]
fn fake_quant_training_step_runs_on_wgpu_and_matches_flex() {
    let cpu = Device::flex().autodiff();
    let layer = TernaryLinearConfig::new(64, 8).init(&cpu);
    let x = Tensor::<2>::random([4, 64], Distribution::Default, &cpu);
    let grads = layer.forward(x.clone()).sum().backward();
    let g_cpu = layer.weight.grad(&grads).unwrap();

    let dev = gpu().autodiff();
    let layer = layer.fork(&dev);
    let grads = layer.forward(x.to_device(&dev)).sum().backward();
    let g_gpu = layer.weight.grad(&grads).unwrap();
    g_gpu
        .to_device(&Device::flex())
        .into_data()
        .assert_approx_eq::<f32>(&g_cpu.into_data(), Tolerance::rel_abs(1e-4, 1e-5));
}
