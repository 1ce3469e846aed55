//! The import entry points on arbitrary bytes, as a `.safetensors`, a `.pt` and a packed
//! container file: every outcome is a value or a typed error, never a panic or a hang.
#![no_main]

use std::path::PathBuf;

use burn_ternary::import::container::inspect;
use burn_ternary::import::{ImportOptions, read_raw};
use libfuzzer_sys::fuzz_target;

fn scratch(ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bt-fuzz-{}.{ext}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    for ext in ["safetensors", "pt"] {
        let path = scratch(ext);
        std::fs::write(&path, data).expect("scratch file");
        let _ = read_raw(&path, &ImportOptions::new());
        let _ = inspect(&path);
    }
});
