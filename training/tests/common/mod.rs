//! What the smoke tests share: arguments for a tiny run on the shared data, and a scratch dir.

use std::path::{Path, PathBuf};

use clap::Parser;
use training::Args;

/// The small MNIST run of the smoke tests: 1 024 training and 256 test images, batch 64.
#[allow(dead_code)] // not every test binary that shares this module uses it
pub const SMALL_MNIST: &[&str] = &[
    "--limit-train",
    "1024",
    "--limit-test",
    "256",
    "--batch-size",
    "64",
];

/// `--data-dir ../shared/data/<set> --artifact-dir <dir>` plus `base` and `extra` flags.
pub fn args(set: &str, dir: &Path, base: &[&str], extra: &[&str]) -> Args {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(set);
    let mut v = vec![
        set.to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--artifact-dir".into(),
        dir.display().to_string(),
    ];
    v.extend(base.iter().chain(extra).map(|s| s.to_string()));
    Args::parse_from(v)
}

/// An empty directory under the system temp dir, unique to this process.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bt-smoke-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}
