//! The CIFAR-10 loop end to end on a tiny subset: train, pack, evaluate, resume after a stop.

mod common;

use std::path::Path;

use common::scratch;
use training::Args;
use training::cifar::run;

const BASE: &[&str] = &[
    "--limit-train",
    "256",
    "--limit-test",
    "128",
    "--batch-size",
    "32",
];

fn args(dir: &Path, extra: &[&str]) -> Args {
    common::args("cifar10", dir, BASE, extra)
}

#[test]
fn trains_packs_evaluates_and_resumes() {
    let dir = scratch("cifar");
    let first = run(args(&dir, &["--epochs", "1"])).unwrap();
    assert_eq!(first.dataset, "CIFAR-10");
    assert_eq!((first.train_images, first.test_images), (256, 128));
    assert_eq!(first.epoch_seconds.len(), 1);
    assert!(first.packed_model_bytes > 0 && first.packed_model_bytes * 5 < first.f32_model_bytes);
    assert!(
        run(args(&dir, &["--epochs", "2"])).is_err(),
        "must not clobber checkpoints"
    );
    let second = run(args(&dir, &["--epochs", "2", "--resume"])).unwrap();
    assert!(dir.join("checkpoint/model-2.bpk").exists());
    assert_eq!(
        second.epoch_seconds.len(),
        1,
        "only the resumed epoch ran here"
    );
    let packed = dir.join("model-packed.bpk");
    let eval = run(args(&dir, &["--eval", packed.to_str().unwrap()])).unwrap();
    assert_eq!(eval.test_accuracy, second.test_accuracy);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["test_accuracy"], second.test_accuracy);
    std::fs::remove_dir_all(&dir).ok();
}
