//! The library's greedy selection: best first, admit while de-correlated.
//!
//! Candidates arrive sorted best first. Each is admitted when its largest |correlation|
//! with the members admitted so far stays below `max_corr`, until `max_size` are in.
//! The values of a candidate are fetched (evaluated) only when it is considered, so a
//! pool of thousands costs as many evaluations as the selection reaches.

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
}
