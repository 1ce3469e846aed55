//! `TritTensor` against a plain `i8` reference: every op on random 3-d shapes with
//! broadcasting (size-0 and size-1 dimensions, odd lengths), on views (narrowed at odd
//! offsets, permuted, expanded), reductions along every axis, conversions and serialization.

use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_ternary::TritError;
use burn_ternary::trit::{BinaryOp, TritTensor};
use ternary_kernels::quant::Method;
use ternary_kernels::random::XorShift;

fn random(rng: &mut XorShift, shape: [usize; 3]) -> (TritTensor<3>, Vec<i8>) {
    let v = rng.ternary(shape.iter().product());
    (TritTensor::from_i8(&v, shape).unwrap(), v)
}

fn at(v: &[i8], shape: [usize; 3], i: [usize; 3]) -> i8 {
    // Broadcast read: a size-1 dimension repeats.
    let i = [0, 1, 2].map(|d| if shape[d] == 1 { 0 } else { i[d] });
    v[(i[0] * shape[1] + i[1]) * shape[2] + i[2]]
}

fn each(shape: [usize; 3]) -> impl Iterator<Item = [usize; 3]> {
    (0..shape[0])
        .flat_map(move |a| (0..shape[1]).flat_map(move |b| (0..shape[2]).map(move |c| [a, b, c])))
}

/// Two shapes that broadcast (each dimension equal, or 1 on one side) and their result.
fn shapes(rng: &mut XorShift) -> ([usize; 3], [usize; 3], [usize; 3]) {
    let dims = [0, 1, 2, 3, 5, 7, 33, 65];
    let full: [usize; 3] = std::array::from_fn(|_| dims[(rng.next_u64() % 8) as usize]);
    let (mut a, mut b) = (full, full);
    for d in 0..3 {
        match rng.next_u64() % 4 {
            0 => a[d] = 1,
            1 => b[d] = 1,
            _ => {}
        }
    }
    let out = [0, 1, 2].map(|d| if a[d] == 1 { b[d] } else { a[d] });
    (a, b, out)
}

fn reference(op: BinaryOp, a: i8, b: i8) -> i8 {
    op.apply(a, b)
}

#[test]
fn binary_ops_broadcast_like_an_i8_reference() {
    let mut rng = XorShift::new(1);
    for case in 0..60 {
        let (sa, sb, out) = shapes(&mut rng);
        let (a, va) = random(&mut rng, sa);
        let (b, vb) = random(&mut rng, sb);
        for op in BinaryOp::ALL {
            let got = a.try_binary(op, &b).unwrap();
            assert_eq!(got.dims(), out, "case {case} {op:?} {sa:?} {sb:?}");
            let want: Vec<i8> = each(out)
                .map(|i| reference(op, at(&va, sa, i), at(&vb, sb, i)))
                .collect();
            assert_eq!(got.to_i8(), want, "case {case} {op:?} {sa:?} {sb:?}");
        }
        let want_dot: i64 = each(out)
            .map(|i| i64::from(at(&va, sa, i) * at(&vb, sb, i)))
            .sum();
        assert_eq!(a.dot(&b).unwrap(), want_dot);
    }
}

#[test]
fn operators_and_unary_ops() {
    let mut rng = XorShift::new(2);
    let (a, va) = random(&mut rng, [3, 5, 7]);
    let (b, vb) = random(&mut rng, [3, 5, 7]);
    let zip =
        |f: fn(i8, i8) -> i8| -> Vec<i8> { va.iter().zip(&vb).map(|(&x, &y)| f(x, y)).collect() };
    assert_eq!((&a + &b).to_i8(), zip(|x, y| (x + y).clamp(-1, 1)));
    assert_eq!((&a - &b).to_i8(), zip(|x, y| (x - y).clamp(-1, 1)));
    assert_eq!((&a * &b).to_i8(), zip(|x, y| x * y));
    assert_eq!((!&a).to_i8(), va.iter().map(|x| -x).collect::<Vec<_>>());
    assert_eq!(
        (-a.clone()).to_i8(),
        va.iter().map(|x| -x).collect::<Vec<_>>()
    );
    assert_eq!(
        a.abs().to_i8(),
        va.iter().map(|x| x.abs()).collect::<Vec<_>>()
    );
    assert_eq!(a.min_pair(&b).to_i8(), zip(|x, y| x.min(y)));
    assert_eq!(a.max_pair(&b).to_i8(), zip(|x, y| x.max(y)));
    // where: a where cond ≠ 0, else b.
    let (c, vc) = random(&mut rng, [3, 5, 7]);
    let want: Vec<i8> = (0..va.len())
        .map(|i| if vc[i] != 0 { va[i] } else { vb[i] })
        .collect();
    assert_eq!(c.select(&a, &b).unwrap().to_i8(), want);
    // Comparison masks agree with the trit form.
    let (mask, shape) = a.compare_mask(BinaryOp::Lt, &b).unwrap();
    assert_eq!(shape, [3, 5, 7]);
    let lt = a.lower(&b).to_i8();
    for (i, &t) in lt.iter().enumerate() {
        assert_eq!((mask[i / 64] >> (i % 64)) & 1 == 1, t == 1, "element {i}");
    }
}

#[test]
#[should_panic(expected = "add: shapes [2, 3, 4] and [2, 2, 4] do not broadcast")]
fn mismatched_shapes_panic_naming_both() {
    let _ = TritTensor::<3>::zeros([2, 3, 4]) + TritTensor::zeros([2, 2, 4]);
}

#[test]
fn mismatched_shapes_are_typed_errors() {
    let err = TritTensor::<3>::zeros([2, 3, 4])
        .try_binary(BinaryOp::Mul, &TritTensor::zeros([2, 2, 4]))
        .unwrap_err();
    assert!(matches!(err, TritError::Shape { .. }), "{err}");
    assert!(err.to_string().contains("[2, 3, 4]") && err.to_string().contains("[2, 2, 4]"));
    let err = TritTensor::<2>::from_i8(&[1, 0, 2, 0], [2, 2]).unwrap_err();
    assert!(matches!(err, TritError::Kernel(_)), "{err}");
    assert!(err.to_string().contains("value 2 at index 2"), "{err}");
    let err = TritTensor::<2>::from_i8(&[1, 0, 1], [2, 2]).unwrap_err();
    assert!(matches!(err, TritError::Length { .. }), "{err}");
}

#[test]
fn views_read_like_the_reference() {
    let mut rng = XorShift::new(3);
    let shape = [5, 7, 9];
    let (t, v) = random(&mut rng, shape);
    // narrow at odd offsets (unaligned within packed bytes), then permute, then ops.
    let n = t.narrow(0, 1, 3).narrow(1, 3, 3).narrow(2, 1, 7);
    let want: Vec<i8> = each([3, 3, 7])
        .map(|[a, b, c]| at(&v, shape, [a + 1, b + 3, c + 1]))
        .collect();
    assert_eq!(n.to_i8(), want);
    assert!(!n.is_contiguous());
    let p = n.permute([2, 0, 1]);
    assert_eq!(p.dims(), [7, 3, 3]);
    let want_p: Vec<i8> = each([7, 3, 3])
        .map(|[c, a, b]| want[(a * 3 + b) * 7 + c])
        .collect();
    assert_eq!(p.to_i8(), want_p);
    assert_eq!(p.get([4, 1, 2]), want[(3 + 2) * 7 + 4]);
    // An op on two views equals the op on their copies.
    let q = t.slice([0..3, 2..5, 0..7]);
    assert_eq!(
        (&n + &q).to_i8(),
        (&n.contiguous() + &q.contiguous()).to_i8()
    );
    // reshape of a view copies; of a contiguous tensor shares.
    assert_eq!(n.reshape([9, 7]).to_i8(), want);
    assert_eq!(t.reshape([35, 9]).reshape([5, 7, 9]), t);
    // transpose of a matrix.
    let m = TritTensor::from_i8(&[1, 0, -1, -1, 1, 0], [2, 3]).unwrap();
    assert_eq!(m.transpose().to_i8(), [1, -1, 0, 1, -1, 0]);
    // expand (broadcast view) and empty dimensions.
    let row = TritTensor::from_i8(&[1, -1, 0], [1, 3]).unwrap();
    assert_eq!(
        row.try_expand([2, 3]).unwrap().to_i8(),
        [1, -1, 0, 1, -1, 0]
    );
    let empty = t.narrow(1, 2, 0);
    assert_eq!(empty.dims(), [5, 0, 9]);
    assert_eq!(empty.to_i8(), Vec::<i8>::new());
    assert_eq!(empty.sum(), 0);
}

#[test]
fn cat_and_stack() {
    let a = TritTensor::from_i8(&[1, 0, -1, 1], [2, 2]).unwrap();
    let b = TritTensor::from_i8(&[-1, -1], [2, 1]).unwrap();
    assert_eq!(
        TritTensor::cat(&[a.clone(), b.clone()], 1).unwrap().to_i8(),
        [1, 0, -1, -1, 1, -1]
    );
    let err = TritTensor::cat(&[a.clone(), b.clone()], 0).unwrap_err();
    assert!(
        err.to_string().contains("[2, 2]") && err.to_string().contains("[2, 1]"),
        "{err}"
    );
    let s: TritTensor<3> = TritTensor::stack(&[a.clone(), a.neg()], 0).unwrap();
    assert_eq!(s.dims(), [2, 2, 2]);
    assert_eq!(s.to_i8(), [1, 0, -1, 1, -1, 0, 1, -1]);
    let s: TritTensor<3> = TritTensor::stack(&[a.clone(), a.neg()], 2).unwrap();
    assert_eq!(s.to_i8(), [1, -1, 0, 0, -1, 1, 1, -1]);
    assert!(matches!(
        TritTensor::<2>::cat(&[], 0),
        Err(TritError::Empty { .. })
    ));
}

#[test]
fn reductions_along_every_axis() {
    let mut rng = XorShift::new(4);
    // An empty reduced dimension: sums and dots of nothing are 0, a minimum of nothing is an
    // error.
    let empty = TritTensor::<3>::zeros([3, 0, 2]);
    let sums: Vec<i64> = empty.sum_dim(1).convert::<i64>().try_into_vec().unwrap();
    assert_eq!(sums, [0; 6]);
    let dots: Vec<i64> = empty
        .dot_dim(&empty, 1)
        .unwrap()
        .convert::<i64>()
        .try_into_vec()
        .unwrap();
    assert_eq!(dots, [0; 6]);
    assert!(matches!(empty.min_dim(1), Err(TritError::Kernel(_))));
    assert_eq!(empty.sum_dim(0).shape().to_vec(), vec![1, 0, 2]);
    for shape in [[3, 5, 7], [1, 1, 1], [2, 65, 3], [4, 1, 33]] {
        let (t, v) = random(&mut rng, shape);
        assert_eq!(t.sum(), v.iter().map(|&x| i64::from(x)).sum::<i64>());
        let c = t.count();
        assert_eq!(c.sum(), t.sum());
        assert_eq!(t.min(), v.iter().copied().min());
        assert_eq!(t.max(), v.iter().copied().max());
        for dim in 0..3 {
            let mut kept = shape;
            kept[dim] = 1;
            let sums: Vec<i64> = t.sum_dim(dim).convert::<i64>().try_into_vec().unwrap();
            let mins = t.min_dim(dim).unwrap().to_i8();
            let want: Vec<(i64, i8)> = each(kept)
                .map(|i| {
                    let vals: Vec<i8> = (0..shape[dim])
                        .map(|k| {
                            let mut j = i;
                            j[dim] = k;
                            at(&v, shape, j)
                        })
                        .collect();
                    (
                        vals.iter().map(|&x| i64::from(x)).sum(),
                        *vals.iter().min().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                sums,
                want.iter().map(|w| w.0).collect::<Vec<_>>(),
                "{shape:?} dim {dim}"
            );
            assert_eq!(
                mins,
                want.iter().map(|w| w.1).collect::<Vec<_>>(),
                "{shape:?} dim {dim}"
            );
            let dots: Vec<i64> = t
                .dot_dim(&t, dim)
                .unwrap()
                .convert::<i64>()
                .try_into_vec()
                .unwrap();
            let abs: Vec<i64> = t
                .abs()
                .sum_dim(dim)
                .convert::<i64>()
                .try_into_vec()
                .unwrap();
            assert_eq!(dots, abs, "a·a = |a| summed");
        }
    }
}

#[test]
fn burn_conversions_and_serialization() {
    let device = Device::flex();
    let ints =
        Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 0, -1, 1, 1, 0], [2, 3]), &device);
    let t = TritTensor::from_int(ints).unwrap();
    assert_eq!(t.to_i8(), [1, 0, -1, 1, 1, 0]);
    let back: Vec<i64> = t
        .to_int(&device)
        .into_data()
        .convert::<i64>()
        .try_into_vec()
        .unwrap();
    assert_eq!(back, [1, 0, -1, 1, 1, 0]);
    let bad = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 500], [3]), &device);
    let err = TritTensor::from_int(bad).unwrap_err();
    assert!(
        matches!(
            err,
            TritError::NotTrit {
                index: 2,
                value: 500
            }
        ),
        "{err}"
    );

    let floats = Tensor::<1>::from_data(
        TensorData::new(vec![0.9f32, -0.05, -2.0, 0.2], [4]),
        &device,
    );
    let th = TritTensor::from_float_threshold(floats.clone(), 0.1).unwrap();
    assert_eq!(th.to_i8(), [1, 0, -1, 1]);
    let (q, scale) = TritTensor::quantize(floats, Method::AbsMean).unwrap();
    assert!((scale - (0.9 + 0.05 + 2.0 + 0.2) / 4.0).abs() < 1e-6);
    assert_eq!(q.to_i8(), [1, 0, -1, 0]);
    let f: Vec<f32> = q
        .to_float(2.0, &device)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();
    assert_eq!(f, [2.0, 0.0, -2.0, 0.0]);

    // Serialization round trip of a view (odd length, 5 trits per byte), and a corrupt input.
    let mut rng = XorShift::new(5);
    let (big, _) = random(&mut rng, [3, 7, 11]);
    let view = big.narrow(2, 3, 5).transpose();
    let json = serde_json::to_string(&view).unwrap();
    let back: TritTensor<3> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, view);
    assert!(
        serde_json::from_str::<TritTensor<2>>(&json).is_err(),
        "rank checked"
    );
    let bad = r#"{"shape":[2],"trits5":[250]}"#;
    assert!(
        serde_json::from_str::<TritTensor<1>>(bad).is_err(),
        "byte 250 is not 5 trits"
    );

    assert_eq!(format!("{t}"), "[[+ 0 -], [+ + 0]]");
    assert_eq!(
        format!("{t:?}"),
        "TritTensor { shape: [2, 3], trits: [[+ 0 -], [+ + 0]] }"
    );
}

#[test]
fn ternary_activation_forward_is_exact_and_its_ste_reaches_x_and_theta() {
    use burn_ternary::nn::TernaryActivationConfig;
    let device = Device::flex().autodiff();
    let act = TernaryActivationConfig::new()
        .with_threshold(0.3)
        .with_learn_threshold(true)
        .init(&device);
    let xs = vec![
        -2.0f32, -0.5, -0.31, -0.3, -0.1, 0.0, 0.2, 0.3, 0.35, 0.59, 0.61, 3.0,
    ];
    let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device).require_grad();
    let y = act.forward(x.clone());
    let got: Vec<f32> = y
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();
    let want: Vec<f32> = xs
        .iter()
        .map(|&v| if v.abs() > 0.3 { v.signum() } else { 0.0 })
        .collect();
    assert_eq!(got, want);
    // The surrogate's ramp is |x| ∈ [θ − w/2, θ + w/2] = [0, 0.6] with w = 2·min(θ, 1 − θ) = 0.6:
    // slope 1/w for x there, 0 outside; for θ, −sign(x)/w there. Weighted by c_i = i + 1 so
    // that the θ gradient does not cancel.
    let c: Vec<f32> = (1..=xs.len()).map(|i| i as f32).collect();
    let weights = Tensor::<1>::from_data(TensorData::new(c.clone(), [xs.len()]), &device);
    let grads = (y * weights).sum().backward();
    let gx: Vec<f32> = x
        .grad(&grads)
        .unwrap()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();
    let on_ramp = |v: f32| v.abs() <= 0.6 && v != 0.0; // sign(0) = 0: no gradient exactly at 0
    for ((v, g), ci) in xs.iter().zip(&gx).zip(&c) {
        let want = if on_ramp(*v) { ci / 0.6 } else { 0.0 };
        assert!((g - want).abs() < 1e-3, "d/dx at {v}: {g} vs {want}");
    }
    let gt: f32 = act
        .threshold
        .grad(&grads)
        .unwrap()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap()[0];
    let want: f32 = xs
        .iter()
        .zip(&c)
        .filter(|(v, _)| on_ramp(**v))
        .map(|(v, ci)| -v.signum() * ci / 0.6)
        .sum();
    assert!(
        want.abs() > 1.0 && (gt - want).abs() < 1e-3,
        "d/dθ {gt} vs {want}"
    );
    // A fixed threshold gets no gradient.
    let fixed = TernaryActivationConfig::new().init(&device);
    let y = fixed.forward(x.clone());
    let grads = y.sum().backward();
    assert!(fixed.threshold.grad(&grads).is_none());
}

#[test]
fn packed_linear_on_trits_equals_its_float_forward() {
    use burn_ternary::nn::{TernaryLinearConfig, freeze};
    use burn_ternary::quant::{ActivationQuant, Granularity};
    let device = Device::flex();
    device.seed(3);
    let mut rng = XorShift::new(8);
    for (k, n, m, granularity, bias) in [
        (784, 64, 5, Granularity::PerChannel, true),
        (130, 7, 1, Granularity::PerTensor, false),
        (3, 2, 4, Granularity::PerChannel, true),
    ] {
        let layer = TernaryLinearConfig::new(k, n)
            .with_bias(bias)
            .with_granularity(granularity)
            .with_activation(ActivationQuant::None)
            .init(&device);
        let packed = freeze(layer).unwrap();
        let v = rng.ternary(m * k);
        let trits = TritTensor::from_i8(&v, [m, k]).unwrap();
        let got: Vec<f32> = packed
            .forward_trits(&trits, &device)
            .unwrap()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        let x = trits.to_float(1.0, &device);
        let want: Vec<f32> = packed
            .forward(x)
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        let diff = got
            .iter()
            .zip(&want)
            .fold(0f32, |d, (a, b)| d.max((a - b).abs()));
        assert!(diff <= 1e-4, "{k}x{n}, batch {m}: differs by {diff}");
    }
    // The training state has no packed codes: a typed error.
    let fresh = TernaryLinearConfig::new(4, 2).init(&device);
    assert!(
        fresh
            .forward_trits(&TritTensor::zeros([1, 4]), &device)
            .is_err()
    );
}
