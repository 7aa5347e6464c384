//! The fetch manifest (`data/raw/manifest.json`): what a raw folder holds, where it came
//! from, which contract columns the source really provided, and what cleaning did.

use std::collections::BTreeMap;
use std::path::Path;

use af_panel::dates::format_date;
use af_store::{Provenance, sha256_file};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::raw::RawBars;

pub const MANIFEST: &str = "manifest.json";
pub const RAW_FORMAT: &str = "af-raw/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub rows: usize,
    pub sha256: String,
}

/// A close-to-close move split inference acted on or left for a human to look at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Move {
    pub code: String,
    pub date: String,
    /// close / previous close, unadjusted.
    pub ratio: f64,
    /// `split` (adjusted away) or `kept` (left in the prices and the labels).
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_ratio: Option<f64>,
}

impl Manifest {
    /// The market profile the fetch used (`cn` for folders from before it was recorded,
    /// and for the synthetic A-share market).
    pub fn market(&self) -> crate::market::Market {
        self.market
            .clone()
            .unwrap_or_else(crate::market::Market::cn)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub source: String,
    pub provenance: serde_json::Value,
    pub rows: usize,
    pub codes: usize,
    pub dates: usize,
    pub first_date: String,
    pub last_date: String,
    /// For each contract column: "provided" or how it was defaulted.
    pub columns: BTreeMap<String, String>,
    /// Cleaning counters (rule → rows affected); see docs/data_contract.md.
    pub cleaning: BTreeMap<String, u64>,
    /// Warnings about the source (absent fields and what that disables).
    pub notes: Vec<String>,
    /// Every inferred split and every large move kept, in date order per code.
    #[serde(default)]
    pub moves: Vec<Move>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<crate::market::Market>,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    pub fn new(
        source: &str,
        prov: &Provenance,
        bars: &RawBars,
        files: &[(String, usize)],
        dir: &Path,
    ) -> Result<Self> {
        let mut dates: Vec<i32> = bars.trade_date.clone();
        dates.dedup();
        Self::from_totals(
            source,
            prov,
            (bars.len(), bars.code_names.len(), &dates),
            files,
            dir,
        )
    }

    /// From totals kept while writing chunk by chunk: (rows, codes, distinct dates
    /// ascending).
    pub fn from_totals(
        source: &str,
        prov: &Provenance,
        (rows, codes, dates): (usize, usize, &[i32]),
        files: &[(String, usize)],
        dir: &Path,
    ) -> Result<Self> {
        let entries = files
            .iter()
            .map(|(rel, rows)| {
                Ok(FileEntry {
                    path: rel.clone(),
                    rows: *rows,
                    sha256: sha256_file(&dir.join(rel))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            format: RAW_FORMAT.into(),
            source: source.into(),
            provenance: prov.to_json(),
            rows,
            codes,
            dates: dates.len(),
            first_date: dates.first().map(|d| format_date(*d)).unwrap_or_default(),
            last_date: dates.last().map(|d| format_date(*d)).unwrap_or_default(),
            columns: BTreeMap::new(),
            cleaning: BTreeMap::new(),
            notes: Vec::new(),
            moves: Vec::new(),
            market: None,
            files: entries,
        })
    }

    pub fn read(dir: &Path) -> Result<Self> {
        let p = dir.join(MANIFEST);
        let s = std::fs::read_to_string(&p)
            .with_context(|| format!("cannot read {} (run ts-fetch first)", p.display()))?;
        serde_json::from_str(&s).with_context(|| format!("corrupt manifest {}", p.display()))
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}
