//! `panel-build`: raw folder → dense panel (`data/panel/<name>.arrow`). Argument parsing
//! only; the rules live in `af_data::panel_build`.

use std::path::PathBuf;

use af_data::files::read_universe;
use af_data::manifest::{MANIFEST, Manifest};
use af_data::market::Market;
use af_data::panel_build::{Adjust, BuildParams, Label, Liquidity, build};
use af_data::raw::read_partitions;
use af_panel::write_panel;
use af_store::{OutputLock, Provenance, sha256_file};
use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  panel-build --raw data/raw --out data/panel/csi500.arrow
  panel-build --raw data/raw --out data/panel/o2o.arrow --label open2open --horizons 1,5,10,20
  panel-build --raw data/raw --out data/panel/idx.arrow --universe members.csv
  # only the 300 most traded names each day (median traded value over 20 days)
  panel-build --raw data/raw --out data/panel/liquid.arrow --liquid-top 300

Read it from Python:  pyarrow.ipc.open_file('data/panel/csi500.arrow').read_pandas()
Every numeric column reshapes to [n_dates][n_assets]: rows are sorted by date, then code.";

#[derive(Clone, Copy, ValueEnum, Debug)]
enum AdjustArg {
    Forward,
    Backward,
    None,
}
#[derive(Clone, Copy, ValueEnum, Debug)]
enum LabelArg {
    Close2close,
    Open2open,
}

#[derive(Parser, Debug)]
#[command(name = "panel-build", version, about = "Build the dense date x asset panel (Arrow IPC, memory-mappable) from raw daily bars.", after_help = EXAMPLES)]
struct Args {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// Raw folder written by ts-fetch.
    #[arg(long, default_value = "data/raw")]
    raw: PathBuf,
    /// Output panel file.
    #[arg(long)]
    out: PathBuf,
    /// Price adjustment: forward (前复权, latest prices unchanged), backward (后复权), none.
    #[arg(long, value_enum, default_value = "forward")]
    adjust: AdjustArg,
    /// Label horizons in trading days (comma-separated): writes fwd_ret_{h}.
    #[arg(long, default_value = "1,5,10", value_delimiter = ',')]
    horizons: Vec<usize>,
    /// More label horizons on top of --horizons (comma-separated, repeatable): what a
    /// pipeline's fitness horizons need, without spelling the standard set again
    /// (pipelines/mine.yaml passes its `horizon` and `horizons` here).
    #[arg(long, value_delimiter = ',')]
    add_horizons: Vec<usize>,
    /// Label: close(t+h)/close(t)-1, or open(t+1+h)/open(t+1)-1.
    #[arg(long, value_enum, default_value = "close2close")]
    label: LabelArg,
    /// Trading days since listing before an asset enters the universe.
    #[arg(long, default_value_t = 60)]
    min_list_days: usize,
    /// Index membership (CSV/Parquet): columns `code` and either `trade_date` or
    /// `in_date`/`out_date`; or a name (csi300, …) whose file ts-fetch recorded in the raw folder.
    #[arg(long)]
    universe: Option<PathBuf>,
    /// Market rules for the limit flags (`cn`, `generic` or a YAML profile); default:
    /// the one ts-fetch recorded in the raw manifest.
    #[arg(long)]
    market: Option<String>,
    /// Liquidity screen: members need a trailing median traded value (amount, in the
    /// source's currency) of at least this over --liquidity-days.
    #[arg(long, default_value_t = 0.0)]
    min_amount: f64,
    /// Liquidity screen: only the N most traded members of each date (by the same median).
    #[arg(long)]
    liquid_top: Option<usize>,
    /// Window of the liquidity screen's median, in trading days.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=500))]
    liquidity_days: u64,
}

fn run(mut a: Args) -> Result<()> {
    // `--horizons 1,5,10,5` and `1,5,10` build the same panel (and the same bytes).
    let more = std::mem::take(&mut a.add_horizons);
    a.horizons.extend(more);
    a.horizons =
        af_data::panel_build::label_horizons(&a.horizons).context("--horizons / --add-horizons")?;
    let _lock = OutputLock::acquire(&a.out)?;
    let manifest = Manifest::read(&a.raw)?;
    // `--universe csi300`: the membership file ts-fetch recorded in the raw folder.
    if let Some(u) = &a.universe {
        let named = a.raw.join(format!("universe-{}.csv", u.display()));
        if !u.exists() && named.exists() {
            a.universe = Some(named);
        } else if !u.exists() {
            bail!(
                "--universe {}: no such file, and the raw folder has no universe-{}.csv \
                 (ts-fetch --source tushare --universe NAME records one)",
                u.display(),
                u.display()
            );
        }
    }
    let universe = a.universe.as_deref().map(read_universe).transpose()?;
    let mut bars = read_partitions(&a.raw)?;
    let market = match &a.market {
        // Another profile's limits; the break rule stays the fetch's (ts-fetch owns it).
        Some(m) => Market {
            breaks: manifest.market().breaks,
            ..Market::load(m)?
        },
        None => manifest.market(),
    };
    if !(a.min_amount.is_finite() && a.min_amount >= 0.0) || a.liquid_top == Some(0) {
        bail!("--min-amount must be >= 0 and --liquid-top >= 1");
    }
    let params = BuildParams {
        adjust: match a.adjust {
            AdjustArg::Forward => Adjust::Forward,
            AdjustArg::Backward => Adjust::Backward,
            AdjustArg::None => Adjust::None,
        },
        horizons: a.horizons.clone(),
        label: match a.label {
            LabelArg::Close2close => Label::Close2Close,
            LabelArg::Open2open => Label::Open2Open,
        },
        min_list_days: a.min_list_days,
        universe,
        market,
        liquidity: Liquidity {
            days: a.liquidity_days as usize,
            min_value: a.min_amount,
            top: a.liquid_top,
        },
    };
    let built = build(&mut bars, &params)?;
    let mut prov = Provenance::new("panel-build", env!("CARGO_PKG_VERSION"))
        .param("adjust", format!("{:?}", a.adjust).to_lowercase())
        .param("horizons", a.horizons.clone())
        .param("label", format!("{:?}", a.label).to_lowercase())
        .param("min_list_days", a.min_list_days)
        .param("market", params.market.name.clone())
        .param(
            "breaks",
            if params.market.breaks.keep {
                "keep"
            } else {
                "nan"
            },
        )
        .param("max_move", params.market.breaks.max_move)
        .input_file("raw/manifest.json", &a.raw.join(MANIFEST))?;
    for f in &manifest.files {
        prov = prov.input_hash(&format!("raw/{}", f.path), &f.sha256);
    }
    if params.liquidity.active() {
        prov = prov
            .param("min_amount", a.min_amount)
            .param("liquid_top", a.liquid_top.map_or(0, |n| n as u64))
            .param("liquidity_days", a.liquidity_days);
    }
    if let Some(u) = &a.universe {
        prov = prov
            .param("universe", u.display().to_string())
            .input_hash("universe", &sha256_file(u)?);
    }
    let (nd, na) = (built.data.dates.len(), built.data.codes.len());
    for w in &built.warnings {
        tracing::warn!("{w}");
    }
    let hash = write_panel(&a.out, built.data, &prov)?;
    println!(
        "panel {} x {} ({} cells), content hash {}\nwrote {}",
        nd,
        na,
        nd * na,
        &hash[..16],
        a.out.display()
    );
    Ok(())
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Args::parse();
        af_store::log::init("panel-build", &a.log);
        run(a)
    });
}
