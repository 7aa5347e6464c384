//! Time-series kernels: per asset, along time, over the last `d` days including today.
//!
//! Each kernel works on one contiguous series (`x`, `out` of equal length) in O(n):
//! running sums are Kahan-compensated and recomputed exactly every `d` steps so that
//! 2500-day series do not drift; variances use Welford add/remove (as pandas does);
//! min/max use monotonic deques; rank/median keep the window sorted (binary search +
//! memmove of at most 252 values). A window with any NaN gives NaN (min_periods = d).
//!
//! [`apply`] runs a kernel over every asset of a `[n_dates][n_assets]` matrix: assets
//! are gathered in blocks into contiguous buffers, processed in parallel, and scattered
//! back.

use std::collections::VecDeque;

use rayon::prelude::*;

use super::{SharedOut, finite_or_nan};

const BLOCK: usize = 16;

/// Run `kernel(x_series, y_series, out_series)` for every asset. `y` is for pairwise ops.
pub fn apply<F>(x: &[f64], y: Option<&[f64]>, nd: usize, na: usize, kernel: F) -> Vec<f64>
where
    F: Fn(&[f64], Option<&[f64]>, &mut [f64]) + Sync,
{
    let mut out = vec![f64::NAN; nd * na];
    let ptr = SharedOut(out.as_mut_ptr());
    let blocks = na.div_ceil(BLOCK);
    (0..blocks).into_par_iter().for_each_init(
        || {
            (
                vec![0.0; BLOCK * nd],
                vec![0.0; if y.is_some() { BLOCK * nd } else { 0 }],
                vec![0.0; nd],
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
            let p = ptr;
            for j in 0..w {
                let xs = &bx[j * nd..(j + 1) * nd];
                let ys = y.map(|_| &by[j * nd..(j + 1) * nd]);
                kernel(xs, ys, bo);
                for t in 0..nd {
                    // SAFETY: this task alone writes asset column a0 + j.
                    unsafe { *p.0.add(t * na + a0 + j) = finite_or_nan(bo[t]) };
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

/// Tracks how many NaNs are in the current window.
struct NanCount {
    n: usize,
}

impl NanCount {
    #[inline]
    fn step(&mut self, x: &[f64], t: usize, d: usize) -> bool {
        if x[t].is_nan() {
            self.n += 1;
        }
        if t >= d && x[t - d].is_nan() {
            self.n -= 1;
        }
        t + 1 >= d && self.n == 0
    }
}

pub fn delay(x: &[f64], d: usize, out: &mut [f64]) {
    for t in 0..x.len() {
        out[t] = if t >= d { x[t - d] } else { f64::NAN };
    }
}

pub fn delta(x: &[f64], d: usize, out: &mut [f64]) {
    for t in 0..x.len() {
        out[t] = if t >= d { x[t] - x[t - d] } else { f64::NAN };
    }
}

/// Sums of f(x) over full NaN-free windows, recomputed exactly every `d` steps.
fn rolling_sum_of(x: &[f64], d: usize, out: &mut [f64], f: impl Fn(f64) -> f64) {
    let mut nan = NanCount { n: 0 };
    let mut s = KSum::default();
    let mut since = 0usize;
    for t in 0..x.len() {
        if !x[t].is_nan() {
            s.add(f(x[t]));
        }
        if t >= d && !x[t - d].is_nan() {
            s.add(-f(x[t - d]));
        }
        since += 1;
        let full = nan.step(x, t, d);
        if full && since >= d {
            s = KSum::default();
            for v in &x[t + 1 - d..=t] {
                s.add(f(*v));
            }
            since = 0;
        }
        out[t] = if full { s.get() } else { f64::NAN };
    }
}

pub fn sum(x: &[f64], d: usize, out: &mut [f64]) {
    rolling_sum_of(x, d, out, |v| v);
}

pub fn mean(x: &[f64], d: usize, out: &mut [f64]) {
    rolling_sum_of(x, d, out, |v| v);
    for o in out.iter_mut() {
        *o /= d as f64;
    }
}

pub fn count(x: &[f64], d: usize, out: &mut [f64]) {
    let mut c = 0usize;
    for t in 0..x.len() {
        if x[t] != 0.0 && !x[t].is_nan() {
            c += 1;
        }
        if t >= d && x[t - d] != 0.0 && !x[t - d].is_nan() {
            c -= 1;
        }
        out[t] = if t + 1 >= d { c as f64 } else { f64::NAN };
    }
}

/// Rolling variance (ddof 1) by Welford add/remove, as pandas computes it; exactly 0
/// when the window is constant.
pub fn var(x: &[f64], d: usize, out: &mut [f64]) {
    let (mut n, mut m, mut ss) = (0.0f64, 0.0f64, 0.0f64);
    let mut nan = NanCount { n: 0 };
    let mut run = 0usize;
    for t in 0..x.len() {
        let v = x[t];
        run = if t > 0 && v == x[t - 1] { run + 1 } else { 1 };
        if !v.is_nan() {
            n += 1.0;
            let dl = v - m;
            m += dl / n;
            ss += (n - 1.0) * dl * dl / n;
        }
        if t >= d && !x[t - d].is_nan() {
            let v = x[t - d];
            n -= 1.0;
            if n > 0.0 {
                let dl = v - m;
                m -= dl / n;
                ss -= (n + 1.0) * dl * dl / n;
            } else {
                m = 0.0;
                ss = 0.0;
            }
        }
        let full = nan.step(x, t, d);
        out[t] = if !full || d < 2 {
            f64::NAN
        } else if run >= d {
            0.0
        } else {
            (ss / (d as f64 - 1.0)).max(0.0)
        };
    }
}

pub fn std(x: &[f64], d: usize, out: &mut [f64]) {
    var(x, d, out);
    for o in out.iter_mut() {
        *o = o.sqrt();
    }
}

pub fn zscore(x: &[f64], d: usize, out: &mut [f64]) {
    let mut m = vec![0.0; x.len()];
    mean(x, d, &mut m);
    std(x, d, out);
    for t in 0..x.len() {
        out[t] = if out[t] > 0.0 {
            (x[t] - m[t]) / out[t]
        } else {
            f64::NAN
        };
    }
}

/// Min (`want_max` false) or max over full windows, or days since it (`arg`).
fn extreme(x: &[f64], d: usize, out: &mut [f64], want_max: bool, arg: bool) {
    let mut q: VecDeque<usize> = VecDeque::with_capacity(d + 1);
    let mut nan = NanCount { n: 0 };
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
        let full = nan.step(x, t, d);
        out[t] = match (full, q.front()) {
            (true, Some(&f)) => {
                if arg {
                    (t - f) as f64
                } else {
                    x[f]
                }
            }
            _ => f64::NAN,
        };
    }
}

pub fn min(x: &[f64], d: usize, out: &mut [f64]) {
    extreme(x, d, out, false, false)
}
pub fn max(x: &[f64], d: usize, out: &mut [f64]) {
    extreme(x, d, out, true, false)
}
pub fn argmin(x: &[f64], d: usize, out: &mut [f64]) {
    extreme(x, d, out, false, true)
}
pub fn argmax(x: &[f64], d: usize, out: &mut [f64]) {
    extreme(x, d, out, true, true)
}

/// Keeps the non-NaN values of the window sorted.
fn sorted_window(x: &[f64], d: usize, out: &mut [f64], f: impl Fn(&[f64], f64) -> f64) {
    let mut w: Vec<f64> = Vec::with_capacity(d + 1);
    let mut nan = NanCount { n: 0 };
    for t in 0..x.len() {
        if !x[t].is_nan() {
            let p = w.partition_point(|v| *v < x[t]);
            w.insert(p, x[t]);
        }
        if t >= d && !x[t - d].is_nan() {
            let p = w.partition_point(|v| *v < x[t - d]);
            w.remove(p);
        }
        let full = nan.step(x, t, d);
        out[t] = if full { f(&w, x[t]) } else { f64::NAN };
    }
}

pub fn rank(x: &[f64], d: usize, out: &mut [f64]) {
    sorted_window(x, d, out, |w, v| {
        let lo = w.partition_point(|u| *u < v);
        let hi = w.partition_point(|u| *u <= v);
        (lo as f64 + (hi - lo + 1) as f64 / 2.0) / w.len() as f64
    })
}

pub fn median(x: &[f64], d: usize, out: &mut [f64]) {
    sorted_window(x, d, out, |w, _| {
        let n = w.len();
        if n % 2 == 1 {
            w[n / 2]
        } else {
            (w[n / 2 - 1] + w[n / 2]) / 2.0
        }
    })
}

pub fn product(x: &[f64], d: usize, out: &mut [f64]) {
    let (mut zeros, mut negs) = (0usize, 0usize);
    let mut logs = KSum::default();
    let mut nan = NanCount { n: 0 };
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
        let full = nan.step(x, t, d);
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

/// Running power sums of (x - shift) for skew/kurt, shift = the series' first value, so
/// large levels do not cancel.
fn moments(x: &[f64], d: usize, out: &mut [f64], kurt: bool) {
    let shift = x.iter().copied().find(|v| !v.is_nan()).unwrap_or(0.0);
    let mut s = [KSum::default(); 4];
    let mut nan = NanCount { n: 0 };
    let mut since = 0usize;
    let mut run = 0usize;
    let add = |s: &mut [KSum; 4], v: f64, sign: f64| {
        let y = v - shift;
        let (y2, y3) = (y * y, y * y * y);
        s[0].add(sign * y);
        s[1].add(sign * y2);
        s[2].add(sign * y3);
        s[3].add(sign * y2 * y2);
    };
    for t in 0..x.len() {
        run = if t > 0 && x[t] == x[t - 1] {
            run + 1
        } else {
            1
        };
        if !x[t].is_nan() {
            add(&mut s, x[t], 1.0);
        }
        if t >= d && !x[t - d].is_nan() {
            add(&mut s, x[t - d], -1.0);
        }
        since += 1;
        let full = nan.step(x, t, d);
        if full && since >= d {
            s = [KSum::default(); 4];
            for v in &x[t + 1 - d..=t] {
                add(&mut s, *v, 1.0);
            }
            since = 0;
        }
        let n = d as f64;
        out[t] = if !full || run >= d || (kurt && d < 4) || d < 3 {
            f64::NAN
        } else {
            let a = s[0].get() / n;
            let b = s[1].get() / n - a * a;
            let c = s[2].get() / n - a * a * a - 3.0 * a * b;
            if b <= 1e-14 * (s[1].get() / n).max(1e-300) {
                f64::NAN
            } else if !kurt {
                let r = b.sqrt();
                ((n * (n - 1.0)).sqrt() * c) / ((n - 2.0) * r * r * r)
            } else {
                let dd = s[3].get() / n - a * a * a * a - 6.0 * b * a * a - 4.0 * c * a;
                let k = (n * n - 1.0) * dd / (b * b) - 3.0 * (n - 1.0) * (n - 1.0);
                k / ((n - 2.0) * (n - 3.0))
            }
        };
    }
}

pub fn skew(x: &[f64], d: usize, out: &mut [f64]) {
    moments(x, d, out, false)
}
pub fn kurt(x: &[f64], d: usize, out: &mut [f64]) {
    moments(x, d, out, true)
}

/// Sums over the window of y, i·y and y² with i = 1..d (oldest = 1), y = x - shift,
/// where the shift is the window's oldest value at the last exact recompute (every d
/// steps), so near-constant windows do not lose digits to cancellation. Calls
/// `emit(y_today, sy, siy, syy, shift)` on full windows.
fn linear_sums(
    x: &[f64],
    d: usize,
    out: &mut [f64],
    emit: impl Fn(f64, f64, f64, f64, f64) -> f64,
) {
    let mut shift = 0.0;
    let mut nan = NanCount { n: 0 };
    let (mut sy, mut siy, mut syy) = (0.0, 0.0, 0.0);
    let mut valid = false;
    let mut since = 0usize;
    let dn = d as f64;
    for t in 0..x.len() {
        let full = nan.step(x, t, d);
        if !full {
            valid = false;
            out[t] = f64::NAN;
            continue;
        }
        since += 1;
        if !valid || since >= d {
            shift = x[t + 1 - d];
            sy = 0.0;
            siy = 0.0;
            syy = 0.0;
            for (k, v) in x[t + 1 - d..=t].iter().enumerate() {
                let y = v - shift;
                sy += y;
                siy += (k + 1) as f64 * y;
                syy += y * y;
            }
            valid = true;
            since = 0;
        } else {
            let (old, new) = (x[t - d] - shift, x[t] - shift);
            // Re-index: every weight drops by one, the oldest leaves, the newest gets d.
            siy = siy - sy + dn * new;
            sy = sy - old + new;
            syy = syy - old * old + new * new;
        }
        out[t] = emit(x[t] - shift, sy, siy, syy, shift);
    }
}

pub fn decay_linear(x: &[f64], d: usize, out: &mut [f64]) {
    let norm = (d * (d + 1)) as f64 / 2.0;
    linear_sums(x, d, out, |_, _, siy, _, shift| siy / norm + shift);
}

/// Regression of x on i = 1..d: (slope, intercept, r²), from the window sums.
#[inline]
fn regress(d: usize, sy: f64, siy: f64, syy: f64) -> (f64, f64, f64) {
    let n = d as f64;
    let si = n * (n + 1.0) / 2.0;
    let sii = n * (n + 1.0) * (2.0 * n + 1.0) / 6.0;
    let sxx = n * sii - si * si;
    let sxy = n * siy - si * sy;
    let syy_c = n * syy - sy * sy;
    let slope = sxy / sxx;
    let icpt = (sy - slope * si) / n;
    let r2 = if syy_c <= 1e-12 * (n * syy).max(1e-300) {
        f64::NAN
    } else {
        sxy * sxy / (sxx * syy_c)
    };
    (slope, icpt, r2)
}

pub fn slope(x: &[f64], d: usize, out: &mut [f64]) {
    linear_sums(x, d, out, |_, sy, siy, syy, _| regress(d, sy, siy, syy).0);
}
pub fn rsquare(x: &[f64], d: usize, out: &mut [f64]) {
    linear_sums(x, d, out, |_, sy, siy, syy, _| regress(d, sy, siy, syy).2);
}
pub fn resi(x: &[f64], d: usize, out: &mut [f64]) {
    linear_sums(x, d, out, |y, sy, siy, syy, _| {
        let (s, c, _) = regress(d, sy, siy, syy);
        y - (c + s * d as f64)
    });
}

/// pandas `ewm(span=d, adjust=True, ignore_na=False, min_periods=d).mean()`.
pub fn ema(x: &[f64], d: usize, out: &mut [f64]) {
    let alpha = 2.0 / (d as f64 + 1.0);
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
        out[t] = if nobs >= d { weighted } else { f64::NAN };
    }
}

/// Rolling covariance (ddof 1) or correlation of two series over full windows of both.
pub fn pair(x: &[f64], y: &[f64], d: usize, out: &mut [f64], corr: bool) {
    let (mut sx0, mut sy0) = (0.0, 0.0);
    let mut bad = 0usize;
    let mut s = [0.0f64; 5];
    let mut valid = false;
    let mut since = 0usize;
    let (mut runx, mut runy) = (0usize, 0usize);
    let n = d as f64;
    let isbad = |t: usize| x[t].is_nan() || y[t].is_nan();
    for t in 0..x.len() {
        runx = if t > 0 && x[t] == x[t - 1] {
            runx + 1
        } else {
            1
        };
        runy = if t > 0 && y[t] == y[t - 1] {
            runy + 1
        } else {
            1
        };
        bad += isbad(t) as usize;
        if t >= d && isbad(t - d) {
            bad -= 1;
        }
        if t + 1 < d || bad > 0 {
            valid = false;
            out[t] = f64::NAN;
            continue;
        }
        since += 1;
        if !valid || since >= d {
            // Shift by the window's oldest values so sums stay small (no cancellation).
            sx0 = x[t + 1 - d];
            sy0 = y[t + 1 - d];
            s = [0.0; 5];
            for k in t + 1 - d..=t {
                let (a, b) = (x[k] - sx0, y[k] - sy0);
                s[0] += a;
                s[1] += b;
                s[2] += a * b;
                s[3] += a * a;
                s[4] += b * b;
            }
            valid = true;
            since = 0;
        } else {
            let (a, b) = (x[t] - sx0, y[t] - sy0);
            let (oa, ob) = (x[t - d] - sx0, y[t - d] - sy0);
            s[0] += a - oa;
            s[1] += b - ob;
            s[2] += a * b - oa * ob;
            s[3] += a * a - oa * oa;
            s[4] += b * b - ob * ob;
        }
        let cov = (n * s[2] - s[0] * s[1]) / (n * (n - 1.0));
        out[t] = if !corr {
            if runx >= d || runy >= d { 0.0 } else { cov }
        } else {
            let vx = n * s[3] - s[0] * s[0];
            let vy = n * s[4] - s[1] * s[1];
            if runx >= d
                || runy >= d
                || vx <= 1e-12 * (n * s[3]).max(1e-300)
                || vy <= 1e-12 * (n * s[4]).max(1e-300)
            {
                f64::NAN
            } else {
                ((n * s[2] - s[0] * s[1]) / (vx * vy).sqrt()).clamp(-1.0, 1.0)
            }
        };
    }
}

/// The kernel of a unary time-series op by name.
pub fn unary(name: &str) -> Option<fn(&[f64], usize, &mut [f64])> {
    Some(match name {
        "ts_delay" => delay,
        "ts_delta" => delta,
        "ts_sum" => sum,
        "ts_mean" => mean,
        "ts_std" => std,
        "ts_var" => var,
        "ts_min" => min,
        "ts_max" => max,
        "ts_argmin" => argmin,
        "ts_argmax" => argmax,
        "ts_rank" => rank,
        "ts_product" => product,
        "ts_skew" => skew,
        "ts_kurt" => kurt,
        "ts_median" => median,
        "ts_zscore" => zscore,
        "ts_decay_linear" => decay_linear,
        "ts_ema" => ema,
        "ts_slope" => slope,
        "ts_rsquare" => rsquare,
        "ts_resi" => resi,
        "ts_count" => count,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f64], d: usize, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        (0..x.len())
            .map(|t| {
                if t + 1 < d || x[t + 1 - d..=t].iter().any(|v| v.is_nan()) {
                    f64::NAN
                } else {
                    f(&x[t + 1 - d..=t])
                }
            })
            .collect()
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!(
                (p.is_nan() && q.is_nan()) || (p - q).abs() <= tol * (1.0 + q.abs()),
                "at {i}: {p} vs {q}"
            );
        }
    }

    #[test]
    fn rolling_matches_naive_and_does_not_drift() {
        // 2500 days of a price-like series with a few NaNs.
        let mut x: Vec<f64> = (0..2500)
            .map(|i| 1000.0 + (i as f64 * 0.37).sin() * 3.0 + (i % 7) as f64 * 0.01)
            .collect();
        x[100] = f64::NAN;
        x[1500] = f64::NAN;
        let d = 20;
        let mut o = vec![0.0; x.len()];
        sum(&x, d, &mut o);
        close(&o, &naive(&x, d, |w| w.iter().sum()), 1e-13);
        std(&x, d, &mut o);
        close(
            &o,
            &naive(&x, d, |w| {
                let m = w.iter().sum::<f64>() / w.len() as f64;
                (w.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (w.len() - 1) as f64).sqrt()
            }),
            1e-8,
        );
        max(&x, d, &mut o);
        close(
            &o,
            &naive(&x, d, |w| w.iter().cloned().fold(f64::MIN, f64::max)),
            0.0,
        );
        argmin(&x, d, &mut o);
        close(
            &o,
            &naive(&x, d, |w| {
                let (mut bi, mut bv) = (0, f64::MAX);
                for (i, v) in w.iter().enumerate() {
                    if *v < bv {
                        bv = *v;
                        bi = i;
                    }
                }
                (w.len() - 1 - bi) as f64
            }),
            0.0,
        );
        decay_linear(&x, d, &mut o);
        close(
            &o,
            &naive(&x, d, |w| {
                w.iter()
                    .enumerate()
                    .map(|(i, v)| (i + 1) as f64 * v)
                    .sum::<f64>()
                    / 210.0
            }),
            1e-13,
        );
        median(&x, 5, &mut o);
        close(
            &o,
            &naive(&x, 5, |w| {
                let mut s = w.to_vec();
                s.sort_by(f64::total_cmp);
                s[2]
            }),
            0.0,
        );
    }

    #[test]
    fn constant_windows() {
        let x = vec![5.0; 50];
        let mut o = vec![0.0; 50];
        std(&x, 10, &mut o);
        assert_eq!(o[20], 0.0);
        let y: Vec<f64> = (0..50).map(|i| i as f64).collect();
        pair(&x, &y, 10, &mut o, true);
        assert!(o[20].is_nan());
        zscore(&x, 10, &mut o);
        assert!(o[20].is_nan());
    }
}
