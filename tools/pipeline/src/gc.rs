//! `pipeline gc`: remove what this pipeline once wrote and no current step references.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::graph::*;
use crate::state::{self, read_record};

/// Remove `root/<panel-hash>/` folders whose panel is none of the kept outputs' panels
/// (cache entries are keyed by panel hash: another panel's can never be read, only
/// take space).
pub fn gc_cache(root: &Path, keep: &BTreeSet<String>, dry_run: bool) -> Result<()> {
    let mut panels: BTreeSet<String> = BTreeSet::new();
    let mut look = |p: &Path| {
        if p.extension().is_some_and(|e| e == "arrow") {
            if let Ok(panel) = af_panel::Panel::open(p) {
                panels.insert(panel.content_hash().to_string());
            }
        }
    };
    for k in keep {
        let p = Path::new(k);
        if p.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                look(&e.path());
            }
        } else {
            look(p);
        }
    }
    let mut n = 0;
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_hash = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_hash || !e.path().is_dir() || panels.contains(&name) {
            continue;
        }
        n += 1;
        println!(
            "{} {} (cache of a panel no current step produces)",
            if dry_run { "would remove" } else { "removing" },
            e.path().display()
        );
        if !dry_run {
            std::fs::remove_dir_all(e.path())?;
        }
    }
    tracing::info!(
        "{n} cache folder(s) of other panels{} ({} panel(s) kept)",
        if dry_run { " (dry run)" } else { " removed" },
        panels.len()
    );
    Ok(())
}

/// Remove the artifacts this pipeline wrote that no current step's record references.
pub fn gc(c: &Common, dry_run: bool, cache: Option<PathBuf>) -> Result<()> {
    let g = build(c)?;
    let _lock = crate::graph::run_lock(c, &g.p.name)
        .context("a `pipeline run` holds this pipeline; gc waits for it to finish")?;
    // Keep what the records of the current steps reference; candidates are only
    // paths this pipeline once wrote (a step's old outputs, generations beyond
    // the current count): nothing else in the folders is ever touched.
    let mut keep: BTreeSet<String> = BTreeSet::new();
    // Record files of the current steps (with their current outputs: another market's
    // records of the same step are not current).
    let current: BTreeSet<String> =
        g.p.steps
            .iter()
            .filter_map(|s| {
                state::record_path(&c.state, &g.p.name, s)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .collect();
    for s in &g.p.steps {
        if let Some(r) = read_record(&c.state, &g.p.name, s) {
            keep.extend(r.outputs.keys().cloned());
        }
    }
    let log = state::written_path(&c.state, &g.p.name);
    let written: BTreeSet<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    let mut n = 0;
    for w in &written {
        let p = Path::new(w);
        if keep.iter().any(|k| overlap(w, k)) || !p.exists() {
            continue;
        }
        n += 1;
        println!("{} {w}", if dry_run { "would remove" } else { "removing" });
        if !dry_run {
            if p.is_dir() {
                std::fs::remove_dir_all(p)?;
            } else {
                std::fs::remove_file(p)?;
            }
        }
    }
    if !dry_run {
        // Records of steps the pipeline no longer has go too, and the log
        // shrinks to what is kept.
        let dir = c.state.join("pipeline").join(&g.p.name);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !current.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let text: String = keep.iter().map(|k| format!("{k}\n")).collect();
        af_store::write_atomic_bytes(&log, text.as_bytes())?;
    }
    tracing::info!(
        "{n} unreferenced artifact(s){}",
        if dry_run { " (dry run)" } else { " removed" }
    );
    if let Some(root) = cache {
        gc_cache(&root, &keep, dry_run)?;
    }
    Ok(())
}
