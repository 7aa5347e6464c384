//! The factor library snapshot.
//!
//! A library is two files side by side:
//! - `lib-NNN.parquet`: one row per admitted factor (id, expression, generation, score,
//!   per-split metrics), with an `af.library` JSON entry in its metadata ([`Meta`]);
//! - `lib-NNN.values.arrow`: the factors' processed values (winsorized, z-scored,
//!   neutralized, as `fitness` scores them) as a panel whose fields are the factor
//!   ids — memory-mapped by `fitness` (correlation penalty), `lgbm-train` (features)
//!   and `report`, never re-evaluated.
//!
//! The metadata names the panel the values were computed on (its content hash) and the
//! values file's own content hash and size, so a library is never used with another
//! panel and a swapped or truncated values file is an error, not numbers.

pub mod pool;
pub mod select;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use af_fitness::processing::Processing;
use af_panel::{Panel, PanelData, write_panel};
use af_store::Provenance;
use af_table::{ReadTable, Table, read_parquet};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub const META_LIBRARY: &str = "af.library";
/// 2: the processing settings are one typed `processing` entry.
pub const LIBRARY_FORMAT: &str = "af-library/2";

/// What a library was made from and how its values were processed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub format: String,
    /// Content hash of the panel the values were computed on.
    pub panel: String,
    /// File name of the values panel, relative to the library file's folder.
    pub values: String,
    pub values_hash: String,
    pub values_bytes: u64,
    /// How the values were processed and the splits the factors were selected on (the
    /// fitness files' own, all equal).
    pub processing: Processing,
    /// De-correlation bound of the selection (library-merge `--max-corr`).
    pub max_corr: f64,
    pub max_size: usize,
    /// Correlations between members (library-merge's redundancy measure on the train
    /// dates), keyed `"<id> <id>"` with the smaller id first: the next merge reads them
    /// instead of recomputing ~1 200 pairs over every train date. Undefined ones are
    /// left out (recomputed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pair_corr: BTreeMap<String, f64>,
    /// The score rules the members were admitted under (fitness' `score_rules`, all
    /// inputs equal; absent for libraries from files that did not record them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_rules: Option<af_fitness::ScoreConfig>,
}

/// The key of a member pair in [`Meta::pair_corr`].
pub fn pair_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a} {b}")
    } else {
        format!("{b} {a}")
    }
}

/// An opened library: its members, typed, and their values, checked against `panel`.
pub struct Library {
    pub path: PathBuf,
    pub meta: Meta,
    /// The snapshot's Parquet metadata (provenance), for reports.
    pub metadata: std::collections::BTreeMap<String, String>,
    pub ids: Vec<String>,
    pub expressions: Vec<String>,
    pub members: Vec<Member>,
    values: Panel,
}

/// One library member as the snapshot records it (columns parsed once, here; older
/// snapshots' missing columns get their documented fallbacks).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub expression: String,
    /// The generation that found it (-1: unknown).
    pub generation: i64,
    pub size: f64,
    /// Its own score (fitness' merit) when admitted.
    pub score: f64,
    /// "valid", "score" or "pool".
    pub admitted_by: String,
    /// Its label horizon (its best of those fitness scored; older snapshots: the
    /// processing's primary horizon).
    pub horizon: usize,
    /// split -> metric ([`pool::METRICS`]) -> value.
    pub metrics: BTreeMap<String, BTreeMap<&'static str, f64>>,
    /// Pool selection: train combined IC lost without it, and its weight (NaN: greedy).
    pub contribution: f64,
    pub weight: f64,
}

impl Member {
    /// Read every member of a snapshot table (`processing`: the library's, for the
    /// split names and the fallback horizon).
    pub fn read_all(t: &ReadTable, processing: &Processing) -> Result<Vec<Member>> {
        let n = t.num_rows();
        let num = |c: &str, fallback: f64| -> Result<Vec<f64>> {
            Ok(if t.has_column(c) {
                t.f64s(c)?
            } else {
                vec![fallback; n]
            })
        };
        let (ids, exprs) = (t.strings("id")?, t.strings("expression")?);
        let generation = num("generation", -1.0)?;
        let size = num("size", f64::NAN)?;
        let score = num("score", f64::NAN)?;
        let horizon = num("horizon", processing.horizon as f64)?;
        let contribution = num("pool_contribution", f64::NAN)?;
        let weight = num("pool_weight", f64::NAN)?;
        let admitted = if t.has_column("admitted_by") {
            t.strings("admitted_by")?
        } else {
            vec!["valid".to_string(); n]
        };
        let mut metrics = vec![BTreeMap::new(); n];
        for s in processing.split_names() {
            for k in pool::METRICS {
                let col = format!("{s}_{k}");
                if t.has_column(&col) {
                    for (m, v) in metrics.iter_mut().zip(t.f64s(&col)?) {
                        m.entry(s.clone())
                            .or_insert_with(BTreeMap::new)
                            .insert(k, v);
                    }
                }
            }
        }
        Ok((0..n)
            .map(|i| Member {
                id: ids[i].clone(),
                expression: exprs[i].clone(),
                generation: generation[i] as i64,
                size: size[i],
                score: score[i],
                admitted_by: admitted[i].clone(),
                horizon: horizon[i] as usize,
                metrics: std::mem::take(&mut metrics[i]),
                contribution: contribution[i],
                weight: weight[i],
            })
            .collect())
    }
}

/// The members of a snapshot without opening its values (gp-gen: expressions and
/// contributions only), checked to be a library.
pub fn read_members(path: &Path) -> Result<Vec<Member>> {
    let inner = || -> Result<Vec<Member>> {
        let table = read_parquet(path)?;
        let meta = meta_of(&table)?;
        Member::read_all(&table, &meta.processing)
    };
    inner().with_context(|| format!("library {}", path.display()))
}

fn meta_of(table: &ReadTable) -> Result<Meta> {
    let meta: Meta = serde_json::from_str(
        table
            .metadata
            .get(META_LIBRARY)
            .context("not a factor library (no af.library metadata)")?,
    )
    .context("corrupt af.library metadata")?;
    if meta.format != LIBRARY_FORMAT {
        bail!(
            "unsupported library format {:?} (this build reads {LIBRARY_FORMAT})",
            meta.format
        );
    }
    Ok(meta)
}

/// The values file's name for a library file `lib-003.parquet`: `lib-003.values.arrow`.
pub fn values_name(library: &Path) -> String {
    let stem = library
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "library".into());
    format!("{stem}.values.arrow")
}

impl Library {
    /// Open `path` for use with `panel`: a library made on another panel, or whose
    /// values file is missing, truncated or not the one recorded, is an error.
    pub fn open(path: &Path, panel: &Panel) -> Result<Library> {
        let inner = || -> Result<Library> {
            let table = read_parquet(path)?;
            let meta = meta_of(&table)?;
            if meta.panel != panel.content_hash() {
                bail!(
                    "it was built on panel {} but this panel ({}) is {}: rebuild the library \
                     on this panel (library-merge) or use the panel it was made from",
                    short(&meta.panel),
                    panel.path().display(),
                    short(panel.content_hash())
                );
            }
            // Resolve the values beside the real file, so a `current.parquet` symlink
            // finds its snapshot's values.
            let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            let dir = real.parent().unwrap_or(Path::new("."));
            let vpath = dir.join(&meta.values);
            let bytes = std::fs::metadata(&vpath)
                .with_context(|| format!("values file {} is missing", vpath.display()))?
                .len();
            if bytes != meta.values_bytes {
                bail!(
                    "values file {} has {bytes} bytes, the library recorded {} (truncated or replaced)",
                    vpath.display(),
                    meta.values_bytes
                );
            }
            let values = Panel::open(&vpath)?;
            if values.content_hash() != meta.values_hash {
                bail!(
                    "values file {} is not the one this library recorded",
                    vpath.display()
                );
            }
            if values.dates() != panel.dates() || values.codes() != panel.codes() {
                bail!(
                    "values file {} is not on the panel's date x asset grid",
                    vpath.display()
                );
            }
            let members = Member::read_all(&table, &meta.processing)?;
            let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
            let expressions = members.iter().map(|m| m.expression.clone()).collect();
            for id in &ids {
                if !values.has_field(id) {
                    bail!(
                        "values file {} has no values for factor {id}",
                        vpath.display()
                    );
                }
            }
            Ok(Library {
                path: path.to_path_buf(),
                meta,
                metadata: table.metadata,
                ids,
                expressions,
                members,
                values,
            })
        };
        inner().with_context(|| format!("library {}", path.display()))
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Factor `i`'s processed values, `[n_dates][n_assets]`, zero-copy.
    /// Each member's label horizon ([`Member::horizon`]).
    pub fn member_horizons(&self) -> Vec<usize> {
        self.members.iter().map(|m| m.horizon).collect()
    }

    pub fn values(&self, i: usize) -> Result<&[f64]> {
        Ok(self.values.field(&self.ids[i])?.data)
    }
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// Write a library: the values panel first, then the table that names it (so a crash
/// between the two leaves no table pointing at missing values).
pub fn write(
    path: &Path,
    table: Table,
    values: Vec<(String, Vec<f64>)>,
    panel: &Panel,
    mut meta: Meta,
    prov: &Provenance,
) -> Result<()> {
    let name = values_name(path);
    let vpath = path.with_file_name(&name);
    let data = PanelData {
        dates: panel.dates().to_vec(),
        codes: panel.codes().to_vec(),
        fields: values,
        ..Default::default()
    };
    let hash = write_panel(&vpath, data, prov)?;
    meta.values = name;
    meta.values_hash = hash;
    meta.values_bytes = std::fs::metadata(&vpath)?.len();
    meta.panel = panel.content_hash().to_string();
    meta.format = LIBRARY_FORMAT.into();
    // The library entry is its own metadata key (readers look it up directly); the
    // provenance keeps its usual keys.
    let extra = (META_LIBRARY.to_string(), serde_json::to_string(&meta)?);
    af_table::write_parquet_kv(path, table, prov, &[extra])
}
