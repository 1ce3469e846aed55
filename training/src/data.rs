//! What every data set shares (errors, data directories, the image batch), and MNIST from
//! the four standard IDX files (`.gz` or raw), with errors that name the file.
//!
//! IDX: a big-endian header — magic `0x0000_0803` for images (u8, 3 dims: count, rows, cols)
//! or `0x0000_0801` for labels (u8, 1 dim: count) — then the bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Int, Tensor, TensorData};
use thiserror::Error;

use crate::download::{Remote, fetch};

/// A data file that cannot be used.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file is missing or unreadable.
    #[error("{path}: {source} (point --data-dir, or BURN_TERNARY_DATA, at the data set)")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file's contents are not what its format says.
    #[error("{path}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A download failed or delivered something other than the published file.
    #[error("downloading {url}: {what}")]
    Download {
        /// What was fetched.
        url: String,
        /// What went wrong.
        what: String,
    },
}

/// Environment variable naming the data root (holding `mnist/`, `cifar10/`) when
/// `--data-dir` is not given.
pub const DATA_ENV: &str = "BURN_TERNARY_DATA";

/// Pixels per MNIST image.
pub const PIXELS: usize = 28 * 28;

/// Where a data set is looked for when `--data-dir` is not given, and whether it may be
/// downloaded there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLocation {
    /// The directory.
    pub dir: PathBuf,
    /// True for the cache directory (download when absent); false for a copy found on disk.
    pub download: bool,
}

/// The default directory of data set `name` (`mnist`, `cifar10`): `$BURN_TERNARY_DATA/name`
/// when the variable is set; else `~/.cache/burn-ternary/name` when `present` says it holds
/// the files; else `../shared/data/name` (the copy shipped beside this repository for machines
/// without internet) when that holds them; else the cache directory, to download into.
pub fn default_location(name: &str, present: impl Fn(&Path) -> bool) -> DataLocation {
    if let Some(d) = std::env::var_os(DATA_ENV) {
        let dir = PathBuf::from(d).join(name);
        let download = !present(&dir);
        return DataLocation { dir, download };
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let cache = home.join(".cache/burn-ternary").join(name);
    if present(&cache) {
        return DataLocation {
            dir: cache,
            download: false,
        };
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(name);
    if present(&shared) {
        return DataLocation {
            dir: shared,
            download: false,
        };
    }
    DataLocation {
        dir: cache,
        download: true,
    }
}

/// The MNIST files as published (the PyTorch mirror of the original distribution; sizes and
/// MD5s of the `.gz` files as the original site lists them).
pub const MNIST_REMOTE: [Remote; 4] = [
    Remote {
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        file: "train-images-idx3-ubyte.gz",
        size: 9_912_422,
        md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    },
    Remote {
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
        file: "train-labels-idx1-ubyte.gz",
        size: 28_881,
        md5: "d53e105ee54ea40749a09fcbcd1e9432",
    },
    Remote {
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        file: "t10k-images-idx3-ubyte.gz",
        size: 1_648_877,
        md5: "9fb629c4189551a2d022fa330f9573f3",
    },
    Remote {
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        file: "t10k-labels-idx1-ubyte.gz",
        size: 4_542,
        md5: "ec29112dd5afa0611ce80d1b7f02629c",
    },
];

/// True when `dir` holds all four MNIST files (`.gz` or raw).
pub fn mnist_present(dir: &Path) -> bool {
    MNIST_REMOTE.iter().all(|r| {
        let raw = r.file.trim_end_matches(".gz");
        dir.join(r.file).exists() || dir.join(raw).exists()
    })
}

/// Downloads whichever MNIST files `dir` lacks.
pub fn download_mnist(dir: &Path) -> Result<(), DataError> {
    for r in &MNIST_REMOTE {
        if !dir.join(r.file.trim_end_matches(".gz")).exists() {
            fetch(r, dir)?;
        }
    }
    Ok(())
}

/// Reads a file, gunzipping it when its name ends in `.gz`; tries `name.gz`, then `name`.
fn read_maybe_gz(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>), DataError> {
    let gz = dir.join(format!("{name}.gz"));
    let (path, gzipped) = if gz.exists() {
        (gz, true)
    } else {
        (dir.join(name), false)
    };
    let io = |source| DataError::Io {
        path: path.clone(),
        source,
    };
    let raw = std::fs::read(&path).map_err(io)?;
    if !gzipped {
        return Ok((path, raw));
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| DataError::Corrupt {
            path: path.clone(),
            what: format!("bad gzip stream: {e}"),
        })?;
    Ok((path, out))
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an IDX file of `dims` dimensions with magic `magic`; returns (dims, payload).
fn parse_idx(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    dims: usize,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let bad = |what: String| DataError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let header = 4 + 4 * dims;
    if bytes.len() < header {
        return Err(bad(format!(
            "{} bytes is shorter than the {header}-byte IDX header",
            bytes.len()
        )));
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(bad(format!(
            "IDX magic {found:#010x}, expected {magic:#010x}"
        )));
    }
    let shape: Vec<usize> = (0..dims)
        .map(|d| be_u32(bytes, 4 + 4 * d) as usize)
        .collect();
    let expected = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    let payload = &bytes[header..];
    if payload.len() != expected {
        return Err(bad(format!(
            "header declares {shape:?} = {expected} bytes but the file holds {} (truncated or padded)",
            payload.len()
        )));
    }
    Ok((shape, payload.to_vec()))
}

/// Train or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 60 000 images.
    Train,
    /// 10 000 images.
    Test,
}

/// MNIST images (u8, row-major 28×28) and labels.
#[derive(Debug, Clone)]
pub struct Mnist {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Mnist {
    /// Loads a split from `dir` (the four official file names, `.gz` or not).
    pub fn load(dir: &Path, split: Split) -> Result<Self, DataError> {
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let (ip, ib) = read_maybe_gz(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let (lp, lb) = read_maybe_gz(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        let (ishape, images) = parse_idx(&ip, &ib, 0x0803, 3)?;
        let (lshape, labels) = parse_idx(&lp, &lb, 0x0801, 1)?;
        if ishape[1] != 28 || ishape[2] != 28 {
            return Err(DataError::Corrupt {
                path: ip,
                what: format!("images are {}x{}, expected 28x28", ishape[1], ishape[2]),
            });
        }
        if ishape[0] != lshape[0] {
            return Err(DataError::Corrupt {
                path: lp,
                what: format!(
                    "{} labels for {} images in {}",
                    lshape[0],
                    ishape[0],
                    ip.display()
                ),
            });
        }
        if let Some(i) = labels.iter().position(|&l| l > 9) {
            return Err(DataError::Corrupt {
                path: lp,
                what: format!("label {} at index {i} is not a digit", labels[i]),
            });
        }
        Ok(Self { images, labels })
    }

    /// Keeps the first `n` examples.
    pub fn limit(mut self, n: Option<usize>) -> Self {
        if let Some(n) = n.filter(|&n| n < self.labels.len()) {
            self.images.truncate(n * PIXELS);
            self.labels.truncate(n);
        }
        self
    }
}

/// One example.
#[derive(Debug, Clone)]
pub struct MnistItem {
    /// 784 pixels.
    pub image: Vec<u8>,
    /// 0..=9.
    pub label: u8,
}

impl Dataset<MnistItem> for Mnist {
    fn get(&self, index: usize) -> Result<MnistItem, DatasetError> {
        let label = *self.labels.get(index).ok_or_else(|| {
            DatasetError::new(std::io::Error::other(format!(
                "index {index} out of range for {} examples",
                self.labels.len()
            )))
        })?;
        let image = self.images[index * PIXELS..(index + 1) * PIXELS].to_vec();
        Ok(MnistItem { image, label })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// A batch of normalised images `[b, c, h, w]` and their labels `[b]`.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// Images.
    pub images: Tensor<4>,
    /// Labels.
    pub targets: Tensor<1, Int>,
}

/// Turns items into a batch, normalising with the MNIST mean and std.
#[derive(Debug, Clone, Default)]
pub struct MnistBatcher;

impl Batcher<MnistItem, ImageBatch> for MnistBatcher {
    fn batch(&self, items: Vec<MnistItem>, device: &Device) -> ImageBatch {
        let b = items.len();
        let pixels: Vec<f32> = items
            .iter()
            .flat_map(|it| {
                it.image
                    .iter()
                    .map(|&p| (f32::from(p) / 255.0 - 0.1307) / 0.3081)
            })
            .collect();
        let labels: Vec<i64> = items.iter().map(|it| i64::from(it.label)).collect();
        ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, [b, 1, 28, 28]), device),
            targets: Tensor::from_data(TensorData::new(labels, [b]), device),
        }
    }
}
