//! Per-date preprocessing of a factor's cross-section: winsorize, z-score, neutralize.
//!
//! Neutralization is the residual of a ridge least-squares fit (α = 1e-6) on industry
//! dummies and log(cap). Its normal equations have an arrow shape — a diagonal block of
//! group counts bordered by one log(cap) row — so they solve in O(groups) by one Schur
//! complement instead of a dense factorisation. What depends only on the panel (group
//! counts, per-group sums of log(cap), Σ log(cap)²) is a [`Design`], computed once per
//! date for the date's base set of assets and reused for every candidate that is
//! defined on the whole base set; only a candidate with holes builds its own.

use anyhow::{Result, bail};

/// Outlier treatment before z-scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Winsor {
    /// Clip to the `p` and `1 − p` quantiles (linear interpolation, as numpy).
    Quantile(f64),
    /// Clip to median ± k × 1.4826 × MAD (k robust standard deviations).
    Mad(f64),
    None,
}

impl Winsor {
    pub fn parse(s: &str) -> Result<Winsor> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let num = |what: &str| -> Result<f64> {
            arg.trim()
                .parse::<f64>()
                .map_err(|_| anyhow::anyhow!("--winsor {s}: {what} must be a number"))
        };
        Ok(match kind.trim() {
            "none" => Winsor::None,
            "quantile" => {
                let p = num("the quantile")?;
                if !(0.0..0.5).contains(&p) {
                    bail!("--winsor {s}: the quantile must be in [0, 0.5)");
                }
                Winsor::Quantile(p)
            }
            "mad" => {
                let k = num("the MAD multiple")?;
                if k.is_nan() || k <= 0.0 {
                    bail!("--winsor {s}: the MAD multiple must be positive");
                }
                Winsor::Mad(k)
            }
            _ => bail!("--winsor {s}: expected quantile:P, mad:K or none"),
        })
    }
    pub fn name(&self) -> String {
        match self {
            Winsor::Quantile(p) => format!("quantile:{p}"),
            Winsor::Mad(k) => format!("mad:{k}"),
            Winsor::None => "none".into(),
        }
    }
}

/// numpy's linear interpolation (`np.quantile`'s `_lerp`), bit for bit.
#[inline]
pub fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// The `k`-th and `k+1`-th smallest of `w` in `f64::total_cmp` order (reordering `w`).
/// Longer slices are narrowed to one of 2048 buckets of their integer order keys (one
/// counting pass and one partition, no comparisons), again until few are left:
/// winsorizing every date of every candidate spent an eighth of `fitness`'s time in
/// the comparison selection.
fn order_pair(w: &mut [f64], k: usize) -> (f64, f64) {
    const BITS: u32 = 11;
    if w.len() < 256 {
        return select_pair(w, k);
    }
    // total_cmp's order as an unsigned integer (it tells -0 from +0, as total_cmp does)
    let key = |x: f64| {
        let b = x.to_bits();
        if b >> 63 == 1 { !b } else { b | (1 << 63) }
    };
    let (lo, hi) = w.iter().fold((u64::MAX, 0u64), |(l, h), &x| {
        let k = key(x);
        (l.min(k), h.max(k))
    });
    if lo == hi {
        return (w[0], w[0]);
    }
    let shift = (64 - (hi - lo).leading_zeros()).saturating_sub(BITS);
    let bucket = |x: f64| ((key(x) - lo) >> shift) as usize;
    let mut hist = [0u32; 1 << BITS];
    for &x in w.iter() {
        hist[bucket(x)] += 1;
    }
    let (mut b, mut before) = (0, 0usize);
    while before + hist[b] as usize <= k {
        before += hist[b] as usize;
        b += 1;
    }
    let inside = hist[b] as usize;
    // The bucket's values to the front, then select among them.
    let mut j = 0;
    for i in 0..w.len() {
        if bucket(w[i]) == b {
            w.swap(i, j);
            j += 1;
        }
    }
    // The bucket spans fewer keys than `w` did: narrow again (a row spanning zero
    // puts whole binades in one bucket at the first level).
    let (x, y) = order_pair(&mut w[..inside], k - before);
    if k + 1 < before + inside {
        return (x, y);
    }
    // The next one is the smallest of the later buckets (if any).
    let next = w[inside..]
        .iter()
        .copied()
        .filter(|&v| bucket(v) > b)
        .min_by(f64::total_cmp);
    (x, next.unwrap_or(x))
}

/// [`order_pair`] by comparison selection.
fn select_pair(w: &mut [f64], k: usize) -> (f64, f64) {
    let (_, x, rest) = w.select_nth_unstable_by(k, f64::total_cmp);
    let x = *x;
    let y = rest.iter().copied().fold(f64::INFINITY, f64::min);
    (x, if rest.is_empty() { x } else { y })
}

/// numpy `quantile(v, q)` (linear) by selection, O(n); reorders `w`.
pub fn quantile(w: &mut [f64], q: f64) -> f64 {
    let pos = q * (w.len() - 1) as f64;
    let k = pos.floor() as usize;
    let (a, b) = order_pair(w, k);
    lerp(a, b, pos - k as f64)
}

/// numpy `median`; reorders `w`.
pub fn median(w: &mut [f64]) -> f64 {
    let n = w.len();
    if n % 2 == 1 {
        *w.select_nth_unstable_by(n / 2, f64::total_cmp).1
    } else {
        let (a, b) = order_pair(w, n / 2 - 1);
        (a + b) / 2.0
    }
}

/// Clip `v` in place; `w` is scratch.
pub fn winsorize(v: &mut [f64], how: Winsor, w: &mut Vec<f64>) {
    let (lo, hi) = match how {
        Winsor::None => return,
        Winsor::Quantile(p) => {
            if p == 0.0 {
                return;
            }
            w.clear();
            w.extend_from_slice(v);
            let lo = quantile(w, p);
            let hi = quantile(w, 1.0 - p);
            (lo, hi)
        }
        Winsor::Mad(k) => {
            w.clear();
            w.extend_from_slice(v);
            let med = median(w);
            for (x, y) in w.iter_mut().zip(v.iter()) {
                *x = (y - med).abs();
            }
            let mad = median(w) * 1.4826;
            if mad == 0.0 {
                // Over half the values tie: clipping would make the day constant.
                return;
            }
            (med - k * mad, med + k * mad)
        }
    };
    // Bounds from values near the f64 range can overflow to inf/NaN: then no clipping
    // (f64::clamp would panic on them).
    if !(lo <= hi) || !lo.is_finite() || !hi.is_finite() {
        return;
    }
    for x in v.iter_mut() {
        *x = x.clamp(lo, hi);
    }
}

/// z-score in place (ddof 1). False when the values are constant (std 0).
pub fn zscore(v: &mut [f64]) -> bool {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let ss = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>();
    let sd = (ss / (n - 1.0)).sqrt();
    if !(sd > 0.0) || !sd.is_finite() {
        return false;
    }
    for x in v.iter_mut() {
        *x = (*x - m) / sd;
    }
    true
}

/// The exposures' side of the normal equations for one date and one set of assets.
#[derive(Debug, Clone, Default)]
pub struct Design {
    /// Per group: count + α, Σ c.
    pub n: Vec<f64>,
    pub s: Vec<f64>,
    /// The Schur complement Σ c² + α − Σ_g s_g² / (n_g + α) (size on), else 0.
    pub schur: f64,
}

impl Design {
    /// Build for the assets `cells` with group `g(a)` and log-cap `c(a)` (0 when size is
    /// off).
    pub fn build(
        &mut self,
        cells: &[u32],
        groups: Option<&[i32]>,
        logcap: Option<&[f64]>,
        n_groups: usize,
        ridge: f64,
    ) {
        self.n.clear();
        self.n.resize(n_groups, ridge);
        self.s.clear();
        self.s.resize(n_groups, 0.0);
        let mut cc = 0.0;
        for &a in cells {
            let g = groups.map_or(0, |g| g[a as usize] as usize);
            self.n[g] += 1.0;
            if let Some(c) = logcap {
                let c = c[a as usize];
                self.s[g] += c;
                cc += c * c;
            }
        }
        self.schur = if logcap.is_some() {
            cc + ridge
                - self
                    .n
                    .iter()
                    .zip(&self.s)
                    .map(|(n, s)| s * s / n)
                    .sum::<f64>()
        } else {
            0.0
        };
    }

    /// Replace `z` (values of `cells`, in order) by its residual. `sz` is scratch of
    /// the design's group count.
    pub fn residualize(
        &self,
        z: &mut [f64],
        cells: &[u32],
        groups: Option<&[i32]>,
        logcap: Option<&[f64]>,
        sz: &mut Vec<f64>,
    ) {
        sz.clear();
        sz.resize(self.n.len(), 0.0);
        let mut sc = 0.0;
        for (&a, &v) in cells.iter().zip(z.iter()) {
            let g = groups.map_or(0, |g| g[a as usize] as usize);
            sz[g] += v;
            if let Some(c) = logcap {
                sc += c[a as usize] * v;
            }
        }
        let bc = if logcap.is_some() {
            let num = sc
                - self
                    .s
                    .iter()
                    .zip(&self.n)
                    .zip(sz.iter())
                    .map(|((s, n), z)| s * z / n)
                    .sum::<f64>();
            num / self.schur
        } else {
            0.0
        };
        for ((b, s), n) in sz.iter_mut().zip(&self.s).zip(&self.n) {
            *b = (*b - s * bc) / n;
        }
        for (&a, v) in cells.iter().zip(z.iter_mut()) {
            let g = groups.map_or(0, |g| g[a as usize] as usize);
            let c = logcap.map_or(0.0, |c| c[a as usize]);
            *v -= sz[g] + bc * c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_and_median_are_numpys() {
        let mut w = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&mut w, 0.25), 2.0);
        assert_eq!(quantile(&mut w, 0.1), 1.4);
        assert_eq!(median(&mut w), 3.0);
        let mut w = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(median(&mut w), 2.5);
    }

    #[test]
    fn bucketed_selection_is_the_comparison_selection() {
        let mut next = crate::test_uniform(0x9e37_79b9_7f4a_7c15);
        for &n in &[256usize, 257, 1000, 4999] {
            for kind in 0..4 {
                let v: Vec<f64> = (0..n)
                    .map(|i| match kind {
                        0 => (next() - 0.5) * 1e6,
                        1 => (next() * 20.0).floor() - 10.0, // ties, zeros
                        2 => (next() * 60.0 - 30.0).exp() * if i % 2 == 0 { 1.0 } else { -1.0 },
                        _ => 100.0 + next() * 1e-12, // one bucket
                    })
                    .collect();
                for k in [0, 1, n / 2 - 1, n / 2, n - 2, n - 1] {
                    let got = order_pair(&mut v.clone(), k);
                    let want = select_pair(&mut v.clone(), k);
                    assert_eq!(got, want, "n {n} kind {kind} k {k}");
                }
            }
        }
    }

    #[test]
    fn residual_is_orthogonal_to_exposures() {
        // Two groups and a size column: the residual sums to ~0 in each group and is
        // orthogonal to log cap (up to the tiny ridge).
        let cells: Vec<u32> = (0..8).collect();
        let g = [0, 0, 0, 1, 1, 1, 1, 0];
        let c = [1.0, 2.0, 3.5, 0.5, 1.5, 2.5, 4.0, 0.2];
        let mut z = vec![0.3, -1.2, 2.0, 0.7, -0.1, 1.1, -2.2, 0.4];
        let mut d = Design::default();
        d.build(&cells, Some(&g), Some(&c), 2, 1e-12);
        d.residualize(&mut z, &cells, Some(&g), Some(&c), &mut Vec::new());
        for grp in 0..2 {
            let s: f64 = (0..8).filter(|&i| g[i] == grp).map(|i| z[i]).sum();
            assert!(s.abs() < 1e-9, "{s}");
        }
        let sc: f64 = (0..8).map(|i| z[i] * c[i]).sum();
        assert!(sc.abs() < 1e-9, "{sc}");
    }

    #[test]
    fn bounds_beyond_f64_do_not_panic() {
        let mut w = Vec::new();
        for how in [Winsor::Quantile(0.01), Winsor::Mad(5.0)] {
            let mut v = vec![-1e308, 1e308, 1e308, -1e308, 0.0];
            winsorize(&mut v, how, &mut w);
            assert!(v.iter().all(|x| x.is_finite()));
        }
    }

    #[test]
    fn winsor_specs() {
        assert_eq!(
            Winsor::parse("quantile:0.01").unwrap(),
            Winsor::Quantile(0.01)
        );
        assert_eq!(Winsor::parse("mad:5").unwrap(), Winsor::Mad(5.0));
        assert_eq!(Winsor::parse("none").unwrap(), Winsor::None);
        assert!(Winsor::parse("quantile:0.7").is_err());
        assert!(Winsor::parse("clip").is_err());
    }
}
