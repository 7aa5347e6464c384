//! `report`: what a researcher looks at after a mining run — is the library any good, is
//! it stable, is it redundant. One self-contained `index.html` (inline SVG charts, no
//! script, no network) and `summary.json` with every number shown.
//!
//! Each factor is re-evaluated from its expression and scored by `af_fitness` exactly as
//! `fitness` scores it (same processing, splits and horizon the library recorded), so
//! the report's figures are fitness' figures; the model's prediction (`--predictions`)
//! goes through the same path as if it were a factor.

mod charts;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use af_expr::{Dialect, Program, fields_of, parse_canonical};
use af_fitness::prep::Winsor;
use af_fitness::split::{Split, from_recorded};
use af_fitness::stats::mean_rank_ic;
use af_fitness::{Config, Context, DateStat, QUANTILES, Summary, Workspace};
use af_library::Library;
use af_panel::Panel;
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
    #[arg(long)]
    library: PathBuf,
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
    /// Also write values.parquet: the processed values of every factor (and the
    /// prediction) on the report split's dates, for checking against alphalens.
    #[arg(long)]
    dump_values: bool,
    #[arg(long)]
    out: PathBuf,
}

/// Everything shown for one factor (or the prediction).
struct Figures {
    name: String,
    id: String,
    expression: String,
    generation: Option<i64>,
    /// Per split, fitness' summary.
    splits: Vec<(String, Summary)>,
    /// The report split's per-date figures.
    dates: Vec<DateStat>,
    decay: Vec<(usize, f64, usize)>,
    processed: Vec<f64>,
}

fn summary_json(s: &Summary) -> Value {
    json!({
        "ic_mean": s.ic_mean, "ic_std": s.ic_std, "icir": s.icir, "ic_tstat": s.ic_tstat,
        "rank_ic_mean": s.rank_ic_mean, "rank_ic_std": s.rank_ic_std, "rank_icir": s.rank_icir,
        "rank_ic_tstat": s.rank_ic_tstat, "rank_ic_positive": s.rank_ic_positive,
        "rank_autocorr": s.rank_autocorr, "turnover": s.turnover, "top_turnover": s.top_turnover,
        "long_short_mean": s.long_short_mean, "coverage": s.coverage,
        "dates_used": s.dates_used, "dates_dropped": s.dates_dropped,
        "rank_ic_by_year": s.rank_ic_by_year.iter().map(|(y, v)| (y.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Forward returns over `h` days as the panel defines its labels (close to close,
/// NaN where the asset could not be bought): the panel's own label when it has one.
fn forward(panel: &Panel, h: usize) -> Result<Vec<f64>> {
    if let Ok(m) = panel.field(&format!("fwd_ret_{h}")) {
        return Ok(m.data.to_vec());
    }
    let (nd, na) = (panel.n_dates(), panel.n_assets());
    let close = panel.field("close")?.data;
    // "Could be bought at t" is where the shortest label exists.
    let shortest = panel
        .field_names()
        .into_iter()
        .filter_map(|f| {
            f.strip_prefix("fwd_ret_")
                .and_then(|h| h.parse::<usize>().ok())
        })
        .min()
        .ok_or_else(|| anyhow!("panel has no fwd_ret_* label"))?;
    let buy = panel.field(&format!("fwd_ret_{shortest}"))?.data;
    let mut out = vec![f64::NAN; nd * na];
    for t in 0..nd.saturating_sub(h) {
        for a in 0..na {
            let c = t * na + a;
            let ok = buy[c].is_finite() || t + shortest >= nd;
            if ok {
                out[c] = close[c + h * na] / close[c] - 1.0;
            }
        }
    }
    Ok(out)
}

/// Compounded curve of daily-rebalanced positions earning `r / h` a day (an h-day
/// forward return spread over its h days); NaN days add nothing.
fn compound(r: &[f64], h: usize) -> Vec<f64> {
    let mut w = 1.0;
    r.iter()
        .map(|x| {
            if x.is_finite() {
                w *= 1.0 + x / h as f64;
            }
            w - 1.0
        })
        .collect()
}

/// Maximum drawdown of a cumulative-return curve: (depth, peak index, trough index).
fn max_drawdown(cum: &[f64]) -> (f64, usize, usize) {
    let (mut peak, mut peak_i) = (f64::NEG_INFINITY, 0);
    let mut best = (0.0, 0, 0);
    for (i, c) in cum.iter().enumerate() {
        let w = 1.0 + c;
        if w > peak {
            peak = w;
            peak_i = i;
        }
        let dd = 1.0 - w / peak;
        if dd > best.0 {
            best = (dd, peak_i, i);
        }
    }
    best
}

fn moving_average(x: &[f64], n: usize) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let w: Vec<f64> = x[i.saturating_sub(n - 1)..=i]
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            if i + 1 >= n && !w.is_empty() {
                w.iter().sum::<f64>() / w.len() as f64
            } else {
                f64::NAN
            }
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "–".into()
    }
}

fn run(cli: Cli) -> Result<()> {
    let t0 = Instant::now();
    let panel = Panel::open(&cli.panel)?;
    let lib = Library::open(&cli.library, &panel)?;
    let meta = &lib.meta;
    let (nd, na) = (panel.n_dates(), panel.n_assets());
    let recorded: Vec<(String, String, String)> = meta
        .splits
        .as_array()
        .ok_or_else(|| anyhow!("library {} records no splits", cli.library.display()))?
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (f("name"), f("first"), f("last"))
        })
        .collect();
    let splits: Vec<Split> = from_recorded(&recorded, panel.dates())?;
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
    let (industry, size) = af_fitness::parse_neutralize(&meta.neutralize)?;
    let cfg = Config {
        horizon: h,
        winsor: Winsor::parse(&meta.winsor)?,
        industry,
        size,
        min_assets: meta.min_assets,
        ridge: 1e-6,
        turnover: true,
    };
    let usable: Vec<(String, Vec<usize>)> = splits
        .iter()
        .map(|s| (s.name.clone(), s.usable(h, 1)))
        .collect();
    let mut needed: Vec<usize> = usable.iter().flat_map(|u| u.1.iter().copied()).collect();
    needed.sort_unstable();
    needed.dedup();
    let ctx = Context::new(&panel, cfg, &needed)?;
    let fwd: Vec<Vec<f64>> = (1..=cli.decay)
        .map(|k| forward(&panel, k))
        .collect::<Result<_>>()?;
    let fields = fields_of(&panel);
    let mut ws = Workspace::default();
    let universe = panel
        .mask("in_universe")
        .unwrap_or_else(|_| vec![true; nd * na]);

    let figures_of = |name: String,
                      id: String,
                      expression: String,
                      generation: Option<i64>,
                      v: &[f64],
                      ws: &mut Workspace|
     -> Figures {
        let generation = generation.filter(|g| *g >= 0);
        let evals = ctx.evaluate(v, &usable, &[], ws);
        let processed = ctx.processed(v, ws);
        let dates = evals
            .iter()
            .find(|e| e.name == rep.name)
            .map(|e| e.dates.clone())
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
            splits: evals.into_iter().map(|e| (e.name, e.summary)).collect(),
            dates,
            decay,
            processed,
        }
    };

    let gens = if lib.table.has_column("generation") {
        lib.table.f64s("generation")?
    } else {
        vec![f64::NAN; lib.len()]
    };
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
                v,
                &mut ws,
            ));
            Ok(())
        })?;
        figs.push(f.ok_or_else(|| anyhow!("factor {id} produced no values"))?);
    }
    let mut pred_info = Value::Null;
    if let Some(p) = &cli.predictions {
        let path = if p.is_dir() {
            p.join("predictions.parquet")
        } else {
            p.clone()
        };
        let t = read_parquet(&path)?;
        let (dates, codes, vals) = (t.f64s("date")?, t.strings("code")?, t.f64s("prediction")?);
        let di: BTreeMap<i32, usize> = panel
            .dates()
            .iter()
            .enumerate()
            .map(|(i, d)| (*d, i))
            .collect();
        let ci: BTreeMap<&str, usize> = panel
            .codes()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let mut m = vec![f64::NAN; nd * na];
        for ((d, c), v) in dates.iter().zip(&codes).zip(&vals) {
            let (Some(t), Some(a)) = (di.get(&(*d as i32)), ci.get(c.as_str())) else {
                bail!(
                    "{}: date {} / code {c} is not on the panel {}",
                    path.display(),
                    format_date(*d as i32),
                    cli.panel.display()
                );
            };
            m[t * na + a] = *v;
        }
        let f = figures_of(
            "model".into(),
            "model".into(),
            "LightGBM prediction (out of sample)".into(),
            None,
            &m,
            &mut ws,
        );
        pred_info = json!({"path": path, "sha256": sha256_file(&path)?});
        figs.push(f);
    }
    let n_lib = lib.len();

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
    let lib_prov = af_store::Provenance::from_kv(
        lib.table
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
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
        esc(&meta.winsor),
        esc(&meta.neutralize),
    );
    // Overview: the library's own figures (fitness') per split.
    let split_names: Vec<String> = splits.iter().map(|s| s.name.clone()).collect();
    let _ = write!(
        html,
        "<h2 id=\"overview\">Overview</h2><table><thead><tr><th>#</th><th>expression</th><th>gen</th>"
    );
    for s in &split_names {
        let _ = write!(html, "<th>{s} RankIC</th>");
    }
    let _ = write!(
        html,
        "<th>{} RankICIR</th><th>turnover</th><th>coverage</th><th>max |corr|</th></tr></thead><tbody>",
        esc(&rep.name)
    );
    let mut overview = Vec::new();
    for (i, f) in figs.iter().enumerate() {
        let get = |s: &str| f.splits.iter().find(|x| x.0 == s).map(|x| &x.1);
        let r = get(&rep.name);
        let maxc = if i < n_lib {
            (0..n_lib)
                .filter(|&j| j != i)
                .map(|j| corr[i][j].abs())
                .fold(f64::NAN, f64::max)
        } else {
            f64::NAN
        };
        let _ = write!(
            html,
            "<tr><td><a href=\"#f{i}\">{}</a></td><td class=\"ex\">{}</td><td>{}</td>",
            esc(&f.name),
            esc(&f.expression),
            f.generation.map_or("–".into(), |g| g.to_string())
        );
        for s in &split_names {
            let v = get(s).map_or(f64::NAN, |x| x.rank_ic_mean);
            let cls = if v > 0.0 {
                "pos"
            } else if v < 0.0 {
                "neg"
            } else {
                ""
            };
            let _ = write!(html, "<td class=\"{cls}\">{}</td>", num(v, 4));
        }
        let _ = write!(
            html,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            num(r.map_or(f64::NAN, |x| x.rank_icir), 3),
            num(r.map_or(f64::NAN, |x| x.turnover), 3),
            num(r.map_or(f64::NAN, |x| x.coverage), 3),
            num(maxc, 2)
        );
        overview.push(json!({"rank": f.name, "id": f.id, "expression": f.expression, "generation": f.generation,
                             "max_abs_corr": maxc}));
    }
    let _ = write!(html, "</tbody></table>");
    if n_lib > 1 {
        let svg = charts::heatmap(
            &format!("Mean cross-sectional correlation ({} split)", rep.name),
            &corr,
        )
        .map_err(|e| anyhow!(e))?;
        charts_n += 1;
        let _ = write!(
            html,
            "<h2>Redundancy</h2><div class=\"chart wide\">{svg}</div><p class=\"sub\">Cell (#i, #j): mean over the split's dates of the per-date Pearson correlation of the processed factors; red positive, blue negative.</p>"
        );
    }

    let mut factors_json = Vec::new();
    for (i, f) in figs.iter().enumerate() {
        let ds = &f.dates;
        let dl: Vec<String> = ds.iter().map(|d| day(d.t)).collect();
        let ric: Vec<f64> = ds.iter().map(|d| d.rank_ic).collect();
        let ma = moving_average(&ric, 20);
        let q: Vec<Vec<f64>> = (0..QUANTILES)
            .map(|k| ds.iter().map(|d| d.q_mean[k]).collect())
            .collect();
        let qmean: Vec<f64> = q
            .iter()
            .map(|s| af_fitness::stats::mean_std(s.iter().copied()).0)
            .collect();
        let qcum: Vec<Vec<f64>> = q.iter().map(|s| compound(s, h)).collect();
        let ls: Vec<f64> = ds.iter().map(|d| d.long_short).collect();
        let lscum = compound(&ls, h);
        let (mdd, pk, tr) = max_drawdown(&lscum);
        let cov: Vec<f64> = ds
            .iter()
            .map(|d| {
                if d.n_univ > 0 {
                    d.n_cov as f64 / d.n_univ as f64
                } else {
                    f64::NAN
                }
            })
            .collect();
        let tt: Vec<f64> = ds.iter().map(|d| d.top_turnover).collect();
        let summ = f
            .splits
            .iter()
            .find(|x| x.0 == rep.name)
            .map(|x| x.1.clone())
            .unwrap_or_default();
        let years: Vec<String> = summ.rank_ic_by_year.keys().map(|y| y.to_string()).collect();
        let yv: Vec<f64> = summ.rank_ic_by_year.values().copied().collect();
        let qlab: Vec<String> = (1..=QUANTILES).map(|k| format!("Q{k}")).collect();
        let dlab: Vec<String> = f.decay.iter().map(|d| d.0.to_string()).collect();
        let dv: Vec<f64> = f.decay.iter().map(|d| d.1).collect();
        let e = |r: Result<String, String>| r.map_err(|e| anyhow!(e));
        let qnames: Vec<String> = (1..=QUANTILES).map(|k| format!("Q{k}")).collect();
        let qseries: Vec<(&str, &[f64])> = qnames
            .iter()
            .map(|s| s.as_str())
            .zip(qcum.iter().map(|v| v.as_slice()))
            .collect();
        let svgs = [
            e(charts::lines(
                "Daily RankIC and its 20-day mean",
                "RankIC",
                &dl,
                &[("daily", &ric), ("20-day mean", &ma)],
                true,
            ))?,
            e(charts::bars("RankIC by year", "mean RankIC", &years, &yv))?,
            e(charts::bars(
                "IC decay: mean RankIC with the h-day forward return",
                "mean RankIC",
                &dlab,
                &dv,
            ))?,
            e(charts::bars(
                &format!("Mean {h}-day forward return by quintile"),
                "mean return",
                &qlab,
                &qmean,
            ))?,
            e(charts::lines(
                "Cumulative return by quintile (daily rebalanced)",
                "cumulative return",
                &dl,
                &qseries,
                true,
            ))?,
            e(charts::lines(
                &format!("Long-short (Q5 − Q1), max drawdown {:.1}%", 100.0 * mdd),
                "cumulative return",
                &dl,
                &[("long-short", &lscum)],
                true,
            ))?,
            e(charts::lines(
                "Top-quintile turnover and coverage",
                "share",
                &dl,
                &[("top-quintile turnover", &tt), ("coverage", &cov)],
                false,
            ))?,
        ];
        charts_n += svgs.len();
        let open = if i < 5 || i >= n_lib { " open" } else { "" };
        let _ = write!(
            html,
            "<details id=\"f{i}\"{open}><summary><b>{}</b> <code>{}</code> — {} RankIC {} · ICIR {} · turnover {} · long-short {}</summary>\
             <p class=\"sub\">id <code>{}</code>{}. Max drawdown of the long-short curve {:.2}% from {} to {}.</p><div class=\"grid\">",
            esc(&f.name),
            esc(&f.expression),
            esc(&rep.name),
            num(summ.rank_ic_mean, 4),
            num(summ.rank_icir, 3),
            num(summ.turnover, 3),
            num(summ.long_short_mean, 5),
            esc(&f.id),
            f.generation
                .map_or(String::new(), |g| format!(", found in generation {g}")),
            100.0 * mdd,
            dl.get(pk).cloned().unwrap_or_default(),
            dl.get(tr).cloned().unwrap_or_default(),
        );
        for s in &svgs {
            let _ = write!(html, "<div class=\"chart\">{s}</div>");
        }
        let _ = write!(html, "</div></details>");
        factors_json.push(json!({
            "rank": f.name, "id": f.id, "expression": f.expression, "generation": f.generation,
            "splits": f.splits.iter().map(|(n, s)| (n.clone(), summary_json(s))).collect::<serde_json::Map<_, _>>(),
            "series": {
                "date": dl, "rank_ic": ric, "ic": ds.iter().map(|d| d.ic).collect::<Vec<_>>(),
                "rank_ic_ma20": ma, "long_short": ls, "long_short_cumulative": lscum,
                "quantile_mean_return": q, "top_turnover": tt, "coverage": cov,
                "rank_autocorr": ds.iter().map(|d| d.rank_autocorr).collect::<Vec<_>>(),
            },
            "decay": f.decay.iter().map(|(k, v, n)| json!({"horizon": k, "rank_ic_mean": v, "dates": n})).collect::<Vec<_>>(),
            "quantile_mean_return": qmean,
            "max_drawdown": {"depth": mdd, "peak": dl.get(pk), "trough": dl.get(tr)},
        }));
    }
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
        esc(&meta.winsor),
        esc(&meta.neutralize),
        meta.min_assets,
        esc(&meta.splits.to_string()),
        esc(&pred_info.to_string()),
        env!("CARGO_PKG_VERSION"),
        charts_n,
    );
    write_atomic_bytes(&stage.path("index.html"), html.as_bytes())?;
    if cli.dump_values {
        let cells: Vec<usize> = (rep.start * na..rep.end * na).collect();
        let mut t = af_table::Table::new()
            .date(
                "date",
                cells.iter().map(|&c| panel.dates()[c / na]).collect(),
            )
            .str(
                "code",
                cells.iter().map(|&c| panel.codes()[c % na].as_str()),
            );
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
        "split": rep.name, "horizon": h, "winsor": meta.winsor, "neutralize": meta.neutralize,
        "min_assets": meta.min_assets, "splits": meta.splits,
        "charts": charts_n,
        "overview": overview,
        "correlation": {"ids": lib.ids, "matrix": corr},
        "factors": factors_json,
    });
    let mut s = serde_json::to_string_pretty(&summary)?;
    s.push('\n');
    write_atomic_bytes(&stage.path("summary.json"), s.as_bytes())?;
    stage.commit()?;
    eprintln!(
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

fn main() {
    af_store::cli::main_with(|| run(Cli::parse()));
}
