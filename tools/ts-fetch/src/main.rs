//! `ts-fetch`: bring daily bars into the raw store (`data/raw/`), from the embedded
//! synthetic market or from users' files. Argument parsing only; the work is in af-data.

use std::path::PathBuf;

use af_data::files::{BadRows, FilesParams, SplitInference, ingest};
use af_data::manifest::{MANIFEST, Manifest};
use af_data::market::Market;
use af_data::synthetic::{SynthParams, generate};
use af_panel::dates::{format_date, parse_date};
use af_store::{AtomicDir, OutputLock, Provenance, write_atomic_bytes};
use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

const ABOUT: &str =
    "Fetch daily bars into a raw folder (year-partitioned Parquet + manifest.json).";
const EXAMPLES: &str = "\
Examples:
  # the embedded synthetic A-share market (default source), csi500-sized
  ts-fetch --assets 500 --days 1500 --seed 42 --out data/raw
  # Tushare-style CSV exports (vol in lots, amount in thousands of yuan)
  ts-fetch --source files --path 'exports/daily_*.csv' --mapping tushare --out data/raw
  # any CSV/Parquet, columns renamed by a mapping file
  ts-fetch --source files --path 'bars/*.parquet' --mapping mapping.yaml --out data/raw
  # a market with flat ±50 % limits, sectors and listing dates in their own table
  ts-fetch --source files --path 'bars/*.csv' --market xse.yaml --meta sectors.csv --out data/raw

The output folder appears atomically: a killed run leaves the previous one intact.";

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Source {
    Synthetic,
    Files,
}

#[derive(Parser, Debug)]
#[command(name = "ts-fetch", version, about = ABOUT, after_help = EXAMPLES)]
struct Args {
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
    /// [synthetic] first calendar day (the first trading day on or after it starts the market).
    #[arg(long, default_value = "2016-01-04")]
    start: String,

    /// [files] glob of CSV / Parquet files (quote it so the shell does not expand it).
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
    /// [files] static per-code data joined by code: a CSV/Parquet with `code` and
    /// `industry` and/or `list_date`; with a `start_date` column, point in time.
    #[arg(long)]
    meta: Option<PathBuf>,
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
    let dir = AtomicDir::new(&a.out)?;
    let summary = match a.source {
        Source::Synthetic => {
            let start = parse_date(&a.start).context("--start")?;
            let p = SynthParams {
                assets: a.assets as usize,
                days: a.days as usize,
                seed: a.seed,
                start,
            };
            let prov = Provenance::new("ts-fetch", version)
                .param("source", "synthetic")
                .param("assets", a.assets)
                .param("days", a.days)
                .param("seed", a.seed)
                .param("start", format_date(start));
            let s = generate(&p)?;
            let files = s.bars.write_partitions(&dir.path(""), &prov)?;
            let mut m = Manifest::new("synthetic", &prov, &s.bars, &files, &dir.path(""))?;
            for c in af_data::raw::COLUMNS {
                m.columns.insert(c.to_string(), "provided".into());
            }
            write_atomic_bytes(
                &dir.path("ground_truth.json"),
                (serde_json::to_string_pretty(&s.ground_truth)? + "\n").as_bytes(),
            )?;
            write_atomic_bytes(&dir.path(MANIFEST), m.to_json_pretty().as_bytes())?;
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
            let p = FilesParams {
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
                market: Market::load(&a.market)?,
                meta: a.meta.clone(),
            };
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
            for (name, h) in &ing.input_hashes {
                prov = prov.input_hash(name, h);
            }
            let files = ing.bars.write_partitions(&dir.path(""), &prov)?;
            let mut m = Manifest::new("files", &prov, &ing.bars, &files, &dir.path(""))?;
            m.columns = ing.columns;
            m.cleaning = ing.cleaning;
            m.notes = ing.notes;
            m.moves = ing.moves;
            m.market = Some(p.market.clone());
            for n in &m.notes {
                eprintln!("warning: {n}");
            }
            let count = |what: &str| m.moves.iter().filter(|x| x.action == what).count();
            let (split, kept) = (count("split"), count("kept"));
            if split + kept > 0 {
                eprintln!(
                    "warning: {split} splits inferred and {kept} large moves kept (market {}); \
                     each is listed under `moves` in {}",
                    p.market.name,
                    a.out.join(MANIFEST).display()
                );
            }
            write_atomic_bytes(&dir.path(MANIFEST), m.to_json_pretty().as_bytes())?;
            let cleaned: u64 = m.cleaning.values().sum();
            format!(
                "files: {} rows, {} assets, {} days ({}..{}); cleaning touched {} rows (see manifest.json)",
                m.rows, m.codes, m.dates, m.first_date, m.last_date, cleaned
            )
        }
    };
    dir.commit()?;
    println!("{summary}\nwrote {}", a.out.display());
    Ok(())
}

fn main() {
    af_store::cli::main_with(|| run(Args::parse()));
}
