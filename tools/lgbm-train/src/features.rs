//! Features and label as the model sees them: each library factor normalised per date
//! across the universe (ranks or z-scores), the label the forward return's
//! cross-sectional rank (folds are judged by `af_fitness::stats::mean_rank_ic`).

use af_fitness::stats::average_ranks;

/// Per-date normalisation of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Norm {
    /// Percentile rank in (0, 1] (ties averaged) minus 0.5.
    Rank,
    /// (x − mean) / std (ddof 1).
    #[value(name = "zscore")]
    ZScore,
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
                let n = average_ranks(row, &mut idx, o);
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
    }
}
