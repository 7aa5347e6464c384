//! The scoring passes: candidates evaluated in batches (shared sub-expressions once,
//! cache entries read where present) and scored on the splits; a failing batch is
//! re-scored one candidate at a time so one bad candidate cannot take others with it.

use std::time::Instant;

use af_cache::Cache;
use af_expr::eval::NodeCache;
use af_expr::{Expr, Program};
use af_fitness::pool::{Gain, Pool};
use af_fitness::split::Split;
use af_fitness::{Context, Library, SplitEval, Workspace};
use af_panel::Panel;
use anyhow::{Result, anyhow};

/// One candidate as read, and what became of it.
pub struct Cand {
    pub source: String,
    pub generation: i64,
    pub expr: Result<Expr, String>,
    /// Set when nothing could be scored (NaN everywhere, constant …).
    pub degenerate: Option<String>,
    /// The figures of each pass on the horizon it picked (the best one).
    pub fast: Option<Vec<SplitEval>>,
    pub full: Option<Vec<SplitEval>>,
    /// The last pass's pick: the horizon's index in `--horizons`, and every horizon's
    /// figure of merit (one entry per horizon).
    pub horizon: usize,
    pub by_horizon: Vec<f64>,
    /// What it adds to the library's combination (FULL pass, primary horizon).
    pub pool: Option<Gain>,
    /// Its value fingerprint on the FAST subsample ([`af_fitness::fingerprint`]).
    pub fingerprint: Option<String>,
}

/// One horizon of a pass: its context (label), the splits' usable dates (purged of the
/// label's last days) and the library for the near-copy check (empty: none).
pub struct Horizon<'c, 'p> {
    pub ctx: &'c Context<'p>,
    pub splits: Vec<(String, Vec<usize>)>,
    pub library: Library<'c>,
    /// The library as a least-squares combination, for the pool gain (FULL pass,
    /// primary horizon only).
    pub pool: Option<Pool<'c, 'p, &'c [f64]>>,
}

/// Which horizon a candidate takes, from its figures on each: (index, each one's merit).
pub type Pick<'a> = &'a dyn Fn(usize, &[Vec<SplitEval>]) -> (usize, Vec<f64>);

/// `--shard i/n`: the candidates whose key (content id; the source text when it does
/// not parse) hashes to i mod n. By key, not position, so a shard holds the same
/// candidates however the list is ordered, and `fitness --merge` of all n shards equals
/// the unsharded file byte for byte.
pub fn shard(spec: &str, keys: &[String]) -> Result<Vec<usize>> {
    let (i, n) = parse_shard(spec)?;
    Ok((0..keys.len())
        .filter(|&k| fnv1a(keys[k].as_bytes()) % n as u64 == i as u64)
        .collect())
}

/// `i/n` with 0 <= i < n.
pub fn parse_shard(spec: &str) -> Result<(usize, usize)> {
    let bad = || anyhow!("--shard {spec}: expected I/N with 0 <= I < N, e.g. 0/4");
    let (i, k) = spec.split_once('/').ok_or_else(bad)?;
    let (i, k): (usize, usize) = (i.parse().map_err(|_| bad())?, k.parse().map_err(|_| bad())?);
    if k == 0 || i >= k {
        return Err(bad());
    }
    Ok((i, k))
}

/// FNV-1a: a fixed hash (the std hasher is randomly seeded per process).
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ *x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where a pass spent its time, and its peak intermediate memory.
#[derive(Default)]
pub struct PassStats {
    pub peak: usize,
    pub eval_secs: f64,
    pub score_secs: f64,
}

/// Evaluate `idx` candidates on `panel` in batches and score each on every horizon's
/// splits; `pick` (given the candidate's index) chooses the horizon it keeps. The
/// expression is evaluated once whatever the number of horizons.
#[allow(clippy::too_many_arguments)]
pub fn score_pass(
    panel: &Panel,
    horizons: &[Horizon],
    pick: Pick,
    cands: &mut [Cand],
    idx: &[usize],
    batch: usize,
    fast: bool,
    fingerprint: Option<&[usize]>,
    mut cache: Option<&mut Cache>,
) -> Result<PassStats> {
    let mut ws = Workspace::default();
    let mut peak = 0;
    let (mut total, mut scoring) = (0.0, 0.0);
    for chunk in idx.chunks(batch.max(1)) {
        let exprs: Vec<Expr> = chunk
            .iter()
            .map(|&i| {
                cands[i]
                    .expr
                    .clone()
                    .expect("only valid candidates are scored")
            })
            .collect();
        let prog = Program::compile(&exprs);
        if let Some(c) = cache.as_deref_mut().filter(|c| c.present()) {
            c.load(panel, &prog.node_ids());
        }
        type Evals = (Vec<Vec<SplitEval>>, Option<Gain>, Option<String>);
        let mut results: Vec<(usize, Result<Evals, String>)> = Vec::new();
        let t_run = Instant::now();
        let run = prog.run_cached(
            panel,
            cache.as_deref().map(|c| c as &dyn NodeCache),
            |k, v| {
                let t_score = Instant::now();
                let mut gain = None;
                let fp =
                    fingerprint.and_then(|d| af_fitness::fingerprint::of(v, panel.n_assets(), d));
                let mut all: Vec<Vec<SplitEval>> = Vec::with_capacity(horizons.len());
                for h in horizons {
                    all.push(h.ctx.evaluate(v, &h.splits, &h.library, &mut ws));
                    // The processed rows of this horizon's split dates are in `ws` now.
                    if let Some(p) = &h.pool {
                        gain = Some(p.gain(&ws.resid));
                    }
                }
                scoring += t_score.elapsed().as_secs_f64();
                // Coverage and usable dates hardly depend on the label: the primary
                // horizon tells whether anything could be scored.
                let evals = &all[0];
                let cov: u64 = evals
                    .iter()
                    .flat_map(|e| &e.dates)
                    .map(|d| d.n_cov as u64)
                    .sum();
                let r = if cov == 0 {
                    Err("degenerate: NaN everywhere in the universe on the split dates".to_string())
                } else if evals.iter().all(|e| e.summary.dates_used == 0) {
                    let mut why: std::collections::BTreeMap<&str, usize> = Default::default();
                    for e in evals {
                        for (r, c) in &e.summary.dropped {
                            *why.entry(r).or_default() += c;
                        }
                    }
                    let why: Vec<String> =
                        why.iter().map(|(r, c)| format!("{c} dates {r}")).collect();
                    Err(format!("degenerate: no usable date ({})", why.join(", ")))
                } else {
                    Ok((std::mem::take(&mut all), gain, fp))
                };
                results.push((chunk[k], r));
                Ok(())
            },
        );
        total += t_run.elapsed().as_secs_f64();
        match run {
            Ok(st) => {
                peak = peak.max(st.peak_bytes);
                if let Some(c) = cache.as_deref_mut() {
                    c.record(&prog, &st);
                }
            }
            Err(e) if chunk.len() > 1 => {
                // One bad candidate must not take its batch with it: one at a time.
                drop(results);
                let sub = score_pass(
                    panel,
                    horizons,
                    pick,
                    cands,
                    chunk,
                    1,
                    fast,
                    fingerprint,
                    cache.as_deref_mut(),
                )?;
                peak = peak.max(sub.peak);
                total += sub.eval_secs + sub.score_secs;
                scoring += sub.score_secs;
                let _ = e;
                continue;
            }
            Err(e) => {
                for &i in chunk {
                    cands[i].expr = Err(format!("invalid: {e:#}"));
                }
                continue;
            }
        }
        for (i, r) in results {
            match r {
                Ok((mut all, gain, fp)) => {
                    if fp.is_some() {
                        cands[i].fingerprint = fp;
                    }
                    let (h, merits) = pick(i, &all);
                    if gain.is_some() {
                        cands[i].pool = gain;
                    }
                    let ev = all.swap_remove(h);
                    cands[i].horizon = h;
                    cands[i].by_horizon = merits;
                    if fast {
                        cands[i].fast = Some(ev);
                    } else {
                        cands[i].full = Some(ev);
                    }
                }
                Err(msg) => cands[i].degenerate = Some(msg),
            }
        }
    }
    Ok(PassStats {
        peak,
        eval_secs: total - scoring,
        score_secs: scoring,
    })
}

pub fn usable(splits: &[Split], horizon: usize, step: usize) -> Vec<(String, Vec<usize>)> {
    splits
        .iter()
        .map(|s| (s.name.clone(), s.usable(horizon, step)))
        .collect()
}
