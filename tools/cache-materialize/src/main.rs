//! `cache-materialize`: compute the nodes a `cache-plan` manifest chose (as one DAG, so
//! what they share is computed once) and store each as a checked entry under
//! `<out>/<panel-hash>/<node-id>.arrow` (af_cache). Entries already there and intact are
//! kept; corrupt ones are reported and rewritten.

use std::path::PathBuf;
use std::time::Instant;

use af_cache::{entry_path, load_entry, panel_dir, write_entry};
use af_expr::{Dialect, Expr, Program, fields_of, parse_canonical};
use af_panel::Panel;
use af_store::{OutputLock, Provenance, sha256_bytes, write_atomic_bytes};
use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use serde_json::{Value, json};

const EXAMPLES: &str = "\
Examples:
  cache-materialize --manifest out/cache_plan/manifest.json --panel data/panel/csi500.arrow \\
                    --out data/cache

Then `fitness` and `expr eval` read the entries (their --cache defaults to data/cache) and
report hits, misses and the compute avoided. Entries of other panels are never read;
`pipeline gc --cache data/cache` removes them.";

#[derive(Parser, Debug)]
#[command(name = "cache-materialize", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// The plan cache-plan wrote (its --out).
    #[arg(long)]
    manifest: PathBuf,
    /// The panel the plan was made for (its hash must match the manifest's).
    #[arg(long)]
    panel: PathBuf,
    /// The cache folder: one entry per node, under the panel's hash.
    #[arg(long, default_value = "data/cache")]
    out: PathBuf,
    /// Recompute entries even when an intact one is there.
    #[arg(long)]
    force: bool,
    /// Also write the report (time, bytes, failures) as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn run(cli: Cli) -> Result<()> {
    let t0 = Instant::now();
    let panel = Panel::open(&cli.panel)?;
    let m: Value = serde_json::from_slice(
        &std::fs::read(&cli.manifest)
            .with_context(|| format!("cannot read manifest {}", cli.manifest.display()))?,
    )
    .with_context(|| format!("manifest {} is not JSON", cli.manifest.display()))?;
    if m["format"] != "af-cache-plan/1" {
        bail!("{} is not a cache-plan manifest", cli.manifest.display());
    }
    let hash = m["panel"]["hash"].as_str().unwrap_or_default();
    if hash != panel.content_hash() {
        bail!(
            "manifest {} was planned for panel {hash:.12} but {} is {:.12}: plan again on this panel",
            cli.manifest.display(),
            panel.path().display(),
            panel.content_hash()
        );
    }
    let fields = fields_of(&panel);
    let mut todo: Vec<(String, String, Expr)> = Vec::new();
    let (mut kept, mut repaired) = (0usize, Vec::new());
    let nodes = m["nodes"].as_array().cloned().unwrap_or_default();
    for n in &nodes {
        let (id, text) = (
            n["id"].as_str().unwrap_or_default(),
            n["text"].as_str().unwrap_or_default(),
        );
        if sha256_bytes(text.as_bytes()) != id {
            bail!(
                "manifest {}: node {id:.12} does not match its text {text:?} (edited?)",
                cli.manifest.display()
            );
        }
        let e = parse_canonical(text, Dialect::Native, &fields)
            .map_err(|e| anyhow!("manifest {}: node {text}: {e}", cli.manifest.display()))?;
        let path = entry_path(&cli.out, &panel, id);
        if path.exists() && !cli.force {
            match load_entry(&path, &panel, id) {
                Ok(_) => {
                    kept += 1;
                    continue;
                }
                Err(err) => {
                    tracing::warn!("{err:#}: recomputing");
                    repaired.push(format!("{err:#}"));
                }
            }
        }
        todo.push((id.to_string(), text.to_string(), e));
    }
    let _lock = OutputLock::acquire(&panel_dir(&cli.out, &panel))?;
    let prov = Provenance::new("cache-materialize", env!("CARGO_PKG_VERSION"))
        .input_hash("panel", panel.content_hash());
    let mut written = 0u64;
    let mut failures: Vec<String> = Vec::new();
    let t_eval = Instant::now();
    let exprs: Vec<Expr> = todo.iter().map(|t| t.2.clone()).collect();
    let store = |k: usize, v: &[f64], written: &mut u64| -> Result<()> {
        let (id, text, _) = &todo[k];
        let p = write_entry(&cli.out, &panel, id, text, v.to_vec(), &prov)?;
        *written += std::fs::metadata(&p).map_or(0, |m| m.len());
        Ok(())
    };
    if !exprs.is_empty() {
        let all = Program::compile(&exprs).run(&panel, |k, v| store(k, v, &mut written));
        if all.is_err() {
            // One bad node must not cost the others: one at a time, failures recorded.
            for k in 0..todo.len() {
                if entry_path(&cli.out, &panel, &todo[k].0).exists()
                    && load_entry(
                        &entry_path(&cli.out, &panel, &todo[k].0),
                        &panel,
                        &todo[k].0,
                    )
                    .is_ok()
                {
                    continue;
                }
                let r = Program::compile(std::slice::from_ref(&todo[k].2))
                    .run(&panel, |_, v| store(k, v, &mut written));
                if let Err(e) = r {
                    failures.push(format!("{}: {e:#}", todo[k].1));
                }
            }
        }
    }
    let eval_secs = t_eval.elapsed().as_secs_f64();
    // The costs the plan used, so readers can say how much compute a hit avoided.
    let cal = &m["cost_model"]["calibration"];
    if cal.is_object() {
        let mut s = serde_json::to_string_pretty(cal)?;
        s.push('\n');
        write_atomic_bytes(
            &panel_dir(&cli.out, &panel).join("calibration.json"),
            s.as_bytes(),
        )?;
    }
    let report = json!({
        "manifest": cli.manifest,
        "panel": panel.content_hash(),
        "entries": nodes.len(),
        "computed": todo.len() - failures.len(),
        "kept": kept,
        "repaired": repaired,
        "failures": failures,
        "bytes_written": written,
        "seconds": t0.elapsed().as_secs_f64(),
        "compute_and_write_seconds": eval_secs,
    });
    if let Some(r) = &cli.report {
        let mut s = serde_json::to_string_pretty(&report)?;
        s.push('\n');
        write_atomic_bytes(r, s.as_bytes())?;
    }
    tracing::info!(
        "{} entries: {} computed, {kept} already there, {} repaired, {} failed; {:.1} MB written in {:.2} s",
        nodes.len(),
        todo.len() - failures.len(),
        repaired.len(),
        failures.len(),
        written as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    for f in &failures {
        tracing::error!("failed: {f}");
    }
    println!("{}", panel_dir(&cli.out, &panel).display());
    if !failures.is_empty() {
        bail!("{} of {} entries failed", failures.len(), nodes.len());
    }
    Ok(())
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Cli::parse();
        af_store::log::init("cache-materialize", &a.log);
        run(a)
    });
}
