//! `qlib-export`: a raw folder → a Qlib provider folder (docs/qlib-format.md). Argument
//! parsing only; the format and its rules live in `af_data::qlib`.

use std::path::PathBuf;

use af_data::qlib::export;
use af_data::raw::read_partitions;
use af_store::OutputLock;
use anyhow::{Context, Result};
use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  qlib-export --raw data/raw --out data/qlib/cn_data
  # after ts-fetch --update: append the new dates (byte-identical to a fresh export)
  qlib-export --raw data/raw --out data/qlib/cn_data --update

Read it with Qlib:
  import qlib; from qlib.data import D
  qlib.init(provider_uri='data/qlib/cn_data', region='cn')
  D.features(D.instruments('all'), ['$close', '$factor'], freq='day')";

#[derive(Parser, Debug)]
#[command(name = "qlib-export", version, about = "Write a raw folder as a Qlib provider folder (backward-adjusted prices and $factor, as Qlib's CN data).", after_help = EXAMPLES)]
struct Args {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// Raw folder written by ts-fetch.
    #[arg(long, default_value = "data/raw")]
    raw: PathBuf,
    /// The Qlib folder (replaced as a whole unless --update).
    #[arg(long)]
    out: PathBuf,
    /// Extend an existing export: append the dates after its calendar, checking that
    /// every existing file is the prefix of a fresh export's.
    #[arg(long)]
    update: bool,
}

fn run(a: Args) -> Result<()> {
    let _lock = OutputLock::acquire(&a.out)?;
    let mut bars = read_partitions(&a.raw)?;
    // Index universes ts-fetch recorded (universe-NAME.csv) become instruments/NAME.txt.
    let mut universes = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&a.raw) {
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(name) = n
                .strip_prefix("universe-")
                .and_then(|x| x.strip_suffix(".csv"))
            {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                universes.push((name.to_string(), text));
            }
        }
    }
    let r = export(&mut bars, &universes, &a.out, a.update)?;
    println!(
        "qlib: {} symbols x {} dates; {} files written, {} appended, {} unchanged\nwrote {}",
        r.symbols,
        r.dates,
        r.written,
        r.appended,
        r.unchanged,
        a.out.display()
    );
    Ok(())
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Args::parse();
        af_store::log::init("qlib-export", &a.log);
        run(a)
    });
}
