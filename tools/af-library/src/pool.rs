//! The pool library-merge selects from: the admissible candidates of fitness files
//! (full pass, status ok, admitted) and the current library's members, each with its
//! merit and per-split metrics; and the library's table, CSV and YAML written from the
//! chosen ones.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use af_fitness::processing::Processing;
use af_panel::Panel;
use af_table::Table;
use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use crate::Library;

/// Per-split metrics a library keeps (fitness column names).
pub const METRICS: [&str; 9] = [
    "rank_ic_mean",
    "rank_icir",
    "ic_mean",
    "icir",
    "rank_ic_positive",
    "turnover",
    "top_turnover",
    "long_short_mean",
    "coverage",
];

/// The processing a fitness file recorded (every input must agree: it defines the
/// processed values), checked to be of `panel`.
pub fn processing_of(
    meta: &BTreeMap<String, String>,
    path: &Path,
    panel: &Panel,
) -> Result<Processing> {
    let prov = af_store::Provenance::from_kv(meta.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .ok_or_else(|| {
            anyhow!(
                "{}: no provenance metadata (not made by fitness?)",
                path.display()
            )
        })?;
    if prov.tool != "fitness" {
        bail!("{}: made by {}, not fitness", path.display(), prov.tool);
    }
    let ph = prov.inputs.get("panel").cloned().unwrap_or_default();
    if ph != panel.content_hash() {
        bail!(
            "{}: scored on panel {}, but --panel {} is {}",
            path.display(),
            &ph[..ph.len().min(12)],
            panel.path().display(),
            &panel.content_hash()[..12]
        );
    }
    Processing::from_metadata(meta).with_context(|| path.display().to_string())
}

/// The score rules a fitness file recorded (`None`: made before they were recorded).
pub fn score_rules_of(meta: &BTreeMap<String, String>) -> Option<af_fitness::ScoreConfig> {
    let prov = af_store::Provenance::from_kv(meta.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    af_fitness::ScoreConfig::from_json(prov.params.get(af_fitness::ScoreConfig::KEY)?)
}

/// One factor competing for a place.
pub struct Entry {
    pub id: String,
    pub expression: String,
    pub generation: i64,
    pub size: f64,
    pub score: f64,
    pub admitted_by: &'static str,
    /// The label horizon (days) its figures are on: its best of the scored ones.
    pub horizon: u32,
    /// split -> metric -> value
    pub metrics: BTreeMap<String, BTreeMap<&'static str, f64>>,
    /// Index in the current library, when it comes from there.
    pub from_library: Option<usize>,
    /// What fitness measured it adds to the library's combination (train combined IC
    /// gain; NaN: not measured, or a member).
    pub gain: f64,
}

/// Which of a fitness file's candidates may compete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Those fitness admitted on their own valid RankIC ([`crate::select::greedy`]).
    Own,
    /// Every one whose own figures pass the score's rules (merit > 0: coverage,
    /// look-ahead, paying for its size): what it adds to the combination on valid
    /// decides, in [`crate::select::stepwise`].
    Pool,
}

/// Library member `i` as a competitor of the merge.
pub fn entry_from_library(l: &Library, i: usize) -> Entry {
    let m = &l.members[i];
    Entry {
        id: m.id.clone(),
        expression: m.expression.clone(),
        generation: m.generation,
        size: m.size,
        score: m.score,
        admitted_by: match m.admitted_by.as_str() {
            "score" => "score",
            "pool" => "pool",
            _ => "valid",
        },
        horizon: m.horizon as u32,
        metrics: m.metrics.clone(),
        from_library: Some(i),
        gain: f64::NAN,
    }
}

/// Admissible candidates of one fitness file (full pass, status ok, and admitted by
/// `rule`); `primary`: its processing's horizon, for files from before the `horizon`
/// column.
pub fn read_fitness(
    t: &af_table::ReadTable,
    path: &Path,
    primary: usize,
    rule: Admission,
    out: &mut Vec<Entry>,
    split_names: &mut Vec<String>,
) -> Result<usize> {
    let ctx = |e: anyhow::Error| e.context(format!("fitness file {}", path.display()));
    let cand = t.f64s("candidate").map_err(ctx)?;
    let id = t.strings("id").map_err(ctx)?;
    let ex = t.strings("expression").map_err(ctx)?;
    let split = t.strings("split").map_err(ctx)?;
    let status = t.strings("status").map_err(ctx)?;
    let pass = t.strings("pass").map_err(ctx)?;
    let admit = t.bools("admit").map_err(ctx)?;
    // The library's own de-correlation replaces fitness' library bound, so a better
    // near-copy of a member competes on its merit and can take the member's place.
    // (Files from before `merit` existed: their score.)
    let merit = if t.has_column("merit") {
        t.f64s("merit").map_err(ctx)?
    } else {
        t.f64s("score").map_err(ctx)?
    };
    let size = t.f64s("size").map_err(ctx)?;
    let gain = if t.has_column("pool_gain") {
        t.f64s("pool_gain").map_err(ctx)?
    } else {
        vec![f64::NAN; cand.len()]
    };
    let generation = if t.has_column("generation") {
        t.f64s("generation").map_err(ctx)?
    } else {
        vec![-1.0; cand.len()]
    };
    let horizon = if t.has_column("horizon") {
        t.f64s("horizon").map_err(ctx)?
    } else {
        vec![primary as f64; cand.len()]
    };
    let cols: Vec<Vec<f64>> = METRICS
        .iter()
        .map(|m| t.f64s(m).map_err(ctx))
        .collect::<Result<_>>()?;
    let has_valid = split.iter().any(|s| s == "valid");
    let mut by_cand: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (r, c) in cand.iter().enumerate() {
        by_cand.entry(*c as u64).or_default().push(r);
        if !split_names.contains(&split[r]) {
            split_names.push(split[r].clone());
        }
    }
    let n = by_cand.len();
    for rows in by_cand.values() {
        let r0 = rows[0];
        let admitted = match rule {
            Admission::Own => admit[r0],
            Admission::Pool => merit[r0] > 0.0,
        };
        if status[r0] != "ok" || pass[r0] != "full" || !admitted {
            continue;
        }
        let mut metrics = BTreeMap::new();
        for &r in rows {
            let m: BTreeMap<&'static str, f64> =
                METRICS.iter().zip(&cols).map(|(k, c)| (*k, c[r])).collect();
            metrics.insert(split[r].clone(), m);
        }
        out.push(Entry {
            id: id[r0].clone(),
            expression: ex[r0].clone(),
            generation: generation[r0] as i64,
            size: size[r0],
            score: merit[r0],
            admitted_by: match (rule, has_valid) {
                (Admission::Pool, _) => "pool",
                (_, true) => "valid",
                (_, false) => "score",
            },
            horizon: horizon[r0] as u32,
            metrics,
            from_library: None,
            gain: gain[r0],
        });
    }
    Ok(n)
}

/// The library table, column by column.
#[derive(Default)]
pub struct TableCols {
    pub rank: Vec<u32>,
    pub id: Vec<String>,
    pub expression: Vec<String>,
    pub generation: Vec<i64>,
    pub size: Vec<f64>,
    pub score: Vec<f64>,
    pub admitted_by: Vec<String>,
    pub horizon: Vec<u32>,
    pub max_corr: Vec<f64>,
    pub corr_with: Vec<Option<String>>,
    pub metrics: Vec<BTreeMap<String, BTreeMap<&'static str, f64>>>,
    /// Pool selection: train combined IC lost without it, and its weight (NaN under
    /// the greedy selection).
    pub contribution: Vec<f64>,
    pub weight: Vec<f64>,
}

impl TableCols {
    pub fn push(
        &mut self,
        rank: usize,
        e: &Entry,
        _splits: &[String],
        c: f64,
        with: Option<String>,
    ) {
        self.rank.push(rank as u32);
        self.id.push(e.id.clone());
        self.expression.push(e.expression.clone());
        self.generation.push(e.generation);
        self.size.push(e.size);
        self.score.push(e.score);
        self.admitted_by.push(e.admitted_by.into());
        self.horizon.push(e.horizon);
        self.max_corr.push(c);
        self.corr_with.push(with);
        self.metrics.push(e.metrics.clone());
        self.contribution.push(f64::NAN);
        self.weight.push(f64::NAN);
    }

    pub fn metric(&self, i: usize, s: &str, m: &str) -> f64 {
        self.metrics[i]
            .get(s)
            .and_then(|x| x.get(m))
            .copied()
            .unwrap_or(f64::NAN)
    }

    pub fn table(&self, splits: &[String]) -> Table {
        let mut t = Table::new()
            .u32("rank", self.rank.clone())
            .str("id", self.id.clone())
            .str("expression", self.expression.clone())
            .i64("generation", self.generation.clone())
            .f64("size", self.size.clone())
            .f64("score", self.score.clone())
            .str("admitted_by", self.admitted_by.clone())
            .u32("horizon", self.horizon.clone());
        for s in splits {
            for m in METRICS {
                let v = (0..self.id.len()).map(|i| self.metric(i, s, m)).collect();
                t = t.f64(&format!("{s}_{m}"), v);
            }
        }
        t.f64("max_corr_in_library", self.max_corr.clone())
            .opt_str("max_corr_with", self.corr_with.clone())
            .f64("pool_contribution", self.contribution.clone())
            .f64("pool_weight", self.weight.clone())
    }

    pub fn csv(&self, splits: &[String]) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut head: Vec<String> = [
            "rank",
            "id",
            "expression",
            "generation",
            "score",
            "admitted_by",
            "horizon",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for s in splits {
            for m in METRICS {
                head.push(format!("{s}_{m}"));
            }
        }
        head.push("max_corr_in_library".into());
        head.push("pool_contribution".into());
        w.write_record(&head)?;
        for i in 0..self.id.len() {
            let mut r = vec![
                self.rank[i].to_string(),
                self.id[i].clone(),
                self.expression[i].clone(),
                self.generation[i].to_string(),
                self.score[i].to_string(),
                self.admitted_by[i].clone(),
                self.horizon[i].to_string(),
            ];
            for s in splits {
                for m in METRICS {
                    r.push(self.metric(i, s, m).to_string());
                }
            }
            r.push(self.max_corr[i].to_string());
            r.push(self.contribution[i].to_string());
            w.write_record(&r)?;
        }
        Ok(String::from_utf8(
            w.into_inner().map_err(|e| anyhow!("{e}"))?,
        )?)
    }

    pub fn yaml(&self, splits: &[String], panel: &Panel, p: &Processing) -> String {
        let num = |x: f64| {
            if x.is_nan() {
                ".nan".to_string()
            } else {
                format!("{}", (x * 1e6).round() / 1e6)
            }
        };
        let q = |s: &str| Value::String(s.to_string()).to_string();
        let mut y = String::new();
        let _ = writeln!(
            y,
            "# alpha-factory factor library: {} factors",
            self.id.len()
        );
        let _ = writeln!(y, "panel: {}", q(panel.content_hash()));
        let _ = writeln!(y, "horizon: {}", p.horizon);
        if !p.horizons.is_empty() {
            let hs: Vec<String> = p.horizons.iter().map(|h| h.to_string()).collect();
            let _ = writeln!(y, "horizons: [{}]", hs.join(", "));
        }
        let _ = writeln!(y, "winsor: {}", q(&p.winsor.name()));
        let _ = writeln!(y, "neutralize: {}", q(p.neutralize.name()));
        let _ = writeln!(y, "factors:");
        for i in 0..self.id.len() {
            let _ = writeln!(y, "  - rank: {}", self.rank[i]);
            let _ = writeln!(y, "    expression: {}", q(&self.expression[i]));
            let _ = writeln!(y, "    id: {}", q(&self.id[i]));
            let _ = writeln!(y, "    generation: {}", self.generation[i]);
            let _ = writeln!(y, "    score: {}", num(self.score[i]));
            let _ = writeln!(y, "    admitted_by: {}", self.admitted_by[i]);
            let _ = writeln!(y, "    horizon: {}", self.horizon[i]);
            let _ = writeln!(y, "    max_corr_in_library: {}", num(self.max_corr[i]));
            if self.contribution[i].is_finite() {
                let _ = writeln!(y, "    pool_contribution: {}", num(self.contribution[i]));
            }
            for s in splits {
                let parts: Vec<String> = ["rank_ic_mean", "rank_icir", "turnover", "coverage"]
                    .iter()
                    .map(|m| format!("{m}: {}", num(self.metric(i, s, m))))
                    .collect();
                let _ = writeln!(y, "    {s}: {{{}}}", parts.join(", "));
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use af_store::Provenance;
    use af_table::{Table, read_parquet, write_parquet};

    /// Three candidates × (train, valid): one admissible near-copy (score 0, merit
    /// 0.03), one scored only by FAST, one not admitted.
    #[test]
    fn only_admitted_full_pass_candidates_enter_on_their_merit() {
        let dir = std::env::temp_dir().join(format!("af-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.parquet");
        let n = 6;
        fn rep(v: [&str; 3]) -> Vec<String> {
            v.iter()
                .flat_map(|x| [x.to_string(), x.to_string()])
                .collect()
        }
        let mut t = Table::new()
            .f64("candidate", vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
            .str("id", rep(["a", "b", "c"]))
            .str("expression", rep(["close", "open", "high"]))
            .str("split", ["train", "valid"].repeat(3))
            .str("status", rep(["ok", "ok", "ok"]))
            .str("pass", rep(["full", "fast", "full"]))
            .bool("admit", vec![true, true, true, true, false, false])
            .f64("score", vec![0.0; n])
            .f64("merit", vec![0.03, 0.03, 0.05, 0.05, 0.04, 0.04])
            .f64("size", vec![1.0; n])
            .f64("generation", vec![2.0; n]);
        for (k, m) in METRICS.iter().enumerate() {
            t = t.f64(m, (0..n).map(|r| (k * 10 + r) as f64).collect());
        }
        write_parquet(&path, t, &Provenance::new("fitness", "0")).unwrap();
        let (mut out, mut splits) = (Vec::new(), Vec::new());
        let pooled = read_fitness(
            &read_parquet(&path).unwrap(),
            &path,
            1,
            Admission::Own,
            &mut out,
            &mut splits,
        )
        .unwrap();
        assert_eq!((pooled, out.len()), (3, 1));
        let e = &out[0];
        assert_eq!(
            (e.id.as_str(), e.score, e.admitted_by),
            ("a", 0.03, "valid")
        );
        assert_eq!(splits, ["train", "valid"]);
        assert_eq!(e.metrics["valid"]["rank_ic_mean"], 1.0);
        // Pool admission: every full-pass candidate with merit competes (c too).
        let (mut out, mut splits) = (Vec::new(), Vec::new());
        read_fitness(
            &read_parquet(&path).unwrap(),
            &path,
            1,
            Admission::Pool,
            &mut out,
            &mut splits,
        )
        .unwrap();
        let ids: Vec<&str> = out.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert!(
            out.iter()
                .all(|e| e.admitted_by == "pool" && e.gain.is_nan())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
