//! `cargo run --release --example cifar10 -- --help`
//!
//! Trains a ternary ResNet-20 on CIFAR-10 (official binary archive; random crop + flip, cosine
//! learning rate) with burn-train, packs it to 2-bit weights, and reports the packed model's
//! test accuracy (see `training::Args` for every flag).

const ABOUT: &str = "Train a ternary ResNet-20 on CIFAR-10 (official binary archive; random \
crop + flip, cosine learning rate; burn-train), pack it to 2-bit weights, and report the packed \
model's test accuracy. --full-precision trains the same architecture in f32 instead.";

fn main() {
    let args = training::Args::parse_for("cifar10", ABOUT);
    if let Err(e) = training::cifar::run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
