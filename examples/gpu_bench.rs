//! GPU benchmark: the packed ternary linear op (CubeCL kernels) against Burn's own f32 and
//! f16 matmul of the same shapes, on the same device, in the same run.
//!
//! ```text
//! cargo run --release --example gpu_bench                       # wgpu, default shapes
//! cargo run --release --example gpu_bench -- --shape 1,512,512  # M,K,N of your own
//! ```
//!
//! For each `M×K×N` (activations `[M, K]`, weights `K → N`) it prints the median time per
//! call, GMAC/s, the packed weights' GB/s (`N · ceil(K/128)·32` bytes per call) and the
//! speed-up over Burn's f32 and f16 `matmul`, plus the device's copy bandwidth measured as an
//! elementwise read + write of a large buffer. Timings are medians over `--reps` samples of
//! `--inner` back-to-back calls, each sample closed by a device sync.

use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use burn::tensor::{DType, Device, DeviceKind, Distribution, FloatDType, Int, Tensor, TensorData};
use burn_ternary::kernels::random::XorShift;
use burn_ternary::ops::ternary_linear;
use clap::Parser;

/// The shapes the GPU issue asks for: decode-style GEMV and one prefill-style GEMM.
const DEFAULT_SHAPES: &[(usize, usize, usize)] = &[
    (1, 4096, 4096),
    (1, 4096, 14336),
    (1, 8192, 28672),
    (512, 4096, 4096),
];

#[derive(Parser, Debug)]
#[command(about = "Ternary GPU kernels vs Burn's f32/f16 matmul")]
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
    /// Calls per sample for M = 1 (larger M use a quarter, at least 2).
    #[arg(long, default_value_t = 40)]
    inner: usize,
    /// Size of the buffer of the copy-bandwidth measurement, MiB.
    #[arg(long, default_value_t = 64)]
    copy_mib: usize,
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

fn adapter_name() -> String {
    use burn_cubecl::cubecl;
    cubecl::Device::wgpu(cubecl::device::WgpuDeviceKind::DefaultDevice)
        .map(|d| d.client().name().to_string())
        .unwrap_or_else(|e| format!("unknown ({e:?})"))
}

/// Median seconds per call of `f`, `inner` calls per synced sample. The results stay alive
/// until after the sync: a lazily executed (fused) op whose output is dropped unread may
/// never run at all.
fn median_secs<T>(device: &Device, reps: usize, inner: usize, mut f: impl FnMut() -> T) -> f64 {
    let warm: Vec<T> = (0..3).map(|_| f()).collect();
    device.sync().expect("device sync");
    drop(warm);
    let mut samples: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            let outputs: Vec<T> = (0..inner).map(|_| black_box(f())).collect();
            device.sync().expect("device sync");
            let secs = start.elapsed().as_secs_f64() / inner as f64;
            drop(outputs);
            secs
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
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

fn main() -> Result<(), String> {
    let args = Args::parse();
    let dev = device(&args.device)?;
    let shapes = if args.shape.is_empty() {
        DEFAULT_SHAPES.to_vec()
    } else {
        args.shape
            .iter()
            .map(|s| parse_shape(s))
            .collect::<Result<_, _>>()?
    };
    println!(
        "device: {} ({}; adapter {})",
        args.device,
        dev_label(&dev),
        adapter_name()
    );

    // Copy bandwidth: an elementwise op reads and writes every byte once.
    let elems = args.copy_mib * (1 << 20) / 4;
    let big = Tensor::<1>::random([elems], Distribution::Default, &dev);
    let t = median_secs(&dev, args.reps, 10, || big.clone() * 1.5);
    let copy_gbs = 2.0 * (elems * 4) as f64 / t / 1e9;
    println!(
        "copy bandwidth: {copy_gbs:.1} GB/s (elementwise read + write of {} MiB, median of {})",
        args.copy_mib, args.reps
    );
    drop(big);

    println!(
        "{:>16} | {:>18} | {:>10} | {:>8} | {:>9} | {:>8} | {:>8}",
        "M×K×N", "op", "time", "GMAC/s", "weight GB/s", "vs f32", "vs f16"
    );
    let mut rng = XorShift::new(7);
    for (m, k, n) in shapes {
        let inner = if m == 1 {
            args.inner
        } else {
            (args.inner / 4).max(2)
        };
        let packed = rng.packed(n, k);
        let words: Vec<i32> = packed
            .data()
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let row_words = words.len() / n;
        let weight_bytes = words.len() * 4;
        let scales: Vec<f32> = (0..n)
            .map(|j| burn_ternary::kernels::PackedI2Ref::from(&packed).scale(j))
            .collect();
        let w =
            Tensor::<2, Int>::from_data(TensorData::new(words, [n, row_words]), (&dev, DType::I32));
        let s = Tensor::<1>::from_data(TensorData::new(scales, [n]), &dev);
        let x = Tensor::<2>::random([m, k], Distribution::Default, &dev);
        let macs = (m * k * n) as f64;

        let measure = |label: &str, f: &mut dyn FnMut() -> Tensor<2>| -> Option<f64> {
            match catch_unwind(AssertUnwindSafe(|| {
                median_secs(&dev, args.reps, inner, &mut *f)
            })) {
                Ok(t) => Some(t),
                Err(_) => {
                    println!(
                        "{:>16} | {label:>18} | failed (see the panic above)",
                        format!("{m}×{k}×{n}")
                    );
                    None
                }
            }
        };
        let f32_t = {
            let wf = Tensor::<2>::random([k, n], Distribution::Default, &dev);
            measure("burn f32 matmul", &mut || x.clone().matmul(wf.clone()))
        };
        let f16_t = {
            let wh = Tensor::<2>::random([k, n], Distribution::Default, &dev).cast(FloatDType::F16);
            let xh = x.clone().cast(FloatDType::F16);
            measure("burn f16 matmul", &mut || xh.clone().matmul(wh.clone()))
        };
        let tern_f = measure("ternary f32 act", &mut || {
            ternary_linear(x.clone(), w.clone(), s.clone(), k, false)
        });
        let tern_8 = measure("ternary W2A8", &mut || {
            ternary_linear(x.clone(), w.clone(), s.clone(), k, true)
        });
        let row = |label: &str, t: Option<f64>, bytes: Option<usize>| {
            let Some(t) = t else { return };
            let ratio =
                |base: Option<f64>| base.map_or("-".to_string(), |b| format!("{:.2}×", b / t));
            println!(
                "{:>16} | {label:>18} | {:>8.1}µs | {:>8.1} | {:>11} | {:>8} | {:>8}",
                format!("{m}×{k}×{n}"),
                t * 1e6,
                macs / t / 1e9,
                bytes.map_or("-".to_string(), |b| format!("{:.1}", b as f64 / t / 1e9)),
                ratio(f32_t),
                ratio(f16_t),
            );
        };
        row("burn f32 matmul", f32_t, Some(k * n * 4));
        row("burn f16 matmul", f16_t, Some(k * n * 2));
        row("ternary f32 act", tern_f, Some(weight_bytes));
        row("ternary W2A8", tern_8, Some(weight_bytes));
    }
    Ok(())
}

fn dev_label(dev: &Device) -> String {
    format!("{dev:?}")
}
