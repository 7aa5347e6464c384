//! `lgbm-train`: combine a library's factors with LightGBM, the way quants run Qlib's
//! Alpha158 + LightGBM baseline, but honestly out of sample: rolling folds (train,
//! early-stop on the next window, predict the one after, step forward; see `folds`),
//! features read from the library snapshot (never re-evaluated), every fold's model,
//! importances and RankICs, the stitched out-of-sample predictions, and the two
//! baselines a model must beat (the best single factor, an equal-weight blend).

mod compare;
mod features;
mod folds;
mod model;
mod sets;
mod train;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use af_fitness::prep::Winsor;
use af_fitness::processing::{Neutralize, Processing};
use af_fitness::{Context, Workspace};
use af_library::Library;
use af_panel::{Panel, columns};
use af_store::{AtomicDir, OutputLock, sha256_file, write_atomic_bytes};
use af_table::{Table, write_parquet};
use anyhow::{Context as _, Result, bail};
use clap::Parser;
use rayon::prelude::*;
use serde_json::{Value, json};

use af_fitness::stats::mean_rank_ic;
use features::{Norm, normalize};
use sets::{Features, Set};
use train::{FoldReport, Headline, OutOfSelection, round6};

const EXAMPLES: &str = "\
Examples:
  lgbm-train --library out/libraries/current.parquet --panel data/panel/csi500.arrow \\
             --horizon 1 --seed 1 --out out/models/csi500/
  # the library against the field's standard, and the oracle of a synthetic market
  lgbm-train --library L --panel P --compare alpha158,ground-truth \\
             --ground-truth data/raw/csi500/ground_truth.json --out out/models/cmp/
  # Alpha158 alone (folds after a selection date), or the library plus Alpha158
  lgbm-train --features alpha158 --selection-end 2019-06-28 --panel P --out out/models/a158/
  lgbm-train --library L --features alpha158 --panel P --out out/models/both/
  lgbm-train --library L --panel P --horizon 5 --train-days 500 --valid-days 100 \\
             --test-days 100 --step 100 --neutralize-features --params params.yaml --out out/models/h5/

Writes predictions.parquet (date, code, prediction, fold), summary.json, and per fold
fold-NN/model.txt (LightGBM text format: lightgbm.Booster(model_file=...) loads it),
fold-NN/importance.csv and fold-NN/fold.json; with --compare, each compared model's
files under compare/NAME/ and the side-by-side table in compare.txt and summary.json
(`compare`). See docs/model.md.";

#[derive(Parser, Debug)]
#[command(name = "lgbm-train", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// Library snapshot (library-merge); its stored values are features, its recorded
    /// processing and selection splits rule the run.
    #[arg(long)]
    library: Option<PathBuf>,
    /// More features (comma-separated): a shipped set (`alpha158`; `expr sets` lists
    /// them), `ground-truth` (the planted expressions of --ground-truth: the oracle), or a
    /// file of `name = expression` lines (any dialect, `# dialect:` line). Evaluated on
    /// the panel and processed as the library's values are. With --library: both.
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
    /// Also fit these feature sets alone and, with --library, each with the library
    /// (comma-separated, as --features): one row per model in compare.txt and
    /// summary.json, with the same folds, label, parameters and seed.
    #[arg(long, value_delimiter = ',')]
    compare: Vec<String>,
    /// A synthetic market's ground_truth.json (ts-fetch writes it beside the raw
    /// bars), for `ground-truth`; absent file: no oracle (said so).
    #[arg(long)]
    ground_truth: Option<PathBuf>,
    /// Without --library: the last date features may have been selected on; test
    /// windows start after it (plus the horizon).
    #[arg(long)]
    selection_end: Option<String>,
    /// Write the --features sets' values as evaluated, before processing (Parquet:
    /// date, code, one column each), for checking against `expr eval`.
    #[arg(long)]
    dump_features: Option<PathBuf>,
    /// The panel the library was mined on (features and labels come from it).
    #[arg(long)]
    panel: PathBuf,
    /// Label: the cross-sectional rank of fwd_ret_<horizon>. Default: the library's
    /// horizon (another one is refused: the factors were selected for that label).
    #[arg(long)]
    horizon: Option<usize>,
    /// Fold windows in dates. Defaults scale with the panel: train ≤ 750, valid ≤ 125
    /// (a sixth of the dates before the first test date), test ≤ 125 (half the
    /// out-of-selection dates).
    #[arg(long)]
    train_days: Option<usize>,
    /// Validation window before each test window (early stopping), in dates.
    #[arg(long)]
    valid_days: Option<usize>,
    /// Test window of each fold, in dates.
    #[arg(long)]
    test_days: Option<usize>,
    /// Dates between fold starts (default = --test-days: test windows tile the sample).
    #[arg(long)]
    step: Option<usize>,
    /// Per-date feature normalisation.
    #[arg(long, value_enum, default_value = "rank")]
    normalize: Norm,
    /// Also residualise each normalised feature on industry + log(cap) per date.
    #[arg(long)]
    neutralize_features: bool,
    /// Residualise the stitched prediction on industry + log(cap) per date
    /// (`prediction`; the model's own output stays in `prediction_raw`).
    #[arg(long)]
    neutralize_prediction: bool,
    /// YAML mapping of LightGBM parameters (override the defaults; `num_iterations`
    /// and `early_stopping_round` set the boosting rounds and the patience).
    #[arg(long)]
    params: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write fold K's matrices (train/valid/test Parquet) into fold-K/data/, for
    /// checking against Python LightGBM.
    #[arg(long)]
    dump_fold: Option<usize>,
    /// Folder for the model: summary.json, predictions.parquet, the boosters, compare.txt.
    #[arg(long)]
    out: PathBuf,
}

fn run(mut cli: Cli) -> Result<()> {
    let t0 = Instant::now();
    // `--compare=` (an empty list: the pipeline's way to turn the comparison off).
    cli.compare.retain(|s| !s.trim().is_empty());
    cli.features.retain(|s| !s.trim().is_empty());
    let panel = Panel::open(&cli.panel)?;
    let lib = cli
        .library
        .as_deref()
        .map(|p| Library::open(p, &panel))
        .transpose()?;
    if let (Some(l), Some(p)) = (&lib, &cli.library)
        && l.is_empty()
    {
        bail!(
            "library {} has no factors: nothing to train on (mine more, or lower the admission bar)",
            p.display()
        );
    }
    if lib.is_none() && cli.features.is_empty() {
        bail!("nothing to train on: give --library, --features, or both");
    }
    let source = match &cli.library {
        Some(p) => format!("library {}", p.display()),
        None => "--selection-end".to_string(),
    };
    // The processing features go through: the library's (its factors were processed
    // so), else fitness' defaults on this panel.
    let processing = match &lib {
        Some(l) => l.meta.processing.clone(),
        None => {
            Processing {
                horizon: cli.horizon.unwrap_or(Processing::default().horizon),
                ..Processing::default()
            }
            .on_panel(&panel)
            .0
        }
    };
    let horizon = Processing::agree("horizon", cli.horizon, processing.horizon, &source)?;
    let (nd, na) = (panel.n_dates(), panel.n_assets());
    let lname = columns::label(horizon);
    if !panel.has_field(&lname) {
        bail!(
            "panel {} has no label {lname}: rebuild it with panel-build --horizons including {horizon}",
            cli.panel.display(),
        );
    }
    let fwd = panel.field(&lname)?.data;
    let universe = panel
        .mask(columns::UNIVERSE)
        .unwrap_or_else(|_| vec![true; nd * na]);
    let label = normalize(fwd, &universe, na, Norm::Rank);
    let (params, rounds, patience) = model::params(cli.seed, cli.params.as_deref())?;
    // The first date whose prediction may count: after the dates the library's factors
    // were selected on, plus the longest horizon they were scored on (folds.rs): a
    // factor selected on 5-day returns has seen the labels 5 days past the selection.
    let selection_end = match (&lib, &cli.selection_end) {
        (Some(_), Some(_)) => bail!(
            "--selection-end is for runs without --library (a library's own selection splits rule)"
        ),
        (Some(_), None) => processing
            .selection_end(panel.dates())
            .with_context(|| source.clone())?,
        (None, Some(d)) => {
            let d = af_panel::dates::parse_date(d).context("--selection-end")?;
            panel.dates().partition_point(|x| *x <= d)
        }
        (None, None) => bail!(
            "without --library, say which dates the features may have been chosen on: --selection-end DATE"
        ),
    };
    let seen = if lib.is_some() {
        processing.longest().max(horizon)
    } else {
        horizon
    };
    let first_test = selection_end + seen;
    let windows = folds::Windows {
        train: cli.train_days,
        valid: cli.valid_days,
        test: cli.test_days,
        step: cli.step,
    }
    .resolve(nd, first_test, horizon);
    let fold_list = folds::folds(nd, first_test, windows).with_context(|| source.clone())?;
    if let Some(k) = cli.dump_fold
        && k >= fold_list.len()
    {
        bail!("--dump-fold {k}: there are {} folds", fold_list.len());
    }
    let all: Vec<usize> = (0..nd).collect();
    // Neutralization only (no winsor): the library's own min_assets and ridge.
    let neutral = Processing {
        horizon,
        winsor: Winsor::None,
        neutralize: Neutralize::IndustrySize,
        ..processing.clone()
    }
    .on_panel(&panel)
    .0;
    let ctx = if cli.neutralize_features || cli.neutralize_prediction {
        Some(Context::new(&panel, neutral.config(false), &all)?)
    } else {
        None
    };
    let mut ws = Workspace::default();
    let neutralize = |f: &mut Features, ws: &mut Workspace| {
        if let (true, Some(c)) = (cli.neutralize_features, &ctx) {
            for v in f.values.iter_mut() {
                *v = std::sync::Arc::new(c.processed(v, ws));
            }
        }
    };

    // Every feature set, evaluated once: the main model's and the compared ones.
    let tf = Instant::now();
    let mut library = match &lib {
        Some(l) => Some(Features::library(l, &universe, na, cli.normalize)?),
        None => None,
    };
    if let Some(f) = library.as_mut() {
        neutralize(f, &mut ws);
    }
    let mut evaluated: BTreeMap<String, Option<Features>> = BTreeMap::new();
    let mut dumped: Vec<(String, Vec<f64>)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for name in cli.features.iter().chain(&cli.compare) {
        if evaluated.contains_key(name) {
            continue;
        }
        let set = Set::parse(name);
        let f = match set.expressions(cli.ground_truth.as_deref())? {
            None => {
                let note = match &cli.ground_truth {
                    Some(p) => format!("no ground truth at {}: no oracle model", p.display()),
                    None => "ground-truth needs --ground-truth FILE: no oracle model".to_string(),
                };
                tracing::warn!("{note}");
                notes.push(note);
                None
            }
            Some((lines, dialect)) => {
                let dump = cli.dump_features.is_some() && cli.features.contains(name);
                let mut raw = Vec::new();
                let mut f = sets::evaluate(
                    &panel,
                    &set.name(),
                    &lines,
                    dialect,
                    &processing,
                    &universe,
                    cli.normalize,
                    dump.then_some(&mut raw),
                )?;
                neutralize(&mut f, &mut ws);
                for (n, v) in f.names.iter().zip(raw) {
                    dumped.push((n.clone(), v));
                }
                Some(f)
            }
        };
        evaluated.insert(name.clone(), f);
    }
    let evaluate_s = tf.elapsed().as_secs_f64();
    if !evaluated.is_empty() {
        tracing::info!(
            "feature sets {} evaluated and processed in {evaluate_s:.1} s",
            evaluated.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    // The main model: the library and every --features set.
    let mut main_f = library.as_ref().cloned().unwrap_or_default();
    let mut main_parts: Vec<String> = library.iter().map(|_| "library".to_string()).collect();
    for name in &cli.features {
        match &evaluated[name] {
            Some(f) => {
                main_f = main_f.joined(f);
                main_parts.push(Set::parse(name).name());
            }
            None => bail!("--features {name}: nothing to evaluate (see the warning above)"),
        }
    }
    let main_name = main_parts.join(" + ");
    if main_f.is_empty() {
        bail!("the model has no features");
    }

    let _lock = OutputLock::acquire(&cli.out)?;
    let stage = AtomicDir::new(&cli.out)?;
    let book = if cli.compare.is_empty() {
        None
    } else {
        Some(af_backtest::OnPanel::new(&panel, &universe)?)
    };
    let job = compare::Job {
        book: book.as_ref(),
        panel: &panel,
        universe: &universe,
        fwd,
        label: &label,
        folds: &fold_list,
        params: &params,
        rounds,
        patience,
        first_test,
    };
    // The compared models: the library alone, each set alone and, with the library,
    // library + set; the main model is fitted once whichever it is.
    let mut models: Vec<(String, Features)> = Vec::new();
    if let Some(l) = library.as_ref().filter(|_| !cli.compare.is_empty()) {
        models.push(("library".into(), l.clone()));
    }
    for name in &cli.compare {
        let Some(f) = &evaluated[name] else { continue };
        let n = Set::parse(name).name();
        models.push((n.clone(), f.clone()));
        if let Some(l) = library.as_ref().filter(|_| n != "ground-truth") {
            models.push((format!("library + {n}"), l.joined(f)));
        }
    }
    let mut seen_names = std::collections::BTreeSet::from([main_name.clone()]);
    models.retain(|(n, _)| seen_names.insert(n.clone()));
    // Every model is single-threaded LightGBM (bit-reproducible): they run side by
    // side, one per core, and give the same bytes as one after another.
    let tm = Instant::now();
    let jobs: Vec<(&str, &Features, String, Option<usize>)> =
        std::iter::once((main_name.as_str(), &main_f, String::new(), cli.dump_fold))
            .chain(models.iter().map(|(n, f)| {
                (
                    n.as_str(),
                    f,
                    format!("compare/{}/", compare::slug(n)),
                    None,
                )
            }))
            .collect();
    let mut fits: Vec<compare::Fitted> = jobs
        .par_iter()
        .map(|(name, f, prefix, dump)| job.fit(name, f, &stage, prefix, *dump))
        .collect::<Result<Vec<_>>>()?;
    tracing::info!(
        "{} model(s) fitted in {:.1} s",
        jobs.len(),
        tm.elapsed().as_secs_f64()
    );
    let fitted = fits.remove(0);
    let reports = &fitted.reports;
    let st = &fitted.stitched;

    let mut pred = st.model.clone();
    if let (true, Some(c)) = (cli.neutralize_prediction, &ctx) {
        pred = c.processed(&pred, &mut ws);
    }
    let oos = first_test..nd;
    let stitched = |x: &[f64]| mean_rank_ic(x, fwd, &universe, na, oos.clone());
    let (model_ric, used) = stitched(&pred);
    let headline = Headline {
        model: round6(model_ric),
        best_single_factor: round6(stitched(&st.best_single).0),
        equal_weight: round6(stitched(&st.equal_weight).0),
    };
    let mut rows = Vec::new();
    if !cli.compare.is_empty() {
        rows.push(job.row(&main_name, &main_f, &fitted, &pred)?);
    }
    for ((name, f, prefix, _), m) in jobs.iter().skip(1).zip(&fits) {
        write_parquet(
            &stage.path(format!("{prefix}predictions.parquet")),
            job.predictions_table(&m.stitched.model, &m.stitched.fold),
            &af_store::Provenance::new("lgbm-train", env!("CARGO_PKG_VERSION"))
                .input_hash("panel", panel.content_hash())
                .param("model", name.to_string()),
        )?;
        rows.push(job.row(name, f, m, &m.stitched.model)?);
    }
    let oracle = rows
        .iter()
        .find(|r| r["model"] == "ground-truth")
        .and_then(|r| r["test_rank_ic"].as_f64());
    let lib_ric = rows
        .iter()
        .find(|r| r["model"] == "library")
        .and_then(|r| r["test_rank_ic"].as_f64());
    let captured = match (lib_ric, oracle) {
        (Some(l), Some(o)) if o != 0.0 => round6(l / o),
        _ => None,
    };
    let compare_json = json!({
        "models": rows,
        "best_single_factor": headline.best_single_factor,
        "equal_weight": headline.equal_weight,
        "captured": captured,
        "notes": notes,
    });
    if !cli.compare.is_empty() {
        let table = compare::table(&compare_json);
        write_atomic_bytes(&stage.path("compare.txt"), table.as_bytes())?;
        print!("{table}");
    }
    let day = |t: usize| af_panel::dates::format_date(panel.dates()[t]);
    let out_of_selection = OutOfSelection {
        selection_last: day(selection_end - 1),
        first: day(first_test),
        last: day(nd - 1),
        dates: nd - first_test,
        scored_dates: used,
    };
    let mut t = job.predictions_table(&pred, &st.fold);
    if cli.neutralize_prediction {
        let keep: Vec<usize> = (0..nd * na).filter(|&i| pred[i].is_finite()).collect();
        t = t.f64(
            "prediction_raw",
            keep.iter().map(|&i| st.model[i]).collect(),
        );
    }
    let norm_name = format!("{:?}", cli.normalize).to_lowercase();
    let mut prov = af_store::Provenance::new("lgbm-train", env!("CARGO_PKG_VERSION"))
        .input_hash("panel", panel.content_hash());
    if let Some(p) = &cli.library {
        prov = prov.input_file("library", p)?;
    }
    let prov = prov
        .param("horizon", horizon)
        .param("seed", cli.seed)
        .param("windows", json!(windows))
        .param("normalize", norm_name.clone())
        .param("neutralize_features", cli.neutralize_features)
        .param("neutralize_prediction", cli.neutralize_prediction)
        .param("features", cli.features.join(","))
        .param("compare", cli.compare.join(","))
        .param("lightgbm", json!(params))
        .param("rounds", rounds)
        .param("early_stopping_round", patience);
    let n_pred = t.len();
    write_parquet(&stage.path("predictions.parquet"), t, &prov)?;
    if let Some(p) = &cli.dump_features {
        let cells: Vec<usize> = (0..nd * na).collect();
        let mut t = Table::cells(panel.dates(), panel.codes(), &cells);
        for (n, v) in &dumped {
            t = t.f64(n, v.clone());
        }
        write_parquet(p, t, &prov)?;
    }
    let mean = |get: &dyn Fn(&FoldReport) -> Option<f64>| -> f64 {
        let v: Vec<f64> = reports.iter().filter_map(get).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let fold_means = Headline {
        model: round6(mean(&|j| j.rank_ic.test)),
        best_single_factor: round6(mean(&|j| {
            j.baselines
                .best_single
                .as_ref()
                .and_then(|b| b.test_rank_ic)
        })),
        equal_weight: round6(mean(&|j| j.baselines.equal_weight.test_rank_ic)),
    };
    let library_json = match (&cli.library, &lib) {
        (Some(p), Some(l)) => json!({"path": p, "sha256": sha256_file(p)?, "factors": l.len()}),
        _ => Value::Null,
    };
    let summary = json!({
        "tool": {"name": "lgbm-train", "version": env!("CARGO_PKG_VERSION")},
        "panel": {"path": cli.panel, "hash": panel.content_hash()},
        "library": library_json,
        "model": main_name,
        "features": {"normalize": norm_name, "neutralized": cli.neutralize_features,
                     "sets": cli.features, "count": main_f.len()},
        "horizon": horizon,
        "windows": windows,
        "label": format!("cross-sectional rank of {lname} (percentile - 0.5)"),
        "prediction_neutralized": cli.neutralize_prediction,
        "lightgbm": {"version": "4.7.0", "params": params, "rounds": rounds, "early_stopping_round": patience},
        "seed": cli.seed,
        "out_of_selection": out_of_selection,
        "test_rank_ic": headline,
        "mean_fold_test_rank_ic": fold_means,
        "compare": if cli.compare.is_empty() { Value::Null } else { compare_json },
        "folds": reports,
        "predictions": n_pred,
    });
    let mut s = serde_json::to_string_pretty(&summary)?;
    s.push('\n');
    write_atomic_bytes(&stage.path("summary.json"), s.as_bytes())?;
    stage.commit()?;
    let show = |x: Option<f64>| x.unwrap_or(f64::NAN);
    tracing::info!(
        "{} folds; out of selection ({} .. {}, {used} dates): test RankIC {:.4} (best single factor {:.4}, equal weight {:.4}); {:.1} s",
        fold_list.len(),
        out_of_selection.first,
        out_of_selection.last,
        show(headline.model),
        show(headline.best_single_factor),
        show(headline.equal_weight),
        t0.elapsed().as_secs_f64()
    );
    println!("wrote {}", cli.out.display());
    Ok(())
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Cli::parse();
        af_store::log::init("lgbm-train", &a.log);
        run(a)
    });
}
