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
//! previous value). Metrics are Qlib's `risk_analysis` in "sum" mode with N = 238.

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
    /// for assets without a threshold of their own in [`Market::limits`].
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
    /// Per asset, its limit threshold (board rules); NaN: `Params::limit`; infinite: none.
    pub limits: &'a [f64],
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

        // Qlib's default `forbid_all_trade_at_limit`: no trade in either direction on
        // a limit day.
        let refusal = |a: usize| -> Option<Refusal> {
            let ch = row(m.change, a);
            let lim = if m.limits[a].is_nan() {
                p.limit
            } else {
                m.limits[a]
            };
            if !m.tradable[t * na + a] || !row(m.deal, a).is_finite() {
                Some(Refusal::Suspended)
            } else if ch >= lim {
                Some(Refusal::LimitUp)
            } else if ch <= -lim {
                Some(Refusal::LimitDown)
            } else {
                None
            }
        };
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

/// Qlib's `risk_analysis(r, N=238, mode="sum")`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Risk {
    pub mean: f64,
    pub std: f64,
    pub annualized_return: f64,
    pub information_ratio: f64,
    pub max_drawdown: f64,
}

pub const N_YEAR: f64 = 238.0;

pub fn risk(r: &[f64]) -> Risk {
    let v: Vec<f64> = r.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let (mut cum, mut peak, mut mdd) = (0.0f64, f64::NEG_INFINITY, 0.0f64);
    for x in &v {
        cum += x;
        peak = peak.max(cum);
        mdd = mdd.min(cum - peak);
    }
    Risk {
        mean,
        std,
        annualized_return: mean * N_YEAR,
        information_ratio: mean / std * N_YEAR.sqrt(),
        max_drawdown: mdd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let limits = vec![f64::NAN; 4];
        let m = Market {
            n_dates: 3,
            n_assets: 4,
            close: &close,
            change: &change,
            deal: &close,
            limits: &limits,
            tradable: &tradable,
            bench: &bench,
        };
        let signal = vec![
            4.0, 3.0, 2.0, 1.0, //
            1.0, 4.0, 3.0, 2.0, //
            0.0, 0.0, 0.0, 0.0,
        ];
        let p = Params {
            topk: 2,
            n_drop: 1,
            min_cost: 0.0,
            ..Params::default()
        };
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
        assert!((r.max_drawdown + 0.02).abs() < 1e-15);
        assert!((r.annualized_return - 0.02 / 3.0 * 238.0).abs() < 1e-12);
    }
}
