//! `pipeline`: run a YAML pipeline of alpha-factory tools as a DAG.
//!
//! A step's key is the sha256 of its tool's identity (the binary's content hash), its
//! arguments and the content hashes of its declared inputs. A step is skipped when its
//! key matches the record of its last successful run and its outputs still exist with
//! the recorded hashes. A step that re-ran and wrote byte-identical outputs leaves the
//! keys below it unchanged, so they skip too (early cutoff). Records are written after
//! a step succeeds, outputs are written atomically by the tools, so a killed run
//! resumes with the step it was in.

mod spec;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use af_store::{OutputLock, canonical_json, sha256_bytes};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use spec::{Pipeline, Step};
use state::{Hasher, Record, read_record, write_record};

const EXAMPLES: &str = "\
Examples:
  pipeline run pipelines/mine.yaml
  pipeline run pipelines/mine.yaml --set assets=200 --set days=500 --set generations=2
  pipeline plan pipelines/mine.yaml            # what would run, and why
  pipeline run pipelines/mine.yaml --only fitness-003 --force
  pipeline graph pipelines/mine.yaml --format mermaid
  pipeline export airflow pipelines/mine.yaml --out dags/mine.py

See docs/pipeline.md for the file format.";

#[derive(Parser, Debug)]
#[command(name = "pipeline", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// The pipeline file.
    #[arg(default_value = "pipelines/mine.yaml")]
    file: PathBuf,
    /// Override a variable: key=value (repeatable).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Where step records and the stat cache live.
    #[arg(long, default_value = "state")]
    state: PathBuf,
    /// Folder of the tool binaries (default: beside this one).
    #[arg(long)]
    tools: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the steps that are not up to date.
    Run {
        #[command(flatten)]
        c: Common,
        /// Only this step (its inputs must exist).
        #[arg(long, conflicts_with = "from")]
        only: Option<String>,
        /// This step and everything below it.
        #[arg(long)]
        from: Option<String>,
        /// Re-run the selected steps even when up to date.
        #[arg(long)]
        force: bool,
        /// Independent steps run in parallel, up to this many.
        #[arg(short = 'j', long, default_value_t = 1)]
        jobs: usize,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
        /// A JSON summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// For each step: run or skip, and why.
    Plan {
        #[command(flatten)]
        c: Common,
    },
    /// The step graph, as Mermaid or DOT.
    Graph {
        #[command(flatten)]
        c: Common,
        #[arg(long, default_value = "mermaid", value_parser = ["mermaid", "dot"])]
        format: String,
    },
    /// The last run of each step.
    Status {
        #[command(flatten)]
        c: Common,
    },
    /// Remove artifacts this pipeline wrote that no current step references.
    Gc {
        #[command(flatten)]
        c: Common,
        #[arg(long)]
        dry_run: bool,
        /// Also remove the folders of this sub-expression cache (cache-materialize
        /// --out) whose panel is not one of the pipeline's current outputs.
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Write an Airflow DAG or a GitHub Actions workflow running the same commands.
    Export {
        #[arg(value_parser = ["airflow", "github"])]
        target: String,
        #[command(flatten)]
        c: Common,
        #[arg(long)]
        out: PathBuf,
    },
}

/// Remove `root/<panel-hash>/` folders whose panel is none of the kept outputs' panels
/// (cache entries are keyed by panel hash: another panel's can never be read, only
/// take space).
fn gc_cache(root: &Path, keep: &BTreeSet<String>, dry_run: bool) -> Result<()> {
    let mut panels: BTreeSet<String> = BTreeSet::new();
    let mut look = |p: &Path| {
        if p.extension().is_some_and(|e| e == "arrow") {
            if let Ok(panel) = af_panel::Panel::open(p) {
                panels.insert(panel.content_hash().to_string());
            }
        }
    };
    for k in keep {
        let p = Path::new(k);
        if p.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                look(&e.path());
            }
        } else {
            look(p);
        }
    }
    let mut n = 0;
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_hash = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_hash || !e.path().is_dir() || panels.contains(&name) {
            continue;
        }
        n += 1;
        println!(
            "{} {} (cache of a panel no current step produces)",
            if dry_run { "would remove" } else { "removing" },
            e.path().display()
        );
        if !dry_run {
            std::fs::remove_dir_all(e.path())?;
        }
    }
    eprintln!(
        "{n} cache folder(s) of other panels{} ({} panel(s) kept)",
        if dry_run { " (dry run)" } else { " removed" },
        panels.len()
    );
    Ok(())
}

/// The expanded pipeline with its dependency graph.
struct Graph {
    p: Pipeline,
    /// deps[i]: steps that must finish before step i.
    deps: Vec<BTreeSet<usize>>,
    /// Topological order.
    order: Vec<usize>,
    tools: PathBuf,
}

fn tool_dir(c: &Common) -> PathBuf {
    c.tools.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

fn tool_path(dir: &Path, tool: &str) -> Option<PathBuf> {
    let p = dir.join(tool);
    if p.is_file() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// Whether `path` is `out` or inside it (paths compared after dropping `./`).
fn under(path: &str, out: &str) -> bool {
    let norm = |p: &str| p.trim_start_matches("./").trim_end_matches('/').to_string();
    let (p, o) = (norm(path), norm(out));
    p == o || p.starts_with(&format!("{o}/"))
}

/// Two paths overlap when one is, or is inside, the other.
fn overlap(a: &str, b: &str) -> bool {
    under(a, b) || under(b, a)
}

fn build(c: &Common) -> Result<Graph> {
    let p = spec::load(&c.file, &c.sets)?;
    let tools = tool_dir(c);
    let mut names = BTreeMap::new();
    for (i, s) in p.steps.iter().enumerate() {
        if names.insert(s.name.clone(), i).is_some() {
            bail!("{}: two steps are named {}", c.file.display(), s.name);
        }
        if tool_path(&tools, &s.tool).is_none() {
            bail!(
                "{}: step {}: unknown tool {:?} (no binary in {} or on PATH; build with `cargo build --release`)",
                c.file.display(),
                s.name,
                s.tool,
                tools.display()
            );
        }
    }
    let mut writer: Vec<(&str, usize)> = Vec::new();
    for (i, s) in p.steps.iter().enumerate() {
        for o in &s.outputs {
            if let Some((w, j)) = writer.iter().find(|(w, j)| *j != i && overlap(w, o)) {
                bail!(
                    "{}: steps {} and {} both write {o}{}",
                    c.file.display(),
                    p.steps[*j].name,
                    s.name,
                    if *w == o.as_str() {
                        String::new()
                    } else {
                        format!(" (inside {w})")
                    }
                );
            }
            writer.push((o, i));
        }
    }
    let mut deps = vec![BTreeSet::new(); p.steps.len()];
    for (i, s) in p.steps.iter().enumerate() {
        for inp in &s.inputs {
            let prod: Vec<usize> = p
                .steps
                .iter()
                .enumerate()
                .filter(|(j, t)| *j != i && t.outputs.iter().any(|o| overlap(inp, o)))
                .map(|(j, _)| j)
                .collect();
            if prod.is_empty() && !Path::new(inp).exists() {
                bail!(
                    "{}: step {}: input {inp} is missing and no step writes it",
                    c.file.display(),
                    s.name
                );
            }
            deps[i].extend(prod);
        }
        for n in &s.needs {
            let j = names.get(n).ok_or_else(|| {
                anyhow!(
                    "{}: step {} needs unknown step {n}",
                    c.file.display(),
                    s.name
                )
            })?;
            deps[i].insert(*j);
        }
    }
    // Kahn's algorithm; whatever is left is on a cycle.
    let n = p.steps.len();
    let mut indeg: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut order = Vec::new();
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    while let Some(i) = ready.first().copied() {
        ready.remove(0);
        order.push(i);
        for j in 0..n {
            if deps[j].contains(&i) {
                indeg[j] -= 1;
                if indeg[j] == 0 {
                    ready.push(j);
                }
            }
        }
    }
    if order.len() < n {
        let cyc: Vec<&str> = (0..n)
            .filter(|i| !order.contains(i))
            .map(|i| p.steps[i].name.as_str())
            .collect();
        bail!(
            "{}: the steps {} form a cycle",
            c.file.display(),
            cyc.join(", ")
        );
    }
    Ok(Graph {
        p,
        deps,
        order,
        tools,
    })
}

/// A step's key over its current inputs, and those input hashes.
fn key_of(
    g: &Graph,
    s: &Step,
    h: &mut Hasher,
) -> Result<(String, String, BTreeMap<String, String>)> {
    let tool = tool_path(&g.tools, &s.tool).ok_or_else(|| anyhow!("tool {} vanished", s.tool))?;
    let identity = h
        .hash(&tool)?
        .ok_or_else(|| anyhow!("cannot read tool {}", tool.display()))?;
    let mut inputs = BTreeMap::new();
    for i in &s.inputs {
        let hv = h
            .hash(Path::new(i))?
            .ok_or_else(|| anyhow!("step {}: input {i} is missing", s.name))?;
        inputs.insert(i.clone(), hv);
    }
    let k = canonical_json(&json!({
        "tool": s.tool, "identity": identity, "args": s.args, "inputs": inputs,
    }));
    Ok((sha256_bytes(k.as_bytes()), identity, inputs))
}

/// Why a step must run (None: up to date).
fn stale(g: &Graph, s: &Step, h: &mut Hasher, state: &Path) -> Result<Option<String>> {
    let (key, identity, inputs) = key_of(g, s, h)?;
    let Some(r) = read_record(state, &g.p.name, &s.name) else {
        return Ok(Some("never ran".into()));
    };
    if r.key != key {
        if r.identity != identity {
            return Ok(Some(format!("tool {} changed", s.tool)));
        }
        if r.args != s.args {
            let diff: Vec<String> = s
                .args
                .iter()
                .zip(r.args.iter().chain(std::iter::repeat(&String::new())))
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("{b} -> {a}"))
                .take(3)
                .collect();
            return Ok(Some(format!("arguments changed ({})", diff.join(", "))));
        }
        for (i, hv) in &inputs {
            if r.inputs.get(i) != Some(hv) {
                return Ok(Some(format!("input {i} changed")));
            }
        }
        return Ok(Some("key changed".into()));
    }
    for o in &s.outputs {
        match h.hash(Path::new(o))? {
            None => return Ok(Some(format!("output {o} is missing"))),
            Some(hv) if r.outputs.get(o) != Some(&hv) => {
                return Ok(Some(format!("output {o} was modified")));
            }
            _ => {}
        }
    }
    Ok(None)
}

fn selected(g: &Graph, only: &Option<String>, from: &Option<String>) -> Result<BTreeSet<usize>> {
    let find = |n: &str| {
        g.p.steps
            .iter()
            .position(|s| s.name == n)
            .ok_or_else(|| anyhow!("no step named {n}"))
    };
    if let Some(n) = only {
        return Ok([find(n)?].into());
    }
    if let Some(n) = from {
        let mut set: BTreeSet<usize> = [find(n)?].into();
        for &i in &g.order {
            if g.deps[i].iter().any(|d| set.contains(d)) {
                set.insert(i);
            }
        }
        return Ok(set);
    }
    Ok((0..g.p.steps.len()).collect())
}

struct Outcome {
    ran: bool,
    seconds: f64,
    why: String,
}

fn execute(
    g: &Graph,
    i: usize,
    force: bool,
    h: &Mutex<Hasher>,
    state: &Path,
    log: &Mutex<std::fs::File>,
) -> Result<Outcome> {
    let s = &g.p.steps[i];
    let why = {
        let mut hh = h.lock().map_err(|_| anyhow!("stat cache poisoned"))?;
        if force {
            Some("forced".to_string())
        } else {
            stale(g, s, &mut hh, state)?
        }
    };
    let Some(why) = why else {
        return Ok(Outcome {
            ran: false,
            seconds: 0.0,
            why: "up to date".into(),
        });
    };
    let (key, identity, inputs) = {
        let mut hh = h.lock().map_err(|_| anyhow!("stat cache poisoned"))?;
        key_of(g, s, &mut hh)?
    };
    let tool = tool_path(&g.tools, &s.tool).ok_or_else(|| anyhow!("tool {} vanished", s.tool))?;
    for o in &s.outputs {
        if let Some(d) = Path::new(o).parent() {
            let _ = std::fs::create_dir_all(d);
        }
    }
    let t0 = Instant::now();
    let mut cmd = Command::new(&tool);
    cmd.args(&s.args).stdin(Stdio::null());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL the
        // child when this runner dies, so a killed run leaves no orphan writing on.
        unsafe {
            let parent = std::process::id() as libc::pid_t;
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The runner may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("the pipeline runner is gone"));
                }
                Ok(())
            });
        }
    }
    let out = cmd
        .output()
        .with_context(|| format!("step {}: cannot start {}", s.name, tool.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    if let Ok(mut f) = log.lock() {
        let _ = writeln!(
            f,
            "== {} ({} {}) exit {:?} in {secs:.2} s",
            s.name,
            s.tool,
            s.args.join(" "),
            out.status.code()
        );
        let _ = f.write_all(&out.stdout);
        let _ = f.write_all(&out.stderr);
    }
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = err.lines().rev().take(5).collect();
        bail!(
            "step {} failed ({}):\n{}",
            s.name,
            out.status,
            last.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let mut outputs = BTreeMap::new();
    {
        let mut hh = h.lock().map_err(|_| anyhow!("stat cache poisoned"))?;
        for o in &s.outputs {
            let hv = hh
                .hash(Path::new(o))?
                .ok_or_else(|| anyhow!("step {} did not write its declared output {o}", s.name))?;
            outputs.insert(o.clone(), hv);
        }
        hh.save()?;
    }
    let rec = Record {
        key,
        tool: s.tool.clone(),
        identity,
        args: s.args.clone(),
        inputs,
        outputs,
        finished_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        seconds: secs,
    };
    write_record(state, &g.p.name, &s.name, &rec)?;
    Ok(Outcome {
        ran: true,
        seconds: secs,
        why,
    })
}

#[allow(clippy::too_many_arguments)]
fn run_cmd(
    c: &Common,
    only: &Option<String>,
    from: &Option<String>,
    force: bool,
    jobs: usize,
    quiet: bool,
    as_json: bool,
) -> Result<()> {
    let t0 = Instant::now();
    let g = build(c)?;
    let _lock =
        OutputLock::acquire(&c.file).context("another `pipeline run` holds this pipeline")?;
    let sel = selected(&g, only, from)?;
    let run_id = format!(
        "{}-{}-{}",
        g.p.name,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        std::process::id()
    );
    std::fs::create_dir_all("out/logs").context("cannot create out/logs")?;
    let log_path = PathBuf::from(format!("out/logs/{run_id}.log"));
    let log = Mutex::new(std::fs::File::create(&log_path)?);
    let h = Mutex::new(Hasher::load(&c.state));
    let todo: Vec<usize> = g
        .order
        .iter()
        .copied()
        .filter(|i| sel.contains(i))
        .collect();
    let total = todo.len();
    let mut done: BTreeSet<usize> = (0..g.p.steps.len()).filter(|i| !sel.contains(i)).collect();
    let mut started: BTreeSet<usize> = BTreeSet::new();
    let mut results: BTreeMap<usize, (bool, f64, String)> = BTreeMap::new();
    let mut failure: Option<anyhow::Error> = None;
    // A bar with ETA on a terminal; plain lines for logs and CI.
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total as u64);
        if let Ok(st) = indicatif::ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} steps {elapsed_precise} ETA {eta} {msg}",
        ) {
            b.set_style(st);
        }
        b
    });
    let say = |line: String| match &bar {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    };
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<Outcome>)>();
    std::thread::scope(|sc| {
        let mut running = 0usize;
        loop {
            if failure.is_none() {
                for &i in &todo {
                    if running >= jobs.max(1) {
                        break;
                    }
                    if started.contains(&i) || !g.deps[i].iter().all(|d| done.contains(d)) {
                        continue;
                    }
                    started.insert(i);
                    running += 1;
                    let (tx, g, h, log, state) = (tx.clone(), &g, &h, &log, &c.state);
                    sc.spawn(move || {
                        let r = execute(g, i, force, h, state, log);
                        let _ = tx.send((i, r));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok((i, r)) = rx.recv() else { break };
            running -= 1;
            match r {
                Ok(o) => {
                    if !quiet {
                        let k = results.len() + 1;
                        let name = &g.p.steps[i].name;
                        if o.ran {
                            say(format!(
                                "[{k}/{total}] {name:<24} ran in {:.2} s ({})",
                                o.seconds, o.why
                            ));
                        } else {
                            say(format!("[{k}/{total}] {name:<24} skipped (up to date)"));
                        }
                        if let Some(b) = &bar {
                            b.inc(1);
                            b.set_message(name.clone());
                        }
                    }
                    results.insert(i, (o.ran, o.seconds, o.why));
                    done.insert(i);
                }
                Err(e) => {
                    if failure.is_none() {
                        failure = Some(e);
                    }
                }
            }
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Ok(mut hh) = h.lock() {
        hh.save()?;
    }
    let ran = results.values().filter(|r| r.0).count();
    if as_json {
        let steps: Vec<_> = results
            .iter()
            .map(|(i, (r, s, w))| json!({"step": g.p.steps[*i].name, "ran": r, "seconds": s, "why": w}))
            .collect();
        println!(
            "{}",
            json!({"pipeline": g.p.name, "ran": ran, "skipped": results.len() - ran,
            "failed": failure.as_ref().map(|e| format!("{e:#}")), "seconds": t0.elapsed().as_secs_f64(),
            "log": log_path, "steps": steps})
        );
    }
    if let Some(e) = failure {
        return Err(e.context(format!("log: {}", log_path.display())));
    }
    if !quiet {
        eprintln!(
            "{}: {ran} ran, {} skipped in {:.2} s (log {})",
            g.p.name,
            results.len() - ran,
            t0.elapsed().as_secs_f64(),
            log_path.display()
        );
    }
    Ok(())
}

fn plan_cmd(c: &Common) -> Result<()> {
    let g = build(c)?;
    let mut h = Hasher::load(&c.state);
    let mut will_run: BTreeSet<usize> = BTreeSet::new();
    for &i in &g.order {
        let s = &g.p.steps[i];
        let up: Vec<&str> = g.deps[i]
            .iter()
            .filter(|d| will_run.contains(d))
            .map(|d| g.p.steps[*d].name.as_str())
            .collect();
        let why = if !up.is_empty() {
            Some(format!(
                "after {} (skipped at run time if its outputs come out the same)",
                up.join(", ")
            ))
        } else {
            stale(&g, s, &mut h, &c.state)?
        };
        match why {
            Some(w) => {
                will_run.insert(i);
                println!("run   {:<24} {w}", s.name);
            }
            None => println!("skip  {:<24} up to date", s.name),
        }
    }
    h.save()?;
    Ok(())
}

fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn command_line(g: &Graph, s: &Step, bin: &str) -> String {
    let mut parts = vec![format!("{bin}/{}", s.tool)];
    parts.extend(s.args.iter().map(|a| quote(a)));
    let _ = g;
    parts.join(" ")
}

fn main_inner(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Run {
            c,
            only,
            from,
            force,
            jobs,
            quiet,
            json,
        } => run_cmd(&c, &only, &from, force, jobs, quiet, json),
        Cmd::Plan { c } => plan_cmd(&c),
        Cmd::Graph { c, format } => {
            let g = build(&c)?;
            if format == "dot" {
                println!("digraph \"{}\" {{\n  rankdir=TB;", g.p.name);
                for (i, s) in g.p.steps.iter().enumerate() {
                    println!("  s{i} [label=\"{}\\n{}\"];", s.name, s.tool);
                }
                for (i, d) in g.deps.iter().enumerate() {
                    for j in d {
                        println!("  s{j} -> s{i};");
                    }
                }
                println!("}}");
            } else {
                println!("flowchart TD");
                for (i, s) in g.p.steps.iter().enumerate() {
                    println!("  s{i}[\"{}<br/>{}\"]", s.name, s.tool);
                }
                for (i, d) in g.deps.iter().enumerate() {
                    for j in d {
                        println!("  s{j} --> s{i}");
                    }
                }
            }
            Ok(())
        }
        Cmd::Status { c } => {
            let g = build(&c)?;
            for &i in &g.order {
                let s = &g.p.steps[i];
                match read_record(&c.state, &g.p.name, &s.name) {
                    Some(r) => {
                        let now = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0);
                        let ago = now.saturating_sub(r.finished_unix);
                        let when = match ago {
                            0..120 => format!("{ago} s ago"),
                            120..7200 => format!("{} min ago", ago / 60),
                            7200..172800 => format!("{} h ago", ago / 3600),
                            _ => format!("{} days ago", ago / 86400),
                        };
                        println!(
                            "{:<24} ran {when} ({:.2} s) key {} outputs {}",
                            s.name,
                            r.seconds,
                            r.key.get(..12).unwrap_or(&r.key),
                            r.outputs.keys().cloned().collect::<Vec<_>>().join(" ")
                        )
                    }
                    None => println!("{:<24} never ran", s.name),
                }
            }
            Ok(())
        }
        Cmd::Gc { c, dry_run, cache } => {
            let g = build(&c)?;
            let _lock = OutputLock::acquire(&c.file)
                .context("a `pipeline run` holds this pipeline; gc waits for it to finish")?;
            // Keep what the records of the current steps reference; candidates are only
            // paths this pipeline once wrote (a step's old outputs, generations beyond
            // the current count): nothing else in the folders is ever touched.
            let mut keep: BTreeSet<String> = BTreeSet::new();
            let current: BTreeSet<&str> = g.p.steps.iter().map(|s| s.name.as_str()).collect();
            for s in &g.p.steps {
                if let Some(r) = read_record(&c.state, &g.p.name, &s.name) {
                    keep.extend(r.outputs.keys().cloned());
                }
            }
            let log = state::written_path(&c.state, &g.p.name);
            let written: BTreeSet<String> = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect();
            let mut n = 0;
            for w in &written {
                let p = Path::new(w);
                if keep.iter().any(|k| overlap(w, k)) || !p.exists() {
                    continue;
                }
                n += 1;
                println!("{} {w}", if dry_run { "would remove" } else { "removing" });
                if !dry_run {
                    if p.is_dir() {
                        std::fs::remove_dir_all(p)?;
                    } else {
                        std::fs::remove_file(p)?;
                    }
                }
            }
            if !dry_run {
                // Records of steps the pipeline no longer has go too, and the log
                // shrinks to what is kept.
                let dir = c.state.join("pipeline").join(&g.p.name);
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if let Some(step) = name.strip_suffix(".json") {
                        if !current.contains(step) {
                            let _ = std::fs::remove_file(e.path());
                        }
                    }
                }
                let text: String = keep.iter().map(|k| format!("{k}\n")).collect();
                af_store::write_atomic_bytes(&log, text.as_bytes())?;
            }
            eprintln!(
                "{n} unreferenced artifact(s){}",
                if dry_run { " (dry run)" } else { " removed" }
            );
            if let Some(root) = cache {
                gc_cache(&root, &keep, dry_run)?;
            }
            Ok(())
        }
        Cmd::Export { target, c, out } => {
            let g = build(&c)?;
            let bin = "target/release";
            let text = if target == "airflow" {
                let mut t = format!(
                    "\"\"\"Airflow DAG for alpha-factory pipeline {name}, written by `pipeline export airflow`.\n\nEach task runs the same command line as `pipeline run`; set AF_REPO to the repository.\n\"\"\"\nimport os\nimport shlex\nfrom datetime import datetime\n\nfrom airflow import DAG\nfrom airflow.operators.bash import BashOperator\n\nREPO = os.environ.get(\"AF_REPO\", \"{repo}\")\n\nwith DAG(dag_id={name:?}, start_date=datetime(2024, 1, 1), schedule=None, catchup=False) as dag:\n",
                    name = g.p.name,
                    repo = std::env::current_dir()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                );
                for (i, s) in g.p.steps.iter().enumerate() {
                    t += &format!(
                        "    t{i} = BashOperator(task_id={:?}, bash_command=\"cd \" + shlex.quote(REPO) + \" && \" + {:?})\n",
                        s.name,
                        command_line(&g, s, bin)
                    );
                }
                for (i, d) in g.deps.iter().enumerate() {
                    for j in d {
                        t += &format!("    t{j} >> t{i}\n");
                    }
                }
                t
            } else {
                let mut t = format!(
                    "# GitHub Actions workflow for alpha-factory pipeline {}, written by `pipeline export github`.\nname: {}\non:\n  workflow_dispatch: {{}}\njobs:\n  pipeline:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - name: build\n        run: make release\n",
                    g.p.name, g.p.name
                );
                for &i in &g.order {
                    let s = &g.p.steps[i];
                    t += &format!(
                        "      - name: {:?}\n        run: {:?}\n",
                        s.name,
                        command_line(&g, s, bin)
                    );
                }
                t
            };
            af_store::write_atomic_bytes(&out, text.as_bytes())?;
            println!("wrote {}", out.display());
            Ok(())
        }
    }
}

fn main() {
    af_store::cli::main_with(|| main_inner(Cli::parse()));
}
