//! Row-wise rolling kernels: lags, sums, means, moments (var, std, z-score, skew,
//! kurt), counts, min/max and where they are, short-window ranks, pairwise covariance /
//! correlation, and regressions on time.
//!
//! The panel is date-major, so instead of gathering each asset's series these kernels
//! walk the dates once and keep one running state per asset: every read and write is a
//! contiguous run of a row (no transpose, no strided scatter), and the per-asset loops
//! are plain slices the compiler vectorises. Columns are split into chunks of [`CW`]
//! assets, one rayon task each, so both cores work and a chunk's last `d` rows stay in
//! cache for the removal of the value leaving the window.
//!
//! Two schemes keep long series exact. Sums, means, moments and min/max/argmin/argmax
//! use van Herk blocks (a window = the tail of one block of `d` rows + the head of the
//! next; suffix and prefix aggregates, nothing subtracted). Covariance/correlation and
//! regressions on time keep running sums of `x - K` (a per-asset shift), recomputed
//! exactly every `d` days and at once when a huge value leaves the window. A window is
//! valid when it holds at least `minp` values (native: `minp = d`, every value present;
//! Qlib: `minp = 1`, NaNs skipped). A window whose values are all equal has variance
//! exactly 0 (as pandas), detected by counting consecutive equal values.

use rayon::prelude::*;

use super::{SharedOut, buf, finite_or_nan};

/// Target assets per task: long contiguous runs of each row (8 KB spans pages, so the
/// hardware prefetcher keeps streaming), while the last `d` rows of a chunk stay in L2.
const CW: usize = 1024;

/// A window of `d` days that is valid with at least `minp` non-NaN values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Win {
    pub d: usize,
    pub minp: usize,
}

impl Win {
    /// Native semantics: all `d` values present.
    pub fn full(d: usize) -> Win {
        Win { d, minp: d }
    }
}

/// The columns `a0..a0 + w` of a `[n_dates][n_assets]` matrix.
#[derive(Clone, Copy)]
struct Cols<'a> {
    m: &'a [f64],
    na: usize,
    a0: usize,
    w: usize,
}

impl<'a> Cols<'a> {
    #[inline]
    fn row(&self, t: usize) -> &'a [f64] {
        &self.m[t * self.na + self.a0..][..self.w]
    }
}

/// The same columns of the output, written by one task only.
struct OutCols {
    p: SharedOut,
    na: usize,
    a0: usize,
    w: usize,
}

impl OutCols {
    #[inline]
    fn row(&mut self, t: usize) -> &mut [f64] {
        // SAFETY: each task owns columns a0..a0 + w of every row, and `by_cols` checks
        // the buffer holds n_dates * n_assets cells.
        unsafe { std::slice::from_raw_parts_mut(self.p.0.add(t * self.na + self.a0), self.w) }
    }
}

/// Run `f` over column chunks in parallel; `f` writes every cell of its columns.
fn by_cols<F>(x: &[f64], y: Option<&[f64]>, nd: usize, na: usize, f: F) -> Vec<f64>
where
    F: Fn(Cols, Option<Cols>, &mut OutCols) + Sync,
{
    let n = nd * na;
    assert!(x.len() == n && y.is_none_or(|y| y.len() == n));
    let mut out = buf::take(n);
    let p = SharedOut(out.as_mut_ptr());
    // An even number of near-equal chunks keeps both cores busy to the end.
    let chunks = na.div_ceil(CW).next_multiple_of(2).min(na);
    let cw = na.div_ceil(chunks);
    (0..na.div_ceil(cw)).into_par_iter().for_each(|c| {
        let a0 = c * cw;
        let w = cw.min(na - a0);
        let cols = |m| Cols { m, na, a0, w };
        let mut o = OutCols { p, na, a0, w };
        f(cols(x), y.map(cols), &mut o);
    });
    out
}

/// `x` `d` days ago (`lag`) or the change since then.
pub fn shift(x: &[f64], nd: usize, na: usize, d: usize, delta: bool) -> Vec<f64> {
    by_cols(x, None, nd, na, |x, _, out| {
        for t in 0..nd {
            let o = out.row(t);
            if t < d {
                o.fill(f64::NAN);
            } else if delta {
                for ((o, a), b) in o.iter_mut().zip(x.row(t)).zip(x.row(t - d)) {
                    *o = a - b;
                }
            } else {
                o.copy_from_slice(x.row(t - d));
            }
        }
    })
}

/// Days in the window where `x` is non-zero (NaN counts as false), or, with `present`,
/// where it is not NaN; defined once the window has `minp` rows.
pub fn count(x: &[f64], nd: usize, na: usize, win: Win, present: bool) -> Vec<f64> {
    let Win { d, minp } = win;
    by_cols(x, None, nd, na, |x, _, out| {
        let mut c = vec![0u32; x.w];
        let yes = |v: f64| ((present || v != 0.0) && !v.is_nan()) as u32;
        for t in 0..nd {
            for (c, v) in c.iter_mut().zip(x.row(t)) {
                *c += yes(*v);
            }
            if t >= d {
                for (c, v) in c.iter_mut().zip(x.row(t - d)) {
                    *c -= yes(*v);
                }
            }
            let ok = (t + 1).min(d) >= minp;
            for (o, c) in out.row(t).iter_mut().zip(&c) {
                *o = if ok { *c as f64 } else { f64::NAN };
            }
        }
    })
}

/// Which statistic of the window's power sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Sum,
    Mean,
    Var,
    Std,
    ZScore,
    Skew,
    Kurt,
}

impl Stat {
    fn powers(self) -> usize {
        match self {
            Stat::Sum | Stat::Mean => 1,
            Stat::Var | Stat::Std | Stat::ZScore => 2,
            Stat::Skew => 3,
            Stat::Kurt => 4,
        }
    }
    /// Fewest values the statistic is defined for.
    fn least(self) -> usize {
        match self {
            Stat::Sum | Stat::Mean => 1,
            Stat::Var | Stat::Std | Stat::ZScore => 2,
            Stat::Skew => 3,
            Stat::Kurt => 4,
        }
    }
}

/// Track how many consecutive non-NaN values equal the last one (NaNs do not break a
/// run, as in pandas): a window of `n` values is constant when `run >= n`.
#[inline(always)]
fn equal_run(v: f64, run: &mut f64, last: &mut f64) {
    let ok = !v.is_nan();
    *run = if !ok {
        *run
    } else if v == *last {
        *run + 1.0
    } else {
        1.0
    };
    *last = if ok { v } else { *last };
}

/// Van Herk geometry: rows in blocks of `d`; the window `[t + 1 - d, t]` is the head of
/// t's block up to t, plus — unless it starts exactly at a block start — the tail of the
/// previous block from the returned row (its index within that block).
#[inline]
fn tail_row(t: usize, d: usize) -> Option<usize> {
    (t + 1 >= d && (t + 1 - d) % d != 0).then(|| (t + 1 - d) % d)
}

/// Knuth's TwoSum: `a + b` and its exact rounding error, branch-free (vectorises).
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bp = s - a;
    (s, (a - (s - bp)) + (b - bp))
}

/// Rolling sum or mean over the window's non-NaN values, van Herk style: rows are cut
/// into blocks of `d`; each window is the tail of one block plus the head of the next,
/// so its sum is (suffix sum at its start) + (prefix sum at its end). Nothing is ever
/// subtracted, so there is no drift and no residue when a huge value leaves; partial
/// sums carry their TwoSum rounding error, so results are the correctly rounded window
/// sums in practice (as pandas' Kahan sums), and equal windows give equal sums — ties in
/// later ranks and comparisons stay ties. Plain branch-free loops over contiguous rows,
/// which the compiler vectorises. A window whose values are all equal gives exactly that
/// value (mean), as pandas.
fn sum_mean(x: &[f64], nd: usize, na: usize, win: Win, mean: bool) -> Vec<f64> {
    let Win { d, minp } = win;
    let need = minp.max(1) as f64;
    by_cols(x, None, nd, na, move |x, _, out| {
        let w = x.w;
        // Per slot row: sum, its error, count (suffixes of the current/previous block).
        let mut suf = vec![0.0; 2 * d * w];
        let mut sufc = vec![0.0; 2 * d * w];
        let mut sufn = vec![0.0; 2 * d * w];
        let (mut pre, mut prec, mut pren) = (vec![0.0; w], vec![0.0; w], vec![0.0; w]);
        let (mut run, mut last) = (vec![0.0f64; w], vec![f64::NAN; w]);
        for k in 0..nd.div_ceil(d) {
            let (b0, b1) = (k * d, ((k + 1) * d).min(nd));
            let slot = (k % 2) * d * w;
            for t in (b0..b1).rev() {
                let r = &x.row(t)[..w];
                let at = slot + (t - b0) * w;
                // The block's last row starts the suffix sums from zero.
                let span = if t + 1 < b1 { 2 * w } else { w };
                let (cur, next) = suf[at..at + span].split_at_mut(w);
                let (curc, nextc) = sufc[at..at + span].split_at_mut(w);
                let (curn, nextn) = sufn[at..at + span].split_at_mut(w);
                if next.is_empty() {
                    for j in 0..w {
                        let ok = !r[j].is_nan();
                        cur[j] = if ok { r[j] } else { 0.0 };
                        curc[j] = 0.0;
                        curn[j] = if ok { 1.0 } else { 0.0 };
                    }
                } else {
                    for j in 0..w {
                        let ok = !r[j].is_nan();
                        let (s, e) = two_sum(next[j], if ok { r[j] } else { 0.0 });
                        cur[j] = s;
                        curc[j] = nextc[j] + e;
                        curn[j] = nextn[j] + if ok { 1.0 } else { 0.0 };
                    }
                }
            }
            for t in b0..b1 {
                let r = &x.row(t)[..w];
                let keep = if t == b0 { 0.0 } else { 1.0 };
                let (pre, prec, pren) = (&mut pre[..w], &mut prec[..w], &mut pren[..w]);
                let (run, last) = (&mut run[..w], &mut last[..w]);
                for j in 0..w {
                    let v = r[j];
                    let ok = !v.is_nan();
                    let (s, e) = two_sum(pre[j] * keep, if ok { v } else { 0.0 });
                    pre[j] = s;
                    prec[j] = prec[j] * keep + e;
                    pren[j] = pren[j] * keep + if ok { 1.0 } else { 0.0 };
                    equal_run(v, &mut run[j], &mut last[j]);
                }
                let o = &mut out.row(t)[..w];
                let tail = tail_row(t, d).map(|row| ((k + 1) % 2) * d * w + row * w);
                for j in 0..w {
                    let (ts, tc, tn) = match tail {
                        Some(at) => (suf[at + j], sufc[at + j], sufn[at + j]),
                        None => (0.0, 0.0, 0.0),
                    };
                    let (s, e) = two_sum(ts, pre[j]);
                    let sum = s + (e + tc + prec[j]);
                    let n = tn + pren[j];
                    let v = if run[j] >= n {
                        if mean { last[j] } else { n * last[j] }
                    } else if mean {
                        sum / n
                    } else {
                        sum
                    };
                    o[j] = if n < need { f64::NAN } else { v };
                }
            }
        }
    })
}

/// Rolling statistic from the power sums of each window.
pub fn moments(x: &[f64], nd: usize, na: usize, win: Win, stat: Stat) -> Vec<f64> {
    match stat.powers() {
        1 => sum_mean(x, nd, na, win, stat == Stat::Mean),
        2 => block_moments::<2>(x, nd, na, win, stat),
        3 => block_moments::<3>(x, nd, na, win, stat),
        _ => block_moments::<4>(x, nd, na, win, stat),
    }
}

/// A statistic from the window's count `n` and power sums `s[q] = Σ (x - k)^(q+1)`.
/// `constant`: all the window's values are equal (exact results, as pandas).
#[inline(always)]
fn stat_of(stat: Stat, n: f64, s: [f64; 4], k: f64, today: f64, constant: bool) -> f64 {
    let a = s[0] / n;
    let b = if constant {
        0.0
    } else {
        (s[1] / n - a * a).max(0.0)
    };
    let var = b * n / (n - 1.0);
    let v = match stat {
        Stat::Sum => n * k + s[0],
        Stat::Mean => k + a,
        Stat::Var => var,
        Stat::Std => var.sqrt(),
        Stat::ZScore => {
            let sd = var.sqrt();
            if sd > 0.0 {
                (today - (k + a)) / sd
            } else {
                f64::NAN
            }
        }
        Stat::Skew | Stat::Kurt => {
            if constant || b <= 1e-14 * (s[1] / n).max(1e-300) {
                f64::NAN
            } else {
                let c3 = s[2] / n - a * a * a - 3.0 * a * b;
                if stat == Stat::Skew {
                    let r = b.sqrt();
                    ((n * (n - 1.0)).sqrt() * c3) / ((n - 2.0) * r * r * r)
                } else {
                    let d4 = s[3] / n - a * a * a * a - 6.0 * b * a * a - 4.0 * c3 * a;
                    let kk = (n * n - 1.0) * d4 / (b * b) - 3.0 * (n - 1.0) * (n - 1.0);
                    kk / ((n - 2.0) * (n - 3.0))
                }
            }
        }
    };
    finite_or_nan(v)
}

/// Power sums of each window (count and Σ y^q, q = 1..P, y = x - k), van Herk style as
/// [`sum_mean`]: the window is the tail of the previous block plus the head of the
/// current one. Both parts are summed relative to one shift `k` per asset and block
/// (the block's first value), recomputed from scratch for every block: no subtraction
/// of values leaving the window, so no drift and no residue after a huge value, and the
/// shift keeps price-level series from cancelling digits. Branch-free loops over
/// contiguous rows.
fn block_moments<const P: usize>(
    x: &[f64],
    nd: usize,
    na: usize,
    win: Win,
    stat: Stat,
) -> Vec<f64> {
    let Win { d, minp } = win;
    let need = minp.max(stat.least()) as f64;
    by_cols(x, None, nd, na, move |x, _, out| {
        let w = x.w;
        // suf[(q * d + r) * w + j]: sums over rows r.. of the previous block (q = 0: count).
        let mut suf = vec![0.0; (P + 1) * d * w];
        let mut pre = vec![0.0; (P + 1) * w];
        let mut tot = vec![0.0; (P + 1) * w];
        let mut k = vec![0.0; w];
        let mut first = vec![f64::NAN; w];
        let (mut run, mut last) = (vec![0.0f64; w], vec![f64::NAN; w]);
        // One row's terms: pw[q * w + j] = (x - k)^q (q = 0: 1), 0 where x is NaN.
        let mut yv = vec![0.0; w];
        let mut pw = vec![0.0; (P + 1) * w];
        let powers = |r: &[f64], k: &[f64], yv: &mut [f64], pw: &mut [f64]| {
            let r = &r[..w];
            let (ones, rest) = pw.split_at_mut(w);
            for j in 0..w {
                let ok = !r[j].is_nan();
                ones[j] = if ok { 1.0 } else { 0.0 };
                yv[j] = if ok { r[j] - k[j] } else { 0.0 };
            }
            rest[..w].copy_from_slice(&yv[..w]);
            for q in 2..=P {
                let (prev, cur) = rest[(q - 2) * w..q * w].split_at_mut(w);
                for j in 0..w {
                    cur[j] = prev[j] * yv[j];
                }
            }
        };
        for kb in 0..nd.div_ceil(d) {
            let (b0, b1) = (kb * d, ((kb + 1) * d).min(nd));
            // This block's shift: its first value per asset (else the previous shift).
            first.fill(f64::NAN);
            for t in b0..b1 {
                let r = &x.row(t)[..w];
                for (f, v) in first.iter_mut().zip(r) {
                    *f = if f.is_nan() { *v } else { *f };
                }
            }
            for j in 0..w {
                k[j] = if first[j].is_nan() { k[j] } else { first[j] };
            }
            // Suffix sums of the previous block, relative to this block's shift.
            if kb > 0 {
                let p0 = b0 - d;
                for t in (p0..b0).rev() {
                    let row = t - p0;
                    powers(x.row(t), &k, &mut yv, &mut pw);
                    for q in 0..=P {
                        let at = (q * d + row) * w;
                        let src = &pw[q * w..(q + 1) * w];
                        if row + 1 < d {
                            let (cur, next) = suf[at..at + 2 * w].split_at_mut(w);
                            for j in 0..w {
                                cur[j] = next[j] + src[j];
                            }
                        } else {
                            suf[at..at + w].copy_from_slice(src);
                        }
                    }
                }
            }
            for t in b0..b1 {
                let r = &x.row(t)[..w];
                let keep = if t == b0 { 0.0 } else { 1.0 };
                powers(r, &k, &mut yv, &mut pw);
                for q in 0..=P {
                    let p = &mut pre[q * w..(q + 1) * w];
                    let src = &pw[q * w..(q + 1) * w];
                    for j in 0..w {
                        p[j] = p[j] * keep + src[j];
                    }
                }
                for j in 0..w {
                    equal_run(r[j], &mut run[j], &mut last[j]);
                }
                let o = &mut out.row(t)[..w];
                let tail = tail_row(t, d);
                for q in 0..=P {
                    let (tq, pq) = (&mut tot[q * w..(q + 1) * w], &pre[q * w..(q + 1) * w]);
                    match tail {
                        Some(row) => {
                            let sq = &suf[(q * d + row) * w..(q * d + row + 1) * w];
                            for j in 0..w {
                                tq[j] = pq[j] + sq[j];
                            }
                        }
                        None => tq.copy_from_slice(pq),
                    }
                }
                let (n, s1) = (&tot[..w], &tot[w..2 * w]);
                let s2 = &tot[2 * w..3 * w];
                match stat {
                    // Simple per-stat loops (no per-cell dispatch) so sqrt and division
                    // vectorise.
                    Stat::Var | Stat::Std | Stat::ZScore => {
                        for j in 0..w {
                            let a = s1[j] / n[j];
                            let b = (s2[j] / n[j] - a * a).max(0.0);
                            let b = if run[j] >= n[j] { 0.0 } else { b };
                            let var = b * n[j] / (n[j] - 1.0);
                            o[j] = if n[j] < need { f64::NAN } else { var };
                        }
                        if stat != Stat::Var {
                            for v in o.iter_mut() {
                                *v = v.sqrt();
                            }
                        }
                        if stat == Stat::ZScore {
                            for j in 0..w {
                                let m = k[j] + s1[j] / n[j];
                                let z = (r[j] - m) / o[j];
                                o[j] = if o[j] > 0.0 { z } else { f64::NAN };
                            }
                        }
                        for v in o.iter_mut() {
                            *v = finite_or_nan(*v);
                        }
                    }
                    _ => {
                        for j in 0..w {
                            let mut sv = [0.0; 4];
                            for q in 1..=P {
                                sv[q - 1] = tot[q * w + j];
                            }
                            o[j] = if n[j] < need {
                                f64::NAN
                            } else {
                                stat_of(stat, n[j], sv, k[j], r[j], run[j] >= n[j])
                            };
                        }
                    }
                }
            }
        }
    })
}

/// A value leaving the window this much larger (in its square) than what stays would
/// leave the running sums with its rounding error: recompute that asset exactly.
const CANCEL: f64 = 1e4;

/// Rolling covariance (ddof 1) or Pearson correlation over the days where both series
/// have a value; correlation is NaN when either side is (nearly) constant.
pub fn pair(x: &[f64], y: &[f64], nd: usize, na: usize, win: Win, corr: bool) -> Vec<f64> {
    let Win { d, minp } = win;
    let need = minp.max(2) as u32;
    by_cols(x, Some(y), nd, na, |xc, yc, out| {
        let yc = yc.expect("pair has two inputs");
        let w = xc.w;
        let (mut kx, mut ky) = (vec![0.0; w], vec![0.0; w]);
        let mut cnt = vec![0u32; w];
        // sx, sy, sxy, sxx, syy
        let mut s: [Vec<f64>; 5] = std::array::from_fn(|_| vec![0.0; w]);
        let (mut runx, mut runy) = (vec![0u32; w], vec![0u32; w]);
        let (mut lastx, mut lasty) = (vec![f64::NAN; w], vec![f64::NAN; w]);
        let add = |s: &mut [Vec<f64>; 5], j: usize, a: f64, b: f64, sign: f64| {
            s[0][j] += sign * a;
            s[1][j] += sign * b;
            s[2][j] += sign * a * b;
            s[3][j] += sign * a * a;
            s[4][j] += sign * b * b;
        };
        let mut redo: Vec<usize> = Vec::new();
        for t in 0..nd {
            redo.clear();
            if t >= d {
                let (xo, yo) = (xc.row(t - d), yc.row(t - d));
                for j in 0..w {
                    if !xo[j].is_nan() && !yo[j].is_nan() {
                        cnt[j] -= 1;
                        let (a, b) = (xo[j] - kx[j], yo[j] - ky[j]);
                        add(&mut s, j, a, b, -1.0);
                        if (a * a > CANCEL * s[3][j] || b * b > CANCEL * s[4][j]) && cnt[j] > 0 {
                            redo.push(j);
                        }
                    }
                }
            }
            let (xr, yr) = (xc.row(t), yc.row(t));
            for j in 0..w {
                let (a, b) = (xr[j], yr[j]);
                if a.is_nan() || b.is_nan() {
                    continue;
                }
                if cnt[j] == 0 {
                    kx[j] = a;
                    ky[j] = b;
                    for v in s.iter_mut() {
                        v[j] = 0.0;
                    }
                }
                cnt[j] += 1;
                runx[j] = if a == lastx[j] { runx[j] + 1 } else { 1 };
                runy[j] = if b == lasty[j] { runy[j] + 1 } else { 1 };
                lastx[j] = a;
                lasty[j] = b;
                add(&mut s, j, a - kx[j], b - ky[j], 1.0);
            }
            let all = (t + 1) % d == 0;
            for j in (0..w).filter(|j| all || redo.contains(j)) {
                if !xr[j].is_nan() && !yr[j].is_nan() {
                    kx[j] = xr[j];
                    ky[j] = yr[j];
                }
                for v in s.iter_mut() {
                    v[j] = 0.0;
                }
                for u in (t + 1).saturating_sub(d)..=t {
                    let (a, b) = (xc.row(u)[j], yc.row(u)[j]);
                    if !a.is_nan() && !b.is_nan() {
                        add(&mut s, j, a - kx[j], b - ky[j], 1.0);
                    }
                }
            }
            let o = out.row(t);
            for j in 0..w {
                let c = cnt[j];
                if c < need {
                    o[j] = f64::NAN;
                    continue;
                }
                let n = c as f64;
                let cov = (n * s[2][j] - s[0][j] * s[1][j]) / (n * (n - 1.0));
                let cx = runx[j] >= c;
                let cy = runy[j] >= c;
                o[j] = finite_or_nan(if !corr {
                    if cx || cy { 0.0 } else { cov }
                } else {
                    let vx = n * s[3][j] - s[0][j] * s[0][j];
                    let vy = n * s[4][j] - s[1][j] * s[1][j];
                    if cx
                        || cy
                        || vx <= 1e-12 * (n * s[3][j]).max(1e-300)
                        || vy <= 1e-12 * (n * s[4][j]).max(1e-300)
                    {
                        f64::NAN
                    } else {
                        ((n * s[2][j] - s[0][j] * s[1][j]) / (vx * vy).sqrt()).clamp(-1.0, 1.0)
                    }
                });
            }
        }
    })
}

/// What [`linreg`] reports from the regression of the window's values on their
/// positions 1..d (oldest = 1, today = d; missing days keep their position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    Slope,
    Rsquare,
    /// Today's residual (NaN when today's value is missing).
    Resi,
    /// Position-weighted mean Σ i·x / Σ i (`ts_decay_linear`, today heaviest).
    Decay,
}

/// Regression of each window on time, from running sums that are re-indexed as the
/// window slides (every position drops by one), exactly recomputed every `d` days.
pub fn linreg(x: &[f64], nd: usize, na: usize, win: Win, what: Reg) -> Vec<f64> {
    let Win { d, minp } = win;
    let need = minp.max(if what == Reg::Decay { 1 } else { 2 }) as u32;
    let dn = d as f64;
    by_cols(x, None, nd, na, |x, _, out| {
        let w = x.w;
        let mut k = vec![0.0; w];
        let mut cnt = vec![0u32; w];
        // si, sii, sy, siy, syy over present values, y = x - k
        let mut s: [Vec<f64>; 5] = std::array::from_fn(|_| vec![0.0; w]);
        let mut redo: Vec<usize> = Vec::new();
        for t in 0..nd {
            redo.clear();
            // Slide: positions drop by one; the value at position 0 leaves.
            for j in 0..w {
                let c = cnt[j] as f64;
                s[1][j] += c - 2.0 * s[0][j];
                s[0][j] -= c;
                s[3][j] -= s[2][j];
            }
            if t >= d {
                for (j, &v) in x.row(t - d).iter().enumerate() {
                    if !v.is_nan() {
                        cnt[j] -= 1;
                        let y = v - k[j];
                        s[2][j] -= y;
                        s[4][j] -= y * y;
                        if y * y > CANCEL * s[4][j] && cnt[j] > 0 {
                            redo.push(j);
                        }
                    }
                }
            }
            let xr = x.row(t);
            for (j, &v) in xr.iter().enumerate() {
                if v.is_nan() {
                    continue;
                }
                if cnt[j] == 0 {
                    k[j] = v;
                    for sk in s.iter_mut() {
                        sk[j] = 0.0;
                    }
                }
                cnt[j] += 1;
                let y = v - k[j];
                s[0][j] += dn;
                s[1][j] += dn * dn;
                s[2][j] += y;
                s[3][j] += dn * y;
                s[4][j] += y * y;
            }
            let all = (t + 1) % d == 0;
            for j in (0..w).filter(|j| all || redo.contains(j)) {
                if !xr[j].is_nan() {
                    k[j] = xr[j];
                }
                for sk in s.iter_mut() {
                    sk[j] = 0.0;
                }
                // Positions: today is d, the window's oldest day is d - (t - u).
                for u in (t + 1).saturating_sub(d)..=t {
                    let v = x.row(u)[j];
                    if !v.is_nan() {
                        let i = (d - (t - u)) as f64;
                        let y = v - k[j];
                        s[0][j] += i;
                        s[1][j] += i * i;
                        s[2][j] += y;
                        s[3][j] += i * y;
                        s[4][j] += y * y;
                    }
                }
            }
            let o = out.row(t);
            for j in 0..w {
                let c = cnt[j];
                if c < need {
                    o[j] = f64::NAN;
                    continue;
                }
                let n = c as f64;
                let (si, sii, sy, siy, syy) = (s[0][j], s[1][j], s[2][j], s[3][j], s[4][j]);
                let sxx = n * sii - si * si;
                let sxy = n * siy - si * sy;
                let slope = sxy / sxx;
                o[j] = finite_or_nan(match what {
                    Reg::Decay => siy / si + k[j],
                    Reg::Slope => slope,
                    Reg::Resi => {
                        let icpt = (sy - slope * si) / n;
                        (xr[j] - k[j]) - (icpt + slope * dn)
                    }
                    Reg::Rsquare => {
                        let syy_c = n * syy - sy * sy;
                        if syy_c <= 1e-12 * (n * syy).max(1e-300) {
                            f64::NAN
                        } else {
                            sxy * sxy / (sxx * syy_c)
                        }
                    }
                });
            }
        }
    })
}

/// Rolling max (or min) over full windows, or days since it (`arg`; ties: the earliest),
/// NaN if the window has a NaN: van Herk / Gil-Werman. Rows are cut into blocks of `d`;
/// a window spans the tail of one block and the head of the next, so its extreme is the
/// better of (suffix extreme at its start, prefix extreme at its end): a few branch-free
/// comparisons per cell whatever `d`, on contiguous rows (vectorised).
pub fn extreme(x: &[f64], nd: usize, na: usize, d: usize, want_max: bool, arg: bool) -> Vec<f64> {
    if arg {
        extreme_of::<true>(x, nd, na, d, want_max)
    } else {
        extreme_of::<false>(x, nd, na, d, want_max)
    }
}

/// [`extreme`], compiled twice so the value-only version carries no positions.
fn extreme_of<const ARG: bool>(
    x: &[f64],
    nd: usize,
    na: usize,
    d: usize,
    want_max: bool,
) -> Vec<f64> {
    // Is `b` strictly better than `a`? NaN beats everything, so it propagates.
    let better =
        move |a: f64, b: f64| b.is_nan() || (!a.is_nan() && if want_max { b > a } else { b < a });
    by_cols(x, None, nd, na, move |x, _, out| {
        let w = x.w;
        // Suffix extremes (value, day) of the current and the previous block.
        let mut suf = vec![0.0; 2 * d * w];
        let mut sufp = vec![0.0; 2 * d * w];
        let (mut pre, mut prep) = (vec![0.0; w], vec![0.0; w]);
        for k in 0..nd.div_ceil(d) {
            let (b0, b1) = (k * d, ((k + 1) * d).min(nd));
            let slot = (k % 2) * d * w;
            for t in (b0..b1).rev() {
                let r = &x.row(t)[..w];
                let at = slot + (t - b0) * w;
                let span = if t + 1 < b1 { 2 * w } else { w };
                let (cur, next) = suf[at..at + span].split_at_mut(w);
                let (curp, nextp) = sufp[at..at + span].split_at_mut(w);
                let tf = t as f64;
                if next.is_empty() {
                    cur.copy_from_slice(r);
                    if ARG {
                        curp.fill(tf);
                    }
                } else {
                    for j in 0..w {
                        // Today is earlier than the suffix: it wins ties.
                        let later = better(r[j], next[j]);
                        cur[j] = if later { next[j] } else { r[j] };
                        if ARG {
                            curp[j] = if later { nextp[j] } else { tf };
                        }
                    }
                }
            }
            for t in b0..b1 {
                let r = &x.row(t)[..w];
                let tf = t as f64;
                if t == b0 {
                    pre.copy_from_slice(r);
                    if ARG {
                        prep.fill(tf);
                    }
                } else {
                    for j in 0..w {
                        let now = better(pre[j], r[j]);
                        pre[j] = if now { r[j] } else { pre[j] };
                        if ARG {
                            prep[j] = if now { tf } else { prep[j] };
                        }
                    }
                }
                let o = &mut out.row(t)[..w];
                if t + 1 < d {
                    o.fill(f64::NAN);
                    continue;
                }
                let s0 = t + 1 - d;
                let at = ((s0 / d) % 2) * d * w + (s0 % d) * w;
                let (s, sp) = (&suf[at..at + w], &sufp[at..at + w]);
                for j in 0..w {
                    // The suffix part is earlier than the prefix part.
                    let head = better(s[j], pre[j]);
                    let v = if head { pre[j] } else { s[j] };
                    let p = if head { prep[j] } else { sp[j] };
                    o[j] = if v.is_nan() {
                        f64::NAN
                    } else if ARG {
                        tf - p
                    } else {
                        v
                    };
                }
            }
        }
    })
}

/// Native `ts_rank` (full windows) for short windows: today's value counted against
/// each of the window's rows (`lt`, `eq`), row by row over contiguous runs, so the
/// compares vectorise; the window's rows stay in cache. O(d) per cell: on `full` it
/// beats the per-series kernel up to d ≈ 24 (d = 10: 54 vs 79 ms), where the caller
/// switches.
pub fn rank_by_count(x: &[f64], nd: usize, na: usize, d: usize) -> Vec<f64> {
    by_cols(x, None, nd, na, move |x, _, out| {
        let w = x.w;
        let (mut lt, mut eq, mut bad) = (vec![0.0; w], vec![0.0; w], vec![0.0; w]);
        for t in 0..nd {
            let o = &mut out.row(t)[..w];
            if t + 1 < d {
                o.fill(f64::NAN);
                continue;
            }
            let r = &x.row(t)[..w];
            lt.fill(0.0);
            eq.fill(0.0);
            bad.fill(0.0);
            for u in t + 1 - d..=t {
                let q = &x.row(u)[..w];
                for j in 0..w {
                    lt[j] += if q[j] < r[j] { 1.0 } else { 0.0 };
                    eq[j] += if q[j] == r[j] { 1.0 } else { 0.0 };
                    bad[j] += if q[j].is_nan() { 1.0 } else { 0.0 };
                }
            }
            for j in 0..w {
                let rank = (lt[j] + (eq[j] + 1.0) / 2.0) / d as f64;
                o[j] = if bad[j] > 0.0 { f64::NAN } else { rank };
            }
        }
    })
}
