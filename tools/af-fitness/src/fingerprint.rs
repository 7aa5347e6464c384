//! Value fingerprints (issue 36): never pay twice for the same values.
//!
//! GP proposes many trees with different text and the same values — `x + x` and `2 * x`,
//! `rank(rank(x))` and `rank(x)`, a window moved where the field is constant. Their
//! ranking is identical, so every figure fitness computes from ranks is too, and the
//! processed values nearly so. A fingerprint hashes a factor's per-date percentile
//! ranks on a fixed sample of dates (rounded, NaN marked, in asset order): equal ranks
//! give equal fingerprints, whatever the scale or the monotone transform. `fitness`
//! computes it on the FAST subsample and skips the FULL pass of a candidate whose
//! fingerprint an earlier candidate or a library member already has (`equivalent`).

use af_expr::kernels::cs::{RankScratch, rank_row};

/// Dates sampled from the given ones.
pub const SAMPLE_DATES: usize = 16;

/// The sample: up to [`SAMPLE_DATES`] dates evenly spread over `dates` (sorted).
pub fn sample(dates: &[usize]) -> Vec<usize> {
    let n = dates.len();
    if n <= SAMPLE_DATES {
        return dates.to_vec();
    }
    (0..SAMPLE_DATES)
        .map(|i| dates[i * (n - 1) / (SAMPLE_DATES - 1)])
        .collect()
}

/// The fingerprint of `x` (`[n_dates][n_assets]`, `na` assets per row) on `dates`:
/// 16 hex digits. `None` when `x` has no finite value there (nothing to compare).
pub fn of(x: &[f64], na: usize, dates: &[usize]) -> Option<String> {
    let mut h = Fnv::default();
    let mut sc = RankScratch::default();
    let mut out = vec![f64::NAN; na];
    let mut any = false;
    for &t in dates {
        let Some(row) = x.get(t * na..(t + 1) * na) else {
            continue;
        };
        let idx: Vec<u32> = (0..na as u32)
            .filter(|&a| row[a as usize].is_finite())
            .collect();
        out.fill(f64::NAN);
        rank_row(row, &idx, &mut sc, &mut out);
        h.write(&(t as u64).to_le_bytes());
        for r in &out {
            // Ranks are k/n or averages of them: 1e-9 rounding keeps every distinct
            // rank distinct (n < 1e9) and absorbs the last-bit noise of averaging.
            let v: i64 = if r.is_finite() {
                any = true;
                (r * 1e9).round() as i64
            } else {
                i64::MIN
            };
            h.write(&v.to_le_bytes());
        }
    }
    any.then(|| format!("{:016x}", h.0))
}

/// FNV-1a, 64 bit: fixed across processes and platforms (std's hasher is seeded).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, b: &[u8]) {
        for x in b {
            self.0 = (self.0 ^ *x as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_ranks_equal_fingerprints_and_the_bits_are_fixed() {
        let (nd, na) = (30, 12);
        let mut u = crate::test_uniform(5);
        let x: Vec<f64> = (0..nd * na)
            .map(|i| if i % 7 == 0 { f64::NAN } else { u() })
            .collect();
        let dates = sample(&(0..nd).collect::<Vec<_>>());
        assert_eq!(dates.len(), 16);
        assert_eq!((dates[0], dates[15]), (0, 29));
        let f = of(&x, na, &dates).unwrap();
        // Scale, shift and a monotone transform: the same ranks.
        let y: Vec<f64> = x.iter().map(|v| (3.0 * v + 1.0).exp()).collect();
        assert_eq!(of(&y, na, &dates).unwrap(), f);
        // Two cells swapped on a sampled date: different.
        let mut z = x.clone();
        z.swap(1, 2);
        assert_ne!(of(&z, na, &dates).unwrap(), f);
        // A cell NaN that was not: different.
        let mut w = x.clone();
        w[1] = f64::NAN;
        assert_ne!(of(&w, na, &dates).unwrap(), f);
        // Nothing finite: no fingerprint.
        assert_eq!(of(&vec![f64::NAN; nd * na], na, &dates), None);
        // Fixed bits: a resumed run (another process, another day) gets the same one.
        assert_eq!(f, of(&x, na, &dates).unwrap());
        assert_eq!(f.len(), 16);
        let known = of(
            &(0..nd * na).map(|i| (i % 5) as f64).collect::<Vec<_>>(),
            na,
            &dates,
        );
        assert_eq!(known.as_deref(), Some(KNOWN));
    }

    /// The fingerprint of `(i % 5)` on 30 × 12: fixes the hash, the rounding and the
    /// rank convention, so a change that would break resumed runs fails here.
    const KNOWN: &str = "a30530774659fbf1";
}
