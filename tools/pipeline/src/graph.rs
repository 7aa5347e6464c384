//! The step graph: the expanded pipeline, each step's dependencies and run order, its
//! content key, and whether it is stale (and why).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use af_store::{canonical_json, sha256_bytes};
use anyhow::{Result, anyhow, bail};
use serde_json::json;

use crate::spec::{Pipeline, Step};
use crate::state::{Hasher, read_record};

/// The options every subcommand shares.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// The pipeline file.
    #[arg(default_value = "pipelines/mine.yaml")]
    pub file: PathBuf,
    /// Override a variable: key=value (repeatable).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// Where step records and the stat cache live.
    #[arg(long, default_value = "state")]
    pub state: PathBuf,
    /// Folder of the tool binaries (default: beside this one).
    #[arg(long)]
    pub tools: Option<PathBuf>,
}

/// The expanded pipeline with its dependency graph.
pub struct Graph {
    pub p: Pipeline,
    /// deps[i]: steps that must finish before step i.
    pub deps: Vec<BTreeSet<usize>>,
    /// Topological order.
    pub order: Vec<usize>,
    pub tools: PathBuf,
}

fn exists_or_matches(p: &str) -> bool {
    Path::new(p).exists()
        || (p.contains(['*', '?', '['])
            && glob::glob(p).is_ok_and(|mut g| g.any(|x| x.is_ok_and(|x| x.is_file()))))
}

pub fn tool_dir(c: &Common) -> PathBuf {
    c.tools.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

pub fn tool_path(dir: &Path, tool: &str) -> Option<PathBuf> {
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
pub fn under(path: &str, out: &str) -> bool {
    let norm = |p: &str| p.trim_start_matches("./").trim_end_matches('/').to_string();
    let (p, o) = (norm(path), norm(out));
    p == o || p.starts_with(&format!("{o}/"))
}

/// Two paths overlap when one is, or is inside, the other.
pub fn overlap(a: &str, b: &str) -> bool {
    under(a, b) || under(b, a)
}

pub fn build(c: &Common) -> Result<Graph> {
    build_with(c, true)
}

/// An input no step writes must exist (a file, a folder, or a glob that matches) —
/// unless not `check_external`: an export runs where the user's files live,
/// not where it is written.
pub fn build_with(c: &Common, check_external: bool) -> Result<Graph> {
    let p = crate::spec::load(&c.file, &c.sets)?;
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
            if check_external && prod.is_empty() && !exists_or_matches(inp) {
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
pub fn key_of(
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
pub fn stale(g: &Graph, s: &Step, h: &mut Hasher, state: &Path) -> Result<Option<String>> {
    let (key, identity, inputs) = key_of(g, s, h)?;
    let Some(r) = read_record(state, &g.p.name, s) else {
        return Ok(Some("never ran".into()));
    };
    if r.key != key {
        if r.identity != identity {
            return Ok(Some(format!("tool {} changed", s.tool)));
        }
        if r.args != s.args {
            // Same length: what changed where; else what came and went (an unset
            // variable's argument appearing shifts every position after it).
            let diff: Vec<String> = if r.args.len() == s.args.len() {
                s.args
                    .iter()
                    .zip(&r.args)
                    .filter(|(a, b)| a != b)
                    .map(|(a, b)| format!("{b} -> {a}"))
                    .take(3)
                    .collect()
            } else {
                let new = s
                    .args
                    .iter()
                    .filter(|a| !r.args.contains(a))
                    .map(|a| format!("+{a}"));
                let gone = r
                    .args
                    .iter()
                    .filter(|a| !s.args.contains(a))
                    .map(|a| format!("-{a}"));
                new.chain(gone).take(3).collect()
            };
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

pub fn selected(
    g: &Graph,
    only: &Option<String>,
    from: &Option<String>,
    to: &Option<String>,
) -> Result<BTreeSet<usize>> {
    let find = |n: &str| {
        g.p.steps
            .iter()
            .position(|s| s.name == n)
            .ok_or_else(|| anyhow!("no step named {n}"))
    };
    if let Some(n) = only {
        return Ok([find(n)?].into());
    }
    // `--from`: the step and everything that depends on it; `--to`: the step and
    // everything it depends on; both: the steps between.
    let mut set: BTreeSet<usize> = (0..g.p.steps.len()).collect();
    if let Some(n) = from {
        let mut below: BTreeSet<usize> = [find(n)?].into();
        for &i in &g.order {
            if g.deps[i].iter().any(|d| below.contains(d)) {
                below.insert(i);
            }
        }
        set = set.intersection(&below).copied().collect();
    }
    if let Some(n) = to {
        let mut above: BTreeSet<usize> = [find(n)?].into();
        for &i in g.order.iter().rev() {
            if above.contains(&i) {
                above.extend(g.deps[i].iter().copied());
            }
        }
        set = set.intersection(&above).copied().collect();
    }
    if set.is_empty() {
        bail!(
            "no step is both below --from {} and above --to {}",
            from.as_deref().unwrap_or("-"),
            to.as_deref().unwrap_or("-")
        );
    }
    Ok(set)
}

/// The graph as Mermaid (`mermaid`) or DOT (`dot`) text.
pub fn render(c: &Common, format: &str) -> Result<String> {
    let mut out = String::new();
    let g = build(c)?;
    if format == "dot" {
        let _ = writeln!(out, "digraph \"{}\" {{\n  rankdir=TB;", g.p.name);
        for (i, s) in g.p.steps.iter().enumerate() {
            let _ = writeln!(out, "  s{i} [label=\"{}\\n{}\"];", s.name, s.tool);
        }
        for (i, d) in g.deps.iter().enumerate() {
            for j in d {
                let _ = writeln!(out, "  s{j} -> s{i};");
            }
        }
        out.push_str("}\n");
    } else {
        out.push_str("flowchart TD\n");
        for (i, s) in g.p.steps.iter().enumerate() {
            let _ = writeln!(out, "  s{i}[\"{}<br/>{}\"]", s.name, s.tool);
        }
        for (i, d) in g.deps.iter().enumerate() {
            for j in d {
                let _ = writeln!(out, "  s{j} --> s{i}");
            }
        }
    }
    Ok(out)
}

/// The lock a run (or gc) of this pipeline holds: one per state folder and pipeline
/// name — the step records it writes — so the same pipeline file runs on two markets at
/// once with two `--state` folders (each tool still locks its own outputs), while two
/// runs sharing records exclude each other.
pub fn run_lock(c: &Common, name: &str) -> anyhow::Result<af_store::OutputLock> {
    af_store::OutputLock::acquire(&c.state.join("pipeline").join(name))
}
