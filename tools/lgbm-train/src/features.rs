//! Features and label as the model sees them: each library factor normalised per date
//! across the universe (ranks or z-scores), the label the forward return's
//! cross-sectional rank, and the per-date RankIC used to judge every fold.

/// Per-date normalisation of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    /// Percentile rank in (0, 1] (ties averaged) minus 0.5.
    Rank,
    /// (x − mean) / std (ddof 1).
    ZScore,
}

/// Average ranks (1-based) of the finite values of `x` at positions `idx`, written to
/// `out[idx[k]]`; returns how many were ranked.
fn ranks_into(x: &[f64], idx: &mut Vec<usize>, out: &mut [f64]) -> usize {
    idx.retain(|&i| x[i].is_finite());
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let n = idx.len();
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && x[idx[j]] == x[idx[i]] {
            j += 1;
        }
        let r = (i + j + 1) as f64 / 2.0; // mean of ranks i+1 ..= j
        for &k in &idx[i..j] {
            out[k] = r;
        }
        i = j;
    }
    n
}

/// Normalise `x` (`[date][asset]`) per date over the universe; NaN outside it.
pub fn normalize(x: &[f64], universe: &[bool], na: usize, norm: Norm) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    let mut idx = Vec::with_capacity(na);
    for (t, (row, o)) in x.chunks(na).zip(out.chunks_mut(na)).enumerate() {
        let u = &universe[t * na..(t + 1) * na];
        idx.clear();
        idx.extend((0..na).filter(|&a| u[a]));
        match norm {
            Norm::Rank => {
                let n = ranks_into(row, &mut idx, o);
                for &k in &idx {
                    o[k] = o[k] / n as f64 - 0.5;
                }
            }
            Norm::ZScore => {
                idx.retain(|&i| row[i].is_finite());
                let n = idx.len();
                if n < 2 {
                    continue;
                }
                let m = idx.iter().map(|&i| row[i]).sum::<f64>() / n as f64;
                let v = idx.iter().map(|&i| (row[i] - m).powi(2)).sum::<f64>() / (n - 1) as f64;
                let s = v.sqrt();
                if s > 0.0 && s.is_finite() {
                    for &k in &idx {
                        o[k] = (row[k] - m) / s;
                    }
                }
            }
        }
    }
    out
}

/// Spearman correlation of the pairs where both are finite (NaN with fewer than 3).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let keep: Vec<usize> = (0..a.len())
        .filter(|&i| a[i].is_finite() && b[i].is_finite())
        .collect();
    if keep.len() < 3 {
        return f64::NAN;
    }
    let (mut ra, mut rb) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    ranks_into(a, &mut keep.clone(), &mut ra);
    ranks_into(b, &mut keep.clone(), &mut rb);
    let n = keep.len() as f64;
    let (ma, mb) = (
        keep.iter().map(|&i| ra[i]).sum::<f64>() / n,
        keep.iter().map(|&i| rb[i]).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for &i in &keep {
        let (x, y) = (ra[i] - ma, rb[i] - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa > 0.0 && sbb > 0.0 {
        sab / (saa * sbb).sqrt()
    } else {
        f64::NAN
    }
}

/// Mean over `dates` of the per-date Spearman correlation between `x` and `label`
/// (`[date][asset]` matrices) over the universe; dates where it is undefined are
/// skipped. Returns (mean, dates used).
pub fn mean_rank_ic(
    x: &[f64],
    label: &[f64],
    universe: &[bool],
    na: usize,
    dates: std::ops::Range<usize>,
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
    fn ranks_and_zscores_per_date() {
        let x = [3.0, 1.0, f64::NAN, 1.0, 10.0, 20.0, 30.0, 40.0];
        let u = [true, true, true, true, true, true, true, false];
        let r = normalize(&x, &u, 4, Norm::Rank);
        // date 0: values 3,1,_,1 -> ranks 3, 1.5, _, 1.5 of 3
        assert_eq!(r[0], 1.0 - 0.5);
        assert_eq!(r[1], 0.5 - 0.5);
        assert!(r[2].is_nan());
        // date 1: 40 is outside the universe
        assert_eq!(&r[4..7], &[1.0 / 3.0 - 0.5, 2.0 / 3.0 - 0.5, 0.5]);
        assert!(r[7].is_nan());
        let z = normalize(&x, &u, 4, Norm::ZScore);
        assert!((z[4] + 1.0).abs() < 1e-12 && z[5].abs() < 1e-12 && (z[6] - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 45.0]) - 1.0).abs() < 1e-12);
        assert!(spearman(&[1.0, 2.0], &[1.0, 2.0]).is_nan());
    }
}
