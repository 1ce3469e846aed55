//! QAT training through burn-train, resume, and export: a tiny model learns a repetitive text,
//! a second run resumes after the first one's checkpoint, and the exported Hugging Face
//! directory and GGUF files load back as the same model (codes, scales, logits).

use std::path::PathBuf;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_ternary::import::gguf::GgufTernary;
use burn_ternary::import::hf_bitnet::LinearClass;
use burn_ternary::nn::TernaryLinear;
use burn_ternary_bitnet::export::{export_gguf, export_gguf_llama, export_hf};
use burn_ternary_bitnet::train::{
    END_OF_TEXT_ID, LmBatcher, byte_level_tokenizer, loss_curve, train,
};
use burn_ternary_bitnet::{
    BitNet, BitNetConfig, BitNetError, LoadOptions, TokenWindows, TrainOptions, load,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bitnet-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny_config(hidden: usize, intermediate: usize, layers: usize) -> BitNetConfig {
    BitNetConfig::from_json(&serde_json::json!({
        "vocab_size": 257,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "rope_theta": 10000.0,
        "tie_word_embeddings": false,
        "eos_token_id": END_OF_TEXT_ID,
    }))
    .unwrap()
}

fn logits(model: &BitNet, tokens: &[u32]) -> Vec<f32> {
    let device = model.embed_tokens.val().device();
    let t: Vec<i32> = tokens.iter().map(|&v| v as i32).collect();
    let input = Tensor::<2, Int>::from_data(TensorData::new(t, [1, tokens.len()]), &device);
    model
        .forward(input, None)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap()
}

fn projections(model: &BitNet) -> Vec<&TernaryLinear> {
    model
        .projections()
        .into_iter()
        .map(|p| p.ternary().unwrap())
        .collect()
}

#[test]
fn token_windows_shift_targets_by_one_and_hold_out_the_tail() {
    let tokens: Vec<u32> = (0..103).collect();
    let (train_set, valid_set) = TokenWindows::split(tokens, 10, 0.2).unwrap();
    // 83 training tokens make 8 windows of 11 (the last window may end on token 81 + 1).
    assert_eq!(train_set.len(), 8);
    assert_eq!(train_set.get(0).unwrap(), (0..11).collect::<Vec<_>>());
    assert_eq!(train_set.get(7).unwrap(), (70..81).collect::<Vec<_>>());
    // The 20 held-out tokens 83..103 make one window, after every training token.
    assert_eq!(valid_set.len(), 1);
    assert_eq!(valid_set.get(0).unwrap(), (83..94).collect::<Vec<_>>());

    let device = Device::flex();
    let batch = LmBatcher.batch(
        vec![train_set.get(0).unwrap(), train_set.get(3).unwrap()],
        &device,
    );
    let inputs: Vec<i64> = batch
        .inputs
        .into_data()
        .convert::<i64>()
        .try_into_vec()
        .unwrap();
    let targets: Vec<i64> = batch
        .targets
        .into_data()
        .convert::<i64>()
        .try_into_vec()
        .unwrap();
    assert_eq!(&inputs[..10], &(0..10).collect::<Vec<i64>>()[..]);
    assert_eq!(&targets[..10], &(1..11).collect::<Vec<i64>>()[..]);
    assert_eq!(&inputs[10..], &(30..40).collect::<Vec<i64>>()[..]);
    assert_eq!(&targets[10..], &(31..41).collect::<Vec<i64>>()[..]);
}

#[test]
fn too_little_text_is_a_typed_error() {
    let err = TokenWindows::split((0..20).collect(), 16, 0.1).unwrap_err();
    assert!(matches!(err, BitNetError::Data(_)), "{err}");
    assert!(err.to_string().contains("20 tokens"), "{err}");
    let err = TokenWindows::split((0..200).collect(), 0, 0.1).unwrap_err();
    assert!(err.to_string().contains("seq_len 0"), "{err}");
}

#[test]
fn byte_level_tokenizer_maps_bytes_to_ids_and_round_trips_utf8() {
    let tok = byte_level_tokenizer().unwrap();
    assert_eq!(tok.get_vocab_size(true), 257);
    assert_eq!(
        tok.token_to_id(burn_ternary_bitnet::train::END_OF_TEXT),
        Some(END_OF_TEXT_ID)
    );
    let text = "Héllo,\tworld!\n  ünïcode ✓ 😀 \u{0}\u{7f}";
    let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
    let bytes: Vec<u32> = text.bytes().map(u32::from).collect();
    assert_eq!(ids, bytes);
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
    // Every byte value is its own id.
    let all: Vec<u32> = (0..256).collect();
    let decoded = tok.decode(&all, false).unwrap();
    assert_eq!(
        decoded.len(),
        String::from_utf8_lossy(&(0..=255u8).collect::<Vec<_>>()).len()
    );
}

#[test]
fn config_json_round_trips() {
    let c = tiny_config(64, 96, 2);
    assert_eq!(BitNetConfig::from_json(&c.to_json()).unwrap(), c);
    let big = BitNetConfig::bitnet_b1_58_2b_4t();
    assert_eq!(BitNetConfig::from_json(&big.to_json()).unwrap(), big);
}

/// The tokens of a repeated sentence, a seeded Flex device, a tiny 1-layer model on it and
/// options for 2 epochs of batch 4 into `dir`.
fn tiny_run(dir: &std::path::Path) -> (Vec<u32>, Device, BitNet, TrainOptions) {
    let text = "the ternary cat sat on the packed mat. ".repeat(60);
    let tokens: Vec<u32> = text.bytes().map(u32::from).collect();
    let device = Device::flex();
    device.seed(7);
    let model = BitNet::init(&tiny_config(64, 128, 1), &device);
    let mut options = TrainOptions::new(dir);
    options.epochs = 2;
    options.batch_size = 4;
    options.lr = 5e-3;
    options.warmup_steps = 4;
    (tokens, device, model, options)
}

/// One run of a tiny model on a repeated sentence; the loss must fall well below the
/// uniform-guess loss ln(257) ≈ 5.55 and below where it started, then a resumed run continues
/// after the first run's checkpoint.
#[test]
fn qat_training_learns_and_resumes_after_a_checkpoint() {
    let dir = scratch("learn");
    let (tokens, device, model, mut options) = tiny_run(&dir);
    let windows = || TokenWindows::split(tokens.clone(), 16, 0.1).unwrap();

    options.epochs = 1;
    let (train_set, valid_set) = windows();
    let (_, first) = train(model.clone(), train_set, valid_set, &options, &device).unwrap();
    assert_eq!(first.resumed_after, 0);
    assert!(dir.join("checkpoint/model-1.bpk").exists());

    // Without `resume`, a directory with checkpoints is refused, naming it.
    options.epochs = 2;
    let (train_set, valid_set) = windows();
    let err = train(model.clone(), train_set, valid_set, &options, &device).unwrap_err();
    assert!(matches!(err, BitNetError::Data(_)), "{err}");
    assert!(err.to_string().contains("checkpoint"), "{err}");

    options.resume = true;
    let (train_set, valid_set) = windows();
    let (trained, second) = train(model, train_set, valid_set, &options, &device).unwrap();
    assert_eq!(second.resumed_after, 1);
    assert!(dir.join("checkpoint/model-2.bpk").exists());

    let curve = loss_curve(&dir, 2);
    assert_eq!(curve.len(), 2 * first.steps_per_epoch, "{curve:?}");
    eprintln!("loss per step: {curve:?}");
    let start = curve[0];
    let end = curve[curve.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(start > 5.0, "initial loss {start} (uniform: 5.55)");
    assert!(
        end < 3.0 && end < start - 2.0,
        "loss {start} -> {end}: {curve:?}"
    );

    // The trained model, packed, predicts the sentence: greedy next bytes inside it.
    let packed = trained.freeze().unwrap();
    let prompt: Vec<u32> = "the ternary cat sat on the"
        .bytes()
        .map(u32::from)
        .collect();
    let l = logits(&packed, &prompt);
    let last = &l[(prompt.len() - 1) * 257..];
    let best = (0..257)
        .max_by(|&a, &b| last[a].total_cmp(&last[b]))
        .unwrap();
    assert_eq!(best, u32::from(b' ') as usize, "next byte after 'the'");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exported_hf_and_gguf_load_as_the_same_model() {
    let dir = scratch("export");
    let device = Device::flex();
    device.seed(3);
    // Rows of 256: whole TQ2_0 / TQ1_0 blocks (and I2_S blocks of 128).
    let model = BitNet::init(&tiny_config(256, 256, 2), &device)
        .freeze()
        .unwrap();
    let prompt: Vec<u32> = "ternary".bytes().map(u32::from).collect();
    let expected = logits(&model, &prompt);
    let codes = |m: &BitNet| -> Vec<(Vec<i8>, Vec<f32>)> {
        projections(m)
            .iter()
            .map(|p| {
                let packed = p.to_packed().unwrap().unwrap();
                (packed.to_ternary(), packed.scales().as_slice().to_vec())
            })
            .collect()
    };
    let original = codes(&model);

    // autobitlinear stores the scale itself: the same model, bit for bit.
    let hf = dir.join("hf");
    let notes = export_hf(&model, &hf, LinearClass::AutoBitLinear, None).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let back = load(&hf, LoadOptions::default(), &device).unwrap();
    assert_eq!(back.config, model.config);
    assert_eq!(codes(&back), original);
    assert_eq!(logits(&back, &prompt), expected);

    // I2_S keeps one f32 scale per tensor: exact too.
    let i2s = dir.join("model-i2_s.gguf");
    export_gguf(&model, &i2s, GgufTernary::I2S).unwrap();
    let back = load(&i2s, LoadOptions::default(), &device).unwrap();
    assert_eq!(codes(&back), original);
    assert_eq!(logits(&back, &prompt), expected);

    // TQ2_0 / TQ1_0 keep one f16 scale per block of 256: the codes exactly, each scale as its
    // f16 rounding (the notes say so).
    for ty in [GgufTernary::Tq2_0, GgufTernary::Tq1_0] {
        let path = dir.join(format!("model-{ty:?}.gguf"));
        let notes = export_gguf(&model, &path, ty).unwrap();
        assert!(notes.iter().all(|n| n.contains("f16")), "{notes:?}");
        let back = load(&path, LoadOptions::default(), &device).unwrap();
        for ((c, s), (c0, s0)) in codes(&back).into_iter().zip(&original) {
            assert_eq!(&c, c0);
            let rounded: Vec<f32> = s0
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32())
                .collect();
            assert_eq!(s, rounded);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unfreeze_gives_back_the_packed_codes_and_scales() {
    let device = Device::flex();
    device.seed(11);
    let packed = BitNet::init(&tiny_config(64, 96, 1), &device)
        .freeze()
        .unwrap();
    let prompt: Vec<u32> = "abc".bytes().map(u32::from).collect();
    let refrozen = packed.clone().unfreeze();
    assert!(projections(&refrozen).iter().all(|p| !p.is_packed()));
    let refrozen = refrozen.freeze().unwrap();
    for (a, b) in projections(&packed).iter().zip(projections(&refrozen)) {
        let (a, b) = (
            a.to_packed().unwrap().unwrap(),
            b.to_packed().unwrap().unwrap(),
        );
        assert_eq!(a.to_ternary(), b.to_ternary());
        let (sa, sb) = (a.scales().as_slice(), b.scales().as_slice());
        for (x, y) in sa.iter().zip(sb) {
            assert!((x - y).abs() <= 1e-6 * x.abs(), "scale {x} -> {y}");
        }
    }
    let (l0, l1) = (logits(&packed, &prompt), logits(&refrozen, &prompt));
    let diff = l0
        .iter()
        .zip(&l1)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff <= 1e-4, "logits differ by {diff}");
}

#[test]
fn llama_cpp_layout_export_loads_as_the_same_model() {
    let dir = scratch("llama");
    let device = Device::flex();
    device.seed(5);
    let mut config = tiny_config(256, 256, 2);
    config.tie_word_embeddings = true;
    config.bos_token_id = Some(1);
    let model = BitNet::init(&config, &device).freeze().unwrap();
    let prompt: Vec<u32> = "llama".bytes().map(u32::from).collect();
    let path = dir.join("model-i2_s.gguf");
    export_gguf_llama(&model, &path, GgufTernary::I2S, "tiny").unwrap();

    // llama.cpp's names and keys, no embedded Hugging Face config.
    let file =
        burn_ternary::import::model_file::read(&path, &burn_ternary::import::ImportOptions::new())
            .unwrap();
    assert!(file.tensors.contains_key("blk.1.ffn_sub_norm.weight"));
    assert!(file.tensors.contains_key("token_embd.weight"));
    assert!(!file.tensors.keys().any(|k| k.starts_with("model.")));
    let kv = burn_ternary_bitnet::gguf_names::key_values(&file.metadata);
    assert_eq!(
        kv["general.architecture"],
        serde_json::json!({"str": "bitnet"})
    );
    assert_eq!(kv["bitnet.block_count"], serde_json::json!({"u32": 2}));

    let back = load(&path, LoadOptions::default(), &device).unwrap();
    assert_eq!(back.config, model.config);
    assert_eq!(logits(&back, &prompt), logits(&model, &prompt));

    // An untied head has no place in llama.cpp's bitnet architecture: refused by name.
    let untied = BitNet::init(&tiny_config(256, 256, 1), &device)
        .freeze()
        .unwrap();
    let err = export_gguf_llama(&untied, &dir.join("x.gguf"), GgufTernary::I2S, "x").unwrap_err();
    assert!(err.to_string().contains("lm_head.weight"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `extra_devices`: burn-train's multi-device strategy (two workers on the Flex device here):
/// half the optimizer steps per epoch, each over two batches, and the loss still falls.
#[test]
fn qat_training_runs_data_parallel_on_two_workers() {
    let dir = scratch("two-workers");
    let (tokens, device, model, mut options) = tiny_run(&dir);
    options.extra_devices = vec![Device::flex()];
    let (train_set, valid_set) = TokenWindows::split(tokens, 16, 0.1).unwrap();
    let windows = train_set.len();
    let (_, report) = train(model, train_set, valid_set, &options, &device).unwrap();
    assert_eq!(
        report.steps_per_epoch,
        (windows - windows / 2).div_ceil(4),
        "{windows} windows in two shares, batches of 4"
    );
    assert_eq!(report.tokens_per_step, 2 * 4 * 16);
    // burn-train logs one loss per batch: two per step.
    let curve = loss_curve(&dir, 2);
    assert_eq!(curve.len(), 2 * 2 * report.steps_per_epoch, "{curve:?}");
    let (start, end) = (curve[0], curve[curve.len() - 1]);
    assert!(end < start - 1.0, "loss {start} -> {end}: {curve:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
