//! Raw bars → the dense panel (docs/data_contract.md).
//!
//! One pass over the date × asset grid, date-major, with per-asset state for what is
//! carried forward. The rules, in the order they apply to a cell (t, a):
//! - Before an asset's first bar or after its last one: every field NaN, masks false.
//! - A real bar (present, not `is_suspended`): prices × f, volume / f, where the
//!   adjustment factor f = adj/adj_latest (forward), adj (backward) or 1 (none), and
//!   adj_latest is the asset's last adj_factor in the data.
//! - A missing or suspended bar between the first and last: open = high = low = close =
//!   the last real close (adjusted with the last real adj), volume = amount = 0, vwap
//!   NaN, cap carried, turnover 0, `tradable` false.
//! - `returns` = close / close.shift(1) − 1; `vwap` = amount / volume (adjusted), NaN
//!   when volume is 0; `turnover` = volume × close / circ_mv (raw), NaN without circ_mv;
//!   `cap` = total_mv.
//! - `tradable` = real bar with volume > 0 (or, without volume, amount > 0).
//! - `in_universe` = tradable, not ST, listed for ≥ min_list_days trading days, a
//!   member per the optional universe file, and through the optional [`Liquidity`] screen.
//! - A field the source does not have (no volume, no amount, no caps) is NaN on every
//!   cell, never 0, and so is everything derived from it (vwap, turnover); the panel
//!   warns once per absent field.
//! - Breaks ([`crate::market`], issue 34): a real bar whose adjusted close over the
//!   previous real close is impossible under the market profile has no return:
//!   `returns` is NaN there, every label whose window crosses it is NaN, and the prices
//!   (and volumes) before it are re-based by the observed ratio so levels stay
//!   continuous. Listed in the panel's provenance (`breaks`).
//! - Labels `fwd_ret_h(t)`: close(t+h)/close(t) − 1 (close2close) or
//!   open(t+1+h)/open(t+1) − 1 (open2open); NaN unless the asset could be bought at t
//!   (tradable and not closed at its up-limit: the raw `up_limit` when the source gave
//!   it, else the market profile's rule) — and for open2open also tradable at
//!   t+1 without opening at the up-limit.

use std::collections::{BTreeSet, HashMap};

use af_panel::dates::busday_count;
use af_panel::{PanelData, columns};
use anyhow::{Result, bail};
use serde_json::json;

use crate::limits::at_up_limit;
use crate::market::Market;
use crate::raw::{NO_DATE, NO_INDUSTRY, RawBars};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    Forward,
    Backward,
    None,
}

/// The label rule is the panel's own (af-panel), so readers compute it the same way.
pub use af_panel::columns::LabelRule as Label;

/// Index membership: per code, the date ranges (inclusive) it belongs to.
#[derive(Debug, Clone, Default)]
pub struct Universe {
    pub members: HashMap<String, Vec<(i32, i32)>>,
}

impl Universe {
    fn contains(&self, code: &str, day: i32) -> bool {
        self.members
            .get(code)
            .is_some_and(|r| r.iter().any(|(a, b)| day >= *a && day <= *b))
    }
}

#[derive(Debug, Clone)]
pub struct BuildParams {
    pub adjust: Adjust,
    pub horizons: Vec<usize>,
    pub label: Label,
    pub min_list_days: usize,
    pub universe: Option<Universe>,
    /// Daily limits behind the "closed at the up-limit, cannot be bought" rule.
    pub market: Market,
    pub liquidity: Liquidity,
}

/// The liquidity screen of the universe: on each date, the trailing median of traded
/// value (amount; volume × close where the source has no amount) over `days` dates,
/// days without a bar counting as 0. Members need a median ≥ `min_value` and, with
/// `top`, to be among the `top` most liquid of the day's otherwise eligible assets.
/// Issue 20: a 1-day reversal "alpha" with test RankIC 0.13 fell to 0.05 on the 80
/// most traded names — bid-ask bounce of illiquid names, which this screen shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Liquidity {
    pub days: usize,
    pub min_value: f64,
    pub top: Option<usize>,
}

impl Default for Liquidity {
    fn default() -> Self {
        Liquidity {
            days: 20,
            min_value: 0.0,
            top: None,
        }
    }
}

impl Liquidity {
    pub fn active(&self) -> bool {
        self.min_value > 0.0 || self.top.is_some()
    }

    /// Trailing median traded value per cell (NaN before an asset's first bar).
    pub fn medians(&self, value: &[f64], nd: usize, na: usize) -> Vec<f64> {
        let mut out = vec![f64::NAN; nd * na];
        let mut w: Vec<f64> = Vec::with_capacity(self.days);
        for a in 0..na {
            for t in 0..nd {
                w.clear();
                w.extend(
                    ((t + 1).saturating_sub(self.days)..=t)
                        .map(|k| value[k * na + a])
                        .filter(|x| x.is_finite()),
                );
                if !w.is_empty() {
                    w.sort_unstable_by(f64::total_cmp);
                    let n = w.len();
                    out[t * na + a] = if n % 2 == 1 {
                        w[n / 2]
                    } else {
                        (w[n / 2 - 1] + w[n / 2]) / 2.0
                    };
                }
            }
        }
        out
    }

    /// Narrow `in_universe` in place; returns how many member cells the screen removed.
    fn screen(&self, value: &[f64], in_universe: &mut [bool], nd: usize, na: usize) -> usize {
        if !self.active() {
            return 0;
        }
        let med = self.medians(value, nd, na);
        let mut removed = 0;
        let mut cand: Vec<usize> = Vec::with_capacity(na);
        for t in 0..nd {
            let row = &mut in_universe[t * na..(t + 1) * na];
            let m = &med[t * na..(t + 1) * na];
            cand.clear();
            for a in 0..na {
                if !row[a] {
                    continue;
                }
                if m[a].is_finite() && m[a] >= self.min_value {
                    cand.push(a);
                } else {
                    row[a] = false;
                    removed += 1;
                }
            }
            if let Some(n) = self.top {
                if cand.len() > n {
                    // Most liquid first; ties by asset order, so the screen is deterministic.
                    cand.sort_by(|x, y| m[*y].total_cmp(&m[*x]).then(x.cmp(y)));
                    for &a in &cand[n..] {
                        row[a] = false;
                        removed += 1;
                    }
                }
            }
        }
        removed
    }
}

pub struct Built {
    pub data: PanelData,
    pub warnings: Vec<String>,
    /// Every break: (code, date, adjusted close / previous close).
    pub breaks: Vec<(String, i32, f64)>,
}

/// A bar's adjustment factor: its own, else the code's last one, else 1.
fn carried_adj(own: f64, last: f64) -> f64 {
    if own.is_finite() {
        own
    } else if last.is_finite() {
        last
    } else {
        1.0
    }
}

/// The breaks of sorted `bars` under `market` (row, adjusted ratio), and each row's
/// re-basing multiplier of its adjustment factor (all 1 without breaks): forward, the
/// product of the ratios of the code's later breaks (its latest prices stay real);
/// backward, the inverse of the earlier ones (its first prices stay real).
fn find_breaks(bars: &RawBars, market: &Market, adjust: Adjust) -> (Vec<(usize, f64)>, Vec<f64>) {
    let nc = bars.code_names.len();
    let mut last_close = vec![f64::NAN; nc];
    let mut last_adj = vec![f64::NAN; nc];
    let mut seen = vec![0usize; nc];
    let mut found = Vec::new();
    for i in 0..bars.len() {
        let c = bars.code[i] as usize;
        if bars.is_suspended[i] {
            continue;
        }
        let adj = carried_adj(bars.adj_factor[i], last_adj[c]);
        if last_close[c].is_finite() {
            let ratio = (bars.close[i] * adj) / (last_close[c] * last_adj[c]);
            let prev_px = if bars.pre_close[i].is_finite() && bars.pre_close[i] > 0.0 {
                bars.pre_close[i]
            } else {
                last_close[c]
            };
            if market.is_break(&bars.code_names[c], bars.is_st[i], seen[c], ratio, prev_px) {
                found.push((i, ratio));
            }
        }
        last_close[c] = bars.close[i];
        last_adj[c] = adj;
        seen[c] += 1;
    }
    let mut mult = vec![1.0; bars.len()];
    if found.is_empty() || adjust == Adjust::None {
        return (found, mult);
    }
    let mut total = vec![1.0f64; nc];
    for &(i, r) in &found {
        total[bars.code[i] as usize] *= r;
    }
    let mut cum = vec![1.0f64; nc];
    let mut next = found.iter().peekable();
    for (i, m) in mult.iter_mut().enumerate() {
        let c = bars.code[i] as usize;
        if next.peek().is_some_and(|(j, _)| *j == i) {
            cum[c] *= next.next().map_or(1.0, |(_, r)| *r);
        }
        *m = match adjust {
            Adjust::Forward => total[c] / cum[c],
            _ => 1.0 / cum[c],
        };
    }
    (found, mult)
}

pub const FIELDS: [&str; 10] = [
    "open", "high", "low", "close", "vwap", "volume", "amount", "returns", "turnover", "cap",
];

/// The label horizons a panel stores: sorted, each once, every one in 1..=252 trading
/// days (a year; a longer label leaves too few dates to learn from). The one rule for
/// panel-build's flags and for [`build`].
pub fn label_horizons(asked: &[usize]) -> Result<Vec<usize>> {
    let mut hs = asked.to_vec();
    hs.sort_unstable();
    hs.dedup();
    if hs.is_empty() || hs.iter().any(|h| *h == 0 || *h > 252) {
        bail!(
            "label horizons must be integers in 1..=252 trading days, e.g. 1,5,10 (got {asked:?})"
        );
    }
    Ok(hs)
}

pub fn build(bars: &mut RawBars, p: &BuildParams) -> Result<Built> {
    if bars.is_empty() {
        bail!("no bars to build a panel from");
    }
    let horizons = label_horizons(&p.horizons)?;
    bars.sort();
    bars.validate()?;

    let mut dates: Vec<i32> = bars.trade_date.clone();
    dates.dedup();
    let nd = dates.len();
    // Asset order = sorted code names.
    let mut order: Vec<usize> = (0..bars.code_names.len()).collect();
    order.sort_by(|a, b| bars.code_names[*a].cmp(&bars.code_names[*b]));
    let mut col_of = vec![0usize; bars.code_names.len()];
    for (c, &k) in order.iter().enumerate() {
        col_of[k] = c;
    }
    let codes: Vec<String> = order.iter().map(|&k| bars.code_names[k].clone()).collect();
    let na = codes.len();
    let n = nd * na;
    let (found, rebase) = find_breaks(bars, &p.market, p.adjust);
    let mut is_break = vec![false; bars.len()];
    for &(i, _) in &found {
        is_break[i] = true;
    }

    // Scatter rows onto the grid; per-asset first/last row, list date, industry, adj_latest.
    const NONE: u32 = u32::MAX;
    let mut row_at = vec![NONE; n];
    let mut first_t = vec![usize::MAX; na];
    let mut last_t = vec![0usize; na];
    let mut list_date = vec![NO_DATE; na];
    // The asset's first known industry (for cells before its first bar).
    let mut ind = vec![NO_INDUSTRY; na];
    let mut adj_latest = vec![f64::NAN; na];
    let mut t = 0;
    for i in 0..bars.len() {
        while dates[t] != bars.trade_date[i] {
            t += 1;
        }
        let a = col_of[bars.code[i] as usize];
        row_at[t * na + a] = i as u32;
        first_t[a] = first_t[a].min(t);
        last_t[a] = t;
        if bars.list_date[i] != NO_DATE {
            list_date[a] = bars.list_date[i];
        }
        if bars.industry[i] != NO_INDUSTRY && ind[a] == NO_INDUSTRY {
            ind[a] = bars.industry[i];
        }
        if bars.adj_factor[i].is_finite() {
            adj_latest[a] = bars.adj_factor[i];
        }
    }
    // Listing age origin per asset (calendar index; negative = before the calendar).
    let first_idx: Vec<i64> = (0..na)
        .map(|a| {
            if list_date[a] != NO_DATE {
                if list_date[a] >= dates[0] {
                    dates.partition_point(|d| *d < list_date[a]) as i64
                } else {
                    -busday_count(list_date[a], dates[0])
                }
            } else if first_t[a] == 0 {
                i64::MIN / 4 // present on the first day, listing unknown: seasoned
            } else {
                first_t[a] as i64
            }
        })
        .collect();

    let mut f: Vec<Vec<f64>> = (0..FIELDS.len()).map(|_| vec![f64::NAN; n]).collect();
    let mut tradable = vec![false; n];
    let mut in_universe = vec![false; n];
    let mut buyable = vec![false; n];
    let mut open_ok = vec![false; n]; // tradable and not opened at the up-limit
    let mut close_raw_last = vec![f64::NAN; na];
    let mut adj_last = vec![f64::NAN; na];
    let mut adj_src_last = vec![f64::NAN; na];
    let mut tmv_last = vec![f64::NAN; na];
    let mut cmv_last = vec![f64::NAN; na];
    let factor = |adj: f64, a: usize| -> f64 {
        match p.adjust {
            Adjust::Forward => adj / adj_latest[a],
            Adjust::Backward => adj,
            Adjust::None => 1.0,
        }
    };
    let any_volume = bars.volume.iter().any(|v| !v.is_nan());
    let any_amount = bars.amount.iter().any(|v| !v.is_nan());
    // Industry per cell: the latest bar's at or before t (point in time when --meta
    // had dates; the same on every date for static data).
    let mut cell_ind = vec![NO_INDUSTRY; n];
    let mut ind_cur = ind.clone();
    for t in 0..nd {
        for a in 0..na {
            let c = t * na + a;
            let r = row_at[c];
            if r != NONE {
                ind_cur[a] = bars.industry[r as usize];
            }
            cell_ind[c] = ind_cur[a];
            if t < first_t[a] || t > last_t[a] {
                continue;
            }
            let real = r != NONE && !bars.is_suspended[r as usize];
            if real {
                let i = r as usize;
                // The source's factor (carried where missing) times the break re-basing.
                let adj_src = carried_adj(bars.adj_factor[i], adj_src_last[a]);
                adj_src_last[a] = adj_src;
                let adj = adj_src * rebase[i];
                let k = factor(adj, a);
                f[0][c] = bars.open[i] * k;
                f[1][c] = bars.high[i] * k;
                f[2][c] = bars.low[i] * k;
                f[3][c] = bars.close[i] * k;
                let vol = bars.volume[i] / k;
                f[5][c] = vol;
                f[6][c] = bars.amount[i];
                f[4][c] = if vol > 0.0 {
                    bars.amount[i] / vol
                } else {
                    f64::NAN
                };
                f[8][c] = if bars.circ_mv[i] > 0.0 {
                    bars.volume[i] * bars.close[i] / bars.circ_mv[i]
                } else {
                    f64::NAN
                };
                f[9][c] = bars.total_mv[i];
                tradable[c] = if any_volume {
                    bars.volume[i] > 0.0
                } else {
                    bars.amount[i] > 0.0
                };
                close_raw_last[a] = bars.close[i];
                adj_last[a] = adj;
                tmv_last[a] = bars.total_mv[i];
                cmv_last[a] = bars.circ_mv[i];
                let listing_day = list_date[a] == dates[t]
                    || (list_date[a] == NO_DATE && t == first_t[a] && t > 0);
                // The exchange's limit price when the source gave it (Tushare's
                // stk_limit), else the market profile's rule.
                let at_up = |px: f64| match bars.limits_of(i) {
                    // A break's pre_close (and a limit price from it) is in the old
                    // price basis: no limit test.
                    _ if is_break[i] => false,
                    Some((up, _)) => px.is_finite() && px >= up - 0.005,
                    None => {
                        let pct = p.market.limit_pct(&codes[a], bars.is_st[i], listing_day);
                        at_up_limit(px, bars.pre_close[i], pct)
                    }
                };
                buyable[c] = tradable[c] && !at_up(bars.close[i]);
                open_ok[c] = tradable[c] && !at_up(bars.open[i]);
                let listed = t as i64 - first_idx[a] >= p.min_list_days as i64;
                let member = p
                    .universe
                    .as_ref()
                    .is_none_or(|u| u.contains(&codes[a], dates[t]));
                in_universe[c] = tradable[c] && !bars.is_st[i] && listed && member;
            } else if close_raw_last[a].is_finite() {
                let px = close_raw_last[a] * factor(adj_last[a], a);
                for k in 0..4 {
                    f[k][c] = px;
                }
                // Nothing traded — where the source reports trading at all.
                f[5][c] = if any_volume { 0.0 } else { f64::NAN };
                f[6][c] = if any_amount { 0.0 } else { f64::NAN };
                f[8][c] = if any_volume && cmv_last[a] > 0.0 {
                    0.0
                } else {
                    f64::NAN
                };
                f[9][c] = tmv_last[a];
            }
            if t > 0 {
                f[7][c] = if r != NONE && is_break[r as usize] {
                    f64::NAN
                } else {
                    f[3][c] / f[3][c - na] - 1.0
                };
            }
        }
    }
    // Break cells (t, a), for the labels.
    let break_cells: Vec<(usize, usize)> = found
        .iter()
        .map(|&(i, _)| {
            let t = dates.partition_point(|d| *d < bars.trade_date[i]);
            (t, col_of[bars.code[i] as usize])
        })
        .collect();

    let mut warnings = Vec::new();
    let liquidity_removed = if p.liquidity.active() {
        let value: Vec<f64> = if any_amount {
            f[6].clone()
        } else {
            f[5].iter().zip(&f[3]).map(|(v, c)| v * c).collect()
        };
        if !value.iter().any(|x| x.is_finite()) {
            bail!("the liquidity screen needs amount or volume, and the raw data has neither");
        }
        let before = in_universe.iter().filter(|x| **x).count();
        let removed = p.liquidity.screen(&value, &mut in_universe, nd, na);
        warnings.push(format!(
            "liquidity screen (median traded value over {} days >= {}{}): {removed} of {before} member cells removed",
            p.liquidity.days,
            p.liquidity.min_value,
            p.liquidity.top.map_or(String::new(), |n| format!(", top {n} per date")),
        ));
        Some(removed)
    } else {
        None
    };

    let mut fields: Vec<(String, Vec<f64>)> = FIELDS.iter().map(|s| s.to_string()).zip(f).collect();
    let (open, close) = (&fields[0].1, &fields[3].1);
    let mut labels = Vec::new();
    for &h in &horizons {
        let mut lab = vec![f64::NAN; n];
        for t in 0..nd {
            for a in 0..na {
                let c = t * na + a;
                if !buyable[c] {
                    continue;
                }
                // Open to open also needs the next day's open to be tradable.
                if p.label == Label::Open2Open && !(t + 1 < nd && open_ok[c + na]) {
                    continue;
                }
                lab[c] = p.label.forward(open, close, nd, na, c, h);
            }
        }
        // No label spans a break (under open to open the break day's open may be
        // either side of it, so its reach counts).
        let reach = p.label.reach(h);
        for &(tb, a) in &break_cells {
            for t in tb.saturating_sub(reach)..tb {
                lab[t * na + a] = f64::NAN;
            }
        }
        labels.push((columns::label(h), lab));
    }
    fields.extend(labels);

    // Industry groups: sorted names; assets without one share "UNKNOWN".
    let used: BTreeSet<&str> = cell_ind
        .iter()
        .filter(|g| **g != NO_INDUSTRY)
        .map(|g| bars.industry_names[*g as usize].as_str())
        .collect();
    let mut names: Vec<String> = used.iter().map(|s| s.to_string()).collect();
    let fallback = if names.is_empty() { "ALL" } else { "UNKNOWN" };
    if names.is_empty() {
        warnings.push("no industry in the raw data: every asset is in one group \"ALL\" (industry neutralization is a no-op)".to_string());
    }
    let missing = ind.iter().filter(|g| **g == NO_INDUSTRY).count();
    let missing_cells = cell_ind.iter().any(|g| *g == NO_INDUSTRY);
    if missing > 0 || missing_cells {
        names.push(fallback.to_string());
        if fallback == "UNKNOWN" {
            warnings.push(format!(
                "{missing} assets have no industry: grouped as \"UNKNOWN\""
            ));
        }
    }
    let key_of: HashMap<&str, i32> = names
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i as i32))
        .collect();
    let keys: Vec<i32> = cell_ind
        .iter()
        .map(|g| {
            if *g == NO_INDUSTRY {
                key_of[fallback]
            } else {
                key_of[bars.industry_names[*g as usize].as_str()]
            }
        })
        .collect();

    let cap_present = fields[9].1.iter().any(|x| !x.is_nan());
    if !cap_present {
        warnings.push(
            "no total_mv in the raw data: cap is NaN, so size neutralization will be skipped"
                .to_string(),
        );
    }
    if !any_volume {
        warnings.push(
            "no volume in the raw data: volume, vwap and turnover are NaN (tradable = amount > 0)"
                .to_string(),
        );
    } else if !fields[8].1.iter().any(|x| !x.is_nan()) {
        warnings.push("no circ_mv in the raw data: turnover is NaN".to_string());
    }
    if !any_amount {
        warnings.push("no amount in the raw data: amount and vwap are NaN".to_string());
    }
    let mut extra = serde_json::Map::new();
    extra.insert(
        "adjust".into(),
        json!(match p.adjust {
            Adjust::Forward => "forward",
            Adjust::Backward => "backward",
            Adjust::None => "none",
        }),
    );
    extra.insert("label".into(), json!(p.label.name()));
    extra.insert("horizons".into(), json!(horizons));
    extra.insert("min_list_days".into(), json!(p.min_list_days));
    extra.insert("cap_available".into(), json!(cap_present));
    extra.insert("market".into(), json!(p.market.name));
    // The whole profile, so the backtest applies the market's own limits.
    extra.insert("market_profile".into(), json!(p.market));
    let breaks: Vec<(String, i32, f64)> = found
        .iter()
        .map(|&(i, r)| {
            (
                bars.code_names[bars.code[i] as usize].clone(),
                bars.trade_date[i],
                r,
            )
        })
        .collect();
    extra.insert(
        "breaks".into(),
        json!({
            "keep": p.market.breaks.keep,
            "max_move": p.market.breaks.max_move,
            "count": breaks.len(),
            "list": breaks.iter().map(|(c, d, r)| json!({"code": c, "date": af_panel::dates::format_date(*d), "ratio": r})).collect::<Vec<_>>(),
        }),
    );
    if !breaks.is_empty() {
        warnings.push(format!(
            "{} breaks (moves the market {} makes impossible: no return spans them; listed under `breaks` in the panel's provenance), e.g. {} on {} (x{:.4})",
            breaks.len(),
            p.market.name,
            breaks[0].0,
            af_panel::dates::format_date(breaks[0].1),
            breaks[0].2
        ));
    }
    if let Some(removed) = liquidity_removed {
        extra.insert(
            "liquidity".into(),
            json!({"days": p.liquidity.days, "min_value": p.liquidity.min_value,
                   "top": p.liquidity.top, "cells_removed": removed}),
        );
    }
    extra.insert("warnings".into(), json!(warnings));

    Ok(Built {
        data: PanelData {
            dates,
            codes,
            fields,
            groups: vec![(columns::INDUSTRY.into(), keys, names)],
            masks: vec![
                (columns::TRADABLE.into(), tradable),
                (columns::UNIVERSE.into(), in_universe),
            ],
            extra,
        },
        warnings,
        breaks,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn label_horizons_are_sorted_once_and_bounded() {
        assert_eq!(label_horizons(&[10, 1, 5, 5, 1]).unwrap(), [1, 5, 10]);
        for bad in [&[][..], &[0, 1], &[1, 253]] {
            let e = label_horizons(bad).unwrap_err().to_string();
            assert!(e.contains("1..=252"), "{e}");
        }
    }

    use super::*;
    use crate::synthetic::{SynthParams, generate};

    fn label_at(bars: &RawBars, i: usize) -> f64 {
        let p = BuildParams {
            adjust: Adjust::Forward,
            horizons: vec![1],
            label: Label::Close2Close,
            min_list_days: 0,
            universe: None,
            market: Market::cn(),
            liquidity: Liquidity::default(),
        };
        let b = build(&mut bars.clone(), &p).unwrap().data;
        let (t, a) = (
            b.dates
                .iter()
                .position(|d| *d == bars.trade_date[i])
                .unwrap(),
            b.codes
                .iter()
                .position(|c| *c == bars.code_names[bars.code[i] as usize])
                .unwrap(),
        );
        let f = &b.fields.iter().find(|(n, _)| n == "fwd_ret_1").unwrap().1;
        f[t * b.codes.len() + a]
    }

    /// A ×171 print from one day on (an unannounced consolidation, or a bad print that
    /// stays) on a main-board name: a break. No return at it, no 1- or 5-day label
    /// across it; forward, the prices before it are the clean ones × the observed ratio
    /// (every return but the break's unchanged); backward, the later ones are the clean
    /// ones × 171 / the ratio; under `--breaks keep` the move stays a return.
    #[test]
    fn a_break_has_no_return_and_rebases_the_prices_before_it() {
        let clean = generate(&SynthParams {
            assets: 6,
            days: 80,
            seed: 9,
            start: af_panel::dates::parse_date("2016-01-04").unwrap(),
            planted: Default::default(),
        })
        .unwrap()
        .bars;
        let mut bars = clean.clone();
        bars.sort();
        let code = bars.code[0];
        let day = bars.trade_date[bars.len() / 2];
        for i in 0..bars.len() {
            if bars.code[i] == code && bars.trade_date[i] >= day {
                for v in [
                    &mut bars.open,
                    &mut bars.high,
                    &mut bars.low,
                    &mut bars.close,
                ] {
                    v[i] *= 171.0;
                }
                bars.pre_close[i] *= if bars.trade_date[i] == day {
                    1.0
                } else {
                    171.0
                };
            }
        }
        let params = |market: Market, adjust: Adjust| BuildParams {
            adjust,
            horizons: vec![1, 5],
            label: Label::Close2Close,
            min_list_days: 0,
            universe: None,
            market,
            liquidity: Liquidity::default(),
        };
        let field = |b: &PanelData, n: &str| b.fields.iter().find(|f| f.0 == n).unwrap().1.clone();
        let base = build(&mut clean.clone(), &params(Market::cn(), Adjust::Forward)).unwrap();
        let got = build(&mut bars.clone(), &params(Market::cn(), Adjust::Forward)).unwrap();
        assert_eq!(got.breaks.len(), 1, "{:?}", got.breaks);
        let (d, na) = (&got.data, got.data.codes.len());
        let a = d
            .codes
            .iter()
            .position(|c| *c == bars.code_names[code as usize])
            .unwrap();
        let t = d.dates.iter().position(|x| *x == day).unwrap();
        let (r0, r1) = (field(&base.data, "returns"), field(d, "returns"));
        let (c0, c1) = (field(&base.data, "close"), field(d, "close"));
        for i in 0..r0.len() {
            if i == t * na + a {
                assert!(r1[i].is_nan());
            } else {
                assert!((r0[i] - r1[i]).abs() < 1e-12 || (r0[i].is_nan() && r1[i].is_nan()));
            }
            // Before the break the prices are re-based by the observed ratio (171 times
            // the day's own move, which the break swallows); from it on, 171 × clean.
            let want = if i / na < t { got.breaks[0].2 } else { 171.0 };
            if i % na == a && c0[i].is_finite() {
                assert!(
                    (c1[i] / c0[i] / want - 1.0).abs() < 1e-12,
                    "re-based at {}",
                    i / na
                );
            }
        }
        for h in [1usize, 5] {
            let lab = field(d, &format!("fwd_ret_{h}"));
            for k in t.saturating_sub(h)..t {
                assert!(
                    lab[k * na + a].is_nan(),
                    "fwd_ret_{h} at {k} spans the break"
                );
            }
            assert!(
                lab[t * na + a].is_finite(),
                "the break day's own label is a return"
            );
        }
        let back = build(&mut bars.clone(), &params(Market::cn(), Adjust::Backward)).unwrap();
        let back0 = build(&mut clean.clone(), &params(Market::cn(), Adjust::Backward)).unwrap();
        let (b0, b1) = (field(&back0.data, "close"), field(&back.data, "close"));
        let want = 171.0 / got.breaks[0].2;
        assert!((b1[(t + 3) * na + a] / b0[(t + 3) * na + a] / want - 1.0).abs() < 1e-12);
        assert!((b1[(t - 3) * na + a] / b0[(t - 3) * na + a] - 1.0).abs() < 1e-12);
        let keep = Market::cn().with_breaks(Some(true), None).unwrap();
        let kept = build(&mut bars.clone(), &params(keep, Adjust::Forward)).unwrap();
        assert!(kept.breaks.is_empty());
        assert!(field(&kept.data, "returns")[t * na + a] > 100.0);
    }

    /// The exchange's limit price (Tushare's stk_limit) decides "closed at the
    /// up-limit" where the source gives it, not the board rule.
    #[test]
    fn a_raw_up_limit_overrides_the_board_rule() {
        let bars = generate(&SynthParams {
            assets: 8,
            days: 60,
            seed: 4,
            start: af_panel::dates::parse_date("2016-01-04").unwrap(),
            planted: Default::default(),
        })
        .unwrap()
        .bars;
        // An ordinary traded bar mid-sample, well inside its ±10 % / ±20 % band.
        let i = (0..bars.len())
            .find(|&i| {
                i > bars.len() / 2
                    && !bars.is_suspended[i]
                    && (bars.close[i] / bars.pre_close[i] - 1.0).abs() < 0.03
                    && bars.limits_of(i).is_some()
            })
            .unwrap();
        assert!(label_at(&bars, i).is_finite());
        // A special limit that day (as on a STAR name's first days): closed at it.
        let mut special = bars.clone();
        special.up_limit[i] = special.close[i];
        assert!(
            label_at(&special, i).is_nan(),
            "closed at its exchange limit: not buyable"
        );
        // No limit prices from the source: the rule decides again.
        let mut none = bars.clone();
        none.up_limit.clear();
        none.down_limit.clear();
        assert!(label_at(&none, i).is_finite());
    }
}
