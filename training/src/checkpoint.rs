//! A checkpointer that never leaves a half-written file: each record is written to a
//! temporary file in the same directory, flushed, then renamed over the final name.

use std::path::{Path, PathBuf};

use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};

/// Burnpack checkpoints `NAME-EPOCH.bpk` in a directory, written atomically.
#[derive(Debug, Clone)]
pub struct AtomicFileCheckpointer {
    directory: PathBuf,
    name: String,
}

impl AtomicFileCheckpointer {
    /// Checkpoints named `name-<epoch>.bpk` under `directory` (created if missing).
    pub fn new(directory: impl AsRef<Path>, name: &str) -> Self {
        let directory = directory.as_ref().to_path_buf();
        std::fs::create_dir_all(&directory).ok();
        Self {
            directory,
            name: name.to_string(),
        }
    }

    /// The file of an epoch.
    pub fn path_for_epoch(&self, epoch: usize) -> PathBuf {
        self.directory.join(format!("{}-{}.bpk", self.name, epoch))
    }

    /// The last epoch with a complete checkpoint in `directory` for `name`, if any.
    pub fn last_epoch(directory: impl AsRef<Path>, name: &str) -> Option<usize> {
        let prefix = format!("{name}-");
        std::fs::read_dir(directory)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| f.strip_prefix(&prefix)?.strip_suffix(".bpk")?.parse().ok())
            .max()
    }
}

impl<R: Checkpoint> Checkpointer<R> for AtomicFileCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let path = self.path_for_epoch(epoch);
        let tmp = path.with_extension("bpk.tmp");
        record.save(tmp.clone())?;
        // The rename is atomic on one filesystem: readers see the old file or the new one.
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(CheckpointerError::IOError)
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(self.path_for_epoch(epoch))
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        let path = self.path_for_epoch(epoch);
        if path.exists() {
            std::fs::remove_file(path).map_err(CheckpointerError::IOError)?;
        }
        Ok(())
    }
}
