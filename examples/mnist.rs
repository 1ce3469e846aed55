//! `cargo run --release --example mnist -- --help`
//!
//! Trains a ternary CNN on MNIST with burn-train, packs it to 2-bit weights, and reports the
//! packed model's test accuracy (see `training::Args` for every flag).

use clap::Parser;

fn main() {
    let args = training::Args::parse();
    if let Err(e) = training::mnist::run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
