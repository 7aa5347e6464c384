//! `cache-plan`: read a workload (candidate files, optionally a library), merge it into
//! one DAG, and write a manifest of the sub-expressions worth caching within a byte
//! budget (af_cache::plan has the cost model and the selection rule). Writes nothing
//! but the manifest (and the calibration it used); `cache-materialize` computes.

use std::path::{Path, PathBuf};

use af_cache::calibrate::Calibration;
use af_cache::plan::{entry_bytes, plan};
use af_expr::{Dialect, Expr, fields_of, parse_canonical};
use af_library::Library;
use af_panel::Panel;
use af_store::{sha256_bytes, sha256_file, write_atomic_bytes};
use anyhow::{Result, anyhow, bail};
use clap::Parser;
use serde_json::json;

const EXAMPLES: &str = "\
Examples:
  cache-plan --exprs out/candidates/gen-003.parquet --library out/libraries/current.parquet \\
             --panel data/panel/csi500.arrow --budget 2GiB --out out/cache_plan/manifest.json
  cache-plan --exprs ideas.txt --panel data/panel/full.arrow --budget 500MB --runs 3 \\
             --out out/cache_plan/ideas.json

The manifest lists each chosen node (canonical id and text, uses, cost, bytes, expected
saving) and the totals; `cache-materialize --manifest …` computes them. Kernel costs are
timed on the panel's shape once and saved as calibration.json beside the manifest: the
same inputs and calibration give a byte-identical manifest.";

#[derive(Parser, Debug)]
#[command(name = "cache-plan", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// Candidate files (gp-gen Parquet or expression text files), evaluated in order.
    #[arg(long, required = true, num_args = 1..)]
    exprs: Vec<PathBuf>,
    /// Dialect of text files without a `# dialect:` line.
    #[arg(long, default_value = "native")]
    dialect: String,
    /// A library whose expressions join the workload (they recur in later work).
    #[arg(long)]
    library: Option<PathBuf>,
    /// The panel the workload runs on (entries are keyed by its hash).
    #[arg(long)]
    panel: PathBuf,
    /// Disk budget for the cache entries: 2GiB, 500MB, 1e9 …
    #[arg(long, default_value = "2GiB")]
    budget: String,
    /// Expressions evaluated together, as `fitness --batch` (16).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// How many times the workload will be evaluated (the materialization is paid once).
    #[arg(long, default_value_t = 1.0)]
    runs: f64,
    /// Calibration file (default: calibration.json beside --out); measured when absent
    /// or made for another panel shape.
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Measure again even if the calibration file fits.
    #[arg(long)]
    recalibrate: bool,
    /// Use the registry's relative costs instead of timing (same plan on any machine).
    #[arg(long, conflicts_with = "recalibrate")]
    registry_costs: bool,
    /// The plan to write (JSON manifest of the chosen sub-expressions; calibration.json
    /// beside it).
    #[arg(long)]
    out: PathBuf,
}

/// `2GiB`, `1.5G`, `500MB`, `300k`, `123456`: binary suffixes with `i`, decimal without.
fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let num = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &t[num.len()..];
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow!("--budget {s:?}: expected a size such as 2GiB, 500MB or 1e9"))?;
    let k: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024f64.powi(2),
        "gi" | "gib" => 1024f64.powi(3),
        "ti" | "tib" => 1024f64.powi(4),
        u => bail!("--budget {s:?}: unknown unit {u:?} (B, kB, MB, GB, KiB, MiB, GiB)"),
    };
    if !(x.is_finite() && x >= 0.0) {
        bail!("--budget {s:?}: must be a non-negative size");
    }
    Ok((x * k) as u64)
}

fn run(cli: Cli) -> Result<()> {
    let panel = Panel::open(&cli.panel)?;
    let budget = parse_bytes(&cli.budget)?;
    if cli.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if !(cli.runs.is_finite() && cli.runs >= 1.0) {
        bail!("--runs must be at least 1");
    }
    let default_d = Dialect::from_name(&cli.dialect)
        .ok_or_else(|| anyhow!("unknown dialect {:?} (native, qlib, alpha101)", cli.dialect))?;
    let fields = fields_of(&panel);
    let mut batches: Vec<Vec<Expr>> = Vec::new();
    let mut inputs = Vec::new();
    let push = |exprs: Vec<Expr>, batches: &mut Vec<Vec<Expr>>| {
        for c in exprs.chunks(cli.batch) {
            batches.push(c.to_vec());
        }
    };
    for f in &cli.exprs {
        let c = af_table::candidates::read(f)?;
        let d = c.dialect.unwrap_or(default_d);
        let mut ok = Vec::new();
        let mut invalid = 0;
        for s in &c.exprs {
            match parse_canonical(s, d, &fields) {
                Ok(e) => ok.push(e),
                Err(_) => invalid += 1, // fitness reports these; they cost nothing
            }
        }
        inputs.push(json!({"path": f, "sha256": sha256_file(f)?,
                           "expressions": ok.len(), "invalid": invalid}));
        push(ok, &mut batches);
    }
    if let Some(l) = &cli.library {
        let lib = Library::open(l, &panel)?;
        let ok = lib
            .expressions
            .iter()
            .map(|s| parse_canonical(s, Dialect::Native, &fields))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("library {}: {e}", l.display()))?;
        inputs.push(json!({"path": l, "sha256": sha256_file(l)?,
                           "expressions": ok.len(), "invalid": 0, "library": true}));
        push(ok, &mut batches);
    }
    if batches.is_empty() {
        bail!("no valid expression in the workload");
    }

    let dir = cli.out.parent().unwrap_or(Path::new(".")).to_path_buf();
    let cal_path = cli
        .calibration
        .clone()
        .unwrap_or_else(|| dir.join("calibration.json"));
    let cal = if cli.registry_costs {
        Calibration::from_registry(&panel)
    } else {
        match (cli.recalibrate, Calibration::load(&cal_path, &panel)?) {
            (false, Some(c)) => c,
            _ => {
                tracing::info!("calibrating kernel costs on {} ...", panel.path().display());
                let scratch = dir.join(".calibration");
                let c = Calibration::measure(&panel, &scratch)?;
                let _ = std::fs::remove_dir_all(&scratch);
                c.save(&cal_path)?;
                tracing::info!("wrote {}", cal_path.display());
                // Plan from the saved figures, so a later run with this file plans the
                // same to the bit (numbers read back from JSON text).
                Calibration::load(&cal_path, &panel)?.unwrap_or(c)
            }
        }
    };
    let cells = panel.n_dates() * panel.n_assets();
    let eb = entry_bytes(panel.n_dates(), panel.codes());
    let p = plan(&batches, &cal, cells, eb, budget, cli.runs);
    let cal_json = serde_json::to_value(&cal)?;
    let manifest = json!({
        "format": "af-cache-plan/1",
        "tool": {"name": "cache-plan", "version": env!("CARGO_PKG_VERSION")},
        "panel": {"path": cli.panel, "hash": panel.content_hash(),
                  "dates": panel.n_dates(), "assets": panel.n_assets()},
        "inputs": inputs,
        "params": {"budget_bytes": budget, "batch": cli.batch, "runs": cli.runs},
        "objective": "maximise runs * (W(no cache) - W(cache)) - materialize(cache), \
                      bytes <= budget; greedy by marginal net saving (every entry is one \
                      matrix, so per byte and per entry rank alike)",
        "cost_model": {"calibration_sha256": sha256_bytes(cal_json.to_string().as_bytes()),
                       "calibration": cal_json},
        "nodes": p.nodes,
        "totals": p.totals,
    });
    let mut text = serde_json::to_string_pretty(&manifest)?;
    text.push('\n');
    write_atomic_bytes(&cli.out, text.as_bytes())?;
    let t = &p.totals;
    tracing::info!(
        "{} expressions in {} batches: {} operator nodes, {} shared by 2+ batches; chose {} \
         ({:.1} MB of {:.1} MB): predicted {:.0} → {:.0} ms per run, materialize {:.0} ms, net saving {:.0} ms",
        t.expressions,
        t.batches,
        t.nodes,
        t.shared_nodes,
        t.chosen,
        t.bytes as f64 / 1e6,
        t.budget_bytes as f64 / 1e6,
        t.workload_ms_without / cli.runs,
        t.workload_ms_with / cli.runs,
        t.materialize_ms,
        t.net_saving_ms
    );
    println!("wrote {}", cli.out.display());
    Ok(())
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Cli::parse();
        af_store::log::init("cache-plan", &a.log);
        run(a)
    });
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_bytes("1e9").unwrap(), 1_000_000_000);
        assert_eq!(parse_bytes("0").unwrap(), 0);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
        assert!(parse_bytes("-1GB").is_err());
    }
}
