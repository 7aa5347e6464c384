//! Kernels on dense `[n_dates][n_assets]` f64 matrices.
//!
//! - [`elementwise`]: cell by cell, with scalar broadcasting.
//! - [`rolling`]: along time, row by row with O(1) state per asset (lags, sums,
//!   moments, correlations, regressions on time): streaming, no transpose.
//! - [`ts`]: along time, per asset series (min/max, ranks, quantiles, products, EMA):
//!   assets gathered in blocks into contiguous buffers, each block a rayon task.
//! - [`time_series`] picks the kernel of a time-series op by name.
//! - [`cs`]: per date across the universe, one rayon task per chunk of dates, with
//!   scratch buffers reused across dates (no allocation per date).
//!
//! Numerical rules (docs/expression_language.md): a rolling window is full only when all d values
//! are present (min_periods = d); ddof = 1; division by zero, log/sqrt of a negative,
//! zero-variance correlations give NaN; no kernel ever returns ±inf. The `q_` family
//! (the Qlib dialect) uses partial windows instead (min_periods = 1), see [`time_series`].

pub mod buf;
pub mod cs;
pub mod elementwise;
pub mod rolling;
pub mod ts;

/// Replace ±inf by NaN (the "never inf" rule), in place.
#[inline]
pub fn finite_or_nan(v: f64) -> f64 {
    if v.is_finite() { v } else { f64::NAN }
}

/// A raw pointer that rayon tasks may share to write *disjoint* parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub *mut f64);
// SAFETY: every user writes only indices no other task writes (disjoint asset columns
// or date rows), and the buffer outlives the parallel section.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// The first and last day (inclusive) each asset has a value: its listed span.
pub type Span = [(usize, usize)];

/// Each asset's span from a `[n_dates][n_assets]` field (e.g. `close`); an asset with no
/// value gets an empty span `(n_dates, 0)`.
pub fn spans(field: &[f64], nd: usize, na: usize) -> Vec<(usize, usize)> {
    let mut s = vec![(nd, 0usize); na];
    for t in 0..nd {
        for (a, v) in field[t * na..(t + 1) * na].iter().enumerate() {
            if !v.is_nan() {
                s[a].0 = s[a].0.min(t);
                s[a].1 = t;
            }
        }
    }
    s
}

/// NaN outside each asset's span. Rows in parallel: every `q_` operator clips its input
/// and its output, and serially this pass was most of their time on two cores.
pub fn clip_to_span(v: &mut [f64], span: &Span, na: usize) {
    use rayon::prelude::*;
    v.par_chunks_mut(na).enumerate().for_each(|(t, row)| {
        for (x, &(first, last)) in row.iter_mut().zip(span) {
            if t < first || t > last {
                *x = f64::NAN;
            }
        }
    });
}

/// Evaluate time-series op `name` with window `d` (and scalar `q` where it takes one)
/// on `x` (and `y` for pairwise ops). Qlib's `q_` ops see each asset only within its
/// listed `span`, as Qlib stores an instrument from listing to delisting: the input is
/// clipped to the span, windows are partial (min_periods = 1), and the output is NaN
/// outside it. `None` if `name` is not a time-series op.
#[allow(clippy::too_many_arguments)]
pub fn time_series(
    name: &str,
    x: &[f64],
    y: Option<&[f64]>,
    nd: usize,
    na: usize,
    d: usize,
    q: f64,
    span: &dyn Fn() -> std::sync::Arc<Vec<(usize, usize)>>,
) -> Option<Vec<f64>> {
    use rolling::{Reg, Stat, Win};
    let (base, qlib) = match name.strip_prefix("q_") {
        Some(b) => (b, true),
        None => (name.strip_prefix("ts_")?, false),
    };
    let win = if qlib {
        Win { d, minp: 1 }
    } else {
        Win::full(d)
    };
    let sp = if qlib { Some(span()) } else { None };
    let clipped: Option<(Vec<f64>, Option<Vec<f64>>)> = sp.as_ref().map(|sp| {
        // Copy and clip in one parallel pass over the rows.
        let clip = |m: &[f64]| {
            use rayon::prelude::*;
            let mut c = buf::take(m.len());
            c.par_chunks_mut(na)
                .zip(m.par_chunks(na))
                .enumerate()
                .for_each(|(t, (o, x))| {
                    for ((o, &x), &(first, last)) in o.iter_mut().zip(x).zip(sp.iter()) {
                        *o = if t < first || t > last { f64::NAN } else { x };
                    }
                });
            c
        };
        (clip(x), y.map(clip))
    });
    let (x, y) = match &clipped {
        Some((cx, cy)) => (cx.as_slice(), cy.as_deref()),
        None => (x, y),
    };
    let moments = |s| Some(rolling::moments(x, nd, na, win, s));
    let mut out = match base {
        "delay" => Some(rolling::shift(x, nd, na, d, false)),
        "delta" => Some(rolling::shift(x, nd, na, d, true)),
        "sum" => moments(Stat::Sum),
        "mean" => moments(Stat::Mean),
        "var" => moments(Stat::Var),
        "std" => moments(Stat::Std),
        "zscore" => moments(Stat::ZScore),
        "skew" => moments(Stat::Skew),
        "kurt" => moments(Stat::Kurt),
        "count" => Some(rolling::count(x, nd, na, win, qlib)),
        "corr" | "cov" => {
            let y = y?;
            let mut r = rolling::pair(x, y, nd, na, win, base == "corr");
            if qlib && base == "corr" {
                // Qlib: NaN where either side's own rolling std is within 2e-5 of 0.
                for side in [x, y] {
                    let sd = rolling::moments(side, nd, na, win, Stat::Std);
                    for (r, s) in r.iter_mut().zip(&sd) {
                        if s.abs() <= 2e-5 {
                            *r = f64::NAN;
                        }
                    }
                    buf::give(sd);
                }
            }
            Some(r)
        }
        "max" if !qlib => Some(rolling::extreme(x, nd, na, d, true, false)),
        "min" if !qlib => Some(rolling::extreme(x, nd, na, d, false, false)),
        "rank" if !qlib && d <= 24 => Some(rolling::rank_by_count(x, nd, na, d)),
        "argmax" => Some(rolling::extreme(x, nd, na, d, true, true)),
        "argmin" => Some(rolling::extreme(x, nd, na, d, false, true)),
        "slope" => Some(rolling::linreg(x, nd, na, win, Reg::Slope)),
        "rsquare" => {
            let mut r = rolling::linreg(x, nd, na, win, Reg::Rsquare);
            if qlib {
                // Qlib: NaN where the window's rolling std is within 2e-5 of 0.
                let sd = rolling::moments(x, nd, na, win, Stat::Std);
                for (r, s) in r.iter_mut().zip(&sd) {
                    if s.abs() <= 2e-5 {
                        *r = f64::NAN;
                    }
                }
                buf::give(sd);
            }
            Some(r)
        }
        "resi" => Some(rolling::linreg(x, nd, na, win, Reg::Resi)),
        "decay_linear" => Some(rolling::linreg(x, nd, na, win, Reg::Decay)),
        "quantile" => Some(ts::apply(x, None, nd, na, |s, _, o| {
            ts::quantile(s, win, q, o)
        })),
        _ => {
            let k = ts::series(name)?;
            Some(ts::apply(x, None, nd, na, |s, _, o| k(s, win, o)))
        }
    };
    if let (Some(sp), Some(o)) = (&sp, out.as_mut()) {
        clip_to_span(o, sp, na);
    }
    if let Some((cx, cy)) = clipped {
        buf::give(cx);
        if let Some(c) = cy {
            buf::give(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::rolling::{Reg, Stat, Win, linreg, moments, pair};
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

    /// Partial windows: the window's non-NaN values, if there are at least `minp`.
    fn naive_partial(x: &[f64], d: usize, minp: usize, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        (0..x.len())
            .map(|t| {
                let w: Vec<f64> = x[(t + 1).saturating_sub(d)..=t]
                    .iter()
                    .copied()
                    .filter(|v| !v.is_nan())
                    .collect();
                if w.len() < minp { f64::NAN } else { f(&w) }
            })
            .collect()
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!(
                (p.is_nan() && q.is_nan()) || (p - q).abs() <= tol * (1.0 + q.abs()),
                "at {i}: {p} vs {q}"
            );
        }
    }

    fn std_of(w: &[f64]) -> f64 {
        let m = w.iter().sum::<f64>() / w.len() as f64;
        (w.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (w.len() - 1) as f64).sqrt()
    }

    /// A single asset is a `[n_dates][1]` matrix: the series itself.
    fn series(x: &[f64], f: impl Fn(&[f64], usize, usize) -> Vec<f64>) -> Vec<f64> {
        f(x, x.len(), 1)
    }

    fn price_like() -> Vec<f64> {
        let mut x: Vec<f64> = (0..2500)
            .map(|i| 1000.0 + (i as f64 * 0.37).sin() * 3.0 + (i % 7) as f64 * 0.01)
            .collect();
        x[100] = f64::NAN;
        x[1500] = f64::NAN;
        x
    }

    #[test]
    fn rolling_matches_naive_and_does_not_drift() {
        let x = price_like();
        let d = 20;
        let full = Win::full(d);
        let o = series(&x, |x, nd, na| moments(x, nd, na, full, Stat::Sum));
        close(&o, &naive(&x, d, |w| w.iter().sum()), 1e-13);
        let o = series(&x, |x, nd, na| moments(x, nd, na, full, Stat::Std));
        close(&o, &naive(&x, d, std_of), 1e-8);
        let mut o = vec![0.0; x.len()];
        ts::max(&x, full, &mut o);
        close(
            &o,
            &naive(&x, d, |w| w.iter().cloned().fold(f64::MIN, f64::max)),
            0.0,
        );
        ts::argmin(&x, full, &mut o);
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
        let mut o = series(&x, |x, nd, na| linreg(x, nd, na, full, Reg::Decay));
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
        ts::median(&x, Win::full(5), &mut o);
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
    fn partial_windows_skip_nans() {
        let mut x = price_like();
        for v in &mut x[..7] {
            *v = f64::NAN; // not listed yet
        }
        x[300] = f64::NAN;
        let (d, win) = (10, Win { d: 10, minp: 1 });
        let o = series(&x, |x, nd, na| moments(x, nd, na, win, Stat::Mean));
        close(
            &o,
            &naive_partial(&x, d, 1, |w| w.iter().sum::<f64>() / w.len() as f64),
            1e-13,
        );
        let o = series(&x, |x, nd, na| moments(x, nd, na, win, Stat::Std));
        close(&o, &naive_partial(&x, d, 2, std_of), 1e-8);
        let mut o = vec![0.0; x.len()];
        ts::quantile(&x, win, 0.8, &mut o);
        close(
            &o,
            &naive_partial(&x, d, 1, |w| {
                let mut s = w.to_vec();
                s.sort_by(f64::total_cmp);
                ts::quantile_sorted(&s, 0.8)
            }),
            0.0,
        );
        // Qlib's IdxMax: 1-based position from the window's oldest day on or after the
        // first value; at day 7 (first value) it is 1.
        ts::qlib_idxmax(&x, win, &mut o);
        assert_eq!(o[7], 1.0);
        assert!(o[6].is_nan());
        for t in 20..40 {
            let w = &x[t + 1 - d..=t];
            let (mut bi, mut bv) = (0, f64::MIN);
            for (i, v) in w.iter().enumerate() {
                if *v > bv {
                    bv = *v;
                    bi = i;
                }
            }
            assert_eq!(o[t], (bi + 1) as f64, "day {t}");
        }
    }

    #[test]
    fn constant_windows() {
        let x = vec![5.0; 50];
        let o = series(&x, |x, nd, na| moments(x, nd, na, Win::full(10), Stat::Std));
        assert_eq!(o[20], 0.0);
        let y: Vec<f64> = (0..50).map(|i| i as f64).collect();
        let o = pair(&x, &y, 50, 1, Win::full(10), true);
        assert!(o[20].is_nan());
        let o = series(&x, |x, nd, na| {
            moments(x, nd, na, Win::full(10), Stat::ZScore)
        });
        assert!(o[20].is_nan());
    }

    #[test]
    fn a_huge_value_leaving_the_window_leaves_no_trace() {
        let mut x: Vec<f64> = (0..40).map(|i| (i % 3 + 1) as f64).collect();
        x[0] = 1e15;
        let w = Win::full(3);
        let sd = series(&x, |x, nd, na| moments(x, nd, na, w, Stat::Std));
        close(&sd[3..], &naive(&x, 3, std_of)[3..], 1e-12);
        let sm = series(&x, |x, nd, na| moments(x, nd, na, w, Stat::Sum));
        close(&sm[3..], &naive(&x, 3, |w| w.iter().sum())[3..], 1e-15);
        let y: Vec<f64> = (0..40).map(|i| ((i * 7) % 5) as f64).collect();
        let c = pair(&x, &y, 40, 1, w, true);
        let c1 = pair(&x[1..], &y[1..], 39, 1, w, true);
        close(&c[4..], &c1[3..], 1e-12);
        let r = series(&x, |x, nd, na| linreg(x, nd, na, w, Reg::Slope));
        let r1 = series(&x[1..], |x, nd, na| linreg(x, nd, na, w, Reg::Slope));
        close(&r[4..], &r1[3..], 1e-12);
        // A constant window's mean is the value itself, exactly.
        let z = [5e8, 0.0, 0.0, 0.0, 0.0, 0.0];
        let m = series(&z, |x, nd, na| moments(x, nd, na, w, Stat::Mean));
        assert_eq!(m[5], 0.0);
    }

    #[test]
    fn many_assets_match_one_at_a_time() {
        // Row-wise kernels over 300 assets (more than one column chunk) equal the same
        // kernel run on each asset alone.
        let (nd, na) = (120, 300);
        let m: Vec<f64> = (0..nd * na)
            .map(|i| {
                let (t, a) = (i / na, i % na);
                if (t * 7 + a) % 53 == 0 {
                    f64::NAN
                } else {
                    ((t * 31 + a * 17) % 97) as f64 + a as f64
                }
            })
            .collect();
        let win = Win { d: 7, minp: 3 };
        let all = moments(&m, nd, na, win, Stat::Var);
        for d in [1, 2, 7, 13] {
            // Row-wise block extremes equal the per-series deque kernels (ties: earliest).
            type Series = fn(&[f64], Win, &mut [f64]);
            let cases: [(bool, bool, Series); 4] = [
                (true, false, ts::max),
                (false, false, ts::min),
                (true, true, ts::argmax),
                (false, true, ts::argmin),
            ];
            let rows = rolling::rank_by_count(&m, nd, na, d);
            for a in [0, 3, 150, 299] {
                let col: Vec<f64> = (0..nd).map(|t| m[t * na + a]).collect();
                let mut one = vec![0.0; nd];
                ts::rank(&col, Win::full(d), &mut one);
                close(
                    &(0..nd).map(|t| rows[t * na + a]).collect::<Vec<_>>(),
                    &one,
                    0.0,
                );
            }
            for (want_max, arg, k) in cases {
                let rows = rolling::extreme(&m, nd, na, d, want_max, arg);
                for a in [0, 3, 150, 299] {
                    let col: Vec<f64> = (0..nd).map(|t| m[t * na + a]).collect();
                    let mut one = vec![0.0; nd];
                    k(&col, Win::full(d), &mut one);
                    close(
                        &(0..nd).map(|t| rows[t * na + a]).collect::<Vec<_>>(),
                        &one,
                        0.0,
                    );
                }
            }
        }
        for a in [0, 1, 255, 256, 299] {
            let col: Vec<f64> = (0..nd).map(|t| m[t * na + a]).collect();
            let one = moments(&col, nd, 1, win, Stat::Var);
            let got: Vec<f64> = (0..nd).map(|t| all[t * na + a]).collect();
            close(&got, &one, 0.0);
        }
    }
}
