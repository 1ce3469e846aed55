//! Downloading data sets: streamed to a temporary file beside the destination with a progress
//! bar on stderr, checked against the published size and MD5, then renamed into place. A
//! failed, short or corrupt transfer leaves no file behind under the final name (and removes its
//! temporary file).

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use crate::data::DataError;

/// A file published at a fixed URL with a known size and MD5 (as the data set authors list it).
#[derive(Debug, Clone, Copy)]
pub struct Remote {
    /// Where to get it.
    pub url: &'static str,
    /// The file name it is stored under.
    pub file: &'static str,
    /// Its exact size in bytes.
    pub size: u64,
    /// Its MD5, lowercase hex.
    pub md5: &'static str,
}

/// Downloads `remote` into `dir/remote.file` unless a file of the right size is already there.
pub fn fetch(remote: &Remote, dir: &Path) -> Result<PathBuf, DataError> {
    let dest = dir.join(remote.file);
    if std::fs::metadata(&dest).is_ok_and(|m| m.len() == remote.size) {
        return Ok(dest);
    }
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(format!(".{}.part-{}", remote.file, std::process::id()));
    let result = download_to(remote, &tmp).and_then(|()| {
        std::fs::rename(&tmp, &dest).map_err(|source| DataError::Io {
            path: dest.clone(),
            source,
        })
    });
    if result.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    result.map(|()| dest)
}

fn download_to(remote: &Remote, tmp: &Path) -> Result<(), DataError> {
    let fail = |what: String| DataError::Download {
        url: remote.url.to_string(),
        what,
    };
    let mut response = ureq::get(remote.url)
        .call()
        .map_err(|e| fail(e.to_string()))?;
    let mut body = response
        .body_mut()
        .with_config()
        .limit(remote.size + 1)
        .reader();
    let io = |source| DataError::Io {
        path: tmp.to_path_buf(),
        source,
    };
    let mut file = File::create(tmp).map_err(io)?;
    let mut hasher = Md5::new();
    let mut progress = Progress::new(remote.file, remote.size);
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| fail(format!("after {received} bytes: {e}")))?;
        if n == 0 {
            break;
        }
        received += n as u64;
        if received > remote.size {
            return Err(fail(format!(
                "more than the expected {} bytes",
                remote.size
            )));
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io)?;
        progress.update(received);
    }
    progress.finish(received);
    if received != remote.size {
        return Err(fail(format!(
            "got {received} bytes, expected {} (transfer cut short)",
            remote.size
        )));
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != remote.md5 {
        return Err(fail(format!("MD5 {digest}, expected {}", remote.md5)));
    }
    file.sync_all().map_err(io)
}

/// A one-line progress bar on stderr: redrawn in place on a terminal, a line every 10 % else.
struct Progress {
    name: &'static str,
    total: u64,
    start: Instant,
    last_draw: Instant,
    last_decile: u64,
    tty: bool,
}

impl Progress {
    fn new(name: &'static str, total: u64) -> Self {
        let now = Instant::now();
        eprintln!("downloading {name} ({:.1} MB)", total as f64 / 1e6);
        Self {
            name,
            total,
            start: now,
            last_draw: now,
            last_decile: 0,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn line(&self, done: u64) -> String {
        const WIDTH: u64 = 30;
        let frac = done as f64 / self.total.max(1) as f64;
        let filled = (frac * WIDTH as f64) as usize;
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        format!(
            "  {} [{}{}] {:5.1}% {:.1}/{:.1} MB {:.1} MB/s",
            self.name,
            "#".repeat(filled.min(WIDTH as usize)),
            ".".repeat(WIDTH as usize - filled.min(WIDTH as usize)),
            100.0 * frac,
            done as f64 / 1e6,
            self.total as f64 / 1e6,
            done as f64 / 1e6 / secs
        )
    }

    fn update(&mut self, done: u64) {
        if self.tty {
            if self.last_draw.elapsed() >= Duration::from_millis(200) {
                self.last_draw = Instant::now();
                eprint!("\r{}", self.line(done));
            }
        } else {
            let decile = 10 * done / self.total.max(1);
            if decile > self.last_decile {
                self.last_decile = decile;
                eprintln!("{}", self.line(done));
            }
        }
    }

    fn finish(&mut self, done: u64) {
        if self.tty {
            eprintln!("\r{}", self.line(done));
        }
    }
}
