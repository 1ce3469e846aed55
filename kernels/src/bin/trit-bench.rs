//! `cargo run --release -p ternary-kernels --features report --bin trit-bench -- --help`:
//! the trit kernel report (see `ternary_kernels::trit_report`).

use clap::Parser;
use ternary_kernels::trit_report::{TritReportArgs, run};

#[derive(Parser)]
#[command(
    about = "Trit kernel report: packed trit ops vs byte-per-trit i8 loops, same run, medians"
)]
struct Cli {
    #[command(flatten)]
    report: TritReportArgs,
}

fn main() {
    run(&Cli::parse().report);
}
