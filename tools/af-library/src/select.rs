//! The library's selection, two ways.
//!
//! [`greedy`]: candidates arrive sorted best first. Each is admitted when its largest
//! |correlation| with the members admitted so far stays below `max_corr`, until
//! `max_size` are in. The values of a candidate are fetched (evaluated) only when it is
//! considered, so a pool of thousands costs as many evaluations as the selection
//! reaches.
//!
//! [`stepwise`] (issue 36, the default): the library is a least-squares combination
//! ([`af_fitness::pool::Pool`]); a candidate joins when it raises the combined IC on
//! train by at least `min_gain` and on valid at all, and when the library is then over
//! `max_size`, the member whose removal costs the least train combined IC leaves (it
//! may be the newcomer). A near-copy is kept out only above a high bound (two copies
//! split one weight).

use af_fitness::pool::Pool;
use anyhow::Result;

/// One admitted factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// Index of the candidate in the pool.
    pub index: usize,
    pub values: Vec<f64>,
    /// Its largest |correlation| with the members admitted before it (0 for the first).
    pub max_corr: f64,
    /// The pool index of that member.
    pub corr_with: Option<usize>,
}

/// Greedy selection over `n` candidates in order: `values(i)` gives candidate i's
/// values, `corr(i, a, j, b)` the correlation of candidates i and j, whose values are
/// `a` and `b` (NaN: not comparable, ignored). Returns the admitted, in admission order,
/// and how many were fetched.
pub fn greedy(
    n: usize,
    max_size: usize,
    max_corr: f64,
    mut values: impl FnMut(usize) -> Result<Vec<f64>>,
    mut corr: impl FnMut(usize, &[f64], usize, &[f64]) -> f64,
) -> Result<(Vec<Admitted>, usize)> {
    let mut admitted: Vec<Admitted> = Vec::new();
    let mut fetched = 0;
    for k in 0..n {
        if admitted.len() >= max_size {
            break;
        }
        let v = values(k)?;
        fetched += 1;
        let mut worst = (0.0f64, None);
        for a in &admitted {
            let c = corr(k, &v, a.index, &a.values).abs();
            if c.is_finite() && c > worst.0 {
                worst = (c, Some(a.index));
            }
        }
        if worst.0 < max_corr {
            admitted.push(Admitted {
                index: k,
                values: v,
                max_corr: worst.0,
                corr_with: worst.1,
            });
        }
    }
    Ok((admitted, fetched))
}

/// What [`stepwise`] chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// Candidate index of each final member, in pool order (the initial members first,
    /// as they stay, then the admitted).
    pub members: Vec<usize>,
    /// What removing each would cost in train combined IC.
    pub contribution: Vec<f64>,
    /// Each member's weight in the combination.
    pub weights: Vec<f64>,
    /// The combination's IC per pool split.
    pub ic: Vec<f64>,
    /// Candidates whose values were fetched, admitted (even if later dropped), and
    /// refused as near-copies.
    pub fetched: usize,
    pub admitted: usize,
    pub near_copies: usize,
}

/// Forward selection with replacement over `order` (candidate indices, most promising
/// first) into `pool`, whose members are candidates `members`. `values(i)` gives
/// candidate i's processed values; `corr(i, a, j, b)` the correlation of candidates i
/// and j (NaN: not comparable).
#[allow(clippy::too_many_arguments)]
pub fn stepwise<V: AsRef<[f64]> + Sync>(
    pool: &mut Pool<V>,
    mut members: Vec<usize>,
    order: &[usize],
    max_size: usize,
    max_corr: f64,
    min_gain: f64,
    mut values: impl FnMut(usize) -> Result<V>,
    mut corr: impl FnMut(usize, &[f64], usize, &[f64]) -> f64,
) -> Result<Chosen> {
    let (mut fetched, mut admitted, mut near_copies) = (0, 0, 0);
    let judged = pool.ic().len() > 1;
    for &k in order {
        let v = values(k)?;
        fetched += 1;
        let near = (0..pool.len()).any(|j| {
            let c = corr(k, v.as_ref(), members[j], pool.member(j).as_ref()).abs();
            c.is_finite() && c >= max_corr
        });
        if near {
            near_copies += 1;
            continue;
        }
        let g = pool.gain(v.as_ref());
        if !(g.gain[0] >= min_gain && (!judged || g.gain[1] > 0.0)) {
            continue;
        }
        pool.push(v);
        members.push(k);
        admitted += 1;
        if pool.len() > max_size {
            let loss = losses(pool);
            let mut j = 0;
            for (i, l) in loss.iter().enumerate() {
                if l.total_cmp(&loss[j]).is_lt() {
                    j = i;
                }
            }
            pool.remove(j);
            members.remove(j);
        }
    }
    Ok(Chosen {
        contribution: losses(pool),
        weights: pool.weights().to_vec(),
        ic: pool.ic().to_vec(),
        members,
        fetched,
        admitted,
        near_copies,
    })
}

/// Train combined IC lost by removing each member.
fn losses<V: AsRef<[f64]> + Sync>(pool: &Pool<V>) -> Vec<f64> {
    let now = pool.ic()[0];
    (0..pool.len())
        .map(|j| {
            let l = now - pool.ic_without(j)[0];
            if l.is_finite() { l } else { 0.0 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pearson(_: usize, a: &[f64], _: usize, b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (x, y) in a.iter().zip(b) {
            sab += (x - ma) * (y - mb);
            saa += (x - ma) * (x - ma);
            sbb += (y - mb) * (y - mb);
        }
        sab / (saa * sbb).sqrt()
    }

    #[test]
    fn keeps_the_best_of_each_family_up_to_the_size() {
        let pool = [
            vec![1.0, 2.0, 3.0, 4.0],     // 0: admitted first
            vec![2.0, 4.1, 6.0, 8.2],     // 1: a near-copy of 0
            vec![4.0, 1.0, 3.0, 2.0],     // 2: different
            vec![-1.0, -2.0, -3.0, -4.1], // 3: 0 negated: |corr| counts
            vec![1.0, 3.0, 3.0, 1.0],     // 4: different again
        ];
        let (got, fetched) = greedy(pool.len(), 10, 0.7, |i| Ok(pool[i].clone()), pearson).unwrap();
        let idx: Vec<usize> = got.iter().map(|a| a.index).collect();
        assert_eq!(idx, [0, 2, 4]);
        assert_eq!(fetched, 5);
        assert_eq!((got[0].max_corr, got[0].corr_with), (0.0, None));
        assert!(got[1].max_corr < 0.7 && got[1].corr_with == Some(0));
        // The size bound stops fetching.
        let (got, fetched) = greedy(pool.len(), 2, 0.7, |i| Ok(pool[i].clone()), pearson).unwrap();
        assert_eq!((got.len(), fetched), (2, 3));
        // A NaN correlation never blocks.
        let (got, _) = greedy(
            pool.len(),
            10,
            0.7,
            |i| Ok(pool[i].clone()),
            |_, _, _, _| f64::NAN,
        )
        .unwrap();
        assert_eq!(got.len(), 5);
        // An error from the evaluator stops the selection.
        assert!(greedy(2, 10, 0.7, |_| anyhow::bail!("bad"), pearson).is_err());
    }

    /// 80 dates × 60 assets, a random label; factors are the label plus noise.
    fn market(dir: &std::path::Path) -> af_panel::Panel {
        use af_panel::{PanelData, write_panel};
        let (nd, na) = (80, 60);
        let mut s = 17u64;
        let data = PanelData {
            dates: (0..nd as i32).map(|d| 19000 + d).collect(),
            codes: (0..na).map(|a| format!("S{a:02}")).collect(),
            fields: vec![
                ("close".into(), vec![1.0; nd * na]),
                (
                    "fwd_ret_1".into(),
                    (0..nd * na).map(|_| uniform(&mut s)).collect(),
                ),
            ],
            ..Default::default()
        };
        let path = dir.join("p.arrow");
        write_panel(&path, data, &af_store::Provenance::new("test", "0")).unwrap();
        af_panel::Panel::open(&path).unwrap()
    }

    fn uniform(s: &mut u64) -> f64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }

    #[test]
    fn stepwise_admits_what_adds_and_drops_the_weakest_when_full() {
        use af_fitness::{Config, Context, Workspace};
        let dir = std::env::temp_dir().join(format!("af-stepwise-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let panel = market(&dir);
        let (nd, na) = (panel.n_dates(), panel.n_assets());
        let all: Vec<usize> = (0..nd).collect();
        let ctx = Context::new(&panel, Config::default(), &all).unwrap();
        let label = panel.field("fwd_ret_1").unwrap().data.to_vec();
        let mut s = 99u64;
        let mut ws = Workspace::default();
        // Two independent noisy views of the label, one half the strength, pure noise,
        // and a near-copy of the first.
        let mut noise =
            |k: f64| -> Vec<f64> { (0..nd * na).map(|_| k * uniform(&mut s)).collect() };
        let n1 = noise(1.0);
        let view = |w: f64, n: &[f64]| -> Vec<f64> {
            label.iter().zip(n).map(|(l, e)| w * l + e).collect()
        };
        let raw = [
            view(1.0, &n1),
            view(1.0, &noise(1.0)),
            view(0.5, &noise(1.0)),
            noise(1.0),
            view(1.0, &n1)
                .iter()
                .zip(noise(0.05))
                .map(|(a, b)| a + b)
                .collect(),
        ];
        let vals: Vec<Vec<f64>> = raw.iter().map(|r| ctx.processed(r, &mut ws)).collect();
        let splits = vec![
            ("train".to_string(), (0..50).collect::<Vec<usize>>()),
            ("valid".to_string(), (51..79).collect()),
        ];
        let corr = |_: usize, a: &[f64], _: usize, b: &[f64]| ctx.mean_corr(a, b, &all);
        let run = |order: &[usize], max_size: usize| {
            let mut pool = Pool::new(&ctx, Vec::<Vec<f64>>::new(), splits.clone());
            stepwise(
                &mut pool,
                Vec::new(),
                order,
                max_size,
                0.95,
                5e-4,
                |k| Ok(vals[k].clone()),
                corr,
            )
            .unwrap()
        };
        let ch = run(&[0, 4, 1, 3, 2], 10);
        // The near-copy (4) is refused as such, the noise (3) adds nothing on valid or
        // too little on train; the three views join.
        assert_eq!(ch.members, [0, 1, 2], "{ch:?}");
        assert_eq!((ch.fetched, ch.admitted, ch.near_copies), (5, 3, 1));
        assert!(ch.contribution.iter().all(|&c| c > 0.0));
        // The weak view contributes least.
        assert!(ch.contribution[2] < ch.contribution[0] && ch.contribution[2] < ch.contribution[1]);
        // Full at 2: the weak view, tried last, is the one that leaves.
        let ch2 = run(&[2, 0, 1], 2);
        assert_eq!(ch2.members, [0, 1], "{ch2:?}");
        assert_eq!(ch2.admitted, 3);
        // The combined IC equals a pool built from the chosen members directly.
        let direct = Pool::new(&ctx, vec![vals[0].clone(), vals[1].clone()], splits.clone());
        assert_eq!(direct.ic(), &ch2.ic[..]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
