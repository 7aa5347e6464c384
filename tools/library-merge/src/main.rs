//! `library-merge`: pool every scored candidate (and the current library), keep those
//! the `valid` split admits, and add them best score first while they stay
//! de-correlated from what is already in. Writes a library snapshot (af-library) with
//! a CSV and a YAML beside it, and points `current.parquet` at it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use af_expr::{Dialect, Program, parse_canonical};
use af_fitness::processing::Processing;
use af_fitness::{Context, Workspace};
use af_library::{Library, Meta};
use af_panel::Panel;
use af_store::{OutputLock, Provenance, sha256_file, write_atomic_bytes};
use af_table::{Table, read_parquet};
use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;
use serde_json::Value;

const EXAMPLES: &str = "\
Examples:
  library-merge --fitness 'out/candidates/*.fitness.parquet' --panel data/panel/csi500.arrow \\
                --out out/libraries/lib-001.parquet
  library-merge --fitness 'out/candidates/gen-01*.fitness.parquet' \\
                --library out/libraries/current.parquet --panel data/panel/csi500.arrow \\
                --max-size 50 --max-corr 0.7 --out out/libraries/lib-002.parquet

Writes lib-NNN.parquet (metrics), lib-NNN.values.arrow (processed factor values),
lib-NNN.csv and lib-NNN.yaml, and points current.{parquet,csv,yaml} in the same folder at them.";

#[derive(Parser, Debug)]
#[command(name = "library-merge", version, about, after_help = EXAMPLES)]
struct Cli {
    /// Fitness files (globs allowed, quote them), from `fitness` on the same panel.
    #[arg(long, required = true, num_args = 1..)]
    fitness: Vec<String>,
    /// The current library: its factors compete again with the new candidates.
    #[arg(long)]
    library: Option<PathBuf>,
    #[arg(long)]
    panel: PathBuf,
    /// At most this many factors.
    #[arg(long, default_value_t = 50)]
    max_size: usize,
    /// A factor joins only if its mean cross-sectional |corr| with every member (train
    /// split) stays below this.
    #[arg(long, default_value_t = 0.7)]
    max_corr: f64,
    #[arg(long)]
    out: PathBuf,
    /// Do not update current.parquet.
    #[arg(long)]
    no_current: bool,
}

/// Per-split metrics a library keeps (fitness column names).
const METRICS: [&str; 9] = [
    "rank_ic_mean",
    "rank_icir",
    "ic_mean",
    "icir",
    "rank_ic_positive",
    "turnover",
    "top_turnover",
    "long_short_mean",
    "coverage",
];

/// The processing a fitness file recorded (every input must agree: it defines the
/// processed values), checked to be of `panel`.
fn processing_of(
    meta: &BTreeMap<String, String>,
    path: &Path,
    panel: &Panel,
) -> Result<Processing> {
    let prov = af_store::Provenance::from_kv(meta.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .ok_or_else(|| {
            anyhow!(
                "{}: no provenance metadata (not made by fitness?)",
                path.display()
            )
        })?;
    if prov.tool != "fitness" {
        bail!("{}: made by {}, not fitness", path.display(), prov.tool);
    }
    let ph = prov.inputs.get("panel").cloned().unwrap_or_default();
    if ph != panel.content_hash() {
        bail!(
            "{}: scored on panel {}, but --panel {} is {}",
            path.display(),
            &ph[..ph.len().min(12)],
            panel.path().display(),
            &panel.content_hash()[..12]
        );
    }
    Processing::from_metadata(meta).with_context(|| path.display().to_string())
}

/// One factor competing for a place.
struct Entry {
    id: String,
    expression: String,
    generation: i64,
    size: f64,
    score: f64,
    admitted_by: &'static str,
    /// split -> metric -> value
    metrics: BTreeMap<String, BTreeMap<&'static str, f64>>,
    /// Index in the current library, when it comes from there.
    from_library: Option<usize>,
}

fn expand(patterns: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = BTreeSet::new();
    for p in patterns {
        let mut any = false;
        for g in glob::glob(p).map_err(|e| anyhow!("--fitness {p}: {e}"))? {
            out.insert(g?);
            any = true;
        }
        if !any {
            if Path::new(p).exists() {
                out.insert(PathBuf::from(p));
            } else {
                bail!("--fitness {p}: no such file");
            }
        }
    }
    Ok(out.into_iter().collect())
}

fn run(cli: Cli) -> Result<()> {
    let t0 = Instant::now();
    let panel = Panel::open(&cli.panel)?;
    let files = expand(&cli.fitness)?;
    let mut params: Option<(Processing, PathBuf)> = None;
    let mut entries: Vec<Entry> = Vec::new();
    let mut split_names: Vec<String> = Vec::new();
    let mut pooled = 0usize;
    let mut prov = Provenance::new("library-merge", env!("CARGO_PKG_VERSION"))
        .input_hash("panel", panel.content_hash())
        .param("max_size", cli.max_size)
        .param("max_corr", cli.max_corr);

    let lib = match &cli.library {
        Some(l) => Some(Library::open(l, &panel)?),
        None => None,
    };
    if let Some(l) = &lib {
        prov = prov.input_file("library", l.path.as_path())?;
        params = Some((l.meta.processing.clone(), l.path.clone()));
        for (i, (id, ex)) in l.ids.iter().zip(&l.expressions).enumerate() {
            entries.push(entry_from_library(l, i, id, ex)?);
        }
    }
    for f in &files {
        let t = read_parquet(f)?;
        let p = processing_of(&t.metadata, f, &panel)?;
        match &params {
            Some((q, from)) if *q != p => bail!(
                "{} and {} were scored with different processing ({}): a library holds factors \
                 processed one way",
                f.display(),
                from.display(),
                p.differences(q).join("; ")
            ),
            Some(_) => {}
            None => params = Some((p, f.clone())),
        }
        // Keyed by file name, not path: the same run in another folder writes the same bytes.
        // Keyed by file name (not path, so the same run in another folder writes the
        // same bytes), prefixed so no name collides with `panel`/`library`, and numbered
        // when two folders hold the same name.
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut key = format!("fitness:{name}");
        let mut k = 2;
        while prov.inputs.contains_key(&key) {
            key = format!("fitness:{name}#{k}");
            k += 1;
        }
        prov = prov.input_hash(&key, &sha256_file(f)?);
        pooled += read_fitness(&t, f, &mut entries, &mut split_names)?;
    }
    let (params, _) = params.ok_or_else(|| anyhow!("nothing to merge"))?;
    if let Some(l) = &lib {
        for s in l.meta.processing.split_names() {
            if !split_names.contains(&s) {
                split_names.push(s);
            }
        }
    }
    let no_valid = !split_names.iter().any(|s| s == "valid");
    if no_valid {
        eprintln!(
            "note: the fitness files have no valid split (made with --split all): admitting on score alone"
        );
    }

    // Best first; the same factor found twice keeps its first (earliest) record.
    let mut seen = BTreeSet::new();
    entries.retain(|e| seen.insert(e.id.clone()));
    entries.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));

    let all: Vec<usize> = (0..panel.n_dates()).collect();
    let ctx = Context::new(&panel, params.config(true), &all)?;
    let train = params
        .split("train", panel.dates())
        .or_else(|_| params.split("all", panel.dates()))?;
    let train: Vec<usize> = (train.start..train.end).collect();
    let fields = af_expr::fields_of(&panel);
    let mut ws = Workspace::default();
    let (admitted, fetched) = af_library::select::greedy(
        entries.len(),
        cli.max_size,
        cli.max_corr,
        |k| {
            let e = &entries[k];
            Ok(match e.from_library {
                Some(i) => lib
                    .as_ref()
                    .expect("library entries need the library")
                    .values(i)?
                    .to_vec(),
                None => {
                    let ex = parse_canonical(&e.expression, Dialect::Native, &fields)
                        .map_err(|err| anyhow!("candidate {} ({}): {err}", e.id, e.expression))?;
                    let mut out = Vec::new();
                    Program::compile(&[ex]).run(&panel, |_, v| {
                        out = ctx.processed(v, &mut ws);
                        Ok(())
                    })?;
                    out
                }
            })
        },
        |a, b| ctx.mean_corr(a, b, &train),
    )?;
    // Library members' values are read, not evaluated.
    let evaluated = entries[..fetched]
        .iter()
        .filter(|e| e.from_library.is_none())
        .count();
    let n = admitted.len();

    let _lock = OutputLock::acquire(&cli.out)?;
    let mut values = Vec::new();
    let mut t = TableCols::default();
    for (rank, a) in admitted.into_iter().enumerate() {
        let e = &entries[a.index];
        t.push(
            rank + 1,
            e,
            &split_names,
            a.max_corr,
            a.corr_with.map(|j| entries[j].id.clone()),
        );
        values.push((e.id.clone(), a.values));
    }
    let meta = Meta {
        format: String::new(),
        panel: String::new(),
        values: String::new(),
        values_hash: String::new(),
        values_bytes: 0,
        processing: params.clone(),
        max_corr: cli.max_corr,
        max_size: cli.max_size,
    };
    let csv = t.csv(&split_names)?;
    let yaml = t.yaml(&split_names, &panel, &params);
    af_library::write(&cli.out, t.table(&split_names), values, &panel, meta, &prov)?;
    write_atomic_bytes(&cli.out.with_extension("csv"), csv.as_bytes())?;
    write_atomic_bytes(&cli.out.with_extension("yaml"), yaml.as_bytes())?;
    if !cli.no_current {
        point_current(&cli.out)?;
    }
    eprintln!(
        "{} candidates pooled ({} admissible), {evaluated} evaluated, {n} admitted (max {}) in {:.2} s",
        pooled + lib.as_ref().map_or(0, |l| l.len()),
        entries.len(),
        cli.max_size,
        t0.elapsed().as_secs_f64()
    );
    println!("wrote {}", cli.out.display());
    Ok(())
}

fn entry_from_library(l: &Library, i: usize, id: &str, ex: &str) -> Result<Entry> {
    let t = &l.table;
    let mut metrics = BTreeMap::new();
    for s in l.meta.processing.split_names() {
        let mut m = BTreeMap::new();
        for k in METRICS {
            let col = format!("{s}_{k}");
            if t.has_column(&col) {
                m.insert(k, t.f64s(&col)?[i]);
            }
        }
        metrics.insert(s, m);
    }
    Ok(Entry {
        id: id.to_string(),
        expression: ex.to_string(),
        generation: t.f64s("generation")?[i] as i64,
        size: t.f64s("size")?[i],
        score: t.f64s("score")?[i],
        admitted_by: if t.strings("admitted_by")?[i] == "score" {
            "score"
        } else {
            "valid"
        },
        metrics,
        from_library: Some(i),
    })
}

/// Admissible candidates of one fitness file (full pass, status ok, admitted).
fn read_fitness(
    t: &af_table::ReadTable,
    path: &Path,
    out: &mut Vec<Entry>,
    split_names: &mut Vec<String>,
) -> Result<usize> {
    let ctx = |e: anyhow::Error| e.context(format!("fitness file {}", path.display()));
    let cand = t.f64s("candidate").map_err(ctx)?;
    let id = t.strings("id").map_err(ctx)?;
    let ex = t.strings("expression").map_err(ctx)?;
    let split = t.strings("split").map_err(ctx)?;
    let status = t.strings("status").map_err(ctx)?;
    let pass = t.strings("pass").map_err(ctx)?;
    let admit = t.bools("admit").map_err(ctx)?;
    // The library's own de-correlation replaces fitness' library bound, so a better
    // near-copy of a member competes on its merit and can take the member's place.
    // (Files from before `merit` existed: their score.)
    let merit = if t.has_column("merit") {
        t.f64s("merit").map_err(ctx)?
    } else {
        t.f64s("score").map_err(ctx)?
    };
    let size = t.f64s("size").map_err(ctx)?;
    let generation = if t.has_column("generation") {
        t.f64s("generation").map_err(ctx)?
    } else {
        vec![-1.0; cand.len()]
    };
    let cols: Vec<Vec<f64>> = METRICS
        .iter()
        .map(|m| t.f64s(m).map_err(ctx))
        .collect::<Result<_>>()?;
    let has_valid = split.iter().any(|s| s == "valid");
    let mut by_cand: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (r, c) in cand.iter().enumerate() {
        by_cand.entry(*c as u64).or_default().push(r);
        if !split_names.contains(&split[r]) {
            split_names.push(split[r].clone());
        }
    }
    let n = by_cand.len();
    for rows in by_cand.values() {
        let r0 = rows[0];
        if status[r0] != "ok" || pass[r0] != "full" || !admit[r0] {
            continue;
        }
        let mut metrics = BTreeMap::new();
        for &r in rows {
            let m: BTreeMap<&'static str, f64> =
                METRICS.iter().zip(&cols).map(|(k, c)| (*k, c[r])).collect();
            metrics.insert(split[r].clone(), m);
        }
        out.push(Entry {
            id: id[r0].clone(),
            expression: ex[r0].clone(),
            generation: generation[r0] as i64,
            size: size[r0],
            score: merit[r0],
            admitted_by: if has_valid { "valid" } else { "score" },
            metrics,
            from_library: None,
        });
    }
    Ok(n)
}

/// `current.parquet` (and `.csv`, `.yaml`) beside `out`: symlinks swapped atomically.
fn point_current(out: &Path) -> Result<()> {
    let dir = out.parent().unwrap_or(Path::new("."));
    for ext in ["parquet", "csv", "yaml"] {
        let target = out.with_extension(ext);
        let name = target
            .file_name()
            .ok_or_else(|| anyhow!("--out has no file name"))?;
        let tmp = dir.join(format!(".current.{ext}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        #[cfg(unix)]
        std::os::unix::fs::symlink(name, &tmp)
            .with_context(|| format!("cannot create current.{ext} symlink"))?;
        #[cfg(not(unix))]
        std::fs::copy(&target, &tmp)?;
        std::fs::rename(&tmp, dir.join(format!("current.{ext}")))
            .with_context(|| format!("cannot update current.{ext}"))?;
    }
    Ok(())
}

/// The library table, column by column.
#[derive(Default)]
struct TableCols {
    rank: Vec<u32>,
    id: Vec<String>,
    expression: Vec<String>,
    generation: Vec<i64>,
    size: Vec<f64>,
    score: Vec<f64>,
    admitted_by: Vec<String>,
    max_corr: Vec<f64>,
    corr_with: Vec<Option<String>>,
    metrics: Vec<BTreeMap<String, BTreeMap<&'static str, f64>>>,
}

impl TableCols {
    fn push(&mut self, rank: usize, e: &Entry, _splits: &[String], c: f64, with: Option<String>) {
        self.rank.push(rank as u32);
        self.id.push(e.id.clone());
        self.expression.push(e.expression.clone());
        self.generation.push(e.generation);
        self.size.push(e.size);
        self.score.push(e.score);
        self.admitted_by.push(e.admitted_by.into());
        self.max_corr.push(c);
        self.corr_with.push(with);
        self.metrics.push(e.metrics.clone());
    }

    fn metric(&self, i: usize, s: &str, m: &str) -> f64 {
        self.metrics[i]
            .get(s)
            .and_then(|x| x.get(m))
            .copied()
            .unwrap_or(f64::NAN)
    }

    fn table(&self, splits: &[String]) -> Table {
        let mut t = Table::new()
            .u32("rank", self.rank.clone())
            .str("id", self.id.clone())
            .str("expression", self.expression.clone())
            .i64("generation", self.generation.clone())
            .f64("size", self.size.clone())
            .f64("score", self.score.clone())
            .str("admitted_by", self.admitted_by.clone());
        for s in splits {
            for m in METRICS {
                let v = (0..self.id.len()).map(|i| self.metric(i, s, m)).collect();
                t = t.f64(&format!("{s}_{m}"), v);
            }
        }
        t.f64("max_corr_in_library", self.max_corr.clone())
            .opt_str("max_corr_with", self.corr_with.clone())
    }

    fn csv(&self, splits: &[String]) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut head: Vec<String> = [
            "rank",
            "id",
            "expression",
            "generation",
            "score",
            "admitted_by",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for s in splits {
            for m in METRICS {
                head.push(format!("{s}_{m}"));
            }
        }
        head.push("max_corr_in_library".into());
        w.write_record(&head)?;
        for i in 0..self.id.len() {
            let mut r = vec![
                self.rank[i].to_string(),
                self.id[i].clone(),
                self.expression[i].clone(),
                self.generation[i].to_string(),
                self.score[i].to_string(),
                self.admitted_by[i].clone(),
            ];
            for s in splits {
                for m in METRICS {
                    r.push(self.metric(i, s, m).to_string());
                }
            }
            r.push(self.max_corr[i].to_string());
            w.write_record(&r)?;
        }
        Ok(String::from_utf8(
            w.into_inner().map_err(|e| anyhow!("{e}"))?,
        )?)
    }

    fn yaml(&self, splits: &[String], panel: &Panel, p: &Processing) -> String {
        let num = |x: f64| {
            if x.is_nan() {
                ".nan".to_string()
            } else {
                format!("{}", (x * 1e6).round() / 1e6)
            }
        };
        let q = |s: &str| Value::String(s.to_string()).to_string();
        let mut y = String::new();
        let _ = writeln!(
            y,
            "# alpha-factory factor library: {} factors",
            self.id.len()
        );
        let _ = writeln!(y, "panel: {}", q(panel.content_hash()));
        let _ = writeln!(y, "horizon: {}", p.horizon);
        let _ = writeln!(y, "winsor: {}", q(&p.winsor.name()));
        let _ = writeln!(y, "neutralize: {}", q(p.neutralize.name()));
        let _ = writeln!(y, "factors:");
        for i in 0..self.id.len() {
            let _ = writeln!(y, "  - rank: {}", self.rank[i]);
            let _ = writeln!(y, "    expression: {}", q(&self.expression[i]));
            let _ = writeln!(y, "    id: {}", q(&self.id[i]));
            let _ = writeln!(y, "    generation: {}", self.generation[i]);
            let _ = writeln!(y, "    score: {}", num(self.score[i]));
            let _ = writeln!(y, "    admitted_by: {}", self.admitted_by[i]);
            let _ = writeln!(y, "    max_corr_in_library: {}", num(self.max_corr[i]));
            for s in splits {
                let parts: Vec<String> = ["rank_ic_mean", "rank_icir", "turnover", "coverage"]
                    .iter()
                    .map(|m| format!("{m}: {}", num(self.metric(i, s, m))))
                    .collect();
                let _ = writeln!(y, "    {s}: {{{}}}", parts.join(", "));
            }
        }
        y
    }
}

fn main() {
    af_store::cli::main_with(|| run(Cli::parse()));
}
