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
    let mut p = [0.0; 3];
    for i in 0..n {
        if let Some((x, y)) = get(i) {
            add_products(&mut p, x - mx, y - my);
        }
    }
    corr_of(p)
}

/// Adds a centred pair to [Σ dx·dy, Σ dx², Σ dy²].
#[inline(always)]
fn add_products(p: &mut [f64; 3], dx: f64, dy: f64) {
    p[0] += dx * dy;
    p[1] += dx * dx;
    p[2] += dy * dy;
}

/// The correlation from [Σ dx·dy, Σ dx², Σ dy²]; NaN when a side is constant.
#[inline]
fn corr_of([sxy, sxx, syy]: [f64; 3]) -> f64 {
    let d = (sxx * syy).sqrt();
    if d > 0.0 { sxy / d } else { f64::NAN }
}

/// Pearson correlation of `x` and `y` over the positions where both are finite (as
/// [`pearson_by`] with that mask, two-pass). The hot loop of the library and niche
/// correlations (a candidate × 50 members × every date): branch-free, in four lanes of
/// partial sums (lane j sums the positions ≡ j mod 4, the last `n mod 4` are added
/// after them in order). With AVX2 the lanes are one vector register (~5× the scalar
/// loop, which the compiler does not vectorise: a float sum cannot be reordered);
/// without, the same lanes in scalar code — the same operations in the same order, so
/// the result is bit-identical either way. It may differ from [`pearson_by`] in the
/// last bits.
pub fn pearson_pairs(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let split = n - n % 4;
    let ([mut tx, mut ty, mut tk], moments) = lanes::sums(&x[..split], &y[..split]);
    for (&a, &b) in x[split..].iter().zip(&y[split..]) {
        if a.is_finite() && b.is_finite() {
            tx += a;
            ty += b;
            tk += 1.0;
        }
    }
    if tk < 2.0 {
        return f64::NAN;
    }
    let (mx, my) = (tx / tk, ty / tk);
    let mut p = moments(mx, my);
    for (&a, &b) in x[split..].iter().zip(&y[split..]) {
        if a.is_finite() && b.is_finite() {
            add_products(&mut p, a - mx, b - my);
        }
    }
    corr_of(p)
}

/// Σ `xc[i]` · `y[i]` over the positions where `y` is finite (`xc` must be finite
/// everywhere: a centred factor, 0 where it has no value). The library correlation's
/// inner loop when a candidate and a member cover the same cells; the same four lanes
/// as [`pearson_pairs`], bit-identical with or without AVX2.
pub fn masked_dot(xc: &[f64], y: &[f64]) -> f64 {
    let n = xc.len().min(y.len());
    let split = n - n % 4;
    let mut s = lanes::dot(&xc[..split], &y[..split]);
    for (&a, &b) in xc[split..n].iter().zip(&y[split..n]) {
        if b.is_finite() {
            s += a * b;
        }
    }
    s
}

/// A factor row centred on its finite values: `xc` gets `x - mean` there and 0
/// elsewhere. Returns (finite count, Σ (x - mean)², Σ xc).
pub fn centre(x: &[f64], xc: &mut Vec<f64>) -> (usize, f64, f64) {
    let (mut s, mut n) = (0.0, 0usize);
    for &v in x {
        if v.is_finite() {
            s += v;
            n += 1;
        }
    }
    xc.clear();
    if n == 0 {
        xc.resize(x.len(), 0.0);
        return (0, 0.0, 0.0);
    }
    let m = s / n as f64;
    let (mut ss, mut sc) = (0.0, 0.0);
    xc.extend(x.iter().map(|&v| {
        if v.is_finite() {
            let d = v - m;
            ss += d * d;
            sc += d;
            d
        } else {
            0.0
        }
    }));
    (n, ss, sc)
}

/// The four-lane passes of [`pearson_pairs`] over `x`, `y` (lengths a multiple of 4):
/// the pairs' sums of x, y and their count, and a second pass giving the centred
/// cross- and self-products for the means it is handed.
mod lanes {
    /// The lanes' partial sums added in a fixed order.
    #[inline(always)]
    fn fold(o: [f64; 4]) -> f64 {
        (o[0] + o[2]) + (o[1] + o[3])
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    pub fn sums<'a>(x: &'a [f64], y: &'a [f64]) -> ([f64; 3], impl Fn(f64, f64) -> [f64; 3] + 'a) {
        use std::arch::x86_64::*;
        debug_assert!(x.len() == y.len() && x.len() % 4 == 0);
        // SAFETY (the blocks below): AVX2 is enabled for the whole build (the cfg
        // above); these intrinsics only touch registers and the local `o`.
        let store = |v: __m256d| {
            let mut o = [0.0; 4];
            unsafe { _mm256_storeu_pd(o.as_mut_ptr(), v) };
            fold(o)
        };
        /// `f(a, b, mask)` on each group of four pairs, the mask all ones where both
        /// are finite. Generic, so `f` inlines (no call per group).
        #[inline(always)]
        fn each4(x: &[f64], y: &[f64], mut f: impl FnMut(__m256d, __m256d, __m256d)) {
            // SAFETY: AVX2 is enabled for the whole build; i + 4 <= len for every load.
            unsafe {
                let abs = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fff_ffff_ffff_ffff));
                let inf = _mm256_set1_pd(f64::INFINITY);
                for i in (0..x.len()).step_by(4) {
                    let a = _mm256_loadu_pd(x.as_ptr().add(i));
                    let b = _mm256_loadu_pd(y.as_ptr().add(i));
                    let m = _mm256_and_pd(
                        _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_and_pd(a, abs), inf),
                        _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_and_pd(b, abs), inf),
                    );
                    f(a, b, m);
                }
            }
        }
        let zero = || unsafe { _mm256_setzero_pd() };
        let first = {
            let one = unsafe { _mm256_set1_pd(1.0) };
            let (mut sx, mut sy, mut k) = (zero(), zero(), zero());
            each4(x, y, |a, b, m| unsafe {
                sx = _mm256_add_pd(sx, _mm256_and_pd(a, m));
                sy = _mm256_add_pd(sy, _mm256_and_pd(b, m));
                k = _mm256_add_pd(k, _mm256_and_pd(one, m));
            });
            [store(sx), store(sy), store(k)]
        };
        let second = move |mx: f64, my: f64| {
            let (vx, vy) = unsafe { (_mm256_set1_pd(mx), _mm256_set1_pd(my)) };
            let (mut sxy, mut sxx, mut syy) = (zero(), zero(), zero());
            each4(x, y, |a, b, m| unsafe {
                let dx = _mm256_and_pd(_mm256_sub_pd(a, vx), m);
                let dy = _mm256_and_pd(_mm256_sub_pd(b, vy), m);
                // Multiply then add (no FMA): the scalar lanes compute the same.
                sxy = _mm256_add_pd(sxy, _mm256_mul_pd(dx, dy));
                sxx = _mm256_add_pd(sxx, _mm256_mul_pd(dx, dx));
                syy = _mm256_add_pd(syy, _mm256_mul_pd(dy, dy));
            });
            [store(sxy), store(sxx), store(syy)]
        };
        (first, second)
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    pub fn dot(xc: &[f64], y: &[f64]) -> f64 {
        use std::arch::x86_64::*;
        debug_assert!(xc.len() == y.len() && xc.len() % 4 == 0);
        // SAFETY: AVX2 is enabled for the whole build; loads stay within 0..len.
        unsafe {
            let abs = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fff_ffff_ffff_ffff));
            let inf = _mm256_set1_pd(f64::INFINITY);
            let mut s = _mm256_setzero_pd();
            for i in (0..xc.len()).step_by(4) {
                let a = _mm256_loadu_pd(xc.as_ptr().add(i));
                let b = _mm256_loadu_pd(y.as_ptr().add(i));
                let m = _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_and_pd(b, abs), inf);
                s = _mm256_add_pd(s, _mm256_mul_pd(a, _mm256_and_pd(b, m)));
            }
            let mut o = [0.0; 4];
            _mm256_storeu_pd(o.as_mut_ptr(), s);
            fold(o)
        }
    }

    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    pub use dot_portable as dot;

    #[cfg_attr(all(target_arch = "x86_64", target_feature = "avx2"), allow(dead_code))]
    pub fn dot_portable(xc: &[f64], y: &[f64]) -> f64 {
        let mut s = [0.0; 4];
        for (a, b) in xc.chunks_exact(4).zip(y.chunks_exact(4)) {
            for j in 0..4 {
                s[j] += a[j] * if b[j].is_finite() { b[j] } else { 0.0 };
            }
        }
        fold(s)
    }

    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    pub use portable as sums;

    /// The same lanes in scalar code (the build without AVX2; tests compare the two).
    #[cfg_attr(all(target_arch = "x86_64", target_feature = "avx2"), allow(dead_code))]
    pub fn portable<'a>(
        x: &'a [f64],
        y: &'a [f64],
    ) -> ([f64; 3], impl Fn(f64, f64) -> [f64; 3] + 'a) {
        debug_assert!(x.len() == y.len() && x.len() % 4 == 0);
        // A masked-out cell adds +0.0, as the vector code's AND with a zero mask.
        let (mut sx, mut sy, mut k) = ([0.0; 4], [0.0; 4], [0.0; 4]);
        for (a, b) in x.chunks_exact(4).zip(y.chunks_exact(4)) {
            for j in 0..4 {
                let ok = a[j].is_finite() && b[j].is_finite();
                sx[j] += if ok { a[j] } else { 0.0 };
                sy[j] += if ok { b[j] } else { 0.0 };
                k[j] += if ok { 1.0 } else { 0.0 };
            }
        }
        let second = move |mx: f64, my: f64| {
            let (mut sxy, mut sxx, mut syy) = ([0.0; 4], [0.0; 4], [0.0; 4]);
            for (a, b) in x.chunks_exact(4).zip(y.chunks_exact(4)) {
                for j in 0..4 {
                    let ok = a[j].is_finite() && b[j].is_finite();
                    let dx = if ok { a[j] - mx } else { 0.0 };
                    let dy = if ok { b[j] - my } else { 0.0 };
                    sxy[j] += dx * dy;
                    sxx[j] += dx * dx;
                    syy[j] += dy * dy;
                }
            }
            [fold(sxy), fold(sxx), fold(syy)]
        };
        ([fold(sx), fold(sy), fold(k)], second)
    }
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
/// Percentile ranks (ties averaged, rank / n) of the cells `order` of `x`, given in
/// ascending order of their values, written to `out`: the numbers
/// [`af_expr::kernels::cs::rank_row`] gives for those cells, by one walk instead of a
/// sort — for a subset of cells whose order is known from a superset's sort.
pub fn subset_ranks(x: &[f64], order: &[u32], out: &mut [f64]) {
    let nf = order.len() as f64;
    let mut a = 0;
    while a < order.len() {
        let v = x[order[a] as usize];
        let mut b = a + 1;
        while b < order.len() && x[order[b] as usize] == v {
            b += 1;
        }
        // rank_row's two formulas (they agree on a run of one).
        let r = if b == a + 1 {
            (a + 1) as f64 / nf
        } else {
            ((a + b - 1) as f64 / 2.0 + 1.0) / nf
        };
        for &c in &order[a..b] {
            out[c as usize] = r;
        }
        a = b;
    }
}

pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let keep: Vec<usize> = (0..a.len().min(b.len()))
        .filter(|&i| a[i].is_finite() && b[i].is_finite())
        .collect();
    let (mut ra, mut rb) = (vec![f64::NAN; a.len()], vec![f64::NAN; b.len()]);
    average_ranks(a, &mut keep.clone(), &mut ra);
    average_ranks(b, &mut keep.clone(), &mut rb);
    pearson_by(keep.len(), |k| Some((ra[keep[k]], rb[keep[k]])))
}

/// The per-date Spearman correlations between `x` and `label` (`[date][asset]`
/// matrices) over the universe, on `dates` in order; dates where it is undefined are
/// skipped.
pub fn rank_ic_series(
    x: &[f64],
    label: &[f64],
    universe: &[bool],
    na: usize,
    dates: impl IntoIterator<Item = usize>,
) -> Vec<f64> {
    let mut out = Vec::new();
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
            out.push(c);
        }
    }
    out
}

/// Mean of [`rank_ic_series`] (NaN without a defined date). Returns (mean, dates used).
pub fn mean_rank_ic(
    x: &[f64],
    label: &[f64],
    universe: &[bool],
    na: usize,
    dates: impl IntoIterator<Item = usize>,
) -> (f64, usize) {
    let v = rank_ic_series(x, label, universe, na, dates);
    let n = v.len();
    let s: f64 = v.iter().fold(0.0, |s, c| s + c);
    (if n > 0 { s / n as f64 } else { f64::NAN }, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_ranks_are_rank_rows_numbers() {
        use af_expr::kernels::cs::{RankScratch, rank_row};
        let mut next = crate::test_uniform(0x2545_f491_4f6c_dd1d);
        for &n in &[1usize, 5, 300, 3000] {
            // ties (a few hundred distinct values), -0/+0, both signs
            let x: Vec<f64> = (0..n)
                .map(|i| match i % 97 {
                    0 => -0.0,
                    1 => 0.0,
                    _ => ((next() * 401.0).floor() - 200.0) / 8.0,
                })
                .collect();
            let all: Vec<u32> = (0..n as u32).collect();
            let mut sc = RankScratch::default();
            rank_row(&x, &all, &mut sc, &mut vec![0.0; n]);
            let order: Vec<u32> = (0..n).map(|k| sc.sorted_cell(k) as u32).collect();
            for keep in [1u64, 2, 3, 7] {
                let sub: Vec<u32> = all
                    .iter()
                    .copied()
                    .filter(|&a| (a as u64 * 31 + keep) % (keep + 1) != 0 || keep == 1)
                    .collect();
                let mut want = vec![f64::NAN; n];
                rank_row(&x, &sub, &mut RankScratch::default(), &mut want);
                let ord: Vec<u32> = order.iter().copied().filter(|a| sub.contains(a)).collect();
                let mut got = vec![f64::NAN; n];
                subset_ranks(&x, &ord, &mut got);
                for a in 0..n {
                    assert_eq!(
                        got[a].to_bits(),
                        want[a].to_bits(),
                        "n {n} keep {keep} cell {a}"
                    );
                }
            }
        }
    }

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
    fn masked_pearson_agrees_with_the_closure_form() {
        // Lengths around the lane width, NaNs on either side, a constant side.
        for n in [0, 1, 2, 7, 8, 9, 17, 500, 503] {
            let x: Vec<f64> = (0..n)
                .map(|i| {
                    if i % 11 == 3 {
                        f64::NAN
                    } else {
                        ((i * 37) % 101) as f64 * 0.1 - 3.0
                    }
                })
                .collect();
            let y: Vec<f64> = (0..n)
                .map(|i| {
                    if i % 13 == 5 {
                        f64::INFINITY
                    } else {
                        ((i * 53) % 97) as f64 + x[i].abs()
                    }
                })
                .collect();
            let want = pearson_by(n, |i| {
                (x[i].is_finite() && y[i].is_finite()).then(|| (x[i], y[i]))
            });
            let got = pearson_pairs(&x, &y);
            assert!(
                (want.is_nan() && got.is_nan()) || (want - got).abs() < 1e-12,
                "n={n}: {want} vs {got}"
            );
        }
        assert!(pearson_pairs(&[1.0; 20], &[2.0; 20]).is_nan());
        let x = [1.0, 2.0, 3.0, 4.0, f64::NAN];
        let y = [2.0, 4.1, 5.9, 8.2, 1.0];
        assert!((pearson_pairs(&x, &y) - 0.998_992_298_023_759_2).abs() < 1e-12);
    }

    #[test]
    fn vector_and_scalar_lanes_are_bit_identical() {
        let n = 1003;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                if i % 7 == 2 {
                    f64::NAN
                } else {
                    ((i * 7919) % 1009) as f64 / 37.0 - 13.0
                }
            })
            .collect();
        let y: Vec<f64> = (0..n)
            .map(|i| {
                if i % 5 == 1 {
                    f64::NAN
                } else {
                    (((i * 104_729) % 997) as f64).sqrt()
                }
            })
            .collect();
        let m = n - n % 4;
        let (a, fa) = lanes::sums(&x[..m], &y[..m]);
        let (b, fb) = lanes::portable(&x[..m], &y[..m]);
        assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits));
        let (mx, my) = (a[0] / a[2], a[1] / a[2]);
        assert_eq!(fa(mx, my).map(f64::to_bits), fb(mx, my).map(f64::to_bits));
        let xc: Vec<f64> = x[..m]
            .iter()
            .map(|v| if v.is_finite() { *v } else { 0.0 })
            .collect();
        assert_eq!(
            lanes::dot(&xc, &y[..m]).to_bits(),
            lanes::dot_portable(&xc, &y[..m]).to_bits()
        );
    }

    #[test]
    fn spearman_as_scipy() {
        // scipy.stats.spearmanr([1, 2, 2, 5, nan], [3, 1, 2, 4, 9]) on the finite pairs.
        let r = super::spearman(&[1.0, 2.0, 2.0, 5.0, f64::NAN], &[3.0, 1.0, 2.0, 4.0, 9.0]);
        assert!((r - 0.3162277660168379).abs() < 1e-12, "{r}");
        assert!(super::spearman(&[1.0], &[2.0]).is_nan());
    }
}
