//! A costed top-k portfolio from any signal: Qlib's `TopkDropoutStrategy` rules on the
//! dense panel, day by day (docs/backtest.md).
//!
//! Each trading day t: the signal of the previous date decides; trades deal at t's
//! close. Holdings are ranked by the signal (a holding without one ranks last); the
//! `n_drop` worst of holdings ∪ best non-holdings that are holdings are sold, and as
//! many of the best non-holdings are bought as keep `topk` names, each with an equal
//! share of `risk_degree` × the cash after the sells. An order is refused when the
//! stock cannot trade (no bar / suspended) or moved by the limit either way that day
//! (Qlib's default `forbid_all_trade_at_limit`); refused orders are recorded with the
//! reason (a refused buy's share of the cash stays cash, as in Qlib). Cost
//! per trade: max(value × rate, min_cost), `cost_buy` for buys, `cost_sell` for sells.
//!
//! Reported like Qlib's `PortfolioMetrics`: the gross return (the account's change
//! plus the day's costs, over the previous value), the cost rate, the net return
//! (their difference), the benchmark's return, and turnover (traded value over the
//! previous value). Metrics are Qlib's `risk_analysis` in "sum" mode with N = 238, and
//! beside its sum-mode drawdown (which passes −100 % when losses add up) the compounded
//! drawdown a reader expects (never beyond −100 %).
//!
//! Limits are the market's own (issue 34): [`Limits::of`] reads the profile the panel
//! was built under. A held or benchmark return beyond the market's own limit cannot
//! happen once panel-build has turned impossible moves into breaks; [`run`] and
//! [`impossible_bench`] refuse one, naming its cell.

use anyhow::{Result, bail};

/// The strategy and the exchange.
#[derive(Debug, Clone)]
pub struct Params {
    pub topk: usize,
    pub n_drop: usize,
    pub cost_buy: f64,
    pub cost_sell: f64,
    pub min_cost: f64,
    pub account: f64,
    pub risk_degree: f64,
    /// |close/prev − 1| at or above this is a limit move (Qlib's `limit_threshold`),
    /// for assets without a threshold of their own in [`Market::limits`] (NaN there).
    pub limit: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            topk: 50,
            n_drop: 5,
            cost_buy: 0.0005,
            cost_sell: 0.0015,
            min_cost: 5.0,
            account: 1e8,
            risk_degree: 0.95,
            limit: 0.095,
        }
    }
}

/// What the simulation reads, all `[date][asset]` row-major.
pub struct Market<'a> {
    pub n_dates: usize,
    pub n_assets: usize,
    pub close: &'a [f64],
    /// close / previous close − 1 (the limit test).
    pub change: &'a [f64],
    /// Trade prices (the close, or the open with `--deal open`); holdings are marked at
    /// the close.
    pub deal: &'a [f64],
    /// Per asset, its limit thresholds and impossible-move bounds ([`Limits`]).
    pub limits: &'a Limits,
    /// Names for errors: the panel's codes and dates.
    pub codes: &'a [String],
    pub dates: &'a [i32],
    /// A real bar with trade today.
    pub tradable: &'a [bool],
    /// The benchmark's daily return (e.g. the universe's equal-weight mean).
    pub bench: &'a [f64],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Suspended,
    LimitUp,
    LimitDown,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Suspended => "suspended",
            Refusal::LimitUp => "limit_up",
            Refusal::LimitDown => "limit_down",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Trade {
    pub t: usize,
    pub asset: usize,
    pub side: Side,
    pub shares: f64,
    pub price: f64,
    pub value: f64,
    pub cost: f64,
    pub refused: Option<Refusal>,
}

#[derive(Debug, Clone, Default)]
pub struct Day {
    pub t: usize,
    pub value: f64,
    pub cash: f64,
    pub gross: f64,
    pub cost: f64,
    pub net: f64,
    pub bench: f64,
    pub turnover: f64,
    pub holdings: usize,
}

pub struct Outcome {
    pub days: Vec<Day>,
    pub trades: Vec<Trade>,
}

/// Per asset: the change at or beyond which a day is a limit move, up and down (NaN:
/// [`Params::limit`]; ∞: no limit), and the change beyond which a return is impossible
/// (∞: no bound), with a line saying which rule made them.
#[derive(Debug, Clone)]
pub struct Limits {
    pub up: Vec<f64>,
    pub down: Vec<f64>,
    pub bound_up: Vec<f64>,
    pub bound_down: Vec<f64>,
    pub rule: String,
}

/// The backtest's limit rules (`backtest --limit-rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitRule {
    /// The market profile the panel was built under (default).
    Market,
    /// A-share board rules by code, whatever the panel's market.
    Board,
    /// `Params::limit` for every stock (Qlib's `limit_threshold`).
    Flat,
    /// No limit moves and no bound.
    None,
}

impl Limits {
    pub fn of(rule: LimitRule, market: &af_data::market::Market, codes: &[String]) -> Limits {
        let n = codes.len();
        let mut l = Limits {
            up: vec![f64::NAN; n],
            down: vec![f64::NAN; n],
            bound_up: vec![f64::INFINITY; n],
            bound_down: vec![f64::INFINITY; n],
            rule: String::new(),
        };
        match rule {
            LimitRule::Market => {
                for (i, c) in codes.iter().enumerate() {
                    let ((u, d), (bu, bd)) = market.backtest_limits(c);
                    (l.up[i], l.down[i], l.bound_up[i], l.bound_down[i]) = (u, d, bu, bd);
                }
                l.rule = format!("market {} ({})", market.name, market.describe());
            }
            LimitRule::Board => {
                let b = board_limits(codes);
                l.up.clone_from(&b);
                l.down = b;
                l.rule = "board (A-share board limits by code)".into();
            }
            LimitRule::Flat => l.rule = "flat (--limit for every stock)".into(),
            LimitRule::None => {
                l.up.fill(f64::INFINITY);
                l.down.fill(f64::INFINITY);
                l.rule = "none".into();
            }
        }
        l
    }

    fn impossible(&self, a: usize, change: f64) -> bool {
        change > self.bound_up[a] || change < -self.bound_down[a]
    }
}

/// A held or benchmark return the market's own limit makes impossible: an error of
/// its own type, so callers that skip a portfolio on other errors never skip this one.
#[derive(Debug)]
pub struct Impossible(String);

impl std::fmt::Display for Impossible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Impossible {}

fn impossible_error(m: &Market, t: usize, a: usize, change: f64, what: &str) -> anyhow::Error {
    anyhow::Error::new(Impossible(format!(
        "{what} {} on {}: a return of {:+.2} % is beyond the market's own limit ({}) — an \
         impossible move the panel should hold as a break; rebuild the panel (ts-fetch \
         without --breaks keep, then panel-build), or pass --limit-rule none to run anyway",
        m.codes.get(a).map_or("?", |s| s.as_str()),
        m.dates
            .get(t)
            .map_or("?".into(), |d| af_panel::dates::format_date(*d)),
        100.0 * change,
        m.limits.rule
    )))
}

/// The first benchmark member (in the previous date's universe) whose return at or after
/// `from` is impossible under `limits`: (date, asset, return).
pub fn impossible_bench(
    change: &[f64],
    universe: &[bool],
    limits: &Limits,
    na: usize,
    from: usize,
) -> Option<(usize, usize, f64)> {
    let nd = change.len() / na.max(1);
    for t in from.max(1)..nd {
        for a in 0..na {
            let r = change[t * na + a];
            if universe[(t - 1) * na + a] && r.is_finite() && limits.impossible(a, r) {
                return Some((t, a, r));
            }
        }
    }
    None
}

/// [`impossible_bench`] as the error the backtest stops with.
pub fn check_bench(m: &Market, universe: &[bool], from: usize) -> Result<()> {
    match impossible_bench(m.change, universe, m.limits, m.n_assets, from) {
        Some((t, a, r)) => Err(impossible_error(m, t, a, r, "benchmark member")),
        None => Ok(()),
    }
}

/// Why an order for asset `a` on day `t` cannot be dealt, if it cannot: no bar /
/// suspended, or a limit move either way (Qlib's default `forbid_all_trade_at_limit`:
/// no trade in either direction on a limit day).
fn refusal(m: &Market, p: &Params, t: usize, a: usize) -> Option<Refusal> {
    let i = t * m.n_assets + a;
    let ch = m.change[i];
    let or = |x: f64| if x.is_nan() { p.limit } else { x };
    if !m.tradable[i] || !m.deal[i].is_finite() {
        Some(Refusal::Suspended)
    } else if ch >= or(m.limits.up[a]) {
        Some(Refusal::LimitUp)
    } else if ch <= -or(m.limits.down[a]) {
        Some(Refusal::LimitDown)
    } else {
        None
    }
}

/// Rank of `s` for sorting best first; a missing signal sorts last (pandas puts NaN
/// last in `sort_values(ascending=False)`).
fn desc(s: &[f64], a: usize, b: usize) -> std::cmp::Ordering {
    let (x, y) = (s[a], s[b]);
    match (x.is_nan(), y.is_nan()) {
        (true, true) => a.cmp(&b),
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        (false, false) => y.total_cmp(&x).then(a.cmp(&b)),
    }
}

/// Run from the first date whose previous date has a signal; `signal` is
/// `[date][asset]` (NaN where a stock has no score).
pub fn run(m: &Market, signal: &[f64], p: &Params) -> Result<Outcome> {
    let (nd, na) = (m.n_dates, m.n_assets);
    if p.topk == 0 || p.n_drop > p.topk {
        bail!("--topk must be at least 1 and --n-drop at most --topk");
    }
    let first = (1..nd)
        .find(|&t| signal[(t - 1) * na..t * na].iter().any(|x| x.is_finite()))
        .ok_or_else(|| anyhow::anyhow!("the signal has no score on any date before the last"))?;
    let mut shares = vec![0.0f64; na];
    let mut held: Vec<usize> = Vec::new();
    let mut cash = p.account;
    let mut value_prev = p.account;
    let mut days = Vec::new();
    let mut trades = Vec::new();
    let mut last_px = vec![f64::NAN; na];
    for t in first..nd {
        let s = &signal[(t - 1) * na..t * na];
        let row = |v: &'_ [f64], a: usize| v[t * na + a];
        for &a in &held {
            let ch = row(m.change, a);
            if ch.is_finite() && m.limits.impossible(a, ch) {
                return Err(impossible_error(m, t, a, ch, "held"));
            }
        }
        for a in 0..na {
            if row(m.close, a).is_finite() {
                last_px[a] = row(m.close, a);
            }
        }
        // Qlib's TopkDropout selection.
        let mut last = held.clone();
        last.sort_by(|&a, &b| desc(s, a, b));
        let want = (p.n_drop + p.topk).saturating_sub(last.len());
        let mut cand: Vec<usize> = (0..na)
            .filter(|a| s[*a].is_finite() && shares[*a] == 0.0)
            .collect();
        cand.sort_by(|&a, &b| desc(s, a, b));
        cand.truncate(want);
        let mut comb: Vec<usize> = last.iter().chain(cand.iter()).copied().collect();
        comb.sort_by(|&a, &b| desc(s, a, b));
        let worst = &comb[comb.len().saturating_sub(p.n_drop)..];
        let sell: Vec<usize> = last.iter().copied().filter(|a| worst.contains(a)).collect();
        let n_buy = (sell.len() + p.topk)
            .saturating_sub(last.len())
            .min(cand.len());
        let buy: Vec<usize> = cand[..n_buy].to_vec();

        let refusal = |a: usize| refusal(m, p, t, a);
        let (mut cost_day, mut traded) = (0.0, 0.0);
        for &a in &sell {
            let px = row(m.deal, a);
            let value = shares[a] * px;
            let refused = refusal(a);
            let cost = if refused.is_none() {
                (value * p.cost_sell).max(p.min_cost)
            } else {
                0.0
            };
            trades.push(Trade {
                t,
                asset: a,
                side: Side::Sell,
                shares: shares[a],
                price: px,
                value,
                cost,
                refused,
            });
            if refused.is_none() {
                cash += value - cost;
                cost_day += cost;
                traded += value;
                shares[a] = 0.0;
            }
        }
        let each = if buy.is_empty() {
            0.0
        } else {
            cash * p.risk_degree / buy.len() as f64
        };
        for &a in &buy {
            let px = row(m.deal, a);
            let refused = refusal(a);
            let (n, cost) = if refused.is_none() && px > 0.0 {
                (each / px, (each * p.cost_buy).max(p.min_cost))
            } else {
                (0.0, 0.0)
            };
            trades.push(Trade {
                t,
                asset: a,
                side: Side::Buy,
                shares: n,
                price: px,
                value: n * px,
                cost,
                refused,
            });
            if refused.is_none() && n > 0.0 {
                cash -= each + cost;
                cost_day += cost;
                traded += each;
                shares[a] += n;
            }
        }
        held = (0..na).filter(|&a| shares[a] > 0.0).collect();
        // Mark to the close (a suspended holding at its last price).
        let value = cash + held.iter().map(|&a| shares[a] * last_px[a]).sum::<f64>();
        let gross = (value + cost_day) / value_prev - 1.0;
        let cost = cost_day / value_prev;
        days.push(Day {
            t,
            value,
            cash,
            gross,
            cost,
            net: gross - cost,
            bench: m.bench[t],
            turnover: traded / value_prev,
            holdings: held.len(),
        });
        value_prev = value;
    }
    Ok(Outcome { days, trades })
}

/// The signal's top-k picks of each date, and how many of them could not be traded on
/// the next day: no bar or suspended, at the limit up, at the limit down (issue 34:
/// "where the IC lives" — a signal whose best names cannot be bought earns nothing).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PickTradability {
    pub picks: usize,
    pub suspended: usize,
    pub limit_up: usize,
    pub limit_down: usize,
}

impl PickTradability {
    pub fn untradable_share(&self) -> f64 {
        (self.suspended + self.limit_up + self.limit_down) as f64 / self.picks.max(1) as f64
    }
}

pub fn pick_tradability(m: &Market, signal: &[f64], p: &Params) -> PickTradability {
    let (nd, na) = (m.n_dates, m.n_assets);
    let mut out = PickTradability::default();
    let mut idx: Vec<usize> = Vec::with_capacity(na);
    for t in 1..nd {
        let s = &signal[(t - 1) * na..t * na];
        idx.clear();
        idx.extend((0..na).filter(|a| s[*a].is_finite()));
        if idx.is_empty() {
            continue;
        }
        idx.sort_by(|&a, &b| desc(s, a, b));
        idx.truncate(p.topk);
        for &a in &idx {
            out.picks += 1;
            match refusal(m, p, t, a) {
                Some(Refusal::Suspended) => out.suspended += 1,
                Some(Refusal::LimitUp) => out.limit_up += 1,
                Some(Refusal::LimitDown) => out.limit_down += 1,
                None => {}
            }
        }
    }
    out
}

/// Per code, its limit-move threshold under the A-share board rules (a move within half
/// a percent of the limit counts): 0.095 main boards, 0.195 ChiNext/STAR, 0.295
/// Beijing; codes outside the A-share scheme have none (infinite).
pub fn board_limits(codes: &[String]) -> Vec<f64> {
    use af_data::limits::{Board, board};
    codes
        .iter()
        .map(|c| match board(c) {
            Some(Board::Main) => 0.095,
            Some(Board::Growth) => 0.195,
            Some(Board::Beijing) => 0.295,
            None => f64::INFINITY,
        })
        .collect()
}

/// A panel as the backtest reads it, under the market's own limits (the profile the
/// panel was built under) with the equal-weight benchmark of `universe`: the default
/// portfolio of a signal, as the report's factor portfolios and lgbm-train's compared
/// models compute it.
pub struct OnPanel<'p> {
    panel: &'p af_panel::Panel,
    tradable: Vec<bool>,
    pub limits: Limits,
    bench: Vec<f64>,
    /// Top-k 50, or a fifth of the universe; drop a tenth of it; default costs.
    pub params: Params,
}

impl<'p> OnPanel<'p> {
    pub fn new(panel: &'p af_panel::Panel, universe: &[bool]) -> Result<OnPanel<'p>> {
        let (nd, na) = (panel.n_dates(), panel.n_assets());
        let tradable = panel
            .mask(af_panel::columns::TRADABLE)
            .unwrap_or_else(|_| vec![true; nd * na]);
        let market = af_data::market::Market::from_panel(&panel.description())?;
        let limits = Limits::of(LimitRule::Market, &market, panel.codes());
        let bench = equal_weight_bench(panel.field("returns")?.data, universe, nd, na);
        let topk = 50.min(max_universe(universe, nd, na) / 5).max(1);
        let params = Params {
            topk,
            n_drop: (topk / 10).max(1),
            ..Params::default()
        };
        Ok(OnPanel {
            panel,
            tradable,
            limits,
            bench,
            params,
        })
    }

    /// The simulation's view (dealing at the close).
    pub fn market(&self) -> Result<Market<'_>> {
        let p = self.panel;
        let close = p.field(af_panel::columns::CLOSE)?.data;
        Ok(Market {
            n_dates: p.n_dates(),
            n_assets: p.n_assets(),
            close,
            change: p.field("returns")?.data,
            deal: close,
            limits: &self.limits,
            codes: p.codes(),
            dates: p.dates(),
            tradable: &self.tradable,
            bench: &self.bench,
        })
    }
}

/// Whether an error of [`run`] is an impossible return (a real failure, never to be
/// skipped as "no portfolio").
pub fn is_impossible(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Impossible>().is_some()
}

/// The most members the universe has on any date (top-k must not exceed it).
pub fn max_universe(universe: &[bool], nd: usize, na: usize) -> usize {
    (0..nd)
        .map(|t| {
            universe[t * na..(t + 1) * na]
                .iter()
                .filter(|x| **x)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The benchmark `backtest` uses by default: each day, the mean return of the previous
/// day's universe members.
pub fn equal_weight_bench(change: &[f64], universe: &[bool], nd: usize, na: usize) -> Vec<f64> {
    (0..nd)
        .map(|t| {
            if t == 0 {
                return f64::NAN;
            }
            let (mut s, mut n) = (0.0, 0usize);
            for k in 0..na {
                let r = change[t * na + k];
                if universe[(t - 1) * na + k] && r.is_finite() {
                    s += r;
                    n += 1;
                }
            }
            if n > 0 { s / n as f64 } else { f64::NAN }
        })
        .collect()
}

/// Qlib's `risk_analysis(r, N=238, mode="sum")`, and the compounded drawdown.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Risk {
    pub mean: f64,
    pub std: f64,
    pub annualized_return: f64,
    pub information_ratio: f64,
    /// The compounded drawdown: the worst fall of Π(1 + r) from its peak, as a
    /// fraction of the peak (never below −1).
    pub max_drawdown: f64,
    /// Qlib's sum-mode drawdown: the worst fall of Σ r from its peak (can pass −1).
    pub max_drawdown_sum: f64,
}

pub const N_YEAR: f64 = 238.0;

pub fn risk(r: &[f64]) -> Risk {
    let v: Vec<f64> = r.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let (mut cum, mut peak, mut mdd) = (0.0f64, f64::NEG_INFINITY, 0.0f64);
    let (mut wealth, mut wpeak, mut cdd) = (1.0f64, 1.0f64, 0.0f64);
    for x in &v {
        cum += x;
        peak = peak.max(cum);
        mdd = mdd.min(cum - peak);
        // A day losing more than everything leaves nothing (wealth stays at zero).
        wealth = (wealth * (1.0 + x)).max(0.0);
        wpeak = wpeak.max(wealth);
        if wpeak > 0.0 {
            cdd = cdd.min(wealth / wpeak - 1.0);
        }
    }
    Risk {
        mean,
        std,
        annualized_return: mean * N_YEAR,
        information_ratio: mean / std * N_YEAR.sqrt(),
        max_drawdown: cdd,
        max_drawdown_sum: mdd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hold 2, drop 1, no minimum cost.
    fn hold_two() -> Params {
        Params {
            topk: 2,
            n_drop: 1,
            min_cost: 0.0,
            ..Params::default()
        }
    }

    #[test]
    fn topk_dropout_sells_the_worst_and_refuses_limits() {
        // 4 assets, 3 days; hold 2, drop 1.
        let close = vec![
            10.0, 10.0, 10.0, 10.0, //
            11.0, 10.0, 10.0, 10.0, //
            11.0, 10.0, 11.0, 9.0,
        ];
        let change = vec![
            f64::NAN,
            f64::NAN,
            f64::NAN,
            f64::NAN, //
            0.1,
            0.0,
            0.0,
            0.0, //
            0.0,
            0.0,
            0.1,
            -0.1,
        ];
        let tradable = vec![true; 12];
        let bench = vec![0.0; 3];
        let codes: Vec<String> = (0..4).map(|i| format!("S{i}")).collect();
        let limits = Limits::of(LimitRule::Flat, &af_data::market::Market::cn(), &codes);
        let m = Market {
            n_dates: 3,
            n_assets: 4,
            close: &close,
            change: &change,
            deal: &close,
            limits: &limits,
            codes: &codes,
            dates: &[0, 1, 2],
            tradable: &tradable,
            bench: &bench,
        };
        let signal = vec![
            4.0, 3.0, 2.0, 1.0, //
            1.0, 4.0, 3.0, 2.0, //
            0.0, 0.0, 0.0, 0.0,
        ];
        let p = hold_two();
        let o = run(&m, &signal, &p).unwrap();
        // Day 1: buy the best two of day 0's signal; asset 0 is limit-up: refused.
        let d1: Vec<_> = o.trades.iter().filter(|x| x.t == 1).collect();
        assert_eq!(d1.len(), 2);
        assert_eq!(d1[0].refused, Some(Refusal::LimitUp));
        assert!(d1[1].refused.is_none() && d1[1].asset == 1);
        // Day 2: holding {1}, nothing among the n_drop worst; one buy, the best
        // non-holding 2 (score 3) — which moved +10 %: refused.
        let d2: Vec<_> = o.trades.iter().filter(|x| x.t == 2).collect();
        assert_eq!(d2.len(), 1);
        assert_eq!((d2[0].asset, d2[0].side), (2, Side::Buy));
        assert_eq!(d2[0].refused, Some(Refusal::LimitUp));
        assert_eq!(o.days.len(), 2);
        let r = risk(&[0.01, -0.02, 0.03]);
        assert!((r.max_drawdown_sum + 0.02).abs() < 1e-15);
        assert!((r.max_drawdown + 0.02).abs() < 1e-15);
        assert!((r.annualized_return - 0.02 / 3.0 * 238.0).abs() < 1e-12);
    }

    /// Sum-mode drawdown passes −100 % when daily losses add up; compounded wealth
    /// never does.
    #[test]
    fn compounded_drawdown_stays_above_minus_one() {
        let r = risk(&[0.1, -0.5, -0.5, -0.4, 0.2]);
        assert!((r.max_drawdown_sum + 1.4).abs() < 1e-12);
        let expect = 0.5 * 0.5 * 0.6 - 1.0;
        assert!(
            (r.max_drawdown - expect).abs() < 1e-12,
            "{}",
            r.max_drawdown
        );
        assert!(risk(&[-1.5, 0.1]).max_drawdown >= -1.0);
    }

    /// Under a ±50 % / −40 % profile an order at +50 % is a limit-up refusal, +45 % is
    /// not; a held ×171 move is refused as impossible, naming the code and date.
    #[test]
    fn market_limits_refuse_and_impossible_moves_stop() {
        let dir = std::env::temp_dir().join(format!("af-bt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("xse.yaml");
        std::fs::write(&f, "name: xse\nlimit_up: 0.5\nlimit_down: 0.4\n").unwrap();
        let xse = af_data::market::Market::load(f.to_str().unwrap()).unwrap();
        let codes: Vec<String> = vec!["AAA".into(), "BBB".into()];
        let limits = Limits::of(LimitRule::Market, &xse, &codes);
        let close = vec![10.0, 10.0, 15.0, 14.5, 15.0, 14.5];
        let change = vec![f64::NAN, f64::NAN, 0.5, 0.45, 0.0, 0.0];
        let tradable = vec![true; 6];
        let bench = vec![0.0; 3];
        let dates: Vec<i32> = ["2020-01-02", "2020-01-03", "2020-01-06"]
            .iter()
            .map(|d| af_panel::dates::parse_date(d).unwrap())
            .collect();
        let m = Market {
            n_dates: 3,
            n_assets: 2,
            close: &close,
            change: &change,
            deal: &close,
            limits: &limits,
            codes: &codes,
            dates: &dates,
            tradable: &tradable,
            bench: &bench,
        };
        let signal = vec![2.0, 1.0, 2.0, 1.0, 0.0, 0.0];
        let p = hold_two();
        let o = run(&m, &signal, &p).unwrap();
        let d1: Vec<_> = o.trades.iter().filter(|x| x.t == 1).collect();
        assert_eq!(d1[0].refused, Some(Refusal::LimitUp), "+50 % is limit-up");
        assert_eq!(d1[1].refused, None, "+45 % is a trade");
        // BBB held from day 1; a ×171 print on day 2 is impossible.
        let mut bad = change.clone();
        bad[5] = 170.0;
        let m2 = Market { change: &bad, ..m };
        let e = run(&m2, &signal, &p).err().unwrap();
        assert!(is_impossible(&e));
        let e = e.to_string();
        assert!(e.contains("BBB") && e.contains("2020-01-06"), "{e}");
        assert!(check_bench(&m2, &[true; 6], 1).is_err());
        assert!(check_bench(&m, &[true; 6], 1).is_ok());
        // --limit-rule none: no bound, nothing refused.
        let none = Limits::of(LimitRule::None, &xse, &codes);
        let m3 = Market {
            change: &bad,
            limits: &none,
            ..m
        };
        assert!(run(&m3, &signal, &p).is_ok());
    }
}
