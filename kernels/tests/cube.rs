//! The CubeCL kernels on wgpu (Mesa lavapipe on CPU-only machines, any Vulkan/Metal GPU
//! elsewhere) against the CPU scalar reference, on random shapes including ragged ones.
//!
//! * W2A8: the raw integer sums equal the scalar kernel's bit for bit, through every kernel
//!   variant (GEMV with 1, 2 and 4 rows per lane row, GEMM with 32 and 64 tiles) and through
//!   autotune's pick; the device quantizer produces the same int8 values, row sums and
//!   scales as `QuantizedActivations`.
//! * Conv: every cube shape and autotune's pick give the direct reference's exact sums (W2A8)
//!   and the same float bits as one another.
//! * Float activations: within `1e-5 · Σ|x·w|` (f32) and `2e-3 · Σ|x·w|` (f16 inputs and
//!   outputs) of the CPU result — only the order of the f32 additions differs.
#![cfg(feature = "cube")]

use cubecl::device::WgpuDeviceKind;
use cubecl::prelude::*;
use cubecl::server::Handle;
use ternary_kernels::cpu::{self, Isa};
use ternary_kernels::cube::{
    self as gpu, ConvStrategy, ConvVariant, DeviceActivations, DeviceMatrix, Strategy, Variant,
};
use ternary_kernels::random::XorShift;
use ternary_kernels::{PackedI2, QuantizedActivations, Scales};

fn client() -> Client {
    cubecl::Device::wgpu(WgpuDeviceKind::DefaultDevice)
        .expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)")
        .client()
}

/// `(m, n, k)`: single rows and columns, k below, at and above a 128 block and above the
/// GEMV's 2048-column staging chunk, n and m off the 32-row and 64-tile grids.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 33, 130),
    (2, 7, 128),
    (3, 70, 300),
    (5, 129, 1000),
    (8, 64, 2048),
    (1, 40, 4100),
    (9, 65, 257),
    (17, 3, 33),
    (64, 64, 256),
    (70, 100, 777),
    (130, 67, 2200),
];

/// Every fixed kernel variant, then autotune (which times them all and keeps the fastest).
fn strategies() -> impl Iterator<Item = Strategy> {
    Variant::ALL
        .into_iter()
        .map(Strategy::Fixed)
        .chain([Strategy::Autotune])
}

fn scalar() -> &'static cpu::Kernel {
    cpu::kernels()
        .iter()
        .find(|k| k.isa() == Isa::Scalar)
        .expect("the scalar reference is always available")
}

fn upload_f32(client: &Client, v: &[f32]) -> Handle {
    client.create_from_slice(bytemuck::cast_slice(v))
}

fn read_f32(client: &Client, h: Handle, len: usize) -> Vec<f32> {
    let bytes = client.read_one_unchecked(h);
    bytemuck::cast_slice::<u8, f32>(&bytes[..len * 4]).to_vec()
}

fn read_i32(client: &Client, h: Handle, len: usize) -> Vec<i32> {
    let bytes = client.read_one_unchecked(h);
    bytemuck::cast_slice::<u8, i32>(&bytes[..len * 4]).to_vec()
}

/// A random matrix with per-row or per-tensor scales, and its device copy.
fn matrix(
    client: &Client,
    rng: &mut XorShift,
    n: usize,
    k: usize,
    per_row: bool,
) -> (PackedI2, DeviceMatrix) {
    let t = rng.ternary(n * k);
    let scales = if per_row {
        Scales::PerRow((0..n).map(|_| rng.next_f32().abs() + 0.01).collect())
    } else {
        Scales::PerTensor(0.37)
    };
    let w = PackedI2::from_ternary(&t, n, k, scales).unwrap();
    let scale_values: Vec<f32> = match w.scales() {
        Scales::PerTensor(s) => vec![*s],
        Scales::PerRow(s) => s.clone(),
        Scales::PerGroup { .. } => {
            unreachable!("the GPU kernels take per-tensor or per-row scales")
        }
    };
    let device = DeviceMatrix {
        words: client.create_from_slice(w.data()),
        scales: upload_f32(client, &scale_values),
        n,
        k,
        per_row,
        group_size: 0,
    };
    (w, device)
}

/// Activations with a few exact zeros and one all-zero row when there are several rows.
fn activations(rng: &mut XorShift, m: usize, k: usize) -> Vec<f32> {
    let mut x = rng.f32s(m * k);
    for (i, v) in x.iter_mut().enumerate() {
        if i % 11 == 3 {
            *v = 0.0;
        }
    }
    if m > 2 {
        x[k..2 * k].fill(0.0);
    }
    x
}

/// The CPU's quantized activations on the device, as the GEMM kernels read them.
fn upload_quantized(client: &Client, q: &QuantizedActivations) -> DeviceActivations {
    DeviceActivations {
        words: client.create_from_slice(bytemuck::cast_slice(q.data())),
        scales: upload_f32(client, q.scales()),
        sums: client.create_from_slice(bytemuck::cast_slice(q.sums())),
        m: q.m(),
        k: q.k(),
    }
}

#[test]
fn w2a8_integer_sums_equal_the_scalar_reference_bit_exactly() {
    let client = client();
    let mut rng = XorShift::new(1);
    for &(m, n, k) in SHAPES {
        for per_row in [true, false] {
            let (w, dw) = matrix(&client, &mut rng, n, k, per_row);
            let x = activations(&mut rng, m, k);
            let q = QuantizedActivations::quantize(&x, m, k).unwrap();
            let mut expected = vec![0i32; m * n];
            scalar().matmul_w2a8_i32(&q, &w, &mut expected).unwrap();
            let dq = upload_quantized(&client, &q);
            for strategy in strategies() {
                let out = gpu::matmul_w2a8::<f32>(&client, &dq, &dw, strategy, true);
                let got = read_i32(&client, out, m * n);
                assert_eq!(
                    got, expected,
                    "{strategy:?} m={m} n={n} k={k} per_row={per_row}"
                );
            }
        }
    }
}

#[test]
fn device_quantizer_matches_quantized_activations() {
    let client = client();
    let mut rng = XorShift::new(2);
    for &(m, _, k) in SHAPES {
        let x = activations(&mut rng, m, k);
        let q = QuantizedActivations::quantize(&x, m, k).unwrap();
        let dq = gpu::quantize_rows::<f32>(&client, &upload_f32(&client, &x), m, k);
        let bytes = client.read_one_unchecked(dq.words);
        let got: &[i8] = bytemuck::cast_slice(&bytes[..m * q.k_padded()]);
        assert_eq!(got, q.data(), "int8 values, m={m} k={k}");
        assert_eq!(
            read_i32(&client, dq.sums, m),
            q.sums(),
            "row sums, m={m} k={k}"
        );
        let scales = read_f32(&client, dq.scales, m);
        assert_eq!(
            scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
            q.scales().iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
            "row scales, m={m} k={k}"
        );
    }
}

#[test]
fn w2a8_scaled_outputs_match_the_cpu_kernel() {
    let client = client();
    let mut rng = XorShift::new(3);
    for &(m, n, k) in SHAPES {
        let (w, dw) = matrix(&client, &mut rng, n, k, true);
        let x = activations(&mut rng, m, k);
        let q = QuantizedActivations::quantize(&x, m, k).unwrap();
        let mut expected = vec![0f32; m * n];
        cpu::matmul_w2a8(&q, &w, None, &mut expected).unwrap();
        let dq = gpu::quantize_rows::<f32>(&client, &upload_f32(&client, &x), m, k);
        for strategy in strategies() {
            let out = gpu::matmul_w2a8::<f32>(&client, &dq, &dw, strategy, false);
            let got = read_f32(&client, out, m * n);
            for (idx, (g, e)) in got.iter().zip(&expected).enumerate() {
                // Same integer sum, same `sum · (xs · ws)` in f32: one rounding apart at most.
                assert!(
                    (g - e).abs() <= 1e-6 * e.abs(),
                    "{strategy:?} m={m} n={n} k={k} at {idx}: {g} vs {e}"
                );
            }
        }
    }
}

/// `Σ_c |x[i, c] · w[j, c]| · s_j`: the scale of the rounding error of a float dot product.
fn magnitude(x: &[f32], w: &PackedI2, m: usize) -> Vec<f32> {
    let (n, k) = (w.n(), w.k());
    let t = w.to_ternary();
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f32 = (0..k)
                .map(|c| (x[i * k + c] * f32::from(t[j * k + c])).abs())
                .sum();
            out[i * n + j] = s * ternary_kernels::PackedI2Ref::from(w).scale(j);
        }
    }
    out
}

#[test]
fn float_activations_match_the_cpu_kernel_within_tolerance() {
    let client = client();
    let mut rng = XorShift::new(4);
    for &(m, n, k) in SHAPES {
        for per_row in [true, false] {
            let (w, dw) = matrix(&client, &mut rng, n, k, per_row);
            let x = activations(&mut rng, m, k);
            let mut expected = vec![0f32; m * n];
            cpu::matmul_f32(&x, m, &w, None, &mut expected).unwrap();
            let bound = magnitude(&x, &w, m);
            let dx = upload_f32(&client, &x);
            for strategy in strategies() {
                let out = gpu::matmul_float::<f32>(&client, &dx, m, &dw, strategy);
                let got = read_f32(&client, out, m * n);
                for idx in 0..m * n {
                    assert!(
                        (got[idx] - expected[idx]).abs() <= 1e-5 * bound[idx] + 1e-30,
                        "{strategy:?} m={m} n={n} k={k} at {idx}: {} vs {}",
                        got[idx],
                        expected[idx]
                    );
                }
            }
        }
    }
}

#[test]
fn f16_activations_match_the_cpu_kernel_within_tolerance() {
    use half::f16;
    let client = client();
    let mut rng = XorShift::new(5);
    for &(m, n, k) in SHAPES {
        let (w, dw) = matrix(&client, &mut rng, n, k, true);
        // The CPU sees exactly the f16 values the GPU reads.
        let xh: Vec<f16> = activations(&mut rng, m, k)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let x: Vec<f32> = xh.iter().map(|v| v.to_f32()).collect();
        let mut expected = vec![0f32; m * n];
        cpu::matmul_f32(&x, m, &w, None, &mut expected).unwrap();
        let bound = magnitude(&x, &w, m);
        let dx = client.create_from_slice(bytemuck::cast_slice(&xh));
        for strategy in strategies() {
            let out = gpu::matmul_float::<f16>(&client, &dx, m, &dw, strategy);
            let bytes = client.read_one_unchecked(out);
            let got: &[f16] = bytemuck::cast_slice(&bytes[..m * n * 2]);
            for idx in 0..m * n {
                let g = got[idx].to_f32();
                // f32 accumulation, then one f16 rounding of the result (2⁻¹¹ relative).
                assert!(
                    (g - expected[idx]).abs() <= 2e-3 * bound[idx] + 1e-6,
                    "{strategy:?} m={m} n={n} k={k} at {idx}: {g} vs {}",
                    expected[idx]
                );
            }
        }
    }
}

#[test]
fn quantizer_covers_more_rows_than_one_grid_dimension() {
    let client = client();
    let max_x = client.properties().hardware.max_cube_count.0 as usize;
    // Past the grid's first dimension (65 535 on most devices): rows wrap onto a second one.
    let (m, k) = (max_x + 3, 8);
    let mut rng = XorShift::new(7);
    let x = rng.f32s(m * k);
    let q = QuantizedActivations::quantize(&x, m, k).unwrap();
    let dq = gpu::quantize_rows::<f32>(&client, &upload_f32(&client, &x), m, k);
    assert_eq!(read_i32(&client, dq.sums, m), q.sums());
}

#[test]
fn non_finite_activations_give_nan_outputs_not_garbage() {
    let client = client();
    let mut rng = XorShift::new(6);
    let (m, n, k) = (3, 10, 200);
    let (_, dw) = matrix(&client, &mut rng, n, k, true);
    let mut x = activations(&mut rng, m, k);
    x[k + 5] = f32::NAN;
    x[2 * k + 7] = f32::INFINITY;
    let dq = gpu::quantize_rows::<f32>(&client, &upload_f32(&client, &x), m, k);
    let out = gpu::matmul_w2a8::<f32>(&client, &dq, &dw, Strategy::Auto, false);
    let got = read_f32(&client, out, m * n);
    assert!(got[..n].iter().all(|v| v.is_finite()), "row 0 is clean");
    assert!(
        got[n..].iter().all(|v| v.is_nan()),
        "rows 1 and 2 hold NaN/Inf: {got:?}"
    );
}

/// `(batch, c_in, [h, w], c_out, kernel, stride, padding, dilation, groups)`: 3×3 "same",
/// strided, dilated, grouped and depthwise, 1×1, a kernel as large as the padded input, odd
/// sizes and K across a 128-column block (16·9 = 144).
type ConvCase = (
    usize,
    usize,
    [usize; 2],
    usize,
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
    usize,
);

const CONV_CASES: &[ConvCase] = &[
    (2, 3, [7, 9], 5, [3, 3], [1, 1], [1, 1], [1, 1], 1),
    (1, 4, [10, 9], 6, [3, 2], [2, 1], [0, 1], [1, 1], 2),
    (2, 6, [11, 12], 6, [3, 3], [1, 2], [2, 2], [2, 1], 3),
    (3, 8, [8, 8], 8, [3, 3], [1, 1], [1, 1], [1, 1], 8),
    (1, 32, [7, 9], 17, [1, 1], [2, 2], [0, 0], [1, 1], 1),
    (2, 3, [2, 2], 5, [4, 4], [1, 1], [1, 1], [1, 1], 1),
    (2, 16, [9, 7], 20, [3, 3], [1, 1], [1, 1], [1, 1], 1),
];

fn conv_params(c: &ConvCase) -> ternary_kernels::Conv2dParams {
    let &(batch, cin, hw, cout, kernel, stride, padding, dilation, groups) = c;
    ternary_kernels::Conv2dParams::new(batch, cin, hw, cout, kernel)
        .with_stride(stride)
        .with_padding(padding)
        .with_dilation(dilation)
        .with_groups(groups)
}

#[test]
fn conv2d_w2a8_integer_sums_equal_the_direct_reference_bit_exactly() {
    let client = client();
    let mut rng = XorShift::new(71);
    for (i, c) in CONV_CASES.iter().enumerate() {
        let p = conv_params(c);
        let (w, dw) = matrix(&client, &mut rng, p.out_channels, p.k(), i % 2 == 0);
        let image = p.in_channels * p.height * p.width;
        let x = activations(&mut rng, p.batch, image);
        let q = ternary_kernels::QuantizedImages::quantize(&x, p.batch, image).unwrap();
        let mut want = vec![0i32; p.output_len().unwrap()];
        cpu::conv2d_w2a8_i32_reference(&q, &p, &w, &mut want).unwrap();
        // Quantized on the device, one row per image: the same bytes as QuantizedImages.
        let xq = gpu::quantize_rows::<f32>(&client, &upload_f32(&client, &x), p.batch, image);
        let mut cpu_out = vec![0f32; want.len()];
        scalar()
            .conv2d_w2a8(&q, &p, &w, None, &mut cpu_out)
            .unwrap();
        for strategy in conv_strategies() {
            let raw = gpu::conv2d_w2a8::<f32>(&client, &xq, &p, &dw, strategy, true);
            assert_eq!(
                read_i32(&client, raw, want.len()),
                want,
                "{strategy:?} {c:?}"
            );
            // Scaled: the sums times x_scale[b] · w_scale[o], as the CPU kernel's epilogue.
            let got = read_f32(
                &client,
                gpu::conv2d_w2a8::<f32>(&client, &xq, &p, &dw, strategy, false),
                want.len(),
            );
            for (j, (g, e)) in got.iter().zip(&cpu_out).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-6 * e.abs(),
                    "{strategy:?} {c:?} out[{j}] = {g} vs {e}"
                );
            }
        }
        // The raw product above was the first of this geometry: autotune has settled.
        let picked = gpu::tuned_conv2d_w2a8::<f32>(&client, &p, i % 2 == 0, true);
        assert!(picked.is_some(), "{c:?}: autotune settled on {picked:?}");
    }
}

/// Every conv cube shape, then autotune.
fn conv_strategies() -> impl Iterator<Item = ConvStrategy> {
    ConvVariant::ALL
        .into_iter()
        .map(ConvStrategy::Fixed)
        .chain([ConvStrategy::Autotune])
}

#[test]
fn conv2d_float_matches_the_cpu_kernel_within_tolerance() {
    let client = client();
    let mut rng = XorShift::new(72);
    for (i, c) in CONV_CASES.iter().enumerate() {
        let p = conv_params(c);
        let (w, dw) = matrix(&client, &mut rng, p.out_channels, p.k(), i % 2 == 1);
        let x = activations(&mut rng, p.batch, p.in_channels * p.height * p.width);
        let mut want = vec![0f32; p.output_len().unwrap()];
        scalar().conv2d_f32(&x, &p, &w, None, &mut want).unwrap();
        let dx = upload_f32(&client, &x);
        let mut first: Option<Vec<f32>> = None;
        for strategy in conv_strategies() {
            let got = read_f32(
                &client,
                gpu::conv2d_float::<f32>(&client, &dx, &p, &dw, strategy),
                want.len(),
            );
            // Only the order of the f32 additions differs: bound by Σ|x| over the window.
            let bound = x.iter().map(|v| v.abs()).fold(0f32, f32::max) * p.k() as f32 * 1e-5;
            for (j, (g, e)) in got.iter().zip(&want).enumerate() {
                let scale = match w.scales() {
                    Scales::PerTensor(s) => *s,
                    Scales::PerRow(s) => s[j / (want.len() / p.batch) % p.out_channels],
                    _ => unreachable!("per-row or per-tensor scales"),
                };
                assert!(
                    (g - e).abs() <= bound * scale + 1e-6,
                    "{strategy:?} {c:?} out[{j}] = {g} vs {e}"
                );
            }
            // Each output is one unit's own loop, in the same order for every cube shape.
            let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
            let first_bits: Vec<u32> = first
                .get_or_insert_with(|| got.clone())
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(
                bits, first_bits,
                "{strategy:?} {c:?}: same bits as the first shape"
            );
        }
        let picked = gpu::tuned_conv2d_float::<f32>(&client, &p, i % 2 == 1);
        assert!(picked.is_some(), "{c:?}: autotune settled on {picked:?}");
    }
}

#[test]
fn autotune_settles_on_a_variant_per_shape_and_keeps_exact_results() {
    let client = client();
    let mut rng = XorShift::new(8);
    // Two `m` classes of the same weights: each is tuned on its own.
    let (n, k) = (96, 640);
    let (w, dw) = matrix(&client, &mut rng, n, k, true);
    for m in [3, 40] {
        assert_eq!(
            gpu::tuned_w2a8::<f32>(&client, m, n, k, true, true),
            None,
            "m={m}: nothing is settled before the first product"
        );
        let x = activations(&mut rng, m, k);
        let q = QuantizedActivations::quantize(&x, m, k).unwrap();
        let mut expected = vec![0i32; m * n];
        scalar().matmul_w2a8_i32(&q, &w, &mut expected).unwrap();
        let dq = upload_quantized(&client, &q);
        // The first call tunes, the second runs the winner alone: both exact.
        for call in 0..2 {
            let out = gpu::matmul_w2a8::<f32>(&client, &dq, &dw, Strategy::Autotune, true);
            assert_eq!(read_i32(&client, out, m * n), expected, "m={m} call {call}");
        }
        let picked = gpu::tuned_w2a8::<f32>(&client, m, n, k, true, true);
        assert!(
            picked.is_some_and(|v| Variant::ALL.contains(&v)),
            "m={m}: autotune settled on {picked:?}"
        );
        // Same power-of-two class of m: the same settled result.
        assert_eq!(
            gpu::tuned_w2a8::<f32>(&client, m.next_power_of_two(), n, k, true, true),
            picked
        );
    }
    // A shape never run is still unsettled.
    assert_eq!(
        gpu::tuned_w2a8::<f32>(&client, 3, n + 1, k, true, true),
        None
    );
}

#[test]
fn autotune_skips_variants_whose_grid_the_device_cannot_hold() {
    // More activation rows than one grid dimension holds (65 535 on most devices): the GEMV
    // variants (one row of cubes per activation row) cannot launch, the tiles can.
    let client = client();
    let max_y = client.properties().hardware.max_cube_count.1 as usize;
    let (m, n, k) = (max_y + 5, 3, 8);
    let mut rng = XorShift::new(9);
    let (w, dw) = matrix(&client, &mut rng, n, k, true);
    let x = rng.f32s(m * k);
    let q = QuantizedActivations::quantize(&x, m, k).unwrap();
    let mut expected = vec![0i32; m * n];
    scalar().matmul_w2a8_i32(&q, &w, &mut expected).unwrap();
    let dq = upload_quantized(&client, &q);
    let out = gpu::matmul_w2a8::<f32>(&client, &dq, &dw, Strategy::Autotune, true);
    assert_eq!(read_i32(&client, out, m * n), expected);
    let picked = gpu::tuned_w2a8::<f32>(&client, m, n, k, true, true);
    assert!(
        matches!(picked, Some(Variant::Gemm32 | Variant::Gemm64)),
        "{picked:?}"
    );
}

/// A random matrix with one scale per row and `g`-column group (powers of two from 1/8 to 8,
/// so a misplaced group is far outside the rounding bound), and its device copy.
fn group_matrix(
    client: &Client,
    rng: &mut XorShift,
    n: usize,
    k: usize,
    g: usize,
) -> (PackedI2, DeviceMatrix) {
    let t = rng.ternary(n * k);
    let groups = k.div_ceil(g);
    let scales: Vec<f32> = (0..n * groups)
        .map(|_| 2f32.powi((rng.next_f32() * 7.0) as i32 - 3))
        .collect();
    let w = PackedI2::from_ternary(
        &t,
        n,
        k,
        Scales::PerGroup {
            group_size: g,
            scales: scales.clone(),
        },
    )
    .unwrap();
    let device = DeviceMatrix {
        words: client.create_from_slice(w.data()),
        scales: upload_f32(client, &scales),
        n,
        k,
        per_row: false,
        group_size: g,
    };
    (w, device)
}

/// `Σ_c a[i, c] · w_eff[j, c]` in f64 and its magnitude `Σ_c |a · w_eff|`, for `m` rows of
/// `a` against the effective (group-scaled) weights.
fn exact_products(a: &[f64], w: &PackedI2, m: usize) -> (Vec<f64>, Vec<f64>) {
    let (n, k) = (w.n(), w.k());
    let eff = w.dequantize();
    let (mut y, mut mag) = (vec![0f64; m * n], vec![0f64; m * n]);
    for i in 0..m {
        for j in 0..n {
            for c in 0..k {
                let term = a[i * k + c] * f64::from(eff[j * k + c]);
                y[i * n + j] += term;
                mag[i * n + j] += term.abs();
            }
        }
    }
    (y, mag)
}

#[test]
fn group_scaled_products_match_the_exact_product_on_every_variant() {
    let client = client();
    let mut rng = XorShift::new(91);
    for &(m, n, k) in SHAPES {
        for g in [64, 128, 256] {
            let (w, dw) = group_matrix(&client, &mut rng, n, k, g);
            let x = activations(&mut rng, m, k);
            let dx = upload_f32(&client, &x);
            // W2A8: the int8 values times their row scale are what the kernel multiplies.
            let q = QuantizedActivations::quantize(&x, m, k).unwrap();
            let qx: Vec<f64> = (0..m)
                .flat_map(|i| {
                    let s = f64::from(q.scales()[i]);
                    let row = &q.data()[i * q.k_padded()..];
                    (0..k).map(move |c| f64::from(row[c]) * s)
                })
                .collect();
            let (want8, mag8) = exact_products(&qx, &w, m);
            let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let (want, mag) = exact_products(&xf, &w, m);
            let dq = gpu::quantize_rows::<f32>(&client, &dx, m, k);
            for strategy in strategies() {
                let got8 = read_f32(
                    &client,
                    gpu::matmul_w2a8::<f32>(&client, &dq, &dw, strategy, false),
                    m * n,
                );
                let got = read_f32(
                    &client,
                    gpu::matmul_float::<f32>(&client, &dx, m, &dw, strategy),
                    m * n,
                );
                for idx in 0..m * n {
                    assert!(
                        (f64::from(got8[idx]) - want8[idx]).abs() <= 1e-5 * mag8[idx] + 1e-30,
                        "W2A8 {strategy:?} g={g} m={m} n={n} k={k} at {idx}: {} vs {}",
                        got8[idx],
                        want8[idx]
                    );
                    assert!(
                        (f64::from(got[idx]) - want[idx]).abs() <= 1e-5 * mag[idx] + 1e-30,
                        "float {strategy:?} g={g} m={m} n={n} k={k} at {idx}: {} vs {}",
                        got[idx],
                        want[idx]
                    );
                }
            }
        }
    }
}

#[test]
fn group_scaled_convs_match_the_cpu_kernel() {
    let client = client();
    let mut rng = XorShift::new(92);
    for c in CONV_CASES {
        let p = conv_params(c);
        for g in [64, 128] {
            let (w, dw) = group_matrix(&client, &mut rng, p.out_channels, p.k(), g);
            let image = p.in_channels * p.height * p.width;
            let x = activations(&mut rng, p.batch, image);
            let len = p.output_len().unwrap();
            let mut want = vec![0f32; len];
            scalar().conv2d_f32(&x, &p, &w, None, &mut want).unwrap();
            let q = ternary_kernels::QuantizedImages::quantize(&x, p.batch, image).unwrap();
            let mut want8 = vec![0f32; len];
            scalar().conv2d_w2a8(&q, &p, &w, None, &mut want8).unwrap();
            let dx = upload_f32(&client, &x);
            let xq = gpu::quantize_rows::<f32>(&client, &dx, p.batch, image);
            // Only the f32 order differs: bounded by max|x| · K · max scale.
            let smax = w.scales().as_slice().iter().fold(0f32, |a, &s| a.max(s));
            let bound = x.iter().map(|v| v.abs()).fold(0f32, f32::max) * p.k() as f32 * smax * 1e-5;
            for strategy in conv_strategies() {
                let got = read_f32(
                    &client,
                    gpu::conv2d_float::<f32>(&client, &dx, &p, &dw, strategy),
                    len,
                );
                let got8 = read_f32(
                    &client,
                    gpu::conv2d_w2a8::<f32>(&client, &xq, &p, &dw, strategy, false),
                    len,
                );
                for j in 0..len {
                    assert!(
                        (got[j] - want[j]).abs() <= bound + 1e-6,
                        "float {strategy:?} g={g} {c:?} out[{j}] = {} vs {}",
                        got[j],
                        want[j]
                    );
                    assert!(
                        (got8[j] - want8[j]).abs() <= bound + 1e-6,
                        "W2A8 {strategy:?} g={g} {c:?} out[{j}] = {} vs {}",
                        got8[j],
                        want8[j]
                    );
                }
            }
        }
    }
}
