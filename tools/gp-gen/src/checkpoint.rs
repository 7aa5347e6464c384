//! What gp-gen keeps between generations and reads back: the checkpoint (seed, panel,
//! parameters, elites, every id proposed so far), checked so that a resumed run is the
//! run it continues; and the previous generation's selection fitness from its fitness
//! file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use af_fitness::processing::Processing;
use af_gp::selection::{Lib, selection_fitness};
use af_panel::Panel;
use af_store::{Provenance, canonical_json};
use af_table::read_parquet;
use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "af-gp-checkpoint/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Elite {
    pub id: String,
    pub expression: String,
    pub score: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub seed: u64,
    pub generation: u64,
    pub panel: String,
    pub params: serde_json::Value,
    /// sha256 of this generation's candidates file.
    pub candidates: String,
    /// Best ever by selection fitness (score discounted by library correlation).
    pub elites: Vec<Elite>,
    /// Every id proposed so far (sorted).
    pub memo: Vec<String>,
    /// How the random stream of each generation is derived.
    pub rng: serde_json::Value,
}

pub fn path(state: &Path, g: u64) -> PathBuf {
    state.join(format!("gen-{g:03}.json"))
}

pub fn load(
    path: &Path,
    seed: u64,
    params: &serde_json::Value,
    panel: &Panel,
) -> Result<Checkpoint> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "checkpoint {} is missing: generation N needs the checkpoint of N-1 (same --state and --seed)",
            path.display()
        )
    })?;
    let c: Checkpoint = serde_json::from_str(&text)
        .with_context(|| format!("checkpoint {} is corrupt", path.display()))?;
    let bad = |what: String| anyhow!("checkpoint {}: {what}", path.display());
    if c.format != FORMAT {
        return Err(bad(format!("format {:?}, expected {FORMAT}", c.format)));
    }
    if c.seed != seed {
        return Err(bad(format!("made with --seed {}, not {}", c.seed, seed)));
    }
    if c.panel != panel.content_hash() {
        return Err(bad("made on another panel".into()));
    }
    if c.params != *params {
        return Err(bad(format!(
            "made with parameters {}, this run has {}",
            canonical_json(&c.params),
            canonical_json(params)
        )));
    }
    Ok(c)
}

/// What a parent is selected on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SelectBy {
    /// What it adds to the library's least-squares combination (fitness' `pool_score`,
    /// issue 36); files without it fall back to `score`.
    Pool,
    /// Its own score, discounted by its correlation with the library (--corr-pressure).
    Score,
}

impl SelectBy {
    pub fn name(self) -> &'static str {
        match self {
            SelectBy::Pool => "pool",
            SelectBy::Score => "score",
        }
    }
}

/// Selection fitness per candidate id from a fitness file made on `prev` and `panel`
/// (see [`selection_fitness`], or the pool score), and the processing it scored with.
pub fn read_scores(
    fit: &Path,
    prev_hash: &str,
    panel: &Panel,
    pressure: f64,
    by: SelectBy,
) -> Result<(BTreeMap<String, f64>, Processing)> {
    let t = read_parquet(fit)?;
    let prov = Provenance::from_kv(t.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .ok_or_else(|| anyhow!("{}: no provenance (not made by fitness?)", fit.display()))?;
    if prov.inputs.get("candidates").map(String::as_str) != Some(prev_hash) {
        bail!("{} scored other candidates than --prev", fit.display());
    }
    if prov.inputs.get("panel").map(String::as_str) != Some(panel.content_hash()) {
        bail!("{} was made on another panel than --panel", fit.display());
    }
    let processing = Processing::from_metadata(&t.metadata)
        .with_context(|| format!("fitness file {}", fit.display()))?;
    let ids = t.strings("id")?;
    let scores = t.f64s("score")?;
    // Columns older fitness files lack read as "no library".
    let col = |c: &str| -> Result<Vec<f64>> {
        Ok(if t.has_column(c) {
            t.f64s(c)?
        } else {
            vec![f64::NAN; scores.len()]
        })
    };
    let (corr, merit, member) = (
        col("library_max_corr")?,
        col("merit")?,
        col("library_max_corr_score")?,
    );
    let near = col("penalty_corr")?;
    let pool = (by == SelectBy::Pool && t.has_column("pool_score"))
        .then(|| t.f64s("pool_score"))
        .transpose()?;
    let mut out = BTreeMap::new();
    // The train row comes first for each id; every split repeats the train score.
    for (i, id) in ids.into_iter().enumerate() {
        let lib = Lib {
            rho: corr[i],
            near_copy: near[i] > 0.0,
            merit: merit[i],
            member: member[i],
        };
        let f = match &pool {
            Some(p) => p[i],
            None => selection_fitness(scores[i], &lib, pressure),
        };
        out.entry(id).or_insert(f);
    }
    Ok((out, processing))
}
