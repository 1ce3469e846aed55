//! The CIFAR-10 reader on the shared subset archive, on folders and archives with any number of
//! batch files, and on corrupt inputs.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use training::DataError;
use training::cifar::{Cifar10, CifarBatcher, FOLDER, RECORD_BYTES};
use training::data::Split;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/cifar10")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bt-cifar-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `n` records whose label is `label0 + i` mod 10 and whose pixels are all `fill`.
fn records(n: usize, label0: u8, fill: u8) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push((label0 + i as u8) % 10);
        v.extend(std::iter::repeat_n(fill, RECORD_BYTES - 1));
    }
    v
}

fn targz(path: &Path, members: &[(&str, Vec<u8>)]) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

fn corrupt_message(e: DataError) -> String {
    match e {
        DataError::Corrupt { .. } => e.to_string(),
        other => panic!("expected a Corrupt error, got {other:?}"),
    }
}

#[test]
fn reads_the_shared_subset_archive() {
    let train = Cifar10::load(&shared(), Split::Train).unwrap();
    let test = Cifar10::load(&shared(), Split::Test).unwrap();
    assert_eq!(train.len(), 5000);
    assert_eq!(test.len(), 1000);
    assert_eq!(train.class_counts(), [500; 10]);
    assert_eq!(test.class_counts(), [100; 10]);
    let item = test.get(3).unwrap();
    assert_eq!(item.image.len(), 3072);
    assert!(test.get(1000).is_err());
    assert_eq!(test.limit(Some(7)).len(), 7);
}

#[test]
fn folder_with_any_number_of_batches_in_numeric_order() {
    let d = scratch("folder");
    let f = d.join(FOLDER);
    std::fs::create_dir_all(&f).unwrap();
    // 10 sorts after 2 numerically, before it as text.
    std::fs::write(f.join("data_batch_10.bin"), records(1, 7, 30)).unwrap();
    std::fs::write(f.join("data_batch_2.bin"), records(2, 5, 20)).unwrap();
    std::fs::write(f.join("data_batch_1.bin"), records(3, 0, 10)).unwrap();
    std::fs::write(f.join("test_batch.bin"), records(1, 9, 40)).unwrap();
    std::fs::write(f.join("batches.meta.txt"), "airplane\n").unwrap();
    let train = Cifar10::load(&d, Split::Train).unwrap();
    let labels: Vec<u8> = (0..train.len())
        .map(|i| train.get(i).unwrap().label)
        .collect();
    assert_eq!(labels, [0, 1, 2, 5, 6, 7]);
    assert_eq!(train.get(5).unwrap().image[0], 30);
    let test = Cifar10::load(&d, Split::Test).unwrap();
    assert_eq!((test.len(), test.get(0).unwrap().label), (1, 9));
    // The folder itself works as --data-dir too.
    assert_eq!(Cifar10::load(&f, Split::Train).unwrap().len(), 6);
}

#[test]
fn archive_with_other_batch_counts() {
    let d = scratch("archive");
    targz(
        &d.join("cifar-10-binary.tar.gz"),
        &[
            ("cifar-10-batches-bin/batches.meta.txt", b"cat\n".to_vec()),
            ("cifar-10-batches-bin/data_batch_3.bin", records(4, 3, 1)),
            ("cifar-10-batches-bin/data_batch_1.bin", records(2, 1, 2)),
            ("cifar-10-batches-bin/test_batch.bin", records(5, 0, 3)),
            ("elsewhere/data_batch_2.bin", records(9, 0, 4)),
        ],
    );
    let train = Cifar10::load(&d, Split::Train).unwrap();
    let labels: Vec<u8> = (0..train.len())
        .map(|i| train.get(i).unwrap().label)
        .collect();
    assert_eq!(
        labels,
        [1, 2, 3, 4, 5, 6],
        "only the folder's batches, in order"
    );
    assert_eq!(Cifar10::load(&d, Split::Test).unwrap().len(), 5);
}

#[test]
fn corrupt_inputs_name_the_file_and_the_problem() {
    // A member that is not whole records.
    let d = scratch("partial");
    let mut short = records(2, 0, 0);
    short.truncate(RECORD_BYTES + 100);
    targz(
        &d.join("cifar-10-binary.tar.gz"),
        &[("cifar-10-batches-bin/data_batch_1.bin", short)],
    );
    let msg = corrupt_message(Cifar10::load(&d, Split::Train).unwrap_err());
    assert!(
        msg.contains("data_batch_1.bin") && msg.contains("3173 bytes"),
        "{msg}"
    );
    // No test batch in the archive.
    let msg = corrupt_message(Cifar10::load(&d, Split::Test).unwrap_err());
    assert!(msg.contains("no test_batch.bin"), "{msg}");

    // A label that is not a class.
    let d = scratch("label");
    let mut bad = records(3, 0, 0);
    bad[2 * RECORD_BYTES] = 11;
    std::fs::create_dir_all(d.join(FOLDER)).unwrap();
    std::fs::write(d.join(FOLDER).join("test_batch.bin"), bad).unwrap();
    let msg = corrupt_message(Cifar10::load(&d, Split::Test).unwrap_err());
    assert!(
        msg.contains("test_batch.bin") && msg.contains("record 2: label 11"),
        "{msg}"
    );

    // A truncated archive.
    let d = scratch("truncated");
    let path = d.join("cifar-10-binary.tar.gz");
    targz(
        &path,
        &[(
            "cifar-10-batches-bin/data_batch_1.bin",
            (0..200_000).map(|i| (i * 7 % 251) as u8).collect(),
        )],
    );
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = corrupt_message(Cifar10::load(&d, Split::Train).unwrap_err());
    assert!(msg.contains("cifar-10-binary.tar.gz"), "{msg}");

    // Not gzip at all.
    let d = scratch("garbage");
    std::fs::File::create(d.join("cifar-10-binary.tar.gz"))
        .unwrap()
        .write_all(b"this is not an archive")
        .unwrap();
    let msg = corrupt_message(Cifar10::load(&d, Split::Train).unwrap_err());
    assert!(msg.contains("cifar-10-binary.tar.gz"), "{msg}");

    // Nothing there.
    let d = scratch("empty");
    match Cifar10::load(&d, Split::Train).unwrap_err() {
        DataError::Io { path, source } => {
            assert!(path.ends_with("cifar-10-binary.tar.gz"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn batches_are_normalised_and_augmented_crops_are_shifted_flipped_copies() {
    let test = Cifar10::load(&shared(), Split::Test)
        .unwrap()
        .limit(Some(8));
    let items: Vec<_> = (0..8).map(|i| test.get(i).unwrap()).collect();
    let device = Device::flex();
    let plain = CifarBatcher::plain().batch(items.clone(), &device);
    assert_eq!(plain.images.dims(), [8, 3, 32, 32]);
    let px: Vec<f32> = plain.images.clone().into_data().try_to_vec().unwrap();
    // Red plane, pixel (0, 0) of image 0.
    let expect = (f32::from(items[0].image[0]) / 255.0 - 0.4914) / 0.2470;
    assert!((px[0] - expect).abs() < 1e-6);

    let aug = CifarBatcher::augmenting(7).batch(items.clone(), &device);
    let ax: Vec<f32> = aug.images.into_data().try_to_vec().unwrap();
    let mut moved = 0;
    for b in 0..8 {
        let (p, a) = (&px[b * 3072..][..3072], &ax[b * 3072..][..3072]);
        // Find the shift and flip that explain the augmented image.
        let found = (-4..=4isize)
            .flat_map(|dy| (-4..=4isize).map(move |dx| (dy, dx)))
            .flat_map(|(dy, dx)| [(dy, dx, false), (dy, dx, true)])
            .find(|&(dy, dx, flip)| {
                (0..3).all(|c| {
                    (0..32isize).all(|y| {
                        (0..32isize).all(|x| {
                            let sx = if flip { 31 - x } else { x } + dx;
                            let sy = y + dy;
                            let want = if (0..32).contains(&sy) && (0..32).contains(&sx) {
                                p[c * 1024 + (sy * 32 + sx) as usize]
                            } else {
                                0.0
                            };
                            a[c * 1024 + (y * 32 + x) as usize] == want
                        })
                    })
                })
            });
        let (dy, dx, flip) = found.unwrap_or_else(|| panic!("image {b} is not a crop/flip"));
        moved += usize::from(dy != 0 || dx != 0 || flip);
    }
    assert!(
        moved >= 6,
        "augmentation left {} of 8 images untouched",
        8 - moved
    );
}
