//! `cargo run --release --example bitnet_bench -- [--layers 30] [--prompt 64] [--new 16]`
//!
//! Prefill and decode speed of a BitNet b1.58 model at BitNet-b1.58-2B-4T's shapes (hidden
//! 2560, FFN 6912, 30 layers, 20 heads / 5 KV heads, vocabulary 128 256, tied f32
//! embeddings) with **random weights**: the packed W2A8 model against the same model with
//! dense f32 projections (its effective weights) in Burn, interleaved in one process, medians
//! of `--reps` runs; the packed model twice, with its LM head in f32 and in bf16
//! ([`BitNet::with_half_lm_head`]: half the bytes of the largest matrix a decode step reads).
//! Also measures the host's read bandwidth in the same run and states decode against the
//! bandwidth bound: bytes read per token (packed projections + the LM head in its format +
//! norms) / read bandwidth.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use burn_ternary::quant::ActivationQuant;
use burn_ternary_bitnet::generate::generate;
use burn_ternary_bitnet::{BitNet, BitNetConfig, Generation, HalfKind, Sampler, SamplingConfig};
use clap::Parser;

/// Prefill / decode tokens per second at BitNet-2B shapes, packed W2A8 vs dense f32.
#[derive(Parser)]
#[command(name = "bitnet_bench")]
struct Args {
    /// Decoder layers (30 = the 2B-4T model; fewer for a quick run, same per-layer shapes).
    #[arg(long, default_value_t = 30)]
    layers: usize,
    /// Prompt tokens (prefill).
    #[arg(long, default_value_t = 64)]
    prompt: usize,
    /// Decoded tokens per run.
    #[arg(long, default_value_t = 16)]
    new: usize,
    /// Interleaved runs of each model (medians reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Skip the f32 baseline (it needs ~4 bytes per weight of memory: ~10 GB at 30 layers).
    #[arg(long)]
    packed_only: bool,
}

fn main() {
    let args = Args::parse();
    let device = Device::flex();
    let mut config = BitNetConfig::bitnet_b1_58_2b_4t();
    config.num_hidden_layers = args.layers;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "BitNet-b1.58-2B-4T shapes, {} layers, random weights | prompt {} tokens, {} decoded | {} threads",
        args.layers, args.prompt, args.new, threads
    );

    let rss0 = rss_mib();
    let clock = Instant::now();
    // q/k/v and gate/up fused into one product each (`BitNet::fuse_projections`), as the
    // `bitnet` example runs; the dense baseline below is built from the separate projections.
    let packed = BitNet::init_packed_random(&config, 1, ActivationQuant::Int8PerToken, &device)
        .fuse_projections();
    let rss_packed = rss_mib() - rss0;
    println!(
        "packed model built in {:.1} s, resident +{rss_packed:.0} MiB",
        clock.elapsed().as_secs_f64()
    );
    let clock = Instant::now();
    let before = rss_mib();
    let half = packed.clone().with_half_lm_head(Some(HalfKind::Bf16));
    let rss_half = rss_mib() - before;
    println!(
        "bf16 LM head built in {:.1} s, resident +{rss_half:.0} MiB (shares the packed model)",
        clock.elapsed().as_secs_f64()
    );
    let dense = (!args.packed_only).then(|| {
        let clock = Instant::now();
        let before = rss_mib();
        let dense = packed.clone().into_dense();
        // Materialise the dense weights now, not inside the first timed forward.
        let _ = dense.num_params();
        let d = dense_weights_bytes(&dense);
        println!(
            "f32 model built in {:.1} s, resident +{:.0} MiB ({:.2} GB of f32 projections)",
            clock.elapsed().as_secs_f64(),
            rss_mib() - before,
            d as f64 / 1e9
        );
        dense
    });

    // Bytes one decode step reads: every projection, the LM head (tied f32 embeddings:
    // vocab × hidden × 4), the norms; the KV cache and activations are small next to these.
    let projection_bytes: usize = packed
        .projections()
        .iter()
        .map(|p| {
            let t = p.ternary().expect("ternary");
            let w = t.to_packed().expect("packed").expect("packed");
            w.data().len() + 4 * w.scales().as_slice().len()
        })
        .sum();
    let head_bytes = config.vocab_size * config.hidden_size * 4;
    let norm_bytes = 4
        * (config.num_hidden_layers
            * (2 * config.hidden_size + config.q_dim() + config.intermediate_size)
            + config.hidden_size);
    let packed_token_bytes = projection_bytes + head_bytes + norm_bytes;
    let half_token_bytes = projection_bytes + head_bytes / 2 + norm_bytes;
    let dense_token_bytes =
        dense.as_ref().map(dense_weights_bytes).unwrap_or(0) + head_bytes + norm_bytes;

    // The read bandwidth drifts on a shared machine (20–25 GB/s from one minute to the
    // next here): it is measured again before every rep, and each rep's decode is set
    // against the bandwidth of its own rep.
    let mut bws = vec![ternary_kernels::report::stream_gbs(3)];
    println!(
        "read bandwidth (same run, {threads} threads): {:.1} GB/s",
        bws[0]
    );

    let prompt: Vec<u32> = (0..args.prompt as u32)
        .map(|i| (i * 7919 + 13) % config.vocab_size as u32)
        .collect();
    let run = |model: &BitNet| -> Generation {
        let mut sampler = Sampler::new(SamplingConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        });
        generate(model, &prompt, args.new, &mut sampler, true, |_| {}).expect("generate")
    };
    // Warm-up (page faults, rayon pool, kernel dispatch) of each model, not timed.
    let _ = run(&packed);
    let _ = run(&half);
    if let Some(d) = &dense {
        let _ = run(d);
    }
    let (mut pp, mut pd, mut dp, mut dd) = (vec![], vec![], vec![], vec![]);
    let (mut hp, mut hd) = (vec![], vec![]);
    for rep in 0..args.reps {
        if rep > 0 {
            bws.push(ternary_kernels::report::stream_gbs(3));
        }
        println!("  rep {rep}: read bandwidth {:.1} GB/s", bws[rep]);
        let g = run(&packed);
        println!(
            "  rep {rep}: packed prefill {:.1} tok/s, decode {:.2} tok/s",
            g.prefill_tokens_per_s(),
            g.decode_tokens_per_s()
        );
        pp.push(g.prefill_tokens_per_s());
        pd.push(g.decode_tokens_per_s());
        let g = run(&half);
        println!(
            "  rep {rep}: packed, bf16 head: prefill {:.1} tok/s, decode {:.2} tok/s",
            g.prefill_tokens_per_s(),
            g.decode_tokens_per_s()
        );
        hp.push(g.prefill_tokens_per_s());
        hd.push(g.decode_tokens_per_s());
        if let Some(d) = &dense {
            let g = run(d);
            println!(
                "  rep {rep}: f32    prefill {:.1} tok/s, decode {:.2} tok/s",
                g.prefill_tokens_per_s(),
                g.decode_tokens_per_s()
            );
            dp.push(g.prefill_tokens_per_s());
            dd.push(g.decode_tokens_per_s());
        }
    }
    let read_gbs = median(&bws);
    let bound = |bytes: usize| read_gbs * 1e9 / bytes as f64;
    // % of bound: the median over reps of decode / (that rep's bandwidth / bytes).
    let percent = |decode: &[f64], bytes: usize| {
        let r: Vec<f64> = decode
            .iter()
            .zip(&bws)
            .map(|(d, bw)| 100.0 * d * bytes as f64 / (bw * 1e9))
            .collect();
        median(&r)
    };
    let (lo, hi) = bws
        .iter()
        .fold((f64::MAX, 0f64), |(l, h), &b| (l.min(b), h.max(b)));
    println!("\nread bandwidth over the reps: median {read_gbs:.1} GB/s, {lo:.1}–{hi:.1}");
    println!(
        "\n| model | prefill tok/s | decode tok/s | bytes read / token | decode bound (median read bw) | % of bound (per rep, median) | resident |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| packed W2A8 (LM head f32) | {:.1} | {:.2} | {:.3} GB | {:.2} tok/s | {:.0} % | {:.0} MiB |",
        median(&pp),
        median(&pd),
        packed_token_bytes as f64 / 1e9,
        bound(packed_token_bytes),
        percent(&pd, packed_token_bytes),
        rss_packed
    );
    println!(
        "| packed W2A8 (LM head bf16) | {:.1} | {:.2} | {:.3} GB | {:.2} tok/s | {:.0} % | {:.0} MiB |",
        median(&hp),
        median(&hd),
        half_token_bytes as f64 / 1e9,
        bound(half_token_bytes),
        percent(&hd, half_token_bytes),
        rss_packed + rss_half
    );
    if dense.is_some() {
        println!(
            "| dense f32 (Burn Flex) | {:.1} | {:.2} | {:.3} GB | {:.2} tok/s | {:.0} % | |",
            median(&dp),
            median(&dd),
            dense_token_bytes as f64 / 1e9,
            bound(dense_token_bytes),
            percent(&dd, dense_token_bytes),
        );
        println!(
            "packed / f32: prefill {:.2}x, decode {:.2}x; with the bf16 head: prefill {:.2}x, decode {:.2}x",
            median(&pp) / median(&dp),
            median(&pd) / median(&dd),
            median(&hp) / median(&dp),
            median(&hd) / median(&dd)
        );
    }
    println!("process peak resident: {:.0} MiB", peak_rss_mib());
}

fn dense_weights_bytes(model: &BitNet) -> usize {
    model
        .projections()
        .iter()
        .map(|p| match p {
            burn_ternary_bitnet::model::Projection::Dense(l) => {
                l.weight.val().shape().num_elements() * 4
            }
            burn_ternary_bitnet::model::Projection::Ternary(_) => 0,
        })
        .sum()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}
