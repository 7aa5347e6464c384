//! `library-merge`: pool every scored candidate (and the current library), keep those
//! the `valid` split admits, and add them best score first while they stay
//! de-correlated from what is already in. Writes a library snapshot (af-library) with
//! a CSV, a YAML and a Python module (Polars + polars_ta) beside it, and points
//! `current.parquet` at it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use af_expr::{Dialect, Program, parse_canonical};
use af_fitness::pool::Pool;
use af_fitness::processing::Processing;
use af_fitness::{Context, Workspace};
use af_library::pool::{
    Admission, Entry, TableCols, entry_from_library, processing_of, read_fitness, score_rules_of,
};
use af_library::{Library, Meta, pair_key};
use af_panel::Panel;
use af_store::{OutputLock, Provenance, sha256_file, write_atomic_bytes};
use af_table::read_parquet;
use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  library-merge --fitness 'out/candidates/*.fitness.parquet' --panel data/panel/csi500.arrow \\
                --out out/libraries/lib-001.parquet
  library-merge --fitness 'out/candidates/gen-01*.fitness.parquet' \\
                --library out/libraries/current.parquet --panel data/panel/csi500.arrow \\
                --max-size 50 --max-corr 0.7 --out out/libraries/lib-002.parquet

Writes lib-NNN.parquet (metrics), lib-NNN.values.arrow (processed factor values),
lib-NNN.csv, lib-NNN.yaml and lib-NNN.py (the factors as a Polars + polars_ta module,
docs/python-export.md), and points current.{parquet,csv,yaml,py} in the same folder at them.";

#[derive(Parser, Debug)]
#[command(name = "library-merge", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    /// Fitness files (globs allowed, quote them), from `fitness` on the same panel.
    #[arg(long, required = true, num_args = 1..)]
    fitness: Vec<String>,
    /// The current library: its factors compete again with the new candidates.
    #[arg(long)]
    library: Option<PathBuf>,
    /// The panel the fitness files were scored on (its hash is checked).
    #[arg(long)]
    panel: PathBuf,
    /// At most this many factors.
    #[arg(long, default_value_t = 50)]
    max_size: usize,
    /// How members are chosen: `pool` — a candidate joins when it raises the library's
    /// least-squares combined IC on train by --min-gain and on valid at all; over
    /// --max-size the member whose removal costs least leaves — or `greedy` — best own
    /// score first while de-correlated (docs/mining.md).
    #[arg(long, value_enum, default_value = "pool")]
    select: Select,
    /// A factor joins only if its mean cross-sectional |corr| with every member (train
    /// split) stays below this [default: 0.7 with greedy, 0.95 with pool, where
    /// correlated factors may both serve the combination].
    #[arg(long)]
    max_corr: Option<f64>,
    /// Pool: the least train combined-IC gain that admits a candidate.
    #[arg(long, default_value_t = 0.0005)]
    min_gain: f64,
    /// Pool: how many of the new candidates (by the gain fitness measured) are tried,
    /// each evaluated once.
    #[arg(long, default_value_t = 30)]
    consider: usize,
    /// The snapshot to write, e.g. libraries/lib-003.parquet; .values.arrow, .csv,
    /// .yaml and .py are written beside it.
    #[arg(long)]
    out: PathBuf,
    /// Do not update current.parquet.
    #[arg(long)]
    no_current: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Select {
    Pool,
    Greedy,
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
    let max_corr = cli.max_corr.unwrap_or(match cli.select {
        Select::Pool => 0.95,
        Select::Greedy => 0.7,
    });
    if !(max_corr > 0.0 && max_corr <= 1.0) {
        bail!("--max-corr must be in (0, 1]");
    }
    let rule = match cli.select {
        Select::Pool => Admission::Pool,
        Select::Greedy => Admission::Own,
    };
    let panel = Panel::open(&cli.panel)?;
    let files = expand(&cli.fitness)?;
    let mut params: Option<(Processing, PathBuf)> = None;
    // The score rules every input was admitted under: one library, one set of rules.
    let mut rules: Option<(af_fitness::ScoreConfig, PathBuf)> = None;
    let mut entries: Vec<Entry> = Vec::new();
    let mut split_names: Vec<String> = Vec::new();
    let mut pooled = 0usize;
    let mut prov = Provenance::new("library-merge", env!("CARGO_PKG_VERSION"))
        .input_hash("panel", panel.content_hash())
        .param("max_size", cli.max_size)
        .param("max_corr", max_corr);
    if cli.select == Select::Pool {
        prov = prov
            .param("select", "pool")
            .param("min_gain", cli.min_gain)
            .param("consider", cli.consider);
    }

    let lib = match &cli.library {
        Some(l) => Some(Library::open(l, &panel)?),
        None => None,
    };
    if let Some(l) = &lib {
        prov = prov.input_file("library", l.path.as_path())?;
        params = Some((l.meta.processing.clone(), l.path.clone()));
        rules = l.meta.score_rules.clone().map(|r| (r, l.path.clone()));
        for i in 0..l.len() {
            entries.push(entry_from_library(l, i));
        }
    }
    for f in &files {
        let t = read_parquet(f)?;
        let p = processing_of(&t.metadata, f, &panel)?;
        if let Some(r) = score_rules_of(&t.metadata) {
            match &rules {
                Some((q, from)) if *q != r => bail!(
                    "{} and {} were scored under different score rules ({}): a library admits \
                     its members one way — score again with the same fitness flags",
                    f.display(),
                    from.display(),
                    r.differences(q).join("; ")
                ),
                Some(_) => {}
                None => rules = Some((r, f.clone())),
            }
        }
        let primary = p.horizon;
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
        pooled += read_fitness(&t, f, primary, rule, &mut entries, &mut split_names)?;
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
        tracing::info!(
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
    // Pairs of members the previous library already measured (same values, same train
    // dates: the processing was checked equal), and every pair measured now.
    let none = BTreeMap::new();
    let known = lib.as_ref().map_or(&none, |l| &l.meta.pair_corr);
    let mut pairs: BTreeMap<String, f64> = BTreeMap::new();
    let mut contributions: Vec<(f64, f64)> = Vec::new();
    let mut values = |k: usize| -> Result<Vec<f64>> {
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
    };
    let mut corr = |i: usize, a: &[f64], j: usize, b: &[f64]| {
        let key = pair_key(&entries[i].id, &entries[j].id);
        let c = match known.get(&key) {
            Some(&c) => c,
            None => ctx.mean_corr(a, b, &train),
        };
        pairs.insert(key, c);
        c
    };
    let mut pool_note = String::new();
    let (admitted, fetched) = match cli.select {
        Select::Greedy => {
            af_library::select::greedy(entries.len(), cli.max_size, max_corr, values, corr)?
        }
        Select::Pool => {
            // The current members stay unless a newcomer displaces them; new candidates
            // are tried by the gain fitness measured against the previous library.
            let usable: Vec<(String, Vec<usize>)> = params
                .splits(panel.dates())?
                .into_iter()
                .map(|s| {
                    let d = s.usable(params.horizon, 1);
                    (s.name, d)
                })
                .collect();
            let ps = af_fitness::pool::fit_and_judge(&usable);
            let start: Vec<usize> = (0..entries.len())
                .filter(|&k| entries[k].from_library.is_some())
                .collect();
            let mut order: Vec<usize> = (0..entries.len())
                .filter(|&k| entries[k].from_library.is_none())
                // Files without the pool columns (NaN) are tried too.
                .filter(|&k| entries[k].gain.is_nan() || entries[k].gain >= cli.min_gain)
                .collect();
            order.sort_by(|&a, &b| {
                let (x, y) = (&entries[a], &entries[b]);
                let key = |e: &Entry| {
                    if e.gain.is_finite() {
                        e.gain
                    } else {
                        f64::NEG_INFINITY
                    }
                };
                key(y)
                    .total_cmp(&key(x))
                    .then_with(|| y.score.total_cmp(&x.score))
                    .then_with(|| x.id.cmp(&y.id))
            });
            order.truncate(cli.consider);
            let mut init = Vec::new();
            for &k in &start {
                init.push(values(k)?);
            }
            let mut pool = Pool::new(&ctx, init, ps);
            let before = pool.ic().to_vec();
            let ch = af_library::select::stepwise(
                &mut pool,
                start,
                &order,
                cli.max_size,
                max_corr,
                cli.min_gain,
                &mut values,
                &mut corr,
            )?;
            pool_note = format!(
                "pool: combined IC {} -> {} ({} tried, {} admitted, {} near-copies)",
                pool.describe(&before),
                pool.describe(&ch.ic),
                ch.fetched,
                ch.admitted,
                ch.near_copies
            );
            // Members are listed by what each contributes, largest first.
            let mut idx: Vec<usize> = (0..ch.members.len()).collect();
            idx.sort_by(|&a, &b| {
                ch.contribution[b]
                    .total_cmp(&ch.contribution[a])
                    .then_with(|| entries[ch.members[a]].id.cmp(&entries[ch.members[b]].id))
            });
            let mut vals: Vec<Option<Vec<f64>>> =
                pool.into_members().into_iter().map(Some).collect();
            contributions = idx
                .iter()
                .map(|&i| (ch.contribution[i], ch.weights[i]))
                .collect();
            let admitted: Vec<af_library::select::Admitted> = idx
                .iter()
                .map(|&i| af_library::select::Admitted {
                    index: ch.members[i],
                    values: vals[i].take().unwrap_or_default(),
                    max_corr: f64::NAN,
                    corr_with: None,
                })
                .collect();
            (admitted, ch.fetched)
        }
    };
    // Library members' values are read, not evaluated.
    let evaluated = entries[..fetched]
        .iter()
        .filter(|e| e.from_library.is_none())
        .count();
    let n = admitted.len();

    // Pool: each member's largest |corr| with another (every pair was measured when
    // the later one was tried, or by an earlier merge).
    let mut admitted = admitted;
    if cli.select == Select::Pool {
        for a in 0..admitted.len() {
            let mut worst = (0.0f64, None);
            for b in 0..admitted.len() {
                if a == b {
                    continue;
                }
                let (i, j) = (admitted[a].index, admitted[b].index);
                let key = pair_key(&entries[i].id, &entries[j].id);
                let c = match pairs.get(&key).or_else(|| known.get(&key)) {
                    Some(&c) => c,
                    None => ctx.mean_corr(&admitted[a].values, &admitted[b].values, &train),
                };
                pairs.insert(key, c);
                if c.is_finite() && c.abs() > worst.0 {
                    worst = (c.abs(), Some(j));
                }
            }
            admitted[a].max_corr = worst.0;
            admitted[a].corr_with = worst.1;
        }
    }
    // The pairs among the admitted, for the next merge.
    let ids: BTreeSet<&str> = admitted
        .iter()
        .map(|a| entries[a.index].id.as_str())
        .collect();
    let pair_corr: BTreeMap<String, f64> = pairs
        .into_iter()
        .filter(|(k, c)| {
            c.is_finite()
                && k.split_once(' ')
                    .is_some_and(|(a, b)| ids.contains(a) && ids.contains(b))
        })
        .collect();

    let _lock = OutputLock::acquire(&cli.out)?;
    let mut values = Vec::new();
    let mut t = TableCols::default();
    let mut named = Vec::new();
    for (rank, a) in admitted.into_iter().enumerate() {
        let e = &entries[a.index];
        named.push((af_expr::python::factor_name(&e.id), e.expression.clone()));
        t.push(
            rank + 1,
            e,
            &split_names,
            a.max_corr,
            a.corr_with.map(|j| entries[j].id.clone()),
        );
        if let Some(&(c, w)) = contributions.get(rank) {
            t.contribution[rank] = c;
            t.weight[rank] = w;
        }
        values.push((e.id.clone(), a.values));
    }
    let meta = Meta {
        format: String::new(),
        panel: String::new(),
        values: String::new(),
        values_hash: String::new(),
        values_bytes: 0,
        processing: params.clone(),
        max_corr,
        max_size: cli.max_size,
        pair_corr,
        score_rules: rules.map(|(r, _)| r),
    };
    let csv = t.csv(&split_names)?;
    let yaml = t.yaml(&split_names, &panel, &params);
    let module = python_module(&cli.out, &named, &panel)?;
    af_library::write(&cli.out, t.table(&split_names), values, &panel, meta, &prov)?;
    write_atomic_bytes(&cli.out.with_extension("csv"), csv.as_bytes())?;
    write_atomic_bytes(&cli.out.with_extension("yaml"), yaml.as_bytes())?;
    write_atomic_bytes(&cli.out.with_extension("py"), module.as_bytes())?;
    if !cli.no_current {
        point_current(&cli.out)?;
    }
    tracing::info!(
        "{} candidates pooled ({} admissible), {evaluated} evaluated, {n} admitted (max {}) in {:.2} s",
        pooled + lib.as_ref().map_or(0, |l| l.len()),
        entries.len(),
        cli.max_size,
        t0.elapsed().as_secs_f64()
    );
    if !pool_note.is_empty() {
        tracing::info!("{pool_note}");
    }
    println!("wrote {}", cli.out.display());
    Ok(())
}

/// The library as a Polars + polars_ta module (`expr python`, docs/python-export.md).
fn python_module(out: &Path, named: &[(String, String)], panel: &Panel) -> Result<String> {
    let fields = af_expr::fields_of(panel);
    let es = named
        .iter()
        .map(|(n, x)| {
            let e =
                parse_canonical(x, Dialect::Native, &fields).map_err(|e| anyhow!("{n}: {e}"))?;
            Ok((n.clone(), e))
        })
        .collect::<Result<Vec<_>>>()?;
    // The file name only: the same library gives the same bytes wherever it lives.
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // An optional export never blocks the library (issue 35): members the Python
    // export cannot write (the qlib dialect's partial-window q_* operators, …) are left
    // out of the module, named in it and on stderr.
    let (mut ok, mut skipped) = (Vec::new(), Vec::new());
    for (n, e) in es {
        match af_expr::python::unsupported_in(&e) {
            None => ok.push((n, e)),
            Some(why) => skipped.push((n, e.canonical_text(), why)),
        }
    }
    let mut text = af_expr::python::module(&ok, &format!("library {name}"))
        .map_err(|e| anyhow!("cannot write the library as Python: {e}"))?;
    if !skipped.is_empty() {
        tracing::warn!(
            "{} of {} library members have no Python export and are left out of {}: {}",
            skipped.len(),
            named.len(),
            out.with_extension("py").display(),
            skipped
                .iter()
                .map(|(n, _, why)| format!("{n} ({why})"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        text.push_str("\n# Library members without a Python export (left out of FACTORS):\n");
        for (n, x, why) in &skipped {
            text.push_str(&format!("#   {n} = {x}\n#     {why}\n"));
        }
    }
    Ok(text)
}

/// `current.parquet` (and `.csv`, `.yaml`, `.py`) beside `out`: symlinks swapped atomically.
fn point_current(out: &Path) -> Result<()> {
    let dir = out.parent().unwrap_or(Path::new("."));
    for ext in ["parquet", "csv", "yaml", "py"] {
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

fn main() {
    af_store::cli::main_with(|| {
        let a = Cli::parse();
        af_store::log::init("library-merge", &a.log);
        run(a)
    });
}
