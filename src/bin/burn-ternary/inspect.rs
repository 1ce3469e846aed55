//! `burn-ternary inspect`: the tensors of a file, one line each.

use std::path::PathBuf;

use burn_ternary::import::ImportError;
use burn_ternary::import::container;

use crate::human;

pub(crate) fn run(file: PathBuf) -> Result<(), ImportError> {
    let tensors = container::inspect(&file)?;
    println!(
        "{:<40} {:>18} {:>20} {:>9} {:>12} {:>11}",
        "tensor", "shape", "format", "bits/w", "scales", "bytes"
    );
    for t in &tensors {
        println!(
            "{:<40} {:>18} {:>20} {:>9.2} {:>12} {:>11}",
            t.name,
            format!("{:?}", t.shape),
            t.format,
            t.bits_per_weight,
            t.scale_kind,
            human(t.bytes)
        );
    }
    let total: u64 = tensors.iter().map(|t| t.bytes).sum();
    println!("{} tensors, {}", tensors.len(), human(total));
    Ok(())
}
