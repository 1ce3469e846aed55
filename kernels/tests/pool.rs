//! 2-D max pooling against a naive reference written from the PyTorch formula: every output
//! bit-exact (NaN propagation, ties, −∞ padding), plus the error cases.

use proptest::prelude::*;
use ternary_kernels::KernelError;
use ternary_kernels::cpu::{MaxPool2dParams, max_pool2d_f32};
use ternary_kernels::random::XorShift;

/// The reference: every window position in `ky`, `kx` order, padding skipped, a value
/// replacing the maximum when strictly greater or NaN.
fn reference(x: &[f32], planes: usize, [h, w]: [usize; 2], p: &MaxPool2dParams) -> Vec<f32> {
    let oh = (h + 2 * p.padding[0] - p.dilation[0] * (p.kernel[0] - 1) - 1) / p.stride[0] + 1;
    let ow = (w + 2 * p.padding[1] - p.dilation[1] * (p.kernel[1] - 1) - 1) / p.stride[1] + 1;
    let mut out = Vec::new();
    for pl in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m: Option<f32> = None;
                for ky in 0..p.kernel[0] {
                    for kx in 0..p.kernel[1] {
                        let iy = (oy * p.stride[0] + ky * p.dilation[0]) as isize
                            - p.padding[0] as isize;
                        let ix = (ox * p.stride[1] + kx * p.dilation[1]) as isize
                            - p.padding[1] as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[pl * h * w + iy as usize * w + ix as usize];
                        let v = if p.relu { relu(v) } else { v };
                        m = Some(match m {
                            Some(m) if !(v > m || v.is_nan()) => m,
                            _ => v,
                        });
                    }
                }
                out.push(m.unwrap_or(f32::NEG_INFINITY));
            }
        }
    }
    out
}

/// Burn's `relu`, written out: NaN kept, −0.0 → +0.0.
fn relu(v: f32) -> f32 {
    if v.is_nan() || v > 0.0 { v } else { 0.0 }
}

/// Values from a small set so ties are common, with NaN, ±0 and ±∞ mixed in.
fn input(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = XorShift::new(seed);
    let special = [f32::NAN, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY];
    (0..n)
        .map(|_| {
            let r = rng.next_f32();
            if r.abs() < 0.05 {
                special[(rng.next_f32().abs() * 5.0) as usize % 5]
            } else {
                (r * 4.0).round() / 2.0
            }
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

fn check(planes: usize, hw: [usize; 2], p: MaxPool2dParams, seed: u64) {
    let x = input(planes * hw[0] * hw[1], seed);
    let (oh, ow) = p.out_hw(hw).unwrap();
    let mut got = vec![1.5f32; planes * oh * ow];
    max_pool2d_f32(&x, planes, hw, &p, &mut got).unwrap();
    assert_eq!(
        bits(&got),
        bits(&reference(&x, planes, hw, &p)),
        "{p:?} {hw:?}"
    );
}

#[test]
fn max_pool_2x2_fast_path_matches_the_reference() {
    check(3, [28, 28], MaxPool2dParams::new([2, 2]), 1);
    // Odd sizes drop the last row and column, as PyTorch without ceil_mode.
    check(2, [7, 9], MaxPool2dParams::new([2, 2]), 2);
    // Large enough to run planes on rayon.
    check(128, [28, 28], MaxPool2dParams::new([2, 2]), 3);
}

#[test]
fn max_pool_general_windows_match_the_reference() {
    let p = MaxPool2dParams::new([3, 3])
        .with_stride([2, 2])
        .with_padding([1, 1]);
    check(4, [14, 13], p, 4);
    check(
        2,
        [5, 6],
        MaxPool2dParams::new([2, 3]).with_stride([1, 2]),
        5,
    );
    let dilated = MaxPool2dParams::new([3, 2])
        .with_stride([1, 1])
        .with_padding([1, 1])
        .with_dilation([2, 3]);
    check(3, [8, 9], dilated, 6);
    check(1, [1, 1], MaxPool2dParams::new([1, 1]), 7);
    // ReLU on the inputs, through the fast path and the general one.
    check(3, [8, 8], MaxPool2dParams::new([2, 2]).with_relu(true), 8);
    check(3, [8, 9], dilated.with_relu(true), 9);
}

#[test]
fn windows_with_no_pixel_are_minus_infinity_with_or_without_relu() {
    // k = 2, padding 1, dilation 3 on a 2×2 plane: the taps of window (0, 0) are at −1 and 2,
    // both outside; ReLU on the inputs does not turn it into 0.
    let p = MaxPool2dParams::new([2, 2])
        .with_stride([1, 1])
        .with_padding([1, 1])
        .with_dilation([3, 3]);
    for relu in [false, true] {
        let p = p.with_relu(relu);
        let (oh, ow) = p.out_hw([2, 2]).unwrap();
        let x = [-1.0f32, -2.0, -3.0, -4.0];
        let mut got = vec![0f32; oh * ow];
        max_pool2d_f32(&x, 1, [2, 2], &p, &mut got).unwrap();
        assert_eq!(bits(&got), bits(&reference(&x, 1, [2, 2], &p)));
        assert_eq!(got[0], f32::NEG_INFINITY, "relu {relu}");
    }
    // An empty plane with padding: every output is an empty window.
    let p = MaxPool2dParams::new([2, 2])
        .with_padding([1, 1])
        .with_stride([1, 1]);
    let (oh, ow) = p.out_hw([0, 2]).unwrap();
    let mut got = vec![0f32; 2 * oh * ow];
    max_pool2d_f32(&[], 2, [0, 2], &p, &mut got).unwrap();
    assert!(got.iter().all(|v| *v == f32::NEG_INFINITY), "{got:?}");
}

#[test]
fn max_pool_of_zero_planes_is_empty_and_bad_windows_are_typed_errors() {
    let p = MaxPool2dParams::new([2, 2]);
    max_pool2d_f32(&[], 0, [4, 4], &p, &mut []).unwrap();
    let err = |p: MaxPool2dParams, hw: [usize; 2]| p.out_hw(hw).unwrap_err();
    assert!(matches!(
        err(MaxPool2dParams::new([0, 2]), [4, 4]),
        KernelError::Pool { kernel: [0, 2], .. }
    ));
    assert!(matches!(
        err(MaxPool2dParams::new([2, 2]).with_padding([2, 0]), [4, 4]),
        KernelError::Pool {
            padding: [2, 0],
            ..
        }
    ));
    assert!(matches!(
        err(MaxPool2dParams::new([5, 2]), [4, 4]),
        KernelError::Pool { input: [4, 4], .. }
    ));
    let huge = MaxPool2dParams::new([2, 2]).with_dilation([usize::MAX, 1]);
    assert!(matches!(err(huge, [4, 4]), KernelError::Pool { .. }));
    // Lengths: the input and output must be whole planes.
    let mut out = vec![0f32; 4];
    assert!(matches!(
        max_pool2d_f32(&[0.0; 15], 1, [4, 4], &p, &mut out),
        Err(KernelError::Length {
            expected: 16,
            actual: 15,
            ..
        })
    ));
    assert!(matches!(
        max_pool2d_f32(&[0.0; 16], 1, [4, 4], &p, &mut out[..3]),
        Err(KernelError::Length {
            expected: 4,
            actual: 3,
            ..
        })
    ));
    let message = err(MaxPool2dParams::new([0, 2]), [4, 4]).to_string();
    assert!(
        message.contains("kernel [0, 2]") && message.contains("input [4, 4]"),
        "{message}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn max_pool_matches_the_reference_on_random_windows(
        planes in 0usize..4, h in 1usize..12, w in 1usize..12,
        kh in 1usize..4, kw in 1usize..4, sh in 1usize..4, sw in 1usize..4,
        dh in 1usize..4, dw in 1usize..4, ph in 0usize..2, pw in 0usize..2, seed in any::<u64>(),
        relu in any::<bool>(),
    ) {
        let p = MaxPool2dParams::new([kh, kw])
            .with_stride([sh, sw])
            .with_padding([ph.min(kh / 2), pw.min(kw / 2)])
            .with_dilation([dh, dw])
            .with_relu(relu);
        prop_assume!(p.out_hw([h, w]).is_ok());
        check(planes, [h, w], p, seed);
    }
}
