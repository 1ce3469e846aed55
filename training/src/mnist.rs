//! The MNIST task: the IDX files, the CNN of [`crate::model::MnistNet`], and its defaults
//! (4 epochs of Adam 2e-3 at batch 128: ≥ 99 % in under 10 minutes on two CPU cores).

use std::path::Path;

use burn::tensor::Device;

use crate::data::{self, DataError, Mnist, MnistBatcher, MnistItem, Split};
use crate::model::{MnistNet, Precision};
use crate::run::{self, Args, Defaults, Optimizer, Summary, Task};

/// MNIST with the small CNN.
#[derive(Debug, Clone, Copy)]
pub struct MnistTask;

impl Task for MnistTask {
    const NAME: &'static str = "MNIST";
    const KEY: &'static str = "mnist";
    type Item = MnistItem;
    type Data = Mnist;
    type Batcher = MnistBatcher;
    type Model = MnistNet;

    fn defaults() -> Defaults {
        Defaults {
            epochs: 4,
            batch_size: 128,
            optimizer: Optimizer::Adam,
            adam_lr: 2e-3,
            sgd_lr: 0.05,
        }
    }

    fn present(dir: &Path) -> bool {
        data::mnist_present(dir)
    }

    fn download(dir: &Path) -> Result<(), DataError> {
        data::download_mnist(dir)
    }

    fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<Mnist, DataError> {
        Ok(Mnist::load(dir, split)?.limit(limit))
    }

    fn batcher(_split: Split, _seed: u64) -> MnistBatcher {
        MnistBatcher
    }

    fn model(precision: Precision, args: &Args, device: &Device) -> MnistNet {
        MnistNet::new(precision, args.activation(), device)
    }

    fn describe(precision: Precision, args: &Args) -> String {
        format!(
            "CNN (3 conv + 2 linear), {}{}",
            precision.describe(),
            args.describe_activations(precision)
        )
    }
}

/// Trains (or, with `--eval`, evaluates) the MNIST CNN.
pub fn run(args: Args) -> Result<Summary, Box<dyn std::error::Error>> {
    run::run::<MnistTask>(args)
}
