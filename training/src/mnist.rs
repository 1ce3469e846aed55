//! The MNIST run: arguments, training through burn-train's `Learner`, packing, evaluation and
//! the JSON summary.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::tensor::{Device, DeviceKind};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};
use burn_ternary::nn::freeze;
use clap::Parser;
use serde::Serialize;

use crate::checkpoint::AtomicFileCheckpointer;
use crate::data::{self, Mnist, MnistBatcher, Split};
use crate::model::{MnistNet, Precision};

/// Train a ternary CNN on MNIST, pack it, and report test accuracy.
#[derive(Parser, Debug, Clone)]
#[command(about)]
pub struct Args {
    /// Directory with the four MNIST IDX files (`.gz` or raw); default `$BURN_TERNARY_DATA`
    /// or `~/.cache/burn-ternary/mnist`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where checkpoints, the packed model and the summary go.
    #[arg(long, default_value = "target/mnist-run")]
    pub artifact_dir: PathBuf,
    /// Training epochs.
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Initial learning rate (Adam, cosine-annealed to 0).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Random seed (initialisation and shuffling).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Device: flex (CPU), wgpu, vulkan.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Use only the first N training images.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub limit_test: Option<usize>,
    /// Train the same architecture in f32 (the baseline).
    #[arg(long)]
    pub full_precision: bool,
    /// Make the first conv and the classifier ternary too.
    #[arg(long)]
    pub ternary_all: bool,
    /// Continue from the last checkpoint in the artifact directory.
    #[arg(long)]
    pub resume: bool,
    /// Only evaluate a packed model saved by a previous run.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Data-loading worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

impl Args {
    fn precision(&self) -> Precision {
        match (self.full_precision, self.ternary_all) {
            (true, _) => Precision::Full,
            (false, true) => Precision::TernaryAll,
            (false, false) => Precision::Ternary,
        }
    }

    fn device(&self) -> Result<Device, String> {
        match self.device.as_str() {
            "flex" | "cpu" => Ok(Device::flex()),
            "wgpu" => Ok(Device::wgpu(DeviceKind::DefaultDevice)),
            #[cfg(feature = "vulkan")]
            "vulkan" => Ok(Device::vulkan(DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "vulkan"))]
            "vulkan" => {
                Err("built without the `vulkan` feature (cargo run --features vulkan)".into())
            }
            other => Err(format!("unknown device {other:?} (flex, wgpu, vulkan)")),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(data::default_dir)
    }
}

/// What a run reports, also written to `summary.json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// `ternary`, `ternary-all` or `full-precision`.
    pub precision: String,
    /// Accuracy of the saved (packed) model on the test images, in [0, 1].
    pub test_accuracy: f64,
    /// Test images evaluated.
    pub test_images: usize,
    /// Wall seconds of each epoch, from the checkpoint written at its end.
    pub epoch_seconds: Vec<f64>,
    /// Total wall seconds of training.
    pub train_seconds: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// Bytes of the trained model saved in f32.
    pub f32_model_bytes: u64,
    /// Bytes of the packed model file.
    pub packed_model_bytes: u64,
    /// Device, epochs, batch size, learning rate, seed.
    pub device: String,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
}

/// Accuracy of `model` on `data`, in batches, without a data loader (deterministic).
pub fn evaluate(model: &MnistNet, data: &Mnist, batch_size: usize, device: &Device) -> f64 {
    let n = data.len();
    let mut correct = 0usize;
    for start in (0..n).step_by(batch_size.max(1)) {
        let items: Vec<_> = (start..(start + batch_size).min(n))
            .filter_map(|i| data.get(i).ok())
            .collect();
        let batch = MnistBatcher.batch(items, device);
        let pred = model.forward(batch.images).argmax(1).flatten::<1>(0, 1);
        let hits = pred.equal(batch.targets).int().sum().into_scalar::<i64>();
        correct += hits as usize;
    }
    correct as f64 / n.max(1) as f64
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Per-epoch wall time (training + validation): burn-train creates `train/epoch-N` when epoch
/// N starts, so consecutive start times bound each epoch; the last one ends at `end`.
fn epoch_seconds(artifact_dir: &Path, end: SystemTime, epochs: usize) -> Vec<f64> {
    let start = |e: usize| {
        std::fs::metadata(artifact_dir.join(format!("train/epoch-{e}")))
            .and_then(|m| m.modified())
            .ok()
    };
    (1..=epochs)
        .filter_map(|e| {
            let next = if e == epochs { Some(end) } else { start(e + 1) };
            Some(next?.duration_since(start(e)?).ok()?.as_secs_f64())
        })
        .collect()
}

/// Runs training (or `--eval`) as the arguments say.
pub fn run(args: Args) -> Result<Summary, Box<dyn std::error::Error>> {
    let device = args.device()?;
    let precision = args.precision();
    let precision_name = match precision {
        Precision::Ternary => "ternary (first conv and classifier f32, as in TWN)",
        Precision::TernaryAll => "ternary-all",
        Precision::Full => "full-precision",
    };
    let test = Mnist::load(&args.data_dir(), Split::Test)?.limit(args.limit_test);

    if let Some(path) = &args.eval {
        let template = MnistNet::new(precision, &device);
        let template = if precision == Precision::Full {
            template
        } else {
            freeze(template)?
        };
        let model = template.try_load_file(path)?;
        let acc = evaluate(&model, &test, args.batch_size, &device);
        println!(
            "{}: test accuracy {:.2}% on {} images",
            path.display(),
            100.0 * acc,
            test.len()
        );
        return Ok(Summary {
            precision: precision_name.into(),
            test_accuracy: acc,
            test_images: test.len(),
            epoch_seconds: vec![],
            train_seconds: 0.0,
            parameters: model.num_params(),
            f32_model_bytes: 0,
            packed_model_bytes: file_len(path),
            device: args.device.clone(),
            epochs: 0,
            batch_size: args.batch_size,
            lr: args.lr,
            seed: args.seed,
        });
    }

    let train = Mnist::load(&args.data_dir(), Split::Train)?.limit(args.limit_train);
    println!(
        "MNIST: {} train / {} test images, {precision_name}, device {}, {} epochs, batch {}",
        train.len(),
        test.len(),
        args.device,
        args.epochs,
        args.batch_size
    );
    let ckpt_dir = args.artifact_dir.join("checkpoint");
    let last = AtomicFileCheckpointer::last_epoch(&ckpt_dir, "model");
    if last.is_some() && !args.resume {
        return Err(format!(
            "{} already holds checkpoints: pass --resume to continue, or choose another --artifact-dir",
            ckpt_dir.display()
        )
        .into());
    }
    std::fs::create_dir_all(&args.artifact_dir)?;
    device.seed(args.seed);

    // Training runs on the autodiff view of the device; validation on the plain one.
    let train_device = device.clone().autodiff();
    let loader = |seed: Option<u64>, device: &Device| {
        let b = DataLoaderBuilder::new(MnistBatcher)
            .batch_size(args.batch_size)
            .num_workers(args.workers)
            .set_device(device.clone());
        match seed {
            Some(s) => b.shuffle(s),
            None => b,
        }
    };
    let train_loader = loader(Some(args.seed), &train_device).build(train.clone());
    let test_loader = loader(None, &device).build(test.clone());

    let iters = args.epochs * train.len().div_ceil(args.batch_size);
    let lr = CosineAnnealingLrSchedulerConfig::new(args.lr, iters.max(1)).init()?;
    let model = MnistNet::new(precision, &train_device);
    let learner = Learner::new(model, AdamConfig::new().init(), lr);
    let mut training = SupervisedTraining::new(&args.artifact_dir, train_loader, test_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .metrics((LearningRateMetric::new(),))
        .num_epochs(args.epochs)
        .with_custom_checkpointers(
            AtomicFileCheckpointer::new(&ckpt_dir, "model"),
            AtomicFileCheckpointer::new(&ckpt_dir, "optim"),
            AtomicFileCheckpointer::new(&ckpt_dir, "scheduler"),
        )
        .summary();
    if let Some(epoch) = last.filter(|_| args.resume) {
        println!("resuming after epoch {epoch}");
        training = training.checkpoint(epoch);
    }
    let clock = Instant::now();
    let result = training.launch(learner);
    let train_seconds = clock.elapsed().as_secs_f64();
    let ended = SystemTime::now();

    let trained = result.model.valid();
    let parameters = trained.num_params();
    let f32_path = args.artifact_dir.join("model-f32.bpk");
    trained.clone().save_file(&f32_path)?;
    let packed = if precision == Precision::Full {
        trained
    } else {
        freeze(trained)?
    };
    let packed_path = args.artifact_dir.join("model-packed.bpk");
    packed.clone().save_file(&packed_path)?;
    let acc = evaluate(&packed, &test, args.batch_size, &device);

    let summary = Summary {
        precision: precision_name.into(),
        test_accuracy: acc,
        test_images: test.len(),
        epoch_seconds: epoch_seconds(&args.artifact_dir, ended, args.epochs),
        train_seconds,
        parameters,
        f32_model_bytes: file_len(&f32_path),
        packed_model_bytes: file_len(&packed_path),
        device: args.device.clone(),
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
    };
    std::fs::write(
        args.artifact_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    println!(
        "test accuracy (packed model, {} images): {:.2}%  |  model {} B f32 -> {} B packed  |  {}",
        test.len(),
        100.0 * acc,
        summary.f32_model_bytes,
        summary.packed_model_bytes,
        packed_path.display()
    );
    Ok(summary)
}
