//! The sub-expression cache.
//!
//! A cache entry is one node's values on one panel: `<root>/<panel-hash>/<node-id>.arrow`,
//! a one-field panel file (memory-mapped, zero-copy) whose metadata records the panel
//! hash, the node's id and canonical text, and an xxh3 checksum of the values. An entry
//! is used only after all of these check out, so a cache built on another panel is never
//! read (it is not even looked at: the folder is the panel's hash), and a truncated or
//! corrupt file is reported and recomputed, never read as numbers.
//!
//! [`calibrate`] times the kernels on the panel's shape; [`plan`] picks the nodes that
//! save the most compute within a byte budget.

pub mod calibrate;
pub mod plan;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use af_expr::eval::NodeCache;
use af_expr::{Program, RunStats};

use crate::calibrate::Calibration;
use af_panel::{Panel, PanelData, write_panel};
use af_store::Provenance;
use anyhow::{Context, Result, bail};
use arrow_buffer::ToByteSlice;
use serde::{Deserialize, Serialize};

pub const ENTRY_FORMAT: &str = "af-cache/1";
const FIELD: &str = "value";

/// What an entry's metadata says about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryMeta {
    pub format: String,
    pub panel: String,
    pub id: String,
    pub text: String,
    /// xxh3-64 of the values' bytes, hex.
    pub xxh3: String,
}

/// The folder of `panel`'s entries under `root`.
pub fn panel_dir(root: &Path, panel: &Panel) -> PathBuf {
    root.join(panel.content_hash())
}

pub fn entry_path(root: &Path, panel: &Panel, id: &str) -> PathBuf {
    panel_dir(root, panel).join(format!("{id}.arrow"))
}

fn checksum(v: &[f64]) -> String {
    format!("{:016x}", twox_hash::XxHash3_64::oneshot(v.to_byte_slice()))
}

/// Write one entry atomically (a crash leaves no half-written entry). Returns its path.
pub fn write_entry(
    root: &Path,
    panel: &Panel,
    id: &str,
    text: &str,
    values: Vec<f64>,
    prov: &Provenance,
) -> Result<PathBuf> {
    let path = entry_path(root, panel, id);
    let meta = EntryMeta {
        format: ENTRY_FORMAT.into(),
        panel: panel.content_hash().into(),
        id: id.into(),
        text: text.into(),
        xxh3: checksum(&values),
    };
    let mut extra = serde_json::Map::new();
    extra.insert("cache".into(), serde_json::to_value(&meta)?);
    let data = PanelData {
        dates: panel.dates().to_vec(),
        codes: panel.codes().to_vec(),
        fields: vec![(FIELD.into(), values)],
        extra,
        ..Default::default()
    };
    write_panel(&path, data, prov).with_context(|| format!("cache entry {}", path.display()))?;
    Ok(path)
}

/// Open and check one entry: it must be complete, of `panel`, the node `id`, on the
/// panel's grid, and its values must match the recorded checksum.
pub fn load_entry(path: &Path, panel: &Panel, id: &str) -> Result<Panel> {
    let p = Panel::open(path)?;
    let meta: EntryMeta = serde_json::from_value(p.description()["cache"].clone())
        .with_context(|| format!("{}: no cache metadata", path.display()))?;
    if meta.format != ENTRY_FORMAT {
        bail!(
            "{}: format {:?}, expected {ENTRY_FORMAT}",
            path.display(),
            meta.format
        );
    }
    if meta.panel != panel.content_hash() || meta.id != id {
        bail!("{}: entry of another panel or node", path.display());
    }
    if p.dates() != panel.dates() || p.codes() != panel.codes() {
        bail!("{}: not on the panel's date x asset grid", path.display());
    }
    let v = p.field(FIELD)?.data;
    if v.len() != panel.n_dates() * panel.n_assets() {
        bail!(
            "{}: {} values, expected {}",
            path.display(),
            v.len(),
            panel.n_dates() * panel.n_assets()
        );
    }
    let got = checksum(v);
    if got != meta.xxh3 {
        bail!(
            "{}: checksum {got} differs from the recorded {} (corrupt)",
            path.display(),
            meta.xxh3
        );
    }
    Ok(p)
}

/// The checked entries of one panel, opened as programs ask for them and kept mapped
/// for the rest of the run; with what using them saved.
#[derive(Default)]
pub struct Cache {
    dir: PathBuf,
    entries: HashMap<String, Panel>,
    tried: std::collections::HashSet<String>,
    /// Costs saved by cache-materialize (from the plan): to estimate compute avoided.
    costs: Option<Calibration>,
    cells: usize,
    /// Entries that exist but failed a check (each message names the file); the nodes
    /// are computed instead.
    pub problems: Vec<String>,
    /// Seconds spent opening and checking entries.
    pub load_secs: f64,
    pub hits: usize,
    pub misses: usize,
    /// Nodes neither computed nor read because only cached nodes needed them.
    pub skipped: usize,
    /// Calibrated compute time of the hit and skipped nodes (seconds).
    pub avoided_secs: f64,
}

impl Cache {
    /// The cache of `panel` under `root` (a missing folder is an empty cache).
    pub fn new(root: &Path, panel: &Panel) -> Cache {
        let dir = panel_dir(root, panel);
        let costs = Calibration::load(&dir.join("calibration.json"), panel)
            .ok()
            .flatten();
        Cache {
            dir,
            costs,
            cells: panel.n_dates() * panel.n_assets(),
            ..Default::default()
        }
    }

    /// Open and check the entries of `ids` not tried yet. Missing entries are misses
    /// later; bad ones are recorded in `problems` and never used.
    pub fn load(&mut self, panel: &Panel, ids: &[String]) {
        if !self.dir.is_dir() {
            return;
        }
        let t = Instant::now();
        for id in ids {
            if !self.tried.insert(id.clone()) {
                continue;
            }
            let path = self.dir.join(format!("{id}.arrow"));
            if !path.exists() {
                continue;
            }
            match load_entry(&path, panel, id) {
                Ok(p) => {
                    self.entries.insert(id.clone(), p);
                }
                Err(e) => self.problems.push(format!("{e:#}")),
            }
        }
        self.load_secs += t.elapsed().as_secs_f64();
    }

    /// Count one run of `prog` that used this cache.
    pub fn record(&mut self, prog: &Program, stats: &RunStats) {
        self.hits += stats.cache_hits;
        self.misses += stats.cache_misses;
        self.skipped += stats.skipped.len();
        if let Some(c) = &self.costs {
            for &i in stats.hit_nodes.iter().chain(&stats.skipped) {
                if let af_expr::Expr::Call(op, _) = &prog.nodes[i].expr {
                    self.avoided_secs += c.op_ns(op.name) * self.cells as f64 / 1e9;
                }
            }
        }
    }

    /// Whether the panel has a cache folder at all.
    pub fn present(&self) -> bool {
        self.dir.is_dir()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One line for the user: hits, misses, compute avoided, problems.
    pub fn summary(&self) -> String {
        let avoided = if self.costs.is_some() {
            format!(
                "~{:.2} s of compute avoided (calibrated)",
                self.avoided_secs
            )
        } else {
            "compute avoided unknown (no calibration.json)".into()
        };
        let mut s = format!(
            "cache {}: {} hits, {} misses, {} nodes skipped; {avoided}; {:.2} s opening and checking {} entries",
            self.dir.display(),
            self.hits,
            self.misses,
            self.skipped,
            self.load_secs,
            self.entries.len()
        );
        for p in &self.problems {
            s.push_str(&format!("\n  bad entry, recomputed instead: {p}"));
        }
        s
    }
}

impl NodeCache for Cache {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    fn get(&self, id: &str) -> Option<&[f64]> {
        self.entries
            .get(id)
            .and_then(|p| p.field(FIELD).ok())
            .map(|m| m.data)
    }
}
