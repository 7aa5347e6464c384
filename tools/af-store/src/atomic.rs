//! Atomic file and folder writes: temp name in the same folder, fsync, rename.
//!
//! A reader (or the pipeline runner) therefore sees either the previous complete file
//! or the new complete file, never a prefix; a crash leaves only a `.tmp-*` file that
//! the next write of the same target removes.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

fn tmp_name(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .with_context(|| format!("output path {} has no file name", target.display()))?;
    let parent = parent_of(target);
    Ok(parent.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output folder {}", dir.display()))
}

fn sync_dir(dir: &Path) {
    // Persisting the rename needs the directory entry flushed; some filesystems refuse
    // to open a directory for sync, which is harmless.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The temp files of `target` in its folder, with the writer's pid their name carries.
fn tmps_of(target: &Path) -> Vec<(PathBuf, Option<u32>)> {
    let (Some(name), dir) = (target.file_name(), parent_of(target)) else {
        return Vec::new();
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(rd) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let f = e.file_name().to_string_lossy().into_owned();
            let pid = f.strip_prefix(&prefix)?.parse::<u32>().ok();
            Some((e.path(), pid))
        })
        .collect()
}

fn remove_tmp(p: &Path) -> bool {
    fs::remove_file(p)
        .or_else(|_| fs::remove_dir_all(p))
        .is_ok()
}

/// Remove temp files a killed earlier writer of `target` may have left.
fn remove_stale_tmps(target: &Path) {
    for (p, _) in tmps_of(target) {
        remove_tmp(&p);
    }
}

/// Remove the temp files of `target` whose writer is gone (the pid in the name is not
/// a live process): what a killed write left when nothing rewrites `target` — the
/// runner sweeps every step's outputs, run or skipped. Returns how many went. A live
/// writer's temp file is left alone.
pub fn sweep_stale_tmps(target: &Path) -> usize {
    tmps_of(target)
        .into_iter()
        .filter(|(_, pid)| pid.is_some_and(|p| p != std::process::id() && !alive(p)))
        .filter(|(p, _)| remove_tmp(p))
        .count()
}

/// Whether process `pid` exists (Linux: its /proc entry; elsewhere assume it does).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Write `target` atomically; `fill` writes the content into a buffered temp file.
pub fn write_atomic<F>(target: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    ensure_dir(&parent_of(target))?;
    remove_stale_tmps(target);
    let tmp = tmp_name(target)?;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .with_context(|| {
            format!(
                "cannot write to output folder {}",
                parent_of(target).display()
            )
        })?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let res = fill(&mut w).and_then(|_| {
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(())
    });
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", target.display())));
    }
    fs::rename(&tmp, target).with_context(|| format!("cannot rename into {}", target.display()))?;
    sync_dir(&parent_of(target));
    Ok(())
}

/// Write a byte string atomically.
pub fn write_atomic_bytes(target: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(target, |w| {
        w.write_all(bytes)?;
        Ok(())
    })
}

/// A folder of outputs that appears all at once: files are written into a hidden
/// staging folder beside `target`, which replaces `target` on [`AtomicDir::commit`].
/// Dropped without commit, the staging folder is removed.
pub struct AtomicDir {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl AtomicDir {
    pub fn new(target: &Path) -> Result<Self> {
        let parent = parent_of(target);
        ensure_dir(&parent)?;
        remove_stale_tmps(target);
        let staging = tmp_name(target)?;
        if staging.exists() {
            fs::remove_dir_all(&staging).ok();
        }
        fs::create_dir_all(&staging)
            .with_context(|| format!("cannot write to output folder {}", parent.display()))?;
        Ok(Self {
            target: target.to_path_buf(),
            staging,
            committed: false,
        })
    }

    /// Path of a file inside the staging folder.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.staging.join(rel)
    }

    /// Replace `target` with the staging folder. The old folder is moved aside first
    /// and deleted after the rename, so at every instant one complete folder exists
    /// (or, between the two renames, a complete `.old` one).
    pub fn commit(mut self) -> Result<()> {
        let old = parent_of(&self.target).join(format!(
            ".{}.old-{}",
            self.target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        if self.target.exists() {
            if !self.target.is_dir() {
                bail!(
                    "output {} exists and is not a folder",
                    self.target.display()
                );
            }
            fs::rename(&self.target, &old)
                .with_context(|| format!("cannot replace {}", self.target.display()))?;
        }
        fs::rename(&self.staging, &self.target)
            .with_context(|| format!("cannot rename into {}", self.target.display()))?;
        sync_dir(&parent_of(&self.target));
        self.committed = true;
        if old.exists() {
            fs::remove_dir_all(&old).ok();
        }
        Ok(())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_dead_writers_temp_file_is_swept_a_live_ones_stays() {
        let dir = std::env::temp_dir().join(format!("af-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("lib-001.values.arrow");
        // pid 4194304 is above Linux's pid_max: never a live process.
        let dead = dir.join(".lib-001.values.arrow.tmp-4194304");
        let mine = dir.join(format!(".lib-001.values.arrow.tmp-{}", std::process::id()));
        let other = dir.join(".lib-002.values.arrow.tmp-4194304");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(super::sweep_stale_tmps(&target), 1);
        assert!(!dead.exists() && mine.exists() && other.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
    use super::*;

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("af-store-atomic-{}", std::process::id()));
        let target = dir.join("x.bin");
        let r = write_atomic(&target, |w| {
            w.write_all(b"partial")?;
            bail!("boom")
        });
        assert!(r.is_err());
        assert!(!target.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        write_atomic_bytes(&target, b"ok").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"ok");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dir_commit_replaces() {
        let dir = std::env::temp_dir().join(format!("af-store-dir-{}", std::process::id()));
        let target = dir.join("raw");
        {
            let d = AtomicDir::new(&target).unwrap();
            fs::write(d.path("a"), b"1").unwrap();
            // dropped without commit
        }
        assert!(!target.exists());
        let d = AtomicDir::new(&target).unwrap();
        fs::write(d.path("a"), b"2").unwrap();
        d.commit().unwrap();
        let d = AtomicDir::new(&target).unwrap();
        fs::write(d.path("b"), b"3").unwrap();
        d.commit().unwrap();
        assert!(!target.join("a").exists());
        assert_eq!(fs::read(target.join("b")).unwrap(), b"3");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
