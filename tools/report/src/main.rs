//! `report`: what a researcher looks at after a mining run — is the library any good, is
//! it stable, is it redundant. One self-contained `index.html` (inline SVG charts, no
//! script, no network) and `summary.json` with every number shown.
//!
//! Each factor is re-evaluated from its expression and scored by `af_fitness` exactly as
//! `fitness` scores it (same processing, splits and horizon the library recorded), so
//! the report's figures are fitness' figures; the model's prediction (`--predictions`)
//! goes through the same path as if it were a factor.

mod charts;
mod sections;

use std::fmt::Write as _;

use sections::{Figures, esc};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use af_expr::{Dialect, Program, fields_of, parse_canonical};
use af_fitness::processing::Processing;
use af_fitness::split::Split;
use af_fitness::stats::mean_rank_ic;
use af_fitness::{Context, Workspace};
use af_library::Library;
use af_panel::Panel;
use af_panel::columns::{self, LabelRule};
use af_panel::dates::format_date;
use af_store::{AtomicDir, OutputLock, sha256_file, write_atomic_bytes};
use af_table::read_parquet;
use anyhow::{Result, anyhow, bail};
use clap::Parser;
use serde_json::{Value, json};

const EXAMPLES: &str = "\
Examples:
  report --library out/libraries/current.parquet --panel data/panel/csi500.arrow \\
         --out out/reports/csi500/
  report --library L --panel P --predictions out/models/csi500/ --split valid --out out/reports/v/

Open out/reports/NAME/index.html in any browser (one file, works offline);
summary.json holds every number the page shows.";

#[derive(Parser, Debug)]
#[command(name = "report", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// The library snapshot to report on (library-merge's --out, e.g. libraries/current.parquet).
    #[arg(long)]
    library: PathBuf,
    /// The panel the library was mined on (panel-build's --out).
    #[arg(long)]
    panel: PathBuf,
    /// lgbm-train's output folder (or its predictions.parquet): shown like a factor.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// The split the per-date charts, decay and correlations are computed on.
    #[arg(long, default_value = "test")]
    split: String,
    /// Longest horizon of the IC decay (1..=N days).
    #[arg(long, default_value_t = 20)]
    decay: usize,
    /// backtest's output folder (of the prediction): a section with its curves and figures.
    #[arg(long)]
    backtest: Option<PathBuf>,
    /// Also write values.parquet: the processed values of every factor (and the
    /// prediction) on the report split's dates, for checking against alphalens.
    #[arg(long)]
    dump_values: bool,
    /// Returns in the quantile and long-short charts are clipped per date to median ±
    /// K robust σ (1.4826 × MAD) of the day's scored assets, so one unadjusted jump or
    /// bad print cannot dominate a curve; RankIC uses the raw label. 0 = raw returns.
    #[arg(long, default_value_t = 5.0)]
    return_bound: f64,
    /// Folder for the report: index.html and its data files (created; replaced atomically).
    #[arg(long)]
    out: PathBuf,
}

/// Forward returns over `h` days by the panel's own label rule (close to close or open
/// to open, NaN where the asset could not be traded): the panel's label when it stores
/// that horizon.
fn forward(panel: &Panel, h: usize) -> Result<Vec<f64>> {
    if let Ok(m) = panel.field(&columns::label(h)) {
        return Ok(m.data.to_vec());
    }
    let (nd, na) = (panel.n_dates(), panel.n_assets());
    let rule = LabelRule::of(panel);
    let (open, close) = (
        panel.field(columns::OPEN)?.data,
        panel.field(columns::CLOSE)?.data,
    );
    // Tradability does not depend on the horizon: it is where the shortest label exists
    // (or that label ran past the panel's end).
    let shortest = *columns::horizons(panel)
        .first()
        .ok_or_else(|| anyhow!("panel has no fwd_ret_* label"))?;
    let buy = panel.field(&columns::label(shortest))?.data;
    let reach = rule.reach(shortest);
    // A break (panel-build): `returns` NaN between two finite closes. No label spans one.
    let ret = panel.field("returns")?.data;
    let is_break =
        |c: usize| c >= na && ret[c].is_nan() && close[c].is_finite() && close[c - na].is_finite();
    let span = rule.reach(h);
    let mut out = vec![f64::NAN; nd * na];
    for (c, o) in out.iter_mut().enumerate() {
        if buy[c].is_finite() || c / na + reach >= nd {
            let crosses = (1..=span).any(|k| c + k * na < nd * na && is_break(c + k * na));
            if !crosses {
                *o = rule.forward(open, close, nd, na, c, h);
            }
        }
    }
    Ok(out)
}

/// Where the IC lives (issue 34): per date, the universe split into thirds by trailing
/// median traded value (20 days; amount, else volume × close; panel-build's liquidity
/// measure): the least, middle and most liquid members. `None` without either field.
fn liquidity_terciles(panel: &Panel, universe: &[bool]) -> Result<Option<[Vec<bool>; 3]>> {
    let (nd, na) = (panel.n_dates(), panel.n_assets());
    let amount = panel.field("amount")?.data;
    let value: Vec<f64> = if amount.iter().any(|x| x.is_finite()) {
        amount.to_vec()
    } else {
        let (v, c) = (
            panel.field("volume")?.data,
            panel.field(columns::CLOSE)?.data,
        );
        v.iter().zip(c).map(|(v, c)| v * c).collect()
    };
    if !value.iter().any(|x| x.is_finite()) {
        return Ok(None);
    }
    let med = af_data::panel_build::Liquidity::default().medians(&value, nd, na);
    let mut masks = [
        vec![false; nd * na],
        vec![false; nd * na],
        vec![false; nd * na],
    ];
    let mut members: Vec<usize> = Vec::with_capacity(na);
    for t in 0..nd {
        members.clear();
        members.extend((0..na).filter(|&a| universe[t * na + a] && med[t * na + a].is_finite()));
        members.sort_by(|&x, &y| med[t * na + x].total_cmp(&med[t * na + y]).then(x.cmp(&y)));
        let n = members.len();
        for (r, &a) in members.iter().enumerate() {
            masks[(3 * r / n.max(1)).min(2)][t * na + a] = true;
        }
    }
    Ok(Some(masks))
}

/// What scoring on one label horizon needs: the context (raw label, as fitness), the
/// splits' usable dates, and the charts' context (bounded returns) on the report split.
struct Scoring<'p> {
    ctx: Context<'p>,
    usable: Vec<(String, Vec<usize>)>,
    rep_usable: Vec<(String, Vec<usize>)>,
    chart: Option<Context<'p>>,
    return_bound: Value,
}

impl<'p> Scoring<'p> {
    fn new(
        panel: &'p Panel,
        meta: &Processing,
        splits: &[Split],
        rep: &Split,
        h: usize,
        bound: f64,
    ) -> Result<Scoring<'p>> {
        let cfg = af_fitness::Config {
            horizon: h,
            ..meta.config(true)
        };
        let usable: Vec<(String, Vec<usize>)> = splits
            .iter()
            .map(|s| (s.name.clone(), s.usable(h, 1)))
            .collect();
        let mut needed: Vec<usize> = usable.iter().flat_map(|u| u.1.iter().copied()).collect();
        needed.sort_unstable();
        needed.dedup();
        let ctx = Context::new(panel, cfg.clone(), &needed)?;
        // The charts' context: the same, with bounded returns. Tables keep fitness'
        // figures on the raw label (tested equal to fitness to 1e-12).
        let rep_usable = vec![(rep.name.clone(), rep.usable(h, 1))];
        let (chart, return_bound) = if bound > 0.0 {
            let mut c = Context::new(panel, cfg, &rep_usable[0].1)?;
            let (clipped, values) = c.bound_returns(bound);
            (
                Some(c),
                json!({"k": bound, "clipped": clipped, "values": values}),
            )
        } else {
            (None, json!({"k": 0, "clipped": 0, "values": 0}))
        };
        Ok(Scoring {
            ctx,
            usable,
            rep_usable,
            chart,
            return_bound,
        })
    }
}

fn run(cli: Cli) -> Result<()> {
    let t0 = Instant::now();
    let panel = Panel::open(&cli.panel)?;
    let lib = Library::open(&cli.library, &panel)?;
    let meta = &lib.meta.processing;
    let (nd, na) = (panel.n_dates(), panel.n_assets());
    let splits: Vec<Split> = meta.splits(panel.dates())?;
    let Some(rep) = splits.iter().find(|s| s.name == cli.split).cloned() else {
        bail!(
            "--split {}: the library's splits are {}",
            cli.split,
            splits
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    if cli.decay == 0 {
        bail!("--decay must be at least 1");
    }
    let h = meta.horizon;
    if !(cli.return_bound >= 0.0 && cli.return_bound.is_finite()) {
        bail!("--return-bound must be a number >= 0 (0 = no bound)");
    }
    // Each factor is shown on the horizon the library recorded for it (its best of
    // those fitness scored, `fitness --horizons`); the model on the primary one.
    let factor_h: Vec<usize> = lib.member_horizons();
    let mut scorings: BTreeMap<usize, Scoring> = BTreeMap::new();
    for &k in std::iter::once(&h).chain(&factor_h) {
        if !scorings.contains_key(&k) {
            scorings.insert(
                k,
                Scoring::new(&panel, meta, &splits, &rep, k, cli.return_bound)?,
            );
        }
    }
    let primary = &scorings[&h];
    let ctx = &primary.ctx;
    let return_bound = primary.return_bound.clone();
    let fwd: Vec<Vec<f64>> = (1..=cli.decay)
        .map(|k| forward(&panel, k))
        .collect::<Result<_>>()?;
    let fields = fields_of(&panel);
    let mut ws = Workspace::default();
    let universe = panel
        .mask(columns::UNIVERSE)
        .unwrap_or_else(|_| vec![true; nd * na]);

    let figures_of = |name: String,
                      id: String,
                      expression: String,
                      generation: Option<i64>,
                      horizon: usize,
                      v: &[f64],
                      ws: &mut Workspace|
     -> Figures {
        let generation = generation.filter(|g| *g >= 0);
        let sc = &scorings[&horizon];
        let evals = sc
            .ctx
            .evaluate(v, &sc.usable, &af_fitness::Library::empty(), ws);
        let processed = ctx.processed(v, ws);
        let dates = match &sc.chart {
            Some(c) => c.evaluate(v, &sc.rep_usable, &af_fitness::Library::empty(), ws),
            None => evals.clone(),
        }
        .into_iter()
        .find(|e| e.name == rep.name)
        .map(|e| e.dates)
        .unwrap_or_default();
        let decay = (1..=cli.decay)
            .map(|k| {
                let (m, n) = mean_rank_ic(&processed, &fwd[k - 1], &universe, na, rep.usable(k, 1));
                (k, m, n)
            })
            .collect();
        Figures {
            name,
            id,
            expression,
            generation,
            horizon,
            splits: evals.into_iter().map(|e| (e.name, e.summary)).collect(),
            dates,
            decay,
            processed,
        }
    };

    let gens: Vec<f64> = lib
        .members
        .iter()
        .map(|m| {
            if m.generation >= 0 {
                m.generation as f64
            } else {
                f64::NAN
            }
        })
        .collect();
    let mut figs: Vec<Figures> = Vec::new();
    for (i, (id, ex)) in lib.ids.iter().zip(&lib.expressions).enumerate() {
        let e = parse_canonical(ex, Dialect::Native, &fields)
            .map_err(|e| anyhow!("library factor {id} ({ex}): {e}"))?;
        let mut f = None;
        Program::compile(&[e]).run(&panel, |_, v| {
            f = Some(figures_of(
                format!("#{}", i + 1),
                id.clone(),
                ex.clone(),
                gens[i].is_finite().then_some(gens[i] as i64),
                factor_h[i],
                v,
                &mut ws,
            ));
            Ok(())
        })?;
        figs.push(f.ok_or_else(|| anyhow!("factor {id} produced no values"))?);
    }
    let mut pred_info = Value::Null;
    let mut model: Option<Value> = None;
    if let Some(p) = &cli.predictions {
        let path = if p.is_dir() {
            p.join("predictions.parquet")
        } else {
            p.clone()
        };
        let t = read_parquet(&path)?;
        let (dates, codes, vals) = (t.f64s("date")?, t.strings("code")?, t.f64s("prediction")?);
        let g = panel.on_grid(&dates, &codes, &vals);
        if let Some((d, c)) = g.off_calendar.or(g.first_unknown) {
            bail!(
                "{}: date {} / code {c} is not on the panel {}",
                path.display(),
                format_date(d),
                cli.panel.display()
            );
        }
        let m = g.values;
        let f = figures_of(
            "model".into(),
            "model".into(),
            "LightGBM prediction (out of sample)".into(),
            None,
            h,
            &m,
            &mut ws,
        );
        pred_info = json!({"path": path, "sha256": sha256_file(&path)?});
        // lgbm-train's summary beside the predictions: which dates are out of selection
        // and the model against its baselines on exactly those dates.
        let sj = path.with_file_name("summary.json");
        if sj.exists() {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&sj)?)
                .map_err(|e| anyhow!("{}: {e}", sj.display()))?;
            model = Some(json!({
                "out_of_selection": v["out_of_selection"],
                "test_rank_ic": v["test_rank_ic"],
                "compare": v["compare"],
            }));
        }
        figs.push(f);
    }
    let n_lib = lib.len();
    let factor_bt = factor_backtests(&panel, &figs[..n_lib], &rep, &universe)?;
    // Test RankIC within liquidity thirds, for the model (first) and each factor.
    // The backtest of the prediction (read once: its top picks here, its section below).
    let backtest = match &cli.backtest {
        Some(b) => {
            let sj = b.join("summary.json");
            let summary: Value = serde_json::from_str(
                &std::fs::read_to_string(&sj).map_err(|e| anyhow!("{}: {e}", sj.display()))?,
            )
            .map_err(|e| anyhow!("{}: {e}", sj.display()))?;
            Some((b, summary))
        }
        None => None,
    };
    let model_picks = backtest
        .as_ref()
        .map_or(Value::Null, |(_, s)| s["top_picks"].clone());
    let mut ic_liquidity = Vec::new();
    if let Some(masks) = liquidity_terciles(&panel, &universe)? {
        let mut labels: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        let order = figs
            .len()
            .checked_sub(1)
            .filter(|_| cli.predictions.is_some());
        for i in order.into_iter().chain(0..n_lib) {
            let f = &figs[i];
            let lab = match labels.entry(f.horizon) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(forward(&panel, f.horizon)?)
                }
            };
            let lab: &Vec<f64> = lab;
            let by: Vec<(f64, usize)> = masks
                .iter()
                .map(|m| mean_rank_ic(&f.processed, lab, m, na, rep.usable(f.horizon, 1)))
                .collect();
            let (all, _) = mean_rank_ic(&f.processed, lab, &universe, na, rep.usable(f.horizon, 1));
            // A factor's own portfolio; the model's from the backtest of its prediction.
            let untradable = if f.id == "model" {
                model_picks["untradable_share"].clone()
            } else {
                factor_bt
                    .as_array()
                    .and_then(|rows| rows.iter().find(|r| r["id"] == f.id.as_str()))
                    .map(|r| r["untradable_share"].clone())
                    .unwrap_or(Value::Null)
            };
            ic_liquidity.push(json!({
                "name": f.name, "id": f.id, "expression": f.expression, "horizon": f.horizon,
                "rank_ic_all": all, "rank_ic_low": by[0].0, "rank_ic_mid": by[1].0, "rank_ic_high": by[2].0,
                "dates": by[2].1, "top_picks_untradable_share": untradable,
            }));
        }
    }

    // Redundancy: mean per-date correlation of the processed factors on the report split.
    let rep_dates = rep.usable(h, 1);
    let corr: Vec<Vec<f64>> = (0..n_lib)
        .map(|i| {
            (0..n_lib)
                .map(|j| {
                    if i == j {
                        1.0
                    } else {
                        ctx.mean_corr(&figs[i].processed, &figs[j].processed, &rep_dates)
                    }
                })
                .collect()
        })
        .collect();

    let _lock = OutputLock::acquire(&cli.out)?;
    let stage = AtomicDir::new(&cli.out)?;
    let mut charts_n = 0usize;
    let mut html = String::new();
    let day = |t: usize| format_date(panel.dates()[t]);
    let prov = panel.provenance();
    let lib_prov =
        af_store::Provenance::from_kv(lib.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>alpha-factory report: {}</title>\
         <style>{CSS}</style></head><body><h1>Factor library report</h1>\
         <p class=\"sub\">{} factors from <code>{}</code> on panel <code>{}</code> ({} dates × {} assets). \
         Charts use the <b>{}</b> split ({} … {}, {} usable dates); horizon {h} day(s), {} winsor, neutralized on {}.</p>",
        esc(&cli.library.display().to_string()),
        n_lib,
        esc(&cli.library.display().to_string()),
        &panel.content_hash()[..12],
        nd,
        na,
        esc(&rep.name),
        day(rep.start),
        day(rep.end - 1),
        rep_dates.len(),
        esc(&meta.winsor.name()),
        esc(meta.neutralize.name()),
    );
    html += &sections::return_bound(&return_bound);
    html += &sections::factor_backtests(&factor_bt);
    if let Some(m) = &model {
        html += &sections::model(m);
    }
    html += &sections::ic_by_liquidity(&ic_liquidity, &rep.name);
    let mut backtest_json = Value::Null;
    if let Some((b, summary)) = &backtest {
        let t = read_parquet(&b.join("daily.parquet"))?;
        let bdates: Vec<String> = t
            .f64s("date")?
            .iter()
            .map(|d| format_date(*d as i32))
            .collect();
        let cols: Vec<(&str, Vec<f64>)> = [
            "gross_return",
            "net_return",
            "bench_return",
            "cost",
            "turnover",
        ]
        .iter()
        .map(|c| Ok((*c, t.f64s(c)?)))
        .collect::<Result<_>>()?;
        let (part, n) = sections::backtest(&bdates, &cols, summary)?;
        html += &part;
        charts_n += n;
        backtest_json = json!({"path": b, "risk": summary["risk"], "params": summary["params"],
                               "limits": summary["limits"], "top_picks": summary["top_picks"]});
    }
    let split_names: Vec<String> = splits.iter().map(|s| s.name.clone()).collect();
    let (part, overview) = sections::overview(&figs, &split_names, &rep.name, &corr, n_lib);
    html += &part;
    if n_lib > 1 {
        html += &sections::redundancy(&corr, &rep.name)?;
        charts_n += 1;
    }
    let mut factors_json = Vec::new();
    // Daily series go to a compact sidecar; summary.json stays a summary.
    let mut series = serde_json::Map::new();
    for (i, f) in figs.iter().enumerate() {
        let (part, mut j, n) = sections::factor(i, f, &rep.name, h, panel.dates(), n_lib)?;
        html += &part;
        if let Some(s) = j.as_object_mut().and_then(|o| o.remove("series")) {
            series.insert(f.name.clone(), s);
        }
        factors_json.push(j);
        charts_n += n;
    }
    write_atomic_bytes(
        &stage.path("series.json"),
        (serde_json::to_string(&series)? + "\n").as_bytes(),
    )?;
    let _ = write!(
        html,
        "<h2>Provenance</h2><table class=\"kv\"><tr><td>panel</td><td><code>{}</code> {}</td></tr>\
         <tr><td>panel made by</td><td><code>{}</code></td></tr>\
         <tr><td>library</td><td><code>{}</code> sha256 <code>{}</code></td></tr>\
         <tr><td>library made by</td><td><code>{}</code></td></tr>\
         <tr><td>processing</td><td>horizon {h}, winsor {}, neutralize {}, min assets {}, splits {}</td></tr>\
         <tr><td>prediction</td><td><code>{}</code></td></tr>\
         <tr><td>this report</td><td>report {} — {} charts</td></tr></table></body></html>",
        esc(&cli.panel.display().to_string()),
        panel.content_hash(),
        esc(&prov
            .as_ref()
            .map_or("?".into(), |p| p.to_json().to_string())),
        esc(&cli.library.display().to_string()),
        sha256_file(&cli.library)?,
        esc(&lib_prov
            .as_ref()
            .map_or("?".into(), |p| p.to_json().to_string())),
        esc(&meta.winsor.name()),
        esc(meta.neutralize.name()),
        meta.min_assets,
        esc(&serde_json::to_string(&meta.splits)?),
        esc(&pred_info.to_string()),
        env!("CARGO_PKG_VERSION"),
        charts_n,
    );
    write_atomic_bytes(&stage.path("index.html"), html.as_bytes())?;
    if cli.dump_values {
        let cells: Vec<usize> = (rep.start * na..rep.end * na).collect();
        let mut t = af_table::Table::cells(panel.dates(), panel.codes(), &cells);
        for f in &figs {
            t = t.f64(&f.id, cells.iter().map(|&c| f.processed[c]).collect());
        }
        let prov = af_store::Provenance::new("report", env!("CARGO_PKG_VERSION"))
            .input_hash("panel", panel.content_hash());
        af_table::write_parquet(&stage.path("values.parquet"), t, &prov)?;
    }
    let summary = json!({
        "tool": {"name": "report", "version": env!("CARGO_PKG_VERSION")},
        "panel": {"path": cli.panel, "hash": panel.content_hash(), "provenance": prov.map(|p| p.to_json())},
        "library": {"path": cli.library, "sha256": sha256_file(&cli.library)?, "factors": n_lib,
                    "provenance": lib_prov.map(|p| p.to_json())},
        "predictions": pred_info,
        "split": rep.name, "horizon": h, "processing": meta,
        "model": model,
        "backtest": backtest_json,
        "factor_backtests": factor_bt,
        "ic_by_liquidity": ic_liquidity,
        "charts": charts_n,
        "return_bound": return_bound,
        "series": "series.json",
        "overview": overview,
        "correlation": {"ids": lib.ids, "matrix": corr},
        "factors": factors_json,
    });
    let mut s = serde_json::to_string_pretty(&summary)?;
    s.push('\n');
    write_atomic_bytes(&stage.path("summary.json"), s.as_bytes())?;
    stage.commit()?;
    tracing::info!(
        "{} factors{}, {charts_n} charts in {:.1} s",
        n_lib,
        if cli.predictions.is_some() {
            " and the prediction"
        } else {
            ""
        },
        t0.elapsed().as_secs_f64()
    );
    println!("{}", cli.out.join("index.html").display());
    Ok(())
}

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1240px;color:#222;padding:0 16px}\
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}.sub{color:#555;font-size:14px}\
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border-bottom:1px solid #eee;padding:4px 6px;text-align:right}\
th{background:#f6f6f6;position:sticky;top:0}td.ex,th:nth-child(2){text-align:left;font-family:ui-monospace,monospace;font-size:12px;max-width:420px;overflow-wrap:anywhere}\
.pos{color:#1a7f37}.neg{color:#b42318}details{margin:14px 0;border:1px solid #e5e5e5;border-radius:6px;padding:8px 12px}\
summary{cursor:pointer;font-size:14px}summary code{font-size:12px}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:8px}\
.chart svg{max-width:100%;height:auto}.wide svg{max-width:100%}table.kv td{text-align:left;font-size:12px;overflow-wrap:anywhere}";

/// The top library factors (up to 3) as TopkDropout portfolios on the report split:
/// the factor's processed values, signed by its train RankIC, as the signal; backtest's
/// default costs and board limits; top-k scaled to the universe (50, or a fifth of it).
fn factor_backtests(
    panel: &Panel,
    figs: &[sections::Figures],
    rep: &Split,
    universe: &[bool],
) -> Result<Value> {
    let (nd, na) = (panel.n_dates(), panel.n_assets());
    let book = af_backtest::OnPanel::new(panel, universe)?;
    let (m, p) = (book.market()?, &book.params);
    let limits = &book.limits;
    af_backtest::check_bench(&m, universe, rep.start)?;
    let mut out = Vec::new();
    for f in figs.iter().take(3) {
        let sign = f
            .splits
            .iter()
            .find(|s| s.0 == "train")
            .or(f.splits.first())
            .map_or(1.0, |s| s.1.rank_ic_mean.signum());
        let mut signal = vec![f64::NAN; nd * na];
        // Scores dated inside the report split (they trade on the next day).
        for t in rep.start..rep.end.min(nd.saturating_sub(1)) {
            for a in 0..na {
                signal[t * na + a] = sign * f.processed[t * na + a];
            }
        }
        let o = match af_backtest::run(&m, &signal, p) {
            Ok(o) => o,
            // An impossible held return is an error, not a missing row.
            Err(e) if af_backtest::is_impossible(&e) => return Err(e),
            Err(_) => continue,
        };
        let picks = af_backtest::pick_tradability(&m, &signal, p);
        let ex: Vec<f64> = o.days.iter().map(|d| d.net - d.bench).collect();
        let r = af_backtest::risk(&ex);
        out.push(json!({
            "rank": f.name, "id": f.id, "expression": f.expression, "sign": sign,
            "topk": p.topk, "n_drop": p.n_drop, "days": o.days.len(),
            "excess_with_cost": r, "limits": limits.rule, "top_picks": picks,
            "untradable_share": picks.untradable_share(),
            "mean_turnover": o.days.iter().map(|d| d.turnover).sum::<f64>() / o.days.len().max(1) as f64,
        }));
    }
    Ok(Value::Array(out))
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Cli::parse();
        af_store::log::init("report", &a.log);
        run(a)
    });
}
