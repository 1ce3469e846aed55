//! `ternarize` on a stock Burn model.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor};
use burn_ternary::nn::ternarize;
use burn_ternary::quant::{Granularity, TernaryQuantizer};

#[derive(Module, Debug)]
struct Stock {
    a: Linear,
    b: Linear,
}

#[test]
fn ternarize_makes_stock_linears_ternary_with_live_latent_grads() {
    let device = Device::flex().autodiff();
    let model = Stock {
        a: LinearConfig::new(16, 12).init(&device),
        b: LinearConfig::new(12, 4).init(&device),
    };
    let model = ternarize(model, TernaryQuantizer::AbsMean, Granularity::PerChannel);
    for p in [&model.a.weight, &model.b.weight] {
        let w = p.val();
        // Effective weights: each column is {−s, 0, +s} for its own scale s.
        let v: Vec<f32> = w.clone().into_data().convert::<f32>().try_to_vec().unwrap();
        let [d_in, d_out] = w.dims();
        for j in 0..d_out {
            let col: Vec<f32> = (0..d_in).map(|i| v[i * d_out + j]).collect();
            let s = col.iter().fold(0f32, |a, x| a.max(x.abs()));
            assert!(s > 0.0);
            assert!(
                col.iter()
                    .all(|&x| x == 0.0 || (x.abs() - s).abs() <= 1e-6 * s),
                "{col:?}"
            );
        }
        // The stored base stays the latent f32 weight: many distinct values, not three.
        let base: Vec<f32> = p.base().into_data().convert::<f32>().try_to_vec().unwrap();
        let mut distinct = base.clone();
        distinct.sort_by(f32::total_cmp);
        distinct.dedup();
        assert!(
            distinct.len() > 2 * d_out + 1,
            "latent weights look quantized"
        );
    }
    let x = Tensor::<2>::random([5, 16], Distribution::Default, &device);
    let y = model.b.forward(model.a.forward(x));
    let grads = y.sum().backward();
    for p in [&model.a.weight, &model.b.weight] {
        let g = p.grad(&grads).expect("latent weight has a gradient");
        assert!(
            g.abs().sum().into_scalar::<f32>() > 0.0,
            "latent gradient is zero"
        );
    }
}
