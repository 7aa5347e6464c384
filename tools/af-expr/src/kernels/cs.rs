//! Cross-sectional kernels: per date, over the assets that are in the universe and
//! have a value; every other cell is NaN. Rows run in parallel; each task reuses its
//! scratch buffers across dates.

use rayon::prelude::*;

use super::finite_or_nan;
use super::ts::quantile_sorted;

/// Which cross-sectional op, with its parameter.
#[derive(Debug, Clone, Copy)]
pub enum CsOp {
    Rank,
    ZScore,
    Demean,
    Scale(f64),
    Winsorize(f64),
    GroupNeutralize,
    GroupRank,
    GroupMean,
}

struct Scratch {
    idx: Vec<u32>,
    rank: RankScratch,
    vals: Vec<f64>,
    gsum: Vec<f64>,
    gcnt: Vec<u32>,
}

/// An integer whose order is the order of the (non-NaN) float; -0 and +0 share a key,
/// as they compare equal.
#[inline]
pub fn order_key(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// Reused buffers of [`rank_row`].
#[derive(Default)]
pub struct RankScratch {
    packed: Vec<u64>,
    tmp: Vec<u64>,
    hist: Vec<u32>,
}

impl RankScratch {
    /// After [`rank_row`]: the cell holding the `k`-th smallest value (0-based), so
    /// callers can read order statistics (quantile edges) without sorting again.
    #[inline]
    pub fn sorted_cell(&self, k: usize) -> usize {
        (self.packed[k] & 0xffff_ffff) as usize
    }
}

/// The radix digits (shift, buckets) of the packed key's high word: 11, 11 and 10 bits.
const DIGITS: [(u32, usize); 3] = [(32, 1 << 11), (43, 1 << 11), (54, 1 << 10)];
/// Bits of the range-scaled key the radix passes sort on: 22, the first two digits, so
/// the third pass is skipped (every key has digit 0 there). A cross-section of a few
/// thousand cells rarely puts two distinct values in one of 4 M digits, and the runs
/// that do share one are ordered by the full key below; one scatter pass fewer.
const SORT_BITS: u32 = DIGITS[1].0 + DIGITS[1].1.trailing_zeros() - 32;
/// Below this many cells a comparison sort beats clearing the radix histograms.
const RADIX_MIN: usize = 512;

/// Stable LSD radix sort of `v` by its high 32 bits in three passes of 11/11/10 bits
/// (a pass is skipped when every key shares its digit). The histograms (20 KB) stay in
/// L1 and are all filled in one read of the keys.
fn radix32(v: &mut Vec<u64>, tmp: &mut Vec<u64>, hist: &mut Vec<u32>) {
    let n = v.len();
    hist.clear();
    hist.resize(DIGITS.iter().map(|d| d.1).sum(), 0);
    let (h0, rest) = hist.split_at_mut(DIGITS[0].1);
    let (h1, h2) = rest.split_at_mut(DIGITS[1].1);
    for &k in v.iter() {
        h0[(k >> DIGITS[0].0) as usize & (DIGITS[0].1 - 1)] += 1;
        h1[(k >> DIGITS[1].0) as usize & (DIGITS[1].1 - 1)] += 1;
        h2[(k >> DIGITS[2].0) as usize & (DIGITS[2].1 - 1)] += 1;
    }
    tmp.clear();
    tmp.resize(n, 0);
    for (h, (shift, size)) in [h0, h1, h2].into_iter().zip(DIGITS) {
        if h.contains(&(n as u32)) {
            continue;
        }
        let mut sum = 0u32;
        for c in h.iter_mut() {
            let x = *c;
            *c = sum;
            sum += x;
        }
        for &k in v.iter() {
            let b = (k >> shift) as usize & (size - 1);
            let at = h[b] as usize;
            // The histogram's prefix sums place every key inside `tmp` (n slots).
            if let Some(slot) = tmp.get_mut(at) {
                *slot = k;
            }
            h[b] += 1;
        }
        std::mem::swap(v, tmp);
    }
}

/// Average-tie percentile ranks (rank / n) of the cells `idx` of row `xr`, written to
/// `out`. Each cell's order key, minus the row's smallest, is cut to its top 22
/// significant bits, so the radix passes spend themselves on the bits that actually
/// differ in this cross-section (prices share sign and most exponent bits; a narrow
/// range shares the high mantissa too) and a row spanning zero or many binades still
/// keeps ~10 mantissa bits. Cells are packed with that digit in the high
/// word and their index in the low word and sorted as plain integers (no indirection,
/// no float compares: what dominates cross-sectional ranks); the rare runs that share
/// the digit are then ordered by the full key, so ranks and ties are exact.
pub fn rank_row(xr: &[f64], idx: &[u32], sc: &mut RankScratch, out: &mut [f64]) {
    const LOW: u64 = 0xffff_ffff;
    let n = idx.len();
    if n == 0 {
        return;
    }
    let packed = &mut sc.packed;
    packed.clear();
    packed.extend(idx.iter().map(|&a| order_key(xr[a as usize])));
    let (lo, hi) = packed
        .iter()
        .fold((u64::MAX, 0u64), |(l, h), &k| (l.min(k), h.max(k)));
    let span_bits = 64 - (hi - lo).leading_zeros();
    let shift = span_bits.saturating_sub(SORT_BITS);
    for (p, &a) in packed.iter_mut().zip(idx) {
        *p = (((*p - lo) >> shift) << 32) | a as u64;
    }
    if n < RADIX_MIN {
        packed.sort_unstable();
    } else {
        radix32(packed, &mut sc.tmp, &mut sc.hist);
    }
    let nf = n as f64;
    let full = |p: u64| order_key(xr[(p & LOW) as usize]);
    let mut i = 0;
    while i < n {
        let hi = packed[i] >> 32;
        let mut j = i + 1;
        while j < n && packed[j] >> 32 == hi {
            j += 1;
        }
        if j == i + 1 {
            out[(packed[i] & LOW) as usize] = (i + 1) as f64 / nf;
            i = j;
            continue;
        }
        if shift > 0 {
            packed[i..j].sort_unstable_by_key(|p| full(*p));
        }
        let mut a = i;
        while a < j {
            let ka = full(packed[a]);
            let mut b = a + 1;
            while b < j && full(packed[b]) == ka {
                b += 1;
            }
            let r = ((a + b - 1) as f64 / 2.0 + 1.0) / nf;
            for p in &packed[a..b] {
                out[(p & LOW) as usize] = r;
            }
            a = b;
        }
        i = j;
    }
}

pub fn apply(
    op: CsOp,
    x: &[f64],
    universe: &[bool],
    groups: Option<&[i32]>,
    nd: usize,
    na: usize,
) -> Vec<f64> {
    // Each row is filled with NaN by its own task, while it is in cache, instead of in a
    // separate pass over the whole matrix.
    let mut out = super::buf::take(nd * na);
    let ngroups = groups
        .map(|g| g.iter().copied().max().unwrap_or(0).max(0) as usize + 1)
        .unwrap_or(1);
    out.par_chunks_mut(na).enumerate().for_each_init(
        || Scratch {
            idx: Vec::with_capacity(na),
            rank: RankScratch::default(),
            vals: Vec::with_capacity(na),
            gsum: vec![0.0; ngroups],
            gcnt: vec![0; ngroups],
        },
        |s, (t, row)| {
            row.fill(f64::NAN);
            let xr = &x[t * na..(t + 1) * na];
            let ur = &universe[t * na..(t + 1) * na];
            s.idx.clear();
            for a in 0..na {
                if ur[a] && !xr[a].is_nan() {
                    s.idx.push(a as u32);
                }
            }
            let n = s.idx.len();
            if n == 0 {
                return;
            }
            match op {
                CsOp::Rank => {
                    // Ranks are finite by construction.
                    rank_row(xr, &s.idx, &mut s.rank, row);
                    return;
                }
                CsOp::ZScore | CsOp::Demean | CsOp::Scale(_) => {
                    let m = s.idx.iter().map(|&a| xr[a as usize]).sum::<f64>() / n as f64;
                    match op {
                        CsOp::Demean => s
                            .idx
                            .iter()
                            .for_each(|&a| row[a as usize] = xr[a as usize] - m),
                        CsOp::ZScore => {
                            if n < 2 {
                                return;
                            }
                            let v = s
                                .idx
                                .iter()
                                .map(|&a| (xr[a as usize] - m).powi(2))
                                .sum::<f64>()
                                / (n - 1) as f64;
                            let sd = v.sqrt();
                            if sd > 0.0 {
                                s.idx
                                    .iter()
                                    .for_each(|&a| row[a as usize] = (xr[a as usize] - m) / sd);
                            }
                        }
                        CsOp::Scale(k) => {
                            let l1 = s.idx.iter().map(|&a| xr[a as usize].abs()).sum::<f64>();
                            if l1 > 0.0 {
                                s.idx
                                    .iter()
                                    .for_each(|&a| row[a as usize] = xr[a as usize] * k / l1);
                            }
                        }
                        _ => {}
                    }
                }
                CsOp::Winsorize(q) => {
                    s.vals.clear();
                    s.vals.extend(s.idx.iter().map(|&a| xr[a as usize]));
                    s.vals.sort_unstable_by(f64::total_cmp);
                    let (lo, hi) = (
                        quantile_sorted(&s.vals, q),
                        quantile_sorted(&s.vals, 1.0 - q),
                    );
                    s.idx
                        .iter()
                        .for_each(|&a| row[a as usize] = xr[a as usize].clamp(lo, hi));
                }
                CsOp::GroupNeutralize | CsOp::GroupMean => {
                    let g = &groups.expect("group op without groups")[t * na..(t + 1) * na];
                    s.gsum.iter_mut().for_each(|v| *v = 0.0);
                    s.gcnt.iter_mut().for_each(|v| *v = 0);
                    for &a in &s.idx {
                        let k = g[a as usize].max(0) as usize;
                        s.gsum[k] += xr[a as usize];
                        s.gcnt[k] += 1;
                    }
                    for &a in &s.idx {
                        let k = g[a as usize].max(0) as usize;
                        let m = s.gsum[k] / s.gcnt[k] as f64;
                        row[a as usize] = if matches!(op, CsOp::GroupMean) {
                            m
                        } else {
                            xr[a as usize] - m
                        };
                    }
                }
                CsOp::GroupRank => {
                    let g = &groups.expect("group op without groups")[t * na..(t + 1) * na];
                    // Sort by group, then rank by value within each run of a group.
                    s.idx.sort_unstable_by_key(|a| g[*a as usize]);
                    let mut i = 0;
                    while i < n {
                        let mut j = i;
                        while j + 1 < n && g[s.idx[j + 1] as usize] == g[s.idx[i] as usize] {
                            j += 1;
                        }
                        rank_row(xr, &s.idx[i..=j], &mut s.rank, row);
                        i = j + 1;
                    }
                }
            }
            for v in row.iter_mut() {
                *v = finite_or_nan(*v);
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_exact_with_ties_and_shared_high_bits() {
        // Values that share their top 32 key bits but differ below, exact ties, -0/+0.
        let base = 1000.0f64;
        let mut x: Vec<f64> = (0..3000)
            .map(|i| base + ((i * 7919) % 997) as f64 * 1e-9 * if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        x[5] = -0.0;
        x[6] = 0.0;
        x[7] = f64::MAX;
        let idx: Vec<u32> = (0..x.len() as u32).collect();
        let mut out = vec![0.0; x.len()];
        rank_row(&x, &idx, &mut RankScratch::default(), &mut out);
        let n = x.len() as f64;
        for (i, v) in x.iter().enumerate().step_by(37) {
            let lt = x.iter().filter(|u| *u < v).count() as f64;
            let eq = x.iter().filter(|u| *u == v).count() as f64;
            assert_eq!(out[i], (lt + (eq + 1.0) / 2.0) / n, "cell {i}");
        }
        assert_eq!(out[5], out[6]);
    }

    #[test]
    fn ranks_match_brute_force_for_every_path() {
        // Sizes on both sides of RADIX_MIN; wide, narrow and integer-valued rows; a
        // subset of cells (idx) as the universe leaves.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for &n in &[1usize, 2, 7, 300, 511, 512, 2000, 5000] {
            for kind in 0..5 {
                let x: Vec<f64> = (0..n)
                    .map(|_| match kind {
                        0 => (next() - 0.5) * 1e6,
                        1 => 100.0 + next() * 1e-10,
                        2 => (next() * 30.0).floor(),
                        3 => (next() * 40.0 - 20.0).exp(),
                        // Returns: both signs, ticks, exact zeros and -0, values far
                        // below the row's scale, an infinity.
                        _ => match (next() * 50.0) as u32 {
                            0 => 0.0,
                            1 => -0.0,
                            2 => -1e-300 * next(),
                            3 => 1e-12 * next(),
                            4 if n > 1000 => f64::INFINITY,
                            _ => ((next() - 0.5) * 2000.0).round() / 10000.0,
                        },
                    })
                    .collect();
                let idx: Vec<u32> = (0..n as u32).filter(|a| a % 5 != 3 || n < 3).collect();
                let mut out = vec![f64::NAN; n];
                let mut sc = RankScratch::default();
                rank_row(&x, &idx, &mut sc, &mut out);
                let m = idx.len() as f64;
                for &a in &idx {
                    let v = x[a as usize];
                    let lt = idx.iter().filter(|&&b| x[b as usize] < v).count() as f64;
                    let eq = idx.iter().filter(|&&b| x[b as usize] == v).count() as f64;
                    assert_eq!(
                        out[a as usize],
                        (lt + (eq + 1.0) / 2.0) / m,
                        "n {n} kind {kind}"
                    );
                }
                for k in 1..idx.len() {
                    assert!(x[sc.sorted_cell(k - 1)] <= x[sc.sorted_cell(k)]);
                }
            }
        }
    }
}
