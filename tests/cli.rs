//! The `burn-ternary` binary: convert a fixture, read it back with inspect, fail cleanly on a
//! bad file.

use std::path::Path;
use std::process::Command;

use burn_ternary::kernels::format::gguf::GgufFile;

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
    // Exit status 2 is an error (1 is `verify`'s "the files differ", as with diff and cmp).
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).starts_with("error: "));
}

/// `convert --to gguf-tq2_0` then `verify`: exit 0 for the same weights, 1 and a named
/// tensor for different ones.
#[test]
fn verify_says_whether_two_files_hold_the_same_weights() {
    let dir = std::env::temp_dir().join(format!("bt-cli-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf/ternary.gguf");
    let packed = dir.join("t.safetensors");
    let back = dir.join("back.gguf");
    for (input, output, to) in [
        (&fixture, &packed, "packed"),
        (&packed, &back, "gguf-tq2_0"),
    ] {
        let run = bin()
            .args([
                "convert",
                input.to_str().unwrap(),
                "-o",
                output.to_str().unwrap(),
                "--to",
                to,
            ])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let verify = |a: &Path, b: &Path| {
        bin()
            .args(["verify", a.to_str().unwrap(), b.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let same = verify(&fixture, &back);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    // The same file with one weight of one tensor changed: that tensor is named, status 1.
    let mut bytes = std::fs::read(&back).unwrap();
    let at = {
        let file = GgufFile::parse(&bytes).unwrap();
        let t = file.tensor("blk.0.tq1_0.weight").unwrap();
        // Block 1 (scale 1; block 0 is all-zero with scale 0, where a code change is no change).
        (file.data_offset + t.offset) as usize + 66
    };
    let lane0 = bytes[at] & 3;
    bytes[at] = (bytes[at] & !3) | ((lane0 + 1) % 3);
    let changed = dir.join("changed.gguf");
    std::fs::write(&changed, bytes).unwrap();
    let differ = verify(&back, &changed);
    let text = String::from_utf8_lossy(&differ.stdout);
    assert_eq!(differ.status.code(), Some(1), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line("blk.0.tq1_0.weight").contains("DIFFERENT: 1 value(s)"),
        "{text}"
    );
    assert!(line("blk.0.tq2_0.weight").contains("identical"), "{text}");
    std::fs::remove_dir_all(dir).ok();
}

/// An output named .gguf without --to is not silently written as safetensors.
#[test]
fn a_gguf_name_without_a_gguf_type_is_refused() {
    let dir = std::env::temp_dir().join(format!("bt-cli-gguf-name-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf/ternary.gguf");
    let out = dir.join("model.GGUF");
    let run = bin()
        .args([
            "convert",
            fixture.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--to gguf-tq2_0"));
    assert!(!out.exists());
    std::fs::remove_dir_all(dir).ok();
}
