//! `cargo run --release --example mnist -- --help`
//!
//! Trains a ternary CNN on MNIST with burn-train, packs it to 2-bit weights, and reports the
//! packed model's test accuracy (see `training::Args` for every flag).

const ABOUT: &str = "Train a ternary CNN on MNIST (ternary weights trained with a \
straight-through estimator through burn-train), pack it to 2-bit weights, and report the \
packed model's test accuracy. --full-precision trains the same architecture in f32 instead.";

fn main() {
    let args = training::Args::parse_for("mnist", ABOUT);
    if let Err(e) = training::mnist::run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
