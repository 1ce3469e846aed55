//! The `burn-ternary` binary: convert a fixture, read it back with inspect, fail cleanly on a
//! bad file.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_burn-ternary"))
}

#[test]
fn convert_is_much_smaller_than_f16_and_inspect_reads_it_back() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ffn_f16.safetensors");
    let dir = std::env::temp_dir().join(format!("bt-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("ffn.ternary.safetensors");
    let run = bin()
        .args([
            "convert",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // "total: ... (… ) -> … file (7.80x smaller than f16, …)"
    let ratio: f64 = stdout
        .split("x smaller than f16")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ratio in:\n{stdout}"));
    assert!(ratio >= 7.5, "only {ratio}x smaller than f16:\n{stdout}");
    assert!(stdout.contains("block.up.weight") && stdout.contains("ternary"));

    let inspect = bin()
        .args(["inspect", out.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{text}");
    let up = text
        .lines()
        .find(|l| l.starts_with("block.up.weight"))
        .unwrap();
    assert!(
        up.contains("[1024, 256]")
            && up.contains("i2 (2-bit ternary)")
            && up.contains("per-channel"),
        "{up}"
    );
    let bias = text
        .lines()
        .find(|l| l.starts_with("block.up.bias"))
        .unwrap();
    assert!(bias.contains("F16"), "{bias}");
}

#[test]
fn a_bad_input_is_an_error_message_not_a_crash() {
    let dir = std::env::temp_dir().join(format!("bt-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.pt");
    std::fs::write(&bad, b"garbage").unwrap();
    let run = bin()
        .args(["inspect", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).starts_with("error: "));
}
