//! GPU benchmark: the packed ternary ops (CubeCL kernels) against Burn's own f32 and f16 ops of
//! the same shapes, on the same device, in the same run.
//!
//! ```text
//! cargo run --release --example gpu_bench                       # wgpu, every section
//! cargo run --release --example gpu_bench -- --shape 1,512,512  # M,K,N of your own
//! cargo run --release --example gpu_bench -- --sections conv,models --batch 32 --json
//! ```
//!
//! Sections (`--sections`, default all):
//!
//! * `copy`: the device's copy bandwidth, an elementwise read + write of a large buffer.
//! * `linear`: for each `M×K×N` (activations `[M, K]`, weights `K → N`) the median time per
//!   call, GMAC/s, the packed weights' GB/s (`N · ceil(K/128)·32` bytes per call) and the
//!   speed-up over Burn's f32 and f16 `matmul`.
//! * `conv`: `ternary_conv2d` (exact f32 and W2A8 activations) at ResNet-20's 3×3 shapes
//!   (16 channels 32×32, 32 channels 16×16, 64 channels 8×8, padding 1) against Burn's f32 and
//!   f16 `conv2d`.
//! * `variants`: for each `M×K×N`, every kernel variant of the packed product (GEMV with 1, 2
//!   and 4 weight rows per row of lanes, GEMM with 32 and 64 tiles; W2A8 and f32 activations)
//!   timed on its own through the kernel API, then the variant autotune settles on; the same for
//!   the cube shapes of the direct conv at ResNet-20's shapes and `--batch`. These are the
//!   figures that say which tile sizes the device wants.
//! * `models`: the whole MNIST CNN and ResNet-20 forward at `--batch`: the f32 model, and the
//!   packed model with exact f32 and W2A8 activations (random weights; speed does not depend
//!   on them).
//!
//! The run starts with the Vulkan adapters wgpu sees (name, type, driver and driver version).
//! Timings are medians over `--reps` samples of several back-to-back calls, each sample closed
//! by a device sync. `--json` prints one JSON object per line instead of the tables; every
//! object has a `kind` (`device`, `adapter`, `copy`, `linear`, `variant`, `autotune`,
//! `conv_variant`, `conv_autotune`, `conv`, `model`), and a
//! measurement that panicked has an `error` instead of its figures.

use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, DeviceKind, Distribution, FloatDType, Int, Tensor, TensorData};
use burn_ternary::kernels::random::XorShift;
use burn_ternary::nn::freeze;
use burn_ternary::ops::{TernaryConvOptions, ternary_conv2d, ternary_linear};
use burn_ternary::quant::ActivationQuant;
use clap::Parser;
use serde_json::Value;
use training::model::{Classifier, MnistNet, Precision};
use training::resnet::ResNet20;

/// The shapes the GPU issue asks for: decode-style GEMV and one prefill-style GEMM.
const DEFAULT_SHAPES: &[(usize, usize, usize)] = &[
    (1, 4096, 4096),
    (1, 4096, 14336),
    (1, 8192, 28672),
    (512, 4096, 4096),
];

/// ResNet-20's 3×3 convolutions, `(channels, height = width)`, one per stage.
const CONV_SHAPES: &[(usize, usize)] = &[(16, 32), (32, 16), (64, 8)];

const SECTIONS: &[&str] = &["copy", "linear", "variants", "conv", "models"];

#[derive(Parser, Debug)]
#[command(about = "Ternary GPU kernels vs Burn's f32/f16 ops, and whole CNNs f32 vs packed")]
struct Args {
    /// Device: wgpu, or vulkan (needs the `vulkan` feature).
    #[arg(long, default_value = "wgpu")]
    device: String,
    /// `M,K,N` shapes to run instead of the default four (repeatable).
    #[arg(long)]
    shape: Vec<String>,
    /// Timed samples per measurement (the median is reported).
    #[arg(long, default_value_t = 15)]
    reps: usize,
    /// Calls per sample for M = 1 (larger M, convolutions and models use fewer, at least 2).
    #[arg(long, default_value_t = 40)]
    inner: usize,
    /// Size of the buffer of the copy-bandwidth measurement, MiB.
    #[arg(long, default_value_t = 64)]
    copy_mib: usize,
    /// Sections to run, comma-separated: copy, linear, variants, conv, models [default: all].
    #[arg(long, value_delimiter = ',')]
    sections: Vec<String>,
    /// Batch of the conv and whole-model sections.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Models of the `models` section (mnist, resnet20) [default: both].
    #[arg(long, value_delimiter = ',')]
    model: Vec<String>,
    /// One JSON object per line instead of the tables.
    #[arg(long)]
    json: bool,
}

fn device(name: &str) -> Result<Device, String> {
    match name {
        "wgpu" => Ok(Device::wgpu(DeviceKind::DefaultDevice)),
        #[cfg(feature = "vulkan")]
        "vulkan" => Ok(Device::vulkan(DeviceKind::DefaultDevice)),
        #[cfg(not(feature = "vulkan"))]
        "vulkan" => Err("built without the `vulkan` feature (--features vulkan)".into()),
        other => Err(format!("unknown GPU device {other:?} (wgpu, vulkan)")),
    }
}

/// The cubecl runtime serving the default wgpu device (`wgpu<spirv>`, `wgpu<wgsl>`).
fn runtime_name() -> String {
    use burn_cubecl::cubecl;
    cubecl::Device::wgpu(cubecl::device::WgpuDeviceKind::DefaultDevice)
        .map(|d| d.client().name().to_string())
        .unwrap_or_else(|e| format!("unknown ({e:?})"))
}

/// The Vulkan adapters wgpu sees, in its order. Burn's default wgpu device is the first of
/// them whenever there is one. Asked on this thread before any device exists: the Vulkan
/// loader does not like instances created on several threads at once.
fn vulkan_adapters() -> Vec<Row> {
    use burn_cubecl::cubecl::future::block_on;
    use burn_cubecl::cubecl::wgpu::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN))
        .iter()
        .map(|a| {
            let i = a.get_info();
            Row::new("adapter")
                .with("name", i.name)
                .with("device_type", format!("{:?}", i.device_type))
                .with("backend", format!("{:?}", i.backend))
                .with("driver", i.driver)
                .with("driver_info", i.driver_info)
                .with("vendor_id", i.vendor)
                .with("device_id", i.device)
        })
        .collect()
}

/// Median seconds per call of `f`, `inner` calls per synced sample, or the panic's message.
/// The results stay alive until after the sync: a lazily executed (fused) op whose output
/// is dropped unread may never run at all.
fn median_secs<T>(
    device: &Device,
    reps: usize,
    inner: usize,
    f: impl FnMut() -> T,
) -> Result<f64, String> {
    median_secs_synced(|| device.sync().expect("device sync"), reps, inner, f)
}

/// [`median_secs`] with the sync given as a closure (the kernel-level section syncs a cubecl
/// client, not a Burn device).
fn median_secs_synced<T>(
    sync: impl Fn(),
    reps: usize,
    inner: usize,
    mut f: impl FnMut() -> T,
) -> Result<f64, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let warm: Vec<T> = (0..3).map(|_| f()).collect();
        sync();
        drop(warm);
        let mut samples: Vec<f64> = (0..reps.max(1))
            .map(|_| {
                let start = Instant::now();
                let outputs: Vec<T> = (0..inner).map(|_| black_box(f())).collect();
                sync();
                let secs = start.elapsed().as_secs_f64() / inner as f64;
                drop(outputs);
                secs
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    }))
    .map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into())
    })
}

fn parse_shape(s: &str) -> Result<(usize, usize, usize), String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse().map_err(|e| format!("{s:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match v[..] {
        [m, k, n] if m > 0 && k > 0 && n > 0 => Ok((m, k, n)),
        _ => Err(format!("{s:?}: expected M,K,N (positive)")),
    }
}

/// One JSON object of the `--json` output: `kind` first, then the fields in the order given
/// (serde_json's own map would sort them).
struct Row(Vec<(&'static str, Value)>);

impl Row {
    fn new(kind: &str) -> Self {
        Row(vec![("kind", kind.into())])
    }

    fn with(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.0.push((key, value.into()));
        self
    }

    /// A measured figure, to 4 significant digits (the timings are not more precise).
    fn fig(self, key: &'static str, x: f64) -> Self {
        let rounded = format!("{x:.3e}").parse::<f64>().unwrap_or(x);
        self.with(key, rounded)
    }

    /// `base / t`, or null without a baseline.
    fn ratio(self, key: &'static str, base: Option<f64>, t: f64) -> Self {
        match base {
            Some(b) => self.fig(key, b / t),
            None => self.with(key, Value::Null),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn str(&self, key: &str) -> &str {
        self.get(key).and_then(Value::as_str).unwrap_or("?")
    }
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}:{v}", Value::from(*k))?;
        }
        f.write_str("}")
    }
}

/// Prints either the JSON object or the table line of one result.
struct Report {
    json: bool,
}

impl Report {
    fn emit(&self, row: Row, line: impl FnOnce() -> String) {
        if self.json {
            println!("{row}");
        } else {
            println!("{}", line());
        }
    }

    fn text(&self, line: impl FnOnce() -> String) {
        if !self.json {
            println!("{}", line());
        }
    }
}

/// `"1.23×"` of `base / t`, or `-` when either is missing.
fn ratio_text(base: Option<f64>, t: f64) -> String {
    base.map_or("-".to_string(), |b| format!("{:.2}×", b / t))
}

/// A ternary weight matrix `[n, k]` as the ops take it: packed words `[n, words]` (i32) and
/// per-row scales `[n]`, with the packed size in bytes.
fn packed_weights(
    rng: &mut XorShift,
    n: usize,
    k: usize,
    dev: &Device,
) -> (Tensor<2, Int>, Tensor<1>, usize) {
    let packed = rng.packed(n, k);
    let words: Vec<i32> = packed
        .data()
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let row_words = words.len() / n;
    let bytes = words.len() * 4;
    let scales: Vec<f32> = (0..n)
        .map(|j| burn_ternary::kernels::PackedI2Ref::from(&packed).scale(j))
        .collect();
    let w = Tensor::<2, Int>::from_data(TensorData::new(words, [n, row_words]), (dev, DType::I32));
    let s = Tensor::<1>::from_data(TensorData::new(scales, [n]), dev);
    (w, s, bytes)
}

fn copy_bandwidth(args: &Args, dev: &Device, out: &Report) {
    let elems = args.copy_mib * (1 << 20) / 4;
    let big = Tensor::<1>::random([elems], Distribution::Default, dev);
    let row = Row::new("copy").with("mib", args.copy_mib);
    match median_secs(dev, args.reps, 10, || big.clone() * 1.5) {
        Ok(t) => {
            let copy_gbs = 2.0 * (elems * 4) as f64 / t / 1e9;
            out.emit(
                row.fig("gb_per_s", copy_gbs).with("reps", args.reps),
                || {
                    format!(
                        "copy bandwidth: {copy_gbs:.1} GB/s (elementwise read + write of {} MiB, median of {})",
                        args.copy_mib, args.reps
                    )
                },
            );
        }
        Err(e) => out.emit(row.with("error", e.clone()), || {
            format!("copy bandwidth: failed ({e})")
        }),
    }
}

fn linear(args: &Args, shapes: &[(usize, usize, usize)], dev: &Device, out: &Report) {
    out.text(|| {
        format!(
            "{:>16} | {:>18} | {:>10} | {:>8} | {:>9} | {:>8} | {:>8}",
            "M×K×N", "op", "time", "GMAC/s", "weight GB/s", "vs f32", "vs f16"
        )
    });
    let mut rng = XorShift::new(7);
    for &(m, k, n) in shapes {
        let inner = if m == 1 {
            args.inner
        } else {
            (args.inner / 4).max(2)
        };
        let (w, s, weight_bytes) = packed_weights(&mut rng, n, k, dev);
        let x = Tensor::<2>::random([m, k], Distribution::Default, dev);
        let macs = (m * k * n) as f64;
        let measure = |f: &mut dyn FnMut() -> Tensor<2>| median_secs(dev, args.reps, inner, f);

        let f32_t = {
            let wf = Tensor::<2>::random([k, n], Distribution::Default, dev);
            measure(&mut || x.clone().matmul(wf.clone()))
        };
        let f16_t = {
            let wh = Tensor::<2>::random([k, n], Distribution::Default, dev).cast(FloatDType::F16);
            let xh = x.clone().cast(FloatDType::F16);
            measure(&mut || xh.clone().matmul(wh.clone()))
        };
        let tern_f = measure(&mut || ternary_linear(x.clone(), w.clone(), s.clone(), k, false));
        let tern_8 = measure(&mut || ternary_linear(x.clone(), w.clone(), s.clone(), k, true));
        let (base32, base16) = (f32_t.clone().ok(), f16_t.clone().ok());
        let shape = format!("{m}×{k}×{n}");
        for (label, t, bytes) in [
            ("burn f32 matmul", &f32_t, k * n * 4),
            ("burn f16 matmul", &f16_t, k * n * 2),
            ("ternary f32 act", &tern_f, weight_bytes),
            ("ternary W2A8", &tern_8, weight_bytes),
        ] {
            let row = Row::new("linear")
                .with("m", m)
                .with("k", k)
                .with("n", n)
                .with("op", label);
            match t {
                Ok(t) => out.emit(
                    row.fig("time_us", t * 1e6)
                        .fig("gmac_per_s", macs / t / 1e9)
                        .fig("weight_gb_per_s", bytes as f64 / t / 1e9)
                        .ratio("vs_f32", base32, *t)
                        .ratio("vs_f16", base16, *t),
                    || {
                        format!(
                            "{shape:>16} | {label:>18} | {:>8.1}µs | {:>8.1} | {:>11.1} | {:>8} | {:>8}",
                            t * 1e6,
                            macs / t / 1e9,
                            bytes as f64 / t / 1e9,
                            ratio_text(base32, *t),
                            ratio_text(base16, *t),
                        )
                    },
                ),
                Err(e) => out.emit(row.with("error", e.clone()), || {
                    format!("{shape:>16} | {label:>18} | failed (see the panic above)")
                }),
            }
        }
    }
}

/// The cubecl client of the device `name` names, for the kernel-level section.
fn kernel_client(name: &str) -> Result<burn_cubecl::cubecl::prelude::Client, String> {
    use burn_cubecl::cubecl::{self, device::WgpuDeviceKind};
    let device = match name {
        "vulkan" => cubecl::Device::vulkan(WgpuDeviceKind::DefaultDevice),
        _ => cubecl::Device::wgpu(WgpuDeviceKind::DefaultDevice),
    };
    device
        .map(|d| d.client())
        .map_err(|e| format!("no {name} device for the kernel section: {e:?}"))
}

fn variants(args: &Args, shapes: &[(usize, usize, usize)], out: &Report) {
    use burn_cubecl::cubecl::future::block_on;
    use burn_ternary::kernels::cube::{self as gpu, DeviceMatrix, Strategy, Variant};
    let client = match kernel_client(&args.device) {
        Ok(c) => c,
        Err(e) => return out.emit(Row::new("variant").with("error", e.clone()), || e),
    };
    let sync = || block_on(client.sync()).expect("device sync");
    out.text(|| {
        format!(
            "{:>16} | {:>6} | {:>12} | {:>10} | {:>11}",
            "M×K×N", "act", "variant", "time", "weight GB/s"
        )
    });
    let mut rng = XorShift::new(11);
    for &(m, k, n) in shapes {
        let inner = if m == 1 {
            args.inner
        } else {
            (args.inner / 4).max(2)
        };
        let packed = rng.packed(n, k);
        let scales: Vec<f32> = (0..n)
            .map(|j| burn_ternary::kernels::PackedI2Ref::from(&packed).scale(j))
            .collect();
        let w = DeviceMatrix {
            words: client.create_from_slice(packed.data()),
            scales: client.create_from_slice(bytemuck::cast_slice(&scales)),
            n,
            k,
            per_row: true,
            group_size: 0,
        };
        let x = client.create_from_slice(bytemuck::cast_slice(&rng.f32s(m * k)));
        let q = gpu::quantize_rows::<f32>(&client, &x, m, k);
        let weight_bytes = packed.data().len();
        let shape = format!("{m}×{k}×{n}");
        for act in ["w2a8", "f32"] {
            let run = |strategy: Strategy| match act {
                "w2a8" => gpu::matmul_w2a8::<f32>(&client, &q, &w, strategy, false),
                _ => gpu::matmul_float::<f32>(&client, &x, m, &w, strategy),
            };
            for variant in Variant::ALL {
                let t =
                    median_secs_synced(sync, args.reps, inner, || run(Strategy::Fixed(variant)));
                let row = Row::new("variant")
                    .with("m", m)
                    .with("k", k)
                    .with("n", n)
                    .with("act", act)
                    .with("variant", variant.name());
                match t {
                    Ok(t) => out.emit(
                        row.fig("time_us", t * 1e6)
                            .fig("weight_gb_per_s", weight_bytes as f64 / t / 1e9),
                        || {
                            format!(
                                "{shape:>16} | {act:>6} | {variant:>12} | {:>8.1}µs | {:>11.1}",
                                t * 1e6,
                                weight_bytes as f64 / t / 1e9
                            )
                        },
                    ),
                    Err(e) => out.emit(row.with("error", e.clone()), || {
                        format!("{shape:>16} | {act:>6} | {variant:>12} | failed ({e})")
                    }),
                }
            }
            // The first autotuned call times every variant; then ask what it kept.
            let tuned = catch_unwind(AssertUnwindSafe(|| {
                drop(run(Strategy::Autotune));
                sync();
                match act {
                    "w2a8" => gpu::tuned_w2a8::<f32>(&client, m, n, k, true, false),
                    _ => gpu::tuned_float::<f32>(&client, m, n, k, true),
                }
            }));
            let pick = match tuned {
                Ok(Some(v)) => v.name().to_string(),
                Ok(None) => "unsettled".to_string(),
                Err(_) => "panicked".to_string(),
            };
            out.emit(
                Row::new("autotune")
                    .with("m", m)
                    .with("k", k)
                    .with("n", n)
                    .with("act", act)
                    .with("variant", pick.as_str()),
                || format!("{shape:>16} | {act:>6} | autotune kept {pick}"),
            );
        }
    }
    conv_variants(args, &client, &sync, out);
}

/// The conv half of the `variants` section: every cube shape of the direct conv (W2A8 and f32
/// activations) at ResNet-20's 3×3 shapes, then autotune's pick.
fn conv_variants(
    args: &Args,
    client: &burn_cubecl::cubecl::prelude::Client,
    sync: &dyn Fn(),
    out: &Report,
) {
    use burn_ternary::kernels::Conv2dParams;
    use burn_ternary::kernels::cube::{self as gpu, ConvStrategy, ConvVariant, DeviceMatrix};
    let mut rng = XorShift::new(12);
    let inner = (args.inner / 8).max(2);
    for &(c, hw) in CONV_SHAPES {
        let p = Conv2dParams::new(args.batch, c, [hw, hw], c, [3, 3]).with_padding([1, 1]);
        let k = p.k();
        let packed = rng.packed(c, k);
        let scales: Vec<f32> = (0..c)
            .map(|j| burn_ternary::kernels::PackedI2Ref::from(&packed).scale(j))
            .collect();
        let w = DeviceMatrix {
            words: client.create_from_slice(packed.data()),
            scales: client.create_from_slice(bytemuck::cast_slice(&scales)),
            n: c,
            k,
            per_row: true,
            group_size: 0,
        };
        let image = c * hw * hw;
        let x = client.create_from_slice(bytemuck::cast_slice(&rng.f32s(args.batch * image)));
        let q = gpu::quantize_rows::<f32>(client, &x, args.batch, image);
        let shape = format!("{}×{c}×{hw}×{hw}", args.batch);
        for act in ["w2a8", "f32"] {
            let run = |strategy: ConvStrategy| match act {
                "w2a8" => gpu::conv2d_w2a8::<f32>(client, &q, &p, &w, strategy, false),
                _ => gpu::conv2d_float::<f32>(client, &x, &p, &w, strategy),
            };
            for variant in ConvVariant::ALL {
                let t = median_secs_synced(sync, args.reps, inner, || {
                    run(ConvStrategy::Fixed(variant))
                });
                let row = Row::new("conv_variant")
                    .with("batch", args.batch)
                    .with("channels", c)
                    .with("hw", hw)
                    .with("act", act)
                    .with("variant", variant.name());
                match t {
                    Ok(t) => out.emit(row.fig("time_us", t * 1e6), || {
                        format!(
                            "{shape:>16} | {act:>6} | {variant:>15} | {:>8.1}µs",
                            t * 1e6
                        )
                    }),
                    Err(e) => out.emit(row.with("error", e.clone()), || {
                        format!("{shape:>16} | {act:>6} | {variant:>15} | failed ({e})")
                    }),
                }
            }
            let tuned = catch_unwind(AssertUnwindSafe(|| {
                drop(run(ConvStrategy::Autotune));
                sync();
                match act {
                    "w2a8" => gpu::tuned_conv2d_w2a8::<f32>(client, &p, true, false),
                    _ => gpu::tuned_conv2d_float::<f32>(client, &p, true),
                }
            }));
            let pick = match tuned {
                Ok(Some(v)) => v.name().to_string(),
                Ok(None) => "unsettled".to_string(),
                Err(_) => "panicked".to_string(),
            };
            out.emit(
                Row::new("conv_autotune")
                    .with("batch", args.batch)
                    .with("channels", c)
                    .with("hw", hw)
                    .with("act", act)
                    .with("variant", pick.as_str()),
                || format!("{shape:>16} | {act:>6} | autotune kept {pick}"),
            );
        }
    }
}

fn conv(args: &Args, dev: &Device, out: &Report) {
    out.text(|| {
        format!(
            "{:>18} | {:>18} | {:>10} | {:>8} | {:>8} | {:>8}",
            "conv b×c×h×w 3×3", "op", "time", "GMAC/s", "vs f32", "vs f16"
        )
    });
    let inner = (args.inner / 8).max(2);
    let b = args.batch;
    let mut rng = XorShift::new(11);
    let options = TernaryConvOptions {
        kernel_size: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    let burn_options = || ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    for &(c, hw) in CONV_SHAPES {
        let (w, s, _) = packed_weights(&mut rng, c, c * 9, dev);
        let x = Tensor::<4>::random([b, c, hw, hw], Distribution::Default, dev);
        let wf = Tensor::<4>::random([c, c, 3, 3], Distribution::Default, dev);
        let macs = (b * c * c * 9 * hw * hw) as f64;
        let measure = |f: &mut dyn FnMut() -> Tensor<4>| median_secs(dev, args.reps, inner, f);

        let f32_t = measure(&mut || conv2d(x.clone(), wf.clone(), None, burn_options()));
        let f16_t = {
            let xh = x.clone().cast(FloatDType::F16);
            let wh = wf.clone().cast(FloatDType::F16);
            measure(&mut || conv2d(xh.clone(), wh.clone(), None, burn_options()))
        };
        let tern = |int8: bool| {
            measure(&mut || ternary_conv2d(x.clone(), w.clone(), s.clone(), None, options, int8))
        };
        let (tern_f, tern_8) = (tern(false), tern(true));
        let (base32, base16) = (f32_t.clone().ok(), f16_t.clone().ok());
        let shape = format!("{b}×{c}×{hw}×{hw}");
        for (label, t) in [
            ("burn f32 conv2d", &f32_t),
            ("burn f16 conv2d", &f16_t),
            ("ternary f32 act", &tern_f),
            ("ternary W2A8", &tern_8),
        ] {
            let row = Row::new("conv")
                .with("batch", b)
                .with("channels", c)
                .with("height", hw)
                .with("width", hw)
                .with("kernel", 3)
                .with("op", label);
            match t {
                Ok(t) => out.emit(
                    row.fig("time_us", t * 1e6)
                        .fig("gmac_per_s", macs / t / 1e9)
                        .ratio("vs_f32", base32, *t)
                        .ratio("vs_f16", base16, *t),
                    || {
                        format!(
                            "{shape:>18} | {label:>18} | {:>8.1}µs | {:>8.1} | {:>8} | {:>8}",
                            t * 1e6,
                            macs / t / 1e9,
                            ratio_text(base32, *t),
                            ratio_text(base16, *t),
                        )
                    },
                ),
                Err(e) => out.emit(row.with("error", e.clone()), || {
                    format!("{shape:>18} | {label:>18} | failed (see the panic above)")
                }),
            }
        }
    }
}

const VARIANTS: [&str; 3] = ["f32", "packed exact-f32", "packed W2A8"];

type Forward = Box<dyn Fn(Tensor<4>) -> Tensor<2>>;

/// Variant `v` of `model` on `dev`: built and frozen on the CPU, then moved, so the packed
/// weights are exactly what `freeze` makes everywhere.
fn build(model: &str, v: usize, dev: &Device) -> Result<Forward, String> {
    let cpu = Device::flex();
    let (precision, activation) = match v {
        0 => (Precision::Full, ActivationQuant::None),
        1 => (Precision::Ternary, ActivationQuant::None),
        _ => (Precision::Ternary, ActivationQuant::Int8PerImage),
    };
    fn boxed<M: Classifier + Module + 'static>(
        m: M,
        pack: bool,
        dev: &Device,
    ) -> Result<Forward, String> {
        let m = if pack {
            freeze(m).map_err(|e| e.to_string())?
        } else {
            m
        };
        let m = m.to_device(dev);
        Ok(Box::new(move |x| m.forward(x)))
    }
    let pack = v > 0;
    match model {
        "mnist" => boxed(MnistNet::new(precision, activation, &cpu), pack, dev),
        "resnet20" => boxed(ResNet20::new(precision, 1, 10, activation, &cpu), pack, dev),
        other => Err(format!("unknown model {other:?} (mnist, resnet20)")),
    }
}

fn models(args: &Args, dev: &Device, out: &Report) {
    out.text(|| {
        format!(
            "{:>9} {:>5} | {:>18} | {:>10} | {:>10} | {:>8}",
            "model", "batch", "variant", "time", "images/s", "vs f32"
        )
    });
    let names = if args.model.is_empty() {
        vec!["mnist".to_string(), "resnet20".to_string()]
    } else {
        args.model.clone()
    };
    let inner = (args.inner / 8).max(2);
    let b = args.batch;
    for name in &names {
        let shape = if name == "resnet20" {
            [b, 3, 32, 32]
        } else {
            [b, 1, 28, 28]
        };
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), dev);
        let times: Vec<Result<f64, String>> = (0..VARIANTS.len())
            .map(|v| {
                let f = catch_unwind(AssertUnwindSafe(|| build(name, v, dev)))
                    .unwrap_or_else(|_| Err("building the model panicked".into()))?;
                median_secs(dev, args.reps, inner, || f(x.clone()))
            })
            .collect();
        let base = times[0].clone().ok();
        for (variant, t) in VARIANTS.iter().zip(&times) {
            let row = Row::new("model")
                .with("model", name.as_str())
                .with("batch", b)
                .with("variant", *variant);
            match t {
                Ok(t) => out.emit(
                    row.fig("time_ms", t * 1e3)
                        .fig("images_per_s", b as f64 / t)
                        .ratio("vs_f32", base, *t),
                    || {
                        format!(
                            "{name:>9} {b:>5} | {variant:>18} | {:>8.2}ms | {:>10.1} | {:>8}",
                            t * 1e3,
                            b as f64 / t,
                            ratio_text(base, *t)
                        )
                    },
                ),
                Err(e) => out.emit(row.with("error", e.clone()), || {
                    format!("{name:>9} {b:>5} | {variant:>18} | failed ({e})")
                }),
            }
        }
    }
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let sections: Vec<&str> = if args.sections.is_empty() {
        SECTIONS.to_vec()
    } else {
        args.sections.iter().map(String::as_str).collect()
    };
    if let Some(bad) = sections.iter().find(|s| !SECTIONS.contains(s)) {
        return Err(format!("unknown section {bad:?} ({})", SECTIONS.join(", ")));
    }
    let shapes = if args.shape.is_empty() {
        DEFAULT_SHAPES.to_vec()
    } else {
        args.shape
            .iter()
            .map(|s| parse_shape(s))
            .collect::<Result<_, _>>()?
    };
    let out = Report { json: args.json };

    let adapters = catch_unwind(vulkan_adapters).unwrap_or_default();
    let dev = device(&args.device)?;
    let runtime = runtime_name();
    let first = adapters.first();
    let pick = |key: &str| {
        first
            .and_then(|a| a.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    out.emit(
        Row::new("device")
            .with("device", args.device.as_str())
            .with("runtime", runtime.as_str())
            .with("adapter", pick("name"))
            .with("driver", pick("driver"))
            .with("driver_info", pick("driver_info")),
        || format!("device: {} ({dev:?}; runtime {runtime})", args.device),
    );
    if adapters.is_empty() {
        out.text(|| "Vulkan adapters: none found (wgpu falls back to OpenGL)".into());
    }
    for a in adapters {
        let line = format!(
            "Vulkan adapter: {} ({}, driver {} {})",
            a.str("name"),
            a.str("device_type"),
            a.str("driver"),
            a.str("driver_info"),
        );
        out.emit(a, || line);
    }

    for section in sections {
        match section {
            "copy" => copy_bandwidth(&args, &dev, &out),
            "linear" => linear(&args, &shapes, &dev, &out),
            "variants" => variants(&args, &shapes, &out),
            "conv" => conv(&args, &dev, &out),
            _ => models(&args, &dev, &out),
        }
    }
    Ok(())
}
