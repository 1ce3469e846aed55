//! CIFAR-10 in the official binary layout: `cifar-10-batches-bin/` with `data_batch_N.bin`
//! (training) and `test_batch.bin`, each a run of 3073-byte records (1 label byte, then 1024
//! red, 1024 green and 1024 blue bytes, rows top to bottom). Read from the extracted folder or
//! straight from the `.tar.gz` archive, with any number of batch files and records.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Tensor, TensorData};

use crate::data::{DataError, ImageBatch, Split};
use crate::download::{Remote, fetch};
use crate::model::Precision;
use crate::resnet::ResNet20;
use crate::run::{Args, Defaults, Optimizer, Summary, Task};

/// Bytes of one image (3 planes of 32×32).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: the label, then the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// The folder inside the official archive.
pub const FOLDER: &str = "cifar-10-batches-bin";
/// Class names, in label order.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The official binary archive (size and MD5 as the CIFAR page lists them).
pub const REMOTE: Remote = Remote {
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    file: "cifar-10-binary.tar.gz",
    size: 170_052_171,
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
};

/// Largest member accepted from an archive (a full batch file is 30 730 000 bytes); a larger
/// declared size is refused before anything is read.
const MAX_MEMBER: u64 = 1 << 30;

/// CIFAR-10 images (u8, planar RGB 3×32×32) and labels.
#[derive(Debug, Clone)]
pub struct Cifar10 {
    images: Arc<Vec<u8>>,
    labels: Arc<Vec<u8>>,
    len: usize,
}

/// The member file name of a split's batch, or `None` for other files. Training batches sort
/// by their number.
fn member_key(name: &str, split: Split) -> Option<u32> {
    match split {
        Split::Test => (name == "test_batch.bin").then_some(0),
        Split::Train => name
            .strip_prefix("data_batch_")?
            .strip_suffix(".bin")?
            .parse()
            .ok(),
    }
}

/// The archives in `dir` worth opening: the official name first, then any other `*.tar.gz`.
fn archives(dir: &Path) -> Vec<PathBuf> {
    let official = dir.join(REMOTE.file);
    let mut others: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p != &official && p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    others.sort();
    std::iter::once(official)
        .filter(|p| p.is_file())
        .chain(others)
        .collect()
}

/// True when `dir` holds the extracted folder, the batch files themselves, or an archive.
pub fn present(dir: &Path) -> bool {
    dir.join(FOLDER).is_dir() || dir.join("test_batch.bin").is_file() || !archives(dir).is_empty()
}

/// Downloads the official archive into `dir` unless it is there.
pub fn download(dir: &Path) -> Result<(), DataError> {
    fetch(&REMOTE, dir).map(|_| ())
}

/// Checks a member's bytes and appends its records.
fn add_records(
    origin: &str,
    bytes: &[u8],
    images: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<(), DataError> {
    let bad = |what: String| DataError::Corrupt {
        path: PathBuf::from(origin),
        what,
    };
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(bad(format!(
            "{} bytes is not a whole number of {RECORD_BYTES}-byte records (truncated?)",
            bytes.len()
        )));
    }
    for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        if record[0] > 9 {
            return Err(bad(format!(
                "record {i}: label {} is not a class (0..=9)",
                record[0]
            )));
        }
        labels.push(record[0]);
        images.extend_from_slice(&record[1..]);
    }
    Ok(())
}

impl Cifar10 {
    /// Loads a split from `dir`: the folder `cifar-10-batches-bin/` (or its files directly in
    /// `dir`), else the archive `cifar-10-binary.tar.gz` (or any other `*.tar.gz` holding that
    /// folder). Training uses every `data_batch_N.bin`, in order of N.
    pub fn load(dir: &Path, split: Split) -> Result<Self, DataError> {
        let folder = if dir.join(FOLDER).is_dir() {
            Some(dir.join(FOLDER))
        } else {
            dir.join("test_batch.bin")
                .is_file()
                .then(|| dir.to_path_buf())
        };
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        match folder {
            Some(folder) => Self::read_folder(&folder, split, &mut images, &mut labels)?,
            None => {
                let Some(archive) = archives(dir).into_iter().next() else {
                    return Err(DataError::Io {
                        path: dir.join(REMOTE.file),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("no {FOLDER}/ folder and no .tar.gz archive"),
                        ),
                    });
                };
                Self::read_archive(&archive, split, &mut images, &mut labels)?;
            }
        }
        let len = labels.len();
        Ok(Self {
            images: Arc::new(images),
            labels: Arc::new(labels),
            len,
        })
    }

    fn missing(path: PathBuf, split: Split) -> DataError {
        DataError::Corrupt {
            path,
            what: match split {
                Split::Train => "holds no data_batch_N.bin".into(),
                Split::Test => "holds no test_batch.bin".into(),
            },
        }
    }

    fn read_folder(
        folder: &Path,
        split: Split,
        images: &mut Vec<u8>,
        labels: &mut Vec<u8>,
    ) -> Result<(), DataError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DataError::Io { path, source }
        };
        let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(folder)
            .map_err(io(folder))?
            .filter_map(|e| {
                let path = e.ok()?.path();
                let key = member_key(path.file_name()?.to_str()?, split)?;
                Some((key, path))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Self::missing(folder.to_path_buf(), split));
        }
        for (_, path) in files {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            add_records(&path.display().to_string(), &bytes, images, labels)?;
        }
        Ok(())
    }

    fn read_archive(
        archive: &Path,
        split: Split,
        images: &mut Vec<u8>,
        labels: &mut Vec<u8>,
    ) -> Result<(), DataError> {
        let corrupt = |what: String| DataError::Corrupt {
            path: archive.to_path_buf(),
            what,
        };
        let file = std::fs::File::open(archive).map_err(|source| DataError::Io {
            path: archive.to_path_buf(),
            source,
        })?;
        let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
        let mut tar = tar::Archive::new(gz);
        let mut members = Vec::new();
        let entries = tar
            .entries()
            .map_err(|e| corrupt(format!("not a tar.gz archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| corrupt(format!("bad archive entry: {e}")))?;
            let path = entry
                .path()
                .map_err(|e| corrupt(format!("bad member name: {e}")))?
                .into_owned();
            let in_folder = path
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|f| f == FOLDER);
            let key = path
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| member_key(f, split));
            let (true, Some(key)) = (in_folder, key) else {
                continue;
            };
            let origin = format!("{}: {}", archive.display(), path.display());
            let size = entry.size();
            if size > MAX_MEMBER {
                return Err(DataError::Corrupt {
                    path: PathBuf::from(origin),
                    what: format!("declares {size} bytes, more than any CIFAR-10 file"),
                });
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| corrupt(format!("{}: {e} (truncated archive?)", path.display())))?;
            if bytes.len() as u64 != size {
                return Err(corrupt(format!(
                    "{}: {} of {size} bytes (truncated archive)",
                    path.display(),
                    bytes.len()
                )));
            }
            members.push((key, origin, bytes));
        }
        members.sort_by_key(|m| m.0);
        if members.is_empty() {
            return Err(Self::missing(archive.to_path_buf(), split));
        }
        for (_, origin, bytes) in members {
            add_records(&origin, &bytes, images, labels)?;
        }
        Ok(())
    }

    /// Keeps the first `n` examples.
    pub fn limit(mut self, n: Option<usize>) -> Self {
        if let Some(n) = n.filter(|&n| n < self.len) {
            self.len = n;
        }
        self
    }

    /// Examples per class.
    pub fn class_counts(&self) -> [usize; 10] {
        let mut c = [0; 10];
        for &l in &self.labels[..self.len] {
            c[usize::from(l)] += 1;
        }
        c
    }
}

/// One example.
#[derive(Debug, Clone)]
pub struct CifarItem {
    /// 3072 bytes, planar RGB.
    pub image: Vec<u8>,
    /// 0..=9 (see [`CLASSES`]).
    pub label: u8,
}

impl Dataset<CifarItem> for Cifar10 {
    fn get(&self, index: usize) -> Result<CifarItem, DatasetError> {
        if index >= self.len {
            return Err(DatasetError::new(std::io::Error::other(format!(
                "index {index} out of range for {} examples",
                self.len
            ))));
        }
        Ok(CifarItem {
            image: self.images[index * IMAGE_BYTES..(index + 1) * IMAGE_BYTES].to_vec(),
            label: self.labels[index],
        })
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// Per-channel mean and standard deviation of the CIFAR-10 training set.
const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// Turns items into a normalised `[b, 3, 32, 32]` batch; with augmentation, each image is
/// randomly cropped from its 4-pixel zero-padded version (padding at the channel mean) and
/// flipped horizontally with probability ½.
#[derive(Debug, Clone, Default)]
pub struct CifarBatcher {
    augment: Option<Augment>,
}

/// The random stream of the augmentation: a seed and a counter shared by the loader's workers.
#[derive(Debug, Clone)]
struct Augment {
    seed: u64,
    counter: Arc<AtomicU64>,
}

/// SplitMix64: a small, well-mixed generator, enough to draw crops and flips.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl CifarBatcher {
    /// Without augmentation (evaluation).
    pub fn plain() -> Self {
        Self::default()
    }

    /// With random crops and flips drawn from `seed`.
    pub fn augmenting(seed: u64) -> Self {
        Self {
            augment: Some(Augment {
                seed,
                counter: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    /// Writes the normalised, possibly shifted and mirrored image into `out` (3072 floats):
    /// output pixel `(y, x)` reads source `(y + dy, x' + dx)` where `x'` is `x` or `31 − x`;
    /// outside the source it is 0 (the mean).
    fn write_image(image: &[u8], dy: isize, dx: isize, flip: bool, out: &mut [f32]) {
        for c in 0..3 {
            let plane = &image[c * 1024..(c + 1) * 1024];
            for y in 0..32isize {
                for x in 0..32isize {
                    let sx = if flip { 31 - x } else { x } + dx;
                    let sy = y + dy;
                    let v = if (0..32).contains(&sy) && (0..32).contains(&sx) {
                        (f32::from(plane[(sy * 32 + sx) as usize]) / 255.0 - MEAN[c]) / STD[c]
                    } else {
                        0.0
                    };
                    out[c * 1024 + (y * 32 + x) as usize] = v;
                }
            }
        }
    }
}

impl Batcher<CifarItem, ImageBatch> for CifarBatcher {
    fn batch(&self, items: Vec<CifarItem>, device: &Device) -> ImageBatch {
        let b = items.len();
        let mut pixels = vec![0f32; b * IMAGE_BYTES];
        for (item, out) in items.iter().zip(pixels.chunks_exact_mut(IMAGE_BYTES)) {
            let (dy, dx, flip) = match &self.augment {
                Some(a) => {
                    let r = splitmix(a.seed ^ splitmix(a.counter.fetch_add(1, Ordering::Relaxed)));
                    (
                        (r % 9) as isize - 4,
                        ((r >> 8) % 9) as isize - 4,
                        (r >> 16) & 1 == 1,
                    )
                }
                None => (0, 0, false),
            };
            Self::write_image(&item.image, dy, dx, flip, out);
        }
        let labels: Vec<i64> = items.iter().map(|it| i64::from(it.label)).collect();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, [b, 3, 32, 32]), device),
            targets: Tensor::from_data(TensorData::new(labels, [b]), device),
        }
    }
}

/// CIFAR-10 with ResNet-20.
#[derive(Debug, Clone, Copy)]
pub struct Cifar10Task;

impl Task for Cifar10Task {
    const NAME: &'static str = "CIFAR-10";
    const KEY: &'static str = "cifar10";
    type Item = CifarItem;
    type Data = Cifar10;
    type Batcher = CifarBatcher;
    type Model = ResNet20;

    fn defaults() -> Defaults {
        Defaults {
            epochs: 15,
            batch_size: 64,
            optimizer: Optimizer::Adam,
            adam_lr: 3e-3,
            sgd_lr: 0.1,
        }
    }

    fn present(dir: &Path) -> bool {
        present(dir)
    }

    fn download(dir: &Path) -> Result<(), DataError> {
        download(dir)
    }

    fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<Cifar10, DataError> {
        Ok(Cifar10::load(dir, split)?.limit(limit))
    }

    fn batcher(split: Split, seed: u64) -> CifarBatcher {
        match split {
            Split::Train => CifarBatcher::augmenting(seed),
            Split::Test => CifarBatcher::plain(),
        }
    }

    fn model(precision: Precision, args: &Args, device: &Device) -> ResNet20 {
        ResNet20::new(
            precision,
            args.width.max(1),
            CLASSES.len(),
            args.activation(),
            device,
        )
    }

    fn describe(precision: Precision, args: &Args) -> String {
        format!(
            "ResNet-20 (width ×{}), random crop + flip, {}{}",
            args.width.max(1),
            precision.describe(),
            args.describe_activations(precision)
        )
    }
}

/// Trains (or, with `--eval`, evaluates) ResNet-20 on CIFAR-10.
pub fn run(args: Args) -> Result<Summary, Box<dyn std::error::Error>> {
    crate::run::run::<Cifar10Task>(args)
}
