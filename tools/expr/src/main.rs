//! `expr`: check, evaluate and explain factor expressions. Argument parsing and I/O
//! only; the engine is `af-expr`.

use std::path::{Path, PathBuf};

use af_expr::{Dialect, Expr, Fields, Program, expression_lines, parse_canonical};
use af_panel::Panel;
use af_store::{OutputLock, Provenance, write_atomic};
use af_table::{Table, write_parquet};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  expr check 'rank(ts_mean(close, 20) / close) * -1'
  expr check --dialect qlib 'Ref($close, 5) / $close'
  expr check --dialect alpha101 '(-1 * correlation(open, volume, 10))'
  expr eval --panel data/panel/csi500.arrow --expr 'ts_corr(close, volume, 10)' --out out/f.parquet
  expr eval --panel data/panel/csi500.arrow --file factors.txt --out out/factors.parquet
  expr explain 'rank(ts_mean(close, 20))' 'ts_mean(close, 20) / close'

A file holds one expression per line, optionally `name = expr`; `#` starts a comment;
a first line `# dialect: qlib` sets the dialect.";

#[derive(Parser)]
#[command(name = "expr", version, about = "Check, evaluate and explain factor expressions.", after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    log: af_store::log::LogArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse expressions; print canonical text and id, or the error with its position.
    Check {
        /// Notation of the expressions (a file's `# dialect:` line overrides it).
        #[arg(long, value_enum, default_value = "native")]
        dialect: Dialect,
        /// A file of expressions, one per line (`#` comments, `name = expr`).
        #[arg(long)]
        file: Option<PathBuf>,
        /// An expression (repeatable); with --file, these come after the file's.
        exprs: Vec<String>,
    },
    /// Evaluate expressions on a panel into a Parquet table (date, code, one column each).
    Eval {
        /// The panel to evaluate on (panel-build's --out).
        #[arg(long)]
        panel: PathBuf,
        /// An expression to evaluate (repeatable); with --file, these come after the file's.
        #[arg(long = "expr")]
        exprs: Vec<String>,
        /// A file of expressions, one per line (`#` comments, `name = expr`).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Notation of the expressions (a file's `# dialect:` line overrides it).
        #[arg(long, value_enum, default_value = "native")]
        dialect: Dialect,
        /// The Parquet table to write: date, code and one column per expression.
        #[arg(long)]
        out: PathBuf,
        /// Sub-expression cache (cache-materialize's --out): entries of this panel are
        /// read instead of computed.
        #[arg(long, default_value = "data/cache")]
        cache: PathBuf,
        /// Compute everything; read no cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Time each expression on its own (median of --repeat runs after one warm-up run
    /// that also pages the panel's fields in), for `make bench`.
    Bench {
        /// The panel to time on.
        #[arg(long)]
        panel: PathBuf,
        /// A file of expressions, one per line (`#` comments, `name = expr`).
        #[arg(long)]
        file: PathBuf,
        /// Notation of the expressions (a file's `# dialect:` line overrides it).
        #[arg(long, value_enum, default_value = "native")]
        dialect: Dialect,
        #[command(flatten)]
        opts: BenchOpts,
    },
    /// Write expressions as a Python module computing them with Polars + polars_ta,
    /// with the engine's exact semantics (docs/python-export.md).
    Python {
        /// A library (library-merge's --out Parquet): its factors, named by their id's
        /// first 16 hex digits, in rank order.
        #[arg(long, conflicts_with_all = ["file", "exprs"])]
        library: Option<PathBuf>,
        /// `name = expression` lines, as `expr eval --file`.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Notation of the expressions (a file's `# dialect:` line overrides it).
        #[arg(long, value_enum, default_value = "native")]
        dialect: Dialect,
        /// The module to write (e.g. lib.py).
        #[arg(long)]
        out: PathBuf,
        exprs: Vec<String>,
    },
    /// List every operator of the registry (the table in docs/expression_language.md).
    Ops {
        /// Print a Markdown table.
        #[arg(long)]
        markdown: bool,
        /// Print each operator applied alone to panel fields, one `op_<name> = ...` line
        /// each: the expression file of `make bench-ops`.
        #[arg(long, conflicts_with = "markdown")]
        bench: bool,
    },
    /// List the feature sets shipped with the product (`lgbm-train --features NAME`), or
    /// print one as an expression file (`expr sets alpha158 > a158.txt`).
    Sets {
        /// A set to print.
        name: Option<String>,
    },
    /// Show the merged DAG: nodes, shared sub-expressions, estimated cost.
    Explain {
        /// Notation of the expressions (a file's `# dialect:` line overrides it).
        #[arg(long, value_enum, default_value = "native")]
        dialect: Dialect,
        /// A file of expressions, one per line (`#` comments, `name = expr`).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Panel to size the cost estimate (default: csi500 shape 1500 x 500).
        #[arg(long)]
        panel: Option<PathBuf>,
        exprs: Vec<String>,
    },
}

/// (name, source text) pairs from a file and/or the command line, and the dialect.
fn gather(
    file: Option<&Path>,
    exprs: &[String],
    mut d: Dialect,
) -> Result<(Vec<(String, String)>, Dialect)> {
    let mut out = Vec::new();
    if let Some(f) = file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let (lines, fd) = expression_lines(&text).map_err(|e| anyhow!("{}: {e}", f.display()))?;
        out = lines;
        d = fd.unwrap_or(d);
    }
    out.extend(exprs.iter().map(|e| (String::new(), e.clone())));
    if out.is_empty() {
        bail!("no expressions given (pass them as arguments or with --file)");
    }
    for (i, (n, _)) in out.iter_mut().enumerate() {
        if n.is_empty() {
            *n = format!("f{i}");
        }
    }
    Ok((out, d))
}

fn compile(src: &[(String, String)], d: Dialect, fields: &Fields) -> Result<Vec<Expr>> {
    src.iter()
        .map(|(n, s)| parse_canonical(s, d, fields).map_err(|e| anyhow!("{n}: {e}")))
        .collect()
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Sets { name } => match name {
            None => {
                for (n, what, text) in af_expr::sets::SETS {
                    let (lines, _) = expression_lines(text).map_err(|e| anyhow!("{n}: {e}"))?;
                    println!("{n}\t{} expressions\t{what}", lines.len());
                }
            }
            Some(n) => match af_expr::sets::get(&n) {
                Some(text) => print!("{text}"),
                None => bail!(
                    "no set {n:?}; the sets are: {}",
                    af_expr::sets::SETS.map(|s| s.0).join(", ")
                ),
            },
        },
        Cmd::Check {
            dialect: ds,
            file,
            exprs,
        } => {
            let (src, d) = gather(file.as_deref(), &exprs, ds)?;
            let fields = Fields::default();
            let mut bad = 0;
            for (n, s) in &src {
                match parse_canonical(s, d, &fields) {
                    Ok(e) => println!("{n}\t{}\t{}", e.id(), e.canonical_text()),
                    Err(e) => {
                        bad += 1;
                        tracing::error!("{n}: {e}");
                    }
                }
            }
            if bad > 0 {
                bail!("{bad} of {} expressions failed to parse", src.len());
            }
        }
        Cmd::Python {
            library,
            file,
            dialect: ds,
            out,
            exprs,
        } => {
            let (src, d, from) = match &library {
                Some(l) => {
                    let t = af_table::read_parquet(l)?;
                    let ids = t
                        .strings("id")
                        .with_context(|| format!("library {}", l.display()))?;
                    let ex = t
                        .strings("expression")
                        .with_context(|| format!("library {}", l.display()))?;
                    let named = ids.iter().map(|i| af_expr::python::factor_name(i));
                    // The file name only: same library, same bytes, wherever it lives.
                    let name = l
                        .file_name()
                        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
                    (
                        named.zip(ex).collect(),
                        Dialect::Native,
                        format!("library {name}"),
                    )
                }
                None => {
                    let (src, d) = gather(file.as_deref(), &exprs, ds)?;
                    let from = file
                        .as_ref()
                        .map_or("the command line".into(), |f| f.display().to_string());
                    (src, d, from)
                }
            };
            let es = compile(&src, d, &Fields::default())?;
            let named: Vec<(String, af_expr::Expr)> =
                src.iter().map(|(n, _)| n.clone()).zip(es).collect();
            let text = af_expr::python::module(&named, &from)
                .map_err(|e| anyhow!("cannot export to Python: {e}"))?;
            af_store::write_atomic_bytes(&out, text.as_bytes())?;
            tracing::info!("wrote {} ({} factors)", out.display(), named.len());
        }
        Cmd::Eval {
            panel,
            exprs,
            file,
            dialect: ds,
            out,
            cache,
            no_cache,
        } => {
            let (src, d) = gather(file.as_deref(), &exprs, ds)?;
            let p = Panel::open(&panel)?;
            let fields = af_expr::fields_of(&p);
            let es = compile(&src, d, &fields)?;
            let _lock = OutputLock::acquire(&out)?;
            let prog = Program::compile(&es);
            let (nd, na) = (p.n_dates(), p.n_assets());
            let mut cols: Vec<Option<Vec<f64>>> = vec![None; es.len()];
            let t0 = std::time::Instant::now();
            let mut cache = (!no_cache).then(|| af_cache::Cache::new(&cache, &p));
            if let Some(c) = cache.as_mut().filter(|c| c.present()) {
                c.load(&p, &prog.node_ids());
            }
            let nc = cache.as_ref().map(|c| c as &dyn af_expr::eval::NodeCache);
            let stats = prog.run_cached(&p, nc, |i, v| {
                cols[i] = Some(v.to_vec());
                Ok(())
            })?;
            if let Some(c) = cache.as_mut().filter(|c| c.present()) {
                c.record(&prog, &stats);
                tracing::info!("{}", c.summary());
            }
            let secs = t0.elapsed().as_secs_f64();
            let mut table = Table::new()
                .date(
                    "date",
                    p.dates()
                        .iter()
                        .flat_map(|d| std::iter::repeat_n(*d, na))
                        .collect(),
                )
                .str("code", (0..nd).flat_map(|_| p.codes().iter()));
            for ((n, _), c) in src.iter().zip(cols) {
                table = table.f64(n, c.unwrap_or_else(|| vec![f64::NAN; nd * na]));
            }
            let mut prov = Provenance::new("expr", env!("CARGO_PKG_VERSION"))
                .param("dialect", d.name())
                .input_hash("panel", p.content_hash());
            for ((n, _), e) in src.iter().zip(&es) {
                prov = prov.param(&format!("expr.{n}"), e.canonical_text());
            }
            write_parquet(&out, table, &prov)?;
            tracing::info!(
                "{} expressions, {} nodes evaluated in {:.3} s, peak intermediate memory {:.1} MB",
                es.len(),
                stats.nodes_evaluated,
                secs,
                stats.peak_bytes as f64 / 1e6
            );
            println!("wrote {}", out.display());
        }
        Cmd::Ops { markdown, bench } => print_ops(markdown, bench),
        Cmd::Bench {
            panel,
            file,
            dialect: ds,
            opts,
        } => bench(&panel, &file, ds, opts)?,
        Cmd::Explain {
            dialect: ds,
            file,
            panel,
            exprs,
        } => {
            let (src, d) = gather(file.as_deref(), &exprs, ds)?;
            let (fields, cells) = match &panel {
                Some(pp) => {
                    let p = Panel::open(pp)?;
                    (af_expr::fields_of(&p), p.n_dates() * p.n_assets())
                }
                None => (Fields::default(), 1500 * 500),
            };
            let es = compile(&src, d, &fields)?;
            let prog = Program::compile(&es);
            let total: usize = es.iter().map(|e| e.size()).sum();
            println!(
                "{} expressions, {} nodes in their trees, {} after merging",
                es.len(),
                total,
                prog.nodes.len()
            );
            for (i, n) in prog.nodes.iter().enumerate() {
                let ins: Vec<String> = n.inputs.iter().map(|j| format!("#{j}")).collect();
                println!(
                    "#{i:<4} uses={:<3} {:<60} <- {}",
                    n.consumers,
                    n.text,
                    ins.join(" ")
                );
            }
            println!("shared sub-expressions:");
            for n in prog.shared() {
                println!("  {}", n.text);
            }
            println!(
                "estimated cost: {:.2e} cell-ops ({} cells)",
                prog.cost(cells),
                cells
            );
        }
    }
    Ok(())
}

/// The registry as a table: one row per operator.
fn print_ops(markdown: bool, bench: bool) {
    use af_expr::registry::{Arg, OPS, bench_expression};
    if bench {
        println!("# Every registry operator alone (`expr ops --bench`), for `make bench-ops`.");
        for op in OPS {
            println!("op_{} = {}", op.name, bench_expression(op));
        }
        return;
    }
    if markdown {
        println!("| operator | arguments | kind | cost | definition |");
        println!("| --- | --- | --- | --- | --- |");
    }
    for op in OPS {
        let mut series = ["x", "y", "z"].iter();
        let args: Vec<&str> = op
            .args
            .iter()
            .map(|a| match a {
                Arg::Series => series.next().copied().unwrap_or("w"),
                Arg::Window => "d",
                Arg::Scalar => "a",
                Arg::Group => "group",
            })
            .collect();
        let (name, args, kind) = (op.name, args.join(", "), format!("{:?}", op.kind));
        if markdown {
            println!(
                "| `{name}` | `{args}` | {kind} | {} | {} |",
                op.cost, op.doc
            );
        } else {
            println!("{name}({args})\t{kind}\t{}\t{}", op.cost, op.doc);
        }
    }
}

/// The settings of `expr bench` past the inputs.
#[derive(clap::Args)]
struct BenchOpts {
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Write `{"engine", "exprs": [{name, expr, ms_median, ms_all}]}` here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the last N date rows of each result as raw little-endian f64
    /// (`DIR/<name>.f64`, shape N x n_assets), for value comparison with peers.
    #[arg(long, requires = "dump_dir", default_value_t = 250)]
    dump_rows: usize,
    /// Folder for the --dump-rows value dumps (off unless given).
    #[arg(long)]
    dump_dir: Option<PathBuf>,
    /// Also time the streaming floor first — read `close`, write one matrix, as the
    /// kernels split work — reported as the row `floor` (`make bench-ops`).
    #[arg(long)]
    floor: bool,
    /// Also time the whole file as one merged DAG (shared sub-expressions computed
    /// once, each intermediate freed after its last reader), reported as the row
    /// `all-at-once` beside the sum of the one-by-one medians.
    #[arg(long)]
    all_at_once: bool,
    /// With --all-at-once: skip timing each expression on its own.
    #[arg(long, requires = "all_at_once")]
    no_each: bool,
    /// Compute every element-wise node as a matrix of its own (no fusion of
    /// element-wise chains), to measure what fusion saves.
    #[arg(long)]
    no_fuse: bool,
}

/// Median and minimum of timings.
fn med_min(ms: &[f64]) -> (f64, f64) {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    (sorted[sorted.len() / 2], sorted[0])
}

/// The process's peak resident set so far (Linux `VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn bench(panel: &Path, file: &Path, ds: Dialect, o: BenchOpts) -> Result<()> {
    let BenchOpts {
        repeat,
        json,
        dump_rows,
        dump_dir,
        floor,
        all_at_once,
        no_each,
        no_fuse,
    } = o;
    let (repeat, each, fuse) = (repeat.max(1), !no_each, !no_fuse);
    let (src, d) = gather(Some(file), &[], ds)?;
    let p = Panel::open(panel)?;
    let fields = af_expr::fields_of(&p);
    let es = compile(&src, d, &fields)?;
    let (nd, na) = (p.n_dates(), p.n_assets());
    let rows = dump_rows.min(nd);
    if let Some(dir) = &dump_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut report = Vec::new();
    println!(
        "{:<28} {:>10} {:>10}  expression",
        "name", "median ms", "min ms"
    );
    if floor {
        let x = p.field("close")?.data;
        let mut ms = Vec::with_capacity(repeat);
        for i in 0..=repeat {
            let t0 = std::time::Instant::now();
            let out = af_expr::kernels::elementwise::stream_floor(x);
            let el = t0.elapsed().as_secs_f64() * 1e3;
            af_expr::kernels::buf::give(out);
            if i > 0 {
                ms.push(el);
            }
        }
        let (med, min) = med_min(&ms);
        println!(
            "{:<28} {med:>10.1} {min:>10.1}  (read close, write one matrix)",
            "floor"
        );
        report.push(serde_json::json!({
            "name": "floor", "expr": "close + 1 (streaming floor)", "canonical": "",
            "ms_median": med, "ms_all": ms,
        }));
    }
    let mut one_by_one = 0.0;
    for ((name, text), e) in src.iter().zip(&es).filter(|_| each) {
        let mut prog = Program::compile(std::slice::from_ref(e));
        prog.fuse = fuse;
        let mut ms = Vec::with_capacity(repeat);
        for i in 0..=repeat {
            let t0 = std::time::Instant::now();
            let mut tail: Option<Vec<u8>> = None;
            prog.run(&p, |_, v| {
                if i == 0 && dump_dir.is_some() {
                    let last = &v[(nd - rows) * na..];
                    tail = Some(last.iter().flat_map(|x| x.to_le_bytes()).collect());
                }
                Ok(())
            })?;
            let el = t0.elapsed().as_secs_f64() * 1e3;
            if i > 0 {
                ms.push(el);
            }
            if let (Some(dir), Some(bytes)) = (&dump_dir, tail) {
                write_atomic(&dir.join(format!("{name}.f64")), |w| {
                    std::io::Write::write_all(w, &bytes)?;
                    Ok(())
                })?;
            }
        }
        let (med, min) = med_min(&ms);
        println!("{name:<28} {med:>10.1} {min:>10.1}  {text}");
        one_by_one += med;
        report.push(serde_json::json!({
            "name": name, "expr": text, "canonical": e.canonical_text(),
            "ms_median": med, "ms_all": ms,
        }));
    }
    let mut whole = serde_json::Value::Null;
    if all_at_once {
        let mut prog = Program::compile(&es);
        prog.fuse = fuse;
        let in_trees: usize = es.iter().map(|e| e.size()).sum();
        let mut ms = Vec::with_capacity(repeat);
        let mut stats = Default::default();
        let rss0 = peak_rss();
        for i in 0..=repeat {
            let t0 = std::time::Instant::now();
            stats = prog.run(&p, |_, _| Ok(()))?;
            if i > 0 {
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        let (med, min) = med_min(&ms);
        let af_expr::RunStats {
            nodes_evaluated,
            peak_bytes,
            node_secs,
            fused,
            ..
        } = stats;
        // Where the merged run's time goes, by operator (the last run).
        let mut by_op: std::collections::BTreeMap<&str, (usize, f64)> = Default::default();
        for (node, secs) in prog.nodes.iter().zip(&node_secs) {
            if let af_expr::Expr::Call(op, _) = &node.expr {
                let e = by_op.entry(op.name).or_default();
                e.0 += 1;
                e.1 += secs;
            }
        }
        let mut profile: Vec<(&str, usize, f64)> =
            by_op.into_iter().map(|(k, (n, s))| (k, n, s)).collect();
        profile.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(b.0)));
        println!(
            "{:<28} {med:>10.1} {min:>10.1}  {} expressions as one DAG: {} operator nodes \
             evaluated ({fused} fused into their reader's pass; {} nodes in their trees, {} after \
             merging), peak live {:.0} MB{}",
            "all-at-once",
            es.len(),
            nodes_evaluated,
            in_trees,
            prog.nodes.len(),
            peak_bytes as f64 / 1e6,
            if each {
                format!("; one by one {one_by_one:.1} ms in total")
            } else {
                String::new()
            }
        );
        let total: f64 = profile.iter().map(|p| p.2).sum();
        for (name, n, secs) in profile.iter().take(12) {
            println!(
                "  {name:<26} {:>10.1} ms in {n} nodes ({:.0} %, {:.1} ms each)",
                secs * 1e3,
                100.0 * secs / total.max(1e-12),
                secs * 1e3 / *n as f64
            );
        }
        whole = serde_json::json!({
            "expressions": es.len(),
            "ms_median": med, "ms_min": min, "ms_all": ms,
            "nodes_in_trees": in_trees,
            "nodes_after_merging": prog.nodes.len(),
            "operator_nodes_evaluated": nodes_evaluated,
            "fused_nodes": fused,
            "peak_live_bytes": peak_bytes,
            "peak_rss_bytes_before": rss0,
            "peak_rss_bytes": peak_rss(),
            "by_operator": profile.iter().map(|(k, n, s)| serde_json::json!({"op": k, "nodes": n, "ms": s * 1e3})).collect::<Vec<_>>(),
            "one_by_one_ms_total": if each { serde_json::json!(one_by_one) } else { serde_json::Value::Null },
        });
    }
    if let Some(j) = json {
        let body = serde_json::json!({
            "engine": "alpha-factory",
            "version": env!("CARGO_PKG_VERSION"),
            "threads": af_expr::threads(),
            "panel": panel.display().to_string(),
            "n_dates": nd, "n_assets": na,
            "exprs": report,
            "all_at_once": whole,
        });
        let text = serde_json::to_string_pretty(&body)? + "\n";
        write_atomic(&j, |w| {
            std::io::Write::write_all(w, text.as_bytes())?;
            Ok(())
        })?;
        println!("wrote {}", j.display());
    }
    Ok(())
}

fn main() {
    af_store::cli::main_with(|| {
        let a = Cli::parse();
        af_store::log::init("expr", &a.log);
        run(a)
    });
}
