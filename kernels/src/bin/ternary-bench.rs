//! `cargo run --release -p ternary-kernels --bin ternary-bench -- --help`: the kernel report
//! (see `ternary_kernels::report`).

use clap::Parser;
use ternary_kernels::report::{ReportArgs, run};

#[derive(Parser)]
#[command(about = "Ternary kernel report: ours vs an f32 gemm baseline, same run, medians")]
struct Cli {
    #[command(flatten)]
    report: ReportArgs,
}

fn main() {
    run(&Cli::parse().report);
}
