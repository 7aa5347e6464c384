//! `fitness`: score candidate factors on a panel. Argument parsing, candidate I/O and
//! the FAST→FULL schedule; the figures themselves are `af-fitness`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use af_cache::Cache;
use af_expr::{Dialect, parse_canonical};
use af_fitness::Library as LibraryRows;
use af_fitness::fingerprint;
use af_fitness::pool::{self, Pool};
use af_fitness::prep::Winsor;
use af_fitness::processing::{Neutralize, Processing, defaults};
use af_fitness::split::{self, Split};
use af_fitness::{Config, Context, Score, ScoreConfig, score};
use af_library::Library;
use af_panel::Panel;
use af_store::{OutputLock, Provenance, sha256_file};
use af_table::write_parquet_kv;
use anyhow::{Result, anyhow, bail};
use clap::Parser;

mod merge;
mod output;
mod pass;

use output::{RowIn, Rows, ic_series};
use pass::{Cand, Horizon, PassStats, score_pass, shard, usable};

const ABOUT: &str = "Score candidate factors: per date winsorize, z-score, neutralize on industry \
and size, then IC / RankIC / ICIR, turnover and quintile returns on train/valid/test \
splits. The score (what GP selects on) comes from the train split only.";

const EXAMPLES: &str = "\
Examples:
  fitness --panel data/panel/csi500.arrow --candidates out/candidates/gen-000.parquet \\
          --horizon 5 --out out/candidates/gen-000.fitness.parquet
  fitness --panel data/panel/csi500.arrow --candidates ideas.txt --horizon 1 --split all \\
          --out out/look.parquet --ic-series out/look.ic.parquet
  fitness ... --splits 'train=..2019-12-31,valid=2020-01-02..2020-12-31,test=2021-01-04..'
  fitness ... --fast --fast-threshold 0.01      # screen on a subsample, full pass for the best

Candidates: a Parquet table with an `expression` column (gp-gen's output), or a text
file with one expression per line (`#` comments, optional `name = expr`).
Output: one row per (candidate, split) in candidate order; see docs/fitness.md.";

#[derive(Parser, Debug)]
#[command(name = "fitness", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// Panel (Arrow IPC) built by panel-build.
    #[arg(long, required_unless_present = "merge")]
    panel: Option<PathBuf>,
    /// Candidates: Parquet with an `expression` column, or a text file.
    #[arg(long, required_unless_present = "merge")]
    candidates: Option<PathBuf>,
    /// Dialect of text candidates (Parquet candidates are canonical native).
    #[arg(long, value_enum, default_value = "native")]
    dialect: Dialect,
    /// Factor library (library-merge's snapshot) for the correlation penalty.
    #[arg(long)]
    library: Option<PathBuf>,
    /// Label horizon in days: scores against the panel's fwd_ret_{H}.
    #[arg(long, default_value_t = defaults::HORIZON)]
    horizon: usize,
    /// Score on several label horizons, primary first, e.g. 1,5: each candidate is
    /// scored on every one and keeps its best (highest merit); the `horizon` column
    /// says which, `merit_h<H>` columns give each. The primary is the label a model
    /// trained on the library predicts.
    #[arg(long, value_delimiter = ',', conflicts_with = "horizon")]
    horizons: Vec<usize>,
    /// Date splits, e.g. 'train=..2019-12-31,valid=2020-01-02..2020-12-31,test=2021-01-04..'
    /// (inclusive; default: the panel's dates 60/20/20 in time order).
    #[arg(long, conflicts_with = "split")]
    splits: Option<String>,
    /// `all`: the whole panel as one split, for quick looks.
    #[arg(long, value_parser = ["all"])]
    split: Option<String>,
    /// Screen every candidate on a subsample first; only those with train |RankIC| at
    /// or above --fast-threshold get the full pass.
    #[arg(long)]
    fast: bool,
    #[arg(long, default_value_t = 0.01)]
    fast_threshold: f64,
    /// FAST: every k-th date of the train split…
    #[arg(long, default_value_t = 5)]
    fast_date_step: usize,
    /// …and every k-th asset of the panel (evaluation on the subsample).
    #[arg(long, default_value_t = 2)]
    fast_asset_step: usize,
    /// Per-date neutralization of the factor values.
    #[arg(long, value_enum, default_value = defaults::NEUTRALIZE)]
    neutralize: Neutralize,
    /// Per-date winsorization: quantile:P (clip to the P and 1-P quantiles), mad:K
    /// (median ± K robust standard deviations) or none.
    #[arg(long, default_value = defaults::WINSOR, value_parser = parse_winsor)]
    winsor: Winsor,
    /// Dates with fewer scorable assets are dropped and counted.
    #[arg(long, default_value_t = defaults::MIN_ASSETS)]
    min_assets: usize,
    /// |corr| with a library factor at or above this makes a candidate a near-copy:
    /// score 0 (its `merit` is kept; library-merge de-correlates with its own --max-corr).
    #[arg(long, default_value_t = defaults::NEAR_COPY_CORR)]
    near_copy_corr: f64,
    /// Score penalty per expression node (parsimony: a 10-node factor gives up 0.005
    /// of RankIC).
    #[arg(long, default_value_t = defaults::SIZE_PENALTY)]
    size_penalty: f64,
    /// Turnover (1 − rank autocorrelation) above this is penalised…
    #[arg(long, default_value_t = defaults::MAX_TURNOVER)]
    max_turnover: f64,
    /// …by this much per unit.
    #[arg(long, default_value_t = defaults::TURNOVER_PENALTY)]
    turnover_penalty: f64,
    /// Admission (`valid` split): RankIC with the train sign and |RankIC| at least this…
    #[arg(long, default_value_t = defaults::ADMIT_IC)]
    admit_ic: f64,
    /// …and at least this fraction of the train |RankIC|.
    #[arg(long, default_value_t = defaults::ADMIT_RATIO)]
    admit_ratio: f64,
    /// Train coverage (scored share of the universe), or share of usable train dates,
    /// below this makes the score 0 and the factor inadmissible.
    #[arg(long, default_value_t = defaults::MIN_COVERAGE)]
    min_coverage: f64,
    /// |mean RankIC| above this on any split is flagged as look-ahead (score 0).
    #[arg(long, default_value_t = defaults::LEAK_IC)]
    leak_ic: f64,
    /// Score only shard i of n, e.g. 0/4: the candidates whose content id hashes to i
    /// mod n (stable however the list is ordered). `--merge` joins the n files.
    #[arg(long)]
    shard: Option<String>,
    /// Join shard files (`--shard i/n` outputs, all n of them) into the file the
    /// unsharded run writes, byte for byte; needs only --out.
    #[arg(long, num_args = 1.., conflicts_with_all = ["panel", "candidates", "shard"])]
    merge: Vec<PathBuf>,
    /// Sub-expression cache (cache-materialize's --out): entries of this panel are read
    /// instead of computed in the full pass.
    #[arg(long, default_value = "data/cache")]
    cache: PathBuf,
    /// Compute everything; read no cache.
    #[arg(long)]
    no_cache: bool,
    /// Skip the pool gain (what each candidate adds to the library's least-squares
    /// combination, docs/fitness.md): its columns are then NaN and gp-gen selects on
    /// the score.
    #[arg(long)]
    no_pool: bool,
    /// Candidates evaluated together (shared sub-expressions are computed once).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// The fitness table to write (Parquet, one row per candidate and split).
    #[arg(long)]
    out: PathBuf,
    /// Also write per-date IC, RankIC, quintile mean returns, long-short and turnover.
    #[arg(long)]
    ic_series: Option<PathBuf>,
}

fn parse_winsor(s: &str) -> Result<Winsor, String> {
    Winsor::parse(s).map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<()> {
    if !cli.merge.is_empty() {
        return merge::merge(&cli.merge, &cli.out);
    }
    let t0 = Instant::now();
    let hs: Vec<usize> = if cli.horizons.is_empty() {
        vec![cli.horizon]
    } else {
        cli.horizons.clone()
    };
    if hs.contains(&0) {
        bail!("horizons must be at least 1 day");
    }
    if (1..hs.len()).any(|k| hs[..k].contains(&hs[k])) {
        bail!("--horizons lists a horizon twice");
    }
    let (Some(panel_path), Some(cand_path)) = (&cli.panel, &cli.candidates) else {
        bail!("--panel and --candidates are required (or --merge SHARDS… --out F)");
    };
    let panel = Panel::open(panel_path)?;
    let mut cache = (!cli.no_cache).then(|| Cache::new(&cli.cache, &panel));
    let scfg = ScoreConfig {
        size_penalty: cli.size_penalty,
        max_turnover: cli.max_turnover,
        turnover_penalty: cli.turnover_penalty,
        near_copy_corr: cli.near_copy_corr,
        admit_ic: cli.admit_ic,
        admit_ratio: cli.admit_ratio,
        min_coverage: cli.min_coverage,
        leak_ic: cli.leak_ic,
    };
    let splits = match (&cli.splits, &cli.split) {
        (Some(s), _) => split::parse_splits(s, panel.dates())?,
        (None, Some(_)) => split::all(panel.n_dates()),
        (None, None) => split::default_splits(panel.n_dates()),
    };
    let mut processing = Processing {
        horizon: hs[0],
        horizons: if hs.len() > 1 { hs.clone() } else { Vec::new() },
        winsor: cli.winsor,
        neutralize: cli.neutralize,
        min_assets: cli.min_assets,
        ridge: defaults::RIDGE,
        min_coverage: cli.min_coverage,
        splits: Vec::new(),
    };
    processing.record_splits(&splits, panel.dates());
    let longest = processing.longest();
    for s in &splits {
        if s.usable(longest, 1).is_empty() {
            bail!(
                "split {} has {} dates, none left after purging the last {longest} (label \
                 horizon): make it longer or the horizon shorter",
                s.name,
                s.end - s.start,
            );
        }
    }
    // Record what this panel allows, not only what was asked (no caps: no size).
    let (processing, notes) = processing.on_panel(&panel);
    for n in &notes {
        tracing::warn!("{n}");
    }
    let cfg = processing.config(true);
    let lib = match &cli.library {
        Some(l) => Some(Library::open(l, &panel)?),
        None => None,
    };
    if let Some(l) = &lib {
        // Near-copy correlations compare processed values, and library-merge pools these
        // candidates with the library's: both must be processed and split alike.
        let diff = processing.differences(&l.meta.processing);
        if !diff.is_empty() {
            bail!(
                "library {} was made with other processing settings than these candidates ({}): \
                 score with the library's settings or start a new library",
                l.path.display(),
                diff.join("; ")
            );
        }
    }
    let library: Vec<&[f64]> = match &lib {
        Some(l) => (0..l.len()).map(|i| l.values(i)).collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let library_ids: Vec<String> = lib.as_ref().map(|l| l.ids.clone()).unwrap_or_default();
    // A near-copy's gain over the member it resembles is what `gp-gen` selects it on.
    let library_scores: Vec<f64> = match &lib {
        Some(l) => l.members.iter().map(|m| m.score).collect(),
        None => Vec::new(),
    };

    let af_table::candidates::Candidates {
        exprs: sources,
        generations,
        dialect: file_dialect,
    } = af_table::candidates::read(cand_path)?;
    let d = file_dialect.unwrap_or(cli.dialect);
    let fields = af_expr::fields_of(&panel);
    let mut cands: Vec<Cand> = sources
        .iter()
        .zip(&generations)
        .map(|(s, &generation)| Cand {
            source: s.clone(),
            generation,
            expr: parse_canonical(s, d, &fields).map_err(|e| {
                format!(
                    "invalid: {} at column {}",
                    e.message,
                    s[..e.start.min(s.len())].chars().count() + 1
                )
            }),
            degenerate: None,
            fast: None,
            full: None,
            horizon: 0,
            by_horizon: Vec::new(),
            pool: None,
            fingerprint: None,
        })
        .collect();
    // The candidates' positions in the file (all, or this shard's).
    let sel: Vec<usize> = match &cli.shard {
        Some(s) => {
            let keys: Vec<String> = cands
                .iter()
                .map(|c| c.expr.as_ref().map_or(c.source.clone(), |e| e.id()))
                .collect();
            let sel = shard(s, &keys)?;
            let mut keep = sel.iter().peekable();
            let mut k = 0;
            cands.retain(|_| {
                let hit = keep.peek().is_some_and(|&&x| x == k);
                if hit {
                    keep.next();
                }
                k += 1;
                hit
            });
            sel
        }
        None => (0..cands.len()).collect(),
    };
    let _lock = OutputLock::acquire(&cli.out)?;
    let valid: Vec<usize> = (0..cands.len())
        .filter(|&i| cands[i].expr.is_ok())
        .collect();

    // FAST: the train split only, on every k-th asset, metrics on every k-th date.
    let mut full_idx = valid.clone();
    let mut equivalent = 0usize;
    let mut fast = (0.0, PassStats::default());
    if cli.fast && !valid.is_empty() {
        let tf = Instant::now();
        let train = splits
            .iter()
            .find(|s| s.name == "train" || s.name == "all")
            .ok_or_else(|| anyhow!("FAST needs a train split"))?;
        let assets: Vec<usize> = (0..panel.n_assets())
            .step_by(cli.fast_asset_step.max(1))
            .collect();
        let sub = panel.subset(0..train.end, &assets)?;
        let fsplit = |h: usize| {
            vec![(
                train.name.clone(),
                Split {
                    name: train.name.clone(),
                    start: train.start,
                    end: train.end,
                }
                .usable(h, cli.fast_date_step.max(1)),
            )]
        };
        let fcfg = Config {
            // Scaled with the assets kept, never above the FULL bound.
            min_assets: (cli.min_assets / cli.fast_asset_step.max(1)).max(10.min(cli.min_assets)),
            turnover: false,
            ..cfg.clone()
        };
        let fctx: Vec<Context> = hs
            .iter()
            .map(|&h| {
                let c = Config {
                    horizon: h,
                    ..fcfg.clone()
                };
                Context::new(&sub, c, &fsplit(h)[0].1)
            })
            .collect::<Result<_>>()?;
        let fh: Vec<Horizon> = fctx
            .iter()
            .zip(&hs)
            .map(|(ctx, &h)| Horizon {
                ctx,
                splits: fsplit(h),
                library: LibraryRows::empty(),
                pool: None,
            })
            .collect();
        // The screen keeps a candidate whose best horizon's |RankIC| passes.
        let pick = |_: usize, all: &[Vec<af_fitness::SplitEval>]| {
            let m: Vec<f64> = all
                .iter()
                .map(|ev| ev[0].summary.rank_ic_mean.abs())
                .collect();
            (best(&m), m)
        };
        let fp_dates = fingerprint::sample(&fsplit(hs[0])[0].1);
        let st = score_pass(
            &sub,
            &fh,
            &pick,
            &mut cands,
            &valid,
            cli.batch,
            true,
            Some(&fp_dates),
            None, // the FAST panel is a subset: another hash, nothing cached for it
        )?;
        // Never pay twice for the same values: a candidate ranking the assets exactly as
        // an earlier one (in file order) or a library member does is `equivalent`.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        if let Some(l) = &lib {
            let (ids, exprs): (Vec<&String>, Vec<_>) = l
                .ids
                .iter()
                .zip(&l.expressions)
                .filter_map(|(id, x)| {
                    Some((id, parse_canonical(x, Dialect::Native, &fields).ok()?))
                })
                .unzip();
            af_expr::Program::compile(&exprs).run(&sub, |k, v| {
                if let Some(f) = fingerprint::of(v, sub.n_assets(), &fp_dates) {
                    seen.entry(f)
                        .or_insert(format!("library member {}", ids[k]));
                }
                Ok(())
            })?;
        }
        full_idx = Vec::new();
        for &i in &valid {
            let c = &mut cands[i];
            if !c
                .fast
                .as_ref()
                .is_some_and(|ev| ev[0].summary.rank_ic_mean.abs() >= cli.fast_threshold)
            {
                continue;
            }
            let id = c.expr.as_ref().map(|e| e.id()).unwrap_or_default();
            match c.fingerprint.as_ref().map(|f| seen.get(f).cloned()) {
                Some(Some(other)) => {
                    c.degenerate = Some(format!(
                        "equivalent: ranks the assets as {other} does (not scored again)"
                    ));
                    equivalent += 1;
                }
                Some(None) => {
                    if let Some(f) = c.fingerprint.clone() {
                        seen.insert(f, format!("candidate {id}"));
                    }
                    full_idx.push(i);
                }
                None => full_idx.push(i),
            }
        }
        fast = (tf.elapsed().as_secs_f64(), st);
    }
    let mut full = (0.0, PassStats::default());
    if !full_idx.is_empty() {
        let tfull = Instant::now();
        let ctxs: Vec<Context> = hs
            .iter()
            .map(|&h| {
                let needed: Vec<usize> = usable(&splits, h, 1)
                    .into_iter()
                    .flat_map(|(_, d)| d)
                    .collect();
                let c = Config {
                    horizon: h,
                    ..cfg.clone()
                };
                Context::new(&panel, c, &needed)
            })
            .collect::<Result<_>>()?;
        for w in &ctxs[0].warnings {
            tracing::warn!("{w}");
        }
        let tpool = Instant::now();
        let fh: Vec<Horizon> = ctxs
            .iter()
            .zip(&hs)
            .enumerate()
            .map(|(k, (ctx, &h))| {
                let splits = usable(&splits, h, 1);
                // The pool is fit on the split selection may see and judged on valid:
                // never on test.
                let pool = (k == 0 && !cli.no_pool)
                    .then(|| Pool::new(ctx, library.clone(), pool::fit_and_judge(&splits)));
                Horizon {
                    ctx,
                    library: ctx.library(&library),
                    splits,
                    pool,
                }
            })
            .collect();
        if let Some(p) = &fh[0].pool {
            tracing::info!(
                "pool: the library's {} factors combined (least squares on train): combined IC {} \
                 ({:.2} s)",
                p.len(),
                p.describe(p.ic()),
                tpool.elapsed().as_secs_f64()
            );
        }
        // Each horizon scored as if alone; the candidate keeps the one of highest merit
        // (its score before the library bound), the primary on a tie.
        let sizes: Vec<usize> = cands
            .iter()
            .map(|c| c.expr.as_ref().map_or(0, |e| e.size()))
            .collect();
        let pick = |i: usize, all: &[Vec<af_fitness::SplitEval>]| {
            let m: Vec<f64> = all
                .iter()
                .map(|ev| score(ev, sizes[i], &scfg).merit)
                .collect();
            (best(&m), m)
        };
        let st = score_pass(
            &panel,
            &fh,
            &pick,
            &mut cands,
            &full_idx,
            cli.batch,
            false,
            None,
            cache.as_mut(),
        )?;
        full = (tfull.elapsed().as_secs_f64(), st);
    }

    write_outputs(
        &cli,
        &hs,
        &panel,
        &processing,
        &splits,
        &cands,
        &scfg,
        &library_ids,
        &library_scores,
        &sel,
    )?;
    let n_full = cands.iter().filter(|c| c.full.is_some()).count();
    let n_fast = cands.iter().filter(|c| c.fast.is_some()).count();
    let n_bad = cands.iter().filter(|c| c.expr.is_err()).count();
    let n_deg = cands.iter().filter(|c| c.degenerate.is_some()).count();
    tracing::info!(
        "{} candidates: {n_bad} invalid, {} degenerate, {equivalent} equivalent to an earlier \
         candidate or a member ({:.1} % of the FULL passes saved), {n_full} with the full pass",
        cands.len(),
        n_deg - equivalent,
        100.0 * equivalent as f64 / (equivalent + n_full).max(1) as f64
    );
    for (name, n, (secs, st)) in [("FAST", n_fast, &fast), ("FULL", n_full, &full)] {
        if *secs > 0.0 {
            tracing::info!(
                "{name}: {n} candidates in {secs:.2} s ({:.1}/s): setup {:.2} s, evaluate {:.2} s, \
                 score {:.2} s; peak intermediate {:.0} MB",
                n as f64 / secs,
                secs - st.eval_secs - st.score_secs,
                st.eval_secs,
                st.score_secs,
                st.peak as f64 / 1e6
            );
        }
    }
    if let Some(c) = cache.as_ref().filter(|c| c.present()) {
        tracing::info!("{}", c.summary());
    }
    tracing::info!("total {:.2} s", t0.elapsed().as_secs_f64());
    println!("wrote {}", cli.out.display());
    // For the pipeline runner's throughput line (docs/pipeline.md).
    println!("count: {} candidates", cands.len());
    Ok(())
}

/// The index of the largest figure (NaN never wins; the first on a tie).
fn best(m: &[f64]) -> usize {
    let mut k = 0;
    for (i, &v) in m.iter().enumerate() {
        if v > m[k] || (m[k].is_nan() && !v.is_nan()) {
            k = i;
        }
    }
    k
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    cli: &Cli,
    hs: &[usize],
    panel: &Panel,
    processing: &Processing,
    splits: &[Split],
    cands: &[Cand],
    scfg: &ScoreConfig,
    library_ids: &[String],
    library_scores: &[f64],
    sel: &[usize],
) -> Result<()> {
    let mut r = Rows::default();
    if hs.len() > 1 {
        r.by_horizon = hs
            .iter()
            .map(|h| (format!("merit_h{h}"), Vec::new()))
            .collect();
    }
    for (ci, c) in cands.iter().enumerate() {
        let (id, canon, size, depth) = match &c.expr {
            Ok(e) => (e.id(), e.canonical_text(), e.size(), e.depth()),
            Err(_) => (String::new(), c.source.clone(), 0, 0),
        };
        let evals = c.full.as_ref().or(c.fast.as_ref());
        let pass = if c.full.is_some() {
            "full"
        } else if c.fast.is_some() {
            "fast"
        } else {
            ""
        };
        let sc: Option<Score> = evals.map(|ev| {
            let mut s = score(ev, size, scfg);
            if c.full.is_none() {
                s.admit = false;
            }
            s
        });
        let fast_ric = c
            .fast
            .as_ref()
            .map_or(f64::NAN, |ev| ev[0].summary.rank_ic_mean);
        for sp in splits {
            let status = match (&c.expr, &c.degenerate, &sc) {
                (Err(m), _, _) => m.clone(),
                (_, Some(m), _) => m.clone(),
                (
                    _,
                    _,
                    Some(Score {
                        suspect: Some(m), ..
                    }),
                ) => format!("suspect: {m}"),
                _ => "ok".to_string(),
            };
            let e = evals.and_then(|ev| ev.iter().find(|e| e.name == sp.name));
            let status = match e {
                Some(e) if status == "ok" && e.summary.dates_used == 0 => {
                    let why: Vec<String> = e
                        .summary
                        .dropped
                        .iter()
                        .map(|(r, n)| format!("{n} dates {r}"))
                        .collect();
                    format!(
                        "degenerate: no usable date on this split ({})",
                        why.join(", ")
                    )
                }
                _ => status,
            };
            r.push(RowIn {
                index: sel[ci],
                generation: c.generation,
                id: &id,
                expr: &canon,
                split: &sp.name,
                status,
                pass,
                size,
                depth,
                summary: e.map(|e| &e.summary),
                fast_ric,
                score: sc.as_ref(),
                library_ids,
                library_scores,
                horizon: hs[c.horizon],
                by_horizon: &c.by_horizon,
                pool: c.pool.as_ref(),
                fingerprint: c.fingerprint.as_deref(),
            });
        }
    }
    // Processing (horizon, winsor, neutralize, min_assets, splits, …) is recorded once,
    // under af.processing; the provenance keeps the scoring rules.
    let mut prov = Provenance::new("fitness", env!("CARGO_PKG_VERSION"))
        .input_hash("panel", panel.content_hash())
        .input_hash(
            "candidates",
            &sha256_file(
                cli.candidates
                    .as_deref()
                    .unwrap_or(std::path::Path::new("")),
            )?,
        )
        .param("near_copy_corr", cli.near_copy_corr)
        .param("size_penalty", cli.size_penalty)
        .param("max_turnover", cli.max_turnover)
        .param("turnover_penalty", cli.turnover_penalty)
        .param("admit_ic", cli.admit_ic)
        .param("admit_ratio", cli.admit_ratio)
        .param("leak_ic", cli.leak_ic)
        .param(ScoreConfig::KEY, scfg.to_json());
    if cli.fast {
        prov = prov
            .param("fast_threshold", cli.fast_threshold)
            .param("fast_date_step", cli.fast_date_step)
            .param("fast_asset_step", cli.fast_asset_step);
    }
    if let Some(s) = &cli.shard {
        prov = prov.param("shard", s.clone());
    }
    if let Some(l) = &cli.library {
        prov = prov.input_file("library", l)?;
    }
    let extra = [processing.metadata_entry()];
    write_parquet_kv(&cli.out, r.into_table(), &prov, &extra)?;
    if let Some(path) = &cli.ic_series {
        write_parquet_kv(path, ic_series(panel, cands, sel), &prov, &extra)?;
    }
    Ok(())
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Cli::parse();
        af_store::log::init("fitness", &a.log);
        run(a)
    });
}
