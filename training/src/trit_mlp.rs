//! A fully ternary network for MNIST: ternary weights **and** ternary activations, so that
//! every hidden product is trit × trit.
//!
//! `784 → 512 → 512 → 10`: the input pixels (normalized) become trits through a fixed
//! [`TernaryActivation`] (θ = ½); each hidden layer is a [`TernaryLinear`] (TWN weights, one
//! scale per output), a batch norm and a [`TernaryActivation`] with a learned threshold; the
//! classifier is a [`TernaryLinear`] with a bias. Trained with the straight-through estimators
//! of both (burn-train, Adam).
//!
//! Two inference paths of the same packed model:
//! * **W2A8** (the packed model as Burn runs it): trits are int8 inputs with scale 1/127, exact,
//!   on the W2A8 GEMM kernels;
//! * **trit** ([`TritMlp::trit_form`], [`TritForm::logits`]): inputs and weights packed as
//!   trits, every hidden layer `dot = Σ x·w` by popcounts (`ternary_kernels::trit`'s matmul,
//!   no multiplications), then batch norm, scale and threshold folded into two integer-valued
//!   thresholds per output (`t = +1` when `dot > hi`, `−1` when `dot < lo`, with the
//!   inequalities flipped for a negative slope); only the classifier's `dot · scale + bias`
//!   is float.

use std::path::Path;

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};
use burn_ternary::TernaryError;
use burn_ternary::kernels::trit::{PackedTrits, TritRows, best};
use burn_ternary::nn::{
    TernaryActivation, TernaryActivationConfig, TernaryLinear, TernaryLinearConfig,
};
use burn_ternary::quant::{ActivationQuant, Granularity, TernaryQuantizer};

use crate::data::{DataError, Mnist, MnistBatcher, MnistItem, Split};
use crate::mnist::MnistTask;
use crate::model::{Classifier, Precision, classifier_steps};
use crate::run::{self, Args, Defaults, Optimizer, Summary, Task};

/// Hidden width.
pub const HIDDEN: usize = 512;

/// The fully ternary MLP (see the module docs).
#[derive(Module, Debug)]
pub struct TritMlp {
    input: TernaryActivation,
    fc1: TernaryLinear,
    bn1: BatchNorm,
    act1: TernaryActivation,
    fc2: TernaryLinear,
    bn2: BatchNorm,
    act2: TernaryActivation,
    fc3: TernaryLinear,
}

fn ternary(
    d_in: usize,
    d_out: usize,
    bias: bool,
    activation: ActivationQuant,
    device: &Device,
) -> TernaryLinear {
    TernaryLinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_quantizer(TernaryQuantizer::Twn)
        .with_granularity(Granularity::PerChannel)
        .with_activation(activation)
        .init(device)
}

impl TritMlp {
    /// A fresh model; `activation` is how the packed layers take their (trit) inputs.
    pub fn new(activation: ActivationQuant, device: &Device) -> Self {
        let learned = TernaryActivationConfig::new().with_learn_threshold(true);
        Self {
            input: TernaryActivationConfig::new().init(device),
            fc1: ternary(784, HIDDEN, false, activation, device),
            bn1: BatchNormConfig::new(HIDDEN).init(device),
            act1: learned.init(device),
            fc2: ternary(HIDDEN, HIDDEN, false, activation, device),
            bn2: BatchNormConfig::new(HIDDEN).init(device),
            act2: learned.init(device),
            fc3: ternary(HIDDEN, 10, true, activation, device),
        }
    }

    /// The trit inference form of a packed model (see the module docs).
    ///
    /// # Errors
    /// [`TernaryError::Pack`] when a layer is not packed or its words are corrupt.
    pub fn trit_form(&self) -> Result<TritForm, TernaryError> {
        let hidden = |fc: &TernaryLinear, bn: &BatchNorm, act: &TernaryActivation| {
            let (w, scales) = trits_of(fc)?;
            let mean = floats(bn.running_mean.value());
            let var = floats(bn.running_var.value());
            let gamma = floats(bn.gamma.val());
            let beta = floats(bn.beta.val());
            let theta = f64::from(act.threshold_value());
            // y = dot·s·a + b with a = γ/√(var + ε), b = β − mean·a; t = ±1 when ±y > θ.
            let bounds = (0..scales.len())
                .map(|j| {
                    let a = f64::from(gamma[j]) / (f64::from(var[j]) + bn.epsilon).sqrt();
                    let slope = f64::from(scales[j]) * a;
                    let offset = f64::from(beta[j]) - f64::from(mean[j]) * a;
                    Bounds::new(slope, offset, theta)
                })
                .collect();
            Ok::<_, TernaryError>(TritLayer { w, bounds })
        };
        let (w3, s3) = trits_of(&self.fc3)?;
        let bias = self
            .fc3
            .bias
            .as_ref()
            .map_or(vec![0.0; 10], |b| floats(b.val()));
        Ok(TritForm {
            input_threshold: self.input.threshold_value(),
            layers: vec![
                hidden(&self.fc1, &self.bn1, &self.act1)?,
                hidden(&self.fc2, &self.bn2, &self.act2)?,
            ],
            out: (w3, s3, bias),
        })
    }
}

fn floats(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("f32 data")
}

/// A packed layer's codes as trits `[n, k]` and its per-output scales.
fn trits_of(fc: &TernaryLinear) -> Result<(TritRows, Vec<f32>), TernaryError> {
    let p = fc.to_packed()?.ok_or_else(|| TernaryError::Pack {
        layer: "TritMlp".into(),
        source: burn_ternary::kernels::KernelError::Length {
            what: "packed rows (the layer is not packed: freeze the model first)",
            expected: 1,
            actual: 0,
        },
    })?;
    let (n, k) = (p.n(), p.k());
    let scales = (0..n).map(|r| p.scales().at(r, 0, k)).collect();
    let codes = PackedTrits::from_i8(&p.to_ternary()).expect("codes are trits");
    // Laid out for the kernel's matmul once, not on every product.
    let rows = TritRows::new(&codes, n, k).expect("n·k codes");
    Ok((rows, scales))
}

/// `t(dot)` for one output: `+1` above `hi`, `−1` below `lo`, else 0 (for a positive slope;
/// flipped for a negative one; constant for a zero one).
#[derive(Debug, Clone, Copy)]
enum Bounds {
    Rising { lo: f64, hi: f64 },
    Falling { lo: f64, hi: f64 },
    Constant(i8),
}

impl Bounds {
    fn new(slope: f64, offset: f64, theta: f64) -> Self {
        if slope == 0.0 {
            let t = if offset > theta {
                1
            } else if offset < -theta {
                -1
            } else {
                0
            };
            return Bounds::Constant(t);
        }
        let (a, b) = ((-theta - offset) / slope, (theta - offset) / slope);
        if slope > 0.0 {
            Bounds::Rising { lo: a, hi: b }
        } else {
            Bounds::Falling { lo: b, hi: a }
        }
    }

    fn apply(self, dot: i64) -> i8 {
        let d = dot as f64;
        match self {
            Bounds::Rising { lo, hi } => {
                if d > hi {
                    1
                } else if d < lo {
                    -1
                } else {
                    0
                }
            }
            Bounds::Falling { lo, hi } => {
                if d < lo {
                    1
                } else if d > hi {
                    -1
                } else {
                    0
                }
            }
            Bounds::Constant(t) => t,
        }
    }
}

struct TritLayer {
    w: TritRows,
    bounds: Vec<Bounds>,
}

/// The trit inference form of a trained [`TritMlp`].
pub struct TritForm {
    input_threshold: f32,
    layers: Vec<TritLayer>,
    out: (TritRows, Vec<f32>, Vec<f32>),
}

impl TritForm {
    /// Logits `[b, 10]` (row-major) of `b` images of 784 normalized pixels each.
    ///
    /// # Panics
    /// When `pixels.len()` is not a multiple of 784.
    pub fn logits(&self, pixels: &[f32]) -> Vec<f32> {
        assert_eq!(pixels.len() % 784, 0, "TritForm: {} pixels", pixels.len());
        let b = pixels.len() / 784;
        let mut x =
            PackedTrits::from_f32_threshold(pixels, self.input_threshold).expect("finite pixels");
        let product = |x: &PackedTrits, w: &TritRows| {
            let x = TritRows::new(x, b, w.cols()).expect("b rows of the layer's width");
            best().matmul_rows(&x, w).expect("equal widths")
        };
        for layer in &self.layers {
            let n = layer.w.rows();
            let t: Vec<i8> = product(&x, &layer.w)
                .iter()
                .enumerate()
                .map(|(i, &d)| layer.bounds[i % n].apply(d))
                .collect();
            x = PackedTrits::from_i8(&t).expect("trits");
        }
        let (w, scales, bias) = &self.out;
        let n = w.rows();
        product(&x, w)
            .iter()
            .enumerate()
            .map(|(i, &d)| d as f32 * scales[i % n] + bias[i % n])
            .collect()
    }
}

impl Classifier for TritMlp {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, ..] = x.dims();
        let x = self.input.forward(x.reshape([b, 784]));
        let x = self.act1.forward(self.bn1.forward(self.fc1.forward(x)));
        let x = self.act2.forward(self.bn2.forward(self.fc2.forward(x)));
        self.fc3.forward(x)
    }
}

classifier_steps!(TritMlp);

/// MNIST with the fully ternary MLP.
#[derive(Debug, Clone, Copy)]
pub struct MnistTritTask;

impl Task for MnistTritTask {
    const NAME: &'static str = "MNIST";
    const KEY: &'static str = "mnist";
    const RUN: &'static str = "mnist-trit";
    type Item = MnistItem;
    type Data = Mnist;
    type Batcher = MnistBatcher;
    type Model = TritMlp;

    fn defaults() -> Defaults {
        Defaults {
            epochs: 8,
            batch_size: 128,
            optimizer: Optimizer::Adam,
            adam_lr: 2e-3,
            sgd_lr: 0.05,
        }
    }

    // The data side is the MNIST task's.
    fn present(dir: &Path) -> bool {
        MnistTask::present(dir)
    }

    fn download(dir: &Path) -> Result<(), DataError> {
        MnistTask::download(dir)
    }

    fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<Mnist, DataError> {
        MnistTask::load(dir, split, limit)
    }

    fn batcher(split: Split, seed: u64) -> MnistBatcher {
        MnistTask::batcher(split, seed)
    }

    fn model(_precision: Precision, args: &Args, device: &Device) -> TritMlp {
        TritMlp::new(args.activation(), device)
    }

    fn describe(_precision: Precision, _args: &Args) -> String {
        "fully ternary MLP (784-512-512-10): ternary weights (TWN, per output) and ternary activations (STE, learned thresholds)".into()
    }
}

/// Trains (or, with `--eval`, evaluates) the fully ternary MLP.
pub fn run(args: Args) -> Result<Summary, Box<dyn std::error::Error>> {
    run::run::<MnistTritTask>(args)
}
