//! ResNet-20 for 32×32 images (He et al. 2016, the CIFAR variant): a 3×3 stem, three stages of
//! three basic blocks at 16, 32 and 64 channels (×`width`), global average pooling and a linear
//! classifier. Every convolution inside the blocks (and the 1×1 projection shortcuts) is
//! ternary; the stem and the classifier stay f32 by default, as in TWN.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};
use burn_ternary::TernaryError;
use burn_ternary::quant::ActivationQuant;

use crate::model::{Classifier, Conv, Dense, Precision, classifier_steps};

/// conv · BN · ReLU · conv · BN, plus the input (or its 1×1 projection when the shape
/// changes), then ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv,
    bn1: BatchNorm,
    conv2: Conv,
    bn2: BatchNorm,
    shortcut: Option<Projection>,
}

/// A 1×1 strided convolution and batch norm matching the residual to the block's output.
#[derive(Module, Debug)]
pub struct Projection {
    conv: Conv,
    bn: BatchNorm,
}

impl BasicBlock {
    fn new(
        c_in: usize,
        c_out: usize,
        stride: usize,
        ternary: bool,
        a: ActivationQuant,
        device: &Device,
    ) -> Self {
        let shortcut = (stride != 1 || c_in != c_out).then(|| Projection {
            conv: Conv::with_geometry(c_in, c_out, 1, stride, ternary, a, device),
            bn: BatchNormConfig::new(c_out).init(device),
        });
        Self {
            conv1: Conv::with_geometry(c_in, c_out, 3, stride, ternary, a, device),
            bn1: BatchNormConfig::new(c_out).init(device),
            conv2: Conv::with_geometry(c_out, c_out, 3, 1, ternary, a, device),
            bn2: BatchNormConfig::new(c_out).init(device),
            shortcut,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv1.forward_block(x.clone(), &self.bn1, true, None);
        let residual = match &self.shortcut {
            Some(p) => p.conv.forward_block(x, &p.bn, false, None),
            None => x,
        };
        self.conv2.forward_residual_block(y, &self.bn2, residual)
    }

    /// Folds each batch norm into the packed conv before it (see [`Conv::fuse`]).
    fn fuse(mut self) -> Result<Self, TernaryError> {
        self.conv1 = self.conv1.fuse(&mut self.bn1, true, None)?;
        self.conv2 = self.conv2.fuse_residual(&mut self.bn2)?;
        if let Some(Projection { conv, mut bn }) = self.shortcut.take() {
            let conv = conv.fuse(&mut bn, false, None)?;
            self.shortcut = Some(Projection { conv, bn });
        }
        Ok(self)
    }
}

/// ResNet-20 (`3·3·2 + 2` layers with weights).
#[derive(Module, Debug)]
pub struct ResNet20 {
    stem: Conv,
    bn: BatchNorm,
    blocks: Vec<BasicBlock>,
    classifier: Dense,
}

impl ResNet20 {
    /// A freshly initialised network with `16·width`, `32·width`, `64·width` channels and
    /// `classes` outputs; its ternary layers quantize their inputs as `activation` says.
    pub fn new(
        precision: Precision,
        width: usize,
        classes: usize,
        activation: ActivationQuant,
        device: &Device,
    ) -> Self {
        let hidden = precision != Precision::Full;
        let edges = precision == Precision::TernaryAll;
        let widths = [16 * width, 32 * width, 64 * width];
        let mut blocks = Vec::new();
        let mut c_in = widths[0];
        for (stage, &c_out) in widths.iter().enumerate() {
            for i in 0..3 {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(
                    c_in, c_out, stride, hidden, activation, device,
                ));
                c_in = c_out;
            }
        }
        Self {
            stem: Conv::new(3, widths[0], edges, activation, device),
            bn: BatchNormConfig::new(widths[0]).init(device),
            blocks,
            classifier: Dense::new(widths[2], classes, edges, activation, device),
        }
    }
}

impl Classifier for ResNet20 {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward_block(x, &self.bn, true, None);
        for block in &self.blocks {
            x = block.forward(x);
        }
        // Global average pooling: [b, c, h, w] → [b, c].
        let x = x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
        self.classifier.forward(x)
    }

    fn fuse(mut self) -> Result<Self, TernaryError> {
        self.stem = self.stem.fuse(&mut self.bn, true, None)?;
        self.blocks = self
            .blocks
            .into_iter()
            .map(BasicBlock::fuse)
            .collect::<Result<_, _>>()?;
        Ok(self)
    }
}

classifier_steps!(ResNet20);
