//! Niching: how much of a candidate a better candidate of the same generation already
//! has. GP selection discounts by it (`gp-gen --niche-pressure`), so one strong family
//! cannot fill the population with its variants while other signals starve — the
//! library-correlation discount alone only acts on what the library already holds.
//!
//! Each fully scored candidate keeps its processed values on a few sample dates of the
//! train split ([`sample_dates`]); [`population_max_corr`] then walks the candidates from
//! best merit down and records, for each, the largest |mean per-date Pearson
//! correlation| with any candidate ranked above it. The best of a family gets 0-ish, its
//! near-copies nearly 1: a "clearing" scheme, deterministic (fixed order, per-pair sums in
//! date order) and cheap (a few dozen dates).

use rayon::prelude::*;

use crate::stats::{mean_std, pearson_pairs};

/// At most `n` dates spread evenly over `dates` (in order).
pub fn sample_dates(dates: &[usize], n: usize) -> Vec<usize> {
    if dates.len() <= n {
        return dates.to_vec();
    }
    (0..n).map(|k| dates[k * dates.len() / n]).collect()
}

/// Mean over sample dates of the per-date Pearson correlation of two candidates' sampled
/// values (`na` assets per date; dates where it is undefined are skipped).
pub fn sample_corr(a: &[f64], b: &[f64], na: usize) -> f64 {
    let per_date = a
        .chunks(na)
        .zip(b.chunks(na))
        .map(|(x, y)| pearson_pairs(x, y));
    mean_std(per_date.collect::<Vec<_>>().into_iter()).0
}

/// For each candidate (`samples[i]`, `None` when it has no sample), the largest |mean
/// correlation| with a candidate earlier in `order` (best merit first); NaN for the first
/// and for those without a sample.
pub fn population_max_corr(samples: &[Option<&[f64]>], order: &[usize], na: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; samples.len()];
    let ranked: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| samples[i].is_some())
        .collect();
    let vals: Vec<(usize, f64)> = (0..ranked.len())
        .into_par_iter()
        .map(|k| {
            let i = ranked[k];
            let a = samples[i].expect("filtered");
            let m = ranked[..k]
                .iter()
                .map(|&j| sample_corr(a, samples[j].expect("filtered"), na).abs())
                .filter(|c| c.is_finite())
                .fold(f64::NAN, f64::max);
            (i, m)
        })
        .collect();
    for (i, m) in vals {
        out[i] = m;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_dates_spread_evenly() {
        let d: Vec<usize> = (10..110).collect();
        assert_eq!(sample_dates(&d, 4), vec![10, 35, 60, 85]);
        assert_eq!(sample_dates(&d[..3], 4), vec![10, 11, 12]);
    }

    #[test]
    fn each_candidate_is_measured_against_the_better_ones_only() {
        // Two dates of four assets. b is a (scaled, so corr 1), c is -a plus noise,
        // d unrelated; NaN cells are skipped.
        let a = [1.0, 2.0, 3.0, 4.0, 4.0, 1.0, 2.0, 3.0];
        let b = [2.0, 4.0, 6.0, 8.0, 8.0, 2.0, 4.0, f64::NAN];
        let c = [-1.0, -2.1, -2.9, -4.0, -4.0, -1.2, -2.0, -3.0];
        let d = [1.0, -1.0, -1.0, 1.0, 1.0, 1.0, -1.0, -1.0];
        let s = [Some(&a[..]), Some(&b[..]), Some(&c[..]), Some(&d[..]), None];
        // Merit order: d best, then a, b, c; the last has no sample.
        let r = population_max_corr(&s, &[3, 0, 1, 2, 4], 4);
        assert!(r[3].is_nan(), "the best has nothing above it");
        assert!(r[0] < 0.5, "a is unlike d: {}", r[0]);
        assert!((r[1] - 1.0).abs() < 1e-9, "b copies a: {}", r[1]);
        assert!(r[2] > 0.95, "c mirrors a (sign is free): {}", r[2]);
        assert!(r[4].is_nan());
        // Same inputs, same bits.
        assert_eq!(
            r.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            population_max_corr(&s, &[3, 0, 1, 2, 4], 4)
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        );
    }
}
