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

/// Batches logged in `epoch` (burn-train writes one `value,1` line per batch and a `final`
/// line) and the number of distinct learning-rate values among them (one per optimizer step,
/// the cosine schedule never repeating a value).
fn lr_log(dir: &Path, epoch: usize) -> (usize, usize) {
    let log = dir.join(format!("train/epoch-{epoch}/Learning_Rate.log"));
    let values: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .lines()
        .filter_map(|l| l.strip_suffix(",1").map(str::to_string))
        .collect();
    let steps = 1 + values.windows(2).filter(|w| w[0] != w[1]).count();
    (values.len(), steps)
}

#[test]
fn two_workers_train_to_the_accuracy_band_of_one() {
    let one_dir = scratch("mnist-one-device");
    let one = run(args(&one_dir, &[])).unwrap();
    let two_dir = scratch("mnist-two-devices");
    let two = run(args(&two_dir, &["--devices", "flex,flex"])).unwrap();
    assert_eq!(two.devices, ["flex", "flex"]);
    assert_eq!(one.devices, ["flex"]);
    // Each step takes one batch per device: the same images, half the optimizer steps. The
    // learning-rate log has one line per batch (1 024 / 32 = 32 per epoch either way); the
    // rate changes at every optimizer step: 32 values on one device, 16 on two.
    assert_eq!(two.train_images, one.train_images);
    let (batches_one, steps_one) = lr_log(&one_dir, 1);
    let (batches_two, steps_two) = lr_log(&two_dir, 1);
    assert_eq!((batches_one, steps_one), (32, 32));
    assert_eq!((batches_two, steps_two), (32, 16));
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
