//! The BitNet b1.58 decoder (`transformers`' `BitNetForCausalLM`) and its KV cache.
//!
//! Per layer, with `x` the residual stream `[batch, tokens, hidden]`:
//!
//! ```text
//! h   = x + o_proj(attn_sub_norm(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))))
//!       where n = input_layernorm(x)
//! out = h + down_proj(ffn_sub_norm(relu(gate_proj(m))² ⊙ up_proj(m)))
//!       where m = post_attention_layernorm(h)
//! ```
//!
//! then `logits = lm_head(norm(out))`. Every projection is a [`TernaryLinear`] with per-token
//! int8 activations: in the packed state its forward is the W2A8 GEMM/GEMV of the backend
//! extension, in the training state the straight-through fake quantization that computes the
//! same values (QAT trains what inference runs).

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use burn_ternary::nn::{TernaryLinear, TernaryLinearConfig};
use burn_ternary::quant::{ActivationQuant, Granularity, TernaryQuantizer};

use crate::config::BitNetConfig;
use ternary_kernels::cpu::{HalfKind, HalfMatrixRef};

/// Root-mean-square layer norm: `x · rsqrt(mean(x²) + ε) · weight` over the last dimension
/// (`BitNetRMSNorm`, computed in f32).
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// Gain `[width]`.
    pub weight: Param<Tensor<1>>,
    /// ε added to the mean square.
    #[module(skip)]
    pub eps: f64,
}

impl RmsNorm {
    /// A norm with unit gain.
    pub fn new(width: usize, eps: f64, device: &Device) -> Self {
        Self::from_weight(Tensor::ones([width], device), eps)
    }

    /// A norm with the given gain `[width]`.
    pub fn from_weight(weight: Tensor<1>, eps: f64) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            eps,
        }
    }

    /// `[..., width]` → `[..., width]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let ms = x.clone().square().mean_dim(D - 1);
        let inv = (ms + self.eps).sqrt().recip();
        x * inv * self.weight.val().unsqueeze::<D>()
    }
}

/// Rotary position embedding tables (`rotate_half` convention: dimension `i` is paired with
/// `i + head_dim/2`), `inv_freq[i] = θ^(−2i/head_dim)` in f32 as transformers computes it.
#[derive(Debug, Clone)]
pub struct Rope {
    /// `cos(p · inv_freq)` for every position, both halves: `[max_positions, head_dim]`.
    pub cos: Tensor<2>,
    /// `sin(p · inv_freq)`, same layout.
    pub sin: Tensor<2>,
}

impl Rope {
    /// Tables for `positions` positions of `head_dim` (even) with base `theta`. They are
    /// constants, so they are made without autodiff even on an autodiff device: the same
    /// tables then serve the training forward and the validation / inference forward of
    /// [`Module::valid`]'s model.
    pub fn new(head_dim: usize, positions: usize, theta: f64, device: &Device) -> Self {
        let device = &device.clone().without_autodiff();
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(positions * head_dim);
        let mut sin = Vec::with_capacity(positions * head_dim);
        for p in 0..positions {
            for h in 0..head_dim {
                // f32 product and f32 cos/sin, as transformers (its `freqs` is an f32 matmul).
                let angle = p as f32 * inv_freq[h % half];
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [positions, head_dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [positions, head_dim]), device),
        }
    }

    /// Rotates `x` `[batch, heads, tokens, head_dim]` whose first token is at position `start`.
    pub fn apply(&self, x: Tensor<4>, start: usize) -> Tensor<4> {
        let [_, _, t, d] = x.dims();
        let cos = self.cos.clone().narrow(0, start, t).unsqueeze::<4>();
        let sin = self.sin.clone().narrow(0, start, t).unsqueeze::<4>();
        let x1 = x.clone().narrow(3, 0, d / 2);
        let x2 = x.clone().narrow(3, d / 2, d / 2);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos + rotated * sin
    }
}

/// One BitLinear projection: a [`TernaryLinear`] without bias, absmean weights with one scale
/// per tensor, per-token int8 activations.
pub fn bitlinear(d_input: usize, d_output: usize, device: &Device) -> TernaryLinear {
    TernaryLinearConfig::new(d_input, d_output)
        .with_bias(false)
        .with_quantizer(TernaryQuantizer::AbsMean)
        .with_granularity(Granularity::PerTensor)
        .with_activation(ActivationQuant::Int8PerToken)
        .with_initializer(burn::module::Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        })
        .init(device)
}

/// One projection of the model: a BitLinear layer (what BitNet is), or a dense f32 linear
/// layer of the same shape — the full-precision baseline of the same architecture that
/// benchmarks and the f32 training comparison run, never part of a BitNet checkpoint.
// Seven per decoder layer, built once: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Projection {
    /// BitLinear: a [`TernaryLinear`] (absmean per tensor, per-token int8 activations).
    Ternary(TernaryLinear),
    /// Dense f32 weights `[d_input, d_output]`, no bias (`nn::Linear`).
    Dense(Linear),
}

impl Projection {
    /// `[..., d_input]` → `[..., d_output]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Projection::Ternary(l) => l.forward(x),
            Projection::Dense(l) => l.forward(x),
        }
    }

    /// The BitLinear layer, `None` for a dense baseline projection.
    pub fn ternary(&self) -> Option<&TernaryLinear> {
        match self {
            Projection::Ternary(l) => Some(l),
            Projection::Dense(_) => None,
        }
    }

    /// A dense f32 projection holding this one's effective weights (code × scale of a
    /// BitLinear layer, packed or not): the same function without the ternary kernels or the
    /// activation quantization.
    pub fn into_dense(self) -> Self {
        match self {
            Projection::Ternary(l) => Projection::Dense(Linear {
                weight: Param::from_tensor(l.effective_weight()),
                bias: None,
            }),
            dense => dense,
        }
    }

    fn map_ternary(self, f: impl FnOnce(TernaryLinear) -> TernaryLinear) -> Self {
        match self {
            Projection::Ternary(l) => Projection::Ternary(f(l)),
            dense => dense,
        }
    }
}

/// A dense f32 projection `[d_input] → [d_output]` without bias, N(0, 0.02²) as transformers
/// initialises: the layer of the full-precision baseline.
pub fn dense(d_input: usize, d_output: usize, device: &Device) -> Linear {
    LinearConfig::new(d_input, d_output)
        .with_bias(false)
        .with_initializer(burn::module::Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        })
        .init(device)
}

/// Grouped-query self-attention with the BitNet sub-norm before `o_proj`.
#[derive(Module, Debug)]
pub struct Attention {
    /// `[hidden] → [heads · head_dim]`.
    pub q_proj: Projection,
    /// `[hidden] → [kv_heads · head_dim]`.
    pub k_proj: Projection,
    /// `[hidden] → [kv_heads · head_dim]`.
    pub v_proj: Projection,
    /// `[heads · head_dim] → [hidden]`.
    pub o_proj: Projection,
    /// RMSNorm of the attention output, before `o_proj`.
    pub attn_sub_norm: RmsNorm,
    /// Query heads.
    #[module(skip)]
    pub heads: usize,
    /// Key/value heads.
    #[module(skip)]
    pub kv_heads: usize,
    /// Width of a head.
    #[module(skip)]
    pub head_dim: usize,
    /// q, k and v as one packed layer ([`BitNet::fuse_projections`]): one product instead of
    /// three, the same outputs bit for bit. Not saved.
    #[module(skip)]
    pub fused_qkv: Option<TernaryLinear>,
}

impl Attention {
    /// `x` `[b, t, hidden]` at positions `start..start + t`, reading and extending `cache`;
    /// `mask` is [`causal_mask`] (needed when `t > 1`).
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        start: usize,
        mask: Option<&Tensor<4, Bool>>,
        cache: Option<&mut LayerCache>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let split = |y: Tensor<3>, heads: usize| y.reshape([b, t, heads, hd]).swap_dims(1, 2);
        let (q, k, v) = match self.fused_qkv.as_ref().filter(|f| usable(f, &x)) {
            Some(qkv) => {
                let y = qkv.forward(x);
                (
                    y.clone().narrow(2, 0, h * hd),
                    y.clone().narrow(2, h * hd, kvh * hd),
                    y.narrow(2, (h + kvh) * hd, kvh * hd),
                )
            }
            None => (
                self.q_proj.forward(x.clone()),
                self.k_proj.forward(x.clone()),
                self.v_proj.forward(x),
            ),
        };
        let q = rope.apply(split(q, h), start);
        let k = rope.apply(split(k, kvh), start);
        let v = split(v, kvh);
        let (k, v) = match cache {
            Some(cache) => cache.append(k, v),
            None => (k, v),
        };
        let total = k.dims()[2];
        // Query head j uses key/value head j / rep: group the queries of one kv head into
        // one matrix of rep·t rows instead of repeating the keys and values.
        let rep = h / kvh;
        let q = q.reshape([b, kvh, rep * t, hd]);
        let scale = (hd as f64).powf(-0.5);
        let mut scores = q.matmul(k.swap_dims(2, 3)) * scale;
        if let Some(mask) = mask {
            assert_eq!(
                mask.dims(),
                [1, 1, rep * t, total],
                "Attention: causal mask for {t} queries over {total} keys ({rep} query heads per kv head)"
            );
            scores = scores.mask_fill(
                mask.clone().expand([b, kvh, rep * t, total]),
                f32::NEG_INFINITY,
            );
        }
        let out = softmax(scores, 3).matmul(v);
        let out = out
            .reshape([b, h, t, hd])
            .swap_dims(1, 2)
            .reshape([b, t, h * hd]);
        self.o_proj.forward(self.attn_sub_norm.forward(out))
    }
}

/// The squared-ReLU gated FFN with the BitNet sub-norm before `down_proj`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[hidden] → [intermediate]`, through relu².
    pub gate_proj: Projection,
    /// `[hidden] → [intermediate]`.
    pub up_proj: Projection,
    /// `[intermediate] → [hidden]`.
    pub down_proj: Projection,
    /// RMSNorm before `down_proj`.
    pub ffn_sub_norm: RmsNorm,
    /// gate and up as one packed layer ([`BitNet::fuse_projections`]). Not saved.
    #[module(skip)]
    pub fused_gate_up: Option<TernaryLinear>,
}

impl Mlp {
    /// `[b, t, hidden]` → `[b, t, hidden]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let (gate, up) = match self.fused_gate_up.as_ref().filter(|f| usable(f, &x)) {
            Some(gu) => {
                let y = gu.forward(x);
                let i = y.dims()[2] / 2;
                (y.clone().narrow(2, 0, i), y.narrow(2, i, i))
            }
            None => (self.gate_proj.forward(x.clone()), self.up_proj.forward(x)),
        };
        let gate = relu(gate).square();
        let h = gate * up;
        self.down_proj.forward(self.ffn_sub_norm.forward(h))
    }
}

/// One decoder layer.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Self-attention.
    pub self_attn: Attention,
    /// Norm before the FFN.
    pub post_attention_layernorm: RmsNorm,
    /// FFN.
    pub mlp: Mlp,
}

impl DecoderLayer {
    /// `[b, t, hidden]` → `[b, t, hidden]` (arguments as [`Attention::forward`]).
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        start: usize,
        mask: Option<&Tensor<4, Bool>>,
        cache: Option<&mut LayerCache>,
    ) -> Tensor<3> {
        let normed = self.input_layernorm.forward(x.clone());
        let h = x + self.self_attn.forward(normed, rope, start, mask, cache);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}

/// The causal mask of `t` queries at positions `start..start + t` over keys `0..start + t`
/// (`true` = hidden), for the `rep` query heads that share a key/value head, stacked as
/// [`Attention::forward`] groups them: `[1, 1, rep·t, start + t]`. Built once per forward
/// and shared by every layer.
pub fn causal_mask(t: usize, start: usize, rep: usize, device: &Device) -> Tensor<4, Bool> {
    let total = start + t;
    // Row i (query at position start + i) may see keys 0..=start + i.
    Tensor::<2, Bool>::tril_mask([t, total], start as i64, device)
        .unsqueeze_dim::<3>(0)
        .repeat_dim(0, rep)
        .reshape([1, 1, rep * t, total])
}

/// Keys and values of one layer for the positions seen so far: `[b, kv_heads, len, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct LayerCache {
    kv: Option<(Tensor<4>, Tensor<4>)>,
}

impl LayerCache {
    /// Appends new keys/values and returns all of them.
    fn append(&mut self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (k, v) = match self.kv.take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        self.kv = Some((k.clone(), v.clone()));
        (k, v)
    }
}

/// The KV cache of a whole model: keys (after RoPE) and values of every layer for the
/// positions processed so far.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
}

impl KvCache {
    /// An empty cache for `layers` decoder layers.
    pub fn new(layers: usize) -> Self {
        Self {
            layers: vec![LayerCache::default(); layers],
            len: 0,
        }
    }

    /// Positions cached (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Whether `x` belongs to a training forward (it tracks gradients, or lives on an autodiff
/// device): the inference-only copies (fused projections, the 16-bit head) are not
/// parameters, so no gradient would reach the weights they were made from.
fn in_training(x: &Tensor<3>) -> bool {
    x.is_require_grad() || x.device().is_autodiff()
}

/// Whether a fused layer may replace its parts for `x`: not in training, and only on the
/// device it was built on (a module moved with `to_device`/`fork` keeps its skipped fields
/// where they were).
fn usable(fused: &TernaryLinear, x: &Tensor<3>) -> bool {
    !in_training(x) && fused.packed.val().device() == x.device()
}

/// `parts` (packed ternary projections of one input width and activation mode) as one packed
/// layer whose rows are theirs in order, each with its projection's scale; `None` otherwise.
fn fuse(parts: &[(&Projection, usize)]) -> Option<TernaryLinear> {
    let layers: Vec<&TernaryLinear> = parts
        .iter()
        .map(|(p, width)| p.ternary().filter(|l| l.d_output() == *width))
        .collect::<Option<_>>()?;
    let first = layers.first()?;
    if layers.iter().any(|l| {
        !l.is_packed()
            || l.bias.is_some()
            || l.activation != first.activation
            || l.d_input != first.d_input
    }) {
        return None;
    }
    let (mut data, mut scales, mut n) = (Vec::new(), Vec::new(), 0);
    for l in &layers {
        let p = l.to_packed().ok()??;
        let r = ternary_kernels::PackedI2Ref::from(&p);
        if p.scales().group_size().is_some() {
            return None;
        }
        scales.extend((0..p.n()).map(|j| r.scale(j)));
        data.extend_from_slice(p.data());
        n += p.n();
    }
    let packed = ternary_kernels::PackedI2::from_packed_rows(
        n,
        first.d_input,
        ternary_kernels::Scales::PerRow(scales),
        data,
    )
    .ok()?;
    let device = first.packed.val().device();
    Some(TernaryLinear::from_packed(
        &packed,
        None,
        first.activation,
        &device,
    ))
}

/// An LM head `[vocab, hidden]` of 16-bit floats on the host ([`BitNet::with_half_lm_head`]).
#[derive(Debug, Clone)]
pub struct HalfHead {
    bits: std::sync::Arc<Vec<u16>>,
    vocab: usize,
    hidden: usize,
    kind: HalfKind,
}

impl HalfHead {
    /// The value format.
    pub fn kind(&self) -> HalfKind {
        self.kind
    }

    /// Bytes one product reads: `vocab · hidden · 2`.
    pub fn bytes(&self) -> usize {
        self.bits.len() * 2
    }

    /// `h · Wᵀ` for `h` `[b, t, hidden]`: `[b, t, vocab]` on `h`'s device.
    fn logits(&self, h: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = h.dims();
        assert_eq!(
            d, self.hidden,
            "BitNet LM head: hidden states have width {d} but the head {}",
            self.hidden
        );
        let device = h.device();
        let x = h
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 hidden states");
        let w = HalfMatrixRef::new(&self.bits, self.vocab, self.hidden, self.kind)
            .expect("the head's length is vocab · hidden by construction");
        let mut out = vec![0f32; b * t * self.vocab];
        ternary_kernels::cpu::matmul_half(&x, b * t, w, &mut out)
            .expect("operand lengths match by construction");
        Tensor::from_data(TensorData::new(out, [b, t, self.vocab]), &device)
    }
}

/// A BitNet b1.58 causal language model.
#[derive(Module, Debug)]
pub struct BitNet {
    /// Token embeddings `[vocab, hidden]`.
    pub embed_tokens: Param<Tensor<2>>,
    /// Decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// Final norm.
    pub norm: RmsNorm,
    /// LM head `[vocab, hidden]` (as stored by transformers); `None` when tied to the
    /// embeddings.
    pub lm_head: Option<Param<Tensor<2>>>,
    /// RoPE tables (derived from the config, not saved).
    #[module(skip)]
    pub rope: Rope,
    /// The LM head as 16-bit floats on the host, set by [`BitNet::with_half_lm_head`]: when
    /// present, [`BitNet::logits`] streams it (2 bytes per weight) instead of the f32 tensor.
    #[module(skip)]
    pub half_head: Option<HalfHead>,
    /// The hyper-parameters.
    #[module(skip)]
    pub config: BitNetConfig,
}

impl BitNet {
    /// A model with random weights in the training state (latent f32 weights, N(0, 0.02²) as
    /// transformers initialises; norms at 1): for training from scratch and benchmarks.
    pub fn init(config: &BitNetConfig, device: &Device) -> Self {
        Self::init_with(config, device, |i, o| {
            Projection::Ternary(bitlinear(i, o, device))
        })
    }

    /// The same architecture with dense f32 projections ([`Projection::Dense`]) instead of
    /// BitLinear: the full-precision baseline a QAT run is compared with. Not a BitNet model.
    pub fn init_dense(config: &BitNetConfig, device: &Device) -> Self {
        Self::init_with(config, device, |i, o| {
            Projection::Dense(dense(i, o, device))
        })
    }

    /// A packed model with random ternary projections (codes −1/0/+1 equally likely, one
    /// scale per tensor, `seed`-determined) and N(0, 0.02²) embeddings: for speed benchmarks
    /// at real shapes without materialising f32 latent weights (a 2B model's projections take
    /// 0.5 GB this way instead of 8 GB). Its outputs mean nothing.
    pub fn init_packed_random(
        config: &BitNetConfig,
        seed: u64,
        activation: ActivationQuant,
        device: &Device,
    ) -> Self {
        let rng = std::cell::RefCell::new(ternary_kernels::random::XorShift::new(seed));
        Self::init_with(config, device, |i, o| {
            let mut rng = rng.borrow_mut();
            let codes = rng.ternary(o * i);
            let scale = 0.5 + rng.next_f32().abs();
            let packed = ternary_kernels::PackedI2::from_ternary(
                &codes,
                o,
                i,
                ternary_kernels::Scales::PerTensor(scale / (i as f32).sqrt()),
            )
            .expect("valid by construction");
            Projection::Ternary(TernaryLinear::from_packed(
                &packed, None, activation, device,
            ))
        })
    }

    fn init_with(
        config: &BitNetConfig,
        device: &Device,
        projection: impl Fn(usize, usize) -> Projection,
    ) -> Self {
        let (d, eps) = (config.hidden_size, config.rms_norm_eps);
        let layers = (0..config.num_hidden_layers)
            .map(|_| DecoderLayer {
                input_layernorm: RmsNorm::new(d, eps, device),
                self_attn: Attention {
                    q_proj: projection(d, config.q_dim()),
                    k_proj: projection(d, config.kv_dim()),
                    v_proj: projection(d, config.kv_dim()),
                    o_proj: projection(config.q_dim(), d),
                    attn_sub_norm: RmsNorm::new(config.q_dim(), eps, device),
                    heads: config.num_attention_heads,
                    kv_heads: config.num_key_value_heads,
                    head_dim: config.head_dim,
                    fused_qkv: None,
                },
                post_attention_layernorm: RmsNorm::new(d, eps, device),
                mlp: Mlp {
                    gate_proj: projection(d, config.intermediate_size),
                    up_proj: projection(d, config.intermediate_size),
                    down_proj: projection(config.intermediate_size, d),
                    ffn_sub_norm: RmsNorm::new(config.intermediate_size, eps, device),
                    fused_gate_up: None,
                },
            })
            .collect();
        let normal = burn::tensor::Distribution::Normal(0.0, 0.02);
        let embed = Tensor::random([config.vocab_size, d], normal, device);
        let lm_head = (!config.tie_word_embeddings)
            .then(|| Param::from_tensor(Tensor::random([config.vocab_size, d], normal, device)));
        Self::from_parts(config, embed, layers, RmsNorm::new(d, eps, device), lm_head)
    }

    /// A model from its parts: embeddings `[vocab, hidden]`, the decoder layers, the final
    /// norm and an untied LM head `[vocab, hidden]` (`None` when tied); the RoPE tables are
    /// derived from `config` on the embeddings' device.
    pub fn from_parts(
        config: &BitNetConfig,
        embed: Tensor<2>,
        layers: Vec<DecoderLayer>,
        norm: RmsNorm,
        lm_head: Option<Param<Tensor<2>>>,
    ) -> Self {
        let rope = Rope::new(
            config.head_dim,
            config.max_position_embeddings,
            config.rope_theta,
            &embed.device(),
        );
        Self {
            embed_tokens: Param::from_tensor(embed),
            layers,
            norm,
            lm_head,
            rope,
            half_head: None,
            config: config.clone(),
        }
    }

    /// The LM head (the untied head, or the tied embeddings) rounded to `kind` and kept on the
    /// host, for inference: [`BitNet::logits`] then reads 2 bytes per weight instead of 4
    /// (the head is most of what a decode step of a small-hidden, large-vocabulary model
    /// reads: 1.31 of 1.84 GB at BitNet-b1.58-2B-4T's shapes in f32, 0.66 of 1.18 GB in bf16).
    ///
    /// Each weight is rounded to nearest-even in `kind` — exact for weights that came from a
    /// checkpoint in that type (BitNet-b1.58-2B-4T ships its embeddings in bf16), a change of
    /// at most half a unit in the 8th (bf16) or 11th (f16) significant bit otherwise. The
    /// logits then come from [`ternary_kernels::cpu::matmul_half`] on the host CPU, whatever
    /// the model's device, with no gradient: for generation, not for training (when the hidden
    /// states track gradients, [`BitNet::logits`] uses the f32 head, so training is unaffected). The 16-bit copy
    /// is a snapshot of the head as it is now: after changing the weights (loading a record,
    /// an optimizer step), call this again. The f32 tensor stays in the model (the embedding
    /// lookup and checkpoints use it). `None` restores the f32 head.
    pub fn with_half_lm_head(mut self, kind: Option<HalfKind>) -> Self {
        self.half_head = kind.map(|kind| {
            let w = self.head_weight();
            let [vocab, hidden] = w.dims();
            let values = w
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("an f32 LM head");
            let bits = values.iter().map(|&v| kind.from_f32(v)).collect();
            HalfHead {
                bits: std::sync::Arc::new(bits),
                vocab,
                hidden,
                kind,
            }
        });
        self
    }

    /// The LM head `[vocab, hidden]` as the model stores it: the untied head, or the tied
    /// embeddings.
    fn head_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(w) => w.val(),
            None => self.embed_tokens.val(),
        }
    }

    /// A fresh cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    /// The final hidden states `[b, t, hidden]` (after the last norm) of `ids` `[b, t]`,
    /// placed after the `cache.len()` positions already cached (positions from 0 without a
    /// cache), extending the cache.
    ///
    /// # Panics
    /// When the positions run past `max_position_embeddings` (the message names both);
    /// [`crate::generate`] checks this first and returns a typed error.
    pub fn hidden(&self, ids: Tensor<2, Int>, cache: Option<&mut KvCache>) -> Tensor<3> {
        let [_, t] = ids.dims();
        let start = cache.as_ref().map_or(0, |c| c.len);
        assert!(
            start + t <= self.config.max_position_embeddings,
            "BitNet: positions {start}..{} exceed max_position_embeddings = {}",
            start + t,
            self.config.max_position_embeddings
        );
        let mut x = burn::tensor::module::embedding(self.embed_tokens.val(), ids);
        let rep = self.config.num_attention_heads / self.config.num_key_value_heads;
        let mask = (t > 1).then(|| causal_mask(t, start, rep, &x.device()));
        let mask = mask.as_ref();
        match cache {
            Some(cache) => {
                assert_eq!(
                    cache.layers.len(),
                    self.layers.len(),
                    "BitNet: cache of {} layers for a model of {}",
                    cache.layers.len(),
                    self.layers.len()
                );
                for (layer, c) in self.layers.iter().zip(cache.layers.iter_mut()) {
                    x = layer.forward(x, &self.rope, start, mask, Some(c));
                }
                cache.len += t;
            }
            None => {
                for layer in &self.layers {
                    x = layer.forward(x, &self.rope, start, mask, None);
                }
            }
        }
        self.norm.forward(x)
    }

    /// Logits `[b, t, vocab]` of `ids` `[b, t]` (see [`BitNet::hidden`]).
    pub fn forward(&self, ids: Tensor<2, Int>, cache: Option<&mut KvCache>) -> Tensor<3> {
        let h = self.hidden(ids, cache);
        self.logits(h)
    }

    /// The LM head: `[b, t, hidden]` → `[b, t, vocab]`.
    ///
    /// With a 16-bit head ([`BitNet::with_half_lm_head`]) the product runs on the host CPU
    /// (no gradient), except when `h` tracks gradients (an autodiff device), where the f32
    /// head keeps the graph.
    ///
    /// # Panics
    /// When `h`'s last dimension is not the model's hidden size.
    pub fn logits(&self, h: Tensor<3>) -> Tensor<3> {
        if let Some(head) = &self.half_head
            && !in_training(&h)
        {
            return head.logits(h);
        }
        let w = self.head_weight();
        // `W · hᵀ` with the `[vocab, hidden]` matrix as stored: `h · Wᵀ` would make the
        // backend copy the transposed head (1.3 GB at 2B shapes) on every call. This way the
        // copies are of `[b·t, hidden]` and of the `[vocab, b·t]` result: small when decoding
        // (b·t = 1), b·t·vocab floats for a prefill or a training batch.
        let [b, t, d] = h.dims();
        let vocab = w.dims()[0];
        w.matmul(h.reshape([b * t, d]).transpose())
            .transpose()
            .reshape([b, t, vocab])
    }

    /// Runs q/k/v as one packed product and gate/up as another, for inference: the rows of
    /// the packed matrices stacked, each keeping its tensor's scale as a per-row scale. The
    /// inputs of the fused products are the same activations, quantized once instead of three
    /// (two) times, so every output is bit-identical to the separate products; a decode step
    /// makes 4 products per layer instead of 7. The separate projections stay in the model
    /// (checkpoints and export use them), so the fused copies add their size to the resident
    /// memory (q, k, v, gate and up: 0.34 GB at BitNet-b1.58-2B-4T's shapes). They are not
    /// saved and are a snapshot: after loading other weights into the model, call this again
    /// (this type's own projection-changing methods drop them). They are used only outside
    /// training and on the device they were built on. Bit-identical on the CPU kernels, and
    /// for int8 activations everywhere; with f32 activations on a GPU the product's kernel
    /// variant (and so its f32 summation order) may differ from the separate products'. Layers whose projections are not all packed
    /// ternary with one activation mode are left as they are.
    pub fn fuse_projections(mut self) -> Self {
        let (q, kv) = (self.config.q_dim(), self.config.kv_dim());
        let i = self.config.intermediate_size;
        for layer in &mut self.layers {
            let a = &mut layer.self_attn;
            // The forward narrows the fused output at these widths.
            a.fused_qkv = fuse(&[(&a.q_proj, q), (&a.k_proj, kv), (&a.v_proj, kv)]);
            let m = &mut layer.mlp;
            m.fused_gate_up = fuse(&[(&m.gate_proj, i), (&m.up_proj, i)]);
        }
        self
    }

    /// Converts every projection to the packed state (2-bit words, the W2A8 kernels) with
    /// exactly the ternary values and scales the training forward uses.
    pub fn freeze(self) -> Result<Self, burn_ternary::TernaryError> {
        burn_ternary::nn::freeze(self)
    }

    /// Every packed projection back in the training state ([`TernaryLinear::unfreeze`]: the
    /// same codes and, up to the f32 rounding of a mean, the same scales come out of the
    /// training forward's quantizer), for fine-tuning an imported model with QAT.
    pub fn unfreeze(self) -> Self {
        self.map_projections(|p| p.map_ternary(TernaryLinear::unfreeze))
    }

    /// The same function with every projection dense f32 ([`Projection::into_dense`]: the
    /// effective weights code × scale, exact f32 activations): the full-precision baseline of
    /// a trained or imported model, for benchmarks.
    pub fn into_dense(self) -> Self {
        self.map_projections(Projection::into_dense)
    }

    /// Every projection, in checkpoint order per layer (q, k, v, o, gate, up, down).
    pub fn projections(&self) -> Vec<&Projection> {
        self.layers
            .iter()
            .flat_map(|l| {
                let (a, m) = (&l.self_attn, &l.mlp);
                [
                    &a.q_proj,
                    &a.k_proj,
                    &a.v_proj,
                    &a.o_proj,
                    &m.gate_proj,
                    &m.up_proj,
                    &m.down_proj,
                ]
            })
            .collect()
    }

    fn map_projections(mut self, f: impl Fn(Projection) -> Projection) -> Self {
        let placeholder = || {
            Projection::Dense(Linear {
                weight: Param::from_tensor(Tensor::zeros([0, 0], &Device::flex())),
                bias: None,
            })
        };
        for layer in &mut self.layers {
            let (a, m) = (&mut layer.self_attn, &mut layer.mlp);
            for p in [
                &mut a.q_proj,
                &mut a.k_proj,
                &mut a.v_proj,
                &mut a.o_proj,
                &mut m.gate_proj,
                &mut m.up_proj,
                &mut m.down_proj,
            ] {
                *p = f(std::mem::replace(p, placeholder()));
            }
            // Fused copies of the old projections would no longer match.
            a.fused_qkv = None;
            m.fused_gate_up = None;
        }
        self
    }
}
