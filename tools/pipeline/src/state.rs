//! What the runner remembers under `state/pipeline/`: one record per step (its key, the
//! inputs, arguments and tool it ran with, the outputs it wrote with their hashes) and a
//! (path, size, mtime) → sha256 stat cache, so unchanged big files are not re-hashed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use af_store::{canonical_json, sha256_bytes, sha256_file, write_atomic_bytes};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub key: String,
    pub tool: String,
    pub identity: String,
    pub args: Vec<String>,
    pub inputs: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub finished_unix: u64,
    pub seconds: f64,
}

/// A step's record: `state/pipeline/<pipeline>/<step>.<h>.json`, `h` a short hash of
/// the step's declared outputs. The same step writing elsewhere (another market's
/// `data/raw/<name>/`, another run folder) is another record, so switching `name` back
/// and forth re-runs nothing (issue 34).
pub fn record_path(state: &Path, pipeline: &str, step: &crate::spec::Step) -> PathBuf {
    let outs = step.outputs.join("\n");
    let h = sha256_bytes(outs.as_bytes());
    state
        .join("pipeline")
        .join(pipeline)
        .join(format!("{}.{}.json", step.name, &h[..12]))
}

pub fn read_record(state: &Path, pipeline: &str, step: &crate::spec::Step) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(state, pipeline, step)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Serialises appends to the written-paths log across the runner's threads.
static WRITTEN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Every path this pipeline ever wrote (one per line): what `gc` may remove. Files the
/// pipeline never wrote are never candidates, whatever folder they sit in.
pub fn written_path(state: &Path, pipeline: &str) -> PathBuf {
    state.join("pipeline").join(pipeline).join("written.txt")
}

pub fn write_record(
    state: &Path,
    pipeline: &str,
    step: &crate::spec::Step,
    r: &Record,
) -> Result<()> {
    let p = record_path(state, pipeline, step);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    {
        use std::io::Write as _;
        let _g = WRITTEN
            .lock()
            .map_err(|_| anyhow::anyhow!("written log poisoned"))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(written_path(state, pipeline))?;
        for o in r.outputs.keys() {
            writeln!(f, "{o}")?;
        }
    }
    write_atomic_bytes(&p, serde_json::to_string_pretty(r)?.as_bytes())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    len: u64,
    mtime_ns: u128,
    sha256: String,
}

/// The stat cache.
#[derive(Default)]
pub struct Hasher {
    path: PathBuf,
    cache: BTreeMap<String, Entry>,
    dirty: bool,
}

impl Hasher {
    pub fn load(state: &Path) -> Hasher {
        let path = state.join("pipeline").join("statcache.json");
        let cache = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Hasher {
            path,
            cache,
            dirty: false,
        }
    }

    pub fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(d) = self.path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let v = serde_json::to_value(&self.cache)?;
        write_atomic_bytes(&self.path, canonical_json(&v).as_bytes())?;
        self.dirty = false;
        Ok(())
    }

    fn file(&mut self, p: &Path) -> Result<String> {
        let m = std::fs::metadata(p)?;
        let mtime_ns = m
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let key = p.to_string_lossy().into_owned();
        if let Some(e) = self.cache.get(&key) {
            if e.len == m.len() && e.mtime_ns == mtime_ns {
                return Ok(e.sha256.clone());
            }
        }
        let h = sha256_file(p)?;
        self.cache.insert(
            key,
            Entry {
                len: m.len(),
                mtime_ns,
                sha256: h.clone(),
            },
        );
        self.dirty = true;
        Ok(h)
    }

    /// Content hash of a file, or of a folder (its files' relative paths and hashes);
    /// None when it does not exist.
    pub fn hash(&mut self, p: &Path) -> Result<Option<String>> {
        let Ok(m) = std::fs::metadata(p) else {
            return self.hash_glob(p);
        };
        if m.is_file() {
            return Ok(Some(self.file(p)?));
        }
        let mut files = Vec::new();
        walk(p, p, &mut files)?;
        files.sort();
        let mut text = String::new();
        for rel in files {
            let h = self.file(&p.join(&rel))?;
            text.push_str(&format!("{rel}\0{h}\n"));
        }
        Ok(Some(sha256_bytes(text.as_bytes())))
    }
}

impl Hasher {
    /// A glob input (`exports/*.csv`, the files source's `--path`): the matched paths
    /// and their hashes; None when it is no glob or matches nothing.
    fn hash_glob(&mut self, p: &Path) -> Result<Option<String>> {
        let pat = p.to_string_lossy();
        if !pat.contains(['*', '?', '[']) {
            return Ok(None);
        }
        let Ok(paths) = glob::glob(&pat) else {
            return Ok(None);
        };
        let mut files: Vec<_> = paths
            .filter_map(|x| x.ok())
            .filter(|x| x.is_file())
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        files.sort();
        let mut text = String::new();
        for f in files {
            let h = self.file(&f)?;
            text.push_str(&format!("{}\0{h}\n", f.display()));
        }
        Ok(Some(sha256_bytes(text.as_bytes())))
    }
}

fn walk(base: &Path, d: &Path, out: &mut Vec<String>) -> Result<()> {
    for e in std::fs::read_dir(d).with_context(|| format!("cannot list {}", d.display()))? {
        let e = e?;
        let p = e.path();
        // Symlinked folders are not followed (a loop would never end).
        if e.file_type().map(|t| t.is_symlink()).unwrap_or(false) && p.is_dir() {
            continue;
        }
        if p.is_dir() {
            walk(base, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(base) {
            // Hidden temp files of an interrupted atomic write are not content.
            let fname = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !(fname.starts_with('.') && fname.contains(".tmp")) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    Ok(())
}
