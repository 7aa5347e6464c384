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
//! exactly every `d` days (pairs: every max(`d`, 32)) and at once when a huge value
//! leaves the window. A window is
//! valid when it holds at least `minp` values (native: `minp = d`, every value present;
//! Qlib: `minp = 1`, NaNs skipped). A window whose values are all equal has variance
//! exactly 0 (as pandas), detected by counting consecutive equal values.

use rayon::prelude::*;

use super::{SharedOut, buf, finite_or_nan};

/// Target assets per task: long contiguous runs of each row, so the hardware
/// prefetcher keeps streaming. Wider beats cache-sized: chunks sized so the van Herk
/// suffix arrays stay in L2 (200–500 assets) made `ts_mean` 30 % slower on `full`
/// (issue 26), the short row runs costing more than the L3 hits they saved.
const CW: usize = 2048;

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
                // Separate simple loops (no call, no per-cell branch on the block
                // geometry): each one vectorises; fused, the loop stayed scalar.
                for j in 0..w {
                    let v = r[j];
                    let ok = !v.is_nan();
                    let (s, e) = two_sum(pre[j] * keep, if ok { v } else { 0.0 });
                    pre[j] = s;
                    prec[j] = prec[j] * keep + e;
                    pren[j] = pren[j] * keep + if ok { 1.0 } else { 0.0 };
                }
                for j in 0..w {
                    equal_run(r[j], &mut run[j], &mut last[j]);
                }
                let o = &mut out.row(t)[..w];
                let emit = |ts: f64, tc: f64, tn: f64, j: usize| {
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
                    if n < need { f64::NAN } else { v }
                };
                match tail_row(t, d).map(|row| ((k + 1) % 2) * d * w + row * w) {
                    Some(at) => {
                        let (ts, tc) = (&suf[at..at + w], &sufc[at..at + w]);
                        let tn = &sufn[at..at + w];
                        for j in 0..w {
                            o[j] = emit(ts[j], tc[j], tn[j], j);
                        }
                    }
                    None => {
                        for j in 0..w {
                            o[j] = emit(0.0, 0.0, 0.0, j);
                        }
                    }
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

/// Running sums of [`pair`] and [`linreg`] are recomputed from the window at least this
/// often (every `d` rows when `d` is longer): bounded drift at a small fraction of a
/// pass.
const REFRESH: usize = 32;

/// Sums whose Σa² exceeds this multiple of n·variance (4 of 16 digits lost to the
/// mean's distance from the shift) are re-shifted and recomputed.
const DRIFT: f64 = 1e4;

/// A defined, non-constant window whose sums are dominated by the distance of its mean
/// from the shift (n·Σa² ≫ n²·variance): its variance keeps few exact digits.
#[inline(always)]
fn drifted(defined: bool, nxx: f64, vx: f64, nyy: f64, vy: f64) -> bool {
    defined & ((nxx > DRIFT * vx) | (nyy > DRIFT * vy))
}

/// The lanes (pushed to `redo`) where the values that just left the window — one row
/// of each of the `series` (values, shift, Σ of squared shifted values after the
/// removal), all present — were large enough in one series to cancel digits
/// ([`CANCEL`]) of a window that is not empty (`cnt` > 0): the test of
/// [`pair_update`] and [`lin_leave`], lane by lane. Branch-free flags first (bit 1:
/// present and non-empty, bit 0: cancelled), so the loops vectorise, then a scan.
fn cancelled(
    series: &[(&[f64], &Vec<f64>, &Vec<f64>)],
    cnt: &[f64],
    flags: &mut Vec<u8>,
    redo: &mut Vec<usize>,
) {
    let w = cnt.len();
    flags.clear();
    flags.extend(cnt.iter().map(|&c| ((c > 0.0) as u8) << 1));
    for &(v, k, ss) in series {
        let (v, k, ss, f) = (&v[..w], &k[..w], &ss[..w], &mut flags[..w]);
        for j in 0..w {
            let y = v[j] - k[j];
            let gone = (v[j].is_nan() as u8) << 1;
            f[j] = (f[j] & !gone) | (y * y > CANCEL * ss[j]) as u8;
        }
    }
    redo.extend(flags.iter().enumerate().filter(|p| *p.1 == 3).map(|p| p.0));
}

/// Running state of [`pair`] for one chunk of columns, one slot per column; counts are
/// f64 so every loop runs on f64 lanes only (the compiler vectorises them).
struct PairSums {
    cnt: Vec<f64>,
    kx: Vec<f64>,
    ky: Vec<f64>,
    /// Σa, Σb, Σab, Σa², Σb² of the shifted values a = x − kx, b = y − ky.
    s: [Vec<f64>; 5],
    runx: Vec<f64>,
    runy: Vec<f64>,
    lastx: Vec<f64>,
    lasty: Vec<f64>,
}

impl PairSums {
    fn new(w: usize) -> PairSums {
        PairSums {
            cnt: vec![0.0; w],
            kx: vec![0.0; w],
            ky: vec![0.0; w],
            s: std::array::from_fn(|_| vec![0.0; w]),
            runx: vec![0.0; w],
            runy: vec![0.0; w],
            lastx: vec![f64::NAN; w],
            lasty: vec![f64::NAN; w],
        }
    }

    /// Add (`sign` = 1) or remove (−1) one row's valid pairs from the sums. Returns
    /// whether a removed value was large enough to cancel digits.
    #[inline(always)]
    fn update(&mut self, xr: &[f64], yr: &[f64], sign: f64) -> bool {
        let [s0, s1, s2, s3, s4] = &mut self.s;
        let (kx, ky, cnt) = (&self.kx, &self.ky, &mut self.cnt);
        pair_update(xr, yr, kx, ky, cnt, s0, s1, s2, s3, s4, sign) && sign < 0.0
    }

    /// Today's row in, and the window's value out: an empty window takes today's pair as
    /// its shift and restarts its sums from zero (they hold only rounding residue), the
    /// runs of equal values advance, today's pair is added ([`PairSums::update`]) and
    /// the value written as [`PairSums::emit`] does — one loop over the row, the state
    /// read and written once (four passes before; same operations, same bits). Returns
    /// whether an asset's sums have [`drifted`].
    #[inline(always)]
    fn arrive_add_emit(
        &mut self,
        xr: &[f64],
        yr: &[f64],
        o: &mut [f64],
        need: f64,
        corr: bool,
    ) -> bool {
        let w = self.cnt.len();
        let [s0, s1, s2, s3, s4] = &mut self.s;
        let lanes = PairLanes {
            cnt: &mut self.cnt[..w],
            kx: &mut self.kx[..w],
            ky: &mut self.ky[..w],
            s: [
                &mut s0[..w],
                &mut s1[..w],
                &mut s2[..w],
                &mut s3[..w],
                &mut s4[..w],
            ],
            runx: &mut self.runx[..w],
            runy: &mut self.runy[..w],
            lastx: &mut self.lastx[..w],
            lasty: &mut self.lasty[..w],
        };
        if corr {
            pair_fused::<true>(xr, yr, lanes, o, need)
        } else {
            pair_fused::<false>(xr, yr, lanes, o, need)
        }
    }

    /// The window's covariance or correlation into `o`; returns whether an asset's
    /// sums have [`drifted`] far from their shift.
    #[inline(always)]
    fn emit(&self, o: &mut [f64], need: f64, corr: bool) -> bool {
        let (c, rx, ry) = (&self.cnt, &self.runx, &self.runy);
        if corr {
            pair_emit::<true>(o, c, rx, ry, &self.s, need)
        } else {
            pair_emit::<false>(o, c, rx, ry, &self.s, need)
        }
    }

    /// [`drifted`] for asset `j`.
    fn drifted_at(&self, j: usize, need: f64) -> bool {
        let n = self.cnt[j];
        let (nxx, nyy) = (n * self.s[3][j], n * self.s[4][j]);
        let vx = nxx - self.s[0][j] * self.s[0][j];
        let vy = nyy - self.s[1][j] * self.s[1][j];
        let constant = self.runx[j] >= n || self.runy[j] >= n;
        drifted(n >= need && !constant, nxx, vx, nyy, vy)
    }

    /// Recompute the sums of `cols` (all when `None`) exactly from the window's rows,
    /// re-shifted to today's pair where it has one.
    fn refresh(&mut self, x: Cols, y: Cols, t: usize, d: usize, cols: Option<&[usize]>) {
        let (xr, yr) = (x.row(t), y.row(t));
        let lo = (t + 1).saturating_sub(d);
        match cols {
            None => {
                let w = self.cnt.len();
                for j in 0..w {
                    let ok = !(xr[j].is_nan() || yr[j].is_nan());
                    self.kx[j] = if ok { xr[j] } else { self.kx[j] };
                    self.ky[j] = if ok { yr[j] } else { self.ky[j] };
                }
                for v in self.s.iter_mut() {
                    v.fill(0.0);
                }
                self.cnt.fill(0.0);
                for u in lo..=t {
                    self.update(x.row(u), y.row(u), 1.0);
                }
            }
            Some(cols) => {
                for &j in cols {
                    if !(xr[j].is_nan() || yr[j].is_nan()) {
                        self.kx[j] = xr[j];
                        self.ky[j] = yr[j];
                    }
                    let mut acc = [0.0; 5];
                    for u in lo..=t {
                        let (a, b) = (x.row(u)[j], y.row(u)[j]);
                        if !a.is_nan() && !b.is_nan() {
                            let (a, b) = (a - self.kx[j], b - self.ky[j]);
                            acc[0] += a;
                            acc[1] += b;
                            acc[2] += a * b;
                            acc[3] += a * a;
                            acc[4] += b * b;
                        }
                    }
                    for (v, a) in self.s.iter_mut().zip(acc) {
                        v[j] = a;
                    }
                }
            }
        }
    }
}

// The lane loops of [`PairSums`] are free functions so that every buffer they write is
// its own `&mut` argument: the compiler then knows the buffers do not overlap and
// vectorises the loops (inside one method, through `self`, it did not and ran them one
// lane at a time). `|` and `&` on bools keep the loops free of branches.

#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn pair_update(
    xr: &[f64],
    yr: &[f64],
    kx: &[f64],
    ky: &[f64],
    cnt: &mut [f64],
    s0: &mut [f64],
    s1: &mut [f64],
    s2: &mut [f64],
    s3: &mut [f64],
    s4: &mut [f64],
    sign: f64,
) -> bool {
    let w = cnt.len();
    let (xr, yr, kx, ky) = (&xr[..w], &yr[..w], &kx[..w], &ky[..w]);
    let (s0, s1, s2, s3, s4) = (
        &mut s0[..w],
        &mut s1[..w],
        &mut s2[..w],
        &mut s3[..w],
        &mut s4[..w],
    );
    let mut cancel = false;
    for j in 0..w {
        let ok = !(xr[j].is_nan() | yr[j].is_nan());
        let a = if ok { xr[j] - kx[j] } else { 0.0 };
        let b = if ok { yr[j] - ky[j] } else { 0.0 };
        cnt[j] += if ok { sign } else { 0.0 };
        s0[j] += sign * a;
        s1[j] += sign * b;
        s2[j] += sign * (a * b);
        s3[j] += sign * (a * a);
        s4[j] += sign * (b * b);
        cancel |= ok & ((a * a > CANCEL * s3[j]) | (b * b > CANCEL * s4[j])) & (cnt[j] > 0.0);
    }
    cancel
}

#[inline(never)]
fn pair_emit<const CORR: bool>(
    o: &mut [f64],
    cnt: &[f64],
    runx: &[f64],
    runy: &[f64],
    s: &[Vec<f64>; 5],
    need: f64,
) -> bool {
    let w = cnt.len();
    let (o, runx, runy) = (&mut o[..w], &runx[..w], &runy[..w]);
    let [s0, s1, s2, s3, s4] = s;
    let (s0, s1, s2, s3, s4) = (&s0[..w], &s1[..w], &s2[..w], &s3[..w], &s4[..w]);
    let mut drift = false;
    for j in 0..w {
        let sums = [s0[j], s1[j], s2[j], s3[j], s4[j]];
        let (v, d) = pair_value::<CORR>(cnt[j], sums, runx[j], runy[j], need);
        o[j] = v;
        drift |= d;
    }
    drift
}

/// One asset's window covariance or correlation (`CORR`) from its count `n`, shifted
/// sums `s` (Σa, Σb, Σab, Σa², Σb²) and runs of equal values, and whether its sums have
/// [`drifted`].
#[inline(always)]
fn pair_value<const CORR: bool>(
    n: f64,
    s: [f64; 5],
    runx: f64,
    runy: f64,
    need: f64,
) -> (f64, bool) {
    let constant = (runx >= n) | (runy >= n);
    let sxy = n * s[2] - s[0] * s[1];
    let (nxx, nyy) = (n * s[3], n * s[4]);
    let vx = nxx - s[0] * s[0];
    let vy = nyy - s[1] * s[1];
    let drift = drifted((n >= need) & !constant, nxx, vx, nyy, vy);
    let v = if CORR {
        // No floor on the bounds: with a floor like 1e-300 the empty (NaN) lanes
        // computed denormals, which are ~100× slower on x86.
        let flat = constant | (vx <= 1e-12 * nxx) | (vy <= 1e-12 * nyy);
        let r = (sxy / (vx * vy).sqrt()).clamp(-1.0, 1.0);
        if flat { f64::NAN } else { r }
    } else {
        let c = sxy / (n * (n - 1.0));
        if constant { 0.0 } else { c }
    };
    let v = if v.is_finite() { v } else { f64::NAN };
    (if n < need { f64::NAN } else { v }, drift)
}

/// The per-asset state of [`PairSums`] as separate `&mut` slices (for [`pair_fused`]).
struct PairLanes<'a> {
    cnt: &'a mut [f64],
    kx: &'a mut [f64],
    ky: &'a mut [f64],
    s: [&'a mut [f64]; 5],
    runx: &'a mut [f64],
    runy: &'a mut [f64],
    lastx: &'a mut [f64],
    lasty: &'a mut [f64],
}

/// [`PairSums::arrive_add_emit`]'s loop.
#[inline(never)]
fn pair_fused<const CORR: bool>(
    xr: &[f64],
    yr: &[f64],
    l: PairLanes,
    o: &mut [f64],
    need: f64,
) -> bool {
    let w = l.cnt.len();
    let (xr, yr, o) = (&xr[..w], &yr[..w], &mut o[..w]);
    let PairLanes {
        cnt,
        kx,
        ky,
        s: [s0, s1, s2, s3, s4],
        runx,
        runy,
        lastx,
        lasty,
    } = l;
    let (kx, ky, runx, runy) = (&mut kx[..w], &mut ky[..w], &mut runx[..w], &mut runy[..w]);
    let (lastx, lasty) = (&mut lastx[..w], &mut lasty[..w]);
    let (s0, s1, s2) = (&mut s0[..w], &mut s1[..w], &mut s2[..w]);
    let (s3, s4) = (&mut s3[..w], &mut s4[..w]);
    let mut drift = false;
    for j in 0..w {
        let (x, y) = (xr[j], yr[j]);
        let ok = !(x.is_nan() | y.is_nan());
        // arrive: an empty window restarts from today's pair
        let empty = cnt[j] == 0.0;
        let reset = ok & empty;
        kx[j] = if reset { x } else { kx[j] };
        ky[j] = if reset { y } else { ky[j] };
        let z = |v: f64| if empty { 0.0 } else { v };
        let (mut t0, mut t1, mut t2, mut t3, mut t4) =
            (z(s0[j]), z(s1[j]), z(s2[j]), z(s3[j]), z(s4[j]));
        let rx = if x == lastx[j] { runx[j] + 1.0 } else { 1.0 };
        let ry = if y == lasty[j] { runy[j] + 1.0 } else { 1.0 };
        runx[j] = if ok { rx } else { runx[j] };
        runy[j] = if ok { ry } else { runy[j] };
        lastx[j] = if ok { x } else { lastx[j] };
        lasty[j] = if ok { y } else { lasty[j] };
        // add today's pair
        let a = if ok { x - kx[j] } else { 0.0 };
        let b = if ok { y - ky[j] } else { 0.0 };
        let n = cnt[j] + if ok { 1.0 } else { 0.0 };
        cnt[j] = n;
        t0 += 1.0 * a;
        t1 += 1.0 * b;
        t2 += 1.0 * (a * b);
        t3 += 1.0 * (a * a);
        t4 += 1.0 * (b * b);
        (s0[j], s1[j], s2[j], s3[j], s4[j]) = (t0, t1, t2, t3, t4);
        let (v, d) = pair_value::<CORR>(n, [t0, t1, t2, t3, t4], runx[j], runy[j], need);
        o[j] = v;
        drift |= d;
    }
    drift
}

/// Rolling covariance (ddof 1) or Pearson correlation over the days where both series
/// have a value; correlation is NaN when either side is (nearly) constant. Running
/// sums of shifted values, updated row by row with branch-free loops; an asset whose
/// leaving value was huge is recomputed at once, all of them every
/// max(`d`, [`REFRESH`]) rows.
pub fn pair(x: &[f64], y: &[f64], nd: usize, na: usize, win: Win, corr: bool) -> Vec<f64> {
    let Win { d, minp } = win;
    let need = minp.max(2) as f64;
    let every = d.max(REFRESH);
    by_cols(x, Some(y), nd, na, |xc, yc, out| {
        let yc = yc.expect("pair has two inputs");
        let w = xc.w;
        let mut st = PairSums::new(w);
        let (mut redo, mut flags) = (Vec::new(), Vec::new());
        for t in 0..nd {
            redo.clear();
            if t >= d && st.update(xc.row(t - d), yc.row(t - d), -1.0) {
                // Which assets' leaving value cancelled digits (one in a chunk is
                // enough to get here, every few rows on volume-like series).
                let (xo, yo) = (xc.row(t - d), yc.row(t - d));
                let lanes = [(xo, &st.kx, &st.s[3]), (yo, &st.ky, &st.s[4])];
                cancelled(&lanes, &st.cnt, &mut flags, &mut redo);
            }
            let (xr, yr) = (xc.row(t), yc.row(t));
            let o = &mut out.row(t)[..w];
            // Today's pair in, and the window's value out, in one pass over the row;
            // where sums are then recomputed, the value is written again.
            let mut drift = st.arrive_add_emit(xr, yr, o, need, corr);
            if (t + 1) % every == 0 {
                st.refresh(xc, yc, t, d, None);
                drift = st.emit(o, need, corr);
            } else if !redo.is_empty() {
                st.refresh(xc, yc, t, d, Some(&redo));
                drift = st.emit(o, need, corr);
            }
            // Sums far from their shift lose digits to cancellation (a trending series
            // drifts from the value it was shifted by): those assets are re-shifted to
            // today's pair and recomputed, then written again.
            if drift {
                redo.clear();
                for j in 0..w {
                    if st.drifted_at(j, need) {
                        redo.push(j);
                    }
                }
                st.refresh(xc, yc, t, d, Some(&redo));
                st.emit(o, need, corr);
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
/// window slides (every position drops by one), exactly recomputed every max(`d`, 32)
/// days and whenever cancellation threatens (a huge value leaving, values far from the
/// shift).
pub fn linreg(x: &[f64], nd: usize, na: usize, win: Win, what: Reg) -> Vec<f64> {
    let Win { d, minp } = win;
    let need = minp.max(if what == Reg::Decay { 1 } else { 2 }) as f64;
    let every = d.max(REFRESH);
    by_cols(x, None, nd, na, |x, _, out| {
        let w = x.w;
        let mut st = LinSums {
            k: vec![0.0; w],
            cnt: vec![0.0; w],
            s: std::array::from_fn(|_| vec![0.0; w]),
        };
        let (mut redo, mut flags) = (Vec::new(), Vec::new());
        for t in 0..nd {
            redo.clear();
            {
                let [si, sii, sy, siy, _] = &mut st.s;
                lin_slide(&st.cnt, si, sii, sy, siy);
            }
            if t >= d && st.leave(x.row(t - d)) {
                // Which assets' leaving value cancelled digits.
                cancelled(
                    &[(x.row(t - d), &st.k, &st.s[4])],
                    &st.cnt,
                    &mut flags,
                    &mut redo,
                );
            }
            let xr = x.row(t);
            st.arrive(xr, d as f64);
            if (t + 1) % every == 0 {
                st.refresh(x, t, d, None);
            } else if !redo.is_empty() {
                st.refresh(x, t, d, Some(&redo));
            }
            let o = &mut out.row(t)[..w];
            if lin_emit(o, xr, &st.k, &st.cnt, &st.s, need, d as f64, what) {
                // Sums far from their shift (a trending series): re-shift, recompute.
                redo.clear();
                for j in 0..w {
                    let (n, sy, syy) = (st.cnt[j], st.s[2][j], st.s[4][j]);
                    if lin_drifted(what, n >= need, n * syy, n * syy - sy * sy) {
                        redo.push(j);
                    }
                }
                st.refresh(x, t, d, Some(&redo));
                lin_emit(o, xr, &st.k, &st.cnt, &st.s, need, d as f64, what);
            }
        }
    })
}

/// Running state of [`linreg`] for one chunk of columns: the shift `k`, the count, and
/// Σi, Σi², Σy, Σiy, Σy² over present values (y = x − k, i = position 1..d).
struct LinSums {
    k: Vec<f64>,
    cnt: Vec<f64>,
    s: [Vec<f64>; 5],
}

impl LinSums {
    /// Remove the value leaving the window (position 0 after the slide, so only Σy and
    /// Σy² change). Returns whether it was large enough to cancel digits.
    fn leave(&mut self, xr: &[f64]) -> bool {
        let [_, _, sy, _, syy] = &mut self.s;
        lin_leave(xr, &self.k, &mut self.cnt, sy, syy)
    }

    /// Today's value at position `dn`; an empty window takes it as its shift.
    fn arrive(&mut self, xr: &[f64], dn: f64) {
        let [si, sii, sy, siy, syy] = &mut self.s;
        lin_add::<true>(xr, &mut self.k, &mut self.cnt, si, sii, sy, siy, syy, dn);
    }

    /// Recompute the sums of `cols` (all when `None`) exactly from the window's rows,
    /// re-shifted to today's value where there is one.
    fn refresh(&mut self, x: Cols, t: usize, d: usize, cols: Option<&[usize]>) {
        let xr = x.row(t);
        let lo = (t + 1).saturating_sub(d);
        let Some(cols) = cols else {
            for (k, v) in self.k.iter_mut().zip(xr) {
                *k = if v.is_nan() { *k } else { *v };
            }
            self.cnt.fill(0.0);
            for v in self.s.iter_mut() {
                v.fill(0.0);
            }
            let [si, sii, sy, siy, syy] = &mut self.s;
            for u in lo..=t {
                let i = (d - (t - u)) as f64;
                lin_add::<false>(
                    x.row(u),
                    &mut self.k,
                    &mut self.cnt,
                    si,
                    sii,
                    sy,
                    siy,
                    syy,
                    i,
                );
            }
            return;
        };
        for &j in cols {
            if !xr[j].is_nan() {
                self.k[j] = xr[j];
            }
            let mut acc = [0.0; 5];
            // Positions: today is d, the window's oldest day is d - (t - u).
            for u in lo..=t {
                let v = x.row(u)[j];
                if !v.is_nan() {
                    let i = (d - (t - u)) as f64;
                    let y = v - self.k[j];
                    acc[0] += i;
                    acc[1] += i * i;
                    acc[2] += y;
                    acc[3] += i * y;
                    acc[4] += y * y;
                }
            }
            for (v, a) in self.s.iter_mut().zip(acc) {
                v[j] = a;
            }
        }
    }
}

// As for `pair`: free functions, one `&mut` argument per written buffer, so the loops
// vectorise.

/// Every position drops by one as the window slides.
#[inline(never)]
fn lin_slide(cnt: &[f64], si: &mut [f64], sii: &mut [f64], sy: &[f64], siy: &mut [f64]) {
    let w = cnt.len();
    let (si, sii, sy, siy) = (&mut si[..w], &mut sii[..w], &sy[..w], &mut siy[..w]);
    for j in 0..w {
        let c = cnt[j];
        sii[j] += c - 2.0 * si[j];
        si[j] -= c;
        siy[j] -= sy[j];
    }
}

#[inline(never)]
fn lin_leave(xr: &[f64], k: &[f64], cnt: &mut [f64], sy: &mut [f64], syy: &mut [f64]) -> bool {
    let w = cnt.len();
    let (xr, k, sy, syy) = (&xr[..w], &k[..w], &mut sy[..w], &mut syy[..w]);
    let mut cancel = false;
    for j in 0..w {
        let ok = !xr[j].is_nan();
        let y = if ok { xr[j] - k[j] } else { 0.0 };
        cnt[j] -= if ok { 1.0 } else { 0.0 };
        sy[j] -= y;
        syy[j] -= y * y;
        cancel |= ok & (y * y > CANCEL * syy[j]) & (cnt[j] > 0.0);
    }
    cancel
}

/// Add a row's present values at position `dn`; with `RESET`, an empty window first
/// takes its value as the shift and restarts its sums from zero (they hold only
/// rounding residue).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn lin_add<const RESET: bool>(
    xr: &[f64],
    k: &mut [f64],
    cnt: &mut [f64],
    si: &mut [f64],
    sii: &mut [f64],
    sy: &mut [f64],
    siy: &mut [f64],
    syy: &mut [f64],
    dn: f64,
) {
    let w = cnt.len();
    let (xr, k) = (&xr[..w], &mut k[..w]);
    let (si, sii, sy, siy, syy) = (
        &mut si[..w],
        &mut sii[..w],
        &mut sy[..w],
        &mut siy[..w],
        &mut syy[..w],
    );
    for j in 0..w {
        let v = xr[j];
        let ok = !v.is_nan();
        let empty = RESET & (cnt[j] == 0.0);
        k[j] = if ok & empty { v } else { k[j] };
        let keep = if empty { 0.0 } else { 1.0 };
        let (one, y) = if ok { (1.0, v - k[j]) } else { (0.0, 0.0) };
        cnt[j] += one;
        si[j] = si[j] * keep + one * dn;
        sii[j] = sii[j] * keep + one * dn * dn;
        sy[j] = sy[j] * keep + y;
        siy[j] = siy[j] * keep + dn * y;
        syy[j] = syy[j] * keep + y * y;
    }
}

/// Slope, R² and residual lose digits when the values sit far from their shift; the
/// position-weighted mean does not (nothing cancels).
#[inline(always)]
fn lin_drifted(what: Reg, defined: bool, nyy: f64, vy: f64) -> bool {
    (what != Reg::Decay) & defined & (nyy > DRIFT * vy)
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn lin_emit(
    o: &mut [f64],
    xr: &[f64],
    k: &[f64],
    cnt: &[f64],
    s: &[Vec<f64>; 5],
    need: f64,
    dn: f64,
    what: Reg,
) -> bool {
    let w = cnt.len();
    let (o, xr, k) = (&mut o[..w], &xr[..w], &k[..w]);
    let [si, sii, sy, siy, syy] = s;
    let (si, sii, sy, siy, syy) = (&si[..w], &sii[..w], &sy[..w], &siy[..w], &syy[..w]);
    let mut drift = false;
    // One loop per statistic, so each is a plain vectorisable loop.
    match what {
        Reg::Decay => {
            for j in 0..w {
                let v = siy[j] / si[j] + k[j];
                let v = if v.is_finite() { v } else { f64::NAN };
                o[j] = if cnt[j] < need { f64::NAN } else { v };
            }
        }
        _ => {
            for j in 0..w {
                let n = cnt[j];
                let sxx = n * sii[j] - si[j] * si[j];
                let sxy = n * siy[j] - si[j] * sy[j];
                let slope = sxy / sxx;
                let (nyy, vy) = (n * syy[j], n * syy[j] - sy[j] * sy[j]);
                drift |= lin_drifted(what, n >= need, nyy, vy);
                let v = match what {
                    Reg::Slope => slope,
                    Reg::Resi => {
                        let icpt = (sy[j] - slope * si[j]) / n;
                        (xr[j] - k[j]) - (icpt + slope * dn)
                    }
                    // No floor on the bound (a floor like 1e-300 made denormals in
                    // the empty lanes, ~100× slower on x86).
                    _ => {
                        let r2 = sxy * sxy / (sxx * vy);
                        if vy <= 1e-12 * nyy { f64::NAN } else { r2 }
                    }
                };
                let v = if v.is_finite() { v } else { f64::NAN };
                o[j] = if n < need { f64::NAN } else { v };
            }
        }
    }
    drift
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
/// each of the window's rows (below, equal), row by row over contiguous runs, so the
/// compares vectorise; the window's rows stay in cache. O(d) per cell: on `full` it
/// beats the per-series kernel up to d ≈ 24 (d = 10: 54 vs 79 ms), where the caller
/// switches.
pub fn rank_by_count(x: &[f64], nd: usize, na: usize, d: usize) -> Vec<f64> {
    by_cols(x, None, nd, na, move |x, _, out| {
        let w = x.w;
        // 2·(values below today) + (values equal, today included): the average-tie rank
        // is (that + 1) / 2, exactly `below + (equal + 1) / 2` (one counter, not two).
        let mut acc = vec![0.0; w];
        // NaNs in the window, kept as a running count (not re-counted per window).
        let mut bad = vec![0.0; w];
        let nan = |v: f64| if v.is_nan() { 1.0 } else { 0.0 };
        for t in 0..nd {
            for (b, v) in bad.iter_mut().zip(x.row(t)) {
                *b += nan(*v);
            }
            if t >= d {
                for (b, v) in bad.iter_mut().zip(x.row(t - d)) {
                    *b -= nan(*v);
                }
            }
            let o = &mut out.row(t)[..w];
            if t + 1 < d {
                o.fill(f64::NAN);
                continue;
            }
            let r = &x.row(t)[..w];
            acc.fill(0.0);
            for u in t + 1 - d..=t {
                let q = &x.row(u)[..w];
                for j in 0..w {
                    let below = if q[j] < r[j] { 2.0 } else { 0.0 };
                    let equal = if q[j] == r[j] { 1.0 } else { 0.0 };
                    acc[j] += below + equal;
                }
            }
            for j in 0..w {
                let rank = ((acc[j] + 1.0) / 2.0) / d as f64;
                o[j] = if bad[j] > 0.0 { f64::NAN } else { rank };
            }
        }
    })
}
