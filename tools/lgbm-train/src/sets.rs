//! The model's feature sets (issue 35): a library's stored factor values, or
//! expressions evaluated by the engine on the panel — a shipped set (`alpha158`), a
//! file of expressions (any dialect, `# dialect:` line), or `ground-truth` (a synthetic
//! market's planted expressions: the oracle). Evaluated features are processed exactly
//! as a library's values are (fitness' winsorize, z-score, neutralize, under the
//! library's recorded processing), then normalised per date like the library's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use af_expr::{Dialect, Program, expression_lines, fields_of, parse_canonical};
use af_fitness::processing::Processing;
use af_fitness::{Context, Workspace};
use af_library::Library;
use af_panel::Panel;
use anyhow::{Context as _, Result, anyhow, bail};

use crate::features::{Norm, normalize};

/// Named columns of `[date][asset]` values, with what each is. A clone shares the
/// values (`Arc`): models built from the same columns hold them once.
#[derive(Default, Clone)]
pub struct Features {
    /// Column names LightGBM sees (unique).
    pub names: Vec<String>,
    pub ids: Vec<String>,
    pub expressions: Vec<String>,
    /// Mined (library) or baseline (a set) — the importance share splits on it.
    pub mined: Vec<bool>,
    /// Shared, not copied, between the models that use a column.
    pub values: Vec<Arc<Vec<f64>>>,
}

impl Features {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// These columns followed by `other`'s (a combined model's features).
    pub fn joined(&self, other: &Features) -> Features {
        let cat = |a: &[String], b: &[String]| a.iter().chain(b).cloned().collect::<Vec<_>>();
        Features {
            names: cat(&self.names, &other.names),
            ids: cat(&self.ids, &other.ids),
            expressions: cat(&self.expressions, &other.expressions),
            mined: self.mined.iter().chain(&other.mined).copied().collect(),
            values: self.values.iter().chain(&other.values).cloned().collect(),
        }
    }

    /// A library's factors: its stored (processed) values, normalised.
    pub fn library(lib: &Library, universe: &[bool], na: usize, norm: Norm) -> Result<Features> {
        let mut f = Features::default();
        for (k, id) in lib.ids.iter().enumerate() {
            f.names.push(format!("f{k:02}_{}", &id[..12.min(id.len())]));
            f.ids.push(id.clone());
            f.expressions.push(lib.expressions[k].clone());
            f.mined.push(true);
            f.values
                .push(Arc::new(normalize(lib.values(k)?, universe, na, norm)));
        }
        Ok(f)
    }
}

/// (name, source text) pairs and their dialect.
pub type Lines = (Vec<(String, String)>, Dialect);

/// A feature set named on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Set {
    /// A set shipped with the product (`expr sets`).
    Shipped(String),
    /// The planted expressions of a synthetic market (ground_truth.json).
    GroundTruth,
    /// A file of `name = expression` lines.
    File(PathBuf),
}

impl Set {
    pub fn parse(s: &str) -> Set {
        match s {
            "ground-truth" => Set::GroundTruth,
            _ if af_expr::sets::get(s).is_some() => Set::Shipped(s.to_string()),
            _ => Set::File(PathBuf::from(s)),
        }
    }

    /// The set's short name: its model's name and its features' prefix.
    pub fn name(&self) -> String {
        match self {
            Set::Shipped(n) => n.clone(),
            Set::GroundTruth => "ground-truth".into(),
            Set::File(p) => p
                .file_stem()
                .map_or("file".into(), |s| s.to_string_lossy().into_owned()),
        }
    }

    /// (name, source text) pairs and their dialect. `ground_truth`: the
    /// ground_truth.json for `ground-truth`; `Ok(None)` when it does not exist (a market
    /// without planted alphas: no oracle).
    pub fn expressions(&self, ground_truth: Option<&Path>) -> Result<Option<Lines>> {
        let from_text = |text: &str, what: &str| -> Result<Lines> {
            let (lines, d) = expression_lines(text).map_err(|e| anyhow!("{what}: {e}"))?;
            let lines: Vec<(String, String)> = lines
                .into_iter()
                .enumerate()
                .map(|(i, (n, x))| (if n.is_empty() { format!("x{i}") } else { n }, x))
                .collect();
            if lines.is_empty() {
                bail!("{what}: no expressions");
            }
            Ok((lines, d.unwrap_or(Dialect::Native)))
        };
        match self {
            Set::Shipped(n) => {
                let text = af_expr::sets::get(n).ok_or_else(|| anyhow!("no set {n}"))?;
                Ok(Some(from_text(text, n)?))
            }
            Set::File(p) => {
                let text = std::fs::read_to_string(p).with_context(|| {
                    format!(
                        "--features {}: neither a shipped set ({}, ground-truth) nor a readable file",
                        p.display(),
                        af_expr::sets::SETS.map(|s| s.0).join(", ")
                    )
                })?;
                Ok(Some(from_text(&text, &p.display().to_string())?))
            }
            Set::GroundTruth => {
                let Some(p) = ground_truth.filter(|p| p.is_file()) else {
                    return Ok(None);
                };
                let v: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?,
                )
                .with_context(|| format!("{}", p.display()))?;
                let alphas = v["alphas"]
                    .as_array()
                    .ok_or_else(|| anyhow!("{}: no `alphas` list", p.display()))?;
                let mut lines = Vec::new();
                for a in alphas {
                    if a["dialect"].as_str().is_some_and(|d| d != "native") {
                        bail!(
                            "{}: only native-dialect planted alphas are read",
                            p.display()
                        );
                    }
                    let name = a["name"].as_str().unwrap_or("alpha").to_string();
                    let x = a["expression"].as_str().ok_or_else(|| {
                        anyhow!("{}: alpha {name} has no expression", p.display())
                    })?;
                    lines.push((name, x.to_string()));
                }
                if lines.is_empty() {
                    bail!("{}: no planted alphas", p.display());
                }
                Ok(Some((lines, Dialect::Native)))
            }
        }
    }
}

/// Evaluate `lines` on the panel (one merged program), process each column as a
/// library's values are under `processing` and normalise it. `raw_out`: also keep the
/// unprocessed values (for `--dump-features`).
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    panel: &Panel,
    set: &str,
    lines: &[(String, String)],
    dialect: Dialect,
    processing: &Processing,
    universe: &[bool],
    norm: Norm,
    mut raw_out: Option<&mut Vec<Vec<f64>>>,
) -> Result<Features> {
    let fields = fields_of(panel);
    let exprs = lines
        .iter()
        .map(|(n, x)| parse_canonical(x, dialect, &fields).map_err(|e| anyhow!("{set}: {n}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let na = panel.n_assets();
    let all: Vec<usize> = (0..panel.n_dates()).collect();
    let ctx = Context::new(panel, processing.config(true), &all)?;
    let mut ws = Workspace::default();
    let mut values: Vec<Option<Vec<f64>>> = vec![None; exprs.len()];
    Program::compile(&exprs).run(panel, |i, v| {
        if let Some(r) = raw_out.as_deref_mut() {
            if r.len() <= i {
                r.resize(i + 1, Vec::new());
            }
            r[i] = v.to_vec();
        }
        values[i] = Some(normalize(&ctx.processed(v, &mut ws), universe, na, norm));
        Ok(())
    })?;
    let mut f = Features::default();
    for (k, ((n, _), e)) in lines.iter().zip(&exprs).enumerate() {
        // LightGBM refuses JSON's special characters in names: letters, digits, `_`.
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect()
        };
        f.names.push(format!("{}__{}", clean(set), clean(n)));
        f.ids.push(e.id());
        f.expressions.push(e.canonical_text());
        f.mined.push(false);
        f.values.push(Arc::new(
            values[k]
                .take()
                .ok_or_else(|| anyhow!("{set}: {n} produced no values"))?,
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_parse_by_name() {
        assert_eq!(Set::parse("alpha158"), Set::Shipped("alpha158".into()));
        assert_eq!(Set::parse("ground-truth"), Set::GroundTruth);
        assert_eq!(Set::parse("my.txt"), Set::File("my.txt".into()));
        assert_eq!(Set::parse("dir/my.txt").name(), "my");
        // No ground truth on disk: no oracle, not an error.
        assert!(Set::GroundTruth.expressions(None).unwrap().is_none());
        let (lines, d) = Set::parse("alpha158").expressions(None).unwrap().unwrap();
        assert_eq!((lines.len(), d), (158, Dialect::Qlib));
        assert!(Set::parse("/no/such/file.txt").expressions(None).is_err());
    }
}
