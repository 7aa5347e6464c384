//! Small statistics on slices, written once so every figure uses the same definition.

/// Pearson correlation of `x` and `y` over the indices where `keep` is true (two-pass,
/// as numpy). NaN when fewer than 2 pairs or a side is constant.
pub fn pearson_by(n: usize, mut get: impl FnMut(usize) -> Option<(f64, f64)>) -> f64 {
    let (mut sx, mut sy, mut k) = (0.0, 0.0, 0usize);
    for i in 0..n {
        if let Some((x, y)) = get(i) {
            sx += x;
            sy += y;
            k += 1;
        }
    }
    if k < 2 {
        return f64::NAN;
    }
    let (mx, my) = (sx / k as f64, sy / k as f64);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        if let Some((x, y)) = get(i) {
            let (dx, dy) = (x - mx, y - my);
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }
    }
    let d = (sxx * syy).sqrt();
    if d > 0.0 { sxy / d } else { f64::NAN }
}

/// Mean, sample std (ddof 1) and count of the finite values.
pub fn mean_std(v: impl Iterator<Item = f64> + Clone) -> (f64, f64, usize) {
    let (mut s, mut n) = (0.0, 0usize);
    for x in v.clone().filter(|x| x.is_finite()) {
        s += x;
        n += 1;
    }
    if n == 0 {
        return (f64::NAN, f64::NAN, 0);
    }
    let m = s / n as f64;
    if n < 2 {
        return (m, f64::NAN, n);
    }
    let ss: f64 = v.filter(|x| x.is_finite()).map(|x| (x - m) * (x - m)).sum();
    (m, (ss / (n - 1) as f64).sqrt(), n)
}

/// Average ranks (1-based, ties averaged) of the finite values of `x` among the
/// positions `idx`, written to `out` at those positions; `idx` keeps only the finite
/// ones, sorted by value. Returns how many were ranked.
pub fn average_ranks(x: &[f64], idx: &mut Vec<usize>, out: &mut [f64]) -> usize {
    idx.retain(|&i| x[i].is_finite());
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(a.cmp(&b)));
    let n = idx.len();
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && x[idx[j]] == x[idx[i]] {
            j += 1;
        }
        let r = (i + j + 1) as f64 / 2.0; // the mean of ranks i+1 ..= j
        for &k in &idx[i..j] {
            out[k] = r;
        }
        i = j;
    }
    n
}

/// Spearman correlation of the pairs where both are finite (scipy.stats.spearmanr on
/// them); NaN with fewer than 2 pairs or a constant side.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let keep: Vec<usize> = (0..a.len().min(b.len()))
        .filter(|&i| a[i].is_finite() && b[i].is_finite())
        .collect();
    let (mut ra, mut rb) = (vec![f64::NAN; a.len()], vec![f64::NAN; b.len()]);
    average_ranks(a, &mut keep.clone(), &mut ra);
    average_ranks(b, &mut keep.clone(), &mut rb);
    pearson_by(keep.len(), |k| Some((ra[keep[k]], rb[keep[k]])))
}

/// Mean over `dates` of the per-date Spearman correlation between `x` and `label`
/// (`[date][asset]` matrices) over the universe; dates where it is undefined are
/// skipped. Returns (mean, dates used).
pub fn mean_rank_ic(
    x: &[f64],
    label: &[f64],
    universe: &[bool],
    na: usize,
    dates: impl IntoIterator<Item = usize>,
) -> (f64, usize) {
    let (mut s, mut n) = (0.0, 0usize);
    let mut xa = Vec::with_capacity(na);
    let mut la = Vec::with_capacity(na);
    for t in dates {
        xa.clear();
        la.clear();
        for a in 0..na {
            let i = t * na + a;
            if universe[i] {
                xa.push(x[i]);
                la.push(label[i]);
            }
        }
        let c = spearman(&xa, &la);
        if c.is_finite() {
            s += c;
            n += 1;
        }
    }
    (if n > 0 { s / n as f64 } else { f64::NAN }, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_and_moments() {
        let x = [1.0, 2.0, 3.0, 4.0, f64::NAN];
        let y = [2.0, 4.1, 5.9, 8.2, 1.0];
        let r = pearson_by(5, |i| (x[i].is_finite()).then(|| (x[i], y[i])));
        assert!((r - 0.998_992_298_023_759_2).abs() < 1e-12, "{r}"); // numpy corrcoef
        assert!(pearson_by(3, |_| Some((1.0, 2.0))).is_nan());
        let (m, s, n) = mean_std(x.iter().copied());
        assert_eq!((m, n), (2.5, 4));
        assert!((s - 1.290_994_448_7).abs() < 1e-9);
    }

    #[test]
    fn spearman_as_scipy() {
        // scipy.stats.spearmanr([1, 2, 2, 5, nan], [3, 1, 2, 4, 9]) on the finite pairs.
        let r = super::spearman(&[1.0, 2.0, 2.0, 5.0, f64::NAN], &[3.0, 1.0, 2.0, 4.0, 9.0]);
        assert!((r - 0.3162277660168379).abs() < 1e-12, "{r}");
        assert!(super::spearman(&[1.0], &[2.0]).is_nan());
    }
}
