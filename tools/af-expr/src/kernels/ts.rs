//! Time-series kernels that need more than O(1) state per asset: rolling min/max and
//! where they are (monotonic deques), ranks, medians and quantiles (a sorted window, or
//! counting for short windows), products, and the exponential mean.
//!
//! Each kernel works on one contiguous series (`x`, `out` of equal length); [`apply`]
//! runs it over every asset of a `[n_dates][n_assets]` matrix: assets are gathered in
//! blocks into contiguous buffers, processed in parallel, and scattered back row by
//! row. The O(1)-state statistics (sums, moments, correlations, regressions) are
//! computed row-wise instead, in [`super::rolling`].
//!
//! A window is valid with at least `minp` values ([`Win`]): `d` for native semantics,
//! 1 for Qlib's.

use std::collections::VecDeque;

use rayon::prelude::*;

use super::rolling::Win;
use super::{SharedOut, finite_or_nan};

/// Assets per gathered block: 64 columns make each row read 512 contiguous bytes (fewer
/// TLB misses on the strided gather) while a block of 2500 days (1.3 MB) stays in L2.
const BLOCK: usize = 64;

/// Run `kernel(x_series, y_series, out_series)` for every asset. `y` is for pairwise ops.
pub fn apply<F>(x: &[f64], y: Option<&[f64]>, nd: usize, na: usize, kernel: F) -> Vec<f64>
where
    F: Fn(&[f64], Option<&[f64]>, &mut [f64]) + Sync,
{
    let mut out = super::buf::take(nd * na);
    let ptr = SharedOut(out.as_mut_ptr());
    let blocks = na.div_ceil(BLOCK);
    (0..blocks).into_par_iter().for_each_init(
        || {
            (
                vec![0.0; BLOCK * nd],
                vec![0.0; if y.is_some() { BLOCK * nd } else { 0 }],
                vec![0.0; BLOCK * nd],
            )
        },
        |(bx, by, bo), blk| {
            let a0 = blk * BLOCK;
            let w = BLOCK.min(na - a0);
            for t in 0..nd {
                let row = &x[t * na + a0..t * na + a0 + w];
                for (j, v) in row.iter().enumerate() {
                    bx[j * nd + t] = *v;
                }
                if let Some(y) = y {
                    let row = &y[t * na + a0..t * na + a0 + w];
                    for (j, v) in row.iter().enumerate() {
                        by[j * nd + t] = *v;
                    }
                }
            }
            for j in 0..w {
                let xs = &bx[j * nd..(j + 1) * nd];
                let ys = y.map(|_| &by[j * nd..(j + 1) * nd]);
                kernel(xs, ys, &mut bo[j * nd..(j + 1) * nd]);
            }
            // Scatter row by row: each row of the block is one contiguous run of `out`.
            let p = ptr;
            for t in 0..nd {
                // SAFETY: this task alone writes asset columns a0..a0 + w, and the
                // range lies inside `out` (t < nd, a0 + w <= na).
                let row = unsafe { std::slice::from_raw_parts_mut(p.0.add(t * na + a0), w) };
                for (j, o) in row.iter_mut().enumerate() {
                    *o = finite_or_nan(bo[j * nd + t]);
                }
            }
        },
    );
    out
}

/// Compensated running sum (Neumaier).
#[derive(Default, Clone, Copy)]
struct KSum {
    s: f64,
    c: f64,
}

impl KSum {
    #[inline]
    fn add(&mut self, x: f64) {
        let t = self.s + x;
        if self.s.abs() >= x.abs() {
            self.c += (self.s - t) + x;
        } else {
            self.c += (x - t) + self.s;
        }
        self.s = t;
    }
    #[inline]
    fn get(&self) -> f64 {
        self.s + self.c
    }
}

/// Tracks how many values of the current window are present.
struct Present {
    nan: usize,
}

impl Present {
    /// Advance to day `t`; the number of non-NaN values in the window ending at `t`.
    #[inline]
    fn step(&mut self, x: &[f64], t: usize, d: usize) -> usize {
        if x[t].is_nan() {
            self.nan += 1;
        }
        if t >= d && x[t - d].is_nan() {
            self.nan -= 1;
        }
        (t + 1).min(d) - self.nan
    }
}

/// What [`extreme`] reports about the window's minimum or maximum.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ext {
    Value,
    /// Days since it (0 = today), the native `ts_argmax`.
    DaysSince,
    /// Qlib's `IdxMax`: its 1-based position in the window, counted from the oldest
    /// day of the window that is on or after the series' first value.
    QlibPos,
}

/// Min (`want_max` false) or max of the window's values, or where it is; ties: the
/// earliest.
fn extreme(x: &[f64], win: Win, out: &mut [f64], want_max: bool, what: Ext) {
    let d = win.d;
    let mut q: VecDeque<usize> = VecDeque::with_capacity(d + 1);
    let mut present = Present { nan: 0 };
    let first = x.iter().position(|v| !v.is_nan()).unwrap_or(x.len());
    for t in 0..x.len() {
        let v = x[t];
        if !v.is_nan() {
            // Strict comparison keeps the earliest of equal values at the front.
            while let Some(&b) = q.back() {
                if (want_max && x[b] < v) || (!want_max && x[b] > v) {
                    q.pop_back();
                } else {
                    break;
                }
            }
            q.push_back(t);
        }
        while let Some(&f) = q.front() {
            if f + d <= t {
                q.pop_front();
            } else {
                break;
            }
        }
        let present_now = present.step(x, t, d);
        let ok = present_now >= win.minp.max(1);
        out[t] = match (ok, q.front()) {
            (true, Some(&f)) => match what {
                Ext::Value => x[f],
                Ext::DaysSince => (t - f) as f64,
                Ext::QlibPos => {
                    let rows = (t + 1 - first).min(d);
                    let start = t + 1 - rows;
                    // numpy's argmax/argmin return the first NaN if there is one.
                    let pos = if present_now < rows {
                        x[start..=t]
                            .iter()
                            .position(|v| v.is_nan())
                            .unwrap_or(f - start)
                    } else {
                        f - start
                    };
                    (pos + 1) as f64
                }
            },
            _ => f64::NAN,
        };
    }
}

pub fn min(x: &[f64], w: Win, out: &mut [f64]) {
    extreme(x, w, out, false, Ext::Value)
}
pub fn max(x: &[f64], w: Win, out: &mut [f64]) {
    extreme(x, w, out, true, Ext::Value)
}
pub fn argmin(x: &[f64], w: Win, out: &mut [f64]) {
    extreme(x, w, out, false, Ext::DaysSince)
}
pub fn argmax(x: &[f64], w: Win, out: &mut [f64]) {
    extreme(x, w, out, true, Ext::DaysSince)
}
pub fn qlib_idxmin(x: &[f64], w: Win, out: &mut [f64]) {
    extreme(x, w, out, false, Ext::QlibPos)
}
pub fn qlib_idxmax(x: &[f64], w: Win, out: &mut [f64]) {
    extreme(x, w, out, true, Ext::QlibPos)
}

/// Keeps the non-NaN values of the window sorted; `f(sorted, today)` on valid windows.
fn sorted_window(x: &[f64], win: Win, out: &mut [f64], f: impl Fn(&[f64], f64) -> f64) {
    let d = win.d;
    let mut w: Vec<f64> = Vec::with_capacity(d + 1);
    let mut present = Present { nan: 0 };
    for t in 0..x.len() {
        if !x[t].is_nan() {
            let p = w.partition_point(|v| *v < x[t]);
            w.insert(p, x[t]);
        }
        if t >= d && !x[t - d].is_nan() {
            let p = w.partition_point(|v| *v < x[t - d]);
            w.remove(p);
        }
        let ok = present.step(x, t, d) >= win.minp.max(1);
        out[t] = if ok { f(&w, x[t]) } else { f64::NAN };
    }
}

/// Windows up to this size rank by counting (2d branch-free compares, vectorised)
/// rather than keeping the window sorted (binary search + memmove per step).
const RANK_BY_COUNT: usize = 64;

/// Percentile rank of today's value among the window's values, ties averaged (pandas
/// `rank(pct=True)`); NaN when today's value is missing.
pub fn rank(x: &[f64], win: Win, out: &mut [f64]) {
    let d = win.d;
    if d > RANK_BY_COUNT {
        return sorted_window(x, win, out, |w, v| {
            if v.is_nan() {
                return f64::NAN;
            }
            let lo = w.partition_point(|u| *u < v);
            let hi = w.partition_point(|u| *u <= v);
            (lo as f64 + (hi - lo + 1) as f64 / 2.0) / w.len() as f64
        });
    }
    let mut present = Present { nan: 0 };
    for t in 0..x.len() {
        let cnt = present.step(x, t, d);
        let v = x[t];
        out[t] = if cnt >= win.minp.max(1) && !v.is_nan() {
            let (mut lt, mut eq) = (0u32, 0u32);
            for u in &x[(t + 1).saturating_sub(d)..=t] {
                lt += (*u < v) as u32;
                eq += (*u == v) as u32;
            }
            (lt as f64 + (eq + 1) as f64 / 2.0) / cnt as f64
        } else {
            f64::NAN
        };
    }
}

/// numpy's default (linear) quantile of sorted values.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

pub fn median(x: &[f64], win: Win, out: &mut [f64]) {
    sorted_window(x, win, out, |w, _| {
        let n = w.len();
        if n % 2 == 1 {
            w[n / 2]
        } else {
            (w[n / 2 - 1] + w[n / 2]) / 2.0
        }
    })
}

/// The window's `q` quantile, linear interpolation (pandas `rolling().quantile(q)`).
/// `q` outside [0, 1] is clamped to it (a NaN `q` gives NaN).
pub fn quantile(x: &[f64], win: Win, q: f64, out: &mut [f64]) {
    if q.is_nan() {
        out.fill(f64::NAN);
        return;
    }
    let q = q.clamp(0.0, 1.0);
    sorted_window(x, win, out, |w, _| quantile_sorted(w, q))
}

pub fn product(x: &[f64], win: Win, out: &mut [f64]) {
    let d = win.d;
    let (mut zeros, mut negs) = (0usize, 0usize);
    let mut logs = KSum::default();
    let mut present = Present { nan: 0 };
    let mut since = 0usize;
    let term = |v: f64| if v == 0.0 { 0.0 } else { v.abs().ln() };
    for t in 0..x.len() {
        let v = x[t];
        if !v.is_nan() {
            zeros += (v == 0.0) as usize;
            negs += (v < 0.0) as usize;
            logs.add(term(v));
        }
        if t >= d && !x[t - d].is_nan() {
            let u = x[t - d];
            zeros -= (u == 0.0) as usize;
            negs -= (u < 0.0) as usize;
            logs.add(-term(u));
        }
        since += 1;
        let full = present.step(x, t, d) == d;
        if full && since >= d {
            logs = KSum::default();
            for u in &x[t + 1 - d..=t] {
                logs.add(term(*u));
            }
            since = 0;
        }
        out[t] = if !full {
            f64::NAN
        } else if zeros > 0 {
            0.0
        } else {
            let m = logs.get().exp();
            if negs % 2 == 1 { -m } else { m }
        };
    }
}

/// pandas `ewm(span=d, adjust=True, ignore_na=False, min_periods=minp).mean()`.
pub fn ema(x: &[f64], win: Win, out: &mut [f64]) {
    let alpha = 2.0 / (win.d as f64 + 1.0);
    let f = 1.0 - alpha;
    let mut weighted = f64::NAN;
    let mut old_wt = 1.0;
    let mut nobs = 0usize;
    for t in 0..x.len() {
        let cur = x[t];
        let obs = !cur.is_nan();
        nobs += obs as usize;
        if !weighted.is_nan() {
            old_wt *= f;
            if obs {
                if weighted != cur {
                    weighted = (old_wt * weighted + cur) / (old_wt + 1.0);
                }
                old_wt += 1.0;
            }
        } else if obs {
            weighted = cur;
            old_wt = 1.0;
        }
        out[t] = if nobs >= win.minp.max(1) {
            weighted
        } else {
            f64::NAN
        };
    }
}

/// A series kernel: one asset's series in, its values out.
pub type Kernel = fn(&[f64], Win, &mut [f64]);

/// The series kernel of a time-series op (those not computed row-wise in
/// [`super::rolling`]), by canonical name.
pub fn series(name: &str) -> Option<Kernel> {
    Some(match name {
        // ts_min/ts_max/ts_argmin/ts_argmax are row-wise (rolling::extreme); the series
        // versions stay as the Qlib partial-window kernels and as test references.
        "q_min" => min,
        "q_max" => max,
        "q_idxmin" => qlib_idxmin,
        "q_idxmax" => qlib_idxmax,
        "ts_rank" | "q_rank" => rank,
        "ts_product" => product,
        "ts_median" | "q_median" => median,
        "ts_ema" | "q_ema" => ema,
        _ => return None,
    })
}
