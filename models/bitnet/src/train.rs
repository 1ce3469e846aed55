//! Training and fine-tuning with quantization-aware training (QAT) through burn-train.
//!
//! BitNet b1.58's recipe (arXiv:2402.17764, §2; the training details of arXiv:2504.12285):
//! every projection's forward uses its weights ternarized with absmean (one scale per tensor)
//! and its inputs quantized to int8 per token, with straight-through gradients to the latent
//! f32 weights ([`TernaryLinear`](burn_ternary::nn::TernaryLinear)'s training state), so the
//! model trained is the model [`BitNet::freeze`] packs. The objective is next-token
//! cross-entropy; the optimizer AdamW with a linear warm-up then cosine decay of the learning
//! rate and gradient-norm clipping.
//!
//! * [`TokenWindows`]: a token stream cut into windows of `seq_len + 1` tokens (inputs and
//!   next-token targets), a burn [`Dataset`];
//! * [`LmBatcher`] → [`LmBatch`]: `[batch, seq_len]` inputs and targets;
//! * `TrainStep` / `InferenceStep` for [`BitNet`] on [`LmBatch`], giving burn-train's
//!   [`SequenceOutput`] (loss, accuracy and perplexity metrics);
//! * [`byte_level_tokenizer`]: a 256-byte tokenizer (plus one end-of-text token) for training
//!   from scratch on any text without a vocabulary;
//! * [`train`]: the whole run (checkpoints every epoch, written atomically; `resume`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::AdamWConfig;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::optim::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::optim::lr_scheduler::{LrSchedulerConfig, module_lr_scheduler::ModuleLrScheduler};
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric, PerplexityMetric};
use burn::train::{
    ExecutionStrategy, InferenceStep, Learner, MultiDeviceOptim, SequenceOutput,
    SupervisedTraining, TrainOutput, TrainStep,
};
use training::checkpoint::AtomicFileCheckpointer;
use training::progress::LineRenderer;

use crate::error::BitNetError;
use crate::model::BitNet;

/// The end-of-text token of [`byte_level_tokenizer`] (id 256, after the 256 bytes).
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// The id of [`END_OF_TEXT`] in [`byte_level_tokenizer`].
pub const END_OF_TEXT_ID: u32 = 256;

/// A token stream cut into non-overlapping windows of `seq_len + 1` tokens: window `i` is
/// `tokens[start + i·seq_len .. start + (i+1)·seq_len + 1]` (its first `seq_len` tokens are
/// the inputs, its last `seq_len` the targets). Cheap to clone (the stream is shared).
#[derive(Debug, Clone)]
pub struct TokenWindows {
    tokens: Arc<Vec<u32>>,
    start: usize,
    count: usize,
    seq_len: usize,
}

impl TokenWindows {
    /// The windows that fit in `tokens[range]`.
    ///
    /// # Panics
    /// When `seq_len` is 0 or the range is outside the stream (the message names both).
    pub fn new(tokens: Arc<Vec<u32>>, range: std::ops::Range<usize>, seq_len: usize) -> Self {
        assert!(
            seq_len > 0 && range.start <= range.end && range.end <= tokens.len(),
            "TokenWindows: seq_len {seq_len}, range {range:?} of a stream of {} tokens",
            tokens.len()
        );
        let count = range.len().saturating_sub(1) / seq_len;
        Self {
            tokens,
            start: range.start,
            count,
            seq_len,
        }
    }

    /// Splits a stream into training windows (the head) and validation windows (the last
    /// `valid_fraction` of the tokens, a contiguous tail, so no validation text is seen in
    /// training).
    ///
    /// Errors: [`BitNetError::Data`] when either part holds no whole window, naming the
    /// token count and `seq_len`.
    pub fn split(
        tokens: Vec<u32>,
        seq_len: usize,
        valid_fraction: f64,
    ) -> Result<(Self, Self), BitNetError> {
        let n = tokens.len();
        if seq_len == 0 || !(valid_fraction > 0.0 && valid_fraction < 1.0) {
            return Err(BitNetError::Data(format!(
                "seq_len {seq_len} must be > 0 and the validation fraction {valid_fraction} in (0, 1)"
            )));
        }
        let valid_len = ((n as f64) * valid_fraction) as usize;
        let cut = n - valid_len;
        let tokens = Arc::new(tokens);
        let train = Self::new(tokens.clone(), 0..cut, seq_len);
        let valid = Self::new(tokens, cut..n, seq_len);
        if train.count == 0 || valid.count == 0 {
            return Err(BitNetError::Data(format!(
                "{n} tokens make {} training and {} validation windows of {} tokens: give more text or a smaller --seq-len",
                train.count,
                valid.count,
                seq_len + 1
            )));
        }
        Ok((train, valid))
    }

    /// Tokens per input window.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }
}

impl Dataset<Vec<u32>> for TokenWindows {
    /// # Panics
    /// When `index >= len()` (burn's `Dataset` contract; the message names both).
    fn get(&self, index: usize) -> Result<Vec<u32>, DatasetError> {
        assert!(
            index < self.count,
            "TokenWindows: window {index} of {}",
            self.count
        );
        let a = self.start + index * self.seq_len;
        Ok(self.tokens[a..a + self.seq_len + 1].to_vec())
    }

    fn len(&self) -> usize {
        self.count
    }
}

/// A batch of language-modelling windows.
#[derive(Debug, Clone)]
pub struct LmBatch {
    /// Input tokens `[batch, seq_len]`.
    pub inputs: Tensor<2, Int>,
    /// Next-token targets `[batch, seq_len]` (the inputs shifted by one).
    pub targets: Tensor<2, Int>,
}

/// Stacks windows of `seq_len + 1` tokens into an [`LmBatch`].
#[derive(Debug, Clone, Default)]
pub struct LmBatcher;

impl Batcher<Vec<u32>, LmBatch> for LmBatcher {
    /// # Panics
    /// When the windows differ in length or are shorter than 2 tokens (names the lengths).
    fn batch(&self, items: Vec<Vec<u32>>, device: &Device) -> LmBatch {
        let b = items.len();
        let w = items.first().map_or(0, Vec::len);
        assert!(
            w >= 2 && items.iter().all(|it| it.len() == w),
            "LmBatcher: windows of lengths {:?} (all equal and ≥ 2 needed)",
            items.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let t = w - 1;
        let mut inputs = Vec::with_capacity(b * t);
        let mut targets = Vec::with_capacity(b * t);
        for it in &items {
            inputs.extend(it[..t].iter().map(|&x| x as i64));
            targets.extend(it[1..].iter().map(|&x| x as i64));
        }
        LmBatch {
            inputs: Tensor::from_data(TensorData::new(inputs, [b, t]), device),
            targets: Tensor::from_data(TensorData::new(targets, [b, t]), device),
        }
    }
}

impl BitNet {
    /// Next-token cross-entropy of a batch (mean over every position), with the logits for
    /// the metrics.
    pub fn lm_loss(&self, batch: LmBatch) -> SequenceOutput {
        let logits = self.forward(batch.inputs, None);
        let [b, t, v] = logits.dims();
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(
                logits.clone().reshape([b * t, v]),
                batch.targets.clone().reshape([b * t]),
            );
        SequenceOutput::new(loss, logits, None, batch.targets)
    }
}

impl TrainStep for BitNet {
    type Input = LmBatch;
    type Output = SequenceOutput;

    fn step(&self, batch: LmBatch) -> TrainOutput<SequenceOutput> {
        let out = self.lm_loss(batch);
        TrainOutput::new(self, out.loss.backward(), out)
    }
}

impl InferenceStep for BitNet {
    type Input = LmBatch;
    type Output = SequenceOutput;

    fn step(&self, batch: LmBatch) -> SequenceOutput {
        self.lm_loss(batch)
    }
}

/// A byte-level tokenizer: the 256 bytes as tokens 0–255 (GPT-2's byte-to-character map, so
/// any UTF-8 text encodes and decodes losslessly) and [`END_OF_TEXT`] as token 256; no merges
/// and no BOS added. Saved with `tokenizer.json`'s format, it is what an exported model
/// trained from scratch carries, and `transformers`/`tokenizers` read it.
pub fn byte_level_tokenizer() -> Result<tokenizers::Tokenizer, BitNetError> {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    let error = |e: tokenizers::Error| BitNetError::Data(format!("byte-level tokenizer: {e}"));
    // ByteLevel maps every byte to a printable character; order them by byte value.
    let mut alphabet: Vec<(u8, char)> = ByteLevel::alphabet()
        .into_iter()
        .map(|c| (byte_of(c), c))
        .collect();
    alphabet.sort();
    let vocab: tokenizers::models::bpe::Vocab = alphabet
        .iter()
        .map(|&(b, c)| (c.to_string(), u32::from(b)))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, vec![])
        .build()
        .map_err(error)?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer.add_special_tokens(&[tokenizers::AddedToken::from(END_OF_TEXT, true)]);
    Ok(tokenizer)
}

/// GPT-2's byte ↔ printable-character map, inverted: the byte a [`ByteLevel`] character
/// stands for (printable Latin-1 bytes stand for themselves, the other 68 bytes for
/// U+0100 onwards, in byte order).
///
/// [`ByteLevel`]: tokenizers::pre_tokenizers::byte_level::ByteLevel
fn byte_of(c: char) -> u8 {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let code = c as u32;
    if code < 256 && printable(code) {
        return code as u8;
    }
    let rank = (code - 256) as usize;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(rank)
        .expect("a ByteLevel character") as u8
}

/// Hyper-parameters of a [`train`] run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Where checkpoints, metric logs and the final model go.
    pub artifact_dir: PathBuf,
    /// Passes over the training windows.
    pub epochs: usize,
    /// Windows per step.
    pub batch_size: usize,
    /// Peak learning rate (after warm-up).
    pub lr: f64,
    /// Steps of linear warm-up from `lr / 100` to `lr` (0: none).
    pub warmup_steps: usize,
    /// Learning rate at the end of the cosine decay, as a fraction of `lr`.
    pub final_lr_fraction: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// Gradient L2-norm clipping (`None`: no clipping).
    pub grad_clip: Option<f32>,
    /// Data-loader shuffling seed.
    pub seed: u64,
    /// Data-loader worker threads.
    pub workers: usize,
    /// Continue from the last complete checkpoint in `artifact_dir`.
    pub resume: bool,
    /// More devices to train on besides [`train`]'s `device` (empty: one device).
    /// burn-train's multi-device strategy: the training windows are split into one
    /// contiguous share per device, every optimizer step takes one batch from each, the
    /// gradients are summed on the first device, which takes the step and validates. No
    /// collective operations are needed, so any backends work.
    pub extra_devices: Vec<Device>,
}

impl TrainOptions {
    /// Defaults for a small model on a small corpus (`lr` 1.5e-3 as BitNet b1.58's small
    /// models, 2 epochs, batch 16, 20 warm-up steps, decay to 10 %, weight decay 0.1, clip 1).
    pub fn new(artifact_dir: impl Into<PathBuf>) -> Self {
        Self {
            artifact_dir: artifact_dir.into(),
            epochs: 2,
            batch_size: 16,
            lr: 1.5e-3,
            warmup_steps: 20,
            final_lr_fraction: 0.1,
            weight_decay: 0.1,
            grad_clip: Some(1.0),
            seed: 0,
            extra_devices: Vec::new(),
            workers: 1,
            resume: false,
        }
    }

    /// Linear warm-up, then cosine decay to `final_lr_fraction · lr` at step `total`.
    fn schedule(&self, total: usize) -> Result<ModuleLrScheduler, BitNetError> {
        let error = |e: String| BitNetError::Data(format!("learning-rate schedule: {e}"));
        let warmup = self.warmup_steps.min(total.saturating_sub(1));
        let cosine = CosineAnnealingLrSchedulerConfig::new(self.lr, (total - warmup).max(1))
            .with_min_lr(self.lr * self.final_lr_fraction);
        if warmup == 0 {
            return cosine.init().map_err(error);
        }
        SequentialLrSchedulerConfig::new(
            vec![
                LrSchedulerConfig::Linear(LinearLrSchedulerConfig::new(
                    self.lr / 100.0,
                    self.lr,
                    warmup,
                )),
                LrSchedulerConfig::Cosine(cosine),
            ],
            vec![warmup],
        )
        .init()
        .map_err(error)
    }
}

/// What a [`train`] run did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The epoch the run resumed after (0: started fresh).
    pub resumed_after: usize,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: usize,
    /// Wall seconds of this process's training (validation included).
    pub seconds: f64,
    /// Tokens per optimizer step (`batch_size · seq_len`).
    pub tokens_per_step: usize,
}

/// Trains `model` (in the training state, on an autodiff device) on `train` windows,
/// validating on `valid` after each epoch, with burn-train: AdamW, the schedule of
/// [`TrainOptions`], loss / accuracy / perplexity / learning-rate metrics (logged per step
/// under `artifact_dir/{train,valid}/epoch-N/`), and model, optimizer and scheduler
/// checkpoints after every epoch (`artifact_dir/checkpoint/*-N.bpk`, each written to a
/// temporary file and renamed). With `resume`, the run continues after the last epoch whose
/// three checkpoints are all there ([`last_complete_checkpoint`]); without it, a directory that
/// already holds checkpoints is refused. Returns the
/// trained model (training state, on the plain device) and a report.
///
/// Errors: [`BitNetError::Data`] for an unusable setup (existing checkpoints without
/// `resume`, a batch size of 0, a schedule burn refuses); [`BitNetError::Io`].
pub fn train(
    model: BitNet,
    train: TokenWindows,
    valid: TokenWindows,
    options: &TrainOptions,
    device: &Device,
) -> Result<(BitNet, TrainReport), BitNetError> {
    if options.batch_size == 0 || options.epochs == 0 {
        return Err(BitNetError::Data(format!(
            "batch size {} and epochs {} must be > 0",
            options.batch_size, options.epochs
        )));
    }
    let dir = &options.artifact_dir;
    let ckpt = dir.join("checkpoint");
    let last = last_complete_checkpoint(&ckpt);
    if AtomicFileCheckpointer::last_epoch(&ckpt, "model").is_some() && !options.resume {
        return Err(BitNetError::Data(format!(
            "{} already holds checkpoints: resume, or choose another artifact directory",
            ckpt.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| BitNetError::io(dir, e))?;
    let devices = 1 + options.extra_devices.len();
    let tokens_per_step = options.batch_size * train.seq_len() * devices;
    let steps_per_epoch = training::run::steps_per_epoch(train.len(), options.batch_size, devices);
    let train_device = device.clone().autodiff();
    let train_loader = DataLoaderBuilder::new(LmBatcher)
        .batch_size(options.batch_size)
        .num_workers(options.workers)
        .shuffle(options.seed)
        .set_device(train_device.clone())
        .build(train);
    let valid_loader = DataLoaderBuilder::new(LmBatcher)
        .batch_size(options.batch_size)
        .num_workers(options.workers)
        .set_device(device.clone())
        .build(valid);
    let optim = AdamWConfig::new()
        .with_weight_decay(options.weight_decay)
        .with_grad_clipping(options.grad_clip.map(GradientClippingConfig::Norm))
        .init();
    let lr = options.schedule(options.epochs * steps_per_epoch)?;
    let learner = Learner::new(model.fork(&train_device).train(), optim, lr);
    let mut training = SupervisedTraining::new(dir, train_loader, valid_loader)
        .metrics((LossMetric::new(), AccuracyMetric::new()))
        .metrics((PerplexityMetric::new(),))
        .metrics((LearningRateMetric::new(),))
        .num_epochs(options.epochs)
        .with_custom_checkpointers(
            AtomicFileCheckpointer::new(&ckpt, "model"),
            AtomicFileCheckpointer::new(&ckpt, "optim"),
            AtomicFileCheckpointer::new(&ckpt, "scheduler"),
        )
        .renderer(Box::new(LineRenderer::new().with_unit("seq")))
        .summary();
    if devices > 1 {
        let all: Vec<Device> = std::iter::once(device.clone())
            .chain(options.extra_devices.iter().cloned())
            .collect();
        let strategy = ExecutionStrategy::multi(all, MultiDeviceOptim::OptimMainDevice);
        training = training.with_training_strategy(strategy.into());
    }
    let resumed_after = last.filter(|_| options.resume).unwrap_or(0);
    if resumed_after > 0 {
        training = training.checkpoint(resumed_after);
    }
    let clock = Instant::now();
    let result = training.launch(learner);
    Ok((
        result.model.valid(),
        TrainReport {
            resumed_after,
            steps_per_epoch,
            seconds: clock.elapsed().as_secs_f64(),
            tokens_per_step,
        },
    ))
}

/// The last epoch whose model, optimizer and scheduler checkpoints are all in `ckpt` (a run
/// killed between writing them leaves an epoch that cannot be resumed from), if any.
pub fn last_complete_checkpoint(ckpt: &Path) -> Option<usize> {
    let last = AtomicFileCheckpointer::last_epoch(ckpt, "model")?;
    (1..=last).rev().find(|e| {
        ["model", "optim", "scheduler"]
            .iter()
            .all(|n| ckpt.join(format!("{n}-{e}.bpk")).exists())
    })
}

/// Per-step training losses of a run, in order (epochs `1..=epochs`), from burn-train's
/// metric logs under `artifact_dir/train/epoch-N/Loss.log` (lines `loss,1` per step; the
/// epoch's closing `mean,final` line is left out); epochs without a log are skipped.
pub fn loss_curve(artifact_dir: &Path, epochs: usize) -> Vec<f64> {
    (1..=epochs)
        .filter_map(|e| {
            std::fs::read_to_string(artifact_dir.join(format!("train/epoch-{e}/Loss.log"))).ok()
        })
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| {
                    let (value, count) = l.split_once(',')?;
                    count.trim().parse::<u64>().ok()?;
                    value.parse::<f64>().ok()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The mean loss of one epoch (1-based) on `split` (`"train"` or `"valid"`), as burn-train
/// logged it (the `mean,final` line of `artifact_dir/<split>/epoch-N/Loss.log`).
pub fn epoch_loss(artifact_dir: &Path, split: &str, epoch: usize) -> Option<f64> {
    let path = artifact_dir.join(format!("{split}/epoch-{epoch}/Loss.log"));
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (value, tag) = l.split_once(',')?;
        (tag.trim() == "final").then(|| value.parse().ok())?
    })
}
