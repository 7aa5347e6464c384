//! Output locks under `state/locks/`: two writers of the same output exclude each other.
//!
//! The lock is an OS advisory lock (`flock`) on a file named after the output path, so
//! it disappears with its holder even after SIGKILL; the holder's pid is written into
//! the file only to make the refusal message useful.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::hash::sha256_bytes;

/// Held for as long as the value lives.
pub struct OutputLock {
    file: File,
    path: PathBuf,
}

impl OutputLock {
    /// The lock folder: `$AF_STATE_DIR/locks`, default `state/locks` under the
    /// current directory (the repository root when run by `make` or `pipeline`).
    pub fn dir() -> PathBuf {
        std::env::var_os("AF_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("state"))
            .join("locks")
    }

    /// Take the lock for writing `output`, or fail at once naming the holder.
    pub fn acquire(output: &Path) -> Result<Self> {
        Self::acquire_in(&Self::dir(), output)
    }

    /// Same, with locks kept in `dir`.
    pub fn acquire_in(dir: &Path, output: &Path) -> Result<Self> {
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create lock folder {}", dir.display()))?;
        let abs = std::path::absolute(output).unwrap_or_else(|_| output.to_path_buf());
        let key = abs.to_string_lossy();
        let stem: String = abs
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
                    .collect()
            })
            .unwrap_or_default();
        let path = dir.join(format!(
            "{stem}.{}.lock",
            &sha256_bytes(key.as_bytes())[..16]
        ));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                bail!(
                    "{} is being written by another process ({}); lock file {}",
                    output.display(),
                    if holder.is_empty() {
                        "pid unknown".to_string()
                    } else {
                        format!("pid {holder}")
                    },
                    path.display()
                );
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0).ok();
        file.seek(SeekFrom::Start(0)).ok();
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(Self { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_is_refused() {
        let out = std::env::temp_dir().join(format!("af-lock-test-{}.parquet", std::process::id()));
        let dir = std::env::temp_dir().join(format!("af-lock-dir-{}", std::process::id()));
        let a = OutputLock::acquire_in(&dir, &out).unwrap();
        // flock locks belong to the open file description, so a second open in the
        // same process conflicts just as another process would.
        let err = OutputLock::acquire_in(&dir, &out)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("another process"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(a);
        OutputLock::acquire_in(&dir, &out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
