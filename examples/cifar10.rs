//! `cargo run --release --example cifar10 -- --help`
//!
//! Trains a ternary ResNet-20 on CIFAR-10 (official binary archive; random crop + flip, cosine
//! learning rate) with burn-train, packs it to 2-bit weights, and reports the packed model's
//! test accuracy (see `training::Args` for every flag).

use clap::Parser;

fn main() {
    let args = training::Args::parse();
    if let Err(e) = training::cifar::run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
