//! The fitness table (one row per candidate and split, docs/fitness.md lists the
//! columns) and the per-date IC series.

use af_fitness::{QUANTILES, Score};
use af_panel::Panel;
use af_table::Table;
use serde_json::json;

use crate::pass::Cand;

pub struct RowIn<'a> {
    pub index: usize,
    pub generation: i64,
    pub id: &'a str,
    pub expr: &'a str,
    pub split: &'a str,
    pub status: String,
    pub pass: &'a str,
    pub size: usize,
    pub depth: usize,
    pub summary: Option<&'a af_fitness::Summary>,
    pub fast_ric: f64,
    pub score: Option<&'a Score>,
    pub library_ids: &'a [String],
    pub library_scores: &'a [f64],
    /// The horizon (days) the figures are on, and each scored horizon's merit (empty
    /// with one horizon).
    pub horizon: usize,
    pub by_horizon: &'a [f64],
    /// What the candidate adds to the library's combination (FULL pass).
    pub pool: Option<&'a af_fitness::pool::Gain>,
    pub fingerprint: Option<&'a str>,
}

/// The output table, column by column (docs/fitness.md lists them).
#[derive(Default)]
pub struct Rows {
    pub index: Vec<u32>,
    pub generation: Vec<i64>,
    pub id: Vec<String>,
    pub expression: Vec<String>,
    pub split: Vec<String>,
    pub status: Vec<String>,
    pub pass: Vec<String>,
    pub size: Vec<u32>,
    pub depth: Vec<u32>,
    pub nums: Vec<Vec<f64>>,
    pub dates_used: Vec<u32>,
    pub dates_dropped: Vec<u32>,
    pub by_year: Vec<String>,
    pub lib_id: Vec<Option<String>>,
    pub admit: Vec<bool>,
    pub horizon: Vec<u32>,
    pub fingerprint: Vec<Option<String>>,
    /// `merit_h<H>` columns, one per scored horizon when there are several.
    pub by_horizon: Vec<(String, Vec<f64>)>,
}

/// Numeric columns in output order, read from a split summary and the score.
pub const NUMS: [&str; 27] = [
    "ic_mean",
    "ic_std",
    "icir",
    "ic_tstat",
    "rank_ic_mean",
    "rank_ic_std",
    "rank_icir",
    "rank_ic_tstat",
    "rank_ic_positive",
    "rank_autocorr",
    "turnover",
    "top_turnover",
    "long_short_mean",
    "coverage",
    "fast_rank_ic",
    "library_max_corr",
    "library_max_corr_score",
    "penalty_size",
    "penalty_turnover",
    "penalty_corr",
    "penalty_coverage",
    "score",
    "merit",
    "rank_ic_min_year",
    "pool_gain",
    "pool_gain_valid",
    "pool_score",
];

impl Rows {
    pub fn push(&mut self, r: RowIn) {
        self.index.push(r.index as u32);
        self.generation.push(r.generation);
        self.id.push(r.id.to_string());
        self.expression.push(r.expr.to_string());
        self.split.push(r.split.to_string());
        self.status.push(r.status);
        self.pass.push(r.pass.to_string());
        self.size.push(r.size as u32);
        self.depth.push(r.depth as u32);
        let nan = f64::NAN;
        let s = r.summary;
        let g = |f: fn(&af_fitness::Summary) -> f64| s.map_or(nan, f);
        let sc = |f: fn(&Score) -> f64| r.score.map_or(nan, f);
        let used = s.map_or(0, |s| s.dates_used);
        // The selection fitness of pool mode: the train gain of a candidate whose own
        // figures pass the score's rules (coverage, look-ahead, paying for its size and
        // turnover); a near-copy is not zeroed — it competes on what it adds.
        let pool_gain = r.pool.map_or(nan, |g| g.gain[0]);
        let pool_gain_valid = r.pool.and_then(|g| g.gain.get(1).copied()).unwrap_or(nan);
        let pool_score = match r.score {
            Some(sc) if sc.merit > 0.0 && pool_gain.is_finite() => pool_gain.max(0.0),
            _ => 0.0,
        };
        let vals = [
            g(|s| s.ic_mean),
            g(|s| s.ic_std),
            g(|s| s.icir),
            g(|s| s.ic_tstat),
            g(|s| s.rank_ic_mean),
            g(|s| s.rank_ic_std),
            g(|s| s.rank_icir),
            g(|s| s.rank_ic_tstat),
            g(|s| s.rank_ic_positive),
            g(|s| s.rank_autocorr),
            g(|s| s.turnover),
            g(|s| s.top_turnover),
            g(|s| s.long_short_mean),
            g(|s| s.coverage),
            r.fast_ric,
            g(|s| s.lib_corr),
            s.and_then(|s| s.lib_corr_which)
                .and_then(|k| r.library_scores.get(k).copied())
                .unwrap_or(nan),
            sc(|s| s.penalty_size),
            sc(|s| s.penalty_turnover),
            sc(|s| s.penalty_corr),
            sc(|s| s.penalty_coverage),
            r.score.map_or(0.0, |s| s.score),
            r.score.map_or(0.0, |s| s.merit),
            s.map_or(nan, |s| {
                s.rank_ic_by_year.values().copied().fold(f64::NAN, f64::min)
            }),
            pool_gain,
            pool_gain_valid,
            pool_score,
        ];
        if self.nums.is_empty() {
            self.nums = vec![Vec::new(); NUMS.len()];
        }
        for (c, v) in self.nums.iter_mut().zip(vals) {
            c.push(v);
        }
        self.dates_used.push(used as u32);
        self.dates_dropped
            .push(s.map_or(0, |s| s.dates_dropped as u32));
        let years: serde_json::Map<String, serde_json::Value> = s
            .map(|s| {
                s.rank_ic_by_year
                    .iter()
                    .map(|(y, v)| (y.to_string(), json!(v)))
                    .collect()
            })
            .unwrap_or_default();
        self.by_year
            .push(serde_json::Value::Object(years).to_string());
        self.lib_id.push(
            s.and_then(|s| s.lib_corr_which)
                .and_then(|k| r.library_ids.get(k).cloned()),
        );
        self.admit.push(r.score.is_some_and(|s| s.admit));
        self.horizon.push(r.horizon as u32);
        self.fingerprint.push(r.fingerprint.map(str::to_string));
        for (k, (_, col)) in self.by_horizon.iter_mut().enumerate() {
            col.push(r.by_horizon.get(k).copied().unwrap_or(f64::NAN));
        }
    }

    pub fn into_table(mut self) -> Table {
        if self.nums.is_empty() {
            self.nums = vec![Vec::new(); NUMS.len()];
        }
        let mut t = Table::new()
            .u32("candidate", self.index)
            .i64("generation", self.generation)
            .str("id", self.id)
            .str("expression", self.expression)
            .str("split", self.split)
            .str("status", self.status)
            .str("pass", self.pass)
            .u32("size", self.size)
            .u32("depth", self.depth);
        for (name, v) in NUMS.iter().zip(self.nums) {
            t = t.f64(name, v);
        }
        t = t
            .u32("dates_used", self.dates_used)
            .u32("dates_dropped", self.dates_dropped)
            .str("rank_ic_by_year", self.by_year)
            .opt_str("library_max_corr_id", self.lib_id)
            .bool("admit", self.admit)
            .u32("horizon", self.horizon)
            .opt_str("fingerprint", self.fingerprint);
        for (name, v) in self.by_horizon {
            t = t.f64(&name, v);
        }
        t
    }
}

/// Per (candidate, split, usable date): the series reports draw.
pub fn ic_series(panel: &Panel, cands: &[Cand], sel: &[usize]) -> Table {
    let mut cand = Vec::new();
    let mut id = Vec::new();
    let mut split = Vec::new();
    let mut date = Vec::new();
    let mut used = Vec::new();
    let mut n = Vec::new();
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 5 + QUANTILES];
    for (ci, c) in cands.iter().enumerate() {
        let (Some(ev), Ok(e)) = (&c.full, &c.expr) else {
            continue;
        };
        let eid = e.id();
        for s in ev {
            for d in &s.dates {
                cand.push(sel[ci] as u32);
                id.push(eid.clone());
                split.push(s.name.clone());
                date.push(panel.dates()[d.t]);
                used.push(d.dropped.is_none());
                n.push(d.n);
                let vals = [
                    d.ic,
                    d.rank_ic,
                    d.long_short,
                    d.rank_autocorr,
                    d.top_turnover,
                ];
                for (k, v) in vals.into_iter().chain(d.q_mean).enumerate() {
                    cols[k].push(v);
                }
            }
        }
    }
    let mut t = Table::new()
        .u32("candidate", cand)
        .str("id", id)
        .str("split", split)
        .date("date", date)
        .bool("used", used)
        .u32("n_assets", n);
    let names = [
        "ic",
        "rank_ic",
        "long_short",
        "rank_autocorr",
        "top_turnover",
    ];
    let qn: Vec<String> = (1..=QUANTILES).map(|q| format!("q{q}_mean_ret")).collect();
    for (k, v) in cols.into_iter().enumerate() {
        let name = if k < names.len() {
            names[k]
        } else {
            qn[k - names.len()].as_str()
        };
        t = t.f64(name, v);
    }
    t
}
