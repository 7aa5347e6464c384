//! `pipeline export`: the same commands as an Airflow DAG or a GitHub Actions workflow.

use std::path::Path;

use anyhow::Result;

use crate::graph::*;
use crate::spec::Step;

pub fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub fn command_line(g: &Graph, s: &Step, bin: &str) -> String {
    let mut parts = vec![format!("{bin}/{}", s.tool)];
    parts.extend(s.args.iter().map(|a| quote(a)));
    let _ = g;
    parts.join(" ")
}

/// Write the graph as an Airflow DAG (`airflow`) or a GitHub Actions workflow (`github`).
pub fn export(target: &str, c: &Common, out: &Path) -> Result<()> {
    let g = build_with(c, false)?;
    let bin = "target/release";
    let text = if target == "airflow" {
        // Each task is `pipeline run FILE --only STEP` with the export's settings: the
        // same command line and content keys as `pipeline run`, so a task whose inputs,
        // parameters and tool are unchanged is skipped by the runner, and a failing
        // tool fails its task (and the DAG run). The repository comes from AF_REPO at
        // run time: nothing of the exporting machine is baked in.
        let tools = c
            .tools
            .as_ref()
            .map(|t| t.display().to_string())
            .unwrap_or_else(|| bin.to_string());
        let mut sets = String::new();
        for kv in &c.sets {
            sets += &format!(" --set {}", quote(kv));
        }
        let mut t = format!(
            "\"\"\"Airflow 3 DAG for alpha-factory pipeline {name}, written by `pipeline export airflow`.\n\nEach task runs `pipeline run {file} --only STEP` in the repository named by the\nAF_REPO environment variable: the runner skips a step whose inputs, parameters and\ntool are unchanged, exactly as `pipeline run` does.\n\"\"\"\nfrom datetime import datetime\n\nfrom airflow.providers.standard.operators.bash import BashOperator\nfrom airflow.sdk import DAG\n\nRUN = (\n    'cd \"${{AF_REPO:?set AF_REPO to the alpha-factory checkout}}\" && '\n    {run:?}\n)\n\nwith DAG(dag_id={name:?}, start_date=datetime(2024, 1, 1), schedule=None, catchup=False) as dag:\n",
            name = g.p.name,
            file = c.file.display(),
            run = format!(
                "{tools}/pipeline run {} --tools {} --state {}{sets} --quiet --only ",
                quote(&c.file.display().to_string()),
                quote(&tools),
                quote(&c.state.display().to_string()),
            ),
        );
        for (i, s) in g.p.steps.iter().enumerate() {
            t += &format!(
                "    t{i} = BashOperator(task_id={:?}, bash_command=RUN + {:?})\n",
                s.name, s.name
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
    af_store::write_atomic_bytes(out, text.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}
