//! Factor fitness: how good is a factor, measured the way a careful quant would.
//!
//! For each date of a split (docs/fitness.md): mask the factor to the universe,
//! winsorize and z-score it ([`prep`]), neutralize it against industry and size, then
//! correlate it with the forward return (IC, RankIC), sort it into quintiles
//! (long-short return) and compare it with the previous day (rank autocorrelation,
//! top-quintile turnover). [`Context`] holds everything that depends on the panel
//! only — the universe, the label's ranks, the neutralization design of each date — so
//! scoring a candidate is one pass over its matrix, parallel over dates.
//!
//! The crate never links polars or parquet; the `fitness` tool does the I/O.

pub mod fingerprint;
pub mod niche;
pub mod pool;
pub mod prep;
pub mod processing;
pub mod split;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::Arc;

use af_expr::kernels::cs::{RankScratch, rank_row};
use af_panel::dates::year_of;
use af_panel::{Panel, columns};
use anyhow::{Result, anyhow};
use rayon::prelude::*;

use prep::Design;
pub use processing::Config;
use stats::{mean_std, pearson_by, pearson_pairs};

/// Quantile buckets for long-short returns and top-quantile turnover.
pub const QUANTILES: usize = 5;

/// What every candidate shares on one date: the assets that can be scored, those with
/// a label, the label's ranks and the neutralization design.
struct Base {
    cells: Vec<u32>,
    pairs: Vec<u32>,
    /// Percentile ranks of the label over `pairs`, in `pairs` order.
    label_rank: Vec<f64>,
    /// `pairs` in ascending label order: a candidate that leaves some of them out gets
    /// its label ranks by walking this ([`stats::subset_ranks`]) instead of a sort.
    label_order: Vec<u32>,
    design: Design,
}

/// Panel-level precomputation, built once per panel and configuration.
pub struct Context<'p> {
    pub cfg: Config,
    nd: usize,
    na: usize,
    dates: &'p [i32],
    universe: Arc<Vec<bool>>,
    label: &'p [f64],
    groups: Option<&'p [i32]>,
    n_groups: usize,
    logcap: Option<Vec<f64>>,
    base: Vec<Option<Base>>,
    /// The label as the quantile returns use it, when bounded ([`Context::bound_returns`]).
    return_label: Option<Vec<f64>>,
    /// Things the user should know (e.g. size neutralization skipped: no caps).
    pub warnings: Vec<String>,
}

/// Why a date was not used.
pub const DROP_FEW: &str = "fewer assets than --min-assets";
pub const DROP_CONSTANT: &str = "factor constant across assets";

/// One date's figures for one candidate.
#[derive(Debug, Clone)]
pub struct DateStat {
    pub t: usize,
    pub dropped: Option<&'static str>,
    pub ic: f64,
    pub rank_ic: f64,
    /// Mean forward return of each quantile (1 = lowest factor).
    pub q_mean: [f64; QUANTILES],
    pub long_short: f64,
    /// Assets with both factor and label.
    pub n: u32,
    /// Universe members with a finite factor, and universe size.
    pub n_cov: u32,
    pub n_univ: u32,
    /// Against the previous trading day.
    pub rank_autocorr: f64,
    pub top_turnover: f64,
}

impl DateStat {
    fn empty(t: usize) -> Self {
        DateStat {
            t,
            dropped: None,
            ic: f64::NAN,
            rank_ic: f64::NAN,
            q_mean: [f64::NAN; QUANTILES],
            long_short: f64::NAN,
            n: 0,
            n_cov: 0,
            n_univ: 0,
            rank_autocorr: f64::NAN,
            top_turnover: f64::NAN,
        }
    }
}

/// A split's figures (docs/fitness.md, "Per split").
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub ic_mean: f64,
    pub ic_std: f64,
    pub icir: f64,
    pub ic_tstat: f64,
    pub rank_ic_mean: f64,
    pub rank_ic_std: f64,
    pub rank_icir: f64,
    pub rank_ic_tstat: f64,
    /// Share of used dates with RankIC > 0.
    pub rank_ic_positive: f64,
    pub rank_autocorr: f64,
    /// 1 − mean lag-1 rank autocorrelation.
    pub turnover: f64,
    /// Mean share of the top quintile that is new since the previous day.
    pub top_turnover: f64,
    pub long_short_mean: f64,
    pub coverage: f64,
    pub dates_used: usize,
    pub dates_dropped: usize,
    /// Dropped dates by reason.
    pub dropped: BTreeMap<&'static str, usize>,
    /// Mean RankIC per calendar year.
    pub rank_ic_by_year: BTreeMap<i32, f64>,
    /// Library correlation: max |mean per-date corr| and the factor's index.
    pub lib_corr: f64,
    pub lib_corr_which: Option<usize>,
}

/// One split of one candidate.
#[derive(Debug, Clone)]
pub struct SplitEval {
    pub name: String,
    pub dates: Vec<DateStat>,
    pub summary: Summary,
}

/// Reused matrices, so scoring thousands of candidates allocates nothing per candidate.
#[derive(Default)]
pub struct Workspace {
    /// The processed (neutralized) factor; rows of processed dates only.
    pub resid: Vec<f64>,
    rank: Vec<f64>,
    quint: Vec<u8>,
}

/// Library factors' stored, processed values for the near-copy check, with what the
/// per-date correlations need precomputed once per run ([`Context::library`]).
#[derive(Default)]
pub struct Library<'a> {
    values: Vec<&'a [f64]>,
    /// `[date][member]`: the member's mean and centred sum of squares on the date when
    /// its values are exactly the date's scored cells (the usual case: it was processed
    /// like the candidates). A candidate that also covers them then needs one masked
    /// dot product per member instead of a two-pass correlation.
    exact: Vec<Option<(f64, f64)>>,
}

impl<'a> Library<'a> {
    /// `values`: the members' `[n_dates][n_assets]` matrices; `cells(t)`: the cells date
    /// t scores (`None`: not scored).
    pub fn new<'c>(
        values: &[&'a [f64]],
        na: usize,
        cells: impl Fn(usize) -> Option<&'c [u32]> + Sync,
    ) -> Library<'a> {
        let nd = values.first().map_or(0, |v| v.len() / na.max(1));
        let exact: Vec<Option<(f64, f64)>> = (0..nd)
            .into_par_iter()
            .flat_map_iter(|t| {
                let cs = cells(t);
                values.iter().map(move |l| {
                    let cs = cs?;
                    let row = l.get(t * na..(t + 1) * na)?;
                    let finite = row.iter().filter(|v| v.is_finite()).count();
                    if finite != cs.len() || cs.iter().any(|&a| !row[a as usize].is_finite()) {
                        return None;
                    }
                    let n = finite as f64;
                    let m = cs.iter().map(|&a| row[a as usize]).sum::<f64>() / n;
                    let ss = cs
                        .iter()
                        .map(|&a| (row[a as usize] - m) * (row[a as usize] - m))
                        .sum::<f64>();
                    Some((m, ss))
                })
            })
            .collect();
        Library {
            values: values.to_vec(),
            exact,
        }
    }

    /// No library: no correlation check.
    pub fn empty() -> Library<'a> {
        Library::default()
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Pearson correlation of processed row `r` (date `t`, NaN where unscored) with each
    /// member's row, over the cells where both have a value. `cells`: how many cells
    /// the date scores (`r` has values on those only). `xc` is scratch.
    fn corrs(&self, t: usize, na: usize, r: &[f64], cells: usize, xc: &mut Vec<f64>) -> Vec<f64> {
        if self.values.is_empty() {
            return Vec::new();
        }
        let k = self.values.len();
        let (n, sxx, sum_xc) = stats::centre(r, xc);
        let covers = n == cells;
        self.values
            .iter()
            .enumerate()
            .map(|(j, l)| {
                let lr = &l[t * na..(t + 1) * na];
                match self.exact.get(t * k + j).copied().flatten() {
                    Some((my, syy)) if covers && n >= 2 => {
                        // Σ (x - mx)(y - my) = Σ xc·y - my Σ xc over the shared cells.
                        let d = (sxx * syy).sqrt();
                        if d > 0.0 {
                            (stats::masked_dot(xc, lr) - my * sum_xc) / d
                        } else {
                            f64::NAN
                        }
                    }
                    _ => pearson_pairs(r, lr),
                }
            })
            .collect()
    }
}

#[derive(Default)]
struct Scratch {
    sel: Vec<u32>,
    pairs: Vec<u32>,
    v: Vec<f64>,
    w: Vec<f64>,
    sz: Vec<f64>,
    design: Design,
    rank: RankScratch,
    order: Vec<u32>,
    lrow: Vec<f64>,
    lr: Vec<f64>,
}

impl<'p> Context<'p> {
    /// Precompute for `panel` on the dates `needed` (and the day before each, for
    /// turnover). Errors when the label horizon is missing.
    pub fn new(panel: &'p Panel, cfg: Config, needed: &[usize]) -> Result<Context<'p>> {
        let (nd, na) = (panel.n_dates(), panel.n_assets());
        let lname = columns::label(cfg.horizon);
        if !panel.has_field(&lname) {
            let have: Vec<&str> = panel
                .field_names()
                .into_iter()
                .filter(|f| columns::is_label(f))
                .collect();
            return Err(anyhow!(
                "panel {} has no label for horizon {} ({lname}); it has {} — rebuild it with \
                 `panel-build --horizons ...,{}` or pick one of those",
                panel.path().display(),
                cfg.horizon,
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                },
                cfg.horizon
            ));
        }
        let label = panel.field(&lname)?.data;
        let mut warnings = Vec::new();
        let universe = match panel.mask_shared(columns::UNIVERSE) {
            Ok(u) => u,
            Err(_) => {
                warnings.push("the panel has no in_universe mask: every asset counts".into());
                Arc::new(vec![true; nd * na])
            }
        };
        let (groups, n_groups) = match (cfg.industry, panel.groups(columns::INDUSTRY)) {
            (true, Ok(g)) => (Some(g.keys), g.names.len().max(1)),
            (true, Err(_)) => {
                warnings.push("industry neutralization skipped: the panel has no industry".into());
                (None, 1)
            }
            (false, _) => (None, 1),
        };
        let mut want = vec![false; nd];
        for &t in needed {
            if t < nd {
                want[t] = true;
                if t > 0 {
                    want[t - 1] = true;
                }
            }
        }
        let logcap = if cfg.size {
            match panel.field(columns::CAP) {
                // Logs only on the dates scored: 12.5 M logs on `full` cost more than
                // the rest of the setup.
                Ok(c) if processing::has_caps(panel) => Some(
                    c.data
                        .par_chunks(na)
                        .zip(&want)
                        .flat_map_iter(|(row, &w)| {
                            row.iter().map(move |&x| {
                                if w && x.is_finite() && x > 0.0 {
                                    x.ln()
                                } else {
                                    f64::NAN
                                }
                            })
                        })
                        .collect::<Vec<f64>>(),
                ),
                _ => {
                    warnings
                        .push("size neutralization skipped: the panel has no market caps".into());
                    None
                }
            }
        } else {
            None
        };
        let mut ctx = Context {
            cfg,
            nd,
            na,
            dates: panel.dates(),
            universe,
            label,
            groups,
            n_groups,
            logcap,
            base: Vec::new(),
            return_label: None,
            warnings,
        };
        let base: Vec<Option<Base>> = (0..nd)
            .into_par_iter()
            .map_init(RankScratch::default, |rs, t| {
                want[t].then(|| ctx.base_for(t, rs))
            })
            .collect();
        ctx.base = base;
        Ok(ctx)
    }

    fn row<'a, T>(&self, m: &'a [T], t: usize) -> &'a [T] {
        &m[t * self.na..(t + 1) * self.na]
    }

    fn neutralizing(&self) -> bool {
        self.groups.is_some() || self.logcap.is_some()
    }

    fn base_for(&self, t: usize, rs: &mut RankScratch) -> Base {
        let ur = self.row(&self.universe, t);
        let gr = self.groups.map(|g| self.row(g, t));
        let cr = self.logcap.as_deref().map(|c| self.row(c, t));
        let lr = self.row(self.label, t);
        let cells: Vec<u32> = (0..self.na)
            .filter(|&a| {
                ur[a] && gr.is_none_or(|g| g[a] >= 0) && cr.is_none_or(|c| c[a].is_finite())
            })
            .map(|a| a as u32)
            .collect();
        let pairs: Vec<u32> = cells
            .iter()
            .copied()
            .filter(|&a| lr[a as usize].is_finite())
            .collect();
        let mut full = vec![f64::NAN; self.na];
        rank_row(lr, &pairs, rs, &mut full);
        let label_rank = pairs.iter().map(|&a| full[a as usize]).collect();
        let label_order = (0..pairs.len()).map(|k| rs.sorted_cell(k) as u32).collect();
        let mut design = Design::default();
        if self.neutralizing() {
            design.build(&cells, gr, cr, self.n_groups, self.cfg.ridge);
        }
        Base {
            cells,
            pairs,
            label_rank,
            label_order,
            design,
        }
    }

    /// The library's values (`[n_dates][n_assets]` each, processed like candidates) ready
    /// for [`Context::evaluate`]'s correlation check.
    pub fn library<'a>(&self, values: &[&'a [f64]]) -> Library<'a> {
        Library::new(values, self.na, |t| {
            self.base[t].as_ref().map(|b| b.cells.as_slice())
        })
    }

    pub fn n_dates(&self) -> usize {
        self.nd
    }

    /// Bound the returns the quantile figures (quintile means, long-short) are made of:
    /// per date, the label is clipped to median ± `k` × 1.4826 × MAD of the day's scored
    /// assets. RankIC and IC keep the raw label. An unadjusted 100× jump or a data error
    /// then moves one day's quintile mean by a few robust σ, not by +414 % (issue 20: a
    /// long-short drawdown of 34 854 %). Returns (values clipped, values seen).
    pub fn bound_returns(&mut self, k: f64) -> (usize, usize) {
        let mut lab = self.label.to_vec();
        let (mut clipped, mut seen) = (0, 0);
        let mut w = Vec::new();
        for t in 0..self.nd {
            let Some(b) = &self.base[t] else { continue };
            let mut v: Vec<f64> = b
                .pairs
                .iter()
                .map(|&a| lab[t * self.na + a as usize])
                .collect();
            let before = v.clone();
            prep::winsorize(&mut v, prep::Winsor::Mad(k), &mut w);
            for ((&a, x), y) in b.pairs.iter().zip(&v).zip(&before) {
                seen += 1;
                if x != y {
                    clipped += 1;
                }
                lab[t * self.na + a as usize] = *x;
            }
        }
        self.return_label = Some(lab);
        (clipped, seen)
    }

    /// Score one candidate's values (`[n_dates][n_assets]`) on `splits` (name, usable
    /// dates). `library` holds stored, processed factor values for the correlation
    /// check. Deterministic: per-date work is parallel, every sum runs in date order.
    pub fn evaluate(
        &self,
        x: &[f64],
        splits: &[(String, Vec<usize>)],
        library: &Library,
        ws: &mut Workspace,
    ) -> Vec<SplitEval> {
        let nd = self.nd;
        let mut process = vec![false; nd];
        for (_, ds) in splits {
            for &t in ds {
                process[t] = true;
                if self.cfg.turnover && t > 0 && self.base[t - 1].is_some() {
                    process[t - 1] = true;
                }
            }
        }
        let stats = self.process_rows(x, &process, ws);
        // Turnover against the previous day, and library correlations, per used date.
        let (resid, rank, quint) = (&ws.resid, &ws.rank, &ws.quint);
        let follow: Vec<(f64, f64, Vec<f64>)> = (0..nd)
            .into_par_iter()
            .map_init(Vec::new, |xc, t| {
                let used = stats[t].as_ref().is_some_and(|s| s.dropped.is_none());
                if !used {
                    return (f64::NAN, f64::NAN, Vec::new());
                }
                let (mut ac, mut tt) = (f64::NAN, f64::NAN);
                if self.cfg.turnover
                    && t > 0
                    && stats[t - 1].as_ref().is_some_and(|s| s.dropped.is_none())
                {
                    let (r0, r1) = (self.row(rank, t - 1), self.row(rank, t));
                    ac = pearson_pairs(r1, r0);
                    let (q0, q1) = (self.row(quint, t - 1), self.row(quint, t));
                    if q0.iter().any(|&v| v > 0) {
                        let top = QUANTILES as u8;
                        let now = q1.iter().filter(|&&v| v == top).count();
                        let new = q1
                            .iter()
                            .zip(q0)
                            .filter(|&(&a, &b)| a == top && b != top)
                            .count();
                        if now > 0 {
                            tt = new as f64 / now as f64;
                        }
                    }
                }
                // Processed values exist on the date's scored cells only, so the
                // candidate covers them all when it has as many values.
                let cells = self.base[t].as_ref().map_or(usize::MAX, |b| b.cells.len());
                let lc = library.corrs(t, self.na, self.row(resid, t), cells, xc);
                (ac, tt, lc)
            })
            .collect();
        splits
            .iter()
            .map(|(name, ds)| {
                let dates: Vec<DateStat> = ds
                    .iter()
                    .map(|&t| {
                        let mut d = stats[t].clone().unwrap_or_else(|| DateStat::empty(t));
                        d.rank_autocorr = follow[t].0;
                        d.top_turnover = follow[t].1;
                        d
                    })
                    .collect();
                let mut summary = self.summarise(&dates);
                for k in 0..library.len() {
                    let (m, _, c) = mean_std(
                        dates
                            .iter()
                            .filter(|d| d.dropped.is_none())
                            .map(|d| follow[d.t].2[k]),
                    );
                    if c > 0 && (summary.lib_corr_which.is_none() || m.abs() > summary.lib_corr) {
                        summary.lib_corr = m.abs();
                        summary.lib_corr_which = Some(k);
                    }
                }
                SplitEval {
                    name: name.clone(),
                    dates,
                    summary,
                }
            })
            .collect()
    }

    /// Process the dates flagged in `process` into `ws` (rows of other dates are left
    /// as they were).
    fn process_rows(
        &self,
        x: &[f64],
        process: &[bool],
        ws: &mut Workspace,
    ) -> Vec<Option<DateStat>> {
        let n = self.nd * self.na;
        ws.resid.resize(n, f64::NAN);
        ws.rank.resize(n, f64::NAN);
        ws.quint.resize(n, 0);
        ws.resid
            .par_chunks_mut(self.na)
            .zip(ws.rank.par_chunks_mut(self.na))
            .zip(ws.quint.par_chunks_mut(self.na))
            .enumerate()
            .map_init(Scratch::default, |s, (t, ((res, rk), q))| {
                process[t].then(|| self.process_date(t, self.row(x, t), res, rk, q, s))
            })
            .collect()
    }

    /// The processed (winsorized, z-scored, neutralized) factor on every date the
    /// context was built for, NaN elsewhere: what a library stores.
    pub fn processed(&self, x: &[f64], ws: &mut Workspace) -> Vec<f64> {
        let process: Vec<bool> = self.base.iter().map(|b| b.is_some()).collect();
        self.process_rows(x, &process, ws);
        let mut out = ws.resid.clone();
        for (row, p) in out.chunks_mut(self.na).zip(&process) {
            if !p {
                row.fill(f64::NAN);
            }
        }
        out
    }

    /// Mean over `dates` of the per-date Pearson correlation of two processed factors
    /// (dates where it is undefined are skipped): the library's redundancy measure.
    pub fn mean_corr(&self, a: &[f64], b: &[f64], dates: &[usize]) -> f64 {
        let cs: Vec<f64> = dates
            .par_iter()
            .map(|&t| pearson_pairs(self.row(a, t), self.row(b, t)))
            .collect();
        mean_std(cs.into_iter()).0
    }

    fn process_date(
        &self,
        t: usize,
        xr: &[f64],
        res: &mut [f64],
        rk: &mut [f64],
        q: &mut [u8],
        s: &mut Scratch,
    ) -> DateStat {
        res.fill(f64::NAN);
        rk.fill(f64::NAN);
        q.fill(0);
        let mut d = DateStat::empty(t);
        let ur = self.row(&self.universe, t);
        for a in 0..self.na {
            if ur[a] {
                d.n_univ += 1;
                d.n_cov += xr[a].is_finite() as u32;
            }
        }
        let Some(base) = self.base[t].as_ref() else {
            d.dropped = Some(DROP_FEW);
            return d;
        };
        s.sel.clear();
        s.sel.extend(
            base.cells
                .iter()
                .copied()
                .filter(|&a| xr[a as usize].is_finite()),
        );
        let m = s.sel.len();
        if m < self.cfg.min_assets.max(2) {
            d.dropped = Some(DROP_FEW);
            return d;
        }
        s.v.clear();
        s.v.extend(s.sel.iter().map(|&a| xr[a as usize]));
        prep::winsorize(&mut s.v, self.cfg.winsor, &mut s.w);
        if !prep::zscore(&mut s.v) {
            d.dropped = Some(DROP_CONSTANT);
            return d;
        }
        let gr = self.groups.map(|g| self.row(g, t));
        let cr = self.logcap.as_deref().map(|c| self.row(c, t));
        let covers = m == base.cells.len();
        if self.neutralizing() {
            let design = if covers {
                &base.design
            } else {
                s.design
                    .build(&s.sel, gr, cr, self.n_groups, self.cfg.ridge);
                &s.design
            };
            design.residualize(&mut s.v, &s.sel, gr, cr, &mut s.sz);
        }
        for (&a, &v) in s.sel.iter().zip(&s.v) {
            res[a as usize] = v;
        }
        let lr = self.row(self.label, t);
        let pairs: &[u32] = if covers {
            &base.pairs
        } else {
            s.pairs.clear();
            s.pairs.extend(
                s.sel
                    .iter()
                    .copied()
                    .filter(|&a| lr[a as usize].is_finite()),
            );
            &s.pairs
        };
        let np = pairs.len();
        d.n = np as u32;
        if np < self.cfg.min_assets.max(2) {
            d.dropped = Some(DROP_FEW);
            return d;
        }
        d.ic = pearson_by(np, |k| {
            let a = pairs[k] as usize;
            Some((res[a], lr[a]))
        });
        if d.ic.is_nan() {
            d.dropped = Some(DROP_CONSTANT);
            return d;
        }
        rank_row(res, pairs, &mut s.rank, rk);
        let label_rank: &[f64] = if covers {
            &base.label_rank
        } else {
            // `pairs` are the date's label pairs where the candidate has a value.
            s.order.clear();
            s.order.extend(
                base.label_order
                    .iter()
                    .copied()
                    .filter(|&a| xr[a as usize].is_finite()),
            );
            debug_assert_eq!(s.order.len(), np);
            s.lrow.resize(self.na, f64::NAN);
            stats::subset_ranks(lr, &s.order, &mut s.lrow);
            s.lr.clear();
            s.lr.extend(pairs.iter().map(|&a| s.lrow[a as usize]));
            &s.lr
        };
        d.rank_ic = pearson_by(np, |k| Some((rk[pairs[k] as usize], label_rank[k])));
        // Quantiles as pandas.qcut(factor, 5) (alphalens): edges at the linear quantiles
        // 0, .2, …, 1 of the day's values; a day whose edges repeat gets none.
        let at = |k: usize| res[s.rank.sorted_cell(k)];
        let mut edges = [0.0; QUANTILES + 1];
        for (i, e) in edges.iter_mut().enumerate() {
            let p = i as f64 * (1.0 / QUANTILES as f64);
            let pos = p * (np - 1) as f64;
            let k = (pos.floor() as usize).min(np - 1);
            *e = prep::lerp(at(k), at((k + 1).min(np - 1)), pos - k as f64);
        }
        if edges.windows(2).all(|w| w[0] < w[1]) {
            let mut sum = [0.0; QUANTILES];
            let mut cnt = [0usize; QUANTILES];
            let qr = self.return_label.as_deref().map_or(lr, |l| self.row(l, t));
            for &a in pairs {
                let v = res[a as usize];
                let b = edges[1..QUANTILES].iter().filter(|&&e| e < v).count();
                q[a as usize] = b as u8 + 1;
                sum[b] += qr[a as usize];
                cnt[b] += 1;
            }
            for b in 0..QUANTILES {
                d.q_mean[b] = if cnt[b] > 0 {
                    sum[b] / cnt[b] as f64
                } else {
                    f64::NAN
                };
            }
            d.long_short = d.q_mean[QUANTILES - 1] - d.q_mean[0];
        }
        d
    }

    fn summarise(&self, dates: &[DateStat]) -> Summary {
        let used: Vec<&DateStat> = dates.iter().filter(|d| d.dropped.is_none()).collect();
        let n = used.len();
        let mut s = Summary {
            dates_used: n,
            dates_dropped: dates.len() - n,
            lib_corr: f64::NAN,
            ..Default::default()
        };
        for d in dates {
            if let Some(r) = d.dropped {
                *s.dropped.entry(r).or_default() += 1;
            }
        }
        let (m, sd, _) = mean_std(used.iter().map(|d| d.ic));
        s.ic_mean = m;
        s.ic_std = sd;
        s.icir = m / sd;
        s.ic_tstat = m / sd * (n as f64).sqrt();
        let (m, sd, _) = mean_std(used.iter().map(|d| d.rank_ic));
        s.rank_ic_mean = m;
        s.rank_ic_std = sd;
        s.rank_icir = m / sd;
        s.rank_ic_tstat = m / sd * (n as f64).sqrt();
        s.rank_ic_positive = if n > 0 {
            used.iter().filter(|d| d.rank_ic > 0.0).count() as f64 / n as f64
        } else {
            f64::NAN
        };
        s.rank_autocorr = mean_std(used.iter().map(|d| d.rank_autocorr)).0;
        s.turnover = 1.0 - s.rank_autocorr;
        s.top_turnover = mean_std(used.iter().map(|d| d.top_turnover)).0;
        s.long_short_mean = mean_std(used.iter().map(|d| d.long_short)).0;
        let (c, u) = dates.iter().fold((0u64, 0u64), |(c, u), d| {
            (c + d.n_cov as u64, u + d.n_univ as u64)
        });
        s.coverage = if u > 0 { c as f64 / u as f64 } else { f64::NAN };
        let mut years: BTreeMap<i32, (f64, usize)> = BTreeMap::new();
        for d in &used {
            let e = years.entry(year_of(self.dates[d.t])).or_default();
            e.0 += d.rank_ic;
            e.1 += 1;
        }
        s.rank_ic_by_year = years
            .into_iter()
            .map(|(y, (s, c))| (y, s / c as f64))
            .collect();
        s
    }
}

/// How the score is made from a candidate's train figures (docs/fitness.md, "Score and admission").
/// Recorded whole in every fitness file (provenance `score_rules`): library-merge pools
/// only files scored by the same rules.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoreConfig {
    /// Subtracted per expression node (parsimony).
    pub size_penalty: f64,
    /// Turnover above this bound costs `turnover_penalty` per unit.
    pub max_turnover: f64,
    pub turnover_penalty: f64,
    /// |corr| with a library factor at or above this ⇒ a near-copy: score 0 (its
    /// merit is kept for library-merge, which de-correlates with its own bound).
    pub near_copy_corr: f64,
    /// The `valid` admission rule: valid RankIC with the train sign and at least this…
    pub admit_ic: f64,
    /// …and at least this fraction of the train |RankIC| (a factor that keeps a third of
    /// its train strength generalises; one that keeps 5 % was fitted to noise).
    pub admit_ratio: f64,
    /// Train coverage (scored share of the universe), or the share of train dates the
    /// factor could be scored on, below this ⇒ score 0, not admitted: a factor defined
    /// on a few percent of the stocks, or constant on all but a few dates, has a RankIC
    /// estimated on a handful of observations, and GP finds such flukes faster than
    /// real signal (one measured: 1 usable date of 899, "RankIC" −0.128).
    pub min_coverage: f64,
    /// |RankIC| above this on any split is implausible for daily data: look-ahead.
    pub leak_ic: f64,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        use processing::defaults as d;
        ScoreConfig {
            size_penalty: d::SIZE_PENALTY,
            max_turnover: d::MAX_TURNOVER,
            turnover_penalty: d::TURNOVER_PENALTY,
            near_copy_corr: d::NEAR_COPY_CORR,
            admit_ic: d::ADMIT_IC,
            admit_ratio: d::ADMIT_RATIO,
            min_coverage: d::MIN_COVERAGE,
            leak_ic: d::LEAK_IC,
        }
    }
}

impl ScoreConfig {
    /// The provenance key the rules are recorded under.
    pub const KEY: &'static str = "score_rules";

    /// The rules as one JSON object (field names as here).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The rules a file recorded (`None`: a file from before they were recorded).
    pub fn from_json(v: &serde_json::Value) -> Option<ScoreConfig> {
        serde_json::from_value(v.clone()).ok()
    }

    /// "name a vs b" for each rule that differs.
    pub fn differences(&self, other: &ScoreConfig) -> Vec<String> {
        let (a, b) = (self.to_json(), other.to_json());
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return Vec::new();
        };
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k} {v} vs {}", b.get(k).cloned().unwrap_or_default()))
            .collect()
    }
}

/// A candidate's score and the rules it passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub score: f64,
    /// The score before the library bound zeroes it: what `library-merge` ranks on
    /// (its own de-correlation replaces the bound, so a better near-copy of a member
    /// can take the member's place) and what `gp-gen` weighs a near-copy's gain by.
    pub merit: f64,
    pub penalty_size: f64,
    pub penalty_turnover: f64,
    /// 1 when the library correlation bound zeroed the score, else 0.
    pub penalty_corr: f64,
    /// 1 when the train coverage was below `min_coverage` (score 0), else 0.
    pub penalty_coverage: f64,
    /// The library admission rule (`valid` split) held.
    pub admit: bool,
    /// Set when the figures look like look-ahead.
    pub suspect: Option<String>,
}

/// Score from the split that selection may see (`train`, or `all`), the `valid` split
/// for admission, and every split for the look-ahead check.
pub fn score(evals: &[SplitEval], size: usize, cfg: &ScoreConfig) -> Score {
    let find = |n: &str| evals.iter().find(|e| e.name == n).map(|e| &e.summary);
    let train = find("train").or_else(|| find("all"));
    let ric = train.map_or(f64::NAN, |s| s.rank_ic_mean);
    let penalty_size = cfg.size_penalty * size as f64;
    let turnover = train.map_or(f64::NAN, |s| s.turnover);
    let penalty_turnover = if turnover.is_finite() {
        cfg.turnover_penalty * (turnover - cfg.max_turnover).max(0.0)
    } else {
        0.0
    };
    let corr = train.map_or(f64::NAN, |s| s.lib_corr);
    let penalty_corr = if corr >= cfg.near_copy_corr { 1.0 } else { 0.0 };
    let coverage = train.map_or(f64::NAN, |s| s.coverage);
    let date_share = train.map_or(f64::NAN, |s| {
        s.dates_used as f64 / (s.dates_used + s.dates_dropped).max(1) as f64
    });
    let penalty_coverage = if coverage >= cfg.min_coverage && date_share >= cfg.min_coverage {
        0.0
    } else {
        1.0
    };
    let suspect = evals
        .iter()
        .find(|e| e.summary.rank_ic_mean.abs() > cfg.leak_ic)
        .map(|e| {
            format!(
                "mean RankIC {:.3} on {} is implausible for daily data (look-ahead?)",
                e.summary.rank_ic_mean, e.name
            )
        });
    let mut score = if ric.is_finite() {
        (ric.abs() - penalty_size - penalty_turnover).max(0.0)
    } else {
        0.0
    };
    if penalty_coverage > 0.0 || suspect.is_some() {
        score = 0.0;
    }
    let merit = score;
    if penalty_corr > 0.0 {
        score = 0.0;
    }
    // A factor whose train RankIC does not pay for its size and turnover has no
    // strength to admit, however its valid figure looks (issue 20: members with train
    // RankIC 0.00007 were admitted). Near-copies keep their merit and may compete.
    let admit = suspect.is_none()
        && penalty_coverage == 0.0
        && merit > 0.0
        && match find("valid") {
            Some(v) => {
                ric.is_finite()
                    && v.rank_ic_mean.is_finite()
                    && v.rank_ic_mean.signum() == ric.signum()
                    && v.rank_ic_mean.abs() >= cfg.admit_ic.max(cfg.admit_ratio * ric.abs())
            }
            // No valid split (`--split all`): admission is on the score alone.
            None => score > 0.0,
        };
    Score {
        score,
        merit,
        penalty_size,
        penalty_turnover,
        penalty_corr,
        penalty_coverage,
        admit,
        suspect,
    }
}

/// A xorshift64 stream for the unit tests: uniform in [0, 1).
#[cfg(test)]
pub(crate) fn test_uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(name: &str, ric: f64, coverage: f64) -> SplitEval {
        SplitEval {
            name: name.into(),
            dates: Vec::new(),
            summary: Summary {
                rank_ic_mean: ric,
                coverage,
                dates_used: 90,
                dates_dropped: 10,
                turnover: 0.2,
                lib_corr: f64::NAN,
                ..Default::default()
            },
        }
    }

    #[test]
    fn score_rules_round_trip_and_name_their_differences() {
        let a = ScoreConfig::default();
        assert_eq!(ScoreConfig::from_json(&a.to_json()), Some(a.clone()));
        let b = ScoreConfig {
            admit_ic: 0.01,
            ..a.clone()
        };
        assert_eq!(a.differences(&b), ["admit_ic 0.005 vs 0.01"]);
        assert!(a.differences(&a).is_empty());
        assert_eq!(ScoreConfig::from_json(&serde_json::json!({"x": 1})), None);
    }

    #[test]
    fn score_and_admission_rules() {
        let cfg = ScoreConfig::default();
        // A real factor: keeps most of its train strength on valid.
        let s = score(
            &[split("train", -0.04, 0.9), split("valid", -0.03, 0.9)],
            4,
            &cfg,
        );
        assert!((s.score - (0.04 - 4.0 * cfg.size_penalty)).abs() < 1e-15);
        assert!(s.admit && s.penalty_coverage == 0.0);
        // Same sign, above admit_ic, but a tenth of the train figure: fitted to noise.
        let s = score(
            &[split("train", 0.137, 0.9), split("valid", 0.012, 0.9)],
            4,
            &cfg,
        );
        assert!(s.score > 0.0 && !s.admit);
        // Defined on 5 % of the universe: score 0 and never admitted, however strong.
        let s = score(
            &[split("train", 0.137, 0.05), split("valid", 0.13, 0.05)],
            4,
            &cfg,
        );
        assert_eq!((s.score, s.penalty_coverage, s.admit), (0.0, 1.0, false));
        // Constant on all but one date: no score, however strong that date.
        let mut one = split("train", 0.128, 0.99);
        (one.summary.dates_used, one.summary.dates_dropped) = (1, 898);
        let s = score(&[one, split("valid", 0.1, 0.99)], 4, &cfg);
        assert_eq!((s.score, s.penalty_coverage, s.admit), (0.0, 1.0, false));
        // Sign flip on valid.
        let s = score(
            &[split("train", 0.04, 0.9), split("valid", -0.04, 0.9)],
            4,
            &cfg,
        );
        assert!(!s.admit);
        // No strength on train (RankIC below its size penalty): not admitted, even with
        // a valid figure above the floor.
        let s = score(
            &[split("train", 0.00007, 0.9), split("valid", 0.006, 0.9)],
            4,
            &cfg,
        );
        assert_eq!((s.score, s.admit), (0.0, false));
        // No valid split: admission on score alone.
        let s = score(&[split("all", 0.04, 0.9)], 4, &cfg);
        assert!(s.admit);
        // A near-copy of a library factor: score 0, merit kept (coverage still zeroes it).
        let mut near = split("train", 0.04, 0.9);
        near.summary.lib_corr = 0.8;
        let s = score(&[near.clone(), split("valid", 0.03, 0.9)], 4, &cfg);
        assert_eq!((s.score, s.penalty_corr), (0.0, 1.0));
        assert!((s.merit - (0.04 - 4.0 * cfg.size_penalty)).abs() < 1e-15);
        near.summary.coverage = 0.05;
        assert_eq!(score(&[near], 4, &cfg).merit, 0.0);
    }

    #[test]
    fn library_correlations_match_the_two_pass_form() {
        // 6 dates x 37 assets; date 2 scores no cell; member 1 lacks a cell on date 3,
        // member 2 has a value outside the cells on date 4; the candidate covers every
        // date but 5. Every case must give pearson_pairs' figure.
        let (nd, na) = (6, 37);
        let cells: Vec<Option<Vec<u32>>> = (0..nd)
            .map(|t| (t != 2).then(|| (0..na as u32).filter(|a| (a + t as u32) % 5 != 0).collect()))
            .collect();
        let val = |seed: usize, t: usize, a: usize| {
            (((seed * 7919 + t * 104_729 + a * 1_299_709) % 1000) as f64 / 97.0).sin() + seed as f64
        };
        let member = |seed: usize| -> Vec<f64> {
            let mut m = vec![f64::NAN; nd * na];
            for (t, cs) in cells.iter().enumerate() {
                for &a in cs.iter().flatten() {
                    m[t * na + a as usize] = val(seed, t, a as usize);
                }
            }
            m
        };
        let (m0, mut m1, mut m2) = (member(1), member(2), member(3));
        let first = |t: usize| cells[t].as_ref().map(|c| c[0] as usize).unwrap_or(0);
        m1[3 * na + first(3)] = f64::NAN;
        let outside = (0..na)
            .find(|a| !cells[4].as_ref().unwrap().contains(&(*a as u32)))
            .unwrap();
        m2[4 * na + outside] = 0.5;
        let mut x = member(4);
        x[5 * na + first(5)] = f64::NAN;
        let values: Vec<&[f64]> = vec![&m0, &m1, &m2];
        let lib = Library::new(&values, na, |t| cells[t].as_deref());
        assert!(lib.exact[3 * 3 + 1].is_none() && lib.exact[4 * 3 + 2].is_none());
        assert!(lib.exact[0].is_some() && lib.exact[2 * 3].is_none());
        let mut xc = Vec::new();
        for t in 0..nd {
            let n_cells = cells[t].as_ref().map_or(usize::MAX, |c| c.len());
            let r = &x[t * na..(t + 1) * na];
            let got = lib.corrs(t, na, r, n_cells, &mut xc);
            for (k, l) in values.iter().enumerate() {
                let want = pearson_pairs(r, &l[t * na..(t + 1) * na]);
                assert!(
                    (want.is_nan() && got[k].is_nan()) || (want - got[k]).abs() < 1e-12,
                    "date {t} member {k}: {want} vs {}",
                    got[k]
                );
            }
        }
    }
}
