//! `backtest`: a signal as a costed top-k portfolio (docs/backtest.md). Reads the signal
//! and the panel, calls `af_backtest::run`, writes daily.parquet, trades.parquet and
//! summary.json.

use std::collections::BTreeMap;
use std::path::PathBuf;

use af_backtest::{LimitRule, Limits, Market, Params, Side, risk, run};
use af_panel::Panel;
use af_panel::dates::{format_date, year_of};
use af_store::{AtomicDir, OutputLock, Provenance, sha256_file, write_atomic_bytes};
use af_table::{Table, read_parquet, write_parquet};
use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;

const EXAMPLES: &str = "\
Examples:
  backtest --signal out/runs/csi500-seed1/model/predictions.parquet --panel data/panel/csi500.arrow --out out/bt
  backtest --signal my_factor.parquet --column alpha --topk 30 --n-drop 3 --panel data/panel/csi500.arrow --out out/bt2

The signal: a Parquet file with `date`, `code` and a score column (`--column`; default
`score`, else `prediction`). Trades use the previous date's scores at today's close.";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum LimitRuleArg {
    Market,
    Board,
    Flat,
    None,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Deal {
    Close,
    Open,
}

#[derive(Parser, Debug)]
#[command(name = "backtest", version, about = "Backtest a signal as a costed TopkDropout portfolio (Qlib's rules; docs/backtest.md).", after_help = EXAMPLES)]
struct Args {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// The signal: Parquet with date, code and a score column (lgbm-train's
    /// predictions.parquet).
    #[arg(long)]
    signal: PathBuf,
    /// The score column (default: `score`, else `prediction`).
    #[arg(long)]
    column: Option<String>,
    /// The panel giving returns, tradability and limits.
    #[arg(long)]
    panel: PathBuf,
    /// Folder for the results: summary.json, daily.parquet, orders and holdings.
    #[arg(long)]
    out: PathBuf,
    /// Names held.
    #[arg(long, default_value_t = 50)]
    topk: usize,
    /// Holdings replaced per day at most.
    #[arg(long, default_value_t = 5)]
    n_drop: usize,
    /// Cost rate of a buy (Qlib's open_cost).
    #[arg(long, default_value_t = 0.0005)]
    cost_buy: f64,
    /// Cost rate of a sell, stamp tax included (Qlib's close_cost).
    #[arg(long, default_value_t = 0.0015)]
    cost_sell: f64,
    /// Smallest cost of a trade, in yuan.
    #[arg(long, default_value_t = 5.0)]
    min_cost: f64,
    /// Starting account value, in yuan.
    #[arg(long, default_value_t = 1e8)]
    account: f64,
    /// Share of the cash a day's buys use.
    #[arg(long, default_value_t = 0.95)]
    risk_degree: f64,
    /// Limit moves: `market` — the market profile the panel was built under (ts-fetch
    /// --market; a move within half a percent of the limit counts), `board` — A-share
    /// board limits by code (±10 % main, ±20 % ChiNext / STAR, ±30 % Beijing; codes
    /// outside the A-share scheme have none), `flat` — --limit for every stock (Qlib),
    /// or `none`. Under `market` a held or benchmark return beyond the market's own
    /// limit stops the run (an impossible move: the panel should hold it as a break).
    #[arg(long, value_enum, default_value = "market")]
    limit_rule: LimitRuleArg,
    /// `flat`: a day's |change| at or above this is a limit move (Qlib's limit_threshold).
    #[arg(long, default_value_t = 0.095)]
    limit: f64,
    /// Trade at the day's close (Qlib's benchmark config) or its open.
    #[arg(long, value_enum, default_value = "close")]
    deal: Deal,
    /// The benchmark: `equal-weight` (the previous day's universe), or a CSV/Parquet file
    /// with `date` and `return` columns (an index's daily returns).
    #[arg(long, default_value = "equal-weight")]
    benchmark: String,
    /// First trading date (default: the signal's first).
    #[arg(long)]
    start: Option<String>,
    /// Last trading date (default: the signal's last).
    #[arg(long)]
    end: Option<String>,
}

fn run_cli(a: Args) -> Result<()> {
    let _lock = OutputLock::acquire(&a.out)?;
    let panel = Panel::open(&a.panel)?;
    let (nd, na) = (panel.n_dates(), panel.n_assets());
    let t = read_parquet(&a.signal)?;
    let col = match &a.column {
        Some(c) => c.clone(),
        None if t.has_column("score") => "score".into(),
        None if t.has_column("prediction") => "prediction".into(),
        None => bail!(
            "{}: no `score` or `prediction` column; name one with --column",
            a.signal.display()
        ),
    };
    let (dates, codes, vals) = (
        t.f64s("date")
            .with_context(|| format!("{}", a.signal.display()))?,
        t.strings("code")
            .with_context(|| format!("{}", a.signal.display()))?,
        t.f64s(&col)
            .with_context(|| format!("{}", a.signal.display()))?,
    );
    let g = panel.on_grid(&dates, &codes, &vals);
    if let Some((d, _)) = g.off_calendar {
        bail!(
            "{}: date {} is not a trading date of the panel {}",
            a.signal.display(),
            format_date(d),
            a.panel.display()
        );
    }
    if let Some((d, c)) = &g.duplicate {
        bail!(
            "{}: two rows for {c} on {}",
            a.signal.display(),
            format_date(*d)
        );
    }
    let (mut signal, seen, unknown) = (g.values, g.seen, g.unknown);
    if !unknown.is_empty() {
        tracing::warn!(
            "{} rows of {} codes not on the panel skipped (e.g. {})",
            unknown.values().sum::<usize>(),
            unknown.len(),
            unknown.keys().next().cloned().unwrap_or_default()
        );
    }
    let parse = |s: &Option<String>| s.as_deref().map(af_panel::dates::parse_date).transpose();
    let (lo, hi) = (parse(&a.start)?, parse(&a.end)?);
    for t in 0..nd {
        // The score of date t trades on t+1: keep scores whose trade day is in range.
        let trade_day = panel.dates().get(t + 1).copied().unwrap_or(i32::MAX);
        if lo.is_some_and(|l| trade_day < l) || hi.is_some_and(|h| trade_day > h) {
            signal[t * na..(t + 1) * na].fill(f64::NAN);
        }
    }
    let empty_days = (0..nd)
        .filter(|t| seen[t * na..(t + 1) * na].iter().any(|x| *x))
        .filter(|t| signal[t * na..(t + 1) * na].iter().all(|x| !x.is_finite()))
        .count();
    if empty_days > 0 {
        tracing::warn!(
            "{empty_days} signal dates have no finite score: no trade on their next day"
        );
    }
    let universe = panel
        .mask(af_panel::columns::UNIVERSE)
        .unwrap_or_else(|_| vec![true; nd * na]);
    let tradable = panel
        .mask(af_panel::columns::TRADABLE)
        .unwrap_or_else(|_| vec![true; nd * na]);
    let max_univ = af_backtest::max_universe(&universe, nd, na);
    if a.topk > max_univ {
        bail!(
            "--topk {} is larger than the universe ({max_univ} names at most)",
            a.topk
        );
    }
    let close = panel.field("close")?.data;
    let change = panel.field("returns")?.data;
    let deal = match a.deal {
        Deal::Close => close,
        Deal::Open => panel.field("open")?.data,
    };
    let rule = match a.limit_rule {
        LimitRuleArg::Market => LimitRule::Market,
        LimitRuleArg::Board => LimitRule::Board,
        LimitRuleArg::Flat => LimitRule::Flat,
        LimitRuleArg::None => LimitRule::None,
    };
    let market = match rule {
        LimitRule::Market => af_data::market::Market::from_panel(&panel.description())
            .with_context(|| format!("{}", a.panel.display()))?,
        _ => af_data::market::Market::cn(),
    };
    let limits = Limits::of(rule, &market, panel.codes());
    let bench = if a.benchmark == "equal-weight" {
        af_backtest::equal_weight_bench(change, &universe, nd, na)
    } else {
        let path = PathBuf::from(&a.benchmark);
        let t = read_parquet(&path).with_context(|| format!("--benchmark {}", a.benchmark))?;
        let (d, r) = (t.f64s("date")?, t.f64s("return")?);
        let mut b = vec![f64::NAN; nd];
        for (d, r) in d.iter().zip(&r) {
            if let Ok(t) = panel.dates().binary_search(&(*d as i32)) {
                b[t] = *r;
            }
        }
        b
    };
    let m = Market {
        n_dates: nd,
        n_assets: na,
        close,
        change,
        deal,
        limits: &limits,
        codes: panel.codes(),
        dates: panel.dates(),
        tradable: &tradable,
        bench: &bench,
    };
    if a.benchmark == "equal-weight" {
        // From the first date the signal trades on.
        let from = (1..nd)
            .find(|&t| signal[(t - 1) * na..t * na].iter().any(|x| x.is_finite()))
            .unwrap_or(nd);
        af_backtest::check_bench(&m, &universe, from)?;
    }
    let p = Params {
        topk: a.topk,
        n_drop: a.n_drop,
        cost_buy: a.cost_buy,
        cost_sell: a.cost_sell,
        min_cost: a.min_cost,
        account: a.account,
        risk_degree: a.risk_degree,
        limit: a.limit,
    };
    let o = run(&m, &signal, &p)?;
    let picks = af_backtest::pick_tradability(&m, &signal, &p);
    let dl = |t: usize| panel.dates()[t];
    let days = &o.days;
    let col_of = |f: fn(&af_backtest::Day) -> f64| days.iter().map(f).collect::<Vec<f64>>();
    let (gross, net, bench_r, cost) = (
        col_of(|d| d.gross),
        col_of(|d| d.net),
        col_of(|d| d.bench),
        col_of(|d| d.cost),
    );
    let ex_gross: Vec<f64> = gross.iter().zip(&bench_r).map(|(a, b)| a - b).collect();
    let ex_net: Vec<f64> = net.iter().zip(&bench_r).map(|(a, b)| a - b).collect();
    let mut years: BTreeMap<i32, (f64, f64, usize)> = BTreeMap::new();
    for (d, e) in days.iter().zip(&ex_net) {
        let y = years.entry(year_of(dl(d.t))).or_default();
        y.0 += d.net;
        y.1 += e;
        y.2 += 1;
    }
    let buys = o
        .trades
        .iter()
        .filter(|x| x.side == Side::Buy && x.refused.is_none())
        .count();
    let held_days: usize = days.iter().map(|d| d.holdings).sum();
    let mut refused: BTreeMap<&str, usize> = BTreeMap::new();
    for x in o.trades.iter().filter_map(|x| x.refused) {
        *refused.entry(x.name()).or_default() += 1;
    }
    let prov = Provenance::new("backtest", env!("CARGO_PKG_VERSION"))
        .input_hash("panel", panel.content_hash())
        .input_hash("signal", &sha256_file(&a.signal)?)
        .param("column", col.clone())
        .param("topk", a.topk as u64)
        .param("n_drop", a.n_drop as u64)
        .param("cost_buy", a.cost_buy)
        .param("cost_sell", a.cost_sell)
        .param("min_cost", a.min_cost)
        .param("account", a.account)
        .param("risk_degree", a.risk_degree)
        .param("limit", a.limit)
        .param("limit_rule", format!("{:?}", a.limit_rule).to_lowercase())
        .param("deal", format!("{:?}", a.deal).to_lowercase())
        .param("benchmark", a.benchmark.clone());
    let summary = json!({
        "tool": {"name": "backtest", "version": env!("CARGO_PKG_VERSION")},
        "signal": {"path": a.signal, "column": col, "sha256": sha256_file(&a.signal)?},
        "panel": {"path": a.panel, "hash": panel.content_hash()},
        "first_date": days.first().map(|d| format_date(dl(d.t))),
        "last_date": days.last().map(|d| format_date(dl(d.t))),
        "days": days.len(),
        "final_value": days.last().map(|d| d.value),
        "risk": {
            "benchmark": risk(&bench_r),
            "excess_return_without_cost": risk(&ex_gross),
            "excess_return_with_cost": risk(&ex_net),
            "return_with_cost": risk(&net),
        },
        "mean_turnover": days.iter().map(|d| d.turnover).sum::<f64>() / days.len().max(1) as f64,
        "total_cost_rate": cost.iter().sum::<f64>(),
        "hit_rate": ex_net.iter().filter(|x| **x > 0.0).count() as f64 / ex_net.len().max(1) as f64,
        "average_holding_days": if buys > 0 { held_days as f64 / buys as f64 } else { f64::NAN },
        "trades": o.trades.iter().filter(|x| x.refused.is_none()).count(),
        "refused": refused,
        "limits": limits.rule,
        "top_picks": {"topk": a.topk, "picks": picks.picks, "suspended_or_no_bar": picks.suspended,
                      "at_limit_up": picks.limit_up, "at_limit_down": picks.limit_down,
                      "untradable_share": picks.untradable_share()},
        "years": years.iter().map(|(y, v)| json!({"year": y, "return_with_cost": v.0, "excess_with_cost": v.1, "days": v.2})).collect::<Vec<_>>(),
        "params": {"topk": a.topk, "n_drop": a.n_drop, "cost_buy": a.cost_buy, "cost_sell": a.cost_sell,
                   "min_cost": a.min_cost, "account": a.account, "risk_degree": a.risk_degree, "limit": a.limit,
                   "limit_rule": format!("{:?}", a.limit_rule).to_lowercase(), "deal": format!("{:?}", a.deal).to_lowercase(),
                   "benchmark": a.benchmark,
                   "n_per_year": af_backtest::N_YEAR},
    });
    let stage = AtomicDir::new(&a.out)?;
    let daily = Table::new()
        .date("date", days.iter().map(|d| dl(d.t)).collect())
        .f64("value", col_of(|d| d.value))
        .f64("cash", col_of(|d| d.cash))
        .f64("gross_return", gross.clone())
        .f64("cost", cost.clone())
        .f64("net_return", net.clone())
        .f64("bench_return", bench_r.clone())
        .f64("turnover", col_of(|d| d.turnover))
        .f64("holdings", col_of(|d| d.holdings as f64));
    write_parquet(&stage.path("daily.parquet"), daily, &prov)?;
    let tr = &o.trades;
    let trades = Table::new()
        .date("date", tr.iter().map(|x| dl(x.t)).collect())
        .str("code", tr.iter().map(|x| panel.codes()[x.asset].as_str()))
        .str(
            "side",
            tr.iter()
                .map(|x| if x.side == Side::Buy { "buy" } else { "sell" }),
        )
        .f64("shares", tr.iter().map(|x| x.shares).collect())
        .f64("price", tr.iter().map(|x| x.price).collect())
        .f64("value", tr.iter().map(|x| x.value).collect())
        .f64("cost", tr.iter().map(|x| x.cost).collect())
        .str(
            "status",
            tr.iter().map(|x| x.refused.map_or("done", |r| r.name())),
        );
    write_parquet(&stage.path("trades.parquet"), trades, &prov)?;
    write_atomic_bytes(
        &stage.path("summary.json"),
        (serde_json::to_string_pretty(&summary)? + "\n").as_bytes(),
    )?;
    stage.commit()?;
    let r = risk(&ex_net);
    println!(
        "backtest: {} days ({}..{}), excess with cost: annualized {:.2}%, IR {:.2}, max drawdown {:.2}% compounded ({:.2}% Qlib sum-mode); mean turnover {:.3}; limits: {}; {:.1}% of the top-{} picks untradable the next day\nwrote {}",
        days.len(),
        summary["first_date"].as_str().unwrap_or("?"),
        summary["last_date"].as_str().unwrap_or("?"),
        100.0 * r.annualized_return,
        r.information_ratio,
        100.0 * r.max_drawdown,
        100.0 * r.max_drawdown_sum,
        limits.rule,
        100.0 * picks.untradable_share(),
        a.topk,
        summary["mean_turnover"].as_f64().unwrap_or(f64::NAN),
        a.out.display()
    );
    Ok(())
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Args::parse();
        af_store::log::init("backtest", &a.log);
        run_cli(a)
    });
}
