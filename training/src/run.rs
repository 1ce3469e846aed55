//! What every example run shares: the arguments, training through burn-train's `Learner`,
//! packing, evaluation and the JSON summary. A [`Task`] says which data and which model.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, SgdConfig};
use burn::tensor::Device;
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric};
use burn::train::{
    ClassificationOutput, ExecutionStrategy, InferenceStep, Learner, MultiDeviceOptim,
    SupervisedTraining, TrainStep,
};
use burn_ternary::nn::freeze;
use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::checkpoint::AtomicFileCheckpointer;
use crate::data::{DataError, DataLocation, ImageBatch, Split};
use crate::model::{Classifier, Precision};
use crate::progress::LineRenderer;

/// The optimizer (both with cosine learning-rate decay to 0 over the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Adam (β = 0.9, 0.999), no weight decay.
    Adam,
    /// SGD with Nesterov momentum 0.9 and weight decay (`--weight-decay`).
    Sgd,
}

/// The flags every example takes. Examples parse them with [`Args::parse_for`], which names
/// the example and describes it in `--help`.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Directory with local copies of the data set (never downloaded into); default
    /// `$BURN_TERNARY_DATA/<set>`, else `~/.cache/burn-ternary/<set>` (downloaded when absent).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download; fail when the data is not found.
    #[arg(long)]
    pub offline: bool,
    /// Where checkpoints, the packed model and the summary go [default: target/<set>-run].
    #[arg(long)]
    pub artifact_dir: Option<PathBuf>,
    /// Training epochs [default: per data set].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size [default: per data set].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Initial learning rate, cosine-annealed to 0 [default: per data set and optimizer].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Optimizer [default: per data set].
    #[arg(long, value_enum)]
    pub optimizer: Option<Optimizer>,
    /// L2 weight decay of SGD.
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f32,
    /// Random seed (initialisation, shuffling, augmentation).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Device: flex (CPU), wgpu, vulkan (`wgpu:cpu`, `wgpu:N` and `vulkan:N` name one
    /// adapter of several), or `ws://HOST:PORT` (device 0 of a `burn-ternary serve` server;
    /// `ws://HOST:PORT#N` its device N).
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Train data-parallel on several devices instead of `--device`, comma-separated (e.g.
    /// `wgpu:0,wgpu:1`, or remote devices `ws://HOST:PORT#0,ws://HOST:PORT#1`): burn-train's
    /// multi-device strategy, one worker per device on its
    /// own share of the training set, every step one batch per device, the gradients summed
    /// on the first device, which takes the optimizer step and runs validation. A device may
    /// be named twice (two workers on one device).
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    pub devices: Vec<String>,
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
    /// Activations of the ternary layers: `int8` (W2A8: one int8 scale per image, trained in
    /// with fake quantization, run on the integer kernels) or `f32` (exact f32 activations).
    #[arg(long, value_enum, default_value = "int8")]
    pub activations: Activations,
    /// Channel multiplier of the CIFAR-10 ResNet-20 (1: 16/32/64 channels).
    #[arg(long, default_value_t = 1)]
    pub width: usize,
    /// Continue from the last checkpoint in the artifact directory.
    #[arg(long)]
    pub resume: bool,
    /// Only evaluate a model saved by a previous run (packed, or f32 with --full-precision).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Data-loading worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

impl Args {
    /// Parses the command line for the example `name`, whose `--help` starts with `about`.
    pub fn parse_for(name: &'static str, about: &'static str) -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command()
            .name(name)
            .bin_name(name)
            .about(about)
            .get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// Activations of the ternary layers (`--activations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activations {
    /// W2A8: int8 with one absmax scale per image, in training (fake quantization) and in
    /// the packed model (integer kernels).
    Int8,
    /// Exact f32 activations.
    F32,
}

/// A data set's defaults for the flags left unset.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Learning rate for Adam.
    pub adam_lr: f64,
    /// Learning rate for SGD.
    pub sgd_lr: f64,
}

/// The flags with every default filled in.
#[derive(Debug, Clone)]
struct Settings {
    artifact_dir: PathBuf,
    epochs: usize,
    batch_size: usize,
    optimizer: Optimizer,
    lr: f64,
}

/// A data set and the model trained on it.
pub trait Task {
    /// Name shown to the user (`MNIST`).
    const NAME: &'static str;
    /// Directory name under the data root (`mnist`).
    const KEY: &'static str;
    /// Name of the default artifact directory, `target/<RUN>-run` (the data key unless two
    /// tasks share a data set).
    const RUN: &'static str = Self::KEY;
    /// One example.
    type Item: Clone + Send + Sync + std::fmt::Debug + 'static;
    /// A split.
    type Data: Dataset<Self::Item> + Clone + 'static;
    /// Turns items into batches.
    type Batcher: Batcher<Self::Item, ImageBatch> + Clone + 'static;
    /// The network.
    type Model: Classifier
        + Module
        + TrainStep<Input = ImageBatch, Output = ClassificationOutput>
        + InferenceStep<Input = ImageBatch, Output = ClassificationOutput>
        + std::fmt::Display
        + 'static;

    /// Defaults of the unset flags.
    fn defaults() -> Defaults;
    /// Whether `dir` holds the data set.
    fn present(dir: &Path) -> bool;
    /// Downloads the data set into `dir`.
    fn download(dir: &Path) -> Result<(), DataError>;
    /// Loads a split, keeping the first `limit` examples.
    fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<Self::Data, DataError>;
    /// The batcher of a split (training batches may be augmented with `seed`).
    fn batcher(split: Split, seed: u64) -> Self::Batcher;
    /// A fresh model.
    fn model(precision: Precision, args: &Args, device: &Device) -> Self::Model;
    /// What the model is and which layers are ternary, for the output.
    fn describe(precision: Precision, args: &Args) -> String;
}

impl Args {
    /// The activation quantization of the ternary layers.
    pub fn activation(&self) -> burn_ternary::quant::ActivationQuant {
        match self.activations {
            Activations::Int8 => burn_ternary::quant::ActivationQuant::Int8PerImage,
            Activations::F32 => burn_ternary::quant::ActivationQuant::None,
        }
    }

    /// What the activations are, for the run's description (nothing for an f32 model).
    pub fn describe_activations(&self, precision: Precision) -> &'static str {
        match (precision, self.activations) {
            (Precision::Full, _) => "",
            (_, Activations::Int8) => {
                ", int8 activations (W2A8, one scale per image; --activations f32 for exact f32)"
            }
            (_, Activations::F32) => ", exact f32 activations",
        }
    }

    fn precision(&self) -> Precision {
        match (self.full_precision, self.ternary_all) {
            (true, _) => Precision::Full,
            (false, true) => Precision::TernaryAll,
            (false, false) => Precision::Ternary,
        }
    }

    /// `--devices` when given, else `--device` alone; the first is the main device.
    fn device_names(&self) -> Vec<String> {
        if self.devices.is_empty() {
            vec![self.device.clone()]
        } else {
            self.devices.clone()
        }
    }

    fn devices(&self) -> Result<Vec<Device>, String> {
        self.device_names()
            .iter()
            .map(|n| parse_device(n))
            .collect()
    }

    fn settings<T: Task>(&self) -> Settings {
        let d = T::defaults();
        let optimizer = self.optimizer.unwrap_or(d.optimizer);
        Settings {
            artifact_dir: self
                .artifact_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("target/{}-run", T::RUN))),
            epochs: self.epochs.unwrap_or(d.epochs),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            optimizer,
            lr: self.lr.unwrap_or(match optimizer {
                Optimizer::Adam => d.adam_lr,
                Optimizer::Sgd => d.sgd_lr,
            }),
        }
    }

    /// The data directory, downloading into the cache when that is where the data belongs and
    /// it is absent.
    fn data_dir<T: Task>(&self) -> Result<PathBuf, DataError> {
        let location = match &self.data_dir {
            Some(dir) => DataLocation {
                dir: dir.clone(),
                download: false,
            },
            None => crate::data::default_location(T::KEY, T::present),
        };
        if location.download && !self.offline && !T::present(&location.dir) {
            T::download(&location.dir)?;
        }
        Ok(location.dir)
    }
}

/// What a run reports, also written to `summary.json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The data set.
    pub dataset: String,
    /// The model and which layers are ternary.
    pub model: String,
    /// Accuracy of the saved (packed) model on the test images, in [0, 1].
    pub test_accuracy: f64,
    /// Test images evaluated.
    pub test_images: usize,
    /// Training images used.
    pub train_images: usize,
    /// Wall seconds of each epoch (training + validation) run by this process.
    pub epoch_seconds: Vec<f64>,
    /// Total wall seconds of training in this process.
    pub train_seconds: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// Bytes of the trained model saved in f32.
    pub f32_model_bytes: u64,
    /// Bytes of the packed model file.
    pub packed_model_bytes: u64,
    /// Device (the first of `devices` when several trained).
    pub device: String,
    /// The devices training ran on (one: single-device training).
    pub devices: Vec<String>,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
}

/// Accuracy of `model` on `data`, in batches, without a data loader (deterministic).
pub fn evaluate<M: Classifier, I, B: Batcher<I, ImageBatch>>(
    model: &M,
    data: &impl Dataset<I>,
    batcher: &B,
    batch_size: usize,
    device: &Device,
) -> f64 {
    let n = data.len();
    let mut correct = 0usize;
    for start in (0..n).step_by(batch_size.max(1)) {
        let items: Vec<I> = (start..(start + batch_size).min(n))
            .filter_map(|i| data.get(i).ok())
            .collect();
        let batch = batcher.batch(items, device);
        let pred = model.forward(batch.images).argmax(1).flatten::<1>(0, 1);
        let hits = pred.equal(batch.targets).int().sum().into_scalar::<i64>();
        correct += hits as usize;
    }
    correct as f64 / n.max(1) as f64
}

/// Refuses to evaluate a packed model with other activations than it was trained with: the
/// activation mode is chosen by the template (`--activations`), and each ternary layer's
/// record holds the one it was trained with (third code of its `scheme`).
fn check_recorded_activations<M: Module>(
    model: &M,
    expected: burn_ternary::quant::ActivationQuant,
) -> Result<(), String> {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::{Int, Tensor};
    use burn_ternary::quant::ActivationQuant;

    #[derive(Default)]
    struct Codes {
        path: Vec<String>,
        found: Vec<(String, i64)>,
    }
    impl ModuleVisitor for Codes {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            if self.path.last().map(String::as_str) == Some("scheme") {
                let codes = param
                    .val()
                    .into_data()
                    .convert::<i64>()
                    .try_into_vec::<i64>();
                if let Some(&code) = codes.ok().as_ref().and_then(|c| c.get(2)) {
                    let layer = self.path[..self.path.len() - 1].join(".");
                    self.found.push((layer, code));
                }
            }
        }
    }
    let name = |code: i64| match code {
        0 => "f32",
        1 => "int8 per token (legacy)",
        _ => "int8",
    };
    let want = match expected {
        ActivationQuant::None => 0,
        ActivationQuant::Int8PerToken => 1,
        ActivationQuant::Int8PerImage => 2,
    };
    let mut codes = Codes::default();
    model.visit(&mut codes);
    match codes.found.into_iter().find(|(_, code)| *code != want) {
        Some((layer, 1)) => Err(format!(
            "layer {layer} was trained with the legacy per-token int8 activations, which the \
             examples' --activations cannot select; load it in code with ActivationQuant::Int8PerToken"
        )),
        Some((layer, code)) => Err(format!(
            "layer {layer} was trained with {} activations but --activations asks for {}; \
             pass --activations {} to evaluate it as trained",
            name(code),
            name(want),
            if code == 0 { "f32" } else { "int8" }
        )),
        None => Ok(()),
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Saves a module to `path` through a temporary file and a rename, so an interrupted save
/// never leaves a half-written model under the final name.
fn save_atomic<M: Module>(module: M, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = path.with_extension("bpk.tmp");
    module.save_file(&tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Per-epoch wall time (training + validation): burn-train creates `train/epoch-N` when epoch
/// N starts, so consecutive start times bound each epoch; the last one ends at `end`. Epochs
/// that ran before `since` (an earlier process, on `--resume`) are left out.
fn epoch_seconds(
    artifact_dir: &Path,
    since: SystemTime,
    end: SystemTime,
    epochs: usize,
) -> Vec<f64> {
    let start = |e: usize| {
        std::fs::metadata(artifact_dir.join(format!("train/epoch-{e}")))
            .and_then(|m| m.modified())
            .ok()
    };
    (1..=epochs)
        .filter_map(|e| {
            let begin = start(e).filter(|t| *t >= since)?;
            let next = if e == epochs { Some(end) } else { start(e + 1) };
            Some(next?.duration_since(begin).ok()?.as_secs_f64())
        })
        .collect()
}

/// The device a `--device` flag names: see [`burn_ternary::parse_device`] (`flex`, `wgpu`,
/// `wgpu:cpu`, `wgpu:N`, `vulkan`, `vulkan:N`, and `ws://HOST:PORT[#N]` for a device of a
/// `burn-ternary serve` server). The error names the input and lists the accepted names.
pub fn parse_device(name: &str) -> Result<Device, String> {
    burn_ternary::parse_device(name).map_err(|e| e.to_string())
}

/// Optimizer steps per epoch of `len` items in batches of `batch` on `devices` devices:
/// burn-train's multi-device strategy gives each device a contiguous share (the last takes the
/// remainder) and a step takes one batch from each, so the largest share decides.
pub fn steps_per_epoch(len: usize, batch: usize, devices: usize) -> usize {
    let devices = devices.max(1);
    let largest = len - (devices - 1) * (len / devices);
    largest.div_ceil(batch.max(1))
}

/// The artifact directory a run of `T` with `args` writes to (`--artifact-dir`, or
/// `target/<RUN>-run`): where `model-packed.bpk` is.
pub fn artifact_dir<T: Task>(args: &Args) -> PathBuf {
    args.settings::<T>().artifact_dir
}

/// The test split of `T` as `args` locate it (`--data-dir`, `--limit-test`), downloading it
/// when it belongs in the cache and is absent.
pub fn test_data<T: Task>(args: &Args) -> Result<T::Data, DataError> {
    T::load(&args.data_dir::<T>()?, Split::Test, args.limit_test)
}

/// Runs training (or `--eval`) of task `T` as the arguments say.
pub fn run<T: Task>(args: Args) -> Result<Summary, Box<dyn std::error::Error>> {
    let devices = args.devices()?;
    let device = devices[0].clone();
    let device_names = args.device_names();
    let precision = args.precision();
    let s = args.settings::<T>();
    let model_name = T::describe(precision, &args);
    let data_dir = args.data_dir::<T>()?;
    let test = T::load(&data_dir, Split::Test, args.limit_test)?;
    let test_batcher = T::batcher(Split::Test, args.seed);
    // What every summary says; each outcome fills in its measurements.
    let base = || Summary {
        dataset: T::NAME.into(),
        model: model_name.clone(),
        test_accuracy: 0.0,
        test_images: test.len(),
        train_images: 0,
        epoch_seconds: vec![],
        train_seconds: 0.0,
        parameters: 0,
        f32_model_bytes: 0,
        packed_model_bytes: 0,
        device: device_names[0].clone(),
        devices: device_names.clone(),
        epochs: s.epochs,
        batch_size: s.batch_size,
        optimizer: s.optimizer,
        lr: s.lr,
        seed: args.seed,
    };

    if let Some(path) = &args.eval {
        let template = T::model(precision, &args, &device);
        let template = if precision == Precision::Full {
            template
        } else {
            freeze(template)?
        };
        let model = template.try_load_file(path)?;
        check_recorded_activations(&model, args.activation())?;
        // Batch norms folded into the packed convs before them, ReLU and pooling fused.
        let parameters = model.num_params();
        let model = model.fuse()?;
        let started = Instant::now();
        let acc = evaluate(&model, &test, &test_batcher, s.batch_size, &device);
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}: test accuracy {:.2}% on {} images | {} | batch {}: {seconds:.2} s ({:.0} images/s)",
            path.display(),
            100.0 * acc,
            test.len(),
            device_names[0],
            s.batch_size,
            test.len() as f64 / seconds.max(1e-9)
        );
        return Ok(Summary {
            test_accuracy: acc,
            parameters,
            packed_model_bytes: if precision == Precision::Full {
                0
            } else {
                file_len(path)
            },
            ..base()
        });
    }

    let train = T::load(&data_dir, Split::Train, args.limit_train)?;
    println!(
        "{}: {} train / {} test images from {} | {model_name} | device {} | {} epochs, batch {}, {:?} lr {}",
        T::NAME,
        train.len(),
        test.len(),
        data_dir.display(),
        device_names.join(","),
        s.epochs,
        s.batch_size,
        s.optimizer,
        s.lr
    );
    let ckpt_dir = s.artifact_dir.join("checkpoint");
    let last = AtomicFileCheckpointer::last_epoch(&ckpt_dir, "model");
    if last.is_some() && !args.resume {
        return Err(format!(
            "{} already holds checkpoints: pass --resume to continue, or choose another --artifact-dir",
            ckpt_dir.display()
        )
        .into());
    }
    std::fs::create_dir_all(&s.artifact_dir)?;
    for d in &devices {
        d.seed(args.seed);
    }

    // Training runs on the autodiff view of the device; validation on the plain one.
    let train_device = device.clone().autodiff();
    let train_loader = DataLoaderBuilder::new(T::batcher(Split::Train, args.seed))
        .batch_size(s.batch_size)
        .num_workers(args.workers)
        .shuffle(args.seed)
        .set_device(train_device.clone())
        .build(train.clone());
    let test_loader = DataLoaderBuilder::new(test_batcher.clone())
        .batch_size(s.batch_size)
        .num_workers(args.workers)
        .set_device(device.clone())
        .build(test.clone());

    let iters = s.epochs * steps_per_epoch(train.len(), s.batch_size, devices.len());
    let lr = CosineAnnealingLrSchedulerConfig::new(s.lr, iters.max(1)).init()?;
    let optim = match s.optimizer {
        Optimizer::Adam => AdamConfig::new().init(),
        Optimizer::Sgd => SgdConfig::new()
            .with_momentum(Some(MomentumConfig {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
            }))
            .with_weight_decay(Some(WeightDecayConfig {
                penalty: args.weight_decay,
            }))
            .init(),
    };
    let model = T::model(precision, &args, &train_device);
    let learner = Learner::new(model, optim, lr);
    let mut training = SupervisedTraining::new(&s.artifact_dir, train_loader, test_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .metrics((LearningRateMetric::new(),))
        .num_epochs(s.epochs)
        .with_custom_checkpointers(
            AtomicFileCheckpointer::new(&ckpt_dir, "model"),
            AtomicFileCheckpointer::new(&ckpt_dir, "optim"),
            AtomicFileCheckpointer::new(&ckpt_dir, "scheduler"),
        )
        .renderer(Box::new(LineRenderer::new()))
        .summary();
    if devices.len() > 1 {
        // Data-parallel: burn-train splits the training set between the devices and sums the
        // gradients on the first; no collective operations, so any backends work.
        let strategy = ExecutionStrategy::multi(devices.clone(), MultiDeviceOptim::OptimMainDevice);
        training = training.with_training_strategy(strategy.into());
    }
    if let Some(epoch) = last.filter(|_| args.resume) {
        println!("resuming after epoch {epoch}");
        training = training.checkpoint(epoch);
    }
    let started = SystemTime::now();
    let clock = Instant::now();
    let result = training.launch(learner);
    let train_seconds = clock.elapsed().as_secs_f64();
    let ended = SystemTime::now();

    let trained = result.model.valid();
    let parameters = trained.num_params();
    let f32_path = s.artifact_dir.join("model-f32.bpk");
    save_atomic(trained.clone(), &f32_path)?;
    // A full-precision run has nothing to pack: it is evaluated (and reported) as the f32
    // model it is.
    let (final_path, acc) = if precision == Precision::Full {
        // Evaluated in its inference form, as `--eval` runs it.
        let acc = evaluate(
            &trained.fuse()?,
            &test,
            &test_batcher,
            s.batch_size,
            &device,
        );
        (f32_path.clone(), acc)
    } else {
        let packed = freeze(trained)?;
        let path = s.artifact_dir.join("model-packed.bpk");
        save_atomic(packed.clone(), &path)?;
        // Evaluated in its inference form (saved unfused: the fusion is redone on load).
        let acc = evaluate(&packed.fuse()?, &test, &test_batcher, s.batch_size, &device);
        (path, acc)
    };

    let summary = Summary {
        test_accuracy: acc,
        train_images: train.len(),
        epoch_seconds: epoch_seconds(&s.artifact_dir, started, ended, s.epochs),
        train_seconds,
        parameters,
        f32_model_bytes: file_len(&f32_path),
        packed_model_bytes: if precision == Precision::Full {
            0
        } else {
            file_len(&final_path)
        },
        ..base()
    };
    std::fs::write(
        s.artifact_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    if precision == Precision::Full {
        println!(
            "test accuracy (f32 model, {} images): {:.2}%  |  model {} B f32  |  {}",
            test.len(),
            100.0 * acc,
            summary.f32_model_bytes,
            final_path.display()
        );
    } else {
        println!(
            "test accuracy (packed model, {} images): {:.2}%  |  model {} B f32 -> {} B packed  |  {}",
            test.len(),
            100.0 * acc,
            summary.f32_model_bytes,
            summary.packed_model_bytes,
            final_path.display()
        );
    }
    Ok(summary)
}
