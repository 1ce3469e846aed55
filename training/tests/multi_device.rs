//! `--devices`: burn-train's multi-device (data-parallel) strategy through the MNIST loop.
//! Two workers on the Flex device here (CI has one CPU device; two wgpu adapters on lavapipe
//! are measured in BENCHMARKS.md, "Scaling out").

mod common;

use std::path::Path;

use common::scratch;
use training::Args;
use training::mnist::run;

const BASE: &[&str] = &[
    "--limit-train",
    "1024",
    "--limit-test",
    "256",
    "--batch-size",
    "32",
    "--epochs",
    "2",
];

fn args(dir: &Path, extra: &[&str]) -> Args {
    common::args("mnist", dir, BASE, extra)
}

#[test]
fn two_workers_train_to_the_accuracy_band_of_one() {
    let one_dir = scratch("mnist-one-device");
    let one = run(args(&one_dir, &[])).unwrap();
    let two_dir = scratch("mnist-two-devices");
    let two = run(args(&two_dir, &["--devices", "flex,flex"])).unwrap();
    assert_eq!(two.devices, ["flex", "flex"]);
    assert_eq!(one.devices, ["flex"]);
    // Each step takes one batch per device: half the steps per epoch, the same images.
    assert_eq!(two.train_images, one.train_images);
    assert!(
        one.test_accuracy > 0.5 && two.test_accuracy > 0.5,
        "one device {}, two {}",
        one.test_accuracy,
        two.test_accuracy
    );
    assert!(
        (one.test_accuracy - two.test_accuracy).abs() < 0.15,
        "one device {}, two {}",
        one.test_accuracy,
        two.test_accuracy
    );
    // The packed model of the two-device run evaluates to what training reported.
    let packed = two_dir.join("model-packed.bpk");
    let eval = run(args(&two_dir, &["--eval", packed.to_str().unwrap()])).unwrap();
    assert_eq!(eval.test_accuracy, two.test_accuracy);
    std::fs::remove_dir_all(&one_dir).ok();
    std::fs::remove_dir_all(&two_dir).ok();
}

#[test]
fn unknown_devices_are_refused_by_name() {
    let dir = scratch("mnist-bad-device");
    let err = run(args(&dir, &["--devices", "flex,wgpu:x"])).unwrap_err();
    assert!(err.to_string().contains("wgpu:x"), "{err}");
    let err = run(args(&dir, &["--devices", "tpu"])).unwrap_err();
    assert!(err.to_string().contains("unknown device \"tpu\""), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
