//! A packed MNIST model evaluated through a Remote device (a `burn-remote` server with the
//! ternary ops, on loopback) scores exactly what it scores locally, and `--devices` trains
//! on two Remote devices. Its own test binary: hosting a server switches Burn's runtime kind
//! for the whole process.

mod common;

use std::net::TcpListener;
use std::path::Path;

use burn::server::WebSocketTransport;
use burn::tensor::Device;
use common::scratch;
use training::Args;
use training::mnist::run;

fn args(dir: &Path, extra: &[&str]) -> Args {
    common::args("mnist", dir, common::SMALL_MNIST, extra)
}

#[test]
fn a_packed_mnist_model_scores_the_same_through_a_remote_device() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    // Two devices, so that `--devices` can train on two remote ones.
    let server =
        burn_ternary::device::ternary_server(vec![Device::flex(), Device::flex()]).unwrap();
    // Serves until this test process exits.
    std::thread::spawn(move || server.serve(WebSocketTransport::from_listener(listener)));

    let dir = scratch("mnist-remote");
    let trained = run(args(&dir, &["--epochs", "1"])).unwrap();
    let packed = dir.join("model-packed.bpk");
    let packed = packed.to_str().unwrap();
    let local = run(args(&dir, &["--eval", packed])).unwrap();
    let remote = run(args(&dir, &["--eval", packed, "--device", &url])).unwrap();
    assert_eq!(local.test_accuracy, trained.test_accuracy);
    assert_eq!(remote.test_accuracy, local.test_accuracy);
    assert_eq!(remote.device, url);
    // A model that learned something, so that equal scores mean equal predictions broadly.
    assert!(local.test_accuracy > 0.3, "{}", local.test_accuracy);
    std::fs::remove_dir_all(&dir).ok();

    // Data-parallel training on the server's two devices: the workers' forward and backward
    // passes run there.
    let dir = scratch("mnist-remote-2");
    let devices = format!("{url}#0,{url}#1");
    let two = run(args(&dir, &["--epochs", "1", "--devices", &devices])).unwrap();
    assert_eq!(two.devices, [format!("{url}#0"), format!("{url}#1")]);
    // One epoch on 1024 images lands near the single-device run (the same band as
    // `multi_device.rs` allows two in-process workers).
    assert!(
        (two.test_accuracy - trained.test_accuracy).abs() < 0.15 && two.test_accuracy > 0.3,
        "two remote devices {} vs one local {}",
        two.test_accuracy,
        trained.test_accuracy
    );
    std::fs::remove_dir_all(&dir).ok();
}
