//! The MNIST loop end to end on a tiny subset: train, pack, evaluate, resume after a stop.

mod common;

use std::path::Path;

use common::scratch;
use training::Args;
use training::mnist::run;

fn args(dir: &Path, extra: &[&str]) -> Args {
    common::args("mnist", dir, common::SMALL_MNIST, extra)
}

#[test]
fn trains_packs_evaluates_and_resumes() {
    let dir = scratch("mnist");
    // Epoch 1, then a "stop".
    let first = run(args(&dir, &["--epochs", "1"])).unwrap();
    assert_eq!(first.epoch_seconds.len(), 1);
    assert!(first.packed_model_bytes > 0 && first.packed_model_bytes < first.f32_model_bytes);
    // Starting over without --resume must not clobber the checkpoints.
    assert!(run(args(&dir, &["--epochs", "2"])).is_err());
    // Resume and finish epoch 2.
    let second = run(args(&dir, &["--epochs", "2", "--resume"])).unwrap();
    assert!(dir.join("checkpoint/model-2.bpk").exists());
    assert!(
        second.test_accuracy > 0.5,
        "2 epochs on 1024 images: {}",
        second.test_accuracy
    );
    // --eval recomputes exactly the accuracy training reported.
    let packed = dir.join("model-packed.bpk");
    let eval = run(args(&dir, &["--eval", packed.to_str().unwrap()])).unwrap();
    assert_eq!(eval.test_accuracy, second.test_accuracy);
    // The model was trained with int8 activations (the default): evaluating it with exact
    // f32 activations is refused, not silently run another way.
    let err = run(args(
        &dir,
        &["--eval", packed.to_str().unwrap(), "--activations", "f32"],
    ))
    .unwrap_err();
    assert!(err.to_string().contains("--activations int8"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
