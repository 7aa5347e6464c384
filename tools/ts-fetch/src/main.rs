//! `ts-fetch`: bring daily bars into the raw store (`data/raw/`), from the embedded
//! synthetic market or from users' files. Argument parsing only; the work is in af-data.

use std::path::{Path, PathBuf};

use af_data::files::{BadRows, FilesParams, SplitInference, ingest};
use af_data::manifest::{MANIFEST, Manifest};
use af_data::market::Market;
use af_data::synthetic::{PlantedSet, SynthParams, generate};
use af_panel::dates::{format_date, parse_date, year_of};
use af_store::{AtomicDir, OutputLock, Provenance, write_atomic_bytes};
use std::io::IsTerminal;
use std::time::Duration;

use af_data::files::Report;
use af_data::raw::{RawBars, RawWriter, read_partitions};
use af_data::tushare::{self, ClientConfig, TushareParams};
use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

const ABOUT: &str =
    "Fetch daily bars into a raw folder (year-partitioned Parquet + manifest.json).";
const EXAMPLES: &str = "\
Examples:
  # the embedded synthetic A-share market (default source), csi500-sized
  ts-fetch --assets 500 --days 1500 --seed 42 --out data/raw
  # Tushare-style CSV exports (vol in lots, amount in thousands of yuan)
  ts-fetch --source files --path 'exports/daily_*.csv' --mapping tushare --out data/raw
  # the A-share market from Tushare Pro, then each new trading day in seconds
  TUSHARE_TOKEN=… ts-fetch --source tushare --start 2015-01-01 --rate 500 --out data/raw
  TUSHARE_TOKEN=… ts-fetch --source tushare --update --out data/raw
  # any CSV/Parquet, columns renamed by a mapping file
  ts-fetch --source files --path 'bars/*.parquet' --mapping mapping.yaml --out data/raw
  # a market with flat ±50 % limits, sectors and listing dates in their own table
  ts-fetch --source files --path 'bars/*.csv' --market xse.yaml --meta sectors.csv --out data/raw

The output folder appears atomically: a killed run leaves the previous one intact.";

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Source {
    Synthetic,
    Files,
    /// Tushare Pro (token from TUSHARE_TOKEN or .env; docs/ts-fetch.md)
    Tushare,
    /// a Qlib provider folder (--path DIR; ours from qlib-export, or Qlib's dump_bin.py)
    Qlib,
    /// a PostgreSQL table or query (DATABASE_URL from the environment or .env)
    Postgres,
}

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Planted {
    /// five shallow alphas (depth 2–4)
    Standard,
    /// five deeper alphas built from sub-signals (depth 4–6)
    Hard,
}

#[derive(Parser, Debug)]
#[command(name = "ts-fetch", version, about = ABOUT, after_help = EXAMPLES)]
struct Args {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// Where the bars come from.
    #[arg(long, value_enum, default_value = "synthetic")]
    source: Source,
    /// Output folder (replaced as a whole).
    #[arg(long, default_value = "data/raw")]
    out: PathBuf,

    /// [synthetic] number of assets.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=20000))]
    assets: u64,
    /// [synthetic] number of trading days.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(1..=10000))]
    days: u64,
    /// [synthetic] random seed; the same seed gives a byte-identical market.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// [synthetic] which alphas are planted: standard (five shallow ones, depth 2–4) or
    /// hard (five deeper ones built from sub-signals; docs/data_contract.md).
    #[arg(long, value_enum, default_value = "standard")]
    planted: Planted,
    /// [synthetic, tushare] first calendar day (the first trading day on or after it starts the market).
    #[arg(long, default_value = "2016-01-04")]
    start: String,
    /// [tushare] last calendar day (default: today).
    #[arg(long)]
    end: Option<String>,
    /// [tushare] the service's endpoint (a proxy, or a local stand-in in tests).
    #[arg(long, default_value = "http://api.waditu.com/dataapi")]
    api_url: String,
    /// [tushare] calls per minute: your account's tier (50, 200, 500, 1000); 0 = no limit.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// [tushare] add the trading days after the --out folder's last one (and keep the rest).
    #[arg(long)]
    update: bool,
    /// [tushare] also record index membership point in time (monthly index_weight
    /// lists): csi300, csi500, csi1000 (comma-separated). Written as universe-NAME.csv
    /// in the raw folder; `panel-build --universe NAME` uses it.
    #[arg(long, value_delimiter = ',')]
    universe: Vec<String>,
    /// [tushare] pause after a rate-limit answer, seconds (the service wants about 60).
    #[arg(long, default_value_t = 61.0, hide = true)]
    limit_pause: f64,
    /// [tushare] first retry backoff in milliseconds (doubles per retry).
    #[arg(long, default_value_t = 500, hide = true)]
    retry_base_ms: u64,
    /// [tushare] retries of a call after timeouts, dropped connections and 5xx.
    #[arg(long, default_value_t = 6)]
    retries: u32,
    /// [tushare] per-request timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,

    /// [files] glob of CSV / Parquet files (quote it so the shell does not expand it);
    /// [qlib] the Qlib data folder.
    #[arg(long)]
    path: Option<String>,
    /// [files] field mapping: a YAML file, or a preset: `tushare`, `identity`.
    #[arg(long, default_value = "identity")]
    mapping: String,
    /// [files] what to do with a row whose prices are non-positive, whose high < low, or
    /// whose volume is negative: stop with an error naming it, or drop and count it.
    #[arg(long, value_enum, default_value = "error")]
    bad_rows: BadRowsArg,
    /// [files] infer splits from price jumps when the data has neither adj_factor nor
    /// pre_close: `auto` only where the market's daily limit makes the move impossible
    /// as a market move, `always` at every common split ratio, `off`.
    #[arg(long, value_enum, default_value = "auto")]
    infer_splits: SplitArg,
    /// [files] market rules: `cn` (A-share board limits; other codes have none),
    /// `generic` (no limits), or a YAML profile (`name:`, `limit:` or `limit_up:`/`limit_down:`).
    /// Recorded in the manifest; panel-build's limit flags use it.
    #[arg(long, default_value = af_data::market::DEFAULT)]
    market: String,
    /// What a move the market makes impossible (beyond its limit, or without one beyond
    /// --max-move) becomes: `nan` — a break: no return spans it, prices before it are
    /// re-based (panel-build) — or `keep`: a return, as before issue 34. Recorded in the
    /// manifest. Default: nan.
    #[arg(long, value_enum)]
    breaks: Option<BreaksArg>,
    /// Without a daily limit, a day's close/previous close above this ratio or below its
    /// inverse is a break (default: the profile's `max_move`, else 5).
    #[arg(long)]
    max_move: Option<f64>,
    /// [postgres] the table (or view) of daily bars; columns named by --mapping.
    #[arg(long, conflicts_with = "query")]
    table: Option<String>,
    /// [postgres] a query giving the daily bars instead of a table.
    #[arg(long)]
    query: Option<String>,
    /// [files] static per-code data joined by code: a CSV/Parquet with `code` and
    /// `industry` and/or `list_date`; with a `start_date` column, point in time.
    #[arg(long)]
    meta: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, Debug)]
enum BreaksArg {
    Nan,
    Keep,
}

#[derive(Clone, Copy, ValueEnum, Debug)]
enum BadRowsArg {
    Error,
    Drop,
}
#[derive(Clone, Copy, ValueEnum, Debug)]
enum SplitArg {
    Auto,
    Always,
    Off,
}

fn run(a: Args) -> Result<()> {
    let _lock = OutputLock::acquire(&a.out)?;
    let version = env!("CARGO_PKG_VERSION");
    if a.update && !matches!(a.source, Source::Tushare | Source::Postgres) {
        bail!("--update works with --source tushare and --source postgres");
    }
    // Read what an update builds on before the output folder is staged.
    let base = if a.update {
        let m = Manifest::read(&a.out)?;
        let want = format!("{:?}", a.source).to_lowercase();
        if m.source != want {
            bail!(
                "--update: {} came from source {:?}, not {want}",
                a.out.display(),
                m.source
            );
        }
        Some(m)
    } else {
        None
    };
    let dir = AtomicDir::new(&a.out)?;
    let summary = match a.source {
        Source::Tushare => {
            let base = match base {
                Some(m) => Some((m, read_partitions(&a.out)?)),
                None => None,
            };
            fetch_tushare(&a, base, &dir, version)?
        }
        Source::Postgres => fetch_postgres(&a, base, &dir, version)?,
        Source::Qlib => {
            let path = a
                .path
                .as_deref()
                .context("--source qlib needs --path DIR")?;
            let (bars, columns) = af_data::qlib::import(std::path::Path::new(path))?;
            let prov = Provenance::new("ts-fetch", version)
                .param("source", "qlib")
                .param("path", path);
            let market = market_of(&a)?;
            let origin = Origin {
                source: "qlib",
                prov: &prov,
                market: &market,
            };
            let m = write_raw(&dir, &origin, &bars, None, |m| m.columns = columns)?;
            format!(
                "qlib: {} rows, {} symbols, {} days ({}..{})",
                m.rows, m.codes, m.dates, m.first_date, m.last_date
            )
        }
        Source::Synthetic => {
            let start = parse_date(&a.start).context("--start")?;
            let planted = match a.planted {
                Planted::Standard => PlantedSet::Standard,
                Planted::Hard => PlantedSet::Hard,
            };
            let p = SynthParams {
                assets: a.assets as usize,
                days: a.days as usize,
                seed: a.seed,
                start,
                planted,
            };
            let mut prov = Provenance::new("ts-fetch", version)
                .param("source", "synthetic")
                .param("assets", a.assets)
                .param("days", a.days)
                .param("seed", a.seed)
                .param("start", format_date(start));
            if planted != PlantedSet::Standard {
                prov = prov.param("planted", planted.name());
            }
            let s = generate(&p)?;
            write_atomic_bytes(
                &dir.path("ground_truth.json"),
                (serde_json::to_string_pretty(&s.ground_truth)? + "\n").as_bytes(),
            )?;
            let market = market_of(&a)?;
            let origin = Origin {
                source: "synthetic",
                prov: &prov,
                market: &market,
            };
            let m = write_raw(&dir, &origin, &s.bars, None, |m| {
                for c in af_data::raw::COLUMNS {
                    m.columns.insert(c.to_string(), "provided".into());
                }
            })?;
            format!(
                "synthetic market: {} rows, {} assets, {} days ({}..{})",
                m.rows, m.codes, m.dates, m.first_date, m.last_date
            )
        }
        Source::Files => {
            let glob = a
                .path
                .as_deref()
                .context("--source files needs --path GLOB")?;
            let p = files_params(&a, glob)?;
            let ing = ingest(&p)?;
            let mut prov = Provenance::new("ts-fetch", version)
                .param("source", "files")
                .param("path", glob)
                .param("mapping", a.mapping.clone())
                .param("market", p.market.name.clone())
                .param(
                    "meta",
                    a.meta
                        .as_ref()
                        .map_or(String::new(), |m| m.display().to_string()),
                )
                .param("bad_rows", format!("{:?}", a.bad_rows).to_lowercase())
                .param(
                    "infer_splits",
                    format!("{:?}", a.infer_splits).to_lowercase(),
                );
            for (name, h) in &ing.report.input_hashes {
                prov = prov.input_hash(name, h);
            }
            let edit = tabular_report(&a, ing.report, &p.market);
            let origin = Origin {
                source: "files",
                prov: &prov,
                market: &p.market,
            };
            let m = write_raw(&dir, &origin, &ing.bars, None, edit)?;
            let cleaned: u64 = m.cleaning.values().sum();
            format!(
                "files: {} rows, {} assets, {} days ({}..{}); cleaning touched {} rows (see manifest.json)",
                m.rows, m.codes, m.dates, m.first_date, m.last_date, cleaned
            )
        }
    };
    dir.commit()?;
    if matches!(a.source, Source::Tushare) {
        // The raw folder holds everything the journal did.
        let _ = std::fs::remove_dir_all(tushare::journal_dir(&a.out));
    }
    println!("{summary}\nwrote {}", a.out.display());
    Ok(())
}

/// The market profile with the break flags applied: recorded in every source's manifest.
fn market_of(a: &Args) -> Result<Market> {
    Market::load(&a.market)?.with_breaks(a.breaks.map(|b| matches!(b, BreaksArg::Keep)), a.max_move)
}

fn files_params(a: &Args, glob: &str) -> Result<FilesParams> {
    Ok(FilesParams {
        glob: glob.to_string(),
        mapping: a.mapping.clone(),
        bad_rows: match a.bad_rows {
            BadRowsArg::Error => BadRows::Error,
            BadRowsArg::Drop => BadRows::Drop,
        },
        infer_splits: match a.infer_splits {
            SplitArg::Auto => SplitInference::Auto,
            SplitArg::Always => SplitInference::Always,
            SplitArg::Off => SplitInference::Off,
        },
        market: market_of(a)?,
        meta: a.meta.clone(),
    })
}

/// Write the bars as year partitions and the manifest `edit` completes (columns,
/// cleaning, …): every source's last step, in one place.
/// `update`: the folder an update builds on and its last date; the years before the
/// first new date are kept from it, not rewritten (noted in the manifest).
fn write_raw(
    dir: &AtomicDir,
    origin: &Origin,
    bars: &af_data::raw::RawBars,
    update: Option<(&Path, &str)>,
    edit: impl FnOnce(&mut Manifest),
) -> Result<Manifest> {
    let mut w = RawWriter::new(&dir.path(""), origin.prov, keep_before(update)?);
    w.write(bars)?;
    finish_raw(
        dir,
        origin,
        &w,
        bars.code_names.len(),
        update.is_some(),
        edit,
    )
}

/// Where a raw folder's bars came from, recorded in its manifest: the source, the
/// fetch's provenance, and the market profile with its break rule.
struct Origin<'a> {
    source: &'a str,
    prov: &'a Provenance,
    market: &'a Market,
}

/// An update's previous folder and the first year its new dates touch (the old last
/// date's year): the years before are kept from it.
fn keep_before<'a>(update: Option<(&'a Path, &str)>) -> Result<Option<(&'a Path, i32)>> {
    update
        .map(|(old, last)| Ok((old, year_of(parse_date(last)?))))
        .transpose()
}

/// The manifest of what `w` wrote (`codes`: distinct codes) with the market profile
/// and its break rule (every source records it here), edited by the caller and written.
fn finish_raw(
    dir: &AtomicDir,
    origin: &Origin,
    w: &RawWriter,
    codes: usize,
    update: bool,
    edit: impl FnOnce(&mut Manifest),
) -> Result<Manifest> {
    let (rows, dates) = w.totals();
    let mut m = Manifest::from_totals(
        origin.source,
        origin.prov,
        (rows, codes, dates),
        &w.parts.files,
        &dir.path(""),
    )?;
    if update {
        let years = |v: &[i32]| {
            v.iter()
                .map(|y| y.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        m.notes.push(format!(
            "update rewrote year {} and kept year {} unchanged",
            years(&w.parts.written),
            if w.parts.kept.is_empty() {
                "none".into()
            } else {
                years(&w.parts.kept)
            }
        ));
    }
    m.market = Some(origin.market.clone());
    edit(&mut m);
    write_atomic_bytes(&dir.path(MANIFEST), m.to_json_pretty().as_bytes())?;
    Ok(m)
}

/// Warnings and move summary of a tabular source (files, postgres), and the manifest
/// fields its report fills.
fn tabular_report(a: &Args, r: Report, market: &Market) -> impl FnOnce(&mut Manifest) {
    for n in &r.notes {
        tracing::warn!("{n}");
    }
    let count = |what: &str| r.moves.iter().filter(|x| x.action == what).count();
    let (split, brk, kept) = (count("split"), count("break"), count("kept"));
    if split + brk + kept > 0 {
        tracing::warn!(
            "{split} splits inferred, {brk} breaks (impossible moves: no return will span \
             them) and {kept} large moves kept (market {}); each is listed under `moves` in {}",
            market.name,
            a.out.join(MANIFEST).display()
        );
    }
    move |m: &mut Manifest| {
        m.columns = r.columns;
        m.cleaning = r.cleaning;
        m.notes.extend(r.notes);
        m.moves = r.moves;
    }
}

/// The PostgreSQL source, one calendar year at a time (rows of a DATE/TIMESTAMP column
/// come one COPY per year): each year is mapped, cleaned — the per-code state carried
/// from the year before — and written as its partition before the next is read, so
/// memory follows a year, not the table. `--update` reads the previous folder one
/// partition at a time for that state, keeps its years before the last one, and
/// rewrites the last one with the new rows.
fn fetch_postgres(
    a: &Args,
    base: Option<Manifest>,
    dir: &AtomicDir,
    version: &str,
) -> Result<String> {
    let files = files_params(a, "")?;
    let old_last = base.as_ref().map(|m| m.last_date.clone());
    let after = old_last.as_deref().map(parse_date).transpose()?;
    let p = af_pg::PgParams {
        files: files.clone(),
        table: a.table.clone(),
        query: a.query.clone(),
        after,
    };
    let place = af_pg::place()?;
    let prov = Provenance::new("ts-fetch", version)
        .param("source", "postgres")
        .param("database", place.clone())
        .param(
            "table",
            a.table.clone().or(a.query.clone()).unwrap_or_default(),
        )
        .param("mapping", a.mapping.clone())
        .param("market", files.market.name.clone());
    let t0 = std::time::Instant::now();
    let update = old_last.as_deref().map(|last| (a.out.as_path(), last));
    let mut w = RawWriter::new(&dir.path(""), &prov, keep_before(update)?);
    let mut ing = af_data::files::Ingest::new(&files)?;
    // An update: the carried state from every old row, the years before the last one
    // written (kept as the same files when their metadata matches), the last year held
    // to be merged with its new rows.
    let mut touched: Option<(i32, RawBars)> = None;
    if let Some((old, last)) = update {
        let last_year = year_of(parse_date(last)?);
        for f in af_data::raw::partitions(old)? {
            let bars = af_data::raw::read_partition(&f)?;
            for i in 0..bars.len() {
                let close = (!bars.is_suspended[i]).then_some(bars.close[i]);
                ing.seed(
                    &bars.code_names[bars.code[i] as usize],
                    close,
                    bars.adj_factor[i],
                );
            }
            if bars
                .trade_date
                .first()
                .is_some_and(|d| year_of(*d) >= last_year)
            {
                touched = Some((last_year, bars));
            } else {
                w.write(&bars)?;
            }
        }
    }
    let mut new_rows = 0;
    af_pg::fetch(&p, |src| {
        let mut chunk = RawBars::default();
        ing.add(src, &mut chunk)?;
        let chunk = ing.finish(chunk)?;
        if chunk.is_empty() {
            return Ok(());
        }
        new_rows += chunk.len();
        let year = year_of(chunk.trade_date[0]);
        match touched.take() {
            Some((y, mut old)) if y == year => {
                old.extend_from(chunk);
                w.write(&old)
            }
            Some((y, old)) if y < year => {
                w.write(&old)?;
                w.write(&chunk)
            }
            held => {
                touched = held;
                w.write(&chunk)
            }
        }
    })?;
    if let Some((_, old)) = touched.take() {
        w.write(&old)?;
    }
    let codes = ing.codes();
    let report = ing.report()?;
    let origin = Origin {
        source: "postgres",
        prov: &prov,
        market: &files.market,
    };
    let m = finish_raw(
        dir,
        &origin,
        &w,
        codes,
        update.is_some(),
        tabular_report(a, report, &files.market),
    )?;
    Ok(format!(
        "postgres {place}: {new_rows} rows streamed in {:.1} s; raw {} rows, {} codes, {} dates ({}..{})",
        t0.elapsed().as_secs_f64(),
        m.rows,
        m.codes,
        m.dates,
        m.first_date,
        m.last_date
    ))
}

fn fetch_tushare(
    a: &Args,
    base: Option<(Manifest, af_data::raw::RawBars)>,
    dir: &AtomicDir,
    version: &str,
) -> Result<String> {
    let today = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        / 86_400) as i32;
    let end = match &a.end {
        Some(e) => parse_date(e).context("--end")?,
        None => today,
    };
    // An update keeps the folder's start, so it equals a fresh fetch of the longer period.
    let start = match &base {
        Some((m, _)) => m.provenance["params"]["start"]
            .as_str()
            .map(parse_date)
            .transpose()?
            .unwrap_or(parse_date(&m.first_date)?),
        None => parse_date(&a.start).context("--start")?,
    };
    if !(a.rate >= 0.0 && a.rate.is_finite()) || !(a.timeout > 0.0) || !(a.limit_pause >= 0.0) {
        bail!("--rate must be >= 0, --timeout > 0");
    }
    let client = ClientConfig {
        url: a.api_url.clone(),
        token: tushare::token_from_env()?,
        rate_per_min: a.rate,
        timeout: Duration::from_secs_f64(a.timeout),
        retries: a.retries,
        backoff: Duration::from_millis(a.retry_base_ms),
        limit_pause: Duration::from_secs_f64(a.limit_pause),
        ..ClientConfig::default()
    };
    let old_universes: Option<Vec<String>> = base.as_ref().map(|(m, _)| {
        m.provenance["params"]["universe"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    });
    let (old_last, base_bars) = match base {
        Some((m, b)) => (Some(m.last_date), Some(b)),
        None => (None, None),
    };
    // An update keeps the folder's universes.
    let universes = match (&old_universes, a.universe.is_empty()) {
        (Some(u), true) => u.clone(),
        _ => a.universe.clone(),
    };
    let p = TushareParams {
        universes: universes.clone(),
        client,
        start,
        end,
        journal: tushare::journal_dir(&a.out),
        base: base_bars,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} trading dates, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let t0 = std::time::Instant::now();
    let f = tushare::fetch(&p, |done, total| match &bar {
        Some(b) => {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
        None if done % 50 == 0 || done == total => {
            tracing::info!("tushare: {done}/{total} trading dates")
        }
        None => {}
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut prov = Provenance::new("ts-fetch", version)
        .param("source", "tushare")
        .param("start", format_date(start))
        .param("end", format_date(end));
    if !universes.is_empty() {
        prov = prov.param("universe", universes.clone());
    }
    for (name, csv) in &f.universes {
        write_atomic_bytes(&dir.path(&format!("universe-{name}.csv")), csv.as_bytes())?;
    }
    let update = old_last.as_deref().map(|last| (a.out.as_path(), last));
    let market = market_of(a)?;
    let origin = Origin {
        source: "tushare",
        prov: &prov,
        market: &market,
    };
    let m = write_raw(dir, &origin, &f.bars, update, |m| {
        for c in af_data::raw::COLUMNS {
            m.columns.insert(c.to_string(), "provided".into());
        }
        m.columns
            .insert("is_st".into(), "from namechange (ST / *ST names)".into());
        m.columns.insert(
            "is_suspended".into(),
            "from suspend_d (a row at the last close, volume 0)".into(),
        );
        if let Some(last) = &old_last {
            m.notes.push(format!(
                "updated: {} new trading dates after {last}",
                f.dates
            ));
        }
    })?;
    Ok(format!(
        "tushare: {} rows, {} codes, {} dates ({}..{}); {} new dates in {} calls ({} from the journal, {} retries, {} rate-limit pauses) in {:.1} s",
        m.rows,
        m.codes,
        m.dates,
        m.first_date,
        m.last_date,
        f.dates,
        f.stats.calls,
        f.from_journal,
        f.stats.retries,
        f.stats.rate_limited,
        t0.elapsed().as_secs_f64()
    ))
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Args::parse();
        af_store::log::init("ts-fetch", &a.log);
        run(a)
    });
}
