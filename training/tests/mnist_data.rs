//! The IDX reader on the real files and on corrupt ones.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use training::DataError;
use training::data::{Mnist, Split};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/mnist")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bt-mnist-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::File::create(dir.join(name))
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn reads_the_real_test_split() {
    let test = Mnist::load(&shared(), Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    let first = test.get(0).unwrap();
    assert_eq!(first.label, 7, "the first MNIST test digit is a 7");
    assert_eq!(first.image.len(), 784);
    assert_eq!(test.limit(Some(10)).len(), 10);
}

#[test]
fn corrupt_files_name_the_file_and_the_problem() {
    let d = scratch("corrupt");
    let img = idx(0x803, &[2, 28, 28], &[0u8; 2 * 784]);
    let lab = idx(0x801, &[2], &[1, 2]);
    write(&d, "t10k-images-idx3-ubyte", &img);
    write(&d, "t10k-labels-idx1-ubyte", &lab);
    assert_eq!(Mnist::load(&d, Split::Test).unwrap().len(), 2);

    let check = |e: DataError, file: &str, words: &str| {
        let msg = e.to_string();
        assert!(msg.contains(file) && msg.contains(words), "{msg}");
    };
    write(&d, "t10k-images-idx3-ubyte", &img[..img.len() - 5]);
    check(
        Mnist::load(&d, Split::Test).unwrap_err(),
        "t10k-images",
        "truncated",
    );
    write(
        &d,
        "t10k-images-idx3-ubyte",
        &idx(0x802, &[2, 28, 28], &[0u8; 2 * 784]),
    );
    check(
        Mnist::load(&d, Split::Test).unwrap_err(),
        "t10k-images",
        "magic",
    );
    write(&d, "t10k-images-idx3-ubyte", &img[..7]);
    check(
        Mnist::load(&d, Split::Test).unwrap_err(),
        "t10k-images",
        "shorter",
    );
    write(&d, "t10k-images-idx3-ubyte", &img);
    write(&d, "t10k-labels-idx1-ubyte", &idx(0x801, &[3], &[1, 2, 3]));
    check(
        Mnist::load(&d, Split::Test).unwrap_err(),
        "t10k-labels",
        "3 labels for 2 images",
    );
    write(&d, "t10k-labels-idx1-ubyte", &idx(0x801, &[2], &[1, 12]));
    check(
        Mnist::load(&d, Split::Test).unwrap_err(),
        "t10k-labels",
        "not a digit",
    );
    write(&d, "t10k-labels-idx1-ubyte.gz", b"\x1f\x8b\x08\x00garbage");
    check(
        Mnist::load(&d, Split::Test).unwrap_err(),
        "t10k-labels-idx1-ubyte.gz",
        "gzip",
    );
    std::fs::remove_dir_all(&d).ok();
    let missing = Mnist::load(&scratch("missing"), Split::Train).unwrap_err();
    assert!(
        missing.to_string().contains("train-images-idx3-ubyte"),
        "{missing}"
    );
}
