//! Pool-level fitness (issue 36): what a candidate adds to the library's *combination*,
//! not what it scores alone.
//!
//! The library's members are combined by least squares: on the fit split's cells
//! (every date's scored assets with a label), the per-date label ranks (centred) are
//! regressed on the members' processed values (missing values count as 0, the
//! processed factor's mean), with a small ridge. The *combined IC* on a split is the
//! correlation, over all that split's cells, of the fitted combination with the label
//! ranks: a pooled RankIC of the library as one factor. A candidate's *gain* is how
//! much the combined IC rises when it joins, weights refit on the fit split — on the
//! fit split for selection, on the others (`valid`) for admission, with the same
//! weights. A near-copy of a member gains nearly nothing; a weak factor that completes
//! a composite gains what it completes.
//!
//! Everything is sums over cells: the members' Gram matrix and their products with the
//! label, once per pool; a candidate needs its products with each member (k dot
//! products per date, like the near-copy check) and the refit is a bordered Cholesky
//! step, O(k²) — the rank-one extension of the members' factor.

use rayon::prelude::*;

use crate::Context;

/// Ridge added to the Gram matrix's diagonal, per cell of the fit split: members are
/// unit-variance per date, so this is a relative shrinkage of 1e-4 — enough to keep
/// near-collinear members solvable, too little to move a real weight.
pub const RIDGE: f64 = 1e-4;

/// The splits a pool is fit on (the first present of `train`, `all`) and judged on
/// (`valid`), in that order, picked from `splits` (name, usable dates): never `test`.
pub fn fit_and_judge(splits: &[(String, Vec<usize>)]) -> Vec<(String, Vec<usize>)> {
    let fit = ["train", "all"]
        .iter()
        .find_map(|n| splits.iter().find(|(s, _)| s == n));
    let judge = splits.iter().find(|(s, _)| s == "valid");
    fit.into_iter().chain(judge).cloned().collect()
}

/// Sums over one split's cells.
#[derive(Debug, Clone, Default)]
struct Moments {
    /// Members' Gram matrix, k × k, row-major.
    g: Vec<f64>,
    /// Members · label.
    b: Vec<f64>,
    /// Label · label.
    yy: f64,
    /// Cells.
    n: f64,
}

/// A candidate's sums over one split: its products with each member, with itself and
/// with the label.
#[derive(Debug, Clone, Default)]
struct Cross {
    g: Vec<f64>,
    xx: f64,
    xy: f64,
}

/// What a candidate adds: per split (in the pool's order), the combined IC with it and
/// its gain over the library alone; and its weight in the refit combination.
#[derive(Debug, Clone, PartialEq)]
pub struct Gain {
    pub ic: Vec<f64>,
    pub gain: Vec<f64>,
    pub weight: f64,
}

/// The library as a least-squares combination on a context's cells.
pub struct Pool<'c, 'p, V: AsRef<[f64]> + Sync> {
    ctx: &'c Context<'p>,
    members: Vec<V>,
    /// (name, dates); the first is the fit split.
    splits: Vec<(String, Vec<usize>)>,
    /// Centred label ranks per date (empty where the date is not in a split).
    y: Vec<Vec<f64>>,
    mom: Vec<Moments>,
    lambda: f64,
    /// Lower Cholesky factor of the fit split's Gram + λI.
    chol: Vec<f64>,
    /// L⁻¹ b on the fit split.
    c: Vec<f64>,
    /// The members' weights and combined IC per split.
    weights: Vec<f64>,
    ic: Vec<f64>,
}

impl<'c, 'p, V: AsRef<[f64]> + Sync> Pool<'c, 'p, V> {
    /// A pool of `members` (processed values, `[n_dates][n_assets]` each) on `splits`
    /// (name, dates; the first is the one weights are fit on). Dates the context did not
    /// prepare are skipped.
    pub fn new(ctx: &'c Context<'p>, members: Vec<V>, splits: Vec<(String, Vec<usize>)>) -> Self {
        let mut y = vec![Vec::new(); ctx.nd];
        for (_, ds) in &splits {
            for &t in ds {
                if let Some(b) = ctx.base.get(t).and_then(|b| b.as_ref())
                    && y[t].is_empty()
                    && !b.label_rank.is_empty()
                {
                    let m = b.label_rank.iter().sum::<f64>() / b.label_rank.len() as f64;
                    y[t] = b.label_rank.iter().map(|r| r - m).collect();
                }
            }
        }
        let mut pool = Pool {
            ctx,
            members: Vec::new(),
            splits,
            y,
            mom: Vec::new(),
            lambda: 0.0,
            chol: Vec::new(),
            c: Vec::new(),
            weights: Vec::new(),
            ic: Vec::new(),
        };
        pool.mom = vec![Moments::default(); pool.splits.len()];
        for (s, (_, ds)) in pool.splits.iter().enumerate() {
            let (yy, n) = ds
                .iter()
                .map(|&t| {
                    let y = &pool.y[t];
                    (y.iter().map(|v| v * v).sum::<f64>(), y.len() as f64)
                })
                .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
            pool.mom[s].yy = yy;
            pool.mom[s].n = n;
        }
        pool.lambda = RIDGE * pool.mom.first().map_or(0.0, |m| m.n);
        for m in members {
            pool.push_member(m);
        }
        pool.refit();
        pool
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The library's combined IC on each split.
    pub fn ic(&self) -> &[f64] {
        &self.ic
    }

    /// Member `j`'s values.
    pub fn member(&self, j: usize) -> &V {
        &self.members[j]
    }

    /// The members' weights in the combination.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    pub fn split_names(&self) -> impl Iterator<Item = &str> {
        self.splits.iter().map(|(n, _)| n.as_str())
    }

    /// Per-split figures `ic` (one per pool split) as "train 0.0361, valid 0.0368".
    pub fn describe(&self, ic: &[f64]) -> String {
        self.split_names()
            .zip(ic)
            .map(|(n, v)| format!("{n} {v:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The members' values, in pool order (the pool is done with).
    pub fn into_members(self) -> Vec<V> {
        self.members
    }

    /// Σ over date t's cells of x·member_j for every member, x·x and x·y; `x` a
    /// processed matrix (NaN = 0).
    fn cross_date(&self, x: &[f64], t: usize) -> Vec<f64> {
        let k = self.members.len();
        let mut out = vec![0.0; k + 2];
        let Some(base) = self.ctx.base[t].as_ref() else {
            return out;
        };
        let y = &self.y[t];
        if y.is_empty() {
            return out;
        }
        let na = self.ctx.na;
        let xr = &x[t * na..(t + 1) * na];
        // The candidate gathered once: cells where it is 0 add nothing anywhere.
        let mut idx = Vec::with_capacity(base.pairs.len());
        let mut xv = Vec::with_capacity(base.pairs.len());
        let (mut xx, mut xy) = (0.0, 0.0);
        for (&a, &yv) in base.pairs.iter().zip(y) {
            let v = xr[a as usize];
            if v.is_finite() && v != 0.0 {
                idx.push(a as usize);
                xv.push(v);
                xx += v * v;
                xy += v * yv;
            }
        }
        for (j, m) in self.members.iter().enumerate() {
            let lr = &m.as_ref()[t * na..(t + 1) * na];
            let mut s = 0.0;
            for (&a, &v) in idx.iter().zip(&xv) {
                let l = lr[a];
                if l.is_finite() {
                    s += v * l;
                }
            }
            out[j] = s;
        }
        out[k] = xx;
        out[k + 1] = xy;
        out
    }

    /// A candidate's sums on every split, summed in date order (deterministic).
    fn cross(&self, x: &[f64]) -> Vec<Cross> {
        let k = self.members.len();
        self.splits
            .iter()
            .map(|(_, ds)| {
                let per: Vec<Vec<f64>> = ds.par_iter().map(|&t| self.cross_date(x, t)).collect();
                let mut sum = vec![0.0; k + 2];
                for p in &per {
                    for (s, v) in sum.iter_mut().zip(p) {
                        *s += v;
                    }
                }
                Cross {
                    xx: sum[k],
                    xy: sum[k + 1],
                    g: sum[..k].to_vec(),
                }
            })
            .collect()
    }

    /// Add a member: its products with the others and the label join the moments.
    fn push_member(&mut self, v: V) {
        let cr = self.cross(v.as_ref());
        let k = self.members.len();
        for (m, c) in self.mom.iter_mut().zip(cr) {
            let mut g = vec![0.0; (k + 1) * (k + 1)];
            for i in 0..k {
                for j in 0..k {
                    g[i * (k + 1) + j] = m.g[i * k + j];
                }
                g[i * (k + 1) + k] = c.g[i];
                g[k * (k + 1) + i] = c.g[i];
            }
            g[k * (k + 1) + k] = c.xx;
            m.g = g;
            m.b.push(c.xy);
        }
        self.members.push(v);
    }

    /// Add `v` as a member and refit.
    pub fn push(&mut self, v: V) {
        self.push_member(v);
        self.refit();
    }

    /// Remove member `j` and refit; returns its values.
    pub fn remove(&mut self, j: usize) -> V {
        let k = self.members.len();
        for m in &mut self.mom {
            m.g = without(&m.g, k, j);
            m.b.remove(j);
        }
        let v = self.members.remove(j);
        self.refit();
        v
    }

    /// The combined IC on each split without member `j` (weights refit): what removing
    /// it would cost.
    pub fn ic_without(&self, j: usize) -> Vec<f64> {
        let k = self.members.len();
        let fit = &self.mom[0];
        let g = without(&fit.g, k, j);
        let mut b = fit.b.clone();
        b.remove(j);
        let l = cholesky(&g, k - 1, self.lambda);
        let w = solve(&l, k - 1, &b);
        self.mom
            .iter()
            .map(|m| {
                let mut b = m.b.clone();
                b.remove(j);
                combined_ic(&w, &without(&m.g, k, j), &b, m.yy)
            })
            .collect()
    }

    fn refit(&mut self) {
        let k = self.members.len();
        let fit = &self.mom[0];
        self.chol = cholesky(&fit.g, k, self.lambda);
        self.c = forward(&self.chol, k, &fit.b);
        self.weights = backward(&self.chol, k, &self.c);
        self.ic = self
            .mom
            .iter()
            .map(|m| combined_ic(&self.weights, &m.g, &m.b, m.yy))
            .collect();
    }

    /// What candidate `x` (processed values, `[n_dates][n_assets]`) adds: the combined
    /// IC with it on each split, weights refit on the fit split by one bordered Cholesky
    /// step, and its gain over the library alone. A candidate with no cells gains 0.
    pub fn gain(&self, x: &[f64]) -> Gain {
        let k = self.members.len();
        let cr = self.cross(x);
        let f = &cr[0];
        // Bordered factor: [[L, 0], [lᵀ, d]] with L l = g, d² = xx + λ − l·l.
        let l = forward(&self.chol, k, &f.g);
        let d2 = f.xx + self.lambda - l.iter().map(|v| v * v).sum::<f64>();
        let zero = |s: &Self| Gain {
            ic: s.ic.clone(),
            gain: vec![0.0; s.ic.len()],
            weight: 0.0,
        };
        if d2.is_nan() || d2 <= 0.0 || f.xx <= 0.0 {
            return zero(self);
        }
        let d = d2.sqrt();
        let z = (f.xy - dot(&l, &self.c)) / d;
        let beta = z / d;
        // Lᵀ w = c − l β.
        let rhs: Vec<f64> = self.c.iter().zip(&l).map(|(c, l)| c - l * beta).collect();
        let w = backward(&self.chol, k, &rhs);
        let ic: Vec<f64> = self
            .mom
            .iter()
            .zip(&cr)
            .map(|(m, c)| {
                // wᵀ b + β xy over wᵀ G w + 2β wᵀ g + β² xx.
                let num = dot(&w, &m.b) + beta * c.xy;
                let var = quad(&w, &m.g) + 2.0 * beta * dot(&w, &c.g) + beta * beta * c.xx;
                ratio(num, var, m.yy)
            })
            .collect();
        let gain = ic
            .iter()
            .zip(&self.ic)
            .map(|(a, b)| {
                let g = a - if b.is_finite() { *b } else { 0.0 };
                if g.is_finite() { g } else { 0.0 }
            })
            .collect();
        Gain {
            ic,
            gain,
            weight: beta,
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// wᵀ G w, G k × k row-major.
fn quad(w: &[f64], g: &[f64]) -> f64 {
    let k = w.len();
    let mut s = 0.0;
    for i in 0..k {
        s += w[i] * dot(&g[i * k..(i + 1) * k], w);
    }
    s
}

fn ratio(num: f64, var: f64, yy: f64) -> f64 {
    let d = (var * yy).sqrt();
    if d > 0.0 { num / d } else { f64::NAN }
}

/// Correlation over the cells of the combination `w` with the label.
fn combined_ic(w: &[f64], g: &[f64], b: &[f64], yy: f64) -> f64 {
    if w.is_empty() {
        return 0.0;
    }
    ratio(dot(w, b), quad(w, g), yy)
}

/// `g` (k × k) without row and column `j`.
fn without(g: &[f64], k: usize, j: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity((k - 1) * (k - 1));
    for r in (0..k).filter(|&r| r != j) {
        for c in (0..k).filter(|&c| c != j) {
            out.push(g[r * k + c]);
        }
    }
    out
}

/// Lower Cholesky factor of `g + λI` (k × k). A pivot that is not positive (only
/// possible with λ = 0 and collinear members) is set to a tiny positive value, so its
/// member gets weight ~0.
fn cholesky(g: &[f64], k: usize, lambda: f64) -> Vec<f64> {
    let mut l = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            let mut s = g[i * k + j] + if i == j { lambda } else { 0.0 };
            for p in 0..j {
                s -= l[i * k + p] * l[j * k + p];
            }
            if i == j {
                l[i * k + i] = if s > 0.0 {
                    s.sqrt()
                } else {
                    f64::MIN_POSITIVE.sqrt()
                };
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    l
}

/// Solve L z = b.
fn forward(l: &[f64], k: usize, b: &[f64]) -> Vec<f64> {
    let mut z = vec![0.0; k];
    for i in 0..k {
        let s = b[i] - dot(&l[i * k..i * k + i], &z[..i]);
        z[i] = s / l[i * k + i];
    }
    z
}

/// Solve Lᵀ w = z.
fn backward(l: &[f64], k: usize, z: &[f64]) -> Vec<f64> {
    let mut w = vec![0.0; k];
    for i in (0..k).rev() {
        let mut s = z[i];
        for p in i + 1..k {
            s -= l[p * k + i] * w[p];
        }
        w[i] = s / l[i * k + i];
    }
    w
}

/// Solve (g + λI) w = b from its Cholesky factor.
fn solve(l: &[f64], k: usize, b: &[f64]) -> Vec<f64> {
    backward(l, k, &forward(l, k, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, test_uniform};
    use af_panel::Panel;

    /// The combined IC the long way: the design matrix over every cell of the fit
    /// split, normal equations solved by Gaussian elimination, then the correlation of
    /// the fitted combination with the label ranks on each split.
    fn direct(
        ctx: &Context,
        xs: &[&[f64]],
        splits: &[(String, Vec<usize>)],
        lambda_rel: f64,
    ) -> Vec<f64> {
        let k = xs.len();
        let rows = |ds: &[usize]| {
            let mut out = Vec::new();
            for &t in ds {
                let b = ctx.base[t].as_ref().unwrap();
                let m = b.label_rank.iter().sum::<f64>() / b.label_rank.len() as f64;
                for (&a, &r) in b.pairs.iter().zip(&b.label_rank) {
                    let v: Vec<f64> = xs
                        .iter()
                        .map(|x| {
                            let v = x[t * ctx.na + a as usize];
                            if v.is_finite() { v } else { 0.0 }
                        })
                        .collect();
                    out.push((v, r - m));
                }
            }
            out
        };
        let fit = rows(&splits[0].1);
        let lambda = lambda_rel * fit.len() as f64;
        let mut a = vec![vec![0.0; k + 1]; k];
        for (v, y) in &fit {
            for i in 0..k {
                for j in 0..k {
                    a[i][j] += v[i] * v[j];
                }
                a[i][k] += v[i] * y;
            }
        }
        for (i, row) in a.iter_mut().enumerate() {
            row[i] += lambda;
        }
        // Gauss–Jordan with partial pivoting.
        for c in 0..k {
            let p = (c..k)
                .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
                .unwrap();
            a.swap(c, p);
            for r in 0..k {
                if r != c {
                    let f = a[r][c] / a[c][c];
                    for q in c..=k {
                        a[r][q] -= f * a[c][q];
                    }
                }
            }
        }
        let w: Vec<f64> = (0..k).map(|i| a[i][k] / a[i][i]).collect();
        splits
            .iter()
            .map(|(_, ds)| {
                let (z, y): (Vec<f64>, Vec<f64>) =
                    rows(ds).into_iter().map(|(v, y)| (dot(&v, &w), y)).unzip();
                // Uncentred over the pooled cells: the label is centred per date and
                // the processed factors are ~0-mean, as in the pool.
                let num = dot(&z, &y);
                num / (dot(&z, &z) * dot(&y, &y)).sqrt()
            })
            .collect()
    }

    /// 60 dates × 40 assets in 4 industries, a random 1-day label.
    fn market() -> (std::path::PathBuf, Panel) {
        use af_panel::{PanelData, write_panel};
        let dir = std::env::temp_dir().join(format!("af-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.arrow");
        let (nd, na) = (60, 40);
        let mut u = test_uniform(11);
        let data = PanelData {
            dates: (0..nd as i32).map(|d| 19000 + d).collect(),
            codes: (0..na).map(|a| format!("S{a:02}")).collect(),
            fields: vec![
                ("close".into(), vec![1.0; nd * na]),
                (
                    "fwd_ret_1".into(),
                    (0..nd * na).map(|_| u() - 0.5).collect(),
                ),
            ],
            groups: vec![(
                "industry".into(),
                (0..nd * na).map(|i| (i % 4) as i32).collect(),
                (0..4).map(|g| format!("I{g}")).collect(),
            )],
            ..Default::default()
        };
        write_panel(&path, data, &af_store::Provenance::new("test", "0")).unwrap();
        (dir.clone(), Panel::open(&path).unwrap())
    }

    #[test]
    fn the_gain_is_a_direct_least_squares_refit() {
        let (dir, panel) = market();
        let (nd, na) = (panel.n_dates(), panel.n_assets());
        let all: Vec<usize> = (0..nd).collect();
        let ctx = Context::new(&panel, Config::default(), &all).unwrap();
        let mut u = test_uniform(3);
        let label = panel.field("fwd_ret_1").unwrap().data.to_vec();
        // Members: noisy copies of the label and pure noise, processed; a candidate
        // correlated with a member (a partial near-copy) and one with new signal.
        let mut ws = crate::Workspace::default();
        let mut make = |sig: f64, base: Option<&[f64]>, u: &mut dyn FnMut() -> f64| {
            let raw: Vec<f64> = (0..nd * na)
                .map(|i| {
                    let l = if label[i].is_finite() { label[i] } else { 0.0 };
                    let b = base.map_or(0.0, |b| if b[i].is_finite() { b[i] } else { 0.0 });
                    sig * l + b + (u() - 0.5) + if i % 11 == 0 { f64::NAN } else { 0.0 }
                })
                .collect();
            ctx.processed(&raw, &mut ws)
        };
        let m0 = make(1.0, None, &mut u);
        let m1 = make(0.0, None, &mut u);
        let m2 = make(0.3, None, &mut u);
        let near = make(0.0, Some(&m0), &mut u);
        let fresh = make(0.5, None, &mut u);
        let splits = vec![
            ("train".to_string(), (0..35).collect::<Vec<usize>>()),
            ("valid".to_string(), (36..50).collect()),
        ];
        let pool = Pool::new(&ctx, vec![&m0[..], &m1[..], &m2[..]], splits.clone());
        let lib = direct(&ctx, &[&m0, &m1, &m2], &splits, RIDGE);
        for (a, b) in pool.ic().iter().zip(&lib) {
            assert!((a - b).abs() < 1e-10, "library {a} vs {b}");
        }
        for x in [&near, &fresh] {
            let g = pool.gain(x);
            let want = direct(&ctx, &[&m0, &m1, &m2, x], &splits, RIDGE);
            for s in 0..2 {
                assert!(
                    (g.ic[s] - want[s]).abs() < 1e-10,
                    "{} vs {}",
                    g.ic[s],
                    want[s]
                );
                assert!((g.gain[s] - (want[s] - lib[s])).abs() < 1e-10);
            }
        }
        // The fresh signal adds more than the near-copy; both add ≥ 0 on the fit split.
        let (gn, gf) = (pool.gain(&near), pool.gain(&fresh));
        assert!(
            gf.gain[0] > gn.gain[0] && gn.gain[0] >= -1e-12,
            "{gf:?} {gn:?}"
        );
        // An empty pool: the candidate alone.
        let empty: Pool<&[f64]> = Pool::new(&ctx, Vec::new(), splits.clone());
        let alone = direct(&ctx, &[&fresh], &splits, RIDGE);
        let g = empty.gain(&fresh);
        assert!((g.gain[0] - alone[0]).abs() < 1e-10 && g.ic[0] > 0.0);
        // push / remove / ic_without agree with fresh pools.
        let mut p = Pool::new(&ctx, vec![&m0[..], &m1[..]], splits.clone());
        p.push(&fresh[..]);
        let four = direct(&ctx, &[&m0, &m1, &fresh], &splits, RIDGE);
        assert!((p.ic()[1] - four[1]).abs() < 1e-10);
        let wo = p.ic_without(1);
        let want = direct(&ctx, &[&m0, &fresh], &splits, RIDGE);
        assert!((wo[0] - want[0]).abs() < 1e-10 && (wo[1] - want[1]).abs() < 1e-10);
        p.remove(1);
        assert!((p.ic()[0] - want[0]).abs() < 1e-10);
        // A candidate without values gains nothing.
        let nan = vec![f64::NAN; nd * na];
        assert_eq!(pool.gain(&nan).gain, vec![0.0, 0.0]);
        drop(panel);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
