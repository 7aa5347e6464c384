//! The embedded synthetic A-share market (`ts-fetch --source synthetic`).
//!
//! A seeded, deterministic market that looks like the real one where it matters to a
//! factor miner (docs/data_contract.md): a holiday calendar, ~30 industries, log-normal caps,
//! IPOs and delistings, suspension spells, ST spells, board-specific price limits,
//! ex-dividend / bonus-share `adj_factor` jumps, volume and amount consistent with
//! prices, and returns from a factor model (GARCH market + industries + a size style +
//! GARCH idiosyncratic noise).
//!
//! On top of that, [`PLANTED`] alphas — formulaic signals computed from each day's
//! history exactly as the expression language defines them on the panel — tilt the next
//! days' returns. Their expressions and target RankICs go to `ground_truth.json`, which
//! the miner never reads; tests use it to ask whether mining rediscovers them.
//!
//! Planting works in units of each stock's current idiosyncratic volatility: a signal's
//! cross-sectional rank is mapped to a unit-variance score `z`, and the return of day
//! `s` gets `σ_i,s · Σ_j (scale_j / h_j) · Σ_{l<h_j} z_j(s−1−l)`, so an alpha with horizon
//! `h` is spread over the `h` days after the signal. Scales were calibrated so that the
//! mean RankIC of each expression with `fwd_ret_h` on the panel matches `target_rank_ic`.

use std::collections::HashSet;

use af_panel::dates::{busday_count, days_to_ymd};
use anyhow::{Result, bail};
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::calendar::trading_days;
use crate::limits::{Board, board, limit_pct, limit_prices, round2};
use crate::raw::RawBars;

/// One planted signal.
#[derive(Debug, Clone, Copy)]
pub struct Planted {
    pub name: &'static str,
    pub kind: &'static str,
    /// Native-dialect expression; larger values predict higher returns.
    pub expression: &'static str,
    pub horizon: usize,
    pub target_rank_ic: f64,
    /// Loading in units of idiosyncratic volatility (calibrated; see module docs).
    pub scale: f64,
}

pub const PLANTED: [Planted; 5] = [
    Planted {
        name: "reversal_5d",
        kind: "short-term reversal",
        expression: "-ts_sum(returns, 5)",
        horizon: 1,
        target_rank_ic: 0.04,
        scale: 0.049,
    },
    Planted {
        name: "pv_corr_10d",
        kind: "volume-price correlation",
        expression: "-ts_corr(close, volume, 10)",
        horizon: 1,
        target_rank_ic: 0.03,
        scale: 0.0285,
    },
    Planted {
        name: "low_vol_20d",
        kind: "volatility",
        expression: "-ts_std(returns, 20)",
        horizon: 5,
        target_rank_ic: 0.05,
        scale: 0.020,
    },
    Planted {
        name: "turnover_surge",
        kind: "cross-sectional rank",
        expression: "-rank(ts_mean(turnover, 5) / ts_mean(turnover, 60))",
        horizon: 5,
        target_rank_ic: 0.04,
        scale: 0.0228,
    },
    Planted {
        name: "industry_rel_mom_20d",
        kind: "industry-relative",
        expression: "group_neutralize(ts_sum(returns, 20), industry)",
        horizon: 5,
        target_rank_ic: 0.03,
        scale: 0.031,
    },
];

/// The hard set (`--planted hard`): five deeper alphas (depth 4–6), each built from two
/// or three sub-signals that carry part of its signal alone — the building blocks
/// genetic programming is supposed to find and combine, and that random sampling of
/// shallow trees rarely assembles.
pub const HARD: [Planted; 5] = [
    Planted {
        name: "reversal_and_pv",
        kind: "sum of ranks: reversal + volume-price correlation",
        expression: "rank(-ts_sum(returns, 5)) + rank(-ts_corr(close, volume, 10))",
        horizon: 1,
        target_rank_ic: 0.04,
        scale: 0.041,
    },
    Planted {
        name: "risk_adjusted_momentum",
        kind: "industry-relative, volatility-scaled momentum",
        expression: "group_neutralize(ts_sum(returns, 20) / ts_std(returns, 20), industry)",
        horizon: 5,
        target_rank_ic: 0.04,
        scale: 0.0355,
    },
    Planted {
        name: "surge_in_volatile",
        kind: "product of ranks: turnover surge among volatile stocks",
        expression: "-(rank(ts_mean(turnover, 5) / ts_mean(turnover, 60)) * rank(ts_std(returns, 20)))",
        horizon: 5,
        target_rank_ic: 0.04,
        scale: 0.0141,
    },
    Planted {
        name: "trend_quality",
        kind: "difference of z-scores: mean return minus volatility",
        expression: "cs_zscore(ts_mean(returns, 10)) - cs_zscore(ts_std(returns, 10))",
        horizon: 5,
        target_rank_ic: 0.03,
        scale: 0.0096,
    },
    Planted {
        name: "volume_confirmed_reversal",
        kind: "reversal weighted by a volume surge",
        expression: "-(rank(ts_mean(volume, 5) / ts_mean(volume, 20)) * ts_sum(returns, 5))",
        horizon: 1,
        target_rank_ic: 0.03,
        scale: 0.0159,
    },
];

/// Which planted alphas a synthetic market carries (`ts-fetch --planted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlantedSet {
    /// Five shallow alphas (depth 2–4): reversal, volume-price correlation, low
    /// volatility, turnover surge, industry-relative momentum.
    #[default]
    Standard,
    /// Five deeper ones (depth 4–6) made of sub-signals ([`HARD`]).
    Hard,
}

impl PlantedSet {
    pub fn alphas(self) -> &'static [Planted] {
        match self {
            PlantedSet::Standard => &PLANTED,
            PlantedSet::Hard => &HARD,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PlantedSet::Standard => "standard",
            PlantedSet::Hard => "hard",
        }
    }
}

pub const INDUSTRIES: [&str; 30] = [
    "Banks",
    "Non-bank Financials",
    "Real Estate",
    "Construction",
    "Building Materials",
    "Steel",
    "Nonferrous Metals",
    "Coal",
    "Petrochemicals",
    "Basic Chemicals",
    "Power Equipment",
    "Utilities",
    "Machinery",
    "Defense",
    "Autos",
    "Home Appliances",
    "Textiles & Apparel",
    "Light Manufacturing",
    "Retail",
    "Food & Beverage",
    "Agriculture",
    "Pharmaceuticals",
    "Electronics",
    "Computers",
    "Media",
    "Telecom",
    "Transportation",
    "Environmental",
    "Beauty Care",
    "Social Services",
];

#[derive(Debug, Clone)]
pub struct SynthParams {
    pub assets: usize,
    pub days: usize,
    pub seed: u64,
    pub start: i32,
    pub planted: PlantedSet,
}

pub struct Synthetic {
    pub bars: RawBars,
    pub calendar: Vec<i32>,
    pub ground_truth: serde_json::Value,
}

/// Seeded random numbers with a portable generator (ChaCha8: same stream on every
/// platform and rand version), so a seed names one market forever.
struct Rand {
    rng: ChaCha8Rng,
    spare: Option<f64>,
}

impl Rand {
    fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            spare: None,
        }
    }
    fn u(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.u()
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.u() * n as f64) as usize).min(n.saturating_sub(1))
    }
    fn chance(&mut self, p: f64) -> bool {
        self.u() < p
    }
    /// Standard normal (Marsaglia polar method).
    fn n(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        loop {
            let x = 2.0 * self.u() - 1.0;
            let y = 2.0 * self.u() - 1.0;
            let s = x * x + y * y;
            if s > 0.0 && s < 1.0 {
                let m = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(y * m);
                return x * m;
            }
        }
    }
}

struct Asset {
    code: String,
    board: Option<Board>,
    industry: u32,
    beta: f64,
    ind_load: f64,
    size_z: f64,
    sigma: f64,
    turn_base: f64,
    total_shares: f64,
    circ_shares: f64,
    price0: f64,
    adj0: f64,
    ipo: Option<usize>,
    list_date: i32,
    /// Calendar index from which listing age is counted (negative: listed before start).
    first_idx: i64,
    delist: Option<usize>,
    st: Option<(usize, usize)>,
    exdiv: Vec<(usize, f64, f64)>,
}

fn make_code(r: &mut Rand, used: &mut HashSet<String>) -> String {
    loop {
        let u = r.u();
        let (prefixes, exch): (&[&str], &str) = if u < 0.42 {
            (&["600", "601", "603", "605"], "SH")
        } else if u < 0.75 {
            (&["000", "001", "002", "003"], "SZ")
        } else if u < 0.93 {
            (&["300", "301"], "SZ")
        } else {
            (&["688"], "SH")
        };
        let p = prefixes[r.below(prefixes.len())];
        let code = format!("{p}{:03}.{exch}", r.below(1000));
        if used.insert(code.clone()) {
            return code;
        }
    }
}

fn setup_assets(p: &SynthParams, cal: &[i32], r: &mut Rand) -> Vec<Asset> {
    let d = cal.len();
    // Industry sizes: Zipf-like weights so a few industries are large, as in SW L1.
    let weights: Vec<f64> = (0..INDUSTRIES.len())
        .map(|k| 1.0 / ((k + 3) as f64).powf(0.8))
        .collect();
    let wsum: f64 = weights.iter().sum();
    let mut used = HashSet::new();
    // Ex-dividend season per year: trading-day index range of June-July.
    let mut seasons: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < d {
        let (y, m, _) = days_to_ymd(cal[i]);
        if m == 6 || m == 7 {
            let s = i;
            while i < d && days_to_ymd(cal[i]).0 == y && matches!(days_to_ymd(cal[i]).1, 6 | 7) {
                i += 1;
            }
            seasons.push((s, i));
        } else {
            i += 1;
        }
    }
    let mut assets = Vec::with_capacity(p.assets);
    for _ in 0..p.assets {
        let code = make_code(r, &mut used);
        let mut x = r.u() * wsum;
        let mut industry = 0;
        for (k, w) in weights.iter().enumerate() {
            if x < *w {
                industry = k;
                break;
            }
            x -= w;
        }
        let size_z = r.n();
        let cap = (23.0 + 1.0 * size_z).exp(); // median ~10 bn yuan
        let price0 = (2.4 + 0.6 * r.n()).exp().clamp(1.5, 400.0);
        let total_shares = (cap / price0 / 100.0).round() * 100.0;
        let circ_shares = (total_shares * r.uniform(0.45, 1.0) / 100.0).round() * 100.0;
        let ipo =
            (d > 20 && r.chance(0.22)).then(|| 1 + r.below(((d as f64 * 0.9) as usize).max(2)));
        let list_date = match ipo {
            Some(t) => cal[t],
            None => {
                let mut ld = cal[0] - r.uniform(150.0, 6000.0) as i32;
                while af_panel::dates::weekday(ld) >= 5 {
                    ld -= 1;
                }
                ld
            }
        };
        let first_idx = match ipo {
            Some(t) => t as i64,
            None => -busday_count(list_date, cal[0]),
        };
        let lo = ipo.unwrap_or(0);
        let delist = (d > 400 && r.chance(0.03))
            .then(|| (lo + 250 + r.below(d)).min(d - 1))
            .filter(|t| *t > lo + 250 && *t < d - 1);
        let st = match delist {
            Some(t) => Some((t.saturating_sub(60 + r.below(60)).max(lo), t + 1)),
            None if r.chance(0.05) => {
                let s = lo + r.below(d.saturating_sub(lo).max(1));
                Some((s, (s + 60 + r.below(190)).min(d)))
            }
            None => None,
        };
        let mut exdiv = Vec::new();
        for &(s, e) in &seasons {
            if r.chance(0.6) && e > s {
                let t = s + r.below(e - s);
                if t > lo {
                    let bonus = if r.chance(0.15) {
                        [0.2, 0.3, 0.5, 1.0][r.below(4)]
                    } else {
                        0.0
                    };
                    exdiv.push((t, r.uniform(0.004, 0.03), bonus));
                }
            }
        }
        let sigma = (0.021f64.ln() + 0.3 * r.n() - 0.12 * size_z)
            .exp()
            .clamp(0.008, 0.06);
        assets.push(Asset {
            board: board(&code),
            code,
            industry: industry as u32,
            beta: 1.0 + 0.25 * r.n(),
            ind_load: 1.0 + 0.3 * r.n(),
            size_z,
            sigma,
            turn_base: (0.012f64.ln() + 0.5 * r.n() - 0.2 * size_z)
                .exp()
                .clamp(0.001, 0.1),
            total_shares,
            circ_shares,
            price0,
            adj0: if ipo.is_some() {
                1.0
            } else {
                r.uniform(1.0, 4.0)
            },
            ipo,
            list_date,
            first_idx,
            delist,
            st,
            exdiv,
        });
    }
    // Rows come out sorted by code, as the raw contract wants.
    assets.sort_by(|a, b| a.code.cmp(&b.code));
    assets
}

/// Panel-equivalent history the planted signals are computed from. Prices are
/// backward-adjusted (raw × adj_factor), a per-asset constant multiple of the panel's
/// forward-adjusted prices, so every scale-free signal equals its panel value.
struct History {
    n: usize,
    close: Vec<f64>,
    volume: Vec<f64>,
    returns: Vec<f64>,
    turnover: Vec<f64>,
    universe: Vec<bool>,
}

impl History {
    fn at(&self, v: &[f64], t: usize, a: usize) -> f64 {
        v[t * self.n + a]
    }
    /// Values of `v` over the `d` days ending at `t`, or None if any is missing or the
    /// window starts before the data (min_periods = d).
    fn window(&self, v: &[f64], t: usize, a: usize, d: usize, buf: &mut Vec<f64>) -> bool {
        buf.clear();
        if t + 1 < d {
            return false;
        }
        for s in t + 1 - d..=t {
            let x = self.at(v, s, a);
            if x.is_nan() {
                return false;
            }
            buf.push(x);
        }
        true
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn std1(x: &[f64]) -> f64 {
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

fn corr(x: &[f64], y: &[f64]) -> f64 {
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    let den = (sxx * syy).sqrt();
    if den <= 1e-14 * (sxx + syy).max(1e-300) || den == 0.0 {
        f64::NAN
    } else {
        sxy / den
    }
}

/// Raw values of planted signal `name` on day `t` for every asset (NaN where undefined
/// or outside the universe), exactly as the engine evaluates its expression on the
/// panel (full windows, ddof 1, ranks and z-scores over the universe).
fn planted_raw(name: &str, h: &History, t: usize, industry: &[u32], out: &mut [f64]) {
    let n = h.n;
    let (mut b1, mut b2) = (Vec::with_capacity(64), Vec::with_capacity(64));
    // `f(asset, b1, b2)` on universe assets, NaN elsewhere.
    let mut each = |out: &mut [f64], f: &dyn Fn(usize, &mut Vec<f64>, &mut Vec<f64>) -> f64| {
        for a in 0..n {
            out[a] = if h.universe[t * n + a] {
                f(a, &mut b1, &mut b2)
            } else {
                f64::NAN
            };
        }
    };
    let sum = |v: &[f64], a: usize, d: usize, b: &mut Vec<f64>| {
        if h.window(v, t, a, d, b) {
            b.iter().sum::<f64>()
        } else {
            f64::NAN
        }
    };
    let avg = |v: &[f64], a: usize, d: usize, b: &mut Vec<f64>| sum(v, a, d, b) / d as f64;
    let sd = |v: &[f64], a: usize, d: usize, b: &mut Vec<f64>| {
        if h.window(v, t, a, d, b) {
            std1(b)
        } else {
            f64::NAN
        }
    };
    let pv_corr = |a: usize, d: usize, b1: &mut Vec<f64>, b2: &mut Vec<f64>| {
        if h.window(&h.close, t, a, d, b1) && h.window(&h.volume, t, a, d, b2) {
            corr(b1, b2)
        } else {
            f64::NAN
        }
    };
    let ratio = |x: f64, y: f64| if y != 0.0 { x / y } else { f64::NAN };
    let mut tmp = vec![f64::NAN; n];
    match name {
        "reversal_5d" => each(out, &|a, b, _| -sum(&h.returns, a, 5, b)),
        "pv_corr_10d" => each(out, &|a, b1, b2| -pv_corr(a, 10, b1, b2)),
        "low_vol_20d" => each(out, &|a, b, _| -sd(&h.returns, a, 20, b)),
        "turnover_surge" => {
            // rank() of a negated ratio: the ratio's order reversed, as a rank score.
            each(out, &|a, b, _| {
                -ratio(avg(&h.turnover, a, 5, b), avg(&h.turnover, a, 60, b))
            })
        }
        "industry_rel_mom_20d" => {
            each(out, &|a, b, _| sum(&h.returns, a, 20, b));
            group_neutralize(out, industry);
        }
        "reversal_and_pv" => {
            each(out, &|a, b, _| -sum(&h.returns, a, 5, b));
            each(&mut tmp, &|a, b1, b2| -pv_corr(a, 10, b1, b2));
            pct_rank(out);
            pct_rank(&mut tmp);
            out.iter_mut().zip(&tmp).for_each(|(x, y)| *x += y);
        }
        "risk_adjusted_momentum" => {
            each(out, &|a, b, _| {
                ratio(sum(&h.returns, a, 20, b), sd(&h.returns, a, 20, b))
            });
            group_neutralize(out, industry);
        }
        "surge_in_volatile" => {
            each(out, &|a, b, _| {
                ratio(avg(&h.turnover, a, 5, b), avg(&h.turnover, a, 60, b))
            });
            each(&mut tmp, &|a, b, _| sd(&h.returns, a, 20, b));
            pct_rank(out);
            pct_rank(&mut tmp);
            out.iter_mut().zip(&tmp).for_each(|(x, y)| *x = -(*x * y));
        }
        "trend_quality" => {
            each(out, &|a, b, _| avg(&h.returns, a, 10, b));
            each(&mut tmp, &|a, b, _| sd(&h.returns, a, 10, b));
            cs_zscore(out);
            cs_zscore(&mut tmp);
            out.iter_mut().zip(&tmp).for_each(|(x, y)| *x -= y);
        }
        "volume_confirmed_reversal" => {
            each(out, &|a, b, _| {
                ratio(avg(&h.volume, a, 5, b), avg(&h.volume, a, 20, b))
            });
            each(&mut tmp, &|a, b, _| sum(&h.returns, a, 5, b));
            pct_rank(out);
            out.iter_mut().zip(&tmp).for_each(|(x, y)| *x = -(*x * y));
        }
        other => unreachable!("planted alpha {other} has no generator"),
    }
}

/// Percentile rank over the finite values, ties averaged, in (0, 1] (the engine's
/// `rank`); NaN stays NaN.
fn pct_rank(x: &mut [f64]) {
    let mut r = Vec::new();
    avg_ranks(x, |a, rank, n| r.push((a, rank / n as f64)));
    for (a, v) in r {
        x[a] = v;
    }
}

/// The 1-based rank of each non-NaN value of `x`, ties averaged: `each(asset, rank,
/// count of non-NaN values)` once per such asset. Shared by the engine-equivalent
/// `rank` ([`pct_rank`]) and the planting score ([`rank_score`]).
fn avg_ranks(x: &[f64], mut each: impl FnMut(usize, f64, usize)) {
    let mut idx: Vec<usize> = (0..x.len()).filter(|&a| !x[a].is_nan()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let n = idx.len();
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &a in &idx[i..=j] {
            each(a, r, n);
        }
        i = j + 1;
    }
}

/// (x − mean) / std (ddof 1) over the finite values (the engine's `cs_zscore`).
fn cs_zscore(x: &mut [f64]) {
    let v: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    if v.len() < 2 {
        x.fill(f64::NAN);
        return;
    }
    let (m, s) = (mean(&v), std1(&v));
    for e in x.iter_mut().filter(|e| !e.is_nan()) {
        *e = if s > 0.0 { (*e - m) / s } else { f64::NAN };
    }
}

/// Minus the industry mean over the finite values (the engine's `group_neutralize`).
fn group_neutralize(x: &mut [f64], industry: &[u32]) {
    let g = INDUSTRIES.len();
    let (mut s, mut c) = (vec![0.0; g], vec![0usize; g]);
    for a in 0..x.len() {
        if !x[a].is_nan() {
            s[industry[a] as usize] += x[a];
            c[industry[a] as usize] += 1;
        }
    }
    for a in 0..x.len() {
        if !x[a].is_nan() {
            x[a] -= s[industry[a] as usize] / c[industry[a] as usize] as f64;
        }
    }
}

/// Cross-sectional rank (ties averaged) mapped to a unit-variance score; 0 where NaN.
fn rank_score(x: &[f64], z: &mut [f64]) {
    // A lone value scores (1 − 1) / 1 = 0, like the NaNs.
    z.fill(0.0);
    avg_ranks(x, |a, r, n| {
        z[a] = (r - (n as f64 + 1.0) / 2.0) / n as f64 * 12f64.sqrt();
    });
}

/// Generate the market.
pub fn generate(p: &SynthParams) -> Result<Synthetic> {
    if p.assets == 0 || p.days == 0 {
        bail!("--assets and --days must be at least 1");
    }
    let cal = trading_days(p.start, p.days);
    let (nd, na) = (cal.len(), p.assets);
    let mut r = Rand::new(p.seed);
    let assets = setup_assets(p, &cal, &mut r);
    let industry: Vec<u32> = assets.iter().map(|a| a.industry).collect();

    let mut bars = RawBars {
        code_names: assets.iter().map(|a| a.code.clone()).collect(),
        industry_names: INDUSTRIES.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let cells = nd * na;
    let mut hist = History {
        n: na,
        close: vec![f64::NAN; cells],
        volume: vec![f64::NAN; cells],
        returns: vec![f64::NAN; cells],
        turnover: vec![f64::NAN; cells],
        universe: vec![false; cells],
    };

    // Per-asset state.
    // Assets listed before the calendar starts trade from their initial price.
    let mut close: Vec<f64> = assets
        .iter()
        .map(|a| if a.ipo.is_some() { f64::NAN } else { a.price0 })
        .collect();
    let mut adj: Vec<f64> = assets.iter().map(|a| a.adj0).collect();
    let mut total_sh: Vec<f64> = assets.iter().map(|a| a.total_shares).collect();
    let mut circ_sh: Vec<f64> = assets.iter().map(|a| a.circ_shares).collect();
    let mut hvar: Vec<f64> = assets.iter().map(|a| a.sigma * a.sigma).collect();
    let mut turn_u = vec![0.0; na];
    let mut susp_left = vec![0usize; na];
    let mut pending = vec![0.0; na];
    let mut next_div = vec![0usize; na];

    // Market and industry factors.
    let (m_var0, m_a, m_b) = (0.013f64 * 0.013, 0.08, 0.90);
    let mut m_var = m_var0;
    let planted = p.planted.alphas();
    let hmax = planted.iter().map(|p| p.horizon).max().unwrap_or(1);
    let mut zbuf = vec![vec![0.0; hmax * na]; planted.len()];
    let mut raw_sig = vec![0.0; na];
    let mut zrow = vec![0.0; na];

    for t in 0..nd {
        let m = m_var.sqrt() * r.n();
        m_var = m_var0 * (1.0 - m_a - m_b) + m_a * m * m + m_b * m_var;
        let ind: Vec<f64> = (0..INDUSTRIES.len()).map(|_| 0.008 * r.n()).collect();
        let size_ret = 0.003 * r.n();

        for a in 0..na {
            let s = &assets[a];
            let first = s.ipo.unwrap_or(0);
            if t < first || s.delist.is_some_and(|dl| t > dl) {
                continue; // not listed: no row
            }
            let listing_day = s.ipo == Some(t);
            let is_st = s.st.is_some_and(|(b, e)| t >= b && t < e);
            let common =
                s.beta * m + s.ind_load * ind[s.industry as usize] - 0.5 * s.size_z * size_ret;
            let sd = hvar[a].sqrt();
            let eps = r.n();
            hvar[a] = s.sigma * s.sigma * 0.02 + 0.06 * sd * sd * eps * eps + 0.92 * hvar[a];

            // Suspension spells (never on the listing day or the delisting day).
            if susp_left[a] == 0 && !listing_day && s.delist != Some(t) && r.chance(0.0025) {
                susp_left[a] = if r.chance(0.9) {
                    1 + (-(r.u().max(1e-12)).ln() * 1.5) as usize
                } else {
                    10 + r.below(90)
                };
            }
            let i = t * na + a;
            let prev_close = close[a];
            if susp_left[a] > 0 {
                susp_left[a] -= 1;
                pending[a] += common;
                push_bar(
                    &mut bars,
                    &cal,
                    t,
                    a,
                    s,
                    [prev_close; 5],
                    0.0,
                    0.0,
                    adj[a],
                    is_st,
                    true,
                    total_sh[a],
                    circ_sh[a],
                );
                hist.close[i] = prev_close * adj[a];
                hist.volume[i] = 0.0;
                hist.turnover[i] = 0.0;
                hist.returns[i] = if t > 0 && !hist.close[i - na].is_nan() {
                    hist.close[i] / hist.close[i - na] - 1.0
                } else {
                    f64::NAN
                };
                continue;
            }

            // Ex-dividend / bonus shares: pre_close drops, adj_factor rises.
            let mut pre_close = if listing_day { s.price0 } else { prev_close };
            while next_div[a] < s.exdiv.len() && s.exdiv[next_div[a]].0 < t {
                next_div[a] += 1;
            }
            if !listing_day && next_div[a] < s.exdiv.len() && s.exdiv[next_div[a]].0 == t {
                let (_, y, bonus) = s.exdiv[next_div[a]];
                let div = round2(prev_close * y);
                let pc = round2((prev_close - div) / (1.0 + bonus));
                if pc >= 0.01 {
                    adj[a] *= prev_close / pc;
                    total_sh[a] = (total_sh[a] * (1.0 + bonus)).round();
                    circ_sh[a] = (circ_sh[a] * (1.0 + bonus)).round();
                    pre_close = pc;
                }
            }

            let mut alpha = 0.0;
            for (j, pl) in planted.iter().enumerate() {
                let mut acc = 0.0;
                for l in 0..pl.horizon.min(t) {
                    acc += zbuf[j][((t - 1 - l) % hmax) * na + a];
                }
                alpha += pl.scale / pl.horizon as f64 * acc;
            }
            let mut ret = if listing_day {
                match s.board {
                    Some(Board::Main) | None => r.uniform(0.15, 0.44),
                    _ => r.uniform(0.3, 2.0),
                }
            } else {
                pending[a] + common + sd * (eps + alpha)
            };
            pending[a] = 0.0;
            ret = ret.max(-0.95);
            let pct = limit_pct(s.board, is_st, listing_day);
            let clip = |x: f64| -> f64 {
                let x = round2(x).max(0.01);
                match pct {
                    Some(pp) => {
                        let (up, dn) = limit_prices(pre_close, pp);
                        x.clamp(dn, up)
                    }
                    None => x,
                }
            };
            let c = clip(pre_close * (1.0 + ret));
            let o = clip(pre_close * (1.0 + 0.35 * ret + 0.25 * sd * r.n()));
            let hi = clip(o.max(c) * (1.0 + 0.5 * sd * r.n().abs())).max(o.max(c));
            let lo = clip(o.min(c) * (1.0 - 0.5 * sd * r.n().abs())).min(o.min(c));
            let real = c / pre_close - 1.0;
            turn_u[a] = 0.85 * turn_u[a] + 0.3 * r.n();
            let mut tau = s.turn_base * (turn_u[a] + 1.5 * real.abs() / s.sigma - 0.5).exp();
            if listing_day {
                tau = 0.5;
            } else if pct.is_some_and(|pp| c >= limit_prices(pre_close, pp).0) {
                tau *= 0.35; // sealed at the up-limit: few sellers
            }
            let volume = ((tau.min(0.6) * circ_sh[a] / 100.0).round().max(1.0)) * 100.0;
            let vwap = ((o + hi + lo + 2.0 * c) / 5.0).clamp(lo, hi);
            let amount = round2(volume * vwap);
            close[a] = c;
            push_bar(
                &mut bars,
                &cal,
                t,
                a,
                s,
                [o, hi, lo, c, pre_close],
                volume,
                amount,
                adj[a],
                is_st,
                false,
                total_sh[a],
                circ_sh[a],
            );

            let circ_mv = c * circ_sh[a];
            hist.close[i] = c * adj[a];
            hist.volume[i] = volume / adj[a];
            hist.turnover[i] = volume * c / circ_mv;
            hist.returns[i] = if t > 0 && !hist.close[i - na].is_nan() {
                hist.close[i] / hist.close[i - na] - 1.0
            } else {
                f64::NAN
            };
            hist.universe[i] = !is_st && volume > 0.0 && (t as i64 - s.first_idx) >= 60;
        }

        // Today's planted signals, used for the next days' returns.
        for (j, pl) in planted.iter().enumerate() {
            planted_raw(pl.name, &hist, t, &industry, &mut raw_sig);
            rank_score(&raw_sig, &mut zrow);
            let slot = (t % hmax) * na;
            zbuf[j][slot..slot + na].copy_from_slice(&zrow);
        }
    }

    let n_eff_assets = hist.universe.iter().filter(|u| **u).count() as f64 / nd as f64;
    let alphas: Vec<_> = planted
        .iter()
        .map(|pl| {
            // Standard error of a mean RankIC over nd/h effectively independent dates;
            // per-date spread measured at ~1.3/sqrt(n) (sampling plus factor structure).
            // Tolerance: 3 standard errors plus 10% calibration slack.
            let se = 1.3 / (n_eff_assets.max(2.0) * nd as f64 / pl.horizon as f64).sqrt();
            json!({
                "name": pl.name,
                "kind": pl.kind,
                "expression": pl.expression,
                "dialect": "native",
                "horizon": pl.horizon,
                "label": af_panel::columns::label(pl.horizon),
                "target_rank_ic": pl.target_rank_ic,
                "tolerance": 3.0 * se + 0.1 * pl.target_rank_ic,
                "standard_error": se,
                "scale": pl.scale,
            })
        })
        .collect();
    let ground_truth = json!({
        "format": "af-ground-truth/1",
        "note": "Planted alphas of the synthetic market. Never read by the miner; tests and benchmarks use it to score recovery. target_rank_ic is the mean cross-sectional Spearman correlation, over in_universe assets, of the expression with the close-to-close label of its horizon on a panel built with default settings.",
        "seed": p.seed,
        "planted_set": p.planted.name(),
        "assets": na,
        "days": nd,
        "mean_universe_size": (n_eff_assets * 10.0).round() / 10.0,
        "alphas": alphas,
        "return_model": {
            "market": "GARCH(1,1): long-run daily vol 1.3%, alpha 0.08, beta 0.90",
            "industry": "30 industries, i.i.d. N(0, 0.8%) daily, loading ~ N(1, 0.3)",
            "size": "style return N(0, 0.3%) daily, exposure -0.5 x size z-score",
            "idiosyncratic": "GARCH(1,1) per stock: long-run vol lognormal around 2.1% (smaller caps more volatile), alpha 0.06, beta 0.92",
            "planting": "return += sigma_idio * sum_j scale_j / h_j * sum_{l<h_j} z_j(t-1-l), z_j = rank score of expression j over in_universe assets",
        },
    });
    Ok(Synthetic {
        bars,
        calendar: cal,
        ground_truth,
    })
}

#[allow(clippy::too_many_arguments)]
fn push_bar(
    bars: &mut RawBars,
    cal: &[i32],
    t: usize,
    a: usize,
    s: &Asset,
    ohlcp: [f64; 5],
    volume: f64,
    amount: f64,
    adj: f64,
    is_st: bool,
    suspended: bool,
    total_sh: f64,
    circ_sh: f64,
) {
    let [o, h, l, c, pc] = ohlcp;
    bars.trade_date.push(cal[t]);
    bars.code.push(a as u32);
    bars.open.push(o);
    bars.high.push(h);
    bars.low.push(l);
    bars.close.push(c);
    bars.pre_close.push(pc);
    bars.volume.push(volume);
    bars.amount.push(amount);
    bars.adj_factor.push(adj);
    bars.is_st.push(is_st);
    bars.is_suspended.push(suspended);
    bars.industry.push(s.industry);
    bars.total_mv.push(c * total_sh);
    bars.circ_mv.push(c * circ_sh);
    // The exchange's limit prices, as Tushare's stk_limit gives them (none on a
    // ChiNext/STAR listing day, nor for codes outside the A-share scheme).
    let listing_day = s.ipo == Some(t);
    let (up, dn) = limit_pct(s.board, is_st, listing_day)
        .map(|pp| limit_prices(pc, pp))
        .unwrap_or((f64::NAN, f64::NAN));
    bars.up_limit.push(up);
    bars.down_limit.push(dn);
    bars.list_date.push(s.list_date);
    bars.origin.push((0, bars.origin.len() as u32 + 1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sane() {
        let p = SynthParams {
            assets: 60,
            days: 300,
            seed: 3,
            start: af_panel::dates::ymd_to_days(2020, 1, 2),
            planted: Default::default(),
        };
        let a = generate(&p).unwrap();
        let b = generate(&p).unwrap();
        assert_eq!(a.bars.close, b.bars.close);
        assert_eq!(a.bars.volume, b.bars.volume);
        let bars = &a.bars;
        assert!(bars.len() > 60 * 200);
        for i in 0..bars.len() {
            assert!(
                bars.low[i] <= bars.open[i].min(bars.close[i])
                    && bars.high[i] >= bars.open[i].max(bars.close[i]),
                "row {i}"
            );
            if !bars.is_suspended[i] && bars.volume[i] > 0.0 {
                let v = bars.amount[i] / bars.volume[i];
                assert!(v >= bars.low[i] - 0.01 && v <= bars.high[i] + 0.01);
            }
        }
        assert!(bars.is_suspended.iter().any(|s| *s));
        let mut sorted = a.bars.clone();
        sorted.sort();
        assert_eq!(sorted.trade_date, a.bars.trade_date);
        assert_eq!(sorted.code, a.bars.code);
        sorted.validate().unwrap();
    }
}
