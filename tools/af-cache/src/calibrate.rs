//! What a node costs on this machine and this panel's shape.
//!
//! The registry's relative costs are guesses; the planner needs time. [`Calibration::measure`]
//! runs every operator's kernel on a slice of the panel (the last ≤ 500 dates, every
//! asset, windows of 20) and records nanoseconds per cell, plus the cost of writing and
//! of opening-and-checking a cache entry. Timings vary from run to run, so a plan is
//! made from a saved calibration file: the same file gives the same plan.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use af_expr::registry::{self, Arg};
use af_expr::{Expr, Program};
use af_panel::Panel;
use af_store::Provenance;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const CALIBRATION_FORMAT: &str = "af-cache-calibration/1";
/// Nanoseconds per cell per unit of registry cost, for `--registry-costs` (a rolling
/// mean on one core of these machines).
pub const REGISTRY_NS: f64 = 4.0;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    pub format: String,
    /// "measured" or "registry".
    pub source: String,
    /// Shape of the panel the figures are for (dates, assets).
    pub shape: [usize; 2],
    /// Shape of the slice that was timed.
    pub sample: [usize; 2],
    pub ns_per_cell: BTreeMap<String, f64>,
    /// Opening and checking an entry (map + checksum), per cell.
    pub read_ns_per_cell: f64,
    /// Writing an entry, per cell.
    pub write_ns_per_cell: f64,
}

impl Calibration {
    /// The registry's relative costs scaled by [`REGISTRY_NS`]: deterministic anywhere.
    pub fn from_registry(panel: &Panel) -> Calibration {
        Calibration {
            format: CALIBRATION_FORMAT.into(),
            source: "registry".into(),
            shape: [panel.n_dates(), panel.n_assets()],
            sample: [0, 0],
            ns_per_cell: registry::OPS
                .iter()
                .map(|o| (o.name.to_string(), o.cost * REGISTRY_NS))
                .collect(),
            read_ns_per_cell: 0.2 * REGISTRY_NS,
            write_ns_per_cell: 2.0 * REGISTRY_NS,
        }
    }

    /// Time every operator on a slice of `panel`; `scratch` is a folder for one
    /// temporary entry (removed afterwards).
    pub fn measure(panel: &Panel, scratch: &Path) -> Result<Calibration> {
        let nd = panel.n_dates();
        let rows = nd.saturating_sub(500)..nd;
        let all: Vec<usize> = (0..panel.n_assets()).collect();
        let sample = panel.subset(rows, &all)?;
        let cells = (sample.n_dates() * sample.n_assets()) as f64;
        let numeric: Vec<&str> = sample
            .field_names()
            .into_iter()
            .filter(|f| !af_panel::columns::is_label(f))
            .collect();
        let pick = |want: &str, k: usize| -> Option<String> {
            if numeric.contains(&want) {
                Some(want.to_string())
            } else {
                numeric.get(k).map(|s| s.to_string())
            }
        };
        let has_industry = sample.groups(af_panel::columns::INDUSTRY).is_ok();
        let mut ns = BTreeMap::new();
        for op in registry::OPS {
            let mut args = Vec::new();
            let mut series = 0;
            let mut ok = true;
            for a in op.args {
                args.push(match a {
                    Arg::Series => {
                        series += 1;
                        match pick(if series == 1 { "close" } else { "volume" }, series - 1) {
                            Some(f) => Expr::Field(f),
                            None => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    Arg::Window => Expr::Num(20f64.max(op.min_window as f64)),
                    Arg::Scalar => Expr::Num(0.5),
                    Arg::Group => {
                        if !has_industry {
                            ok = false;
                            break;
                        }
                        Expr::Field(af_panel::columns::INDUSTRY.into())
                    }
                });
            }
            if !ok {
                continue;
            }
            let prog = Program::compile(&[Expr::call(op, args)]);
            let mut best = f64::INFINITY;
            // The first run also warms the buffer pool, as a long evaluation would be.
            for _ in 0..3 {
                let t = Instant::now();
                let r = prog.run(&sample, |_, v| {
                    std::hint::black_box(v.first());
                    Ok(())
                });
                if r.is_err() {
                    best = f64::NAN;
                    break;
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            if best.is_finite() {
                ns.insert(op.name.to_string(), best * 1e9 / cells);
            }
        }
        // One entry written and read back, as cache-materialize and the evaluator do.
        let v: Vec<f64> = sample
            .field(numeric.first().context("panel has no numeric field")?)?
            .data
            .to_vec();
        let prov = Provenance::new("cache-plan", env!("CARGO_PKG_VERSION"));
        let t = Instant::now();
        let path = crate::write_entry(scratch, &sample, "calibration", "calibration", v, &prov)?;
        let write = t.elapsed().as_secs_f64();
        let mut read = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            let p = crate::load_entry(&path, &sample, "calibration")?;
            std::hint::black_box(p.n_dates());
            read = read.min(t.elapsed().as_secs_f64());
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir(path.parent().unwrap_or(scratch));
        Ok(Calibration {
            format: CALIBRATION_FORMAT.into(),
            source: "measured".into(),
            shape: [panel.n_dates(), panel.n_assets()],
            sample: [sample.n_dates(), sample.n_assets()],
            ns_per_cell: ns,
            read_ns_per_cell: read * 1e9 / cells,
            write_ns_per_cell: write * 1e9 / cells,
        })
    }

    /// A saved calibration, if it is for this panel shape.
    pub fn load(path: &Path, panel: &Panel) -> Result<Option<Calibration>> {
        if !path.exists() {
            return Ok(None);
        }
        let c: Calibration = serde_json::from_slice(&std::fs::read(path)?)
            .with_context(|| format!("calibration {} is not valid", path.display()))?;
        if c.format != CALIBRATION_FORMAT || c.shape != [panel.n_dates(), panel.n_assets()] {
            return Ok(None);
        }
        Ok(Some(c))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        af_store::write_atomic_bytes(path, s.as_bytes())
    }

    /// Nanoseconds per cell of `op` (unknown ops: the registry estimate).
    pub fn op_ns(&self, op: &str) -> f64 {
        self.ns_per_cell
            .get(op)
            .copied()
            .unwrap_or_else(|| registry::get(op).map_or(REGISTRY_NS, |o| o.cost * REGISTRY_NS))
    }
}
