//! `burn-ternary verify A B`: do two files (any formats `convert` reads) hold the same weights?

use std::path::Path;
use std::process::ExitCode;

use burn_ternary::import::model_file::{self, Comparison};
use burn_ternary::import::{ImportError, ImportOptions};

/// Prints one line per tensor name of either file and returns exit status 0 when every tensor
/// is in both files with identical effective content, 1 otherwise.
pub(crate) fn run(a: &Path, b: &Path) -> Result<ExitCode, ImportError> {
    let fa = model_file::read(a, &ImportOptions::new())?;
    let fb = model_file::read(b, &ImportOptions::new())?;
    let mut names: Vec<&String> = fa.tensors.keys().chain(fb.tensors.keys()).collect();
    names.sort();
    names.dedup();
    let mut differ = 0usize;
    for name in &names {
        let line = match (fa.tensors.get(*name), fb.tensors.get(*name)) {
            (Some(x), Some(y)) => match model_file::compare(x, y) {
                Comparison::Identical => "identical".to_string(),
                Comparison::Shape(sa, sb) => format!("DIFFERENT shapes: {sa:?} vs {sb:?}"),
                Comparison::Values {
                    index,
                    a,
                    b,
                    max_abs,
                    count,
                } => format!(
                    "DIFFERENT: {count} value(s) differ, first at flat index {index} ({a} vs {b}), max |difference| {max_abs:e}"
                ),
                Comparison::Bytes => "DIFFERENT dtype or bytes".to_string(),
            },
            (Some(_), None) => format!("only in {}", a.display()),
            (None, _) => format!("only in {}", b.display()),
        };
        if line != "identical" {
            differ += 1;
        }
        println!("{name:<48} {line}");
    }
    if differ == 0 {
        println!("{} tensors: identical effective weights", names.len());
        Ok(ExitCode::SUCCESS)
    } else {
        let alone = names
            .iter()
            .filter(|n| fa.tensors.contains_key(**n) != fb.tensors.contains_key(**n))
            .count();
        println!(
            "{} of {} tensors differ, {alone} are in one file only",
            differ - alone,
            names.len()
        );
        Ok(ExitCode::from(1))
    }
}
