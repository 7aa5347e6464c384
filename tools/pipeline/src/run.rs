//! Running the graph: each stale step's tool as a child process (in parallel up to
//! `-j`), its record written after it succeeds; `plan` and `status` read the same
//! records without running anything.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use crate::graph::*;
use crate::state::{Hasher, Record, read_record, write_record};

pub struct Outcome {
    pub ran: bool,
    pub seconds: f64,
    pub why: String,
    /// What the step's tool says it processed (`count: N unit` lines on its stdout).
    pub counts: BTreeMap<String, u64>,
}

/// A tool reports how much it processed with a stdout line `count: N unit` (e.g.
/// `count: 200 candidates`), so the runner can give throughput end to end without
/// knowing any tool's file formats. Other lines are ignored.
pub fn parse_counts(stdout: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("count: ") else {
            continue;
        };
        let mut it = rest.split_whitespace();
        if let (Some(n), Some(unit), None) = (it.next(), it.next(), it.next()) {
            if let Ok(n) = n.parse::<u64>() {
                *out.entry(unit.to_string()).or_default() += n;
            }
        }
    }
    out
}

/// The end-of-run throughput line: each counted unit per minute of the whole run (wall
/// time, hashing and skipped steps included), and where the time of the steps went.
pub fn throughput(
    counts: &BTreeMap<String, u64>,
    wall: f64,
    by_tool: &BTreeMap<String, (usize, f64)>,
) -> Option<String> {
    if counts.is_empty() || wall <= 0.0 {
        return None;
    }
    let rates: Vec<String> = counts
        .iter()
        .map(|(u, n)| {
            format!(
                "{n} {u} in {wall:.1} s = {:.0} {u}/min",
                *n as f64 * 60.0 / wall
            )
        })
        .collect();
    let mut tools: Vec<(&String, &(usize, f64))> = by_tool.iter().collect();
    tools.sort_by(|a, b| b.1.1.total_cmp(&a.1.1).then(a.0.cmp(b.0)));
    let tools: Vec<String> = tools
        .iter()
        .map(|(t, (k, s))| format!("{t} {s:.1} s ({k})"))
        .collect();
    Some(format!(
        "throughput end to end: {}; step time by tool: {}",
        rates.join(", "),
        tools.join(", ")
    ))
}

pub fn execute(
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
            counts: BTreeMap::new(),
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
    // Each log line of the tool names its step (docs/pipeline.md, --log-format json).
    cmd.args(&s.args)
        .stdin(Stdio::null())
        .env("AF_STEP", &s.name);
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
    write_record(state, &g.p.name, s, &rec)?;
    Ok(Outcome {
        ran: true,
        seconds: secs,
        why,
        counts: parse_counts(&String::from_utf8_lossy(&out.stdout)),
    })
}

#[allow(clippy::too_many_arguments)]
pub fn run_cmd(
    c: &Common,
    only: &Option<String>,
    from: &Option<String>,
    to: &Option<String>,
    force: bool,
    jobs: usize,
    quiet: bool,
    as_json: bool,
) -> Result<()> {
    let t0 = Instant::now();
    let g = build(c)?;
    let _lock = crate::graph::run_lock(c, &g.p.name)
        .context("another `pipeline run` holds this pipeline and state folder")?;
    let sel = selected(&g, only, from, to)?;
    // Temp files a killed writer left beside an output that this run may skip (the
    // previous complete output is intact, so nothing would ever rewrite it): swept
    // when their writer is gone.
    let swept: usize =
        g.p.steps
            .iter()
            .flat_map(|s| &s.outputs)
            .map(|o| af_store::sweep_stale_tmps(std::path::Path::new(o)))
            .sum();
    if swept > 0 && !quiet {
        eprintln!("removed {swept} temp file(s) left by killed writers");
    }
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
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_tool: BTreeMap<String, (usize, f64)> = BTreeMap::new();
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
        None => tracing::info!("{line}"),
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
                    if o.ran {
                        let e = by_tool.entry(g.p.steps[i].tool.clone()).or_default();
                        e.0 += 1;
                        e.1 += o.seconds;
                    }
                    for (u, n) in o.counts {
                        *counts.entry(u).or_default() += n;
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
    let wall = t0.elapsed().as_secs_f64();
    if as_json {
        let steps: Vec<_> = results
            .iter()
            .map(|(i, (r, s, w))| json!({"step": g.p.steps[*i].name, "ran": r, "seconds": s, "why": w}))
            .collect();
        println!(
            "{}",
            json!({"pipeline": g.p.name, "ran": ran, "skipped": results.len() - ran,
            "failed": failure.as_ref().map(|e| format!("{e:#}")), "seconds": wall,
            "counts": counts, "log": log_path, "steps": steps})
        );
    }
    if let Some(e) = failure {
        return Err(e.context(format!("log: {}", log_path.display())));
    }
    if !quiet {
        tracing::info!(
            "{}: {ran} ran, {} skipped in {wall:.2} s (log {})",
            g.p.name,
            results.len() - ran,
            log_path.display()
        );
        if let Some(line) = throughput(&counts, wall, &by_tool) {
            tracing::info!("{line}");
        }
    }
    Ok(())
}

/// What `run` with the same selection would do, step by step, and why.
pub fn plan_cmd(
    c: &Common,
    only: &Option<String>,
    from: &Option<String>,
    to: &Option<String>,
    force: bool,
) -> Result<()> {
    let g = build(c)?;
    let sel = selected(&g, only, from, to)?;
    let mut h = Hasher::load(&c.state);
    let mut will_run: BTreeSet<usize> = BTreeSet::new();
    for &i in &g.order {
        let s = &g.p.steps[i];
        if !sel.contains(&i) {
            println!("skip  {:<24} not selected", s.name);
            continue;
        }
        if force {
            will_run.insert(i);
            println!("run   {:<24} forced", s.name);
            continue;
        }
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

/// The last run of each step, in run order.
pub fn status(c: &Common) -> Result<()> {
    let g = build(c)?;
    for &i in &g.order {
        let s = &g.p.steps[i];
        match read_record(&c.state, &g.p.name, s) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_summed_per_unit_and_other_lines_ignored() {
        let c = parse_counts(
            "wrote x.parquet\ncount: 200 candidates\ncount: 3 factors\ncount: 5 candidates\n\
             count: many candidates\ncount: 7 candidates extra\n",
        );
        assert_eq!(c.get("candidates"), Some(&205));
        assert_eq!(c.get("factors"), Some(&3));
        assert_eq!(c.len(), 2);
        let mut by_tool = BTreeMap::new();
        by_tool.insert("fitness".to_string(), (2, 30.0));
        by_tool.insert("gp-gen".to_string(), (2, 1.0));
        let line = throughput(&c, 60.0, &by_tool).expect("counts given");
        assert!(
            line.contains("205 candidates in 60.0 s = 205 candidates/min"),
            "{line}"
        );
        assert!(
            line.contains("fitness 30.0 s (2), gp-gen 1.0 s (2)"),
            "{line}"
        );
        assert!(throughput(&BTreeMap::new(), 60.0, &by_tool).is_none());
    }
}
