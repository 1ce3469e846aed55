//! A packed MNIST model evaluated through a Remote device (a `burn-remote` server with the
//! ternary ops, on loopback) scores exactly what it scores locally. Its own test binary:
//! hosting a server switches Burn's runtime kind for the whole process.

mod common;

use std::net::TcpListener;
use std::path::Path;

use burn::server::WebSocketTransport;
use burn::tensor::Device;
use common::scratch;
use training::Args;
use training::mnist::run;

fn args(dir: &Path, extra: &[&str]) -> Args {
    let base = [
        "--limit-train",
        "1024",
        "--limit-test",
        "256",
        "--batch-size",
        "64",
    ];
    common::args("mnist", dir, &base, extra)
}

#[test]
fn a_packed_mnist_model_scores_the_same_through_a_remote_device() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let server = burn_ternary::device::ternary_server(vec![Device::flex()]).unwrap();
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
}
